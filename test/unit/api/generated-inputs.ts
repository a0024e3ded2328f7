/**
 * Seeded random inputs for the zod-vs-API-server agreement test: strings built from the
 * characters and tokens that the formats of the API are made of, so that most inputs land
 * near the boundary between valid and invalid.
 */
import { backupPolicy, restoreJob } from './cases.js';

/** mulberry32: a small deterministic PRNG, so a failing input can be reproduced by seed. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(next: () => number, items: readonly T[]): T {
  return items[Math.floor(next() * items.length)]!;
}

/** With probability 0.4, one random edit: insert, delete or replace a character. */
function mutate(next: () => number, text: string, alphabet: string): string {
  if (next() >= 0.4) return text;
  const at = Math.floor(next() * (text.length + 1));
  const char = alphabet[Math.floor(next() * alphabet.length)]!;
  const edit = next();
  if (edit < 0.34) return text.slice(0, at) + char + text.slice(at);
  if (edit < 0.67) return text.slice(0, at) + text.slice(at + 1);
  return text.slice(0, at) + char + text.slice(at + 1);
}

function quantity(next: () => number): string {
  const sign = pick(next, ['', '', '', '+', '-']);
  const digits = pick(next, ['0', '1', '20', '512', '1.5', '.5', '1.', '007']);
  const suffix = pick(next, [
    '',
    'Ki',
    'Mi',
    'Gi',
    'Ti',
    'k',
    'M',
    'G',
    'm',
    'e3',
    'E',
    'e-2',
    'GB',
    'gi',
  ]);
  return mutate(next, sign + digits + suffix, '0123456789.+-eEiKMGkm ');
}

const CRON_VALUES: readonly string[][] = [
  ['*', '*/5', '0', '30', '59', '0-30/10', '5,35', '60', '*/0'],
  ['*', '2', '23', '9-17', '*/6', '24', '0,12'],
  ['*', '1', '15', '31', '1-15/2', '32', '0'],
  ['*', '1', '12', '6-8', '*/3', '13', '0', 'JAN', 'dec', 'Mar-Sep', 'JUNE', 'jan-13'],
  ['*', '0', '6', '1-5', '0,6', '7', '8', 'MON-FRI', 'sun', 'Sat,SUN', 'MONDAY', 'mon/2'],
];

function schedule(next: () => number): string {
  if (next() < 0.1)
    return pick(next, [
      '@hourly',
      '@daily',
      '@midnight',
      '@weekly',
      '@monthly',
      '@yearly',
      '@annually',
      '@reboot',
      '@Daily',
    ]);
  const fields = CRON_VALUES.map((values) => pick(next, values));
  if (next() < 0.1) fields.pop();
  return mutate(next, fields.join(' '), '0123456789*/-, ');
}

function duration(next: () => number): string {
  const terms = 1 + Math.floor(next() * 3);
  const text = Array.from(
    { length: terms },
    () => `${pick(next, ['0', '1', '12', '30', '90'])}${pick(next, ['s', 'm', 'h', 'd', 'w'])}`,
  ).join('');
  return mutate(next, text, '0123456789smhdwy. ');
}

function time(next: () => number): string {
  if (next() < 0.15) return mutate(next, 'latest', 'latest ');
  const text =
    `2025-${pick(next, ['01', '06', '12', '13'])}-${pick(next, ['01', '15', '31', '32'])}` +
    `T${pick(next, ['00', '02', '23', '24'])}:${pick(next, ['00', '30', '60'])}:${pick(next, ['00', '59', '60'])}` +
    `${pick(next, ['', '', '.5', '.123456789'])}${pick(next, ['Z', 'Z', '+08:00', '-05:30', '', '+8:00'])}`;
  return mutate(next, text, '0123456789-:TZ+. ');
}

export interface GeneratedInput {
  description: string;
  manifest: Record<string, unknown>;
}

/** `count` manifests of both kinds, each with one randomly built field. */
export function generatedInputs(seed: number, count: number): GeneratedInput[] {
  const next = random(seed);
  const base = { pvcNames: ['data'], schedule: '0 2 * * *', retention: { keepLast: 3 } };
  const out: GeneratedInput[] = [];
  for (let i = 0; i < count; i++) {
    switch (i % 4) {
      case 0: {
        const size = quantity(next);
        out.push({
          description: `size ${JSON.stringify(size)}`,
          manifest: restoreJob({
            source: { volumeSnapshotName: 'snap' },
            target: { pvcName: 'restored', size },
          }),
        });
        break;
      }
      case 1: {
        const cron = schedule(next);
        out.push({
          description: `schedule ${JSON.stringify(cron)}`,
          manifest: backupPolicy({ ...base, schedule: cron }),
        });
        break;
      }
      case 2: {
        const maxAge = duration(next);
        out.push({
          description: `maxAge ${JSON.stringify(maxAge)}`,
          manifest: backupPolicy({ ...base, retention: { maxAge } }),
        });
        break;
      }
      default: {
        const at = time(next);
        out.push({
          description: `at ${JSON.stringify(at)}`,
          manifest: restoreJob({
            source: { backupPolicy: { name: 'nightly', pvcName: 'data', at } },
            target: { pvcName: 'restored' },
          }),
        });
      }
    }
  }
  return out;
}

/**
 * Retention per PVC: which of a policy's snapshots of one PVC to delete.
 *
 * Rules, all counted over READY snapshots only:
 * - `keepLast: n` keeps the n newest.
 * - GFS tiers `hourly|daily|weekly|monthly|yearly: n` keep the newest snapshot of each of the n
 *   most recent buckets that hold one (buckets are wall-clock hours, days, ISO weeks starting
 *   Monday, months and years in the policy's time zone). Tiers share snapshots: one snapshot may
 *   satisfy several tiers.
 * - `maxAge` caps what the rules above keep: older snapshots are not kept by them. With no
 *   count rule, `maxAge` alone keeps everything younger than it.
 * - With no rule at all, nothing is pruned.
 *
 * Safety floors that no rule overrides:
 * - a snapshot that is not ready (pending or failed) is never pruned;
 * - the newest `minReady` (default 1, never less than 1) ready snapshots are kept;
 * - a snapshot in use (a RestoreJob source, or the dataSource of a Pending PVC) is kept;
 * - nothing is pruned while the policy is suspended or while the PVC's latest run failed, so a
 *   broken backup pipeline never eats the good backups it can no longer replace.
 */
import { toLocal } from './timezone.js';

export interface RetentionRules {
  keepLast?: number;
  /** Seconds. */
  maxAgeSeconds?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  minReady?: number;
}

export const TIERS = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type Tier = (typeof TIERS)[number];

export interface SnapshotFacts {
  name: string;
  /** The run time the snapshot stands for (scheduled time, or when run-now fired). */
  time: Date;
  ready: boolean;
  /** The snapshot reported an error and is not ready. */
  failed: boolean;
  /** Already being deleted: neither kept nor pruned again. */
  deleting: boolean;
  inUse: boolean;
}

export type KeepReason =
  'no-rules' | 'keepLast' | Tier | 'maxAge' | 'min-ready' | 'not-ready' | 'in-use' | 'paused';

export interface RetentionInput {
  snapshots: readonly SnapshotFacts[];
  rules: RetentionRules;
  timeZone: string;
  now: Date;
  suspended?: boolean;
}

export interface RetentionDecision {
  /** Name -> why it is kept. */
  keep: Map<string, KeepReason[]>;
  /** Names to delete, oldest first. */
  prune: string[];
  /** Why pruning is paused for this PVC, when it is. */
  pausedReason?: string;
}

export class DurationError extends Error {
  constructor(readonly text: string) {
    super(
      `invalid duration "${text}": use a number followed by s, m, h, d or w, optionally ` +
        `combined (e.g. "36h", "30d", "1w3d")`,
    );
    this.name = 'DurationError';
  }
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** "30d", "12h", "1w3d", "90m", "45s" -> seconds. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (!/^(\d+[smhdw])+$/.test(trimmed)) throw new DurationError(text);
  let seconds = 0;
  for (const [, amount, unit] of trimmed.matchAll(/(\d+)([smhdw])/g)) {
    seconds += Number(amount) * UNIT_SECONDS[unit!]!;
  }
  if (seconds === 0) throw new DurationError(text);
  return seconds;
}

function isoWeek(local: Date): string {
  // ISO 8601: the week belongs to the year of its Thursday.
  const thursday = new Date(local.getTime());
  thursday.setUTCHours(0, 0, 0, 0);
  thursday.setUTCDate(thursday.getUTCDate() + 3 - ((thursday.getUTCDay() + 6) % 7));
  const jan1 = Date.UTC(thursday.getUTCFullYear(), 0, 1);
  const week = Math.floor((thursday.getTime() - jan1) / 86_400_000 / 7) + 1;
  return `${thursday.getUTCFullYear()}-W${week}`;
}

/** The bucket a time falls into for a tier, as wall-clock time in the zone. */
export function bucketKey(tier: Tier, time: Date, timeZone: string): string {
  const l = toLocal(time, timeZone);
  const y = l.getUTCFullYear();
  switch (tier) {
    case 'yearly':
      return `${y}`;
    case 'monthly':
      return `${y}-${l.getUTCMonth() + 1}`;
    case 'weekly':
      return isoWeek(l);
    case 'daily':
      return `${y}-${l.getUTCMonth() + 1}-${l.getUTCDate()}`;
    case 'hourly':
      return `${y}-${l.getUTCMonth() + 1}-${l.getUTCDate()}T${l.getUTCHours()}`;
  }
}

function newestFirst(a: SnapshotFacts, b: SnapshotFacts): number {
  return b.time.getTime() - a.time.getTime() || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0);
}

export function hasRetentionRules(rules: RetentionRules): boolean {
  return (
    rules.keepLast !== undefined ||
    rules.maxAgeSeconds !== undefined ||
    TIERS.some((t) => rules[t] !== undefined)
  );
}

export function planRetention(input: RetentionInput): RetentionDecision {
  const { rules, now } = input;
  const keep = new Map<string, KeepReason[]>();
  const mark = (name: string, reason: KeepReason) => {
    const reasons = keep.get(name);
    if (reasons) {
      if (!reasons.includes(reason)) reasons.push(reason);
    } else keep.set(name, [reason]);
  };

  const live = input.snapshots.filter((s) => !s.deleting).sort(newestFirst);
  const ready = live.filter((s) => s.ready);

  for (const s of live) {
    if (!s.ready) mark(s.name, 'not-ready');
    if (s.inUse) mark(s.name, 'in-use');
  }
  const floor = Math.max(1, rules.minReady ?? 1);
  for (const s of ready.slice(0, floor)) mark(s.name, 'min-ready');

  const pausedReason = input.suspended
    ? 'the policy is suspended'
    : live[0]?.failed
      ? `the latest run's snapshot ${live[0].name} failed`
      : undefined;

  if (!hasRetentionRules(rules) || pausedReason) {
    const reason: KeepReason = pausedReason ? 'paused' : 'no-rules';
    for (const s of ready) mark(s.name, reason);
    return { keep, prune: [], ...(pausedReason ? { pausedReason } : {}) };
  }

  const young = (s: SnapshotFacts) =>
    rules.maxAgeSeconds === undefined ||
    now.getTime() - s.time.getTime() <= rules.maxAgeSeconds * 1000;

  const countRules = rules.keepLast !== undefined || TIERS.some((t) => rules[t] !== undefined);
  if (!countRules) {
    for (const s of ready) if (young(s)) mark(s.name, 'maxAge');
  } else {
    if (rules.keepLast !== undefined) {
      for (const s of ready.slice(0, rules.keepLast)) if (young(s)) mark(s.name, 'keepLast');
    }
    for (const tier of TIERS) {
      const wanted = rules[tier];
      if (wanted === undefined || wanted <= 0) continue;
      const seen = new Set<string>();
      for (const s of ready) {
        if (seen.size >= wanted) break;
        const key = bucketKey(tier, s.time, input.timeZone);
        if (seen.has(key)) continue;
        seen.add(key);
        if (young(s)) mark(s.name, tier);
      }
    }
  }

  const prune = ready
    .filter((s) => !keep.has(s.name))
    .map((s) => s.name)
    .reverse();
  return { keep, prune };
}

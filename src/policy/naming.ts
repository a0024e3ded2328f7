/**
 * Names and labels of the objects a BackupPolicy creates.
 *
 * A VolumeSnapshot's name is a pure function of (policy, PVC, run), so a retried run finds the
 * snapshot it already made instead of making a second one, and two runs never share a name.
 * The readable part (`<pvc>-<policy>-<run>`) is for people; an 8-hex-digit hash of the exact
 * identity always follows, because concatenations are ambiguous (PVC "a-b" + policy "c" vs
 * PVC "a" + policy "b-c") and truncation or case folding would otherwise merge identities.
 */
import { createHash } from 'node:crypto';

/** DNS-1123 label length; also the limit for label values. */
export const MAX_NAME_LENGTH = 63;
const HASH_LENGTH = 8;

/**
 * A run-now run is its token and its place among the policy's run-now runs (1, 2, ...), so a
 * token used before (A, then B, then A again) names a new run, while a retry of the same run
 * (its number not yet recorded in status) finds the snapshots it already made.
 */
export type RunIdentity =
  { kind: 'scheduled'; scheduledTime: Date } | { kind: 'run-now'; token: string; sequence: number };

export function shortHash(...parts: string[]): string {
  const hash = createHash('sha256');
  // A separator that cannot occur in Kubernetes names keeps ("ab","c") apart from ("a","bc").
  for (const part of parts) hash.update(`${part.length}:${part}\u0000`);
  return hash.digest('hex').slice(0, HASH_LENGTH);
}

/** Lower-case, only [a-z0-9-], no leading/trailing '-'; may be empty. */
function sanitize(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/** `YYYYMMDDHHMM` in UTC: sortable, unambiguous across DST, minute-resolution like cron. */
export function runStamp(time: Date): string {
  return time.toISOString().slice(0, 16).replace(/[-T:]/g, '');
}

function runLabel(run: RunIdentity): string {
  return run.kind === 'scheduled' ? runStamp(run.scheduledTime) : `now-${sanitize(run.token)}`;
}

function runKey(run: RunIdentity): string {
  return run.kind === 'scheduled'
    ? `scheduled:${run.scheduledTime.toISOString()}`
    : `run-now:${run.sequence}:${run.token}`;
}

/**
 * Joins readable parts and the hash within `MAX_NAME_LENGTH`. When too long, the longest part
 * is shortened one character at a time, so every part keeps as much of its start as it can.
 */
function fitName(readable: string[], hash: string): string {
  const parts = readable.map(sanitize).filter((p) => p !== '');
  const budget = MAX_NAME_LENGTH - hash.length - parts.length; // one '-' after each part
  const lengths = parts.map((p) => p.length);
  let total = lengths.reduce((n, l) => n + l, 0);
  while (total > budget) {
    let longest = 0;
    for (let i = 1; i < lengths.length; i++) if (lengths[i]! > lengths[longest]!) longest = i;
    lengths[longest]!--;
    total--;
  }
  const shortened = parts
    .map((p, i) => p.slice(0, lengths[i]).replace(/-+$/, ''))
    .filter((p) => p !== '');
  return [...shortened, hash].join('-');
}

export function snapshotName(policy: string, pvc: string, run: RunIdentity): string {
  return fitName([pvc, policy, runLabel(run)], shortHash(policy, pvc, runKey(run)));
}

/**
 * The VolumeGroupSnapshot of one run of a consistency Group policy: `<policy>-<run>-<hash>`,
 * a pure function of (policy, run) as the per-PVC snapshot names are.
 */
export function groupSnapshotName(policy: string, run: RunIdentity): string {
  return fitName([policy, runLabel(run)], shortHash('group', policy, runKey(run)));
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/**
 * A label value standing for `name`: the name itself when it is a valid label value, otherwise
 * a shortened form with a hash of the full name (the full name goes in an annotation).
 */
export function labelValue(name: string): string {
  if (name.length <= MAX_NAME_LENGTH && LABEL_VALUE.test(name)) return name;
  return fitName([name], shortHash(name));
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isDnsLabel(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && DNS_LABEL.test(name);
}

/**
 * The VolumeSnapshotClass a policy's snapshotClass.template produces, and the
 * VolumeGroupSnapshotClass its groupSnapshotClass.template produces (another kind, the same
 * name): cluster-scoped, so the namespace counts.
 */
export function ownedSnapshotClassName(namespace: string, policy: string): string {
  return fitName(['snapback', namespace, policy], shortHash(namespace, policy));
}

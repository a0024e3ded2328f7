/**
 * Each PVC a BackupPolicy selects, summarised: its line in status.pvcs with the problem it
 * shows (its own, or its newest snapshot's), what retention prunes of its snapshots or why
 * pruning is paused, and the counts in the status: a step of planBackupPolicy
 * (backup-policy.ts).
 */
import type { BackupPolicySpec, BackupPolicyStatus, PvcBackupStatus } from '../api/index.js';
import type { VolumeGroupSnapshot } from '../api/group-snapshot.js';
import type { VolumeSnapshot } from '../api/snapshot.js';
import { ANNOTATION_PVC_NAME, LABEL_PVC, MAX_STATUS_PVCS } from '../api/index.js';
import { rfc3339 } from '../kube/index.js';
import type {
  BackupPolicyObservation,
  PlannedPrune,
  PolicyEvent,
  ResolvedPolicy,
} from './backup-policy.js';
import { capMessage } from './messages.js';
import { labelValue } from './naming.js';
import {
  hasFailed,
  isDeleting,
  isHeldForRestore,
  isReady,
  snapshotTime,
  snapshotsInUse,
  time,
} from './objects.js';
import type { Problem, PvcPlan } from './plan-pvcs.js';
import { timedOut } from './plan-runs.js';
import { BackupPolicyReason } from './reasons.js';
import type { RetentionRules, SnapshotFacts } from './retention.js';
import { parseDuration, planRetention } from './retention.js';

/** Each selected PVC's summary and retention, and the problems they show. */
export interface PvcSummaries {
  summaries: PvcSummary[];
  problems: Problem[];
  prune: PlannedPrune[];
  ready: number;
  total: number;
}

export function summarisePvcs(
  observed: BackupPolicyObservation,
  resolved: ResolvedPolicy,
  pvcPlans: readonly PvcPlan[],
): PvcSummaries {
  const rules = retentionRules(resolved.spec);
  const inUse = snapshotsInUse(observed.restoreJobs, observed.pvcs);
  const result: PvcSummaries = { summaries: [], problems: [], prune: [], ready: 0, total: 0 };
  for (const plan of pvcPlans) {
    const live = snapshotsOfPvc(observed.snapshots, plan.name).filter((s) => !isDeleting(s));
    const summary = summarisePvc(plan, live, resolved.spec, observed.now);
    result.summaries.push(summary);
    result.ready += summary.entry.readySnapshots;
    result.total += summary.entry.totalSnapshots;
    if (summary.problem) result.problems.push(summary.problem);
    if (!rules || !plan.pvc) continue;
    const retained = retainPvc(plan, live, rules, inUse, observed.now, resolved);
    result.problems.push(...retained.problems);
    result.prune.push(...retained.prune);
  }
  return result;
}

interface PvcSummary {
  entry: PvcBackupStatus;
  problem?: Problem;
}

/** A PVC's line in status.pvcs, with its problem: its own, or its newest snapshot's. */
function summarisePvc(
  plan: PvcPlan,
  live: readonly VolumeSnapshot[],
  spec: BackupPolicySpec,
  now: Date,
): PvcSummary {
  const readyOnes = live.filter(isReady);
  const entry: PvcBackupStatus = {
    pvcName: plan.name,
    readySnapshots: readyOnes.length,
    totalSnapshots: live.length,
  };
  const newest = live[0];
  if (newest) entry.lastSnapshotName = newest.metadata.name!;
  if (readyOnes[0]) entry.lastReadyTime = rfc3339(snapshotTime(readyOnes[0]));
  let problem = plan.problem;
  if (!problem && newest && hasFailed(newest)) {
    problem = {
      reason: BackupPolicyReason.SnapshotFailed,
      message: `snapshot ${newest.metadata.name} of PVC ${plan.name} failed: ${newest.status?.error?.message ?? 'no message'}`,
    };
  }
  if (!problem && newest && timedOut(newest, spec.readyDeadlineSeconds * 1000, now)) {
    problem = {
      reason: BackupPolicyReason.SnapshotTimedOut,
      message: `snapshot ${newest.metadata.name} of PVC ${plan.name} is not ready ${spec.readyDeadlineSeconds}s after it was created (spec.readyDeadlineSeconds); it is kept, and counts once it becomes ready${newest.status?.error?.message ? `; its last error: ${newest.status.error.message}` : ''}`,
    };
  }
  return withProblem(entry, problem);
}

/** What retention prunes of a PVC's snapshots, or why its pruning is paused. */
function retainPvc(
  plan: PvcPlan,
  live: readonly VolumeSnapshot[],
  rules: RetentionRules,
  inUse: ReadonlySet<string>,
  now: Date,
  resolved: ResolvedPolicy,
): { prune: PlannedPrune[]; problems: Problem[] } {
  if (plan.problem) {
    // Runs of this PVC cannot be made, so its existing snapshots are all it has.
    return { prune: [], problems: live.length > 0 ? [pruningPaused(plan.name)] : [] };
  }
  const { spec } = resolved;
  const decision = planRetention({
    snapshots: retentionCandidates(live, inUse, spec.readyDeadlineSeconds * 1000, now),
    rules,
    timeZone: resolved.zone,
    now,
    suspended: spec.suspend,
  });
  const problems =
    decision.pausedReason && !spec.suspend ? [pruningPaused(plan.name, decision.pausedReason)] : [];
  const prune = decision.prune.map((name) => ({
    name,
    pvc: plan.name,
    message: `no longer kept by retention (${describeRules(rules)})`,
  }));
  return { prune, problems };
}

/** A PVC's snapshots as retention weighs them. */
function retentionCandidates(
  live: readonly VolumeSnapshot[],
  inUse: ReadonlySet<string>,
  readyDeadlineMs: number,
  now: Date,
): SnapshotFacts[] {
  return live.map((s) =>
    retentionFacts(
      { name: s.metadata.name!, time: snapshotTime(s), object: s, snapshots: [s] },
      inUse,
      readyDeadlineMs,
      now,
    ),
  );
}

/**
 * How retention weighs one snapshot, or one group with its members as `snapshots`: ready,
 * failed (or not ready past the deadline), and in use while a restore reads from or holds any
 * of the snapshots (or, `held`, the subject itself).
 */
export function retentionFacts(
  subject: {
    name: string;
    time: Date;
    object: VolumeSnapshot | VolumeGroupSnapshot;
    snapshots: readonly VolumeSnapshot[];
    held?: boolean;
  },
  inUse: ReadonlySet<string>,
  readyDeadlineMs: number,
  now: Date,
): SnapshotFacts {
  const { object, snapshots } = subject;
  return {
    name: subject.name,
    time: subject.time,
    ready: isReady(object),
    failed: hasFailed(object) || timedOut(object, readyDeadlineMs, now),
    deleting: false,
    inUse:
      !!subject.held || snapshots.some((s) => inUse.has(s.metadata.name!) || isHeldForRestore(s)),
  };
}

/** Pruning paused by retention (with its reason), or because the PVC cannot be snapshotted. */
function pruningPaused(pvc: string, retentionReason?: string): Problem {
  const why = retentionReason ? `: ${retentionReason}` : ' until it can be snapshotted again';
  return {
    reason: BackupPolicyReason.PruningPaused,
    message: `pruning of PVC ${pvc} is paused${why}`,
  };
}

export function describeRules(rules: RetentionRules): string {
  const parts: string[] = [];
  if (rules.keepLast !== undefined) parts.push(`keepLast ${rules.keepLast}`);
  for (const tier of ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) {
    if (rules[tier] !== undefined) parts.push(`${tier} ${rules[tier]}`);
  }
  if (rules.maxAgeSeconds !== undefined) parts.push(`maxAge ${rules.maxAgeSeconds}s`);
  return parts.join(', ');
}

export function retentionRules(spec: BackupPolicySpec): RetentionRules | undefined {
  const r = spec.retention;
  if (!r) return undefined;
  const rules: RetentionRules = { minReady: r.minReady };
  if (r.keepLast !== undefined) rules.keepLast = r.keepLast;
  if (r.maxAge !== undefined) rules.maxAgeSeconds = parseDuration(r.maxAge);
  for (const tier of ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) {
    if (r[tier] !== undefined) rules[tier] = r[tier];
  }
  return rules;
}

function snapshotsOfPvc(snapshots: readonly VolumeSnapshot[], pvc: string): VolumeSnapshot[] {
  const value = labelValue(pvc);
  return snapshots
    .filter(
      (s) =>
        s.metadata.labels?.[LABEL_PVC] === value &&
        (s.metadata.annotations?.[ANNOTATION_PVC_NAME] ?? pvc) === pvc,
    )
    .sort((a, b) => snapshotTime(b).getTime() - snapshotTime(a).getTime());
}

/**
 * The PVCs status.pvcs lists, and an Event for each listed problem not reported before. Only a
 * listed PVC's Event can be told apart from a repeat; the others are summarised in the
 * Degraded condition.
 */
export function listPvcSummaries(
  summaries: readonly PvcSummary[],
  previous: readonly PvcBackupStatus[],
): { pvcs: PvcBackupStatus[]; events: PolicyEvent[] } {
  const previousPvcs = new Map(previous.map((p) => [p.pvcName, p]));
  const pvcs: PvcBackupStatus[] = [];
  const events: PolicyEvent[] = [];
  for (const { entry, problem } of boundedPvcSummaries(summaries, MAX_STATUS_PVCS)) {
    pvcs.push(entry);
    if (problem && previousPvcs.get(entry.pvcName)?.message !== problem.message) {
      events.push({ type: 'Warning', reason: problem.reason, message: problem.message });
    }
  }
  return { pvcs, events };
}

/**
 * The PVCs status.pvcs lists when there are more than `max`: those with a problem first (what
 * a user needs to read), then the others, in selection order.
 */
function boundedPvcSummaries<T extends { problem?: unknown }>(all: readonly T[], max: number): T[] {
  if (all.length <= max) return [...all];
  const listed = new Set(
    [...all.filter((s) => s.problem), ...all.filter((s) => !s.problem)].slice(0, max),
  );
  return all.filter((s) => listed.has(s));
}

/** The status with the PVC list and snapshot counts. */
export function summariseStatus(
  previous: BackupPolicyStatus,
  observed: BackupPolicyObservation,
  selected: number,
  { ready, total }: PvcSummaries,
  { pvcs }: { pvcs: PvcBackupStatus[] },
): BackupPolicyStatus {
  const status: BackupPolicyStatus = {
    ...previous,
    pvcs,
    selectedPvcs: selected,
    readySnapshots: ready,
    totalSnapshots: total,
    readyOverTotal: `${ready}/${total}`,
  };
  const success = lastSuccessfulTime(observed.snapshots, status.lastSuccessfulTime);
  if (success !== undefined) status.lastSuccessfulTime = success;
  return status;
}

/**
 * The run time of the newest run whose snapshots all became ready (at least one), or the
 * previous value when that is newer (pruning removes old runs but not the record of them).
 */
function lastSuccessfulTime(
  snapshots: readonly VolumeSnapshot[],
  previous: string | undefined,
): string | undefined {
  const runs = new Map<number, boolean>();
  for (const s of snapshots) {
    if (isDeleting(s)) continue;
    const t = snapshotTime(s).getTime();
    runs.set(t, (runs.get(t) ?? true) && isReady(s));
  }
  let newest: number | undefined;
  for (const [t, ok] of runs) if (ok && (newest === undefined || t > newest)) newest = t;
  const prev = time(previous)?.getTime();
  if (newest === undefined || (prev !== undefined && prev >= newest)) return previous;
  return rfc3339(new Date(newest));
}

/** A status entry and its problem, if any, with the problem's message capped and recorded on it. */
export function withProblem<E extends { message?: string }>(
  entry: E,
  problem: Problem | undefined,
): { entry: E; problem?: Problem } {
  if (!problem) return { entry };
  const capped = { reason: problem.reason, message: capMessage(problem.message) };
  entry.message = capped.message;
  return { entry, problem: capped };
}

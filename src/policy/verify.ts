/**
 * Restore drills of a BackupPolicy (spec.verify): a pure plan from what is observed, which the
 * BackupPolicy controller carries out beside its runs.
 *
 * A drill is due on verify.schedule or when the snapback.dev/verify-now annotation holds a new
 * value. It restores the newest ready snapshot (consistency Group: every member of the newest
 * ready group) into scratch PVCs and runs a Job that reads them read-only. Its steps, each
 * recorded in status.verification before it is taken, so a restart resumes where it was:
 * 1. started: status.verification names the snapshots, scratch PVCs and Job; they are created
 *    (again, when missing) while the drill has no result;
 * 2. result: from the Job (Complete, Failed, DeadlineExceeded), the pod's FailedMount Events or
 *    the drill's own deadline; recorded in status.verification, then the scratch objects are
 *    deleted;
 * 3. done: once none of them is left, status.lastVerification, an Event and the metrics.
 * Nothing but the drill's own objects (by label and name) is ever deleted, and the snapshots it
 * names are not pruned while it runs.
 */
import type {
  BackupPolicy,
  BackupPolicySpec,
  BackupPolicyStatus,
  LastVerification,
  Verification,
  VolumeSnapshot,
} from '../api/index.js';
import { ANNOTATION_VERIFY_NOW, MAX_RUN_NOW_TOKEN_LENGTH } from '../api/index.js';
import { rfc3339 } from '../kube/index.js';
import type { PolicyEvent } from './backup-policy.js';
import { CronError } from './cron.js';
import type { GroupObservation } from './plan-groups.js';
import type { Problem } from './plan-pvcs.js';
import type { Pvc } from './objects.js';
import { isDeleting, isReady, snapshotTime, time } from './objects.js';
import { BackupPolicyReason } from './reasons.js';
import { compileSchedule, planSchedule } from './schedule.js';
import { TimeZoneError } from './timezone.js';
import {
  drillJob,
  drillOutcome,
  scratchNames,
  scratchPvc,
  timedOut,
  type DrillObjects,
  type DrillOutcome,
  type Job,
  type ScratchSource,
} from './verify-objects.js';

/** The status fields of drills; the plan gives them all, an absent one is removed. */
export const VERIFY_STATUS_KEYS = [
  'verification',
  'lastVerification',
  'lastSuccessfulVerificationTime',
  'verifySince',
  'lastVerifyScheduleTime',
  'nextVerificationTime',
  'lastVerifyNowToken',
] as const;
export type VerifyStatus = Pick<BackupPolicyStatus, (typeof VERIFY_STATUS_KEYS)[number]>;

export interface VerifyObservation {
  policy: BackupPolicy;
  /** The spec with defaults. */
  spec: BackupPolicySpec;
  /** The policy's VolumeSnapshots. */
  snapshots: readonly VolumeSnapshot[];
  groupSnapshots?: GroupObservation | undefined;
  /** PVCs of the namespace (the sources' sizes and classes). */
  pvcs: readonly Pvc[];
  now: Date;
  /** The image of the drill Job (--verify-image); absent: drills are disabled. */
  image?: string | undefined;
  /** The objects of the drill in status.verification, read live; absent when none runs. */
  drill?: DrillObjects | undefined;
}

export interface VerifyPlan {
  status: VerifyStatus;
  /** Write `status` before creating or deleting anything (a drill starts or has its result). */
  recordFirst: boolean;
  /** Scratch objects to create when missing. */
  create: { pvcs: Pvc[]; job?: Job };
  /** Scratch objects to delete (names of the drill's own objects only). */
  delete: { pvcs: string[]; job?: string };
  events: PolicyEvent[];
  /** A drill ended now: for the metrics. */
  finished?: LastVerification;
  /** Why drills cannot run (the Degraded condition); snapshots are not affected. */
  problem?: Problem;
  requeueAfterMs?: number;
}

/** How often a running drill is looked at. */
export const DRILL_POLL_MS = 5_000;
/** Past the Job's own deadline, how long the controller waits for the Job to say so. */
export const DRILL_GRACE_SECONDS = 30;

export function planVerify(observed: VerifyObservation): VerifyPlan {
  const status = currentFields(observed.policy.status);
  const running = status.verification;
  if (running?.result) return cleanUp(observed, status, running);
  if (running) return followDrill(observed, status, running);
  const verify = observed.spec.verify;
  if (!verify) return idle({ ...pickResults(status) });
  status.verifySince ??= rfc3339(verifyingSince(observed));
  const problem = verifyProblem(observed);
  if (problem) return { ...idle(status), problem, events: problemEvents(observed, problem) };
  return planTrigger(observed, status);
}

function idle(status: VerifyStatus): VerifyPlan {
  return { status, recordFirst: false, create: { pvcs: [] }, delete: { pvcs: [] }, events: [] };
}

function currentFields(previous: BackupPolicyStatus | undefined): VerifyStatus {
  const status: VerifyStatus = {};
  for (const key of VERIFY_STATUS_KEYS) {
    if (previous?.[key] !== undefined) Object.assign(status, { [key]: previous[key] });
  }
  return structuredClone(status);
}

/** What is kept once spec.verify is removed: the results, not the schedule. */
function pickResults(status: VerifyStatus): VerifyStatus {
  const kept: VerifyStatus = {};
  if (status.lastVerification) kept.lastVerification = status.lastVerification;
  if (status.lastSuccessfulVerificationTime)
    kept.lastSuccessfulVerificationTime = status.lastSuccessfulVerificationTime;
  return kept;
}

/** A new policy verifies from its creation; one that gains spec.verify later, from now. */
function verifyingSince({ policy, now }: VerifyObservation): Date {
  const created = time(policy.metadata.creationTimestamp);
  return created && (policy.metadata.generation ?? 1) <= 1 ? created : now;
}

function verifyProblem({ spec, image }: VerifyObservation): Problem | undefined {
  const verify = spec.verify!;
  try {
    compileSchedule(verify.schedule, verify.timeZone ?? spec.timeZone);
  } catch (error) {
    if (!(error instanceof CronError) && !(error instanceof TimeZoneError)) throw error;
    return {
      reason: BackupPolicyReason.InvalidVerifySchedule,
      message: `spec.verify: ${error.message}: no restore drill runs until it is fixed (snapshots are not affected)`,
    };
  }
  if (image) return undefined;
  return {
    reason: BackupPolicyReason.VerifyDisabled,
    message:
      'spec.verify is set, but restore drills are disabled in this installation (the controller runs without --verify=true and --verify-image; with the Helm chart, set verify.enabled=true): no drill runs; snapshots are taken as usual',
  };
}

/** A Warning when the problem is news (the Degraded condition does not already say it). */
function problemEvents({ policy }: VerifyObservation, problem: Problem): PolicyEvent[] {
  const degraded = policy.status?.conditions?.find((c) => c.type === 'Degraded');
  if (degraded?.reason === problem.reason) return [];
  return [{ type: 'Warning', reason: problem.reason, message: problem.message }];
}

/** Whether a drill is due (verify-now first, then the schedule), and if so its start. */
function planTrigger(observed: VerifyObservation, status: VerifyStatus): VerifyPlan {
  const { spec, now, policy } = observed;
  const verify = spec.verify!;
  const schedule = planSchedule({
    schedule: verify.schedule,
    timeZone: verify.timeZone ?? spec.timeZone,
    creationTime: time(status.verifySince) ?? now,
    now,
    ...(time(status.lastVerifyScheduleTime)
      ? { lastHandledTime: time(status.lastVerifyScheduleTime)! }
      : {}),
  });
  if (schedule.nextScheduleTime) status.nextVerificationTime = rfc3339(schedule.nextScheduleTime);
  if (schedule.handledThrough) status.lastVerifyScheduleTime = rfc3339(schedule.handledThrough);
  const token = policy.metadata.annotations?.[ANNOTATION_VERIFY_NOW];
  const fresh =
    token !== undefined && token !== '' && token !== status.lastVerifyNowToken
      ? token.slice(0, MAX_RUN_NOW_TOKEN_LENGTH)
      : undefined;
  if (fresh !== undefined) status.lastVerifyNowToken = fresh;
  const trigger =
    fresh !== undefined
      ? `verify-now ${fresh}`
      : schedule.run && `scheduled ${rfc3339(schedule.run)}`;
  const plan = idle(status);
  if (schedule.nextScheduleTime)
    plan.requeueAfterMs = Math.max(0, schedule.nextScheduleTime.getTime() - now.getTime());
  if (!trigger) return plan;
  return startDrill(observed, plan, trigger);
}

/** What a drill restores: the sources, or why there is nothing to restore. */
interface DrillSource {
  snapshotName?: string;
  volumeGroupSnapshotName?: string;
  sources: ScratchSource[];
}

function startDrill(observed: VerifyObservation, plan: VerifyPlan, trigger: string): VerifyPlan {
  const { policy, now, spec } = observed;
  const source = drillSource(observed);
  if (!source) {
    const what = spec.consistency === 'Group' ? 'VolumeGroupSnapshot' : 'VolumeSnapshot';
    return finish(plan, now, undefined, {
      result: 'Failed',
      reason: BackupPolicyReason.NoSnapshotToVerify,
      message: `${trigger}: the policy has no ready ${what} to restore: nothing could be verified`,
    });
  }
  const snapshots = source.sources.map((s) => s.snapshot);
  const names = scratchNames(policy.metadata.name!, trigger, snapshots);
  const verification: Verification = {
    trigger,
    startTime: rfc3339(now),
    ...(source.snapshotName ? { snapshotName: source.snapshotName } : {}),
    ...(source.volumeGroupSnapshotName
      ? { volumeGroupSnapshotName: source.volumeGroupSnapshotName }
      : {}),
    snapshots,
    pvcs: names.pvcs,
    sourcePvcs: source.sources.map((s) => s.pvc),
    job: names.job,
  };
  plan.status.verification = verification;
  plan.recordFirst = true;
  plan.create = scratchObjects(observed, verification, source.sources, []);
  plan.events.push({
    type: 'Normal',
    reason: BackupPolicyReason.VerificationStarted,
    message: `${trigger}: restoring ${describeSource(verification)} into ${names.pvcs.join(', ')} and checking it in Job ${names.job}`,
  });
  plan.requeueAfterMs = DRILL_POLL_MS;
  return plan;
}

function describeSource(v: Pick<Verification, 'snapshotName' | 'volumeGroupSnapshotName'>) {
  return v.volumeGroupSnapshotName
    ? `VolumeGroupSnapshot ${v.volumeGroupSnapshotName}`
    : `VolumeSnapshot ${v.snapshotName}`;
}

/** The newest ready snapshot (Volume) or ready group with its members (Group). */
function drillSource(observed: VerifyObservation): DrillSource | undefined {
  if (observed.spec.consistency === 'Group') return groupSource(observed);
  const newest = newestReady(observed.snapshots);
  const source = newest && scratchSource(observed, newest);
  return source ? { snapshotName: newest.metadata.name!, sources: [source] } : undefined;
}

function groupSource(observed: VerifyObservation): DrillSource | undefined {
  const groups = observed.groupSnapshots;
  const newest = groups && newestReady(groups.groups);
  if (!groups || !newest) return undefined;
  const members = groups.members(newest.metadata.name!).filter(isReady);
  const sources = members.map((m) => scratchSource(observed, m));
  if (sources.length === 0 || sources.some((s) => s === undefined)) return undefined;
  return { volumeGroupSnapshotName: newest.metadata.name!, sources: sources as ScratchSource[] };
}

function newestReady<T extends VolumeSnapshot | GroupLike>(items: readonly T[]): T | undefined {
  return items
    .filter((s) => isReady(s) && !isDeleting(s))
    .sort((a, b) => snapshotTime(b).getTime() - snapshotTime(a).getTime())[0];
}
type GroupLike = GroupObservation['groups'][number];

/** Size and class of a scratch PVC: the restore size (else the source's), verify's class or the source's. */
function scratchSource(
  { pvcs, spec }: VerifyObservation,
  snapshot: VolumeSnapshot,
): ScratchSource | undefined {
  const pvc = snapshot.spec?.source?.persistentVolumeClaimName;
  if (!pvc) return undefined;
  const sourcePvc = pvcs.find((p) => p.metadata.name === pvc);
  const size = snapshot.status?.restoreSize ?? sourcePvc?.spec?.resources?.requests?.storage;
  if (!size) return undefined;
  const storageClassName =
    spec.verify?.storageClassName ?? sourcePvc?.spec?.storageClassName ?? undefined;
  return {
    snapshot: snapshot.metadata.name!,
    pvc,
    size: String(size),
    ...(storageClassName ? { storageClassName } : {}),
  };
}

/** The scratch objects of the drill that are missing (all, when `existing` is empty). */
function scratchObjects(
  observed: VerifyObservation,
  verification: Verification,
  sources: readonly ScratchSource[],
  existing: readonly string[],
  jobExists = false,
): VerifyPlan['create'] {
  const { policy, now, image, spec } = observed;
  const pvcs = verification.pvcs
    .map((name, i) => ({ name, source: sources[i] }))
    .filter(({ name, source }) => source && !existing.includes(name))
    .map(({ name, source }) => scratchPvc(policy, name, source!));
  if (jobExists || !image) return { pvcs };
  const timeout = spec.verify?.timeoutSeconds ?? 600;
  const elapsed = (now.getTime() - Date.parse(verification.startTime)) / 1000;
  const job = drillJob({
    policy,
    verification,
    image,
    activeDeadlineSeconds: Math.max(1, Math.ceil(timeout - elapsed)),
    ...(spec.verify?.command ? { command: spec.verify.command } : {}),
  });
  return { pvcs, job };
}

/** A drill without a result: read it, or make sure its objects exist. */
function followDrill(
  observed: VerifyObservation,
  status: VerifyStatus,
  running: Verification,
): VerifyPlan {
  const { now, spec } = observed;
  const drill = observed.drill ?? { pods: [], events: [], pvcs: [] };
  const timeout = spec.verify?.timeoutSeconds ?? 600;
  const deadline = Date.parse(running.startTime) + (timeout + DRILL_GRACE_SECONDS) * 1000;
  const outcome =
    disabledOutcome(observed) ??
    drillOutcome(drill, timeout) ??
    (now.getTime() >= deadline ? timedOut(timeout) : undefined);
  const plan = idle(status);
  if (outcome) {
    status.verification = { ...running, ...outcome };
    plan.recordFirst = true;
    plan.delete = leftovers(running, drill);
    plan.requeueAfterMs = 1000;
    return plan;
  }
  const sources = running.snapshots.map((snapshot, i) =>
    recordedSource(observed, snapshot, running.sourcePvcs[i]!),
  );
  if (sources.some((s) => s === undefined) && drill.pvcs.length < running.pvcs.length) {
    status.verification = {
      ...running,
      result: 'Failed',
      reason: BackupPolicyReason.VerificationFailed,
      message: `a snapshot of the drill is gone before its scratch PVC was created: ${running.snapshots.join(', ')}`,
    };
    plan.recordFirst = true;
    plan.delete = leftovers(running, drill);
    return plan;
  }
  plan.create = scratchObjects(
    observed,
    running,
    sources as ScratchSource[],
    drill.pvcs,
    drill.job !== undefined,
  );
  plan.requeueAfterMs = Math.max(0, Math.min(DRILL_POLL_MS, deadline - now.getTime()));
  return plan;
}

function disabledOutcome({ image }: VerifyObservation): DrillOutcome | undefined {
  return image
    ? undefined
    : {
        result: 'Failed',
        reason: BackupPolicyReason.VerifyDisabled,
        message: 'restore drills were disabled in this installation while the drill ran',
      };
}

/** The source of a drill's scratch PVC, from the snapshot it recorded. */
function recordedSource(
  observed: VerifyObservation,
  name: string,
  pvc: string,
): ScratchSource | undefined {
  const all = [
    ...observed.snapshots,
    ...(observed.groupSnapshots?.groups ?? []).flatMap((g) =>
      observed.groupSnapshots!.members(g.metadata.name!),
    ),
  ];
  const snapshot = all.find((s) => s.metadata.name === name);
  const source = snapshot && scratchSource(observed, snapshot);
  return source && source.pvc === pvc ? source : undefined;
}

/** The drill's own objects that still exist (named in status.verification, observed by label). */
function leftovers(running: Verification, drill: DrillObjects): VerifyPlan['delete'] {
  return {
    pvcs: running.pvcs.filter((name) => drill.pvcs.includes(name)),
    ...(drill.job ? { job: running.job } : {}),
  };
}

/** A drill with its result: delete what is left, and once nothing is, record the result. */
function cleanUp(
  observed: VerifyObservation,
  status: VerifyStatus,
  running: Verification,
): VerifyPlan {
  const plan = idle(status);
  const left = leftovers(running, observed.drill ?? { pods: [], events: [], pvcs: [] });
  if (left.pvcs.length > 0 || left.job) {
    plan.delete = left;
    plan.requeueAfterMs = 1000;
    return plan;
  }
  delete status.verification;
  return finish(plan, observed.now, running, {
    result: running.result!,
    reason: (running.reason as BackupPolicyReason | undefined) ?? resultReason(running.result!),
    message: running.message ?? '',
  });
}

function resultReason(result: 'Succeeded' | 'Failed'): BackupPolicyReason {
  return result === 'Succeeded'
    ? BackupPolicyReason.VerificationSucceeded
    : BackupPolicyReason.VerificationFailed;
}

/** The drill is over: status.lastVerification, its Event, the metrics. */
function finish(
  plan: VerifyPlan,
  now: Date,
  running: Verification | undefined,
  outcome: DrillOutcome,
): VerifyPlan {
  const last: LastVerification = {
    time: rfc3339(now),
    ...(running?.snapshotName ? { snapshotName: running.snapshotName } : {}),
    ...(running?.volumeGroupSnapshotName
      ? { volumeGroupSnapshotName: running.volumeGroupSnapshotName }
      : {}),
    result: outcome.result,
    reason: outcome.reason,
    message: outcome.message,
  };
  plan.status.lastVerification = last;
  plan.recordFirst = true;
  if (outcome.result === 'Succeeded') plan.status.lastSuccessfulVerificationTime = last.time;
  plan.finished = last;
  const subject = running ? `${running.trigger}: ${describeSource(running)}: ` : '';
  plan.events.push({
    type: outcome.result === 'Succeeded' ? 'Normal' : 'Warning',
    reason: resultReason(outcome.result),
    message: `${subject}${outcome.message}${outcome.reason === resultReason(outcome.result) ? '' : ` (${outcome.reason})`}`,
  });
  return plan;
}

/** The status with the drill fields of the plan in place of those it had. */
export function withVerifyStatus(
  status: BackupPolicyStatus,
  fields: VerifyStatus,
): BackupPolicyStatus {
  const next: BackupPolicyStatus = { ...status };
  for (const key of VERIFY_STATUS_KEYS) delete next[key];
  return { ...next, ...fields };
}

/** The snapshots a running drill restores from: retention must not delete them. */
export function snapshotsInDrill(status: BackupPolicyStatus | undefined): Set<string> {
  return new Set(status?.verification?.snapshots ?? []);
}

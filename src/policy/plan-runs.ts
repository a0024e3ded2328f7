/**
 * The runs a BackupPolicy takes now: the scheduled and run-now runs due, skipped under
 * concurrencyPolicy Forbid or held for the post hooks of the run before, the snapshots they
 * still lack, and the status that records them: a step of planBackupPolicy (backup-policy.ts).
 */
import type {
  BackupPolicy,
  BackupPolicySpec,
  BackupPolicyStatus,
  VolumeSnapshot,
} from '../api/index.js';
import {
  ANNOTATION_POLICY_NAME,
  ANNOTATION_PVC_NAME,
  ANNOTATION_RUN_NOW,
  ANNOTATION_RUN_NOW_TOKEN,
  ANNOTATION_RUN_TIME,
  CONDITION_DEGRADED,
  LABEL_POLICY,
  LABEL_PVC,
  MAX_RUN_NOW_TOKEN_LENGTH,
  SNAPSHOT_API_VERSION,
  VOLUME_SNAPSHOT_KIND,
} from '../api/index.js';
import { rfc3339 } from '../kube/index.js';
import type { BackupPolicyObservation, PolicyEvent, ResolvedPolicy } from './backup-policy.js';
import { postHooksDue } from './hooks.js';
import { summariseProblems } from './messages.js';
import { labelValue, snapshotName, type RunIdentity } from './naming.js';
import {
  hasFailed,
  isDeleting,
  isReady,
  snapshotTime,
  time,
  type SnapshotLike,
} from './objects.js';
import type { Problem, PvcPlan } from './plan-pvcs.js';
import { BackupPolicyReason } from './reasons.js';
import type { SchedulePlan } from './schedule.js';

/** The runs due now and what they create, once concurrencyPolicy and the hooks have had a say. */
export interface PlannedRuns {
  due: DueRuns;
  /** The runs taken now: none while they wait for the post hooks of the run before. */
  runs: Run[];
  /** The selected PVCs that can be snapshotted. */
  runnable: PvcPlan[];
  /** Snapshots not ready yet, within their readyDeadlineSeconds. */
  inProgress: VolumeSnapshot[];
  hookHold: HookHold;
  /** The scheduled run was skipped (concurrencyPolicy Forbid). */
  skipped: boolean;
  create: VolumeSnapshot[];
  events: PolicyEvent[];
}

/** Find the runs due, skip or hold them (concurrencyPolicy, hooks), and create what they lack. */
export function planRuns(
  observed: BackupPolicyObservation,
  resolved: ResolvedPolicy,
  pvcPlans: readonly PvcPlan[],
  schedule: SchedulePlan,
): PlannedRuns {
  const { policy } = observed;
  const { spec } = resolved;
  const runnable = pvcPlans.filter((p) => !p.problem);
  const due = dueRuns(observed, schedule);
  const inProgress = snapshotsInProgress(observed, spec);
  const forbid = skipForbiddenRun(policy, spec, due.runs, runnable, inProgress);
  const hookHold = holdForPostHooks(observed, resolved, forbid.runs, runnable);
  const runs = hookHold.held ? [] : forbid.runs;
  const started = startRuns(policy, runs, runnable, pvcPlans.length, observed.snapshots);
  return {
    due,
    runs,
    runnable,
    inProgress,
    hookHold,
    skipped: forbid.skipped,
    create: started.create,
    events: [...due.events, ...forbid.events, ...started.events],
  };
}

export interface Run {
  identity: RunIdentity;
  time: Date;
}

export function runLabel(run: Run): string {
  return run.identity.kind === 'scheduled'
    ? `scheduled run ${rfc3339(run.time)}`
    : `run-now "${run.identity.token}"`;
}

/** The runs due now, the scheduled one first, and what the schedule and run-now request say. */
export interface DueRuns {
  schedule: SchedulePlan;
  runs: Run[];
  /** A run-now request taken now, to record once it runs. */
  runNow?: { token: string; sequence: number };
  problems: Problem[];
  events: PolicyEvent[];
}

/** The schedule's due run, if any, then the run-now run requested, if any. */
export function dueRuns(observed: BackupPolicyObservation, schedule: SchedulePlan): DueRuns {
  const runs: Run[] = schedule.run
    ? [{ identity: { kind: 'scheduled', scheduledTime: schedule.run }, time: schedule.run }]
    : [];
  const request = runNowRequest(observed.policy);
  if (request.runNow) {
    const { token, sequence } = request.runNow;
    runs.push({ identity: { kind: 'run-now', token, sequence }, time: observed.now });
  }
  return { schedule, runs, ...request };
}

/** The run-now annotation: a new value is one other than the last acted on, even one used before. */
function runNowRequest(policy: BackupPolicy): Pick<DueRuns, 'runNow' | 'problems' | 'events'> {
  const token = policy.metadata.annotations?.[ANNOTATION_RUN_NOW];
  const isNew = token !== undefined && token !== '' && token !== policy.status?.lastRunNowToken;
  if (!isNew) return { problems: [], events: [] };
  if (token.length <= MAX_RUN_NOW_TOKEN_LENGTH) {
    const sequence = (policy.status?.runNowCount ?? 0) + 1;
    return { runNow: { token, sequence }, problems: [], events: [] };
  }
  const message = `annotation ${ANNOTATION_RUN_NOW} is ${token.length} characters long, at most ${MAX_RUN_NOW_TOKEN_LENGTH} are allowed: no run-now run is taken; set a shorter value, such as a timestamp`;
  // Listed first in the Degraded message, so that message shows whether this was reported.
  const before = policy.status?.conditions?.find((c) => c.type === CONDITION_DEGRADED);
  const reported =
    before?.reason === BackupPolicyReason.InvalidRunNowToken && before.message.includes(message);
  return {
    problems: [{ reason: BackupPolicyReason.InvalidRunNowToken, message }],
    events: reported
      ? []
      : [{ type: 'Warning', reason: BackupPolicyReason.InvalidRunNowToken, message }],
  };
}

/** Forbid: a scheduled run waits for no one; it is skipped while an earlier one is unfinished. */
function skipForbiddenRun(
  policy: BackupPolicy,
  spec: BackupPolicySpec,
  runs: readonly Run[],
  runnable: readonly PvcPlan[],
  inProgress: readonly VolumeSnapshot[],
): { runs: Run[]; skipped: boolean; events: PolicyEvent[] } {
  const scheduled = runs[0]?.identity.kind === 'scheduled' ? runs[0] : undefined;
  if (!scheduled || spec.concurrencyPolicy !== 'Forbid') {
    return { runs: [...runs], skipped: false, events: [] };
  }
  // A retry of this very run (its snapshots made, its status not yet written) goes on.
  const policyName = policy.metadata.name!;
  const ownNames = new Set(
    runnable.map((pvc) => snapshotName(policyName, pvc.name, scheduled.identity)),
  );
  const earlier = inProgress.filter((s) => !ownNames.has(s.metadata.name!));
  if (earlier.length === 0) return { runs: [...runs], skipped: false, events: [] };
  const names = earlier.map((s) => s.metadata.name!).sort();
  const message = `scheduled run ${rfc3339(scheduled.time)} skipped (concurrencyPolicy Forbid): ${names.length} snapshot(s) of an earlier run are not ready yet: ${summariseProblems(names, `each becomes ready or times out after readyDeadlineSeconds ${spec.readyDeadlineSeconds}`)}`;
  return {
    runs: runs.slice(1),
    skipped: true,
    events: [{ type: 'Warning', reason: BackupPolicyReason.RunSkipped, message }],
  };
}

/** Whether the post hooks of the run in status.hookRun are due, and whether they hold new runs. */
export interface HookHold {
  postDue: boolean;
  held: boolean;
}

/**
 * A new run's pre hooks wait for the post hooks of the one before (its snapshots still being
 * cut): the run stays due, nothing of it is recorded, and it is taken once they have run. A
 * restart in the middle of the recorded run itself is no such wait: its pre hooks run again
 * before the snapshots still to be created.
 */
function holdForPostHooks(
  observed: BackupPolicyObservation,
  resolved: ResolvedPolicy,
  runs: readonly Run[],
  runnable: readonly PvcPlan[],
): HookHold {
  if (!resolved.hooked) return { postDue: false, held: false };
  const { policy, now, snapshots } = observed;
  const readyDeadlineMs = resolved.spec.readyDeadlineSeconds * 1000;
  const hookRun = policy.status?.hookRun;
  const postDue = postHooksDue(hookRun, snapshots, (s) => timedOut(s, readyDeadlineMs, now));
  const existingNames = new Set(snapshots.map((s) => s.metadata.name));
  const held =
    !postDue &&
    hookRun?.state === 'PreHooksDone' &&
    hookRun.run !== runs.map(runLabel).join(', ') &&
    runs.some((run) =>
      runnable.some(
        (pvc) => !existingNames.has(snapshotName(policy.metadata.name!, pvc.name, run.identity)),
      ),
    );
  return { postDue, held };
}

/** The snapshots of each run still to create, and an Event per run. */
function startRuns(
  policy: BackupPolicy,
  runs: readonly Run[],
  runnable: readonly PvcPlan[],
  selected: number,
  snapshots: readonly VolumeSnapshot[],
): { create: VolumeSnapshot[]; events: PolicyEvent[] } {
  const existingNames = new Set(snapshots.map((s) => s.metadata.name));
  const skipped = selected - runnable.length;
  const create: VolumeSnapshot[] = [];
  const events: PolicyEvent[] = [];
  for (const run of runs) {
    const made = runnable.map((pvc) => buildSnapshot(policy, pvc, run.identity, run.time));
    create.push(...made.filter((s) => !existingNames.has(s.metadata.name)));
    const names = made.map((s) => s.metadata.name!);
    const label = runLabel(run);
    events.push(
      names.length > 0
        ? {
            type: 'Normal',
            reason: BackupPolicyReason.RunStarted,
            message: `${label}: snapshotting ${names.length} PVC(s): ${names.join(', ')}${skipped ? `; ${skipped} PVC(s) skipped (see status.pvcs)` : ''}`,
          }
        : {
            type: 'Warning',
            reason: BackupPolicyReason.NothingToSnapshot,
            message: `${label}: no selected PVC can be snapshotted (see status.pvcs)`,
          },
    );
  }
  return { create, events };
}

function buildSnapshot(
  policy: BackupPolicy,
  pvc: PvcPlan,
  run: RunIdentity,
  runTime: Date,
): VolumeSnapshot {
  const policyName = policy.metadata.name!;
  const annotations: Record<string, string> = {
    [ANNOTATION_RUN_TIME]: rfc3339(runTime),
    [ANNOTATION_PVC_NAME]: pvc.name,
    [ANNOTATION_POLICY_NAME]: policyName,
  };
  if (run.kind === 'run-now') annotations[ANNOTATION_RUN_NOW_TOKEN] = run.token;
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: VOLUME_SNAPSHOT_KIND,
    metadata: {
      name: snapshotName(policyName, pvc.name, run),
      namespace: policy.metadata.namespace!,
      labels: { [LABEL_POLICY]: labelValue(policyName), [LABEL_PVC]: labelValue(pvc.name) },
      annotations,
    },
    spec: {
      source: { persistentVolumeClaimName: pvc.name },
      ...(pvc.className ? { volumeSnapshotClassName: pvc.className } : {}),
    },
  };
}

/** The status with the runs handled now recorded (none while they wait for post hooks). */
export function recordSchedule(
  previous: BackupPolicyStatus,
  spec: BackupPolicySpec,
  due: DueRuns,
  skipped: boolean,
  held: boolean,
): { status: BackupPolicyStatus; events: PolicyEvent[] } {
  const status = { ...previous };
  const { schedule } = due;
  const events: PolicyEvent[] = [];
  if (skipped) status.skippedRuns = (status.skippedRuns ?? 0) + 1;
  if (schedule.handledThrough && !held) status.lastScheduleTime = rfc3339(schedule.handledThrough);
  if (due.runNow && !held) {
    status.lastRunNowToken = due.runNow.token;
    status.runNowCount = due.runNow.sequence;
  }
  if (schedule.missed > 0 && !held) {
    status.missedRuns = (status.missedRuns ?? 0) + schedule.missed;
    const deadline =
      spec.startingDeadlineSeconds !== undefined
        ? `startingDeadlineSeconds is ${spec.startingDeadlineSeconds}`
        : 'only the most recent run is made up';
    events.push({
      type: 'Warning',
      reason: BackupPolicyReason.MissedRuns,
      message: `${schedule.missedCountIsLowerBound ? 'at least ' : ''}${schedule.missed} scheduled run(s) missed, the latest at ${rfc3339(schedule.lastMissed!)} (${deadline})`,
    });
  }
  if (schedule.nextScheduleTime) status.nextScheduleTime = rfc3339(schedule.nextScheduleTime);
  else delete status.nextScheduleTime;
  return { status, events };
}

/** Snapshots neither ready, failed nor past their readyDeadlineSeconds. */
function snapshotsInProgress(
  observed: BackupPolicyObservation,
  spec: BackupPolicySpec,
): VolumeSnapshot[] {
  const readyDeadlineMs = spec.readyDeadlineSeconds * 1000;
  return observed.snapshots.filter(
    (s) =>
      !isDeleting(s) && !isReady(s) && !hasFailed(s) && !timedOut(s, readyDeadlineMs, observed.now),
  );
}

/** When a snapshot object was created: the start of its readyDeadlineSeconds. */
export function createdAt(snapshot: SnapshotLike): Date {
  return time(snapshot.metadata.creationTimestamp) ?? snapshotTime(snapshot);
}

/** Not ready (or failed) within the deadline: reported as failed from then on. */
export function timedOut(snapshot: SnapshotLike, deadlineMs: number, now: Date): boolean {
  return !isReady(snapshot) && now.getTime() - createdAt(snapshot).getTime() > deadlineMs;
}

/**
 * What a BackupPolicy wants done, from what is observed: a pure function the reconciler wraps.
 *
 * Given the policy, the PVCs, volumes, snapshot classes, the policy's snapshots, restores in
 * progress and the time, it decides which VolumeSnapshots to create for the run due now (if
 * any), which to prune, the owned VolumeSnapshotClass, the status to write and the Events to
 * record. Bad input ends as a condition and an Event: nothing is created and nothing deleted
 * for a problem that concerns the whole policy, and only the affected PVC is skipped for a
 * problem that concerns one PVC.
 */
import { z } from 'zod';
import type {
  BackupPolicy,
  BackupPolicySpec,
  Hooks,
  BackupPolicyStatus,
  Condition,
  PvcBackupStatus,
  RestoreJob,
  VolumeSnapshot,
  VolumeSnapshotClass,
} from '../api/index.js';
import {
  ANN_IS_DEFAULT_CLASS,
  ANNOTATION_POLICY_NAME,
  ANNOTATION_PVC_NAME,
  ANNOTATION_RUN_NOW,
  ANNOTATION_RUN_NOW_TOKEN,
  ANNOTATION_RUN_TIME,
  BackupPolicySpecSchema,
  CONDITION_DEGRADED,
  CONDITION_READY,
  LABEL_POLICY,
  LABEL_POLICY_NAMESPACE,
  LABEL_PVC,
  MAX_RUN_NOW_TOKEN_LENGTH,
  MAX_STATUS_PVCS,
  PARAM_FORCE_DELETE,
  SNAPSHOT_API_VERSION,
  VOLUME_SNAPSHOT_CLASS_KIND,
  VOLUME_SNAPSHOT_KIND,
} from '../api/index.js';
import { labelSelectorMatches, rfc3339, setCondition } from '../kube/index.js';
import { CronError } from './cron.js';
import { labelValue, ownedSnapshotClassName, snapshotName, type RunIdentity } from './naming.js';
import type { Pv, Pvc } from './objects.js';
import {
  hasFailed,
  isDeleting,
  isHeldForRestore,
  isReady,
  snapshotTime,
  snapshotsInUse,
  time,
} from './objects.js';
import type { RetentionRules } from './retention.js';
import { parseDuration, planRetention } from './retention.js';
import { capMessage, summariseProblems } from './messages.js';
import { compileSchedule, planSchedule, resolvedTimeZone } from './schedule.js';
import { TimeZoneError } from './timezone.js';
import { REASON_HOOKS_DISABLED, hasHooks, hookRunProblem, postHooksDue } from './hooks.js';

/** Condition type recording suspension; its transition back to False marks the resume time. */
export const CONDITION_SUSPENDED = 'Suspended';
export const REASON_RESUMED = 'Resumed';
export const REASON_INVALID_RUN_NOW_TOKEN = 'InvalidRunNowToken';

export interface BackupPolicyObservation {
  policy: BackupPolicy;
  /** PVCs of the policy's namespace. */
  pvcs: readonly Pvc[];
  /** PersistentVolumes by name. */
  volume(name: string): Pv | undefined;
  /** Every VolumeSnapshotClass of the cluster. */
  snapshotClasses: readonly VolumeSnapshotClass[];
  /** The VolumeSnapshots carrying this policy's label, in its namespace. */
  snapshots: readonly VolumeSnapshot[];
  /** RestoreJobs of the namespace. */
  restoreJobs: readonly RestoreJob[];
  /** Other namespaces holding a PVC of this name (for a clearer message when one is missing). */
  namespacesWithPvc(name: string): string[];
  now: Date;
  /** Whether this installation may exec into pods (the controller's --hooks flag). */
  hooksEnabled?: boolean;
}

export interface PlannedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface PlannedPrune {
  name: string;
  pvc: string;
  /** Why the rules no longer keep it, in words. */
  message: string;
}

export interface BackupPolicyPlan {
  /** The owned VolumeSnapshotClass to create or bring in sync. */
  ownedClass?: VolumeSnapshotClass;
  create: VolumeSnapshot[];
  prune: PlannedPrune[];
  /** The complete status once `create` has succeeded. */
  status: BackupPolicyStatus;
  /** Events to record once `create` has succeeded. */
  events: PlannedEvent[];
  /** Check back after this long (the next scheduled time). */
  requeueAfterMs?: number;
  /** Set when a problem stops the whole policy: then nothing at all may be deleted. */
  blockedBy?: string;
  /** The hooks of the spec, with defaults, when it has any. */
  hooks?: Hooks;
  /**
   * Run the pre hooks, then record the run in status.hookRun, before creating `create`. Set
   * whenever the policy has hooks and `create` is not empty.
   */
  preHooks?: PlannedHookRun;
  /** The post hooks of the run recorded in status.hookRun are due: every snapshot is cut. */
  postHooks?: PlannedHookRun;
}

export interface PlannedHookRun {
  /** The run, in words: its scheduled time or its run-now token. */
  run: string;
  /** The PVCs of the run; hooks run in the Running pods that mount them. */
  pvcs: string[];
  /** The snapshots of the run (for pre hooks: those it makes or made). */
  snapshots: string[];
}

/** A problem that stops the whole policy; reported as Ready=False with this reason. */
class PolicyProblem extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

interface PvcPlan {
  name: string;
  pvc?: Pvc;
  /** Why this PVC is not snapshotted, with the condition reason. */
  problem?: { reason: string; message: string };
  /** The class its snapshots use; undefined means the driver's default class. */
  className?: string;
}

function describeRules(rules: RetentionRules): string {
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

/** The spec with defaults applied, or a PolicyProblem naming what is wrong. */
export function validatePolicySpec(policy: BackupPolicy): BackupPolicySpec {
  const parsed = BackupPolicySpecSchema.safeParse(policy.spec);
  if (!parsed.success) {
    throw new PolicyProblem('InvalidSpec', `spec is invalid: ${z.prettifyError(parsed.error)}`);
  }
  const spec = parsed.data;
  try {
    compileSchedule(spec.schedule, spec.timeZone);
  } catch (error) {
    if (error instanceof CronError) throw new PolicyProblem('InvalidSchedule', error.message);
    if (error instanceof TimeZoneError) throw new PolicyProblem('InvalidTimeZone', error.message);
    throw error;
  }
  return spec;
}

/** The VolumeSnapshotClass a template describes. */
export function desiredOwnedClass(
  policy: BackupPolicy,
  spec: BackupPolicySpec,
): VolumeSnapshotClass | undefined {
  const template = spec.snapshotClass?.template;
  if (!template) return undefined;
  const namespace = policy.metadata.namespace!;
  const name = policy.metadata.name!;
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: VOLUME_SNAPSHOT_CLASS_KIND,
    metadata: {
      name: ownedSnapshotClassName(namespace, name),
      labels: { [LABEL_POLICY]: labelValue(name), [LABEL_POLICY_NAMESPACE]: namespace },
      annotations: { [ANNOTATION_POLICY_NAME]: `${namespace}/${name}` },
    },
    driver: template.driver,
    deletionPolicy: template.deletionPolicy,
    parameters: {
      ...template.parameters,
      [PARAM_FORCE_DELETE]: template.forceDelete ? 'true' : 'false',
    },
  };
}

/** Whether a class carries the labels of the policy that owns it. */
export function isOwnedBy(cls: VolumeSnapshotClass, namespace: string, policy: string): boolean {
  const labels = cls.metadata.labels ?? {};
  return (
    labels[LABEL_POLICY] === labelValue(policy) && labels[LABEL_POLICY_NAMESPACE] === namespace
  );
}

function pvcDriver(pvc: Pvc, observed: BackupPolicyObservation): string | undefined {
  const volumeName = pvc.spec?.volumeName;
  return volumeName ? observed.volume(volumeName)?.spec?.csi?.driver : undefined;
}

function selectPvcs(
  spec: BackupPolicySpec,
  observed: BackupPolicyObservation,
): Array<{ name: string; pvc?: Pvc }> {
  const live = observed.pvcs.filter((p) => !isDeleting(p));
  if (spec.pvcNames) {
    return spec.pvcNames.map((name) => {
      const pvc = live.find((p) => p.metadata.name === name);
      return pvc ? { name, pvc } : { name };
    });
  }
  const selector = spec.selector ?? {};
  return live
    .filter((p) => labelSelectorMatches(selector, p.metadata.labels ?? {}))
    .map((pvc) => ({ name: pvc.metadata.name!, pvc }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function planPvc(
  entry: { name: string; pvc?: Pvc },
  spec: BackupPolicySpec,
  ownedClass: VolumeSnapshotClass | undefined,
  observed: BackupPolicyObservation,
): PvcPlan {
  const namespace = observed.policy.metadata.namespace!;
  const { name, pvc } = entry;
  if (!pvc) {
    const elsewhere = observed.namespacesWithPvc(name).filter((ns) => ns !== namespace);
    const hint = elsewhere.length
      ? ` (a PVC of that name exists in namespace ${elsewhere.join(', ')}; a policy only backs up PVCs of its own namespace)`
      : '';
    return {
      name,
      problem: {
        reason: 'PVCNotFound',
        message: `PVC ${name} not found in namespace ${namespace}${hint}`,
      },
    };
  }
  if (pvc.status?.phase !== 'Bound') {
    return {
      name,
      pvc,
      problem: {
        reason: 'PVCNotBound',
        message: `PVC ${name} is ${pvc.status?.phase ?? 'Pending'}, not Bound; it is snapshotted once Bound`,
      },
    };
  }
  const driver = pvcDriver(pvc, observed);
  const volume = pvc.spec?.volumeName ? observed.volume(pvc.spec.volumeName) : undefined;
  if (volume && !volume.spec?.csi) {
    return {
      name,
      pvc,
      problem: {
        reason: 'VolumeNotCSI',
        message: `PVC ${name} is bound to ${volume.metadata.name}, which is not a CSI volume; only CSI volumes can be snapshotted`,
      },
    };
  }
  const classRef = spec.snapshotClass;
  if (classRef?.name !== undefined) {
    const cls = observed.snapshotClasses.find((c) => c.metadata.name === classRef.name)!;
    if (driver && cls.driver !== driver) {
      return {
        name,
        pvc,
        problem: {
          reason: 'DriverMismatch',
          message: `VolumeSnapshotClass ${cls.metadata.name} is for driver ${cls.driver}, but PVC ${name} uses ${driver}`,
        },
      };
    }
    return { name, pvc, className: classRef.name };
  }
  if (ownedClass) {
    if (driver && ownedClass.driver !== driver) {
      return {
        name,
        pvc,
        problem: {
          reason: 'DriverMismatch',
          message: `snapshotClass.template.driver is ${ownedClass.driver}, but PVC ${name} uses ${driver}`,
        },
      };
    }
    return { name, pvc, className: ownedClass.metadata.name! };
  }
  if (driver) {
    const defaults = observed.snapshotClasses.filter(
      (c) => c.driver === driver && c.metadata.annotations?.[ANN_IS_DEFAULT_CLASS] === 'true',
    );
    if (defaults.length !== 1) {
      return {
        name,
        pvc,
        problem: {
          reason: 'NoDefaultSnapshotClass',
          message:
            defaults.length === 0
              ? `no VolumeSnapshotClass for driver ${driver} is marked default; set spec.snapshotClass`
              : `${defaults.length} VolumeSnapshotClasses for driver ${driver} are marked default (${defaults.map((c) => c.metadata.name).join(', ')}); set spec.snapshotClass`,
        },
      };
    }
  }
  return { name, pvc };
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

function resumedAt(conditions: readonly Condition[] | undefined): Date | undefined {
  const c = conditions?.find((x) => x.type === CONDITION_SUSPENDED);
  return c && c.status === 'False' && c.reason === REASON_RESUMED
    ? time(c.lastTransitionTime)
    : undefined;
}

function latest(...dates: Array<Date | undefined>): Date | undefined {
  let best: Date | undefined;
  for (const d of dates) if (d && (!best || d.getTime() > best.getTime())) best = d;
  return best;
}

export function planBackupPolicy(observed: BackupPolicyObservation): BackupPolicyPlan {
  const { policy, now } = observed;
  const status: BackupPolicyStatus = structuredClone(policy.status ?? {});
  const generation = policy.metadata.generation;
  const conditionBase = generation !== undefined ? { observedGeneration: generation } : {};
  const events: PlannedEvent[] = [];
  const previousConditions = policy.status?.conditions;
  const setCond = (type: string, value: 'True' | 'False', reason: string, message: string) => {
    status.conditions = setCondition(
      status.conditions,
      { type, status: value, reason, message: capMessage(message), ...conditionBase },
      now,
    );
  };
  /** Events about lasting problems are recorded when the condition changes, not every resync. */
  const changed = (type: string, value: string, reason: string, message: string) => {
    const before = previousConditions?.find((c) => c.type === type);
    return (
      !before ||
      before.status !== value ||
      before.reason !== reason ||
      before.message !== capMessage(message)
    );
  };
  if (generation !== undefined) status.observedGeneration = generation;

  let spec: BackupPolicySpec;
  try {
    spec = validatePolicySpec(policy);
  } catch (error) {
    if (!(error instanceof PolicyProblem)) throw error;
    return policyProblemPlan(error);
  }

  function policyProblemPlan(problem: PolicyProblem): BackupPolicyPlan {
    if (changed(CONDITION_READY, 'False', problem.reason, problem.message)) {
      events.push({ type: 'Warning', reason: problem.reason, message: problem.message });
    }
    setCond(CONDITION_READY, 'False', problem.reason, problem.message);
    setCond(
      CONDITION_DEGRADED,
      'True',
      problem.reason,
      'no snapshot is taken or pruned until this is fixed',
    );
    delete status.nextScheduleTime;
    return { create: [], prune: [], status, events: capEvents(events), blockedBy: problem.reason };
  }

  const namespace = policy.metadata.namespace!;
  const policyName = policy.metadata.name!;
  const zone = resolvedTimeZone(spec.timeZone);
  const hooked = hasHooks(spec.hooks);
  if (hooked && !observed.hooksEnabled) {
    return policyProblemPlan(
      new PolicyProblem(
        REASON_HOOKS_DISABLED,
        'spec.hooks is set, but hooks are disabled in this installation (the controller runs without --hooks=true; with the Helm chart, set hooks.enabled=true, which also grants pods/exec): no snapshot is taken until hooks are enabled or spec.hooks is removed',
      ),
    );
  }

  // The class: an existing one by name, or ours from the template.
  let ownedClass: VolumeSnapshotClass | undefined;
  if (spec.snapshotClass?.name !== undefined) {
    const name = spec.snapshotClass.name;
    if (!observed.snapshotClasses.some((c) => c.metadata.name === name)) {
      return policyProblemPlan(
        new PolicyProblem(
          'SnapshotClassNotFound',
          `VolumeSnapshotClass ${name} not found; create it or fix spec.snapshotClass.name`,
        ),
      );
    }
  } else {
    ownedClass = desiredOwnedClass(policy, spec);
    const existing =
      ownedClass &&
      observed.snapshotClasses.find((c) => c.metadata.name === ownedClass!.metadata.name);
    if (existing && !isOwnedBy(existing, namespace, policyName)) {
      return policyProblemPlan(
        new PolicyProblem(
          'SnapshotClassConflict',
          `VolumeSnapshotClass ${existing.metadata.name} exists but was not created for this policy; snapback will not change it`,
        ),
      );
    }
  }

  const pvcPlans = selectPvcs(spec, observed).map((entry) =>
    planPvc(entry, spec, ownedClass, observed),
  );
  const runnable = pvcPlans.filter((p) => !p.problem);

  // Runs due now: the scheduled one and an on-demand one. Scheduled times that fell inside a
  // suspension are neither run nor counted as missed once it ends.
  const wasSuspended =
    previousConditions?.find((c) => c.type === CONDITION_SUSPENDED)?.status === 'True';
  const resumeTime = !spec.suspend && wasSuspended ? now : resumedAt(previousConditions);
  const schedulePlan = planSchedule({
    schedule: spec.schedule,
    timeZone: zone,
    suspend: spec.suspend,
    creationTime: time(policy.metadata.creationTimestamp) ?? now,
    now,
    ...(spec.startingDeadlineSeconds !== undefined
      ? { startingDeadlineSeconds: spec.startingDeadlineSeconds }
      : {}),
    ...optional('lastHandledTime', latest(time(status.lastScheduleTime), resumeTime)),
  });
  const runs: Array<{ identity: RunIdentity; time: Date }> = [];
  if (schedulePlan.run)
    runs.push({
      identity: { kind: 'scheduled', scheduledTime: schedulePlan.run },
      time: schedulePlan.run,
    });
  const token = policy.metadata.annotations?.[ANNOTATION_RUN_NOW];
  const degraded: Array<{ reason: string; message: string }> = [];
  // A new value is one other than the last acted on, even a value used before that.
  const runNowNew = token !== undefined && token !== '' && token !== status.lastRunNowToken;
  const runNowTooLong = runNowNew && token.length > MAX_RUN_NOW_TOKEN_LENGTH;
  const runNowDue = runNowNew && !runNowTooLong;
  if (runNowTooLong) {
    const message = `annotation ${ANNOTATION_RUN_NOW} is ${token.length} characters long, at most ${MAX_RUN_NOW_TOKEN_LENGTH} are allowed: no run-now run is taken; set a shorter value, such as a timestamp`;
    degraded.push({ reason: REASON_INVALID_RUN_NOW_TOKEN, message });
    // Listed first in the Degraded message, so that message shows whether this was reported.
    const before = previousConditions?.find((c) => c.type === CONDITION_DEGRADED);
    if (!(before?.reason === REASON_INVALID_RUN_NOW_TOKEN && before.message.includes(message))) {
      events.push({ type: 'Warning', reason: REASON_INVALID_RUN_NOW_TOKEN, message });
    }
  }
  const runNowSequence = (status.runNowCount ?? 0) + 1;
  if (runNowDue)
    runs.push({ identity: { kind: 'run-now', token, sequence: runNowSequence }, time: now });

  // Forbid: a scheduled run waits for no one; it is skipped while an earlier one is unfinished.
  const readyDeadlineMs = spec.readyDeadlineSeconds * 1000;
  const inProgress = observed.snapshots.filter(
    (s) => !isDeleting(s) && !isReady(s) && !hasFailed(s) && !timedOut(s, readyDeadlineMs, now),
  );
  const scheduled = runs[0]?.identity.kind === 'scheduled' ? runs[0] : undefined;
  if (scheduled && spec.concurrencyPolicy === 'Forbid') {
    // A retry of this very run (its snapshots made, its status not yet written) goes on.
    const ownNames = new Set(
      runnable.map((pvc) => snapshotName(policyName, pvc.name, scheduled.identity)),
    );
    const earlier = inProgress.filter((s) => !ownNames.has(s.metadata.name!));
    if (earlier.length > 0) {
      const skipped = runs.shift()!;
      status.skippedRuns = (status.skippedRuns ?? 0) + 1;
      const names = earlier.map((s) => s.metadata.name!).sort();
      events.push({
        type: 'Warning',
        reason: 'RunSkipped',
        message: `scheduled run ${rfc3339(skipped.time)} skipped (concurrencyPolicy Forbid): ${names.length} snapshot(s) of an earlier run are not ready yet: ${summariseProblems(names, `each becomes ready or times out after readyDeadlineSeconds ${spec.readyDeadlineSeconds}`)}`,
      });
    }
  }

  const existingNames = new Set(observed.snapshots.map((s) => s.metadata.name));
  const runLabel = (run: (typeof runs)[number]) =>
    run.identity.kind === 'scheduled'
      ? `scheduled run ${rfc3339(run.time)}`
      : `run-now "${run.identity.token}"`;
  const wanted = runs.flatMap((run) =>
    runnable.map((pvc) => buildSnapshot(policy, pvc, run.identity, run.time)),
  );
  const hookRun = status.hookRun;
  const postDue =
    hooked && postHooksDue(hookRun, observed.snapshots, (s) => timedOut(s, readyDeadlineMs, now));
  // A new run's pre hooks wait for the post hooks of the one before (its snapshots still being
  // cut): the run stays due, nothing of it is recorded, and it is taken once they have run.
  // A restart in the middle of the recorded run itself is no such wait: its pre hooks run again
  // before the snapshots still to be created.
  const heldForPostHooks =
    hooked &&
    !postDue &&
    hookRun?.state === 'PreHooksDone' &&
    hookRun.run !== runs.map(runLabel).join(', ') &&
    wanted.some((s) => !existingNames.has(s.metadata.name));
  if (heldForPostHooks) runs.length = 0;
  const create: VolumeSnapshot[] = [];
  for (const run of runs) {
    const made: string[] = [];
    for (const pvc of runnable) {
      const snapshot = buildSnapshot(policy, pvc, run.identity, run.time);
      made.push(snapshot.metadata.name!);
      if (!existingNames.has(snapshot.metadata.name)) create.push(snapshot);
    }
    const label = runLabel(run);
    const skipped = pvcPlans.length - runnable.length;
    events.push(
      made.length > 0
        ? {
            type: 'Normal',
            reason: 'RunStarted',
            message: `${label}: snapshotting ${made.length} PVC(s): ${made.join(', ')}${skipped ? `; ${skipped} PVC(s) skipped (see status.pvcs)` : ''}`,
          }
        : {
            type: 'Warning',
            reason: 'NothingToSnapshot',
            message: `${label}: no selected PVC can be snapshotted (see status.pvcs)`,
          },
    );
  }
  if (schedulePlan.handledThrough && !heldForPostHooks)
    status.lastScheduleTime = rfc3339(schedulePlan.handledThrough);
  if (runNowDue && !heldForPostHooks) {
    status.lastRunNowToken = token;
    status.runNowCount = runNowSequence;
  }
  if (schedulePlan.missed > 0 && !heldForPostHooks) {
    status.missedRuns = (status.missedRuns ?? 0) + schedulePlan.missed;
    const deadline =
      spec.startingDeadlineSeconds !== undefined
        ? `startingDeadlineSeconds is ${spec.startingDeadlineSeconds}`
        : 'only the most recent run is made up';
    events.push({
      type: 'Warning',
      reason: 'MissedRuns',
      message: `${schedulePlan.missedCountIsLowerBound ? 'at least ' : ''}${schedulePlan.missed} scheduled run(s) missed, the latest at ${rfc3339(schedulePlan.lastMissed!)} (${deadline})`,
    });
  }
  if (schedulePlan.nextScheduleTime)
    status.nextScheduleTime = rfc3339(schedulePlan.nextScheduleTime);
  else delete status.nextScheduleTime;

  // Retention and the per-PVC summary.
  const rules = retentionRules(spec);
  const inUse = snapshotsInUse(observed.restoreJobs, observed.pvcs);
  const prune: PlannedPrune[] = [];
  const pvcStatuses: PvcBackupStatus[] = [];
  const previousPvcs = new Map((policy.status?.pvcs ?? []).map((p) => [p.pvcName, p]));
  const summaries: Array<{
    entry: PvcBackupStatus;
    problem?: { reason: string; message: string };
  }> = [];
  let ready = 0;
  let total = 0;
  for (const plan of pvcPlans) {
    const own = snapshotsOfPvc(observed.snapshots, plan.name);
    const live = own.filter((s) => !isDeleting(s));
    const readyOnes = live.filter(isReady);
    ready += readyOnes.length;
    total += live.length;
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
        reason: 'SnapshotFailed',
        message: `snapshot ${newest.metadata.name} of PVC ${plan.name} failed: ${newest.status?.error?.message ?? 'no message'}`,
      };
    }
    if (!problem && newest && timedOut(newest, readyDeadlineMs, now)) {
      problem = {
        reason: 'SnapshotTimedOut',
        message: `snapshot ${newest.metadata.name} of PVC ${plan.name} is not ready ${spec.readyDeadlineSeconds}s after it was created (spec.readyDeadlineSeconds); it is kept, and counts once it becomes ready${newest.status?.error?.message ? `; its last error: ${newest.status.error.message}` : ''}`,
      };
    }
    if (problem) {
      problem = { reason: problem.reason, message: capMessage(problem.message) };
      entry.message = problem.message;
      degraded.push(problem);
    }
    summaries.push(problem ? { entry, problem } : { entry });

    if (!rules || !plan.pvc) continue;
    if (plan.problem) {
      // Runs of this PVC cannot be made, so its existing snapshots are all it has.
      if (live.length > 0) {
        degraded.push({
          reason: 'PruningPaused',
          message: `pruning of PVC ${plan.name} is paused until it can be snapshotted again`,
        });
      }
      continue;
    }
    const decision = planRetention({
      snapshots: live.map((s) => ({
        name: s.metadata.name!,
        time: snapshotTime(s),
        ready: isReady(s),
        failed: hasFailed(s) || timedOut(s, readyDeadlineMs, now),
        deleting: false,
        inUse: inUse.has(s.metadata.name!) || isHeldForRestore(s),
      })),
      rules,
      timeZone: zone,
      now,
      suspended: spec.suspend,
    });
    if (decision.pausedReason && !spec.suspend) {
      degraded.push({
        reason: 'PruningPaused',
        message: `pruning of PVC ${plan.name} is paused: ${decision.pausedReason}`,
      });
    }
    for (const name of decision.prune) {
      prune.push({
        name,
        pvc: plan.name,
        message: `no longer kept by retention (${describeRules(rules)})`,
      });
    }
  }
  // Only a listed PVC's Event can be told apart from a repeat; the others are summarised in
  // the Degraded condition.
  for (const { entry, problem } of boundedPvcSummaries(summaries, MAX_STATUS_PVCS)) {
    pvcStatuses.push(entry);
    if (problem && previousPvcs.get(entry.pvcName)?.message !== problem.message) {
      events.push({ type: 'Warning', reason: problem.reason, message: problem.message });
    }
  }
  status.pvcs = pvcStatuses;
  status.selectedPvcs = pvcPlans.length;
  status.readySnapshots = ready;
  status.totalSnapshots = total;
  status.readyOverTotal = `${ready}/${total}`;
  const success = lastSuccessfulTime(observed.snapshots, status.lastSuccessfulTime);
  if (success !== undefined) status.lastSuccessfulTime = success;

  const hookProblem = hooked ? hookRunProblem(policy.status) : undefined;
  if (hookProblem) degraded.unshift(hookProblem);

  // Conditions.
  if (pvcPlans.length === 0) {
    const message = spec.pvcNames
      ? 'spec.pvcNames is empty'
      : `spec.selector matches no PVC in namespace ${namespace}`;
    if (changed(CONDITION_READY, 'False', 'NoPVCsSelected', message)) {
      events.push({ type: 'Warning', reason: 'NoPVCsSelected', message });
    }
    setCond(CONDITION_READY, 'False', 'NoPVCsSelected', message);
  } else {
    setCond(
      CONDITION_READY,
      'True',
      spec.suspend ? 'Suspended' : 'Scheduled',
      spec.suspend
        ? `suspended; ${runnable.length} of ${pvcPlans.length} selected PVC(s) can be snapshotted`
        : `${runnable.length} of ${pvcPlans.length} selected PVC(s) snapshotted on "${spec.schedule}" (${zone})`,
    );
  }
  if (degraded.length > 0) {
    setCond(
      CONDITION_DEGRADED,
      'True',
      degraded[0]!.reason,
      summariseProblems(
        degraded.map((d) => d.message),
        'see status.pvcs and the Events of this policy',
      ),
    );
  } else {
    setCond(
      CONDITION_DEGRADED,
      'False',
      'AsExpected',
      'every selected PVC has a healthy latest snapshot',
    );
  }
  if (spec.suspend)
    setCond(CONDITION_SUSPENDED, 'True', 'Suspended', 'spec.suspend is true: no runs, no pruning');
  else if (wasSuspended)
    setCond(
      CONDITION_SUSPENDED,
      'False',
      REASON_RESUMED,
      'resumed; runs scheduled during the suspension are not made up',
    );
  else if (!previousConditions?.some((c) => c.type === CONDITION_SUSPENDED)) {
    setCond(CONDITION_SUSPENDED, 'False', 'NotSuspended', 'the schedule is active');
  }

  const plan: BackupPolicyPlan = { create, prune, status, events: capEvents(events) };
  if (ownedClass) plan.ownedClass = ownedClass;
  if (hooked) {
    plan.hooks = spec.hooks!;
    if (postDue) {
      plan.postHooks = {
        run: hookRun!.run,
        pvcs: [...(hookRun!.pvcs ?? [])],
        snapshots: [...(hookRun!.snapshots ?? [])],
      };
    }
    if (create.length > 0) {
      plan.preHooks = {
        run: runs.map(runLabel).join(', '),
        pvcs: runnable.map((p) => p.name),
        snapshots: runs.flatMap((run) =>
          runnable.map((pvc) => snapshotName(policyName, pvc.name, run.identity)),
        ),
      };
    }
  }
  // Look again at the next scheduled time, or when a snapshot in progress times out.
  const wakeUps = [
    ...(schedulePlan.nextScheduleTime ? [schedulePlan.nextScheduleTime.getTime()] : []),
    ...(heldForPostHooks ? [now.getTime() + HELD_RUN_RECHECK_MS] : []),
    ...inProgress.map((s) => createdAt(s).getTime() + readyDeadlineMs + 1000),
  ];
  if (wakeUps.length > 0) {
    plan.requeueAfterMs = Math.max(0, Math.min(...wakeUps) - now.getTime());
  }
  return plan;
}

/** A run held for the post hooks of the one before looks again this soon. */
const HELD_RUN_RECHECK_MS = 10_000;

/** When a snapshot object was created: the start of its readyDeadlineSeconds. */
function createdAt(snapshot: VolumeSnapshot): Date {
  return time(snapshot.metadata.creationTimestamp) ?? snapshotTime(snapshot);
}

/** Not ready (or failed) within the deadline: reported as failed from then on. */
function timedOut(snapshot: VolumeSnapshot, deadlineMs: number, now: Date): boolean {
  return !isReady(snapshot) && now.getTime() - createdAt(snapshot).getTime() > deadlineMs;
}

function capEvents(events: readonly PlannedEvent[]): PlannedEvent[] {
  return events.map((e) => ({ ...e, message: capMessage(e.message) }));
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

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]: V });
}

/**
 * Owned classes to delete: those labelled for this policy that it no longer wants (the policy
 * is gone, or it switched to another class), once no VolumeSnapshot uses them.
 */
export function classesToDelete(
  namespace: string,
  policy: string,
  wanted: string | undefined,
  classes: readonly VolumeSnapshotClass[],
  usedBy: (className: string) => number,
): string[] {
  return classes
    .filter((c) => isOwnedBy(c, namespace, policy) && c.metadata.name !== wanted && !isDeleting(c))
    .filter((c) => usedBy(c.metadata.name!) === 0)
    .map((c) => c.metadata.name!);
}

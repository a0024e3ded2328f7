/**
 * What a BackupPolicy wants done, from what is observed: a pure function the reconciler wraps.
 *
 * Given the policy, the PVCs, volumes, snapshot classes, the policy's snapshots, restores in
 * progress and the time, it decides which VolumeSnapshots to create for the run due now (if
 * any), which to prune, the owned VolumeSnapshotClass, the status to write and the Events to
 * record. Bad input ends as a condition and an Event: nothing is created and nothing deleted
 * for a problem that concerns the whole policy, and only the affected PVC is skipped for a
 * problem that concerns one PVC.
 *
 * This file holds the plan's types, its outline (planBackupPolicy), the spec and class checks,
 * the schedule, conditions and hooks; the larger steps have a file each: plan-pvcs.ts (which
 * PVCs, each checked), plan-runs.ts (the runs taken now) and plan-pvc-summaries.ts (status.pvcs
 * and retention). With spec.consistency Group a run takes one VolumeGroupSnapshot of every
 * selected PVC instead, and retention counts whole groups: plan-groups.ts.
 */
import { z } from 'zod';
import type {
  BackupPolicy,
  BackupPolicySpec,
  Hooks,
  BackupPolicyStatus,
  Condition,
  RestoreJob,
} from '../api/index.js';
import type { VolumeGroupSnapshot, VolumeGroupSnapshotClass } from '../api/group-snapshot.js';
import type { VolumeSnapshot, VolumeSnapshotClass } from '../api/snapshot.js';
import {
  ANNOTATION_POLICY_NAME,
  GROUP_SNAPSHOT_API_VERSION,
  VOLUME_GROUP_SNAPSHOT_CLASS_KIND,
  BackupPolicySpecSchema,
  CONDITION_DEGRADED,
  CONDITION_READY,
  LABEL_POLICY,
  LABEL_POLICY_NAMESPACE,
  PARAM_FORCE_DELETE,
  SNAPSHOT_API_VERSION,
  VOLUME_SNAPSHOT_CLASS_KIND,
} from '../api/index.js';
import { setCondition } from '../kube/index.js';
import { CronError } from './cron.js';
import { labelValue, ownedSnapshotClassName, snapshotName } from './naming.js';
import type { Pv, Pvc } from './objects.js';
import { isDeleting, time, type SnapshotLike } from './objects.js';
import { capMessage, summariseProblems } from './messages.js';
import { compileSchedule, planSchedule, resolvedTimeZone, type SchedulePlan } from './schedule.js';
import { TimeZoneError } from './timezone.js';
import { hasHooks, hookRunProblem } from './hooks.js';
import { BackupPolicyReason } from './reasons.js';
import { planPvc, selectPvcs, type Problem, type PvcPlan } from './plan-pvcs.js';
import { listPvcSummaries, summarisePvcs, summariseStatus } from './plan-pvc-summaries.js';
import {
  planGroupRuns,
  selectGroupPvcs,
  summariseGroups,
  type GroupObservation,
  type PlannedGroupPrune,
} from './plan-groups.js';
import {
  createdAt,
  planRuns,
  recordSchedule,
  runLabel,
  type HookHold,
  type Run,
} from './plan-runs.js';

export { retentionRules } from './plan-pvc-summaries.js';

/** Condition type recording suspension; its transition back to False marks the resume time. */
export const CONDITION_SUSPENDED = 'Suspended';

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
  /** The group snapshot API as observed; absent when the cluster does not serve it. */
  groupSnapshots?: GroupObservation;
}

/** An Event to record; `R` is the reasons of the kind it is about (see reasons.ts). */
export interface PlannedEvent<R extends string = string> {
  type: 'Normal' | 'Warning';
  reason: R;
  message: string;
}

export type PolicyEvent = PlannedEvent<BackupPolicyReason>;

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
  /** consistency Group: the owned VolumeGroupSnapshotClass to create or bring in sync. */
  ownedGroupClass?: VolumeGroupSnapshotClass;
  /** consistency Group: the VolumeGroupSnapshots of the runs taken now. */
  createGroups: VolumeGroupSnapshot[];
  /** consistency Group: groups retention lets go, each deleted whole. */
  pruneGroups: PlannedGroupPrune[];
  /** The complete status once `create` has succeeded. */
  status: BackupPolicyStatus;
  /** Events to record once `create` has succeeded. */
  events: PolicyEvent[];
  /**
   * How many snapshots this plan reports as newly failed: its SnapshotFailed Events (one per
   * listed PVC whose newest snapshot failed and was not reported before), for the metric.
   */
  newlyFailedSnapshots: number;
  /** Check back after this long (the next scheduled time). */
  requeueAfterMs?: number;
  /** Set when a problem stops the whole policy: then nothing at all may be deleted. */
  blockedBy?: BackupPolicyReason;
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
    readonly reason: BackupPolicyReason,
    message: string,
  ) {
    super(message);
  }
}

/** The spec with defaults applied, or a PolicyProblem naming what is wrong. */
export function validatePolicySpec(policy: BackupPolicy): BackupPolicySpec {
  const parsed = BackupPolicySpecSchema.safeParse(policy.spec);
  if (!parsed.success) {
    throw new PolicyProblem(
      BackupPolicyReason.InvalidSpec,
      `spec is invalid: ${z.prettifyError(parsed.error)}`,
    );
  }
  const spec = parsed.data;
  try {
    compileSchedule(spec.schedule, spec.timeZone);
  } catch (error) {
    if (error instanceof CronError)
      throw new PolicyProblem(BackupPolicyReason.InvalidSchedule, error.message);
    if (error instanceof TimeZoneError)
      throw new PolicyProblem(BackupPolicyReason.InvalidTimeZone, error.message);
    throw error;
  }
  return spec;
}

/** The metadata of a class a policy owns: named after it, labelled and annotated with it. */
function ownedClassMetadata(policy: BackupPolicy): VolumeSnapshotClass['metadata'] {
  const namespace = policy.metadata.namespace!;
  const name = policy.metadata.name!;
  return {
    name: ownedSnapshotClassName(namespace, name),
    labels: { [LABEL_POLICY]: labelValue(name), [LABEL_POLICY_NAMESPACE]: namespace },
    annotations: { [ANNOTATION_POLICY_NAME]: `${namespace}/${name}` },
  };
}

/** The VolumeSnapshotClass a template describes. */
export function desiredOwnedClass(
  policy: BackupPolicy,
  spec: BackupPolicySpec,
): VolumeSnapshotClass | undefined {
  const template = spec.snapshotClass?.template;
  if (!template) return undefined;
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: VOLUME_SNAPSHOT_CLASS_KIND,
    metadata: ownedClassMetadata(policy),
    driver: template.driver,
    deletionPolicy: template.deletionPolicy,
    parameters: {
      ...template.parameters,
      [PARAM_FORCE_DELETE]: template.forceDelete ? 'true' : 'false',
    },
  };
}

/** The VolumeGroupSnapshotClass a groupSnapshotClass.template describes. */
export function desiredOwnedGroupClass(
  policy: BackupPolicy,
  spec: BackupPolicySpec,
): VolumeGroupSnapshotClass | undefined {
  const template = spec.groupSnapshotClass?.template;
  if (!template || spec.consistency !== 'Group') return undefined;
  return {
    apiVersion: GROUP_SNAPSHOT_API_VERSION,
    kind: VOLUME_GROUP_SNAPSHOT_CLASS_KIND,
    metadata: ownedClassMetadata(policy),
    driver: template.driver,
    deletionPolicy: template.deletionPolicy,
    parameters: { ...template.parameters },
  };
}

/** Whether a class (snapshot or group snapshot) carries the labels of the policy that owns it. */
export function isOwnedBy(
  cls: { metadata: { labels?: Record<string, string> } },
  namespace: string,
  policy: string,
): boolean {
  const labels = cls.metadata.labels ?? {};
  return (
    labels[LABEL_POLICY] === labelValue(policy) && labels[LABEL_POLICY_NAMESPACE] === namespace
  );
}

/**
 * The plan, step by step: resolve the spec and its class (a problem there stops everything),
 * select the PVCs and check each, plan the runs due now, record the schedule, summarise each
 * PVC and apply retention, then the conditions, the hooks to run and when to look again.
 */
export function planBackupPolicy(observed: BackupPolicyObservation): BackupPolicyPlan {
  const { policy } = observed;
  const conditions = conditionWriter(policy, observed.now);
  const status = startStatus(policy);
  const resolved = resolvePolicy(observed);
  if (resolved instanceof PolicyProblem) return policyProblemPlan(resolved, status, conditions);
  if (resolved.spec.consistency === 'Group') {
    return planGroupPolicy(observed, resolved, status, conditions);
  }
  const { spec, ownedClass } = resolved;

  const pvcPlans = selectPvcs(spec, observed).map((entry) =>
    planPvc(entry, spec, ownedClass, observed),
  );
  const runs = planRuns(observed, resolved, pvcPlans, scheduleDue(observed, spec, resolved.zone));
  const { due, hookHold } = runs;
  const scheduled = recordSchedule(status, spec, due, runs.skipped, hookHold.held);
  const pvcs = summarisePvcs(observed, resolved, pvcPlans);
  const listed = listPvcSummaries(pvcs.summaries, policy.status?.pvcs ?? []);
  const summarised = summariseStatus(scheduled.status, observed, pvcPlans.length, pvcs, listed);
  const conditioned = planConditions(summarised, conditions, {
    spec,
    zone: resolved.zone,
    namespace: policy.metadata.namespace!,
    selected: pvcPlans.length,
    runnable: runs.runnable.length,
    degraded: [
      ...(resolved.hooked ? hookProblems(policy.status) : []),
      ...due.problems,
      ...pvcs.problems,
    ],
  });
  const events = [...runs.events, ...scheduled.events, ...listed.events, ...conditioned.events];
  const plan: BackupPolicyPlan = {
    create: runs.create,
    prune: pvcs.prune,
    createGroups: [],
    pruneGroups: [],
    status: conditioned.status,
    events: capEvents(events),
    newlyFailedSnapshots: events.filter((e) => e.reason === BackupPolicyReason.SnapshotFailed)
      .length,
    ...optional('ownedClass', ownedClass),
    ...hookPlans(policy, spec, hookHold, runs.runs, runs.runnable, runs.create),
  };
  const requeueAfterMs = nextWakeUp(observed, spec, due.schedule, hookHold.held, runs.inProgress);
  if (requeueAfterMs !== undefined) plan.requeueAfterMs = requeueAfterMs;
  return plan;
}

/**
 * The plan of a consistency Group policy: one VolumeGroupSnapshot per run over every selected
 * PVC (or none, saying why), retention over whole groups, the same schedule and conditions.
 */
function planGroupPolicy(
  observed: BackupPolicyObservation,
  resolved: ResolvedPolicy,
  status: BackupPolicyStatus,
  conditions: ConditionWriter,
): BackupPolicyPlan {
  const { policy } = observed;
  const { spec } = resolved;
  const selection = selectGroupPvcs(observed, resolved);
  const runs = planGroupRuns(
    observed,
    resolved,
    selection,
    scheduleDue(observed, spec, resolved.zone),
  );
  const scheduled = recordSchedule(status, spec, runs.due, runs.skipped, false);
  const groups = summariseGroups(observed, resolved, selection, scheduled.status);
  const conditioned = planConditions(groups.status, conditions, {
    spec,
    zone: resolved.zone,
    namespace: policy.metadata.namespace!,
    selected: selection.pvcs.length,
    runnable: selection.blocking.length > 0 ? 0 : selection.pvcs.length,
    degraded: [...runs.due.problems, ...selection.blocking, ...groups.problems],
    group: true,
  });
  const events = capEvents([
    ...runs.events,
    ...scheduled.events,
    ...groups.events,
    ...conditioned.events,
  ]);
  const plan: BackupPolicyPlan = {
    create: [],
    prune: [],
    createGroups: runs.create,
    pruneGroups: groups.prune,
    status: conditioned.status,
    events,
    newlyFailedSnapshots: events.filter((e) => e.reason === BackupPolicyReason.GroupFailed).length,
    ...optional('ownedGroupClass', resolved.ownedGroupClass),
  };
  const requeueAfterMs = nextWakeUp(observed, spec, runs.due.schedule, false, runs.inProgress);
  if (requeueAfterMs !== undefined) plan.requeueAfterMs = requeueAfterMs;
  return plan;
}

/** The last status written, to plan the new one from. */
function startStatus(policy: BackupPolicy): BackupPolicyStatus {
  const status: BackupPolicyStatus = structuredClone(policy.status ?? {});
  if (policy.metadata.generation !== undefined) {
    status.observedGeneration = policy.metadata.generation;
  }
  return status;
}

/** Sets a condition of the status being planned; `changed` compares with the status last written. */
interface ConditionWriter {
  set(
    status: BackupPolicyStatus,
    type: string,
    value: 'True' | 'False',
    reason: BackupPolicyReason,
    message: string,
  ): void;
  /** Events about lasting problems are recorded when the condition changes, not every resync. */
  changed(type: string, value: string, reason: BackupPolicyReason, message: string): boolean;
}

function conditionWriter(policy: BackupPolicy, now: Date): ConditionWriter {
  const generation = policy.metadata.generation;
  const base = generation !== undefined ? { observedGeneration: generation } : {};
  const previous = policy.status?.conditions;
  return {
    set(status, type, value, reason, message) {
      status.conditions = setCondition(
        status.conditions,
        { type, status: value, reason, message: capMessage(message), ...base },
        now,
      );
    },
    changed(type, value, reason, message) {
      const before = previous?.find((c) => c.type === type);
      return (
        !before ||
        before.status !== value ||
        before.reason !== reason ||
        before.message !== capMessage(message)
      );
    },
  };
}

/** What the spec resolves to once it is valid and its snapshot class is usable. */
export interface ResolvedPolicy {
  spec: BackupPolicySpec;
  zone: string;
  hooked: boolean;
  /** The class the policy owns, when its spec has a template. */
  ownedClass?: VolumeSnapshotClass;
  /** consistency Group: the group class the policy owns, when groupSnapshotClass has a template. */
  ownedGroupClass?: VolumeGroupSnapshotClass;
}

function resolvePolicy(observed: BackupPolicyObservation): ResolvedPolicy | PolicyProblem {
  let spec: BackupPolicySpec;
  try {
    spec = validatePolicySpec(observed.policy);
  } catch (error) {
    if (!(error instanceof PolicyProblem)) throw error;
    return error;
  }
  if (spec.consistency === 'Group') return resolveGroupPolicy(observed, spec);
  const hooked = hasHooks(spec.hooks);
  if (hooked && !observed.hooksEnabled) {
    return new PolicyProblem(
      BackupPolicyReason.HooksDisabled,
      'spec.hooks is set, but hooks are disabled in this installation (the controller runs without --hooks=true; with the Helm chart, set hooks.enabled=true, which also grants pods/exec): no snapshot is taken until hooks are enabled or spec.hooks is removed',
    );
  }
  const ownedClass = resolveSnapshotClass(observed, spec);
  if (ownedClass instanceof PolicyProblem) return ownedClass;
  return {
    spec,
    zone: resolvedTimeZone(spec.timeZone),
    hooked,
    ...optional('ownedClass', ownedClass),
  };
}

/** consistency Group: the group snapshot API must be served, and the group class usable. */
function resolveGroupPolicy(
  observed: BackupPolicyObservation,
  spec: BackupPolicySpec,
): ResolvedPolicy | PolicyProblem {
  const { policy, groupSnapshots } = observed;
  if (hasHooks(spec.hooks)) {
    return new PolicyProblem(
      BackupPolicyReason.HooksWithGroup,
      'spec.hooks is set with consistency Group, but hooks run around per-PVC snapshots only: no group is taken; remove spec.hooks (a group is crash-consistent across its PVCs without them) or set consistency: Volume',
    );
  }
  if (!groupSnapshots) {
    return new PolicyProblem(
      BackupPolicyReason.GroupSnapshotAPIUnavailable,
      "spec.consistency is Group, but the cluster does not serve groupsnapshot.storage.k8s.io/v1: no group is taken or pruned; install the VolumeGroupSnapshot CRDs (crds/ of snapback) and a snapshot controller with group snapshots (snapback's embedded stack, or upstream's with its group feature gate on)",
    );
  }
  const base = { spec, zone: resolvedTimeZone(spec.timeZone), hooked: false };
  const name = spec.groupSnapshotClass?.name;
  if (name !== undefined) {
    if (groupSnapshots.classes.some((c) => c.metadata.name === name)) return base;
    return new PolicyProblem(
      BackupPolicyReason.GroupSnapshotClassNotFound,
      `VolumeGroupSnapshotClass ${name} not found: no group is taken or pruned; create it or fix spec.groupSnapshotClass.name`,
    );
  }
  const owned = desiredOwnedGroupClass(policy, spec);
  if (!owned) return base;
  const existing = groupSnapshots.classes.find((c) => c.metadata.name === owned.metadata.name);
  if (existing && !isOwnedBy(existing, policy.metadata.namespace!, policy.metadata.name!)) {
    return new PolicyProblem(
      BackupPolicyReason.GroupSnapshotClassConflict,
      `VolumeGroupSnapshotClass ${existing.metadata.name} exists but was not created for this policy; snapback will not change it: delete or rename it, or set spec.groupSnapshotClass.name to use it`,
    );
  }
  return { ...base, ownedGroupClass: owned };
}

/** The class: an existing one by name (nothing to own), or ours from the template. */
function resolveSnapshotClass(
  observed: BackupPolicyObservation,
  spec: BackupPolicySpec,
): VolumeSnapshotClass | undefined | PolicyProblem {
  const { policy, snapshotClasses } = observed;
  if (spec.snapshotClass?.name !== undefined) {
    const name = spec.snapshotClass.name;
    if (snapshotClasses.some((c) => c.metadata.name === name)) return undefined;
    return new PolicyProblem(
      BackupPolicyReason.SnapshotClassNotFound,
      `VolumeSnapshotClass ${name} not found; create it or fix spec.snapshotClass.name`,
    );
  }
  const ownedClass = desiredOwnedClass(policy, spec);
  const existing =
    ownedClass && snapshotClasses.find((c) => c.metadata.name === ownedClass.metadata.name);
  if (existing && !isOwnedBy(existing, policy.metadata.namespace!, policy.metadata.name!)) {
    return new PolicyProblem(
      BackupPolicyReason.SnapshotClassConflict,
      `VolumeSnapshotClass ${existing.metadata.name} exists but was not created for this policy; snapback will not change it`,
    );
  }
  return ownedClass;
}

/** A problem with the whole policy: Ready=False, and nothing is created or deleted. */
function policyProblemPlan(
  problem: PolicyProblem,
  status: BackupPolicyStatus,
  conditions: ConditionWriter,
): BackupPolicyPlan {
  const events: PolicyEvent[] = [];
  if (conditions.changed(CONDITION_READY, 'False', problem.reason, problem.message)) {
    events.push({ type: 'Warning', reason: problem.reason, message: problem.message });
  }
  conditions.set(status, CONDITION_READY, 'False', problem.reason, problem.message);
  conditions.set(
    status,
    CONDITION_DEGRADED,
    'True',
    problem.reason,
    'no snapshot is taken or pruned until this is fixed',
  );
  delete status.nextScheduleTime;
  return {
    create: [],
    prune: [],
    createGroups: [],
    pruneGroups: [],
    status,
    events: capEvents(events),
    newlyFailedSnapshots: 0,
    blockedBy: problem.reason,
  };
}

/**
 * The schedule's due run. Scheduled times that fell inside a suspension are neither run nor
 * counted as missed once it ends.
 */
function scheduleDue(
  observed: BackupPolicyObservation,
  spec: BackupPolicySpec,
  zone: string,
): SchedulePlan {
  const { policy, now } = observed;
  const previousConditions = policy.status?.conditions;
  const resumeTime = !spec.suspend && wasSuspended(policy) ? now : resumedAt(previousConditions);
  return planSchedule({
    schedule: spec.schedule,
    timeZone: zone,
    suspend: spec.suspend,
    creationTime: time(policy.metadata.creationTimestamp) ?? now,
    now,
    ...optional('startingDeadlineSeconds', spec.startingDeadlineSeconds),
    ...optional('lastHandledTime', latest(time(policy.status?.lastScheduleTime), resumeTime)),
  });
}

function wasSuspended(policy: BackupPolicy): boolean {
  return policy.status?.conditions?.find((c) => c.type === CONDITION_SUSPENDED)?.status === 'True';
}

function resumedAt(conditions: readonly Condition[] | undefined): Date | undefined {
  const c = conditions?.find((x) => x.type === CONDITION_SUSPENDED);
  return c && c.status === 'False' && c.reason === BackupPolicyReason.Resumed
    ? time(c.lastTransitionTime)
    : undefined;
}

function latest(...dates: Array<Date | undefined>): Date | undefined {
  let best: Date | undefined;
  for (const d of dates) if (d && (!best || d.getTime() > best.getTime())) best = d;
  return best;
}

interface ConditionInput {
  spec: BackupPolicySpec;
  zone: string;
  namespace: string;
  selected: number;
  runnable: number;
  /** Every problem found, the one to name first first. */
  degraded: readonly Problem[];
  /** consistency Group: the messages speak of groups. */
  group?: boolean;
}

/** The status with its Ready, Degraded and Suspended conditions. */
function planConditions(
  previous: BackupPolicyStatus,
  conditions: ConditionWriter,
  input: ConditionInput,
): { status: BackupPolicyStatus; events: PolicyEvent[] } {
  const status = { ...previous };
  const events = setReadyCondition(status, conditions, input);
  setDegradedCondition(status, conditions, input.degraded, input.group === true);
  setSuspendedCondition(status, conditions, input.spec.suspend, previous);
  return { status, events };
}

/** Ready: False while no PVC is selected (an Event when that is news), else True. */
function setReadyCondition(
  status: BackupPolicyStatus,
  conditions: ConditionWriter,
  { spec, zone, namespace, selected, runnable, group }: ConditionInput,
): PolicyEvent[] {
  if (selected === 0) {
    const reason = BackupPolicyReason.NoPVCsSelected;
    const message = spec.pvcNames
      ? 'spec.pvcNames is empty'
      : `spec.selector matches no PVC in namespace ${namespace}`;
    const news = conditions.changed(CONDITION_READY, 'False', reason, message);
    conditions.set(status, CONDITION_READY, 'False', reason, message);
    return news ? [{ type: 'Warning', reason, message }] : [];
  }
  const message = group
    ? spec.suspend
      ? `suspended; ${selected} selected PVC(s), ${runnable === selected ? 'a group can be taken' : 'no group can be taken now (see the Degraded condition)'}`
      : runnable === selected
        ? `${selected} selected PVC(s) snapshotted as one VolumeGroupSnapshot on "${spec.schedule}" (${zone})`
        : `${selected} selected PVC(s) on "${spec.schedule}" (${zone}), but no group can be taken now (see the Degraded condition)`
    : spec.suspend
      ? `suspended; ${runnable} of ${selected} selected PVC(s) can be snapshotted`
      : `${runnable} of ${selected} selected PVC(s) snapshotted on "${spec.schedule}" (${zone})`;
  const reason = spec.suspend ? BackupPolicyReason.Suspended : BackupPolicyReason.Scheduled;
  conditions.set(status, CONDITION_READY, 'True', reason, message);
  return [];
}

/** Degraded: True naming every problem found (the first gives the reason), else False. */
function setDegradedCondition(
  status: BackupPolicyStatus,
  conditions: ConditionWriter,
  degraded: readonly Problem[],
  group: boolean,
): void {
  if (degraded.length > 0) {
    const message = summariseProblems(
      degraded.map((d) => d.message),
      'see status.pvcs and the Events of this policy',
    );
    conditions.set(status, CONDITION_DEGRADED, 'True', degraded[0]!.reason, message);
  } else {
    const message = group
      ? 'every selected PVC can be snapshotted and the latest group is healthy'
      : 'every selected PVC has a healthy latest snapshot';
    conditions.set(status, CONDITION_DEGRADED, 'False', BackupPolicyReason.AsExpected, message);
  }
}

function setSuspendedCondition(
  status: BackupPolicyStatus,
  conditions: ConditionWriter,
  suspend: boolean,
  previous: BackupPolicyStatus,
): void {
  const before = previous.conditions?.find((c) => c.type === CONDITION_SUSPENDED);
  if (suspend) {
    const message = 'spec.suspend is true: no runs, no pruning';
    conditions.set(status, CONDITION_SUSPENDED, 'True', BackupPolicyReason.Suspended, message);
  } else if (before?.status === 'True') {
    const message = 'resumed; runs scheduled during the suspension are not made up';
    conditions.set(status, CONDITION_SUSPENDED, 'False', BackupPolicyReason.Resumed, message);
  } else if (!before) {
    conditions.set(
      status,
      CONDITION_SUSPENDED,
      'False',
      BackupPolicyReason.NotSuspended,
      'the schedule is active',
    );
  }
}

/** The hooks of the plan: the post hooks now due, and the pre hooks of the runs created now. */
function hookPlans(
  policy: BackupPolicy,
  spec: BackupPolicySpec,
  hookHold: HookHold,
  runs: readonly Run[],
  runnable: readonly PvcPlan[],
  create: readonly VolumeSnapshot[],
): Pick<BackupPolicyPlan, 'hooks' | 'preHooks' | 'postHooks'> {
  if (!hasHooks(spec.hooks)) return {};
  const plans: Pick<BackupPolicyPlan, 'hooks' | 'preHooks' | 'postHooks'> = { hooks: spec.hooks! };
  const hookRun = policy.status?.hookRun;
  if (hookHold.postDue) {
    plans.postHooks = {
      run: hookRun!.run,
      pvcs: [...(hookRun!.pvcs ?? [])],
      snapshots: [...(hookRun!.snapshots ?? [])],
    };
  }
  if (create.length > 0) {
    plans.preHooks = {
      run: runs.map(runLabel).join(', '),
      pvcs: runnable.map((p) => p.name),
      snapshots: runs.flatMap((run) =>
        runnable.map((pvc) => snapshotName(policy.metadata.name!, pvc.name, run.identity)),
      ),
    };
  }
  return plans;
}

/** Look again at the next scheduled time, or when a snapshot in progress times out. */
function nextWakeUp(
  { now }: BackupPolicyObservation,
  spec: BackupPolicySpec,
  schedule: SchedulePlan,
  held: boolean,
  inProgress: readonly SnapshotLike[],
): number | undefined {
  const readyDeadlineMs = spec.readyDeadlineSeconds * 1000;
  const wakeUps = [
    ...(schedule.nextScheduleTime ? [schedule.nextScheduleTime.getTime()] : []),
    ...(held ? [now.getTime() + HELD_RUN_RECHECK_MS] : []),
    ...inProgress.map((s) => createdAt(s).getTime() + readyDeadlineMs + 1000),
  ];
  if (wakeUps.length === 0) return undefined;
  return Math.max(0, Math.min(...wakeUps) - now.getTime());
}

/** The Degraded problem the last hook run left, if any (hooks.ts reports it as HookFailed). */
function hookProblems(status: BackupPolicyStatus | undefined): Problem[] {
  const problem = hookRunProblem(status);
  return problem ? [{ reason: BackupPolicyReason.HookFailed, message: problem.message }] : [];
}

/** A run held for the post hooks of the one before looks again this soon. */
const HELD_RUN_RECHECK_MS = 10_000;

function capEvents<E extends PlannedEvent>(events: readonly E[]): E[] {
  return events.map((e) => ({ ...e, message: capMessage(e.message) }));
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
  classes: readonly { metadata: VolumeSnapshotClass['metadata'] }[],
  usedBy: (className: string) => number,
): string[] {
  return classes
    .filter((c) => isOwnedBy(c, namespace, policy) && c.metadata.name !== wanted && !isDeleting(c))
    .filter((c) => usedBy(c.metadata.name!) === 0)
    .map((c) => c.metadata.name!);
}

/**
 * The steps of planBackupPolicy (backup-policy.ts) for spec.consistency Group: which PVCs the
 * group takes and whether it can be taken now, the group each due run creates, and the
 * policy's groups summarised, with what retention prunes of them.
 *
 * A group is taken only whole: when every PVC the selector selects can be snapshotted and the
 * group class is usable; otherwise the run takes nothing and says why. Retention counts groups
 * and deletes a VolumeGroupSnapshot only (its member VolumeSnapshots go with it), so no group
 * is ever left partly deleted.
 */
import type {
  BackupPolicy,
  BackupPolicySpec,
  BackupPolicyStatus,
  GroupBackupStatus,
  PvcBackupStatus,
  VolumeGroupSnapshot,
  VolumeGroupSnapshotClass,
  VolumeSnapshot,
} from '../api/index.js';
import {
  ANN_IS_DEFAULT_GROUP_CLASS,
  ANNOTATION_POLICY_NAME,
  ANNOTATION_RUN_NOW_TOKEN,
  ANNOTATION_RUN_TIME,
  GROUP_SNAPSHOT_API_VERSION,
  LABEL_POLICY,
  MAX_STATUS_PVCS,
  VOLUME_GROUP_SNAPSHOT_KIND,
} from '../api/index.js';
import { rfc3339 } from '../kube/index.js';
import type { BackupPolicyObservation, PolicyEvent, ResolvedPolicy } from './backup-policy.js';
import { capMessage, summariseProblems } from './messages.js';
import { groupSnapshotName, labelValue, type RunIdentity } from './naming.js';
import { hasFailed, isDeleting, isReady, snapshotTime, snapshotsInUse, time } from './objects.js';
import { pvcDriver, selectPvcs, volumeProblem, type Problem, type PvcPlan } from './plan-pvcs.js';
import {
  describeRules,
  retentionFacts,
  retentionRules,
  withProblem,
} from './plan-pvc-summaries.js';
import { dueRuns, runLabel, timedOut, type DueRuns } from './plan-runs.js';
import { BackupPolicyReason } from './reasons.js';
import { planRetention } from './retention.js';
import type { SchedulePlan } from './schedule.js';

/** What the controller reads of the group snapshot API; absent when the cluster does not serve it. */
export interface GroupObservation {
  /** The VolumeGroupSnapshots carrying this policy's label, in its namespace. */
  groups: readonly VolumeGroupSnapshot[];
  /** Every VolumeGroupSnapshotClass of the cluster. */
  classes: readonly VolumeGroupSnapshotClass[];
  /** The member VolumeSnapshots of a group of the policy's namespace (they name it as owner). */
  members(group: string): readonly VolumeSnapshot[];
}

export interface PlannedGroupPrune {
  name: string;
  /** Its member VolumeSnapshots, which the snapshot controller deletes with it. */
  members: string[];
  /** Why the rules no longer keep it, in words. */
  message: string;
}

/** The PVCs a group takes, and why none can be taken now (every problem blocks the group). */
export interface GroupSelection {
  pvcs: PvcPlan[];
  /** Problems that stop a group being taken, each PVC's first. */
  blocking: Problem[];
  /** The group class the groups name; undefined means the driver's default group class. */
  className?: string;
}

export function selectGroupPvcs(
  observed: BackupPolicyObservation,
  resolved: ResolvedPolicy,
): GroupSelection {
  const { spec } = resolved;
  const pvcs: PvcPlan[] = selectPvcs(spec, observed).map(({ name, pvc }) => {
    const problem = pvc ? volumeProblem(pvc, observed) : undefined;
    return { name, ...(pvc ? { pvc } : {}), ...(problem ? { problem } : {}) };
  });
  const blocking = pvcs.flatMap((p) => (p.problem ? [p.problem] : []));
  const drivers = new Map<string, string[]>();
  for (const p of pvcs) {
    const driver = p.pvc && !p.problem ? pvcDriver(p.pvc, observed) : undefined;
    if (driver) drivers.set(driver, [...(drivers.get(driver) ?? []), p.name]);
  }
  if (drivers.size > 1) {
    const list = [...drivers].map(([d, names]) => `${d} (${names.join(', ')})`).join('; ');
    blocking.push({
      reason: BackupPolicyReason.MixedDrivers,
      message: `the selected PVCs use ${drivers.size} CSI drivers: ${list}; a VolumeGroupSnapshot is taken by one driver: narrow spec.selector to the PVCs of one driver`,
    });
    return { pvcs, blocking };
  }
  const driver = [...drivers.keys()][0];
  const classProblem = groupClassProblem(driver, spec, resolved, observed.groupSnapshots!.classes);
  if (classProblem) blocking.push(classProblem);
  const className = spec.groupSnapshotClass?.name ?? resolved.ownedGroupClass?.metadata.name;
  return { pvcs, blocking, ...(className ? { className } : {}) };
}

/** The group class must be of the PVCs' driver; with none set, that driver's one default. */
function groupClassProblem(
  driver: string | undefined,
  spec: BackupPolicySpec,
  resolved: ResolvedPolicy,
  classes: readonly VolumeGroupSnapshotClass[],
): Problem | undefined {
  if (!driver) return undefined;
  const named = spec.groupSnapshotClass?.name;
  const cls = named ? classes.find((c) => c.metadata.name === named) : resolved.ownedGroupClass;
  if (cls) {
    if (cls.driver === driver) return undefined;
    const what = named
      ? `VolumeGroupSnapshotClass ${named} is`
      : 'groupSnapshotClass.template.driver is';
    return {
      reason: BackupPolicyReason.DriverMismatch,
      message: `${what} for driver ${cls.driver}, but the selected PVCs use ${driver}; no group is taken`,
    };
  }
  const defaults = classes.filter(
    (c) => c.driver === driver && c.metadata.annotations?.[ANN_IS_DEFAULT_GROUP_CLASS] === 'true',
  );
  if (defaults.length === 1) return undefined;
  return {
    reason: BackupPolicyReason.NoDefaultGroupSnapshotClass,
    message:
      defaults.length === 0
        ? `no VolumeGroupSnapshotClass for driver ${driver} is marked default (annotation ${ANN_IS_DEFAULT_GROUP_CLASS}: "true"); set spec.groupSnapshotClass.name or .template, or mark one class default; no group is taken`
        : `${defaults.length} VolumeGroupSnapshotClasses for driver ${driver} are marked default (${defaults.map((c) => c.metadata.name).join(', ')}); set spec.groupSnapshotClass; no group is taken`,
  };
}

/** The runs due now and the groups they create. */
export interface PlannedGroupRuns {
  due: DueRuns;
  /** Groups neither ready, failed nor past readyDeadlineSeconds. */
  inProgress: VolumeGroupSnapshot[];
  /** The scheduled run was skipped (concurrencyPolicy Forbid). */
  skipped: boolean;
  create: VolumeGroupSnapshot[];
  events: PolicyEvent[];
}

export function planGroupRuns(
  observed: BackupPolicyObservation,
  resolved: ResolvedPolicy,
  selection: GroupSelection,
  schedule: SchedulePlan,
): PlannedGroupRuns {
  const { policy, now } = observed;
  const { spec } = resolved;
  const groups = observed.groupSnapshots!.groups;
  const due = dueRuns(observed, schedule);
  const readyDeadlineMs = spec.readyDeadlineSeconds * 1000;
  const inProgress = groups.filter(
    (g) => !isDeleting(g) && !isReady(g) && !hasFailed(g) && !timedOut(g, readyDeadlineMs, now),
  );
  const events: PolicyEvent[] = [...due.events];
  let runs = due.runs;
  let skipped = false;
  const scheduled = runs[0]?.identity.kind === 'scheduled' ? runs[0] : undefined;
  if (scheduled && spec.concurrencyPolicy === 'Forbid') {
    // A retry of this very run (its group made, its status not yet written) goes on.
    const own = groupSnapshotName(policy.metadata.name!, scheduled.identity);
    const earlier = inProgress.filter((g) => g.metadata.name !== own);
    if (earlier.length > 0) {
      skipped = true;
      runs = runs.slice(1);
      const names = earlier.map((g) => g.metadata.name!).sort();
      events.push({
        type: 'Warning',
        reason: BackupPolicyReason.RunSkipped,
        message: `scheduled run ${rfc3339(scheduled.time)} skipped (concurrencyPolicy Forbid): VolumeGroupSnapshot ${names.join(', ')} of an earlier run is not ready yet; it becomes ready or times out after readyDeadlineSeconds ${spec.readyDeadlineSeconds}`,
      });
    }
  }
  const existing = new Set(groups.map((g) => g.metadata.name));
  const create: VolumeGroupSnapshot[] = [];
  for (const run of runs) {
    const label = runLabel(run);
    const blocked = groupBlockedBy(observed, selection);
    if (blocked) {
      events.push({
        type: 'Warning',
        reason: BackupPolicyReason.GroupNotTaken,
        message: `${label}: no VolumeGroupSnapshot taken: ${blocked}`,
      });
      continue;
    }
    const group = buildGroup(policy, spec, selection, run.identity, run.time);
    if (!existing.has(group.metadata.name)) create.push(group);
    const names = selection.pvcs.map((p) => p.name);
    events.push({
      type: 'Normal',
      reason: BackupPolicyReason.GroupCreated,
      message: `${label}: VolumeGroupSnapshot ${group.metadata.name} takes ${names.length} PVC(s) at one instant: ${names.join(', ')}`,
    });
  }
  return { due, inProgress, skipped, create, events };
}

/** Why a group cannot be taken now, in words; undefined when it can. */
function groupBlockedBy(
  observed: BackupPolicyObservation,
  selection: GroupSelection,
): string | undefined {
  if (selection.pvcs.length === 0) {
    return `spec.selector matches no PVC in namespace ${observed.policy.metadata.namespace}`;
  }
  if (selection.blocking.length === 0) return undefined;
  return `${summariseProblems(
    selection.blocking.map((p) => p.message),
    'see status.pvcs',
  )} (a group is taken only when every selected PVC can be snapshotted)`;
}

function buildGroup(
  policy: BackupPolicy,
  spec: BackupPolicySpec,
  selection: GroupSelection,
  run: RunIdentity,
  runTime: Date,
): VolumeGroupSnapshot {
  const policyName = policy.metadata.name!;
  const annotations: Record<string, string> = {
    [ANNOTATION_RUN_TIME]: rfc3339(runTime),
    [ANNOTATION_POLICY_NAME]: policyName,
  };
  if (run.kind === 'run-now') annotations[ANNOTATION_RUN_NOW_TOKEN] = run.token;
  return {
    apiVersion: GROUP_SNAPSHOT_API_VERSION,
    kind: VOLUME_GROUP_SNAPSHOT_KIND,
    metadata: {
      name: groupSnapshotName(policyName, run),
      namespace: policy.metadata.namespace!,
      labels: { [LABEL_POLICY]: labelValue(policyName) },
      annotations,
    },
    spec: {
      source: { selector: structuredClone(spec.selector ?? {}) },
      ...(selection.className ? { volumeGroupSnapshotClassName: selection.className } : {}),
    },
  };
}

/** The policy's groups summarised: status, retention, the problems and Events they give. */
export interface GroupSummaries {
  status: BackupPolicyStatus;
  problems: Problem[];
  prune: PlannedGroupPrune[];
  events: PolicyEvent[];
}

interface LiveGroup {
  group: VolumeGroupSnapshot;
  name: string;
  time: Date;
  members: readonly VolumeSnapshot[];
  /** The PVCs its members are snapshots of. */
  pvcs: string[];
}

export function summariseGroups(
  observed: BackupPolicyObservation,
  resolved: ResolvedPolicy,
  selection: GroupSelection,
  previous: BackupPolicyStatus,
): GroupSummaries {
  const { spec } = resolved;
  const readyDeadlineMs = spec.readyDeadlineSeconds * 1000;
  const groupObservation = observed.groupSnapshots!;
  const live: LiveGroup[] = groupObservation.groups
    .filter((g) => !isDeleting(g))
    .map((group) => {
      const members = groupObservation.members(group.metadata.name!);
      return {
        group,
        name: group.metadata.name!,
        time: snapshotTime(group),
        members,
        pvcs: members.flatMap((m) => {
          const pvc = m.spec?.source?.persistentVolumeClaimName;
          return pvc ? [pvc] : [];
        }),
      };
    })
    .sort((a, b) => b.time.getTime() - a.time.getTime() || (a.name < b.name ? 1 : -1));
  const problems: Problem[] = [];
  const events: PolicyEvent[] = [];
  const newest = live[0];
  const lastGroup = newest
    ? summariseGroup(newest, readyDeadlineMs, spec, observed.now)
    : undefined;
  if (newest && lastGroup) {
    events.push(...groupEvents(newest, lastGroup, previous.lastGroup));
    if (lastGroup.problem) problems.push(lastGroup.problem);
  }
  const missing = missingMembers(observed, selection, live);
  problems.push(...missing.problems);
  const retained = retainGroups(observed, resolved, selection, live, missing.held);
  problems.push(...retained.problems);

  const readyGroups = live.filter((g) => isReady(g.group)).length;
  const memberCounts = live.flatMap((g) => g.members);
  const readyMembers = memberCounts.filter(isReady).length;
  const status: BackupPolicyStatus = {
    ...previous,
    pvcs: pvcSummaries(selection, live),
    selectedPvcs: selection.pvcs.length,
    readySnapshots: readyMembers,
    totalSnapshots: memberCounts.length,
    readyOverTotal: `${readyMembers}/${memberCounts.length}`,
    readyGroups,
    totalGroups: live.length,
    readyOverTotalGroups: `${readyGroups}/${live.length}`,
  };
  if (lastGroup) status.lastGroup = lastGroup.entry;
  else delete status.lastGroup;
  const newestReady = live.find((g) => isReady(g.group));
  const previousSuccess = time(previous.lastSuccessfulTime)?.getTime();
  if (
    newestReady &&
    (previousSuccess === undefined || newestReady.time.getTime() > previousSuccess)
  )
    status.lastSuccessfulTime = rfc3339(newestReady.time);
  return { status, problems, prune: retained.prune, events };
}

function summariseGroup(
  live: LiveGroup,
  readyDeadlineMs: number,
  spec: BackupPolicySpec,
  now: Date,
): { entry: GroupBackupStatus; problem?: Problem } {
  const { group, name, members } = live;
  const readyMembers = members.filter(isReady).length;
  const entry: GroupBackupStatus = {
    name,
    runTime: rfc3339(live.time),
    readyToUse: isReady(group),
    members: members.length,
    readyMembers,
    readyOverTotal: `${readyMembers}/${members.length}`,
  };
  let problem: Problem | undefined;
  if (hasFailed(group)) {
    problem = {
      reason: BackupPolicyReason.GroupFailed,
      message: `VolumeGroupSnapshot ${name} failed: ${group.status?.error?.message ?? 'no message'}`,
    };
  } else if (timedOut(group, readyDeadlineMs, now)) {
    problem = {
      reason: BackupPolicyReason.GroupTimedOut,
      message: `VolumeGroupSnapshot ${name} is not ready ${spec.readyDeadlineSeconds}s after it was created (spec.readyDeadlineSeconds), ${readyMembers} of ${members.length} member(s) ready; it is kept, and counts once it becomes ready`,
    };
  }
  return withProblem(entry, problem);
}

/** An Event when the newest group becomes ready, and when it fails or times out (once each). */
function groupEvents(
  live: LiveGroup,
  summary: { entry: GroupBackupStatus; problem?: Problem },
  before: GroupBackupStatus | undefined,
): PolicyEvent[] {
  const same = before?.name === live.name;
  if (summary.entry.readyToUse) {
    if (same && before.readyToUse) return [];
    return [
      {
        type: 'Normal',
        reason: BackupPolicyReason.GroupReady,
        message: `VolumeGroupSnapshot ${live.name} is ready: ${live.members.length} member snapshot(s), of PVC ${live.pvcs.join(', ')}`,
      },
    ];
  }
  if (summary.problem && !(same && before.message === summary.problem.message)) {
    return [{ type: 'Warning', reason: summary.problem.reason, message: summary.problem.message }];
  }
  return [];
}

/**
 * PVCs that groups of the policy hold but that the selector no longer selects: the newest
 * ready group holding each is kept (it may be its last backup), and a PVC gone from the
 * cluster is reported.
 */
function missingMembers(
  observed: BackupPolicyObservation,
  selection: GroupSelection,
  live: readonly LiveGroup[],
): { held: Set<string>; problems: Problem[] } {
  const namespace = observed.policy.metadata.namespace!;
  const existing = new Set(observed.pvcs.filter((p) => !isDeleting(p)).map((p) => p.metadata.name));
  const selected = new Set(selection.pvcs.map((p) => p.name));
  const held = new Set<string>();
  const deleted: string[] = [];
  const seen = new Set<string>();
  for (const g of live) {
    for (const pvc of g.pvcs) {
      if (selected.has(pvc) || seen.has(pvc)) continue;
      if (!isReady(g.group)) continue;
      seen.add(pvc);
      held.add(g.name);
      if (!existing.has(pvc)) {
        deleted.push(`PVC ${pvc} (held by VolumeGroupSnapshot ${g.name}, kept whole)`);
      }
    }
  }
  if (deleted.length === 0) return { held, problems: [] };
  return {
    held,
    problems: [
      {
        reason: BackupPolicyReason.MemberPVCDeleted,
        message: `a member PVC of the policy's groups is deleted from namespace ${namespace}: ${summariseProblems(deleted, 'see the VolumeGroupSnapshots of this policy')}; retention does not prune the newest ready group holding it (its last backup; delete that group by hand once it is not needed), and new groups take the PVCs the selector selects now`,
      },
    ],
  };
}

/** What retention prunes of the policy's groups, or why pruning is paused. */
function retainGroups(
  observed: BackupPolicyObservation,
  resolved: ResolvedPolicy,
  selection: GroupSelection,
  live: readonly LiveGroup[],
  held: ReadonlySet<string>,
): { prune: PlannedGroupPrune[]; problems: Problem[] } {
  const { spec } = resolved;
  const rules = retentionRules(spec);
  if (!rules || live.length === 0) return { prune: [], problems: [] };
  if (selection.blocking.length > 0 || selection.pvcs.length === 0) {
    // No group can be taken now, so the existing ones are all the policy has.
    return {
      prune: [],
      problems: [
        {
          reason: BackupPolicyReason.PruningPaused,
          message: `pruning of the policy's VolumeGroupSnapshots is paused until a group can be taken again`,
        },
      ],
    };
  }
  const inUse = snapshotsInUse(observed.restoreJobs, observed.pvcs);
  const readyDeadlineMs = spec.readyDeadlineSeconds * 1000;
  const decision = planRetention({
    snapshots: live.map((g) =>
      retentionFacts(
        {
          name: g.name,
          time: g.time,
          object: g.group,
          snapshots: g.members,
          held: held.has(g.name),
        },
        inUse,
        readyDeadlineMs,
        observed.now,
      ),
    ),
    rules,
    timeZone: resolved.zone,
    now: observed.now,
    suspended: spec.suspend,
  });
  const problems: Problem[] =
    decision.pausedReason && !spec.suspend
      ? [
          {
            reason: BackupPolicyReason.PruningPaused,
            message: `pruning of the policy's VolumeGroupSnapshots is paused: ${decision.pausedReason}`,
          },
        ]
      : [];
  const byName = new Map(live.map((g) => [g.name, g]));
  const prune = decision.prune.map((name) => ({
    name,
    members: byName.get(name)!.members.map((m) => m.metadata.name!),
    message: `no longer kept by retention (${describeRules(rules)})`,
  }));
  return { prune, problems };
}

/** Each selected PVC's line in status.pvcs: its member snapshots in the policy's groups. */
function pvcSummaries(selection: GroupSelection, live: readonly LiveGroup[]): PvcBackupStatus[] {
  return selection.pvcs.slice(0, MAX_STATUS_PVCS).map((p) => {
    const of = live.flatMap((g) =>
      g.members
        .filter((m) => m.spec?.source?.persistentVolumeClaimName === p.name)
        .map((m) => ({ member: m, time: g.time })),
    );
    const ready = of.filter((x) => isReady(x.member));
    const entry: PvcBackupStatus = {
      pvcName: p.name,
      readySnapshots: ready.length,
      totalSnapshots: of.length,
    };
    if (of[0]) entry.lastSnapshotName = of[0].member.metadata.name!;
    if (ready[0]) entry.lastReadyTime = rfc3339(ready[0].time);
    if (p.problem) entry.message = capMessage(p.problem.message);
    return entry;
  });
}

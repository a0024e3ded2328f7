/**
 * The BackupPolicy controller: thin glue between the informer caches, the pure planner
 * (backup-policy.ts) and the API server. One reconcile keeps the policy's owned
 * VolumeSnapshotClass (or, with consistency Group, VolumeGroupSnapshotClass) in sync, runs the
 * hooks that are due, creates the run's snapshots or group, prunes what retention lets go, and
 * writes the status.
 *
 * Status writes carry the resourceVersion the plan was made from, so a plan made from a stale
 * cache fails with a conflict and is made again instead of, say, counting a missed run twice.
 * Object creation is idempotent by name, so such a retry never creates anything twice.
 * What it shares with the RestoreJob controller is in ./policy-controller.ts.
 */
import type {
  BackupPolicy,
  BackupPolicyStatus,
  HookPhase,
  HookRun,
  RestoreJob,
} from '../api/index.js';
import type { VolumeGroupSnapshot, VolumeGroupSnapshotClass } from '../api/group-snapshot.js';
import type { VolumeSnapshot, VolumeSnapshotClass } from '../api/snapshot.js';
import {
  ANNOTATION_POLICY_NAME,
  CONDITION_DEGRADED,
  LABEL_POLICY,
  LABEL_POLICY_NAMESPACE,
} from '../api/index.js';
import type {
  CacheListOptions,
  Informer,
  InformerFactory,
  KubeObject,
  ResourceType,
} from '../kube/index.js';
import {
  createOrPatch,
  deepEqual,
  isAlreadyExists,
  isConflict,
  isNotFound,
  makeKey,
  onlyThisVersion,
  PersistentVolumeClaims,
  PersistentVolumes,
  type ReconcileResult,
  rfc3339,
  setCondition,
  splitKey,
} from '../kube/index.js';
import type { PodExecutor } from '../kube/exec.js';
import {
  VolumeGroupSnapshotClasses,
  VolumeGroupSnapshots,
  VolumeSnapshotClasses,
  VolumeSnapshots,
} from '../kube/resource.js';
import { errorMessage, type Logger } from '../observability/logger.js';
import type { SnapbackMetrics } from '../observability/metrics.js';
import type { BackupPolicyPlan, PlannedEvent, PlannedPrune } from './backup-policy.js';
import type { GroupObservation, PlannedGroupPrune } from './plan-groups.js';
import { classesToDelete, planBackupPolicy, validatePolicySpec } from './backup-policy.js';
import { planVerify, snapshotsInDrill, withVerifyStatus, type VerifyPlan } from './verify.js';
import { createScratch, deleteScratch, observeDrill } from './verify-controller.js';
import { FIELD_MANAGER, PolicyController, byName, namespacesOf } from './policy-controller.js';
import type { PolicyControllerOptions } from './policy-controller.js';
import {
  Pods,
  hookTargets,
  lastHooks,
  runHooks,
  skippingFailure,
  type HookOutcome,
  type Pod,
} from './hooks.js';
import { capMessage, summariseProblems } from './messages.js';
import { BackupPolicyReason } from './reasons.js';
import { labelValue } from './naming.js';
import type { Pv, Pvc } from './objects.js';
import { BackupPolicies, RestoreJobs, isDeleting, isHeldForRestore } from './objects.js';

const CONTROLLER = 'backuppolicy';
const INDEX_POLICY = 'snapback.policy/by-policy';
const INDEX_CLASS = 'snapback.policy/by-class';
const INDEX_GROUP = 'snapback.policy/by-group';

/** How a prune that failed is reported, for snapshots and for groups. */
interface PruneKind {
  noun: string;
  what: string;
  logKey: string;
  failedReason: string;
}
const SNAPSHOT_PRUNE: PruneKind = {
  noun: 'snapshot',
  what: 'snapshot',
  logKey: 'snapshot',
  failedReason: BackupPolicyReason.PruneFailed,
};
const GROUP_PRUNE: PruneKind = {
  noun: 'group',
  what: 'VolumeGroupSnapshot',
  logKey: 'group',
  failedReason: BackupPolicyReason.GroupPruneFailed,
};

export type BackupPolicyMetrics = Pick<
  SnapbackMetrics,
  | 'snapshotsCreated'
  | 'snapshotsFailed'
  | 'snapshotsPruned'
  | 'policyLastSuccess'
  | 'verifications'
  | 'policyLastVerificationSuccess'
  | 'reconcileDuration'
>;

export interface BackupPolicyControllerOptions extends PolicyControllerOptions<BackupPolicyMetrics> {
  /**
   * Runs hooks in pods (pods/exec). Without it hooks are disabled: a policy that sets them
   * reports HooksDisabled and takes no snapshot.
   */
  hookExecutor?: PodExecutor | undefined;
  /**
   * Whether the cluster serves groupsnapshot.storage.k8s.io/v1. Without it a consistency Group
   * policy reports GroupSnapshotAPIUnavailable and takes nothing.
   */
  groupSnapshots?: boolean | undefined;
  /** The image of restore drill Jobs (spec.verify); without it drills are disabled. */
  verifyImage?: string | undefined;
}

/**
 * One reconcile of one policy. `current` follows the status writes made on the way, so that
 * each is guarded by the resourceVersion of the one before; the hook fields follow what the
 * hooks did, for the final status.
 */
interface PolicyRun {
  readonly namespace: string;
  readonly name: string;
  /** The policy the plan was made from. */
  readonly policy: BackupPolicy;
  readonly plan: BackupPolicyPlan;
  readonly log: Logger;
  readonly labels: { namespace: string; policy: string };
  current: BackupPolicy;
  hookRun: HookRun | undefined;
  hookResults: BackupPolicyStatus['lastHooks'];
  hookFailure: string | undefined;
  skipRun: boolean;
  readonly hookEvents: PlannedEvent[];
  /** The restore drill step of this reconcile (verify.ts), once planned. */
  verify?: VerifyPlan;
  /** The snapshots a restore drill uses, as the live policy said before the last prune. */
  inDrill: Set<string>;
}

export class BackupPolicyController extends PolicyController<
  BackupPolicyMetrics,
  BackupPolicyCache
> {
  private readonly hookExecutor: PodExecutor | undefined;
  /** The group snapshot kinds, when the cluster serves groupsnapshot.storage.k8s.io/v1. */
  private readonly groupCache: GroupCache | undefined;
  private readonly verifyImage: string | undefined;

  constructor(options: BackupPolicyControllerOptions) {
    super(CONTROLLER, options, backupPolicyCache);
    this.hookExecutor = options.hookExecutor;
    this.verifyImage = options.verifyImage;
    this.groupCache = options.groupSnapshots ? groupSnapshotCache(options.informers) : undefined;

    const policiesInNamespace = (obj: KubeObject) =>
      this.cache.policies
        .list({ namespace: obj.metadata?.namespace ?? '' })
        .map((p) => makeKey(p.metadata.name!, p.metadata.namespace));
    this.controller
      .watch(this.cache.policies, { updatePredicate: specOrAnnotationsChanged })
      .watch(this.cache.snapshots, { toKeys: (s) => policyKeyOf(s) ?? this.groupPolicyOf(s) })
      .watch(this.cache.snapshotClasses, { toKeys: policyKeyOf })
      .watch(this.cache.pvcs, {
        toKeys: policiesInNamespace,
        updatePredicate: selectionFactsChanged,
      })
      .watch(this.cache.restoreJobs, {
        toKeys: policiesInNamespace,
        updatePredicate: restoreUseChanged,
      });
    if (this.groupCache) {
      this.controller
        .watch(this.groupCache.groups, { toKeys: policyKeyOf })
        .watch(this.groupCache.classes, { toKeys: policyKeyOf });
    }
  }

  protected async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const policy = this.cache.policies.get(name, namespace);
    if (!policy) {
      await this.deleteUnusedClasses(namespace!, name, {});
      return;
    }
    const run = this.plan(key, policy);
    await this.syncOwnedClass(run.plan.ownedClass);
    await this.syncOwnedGroupClass(run.plan.ownedGroupClass);
    await this.runDuePostHooks(run);
    await this.runPreHooks(run);
    await this.createSnapshots(run);
    await this.createGroups(run);
    await this.runDrill(run);
    await this.prune(run);
    await this.finish(run);
    if (!run.plan.blockedBy) {
      await this.deleteUnusedClasses(run.namespace, name, {
        snapshotClass: run.plan.ownedClass?.metadata.name,
        groupClass: run.plan.ownedGroupClass?.metadata.name,
      });
    }
    const wakeUps = [run.plan.requeueAfterMs, run.verify?.requeueAfterMs].filter(
      (ms): ms is number => ms !== undefined,
    );
    return wakeUps.length > 0 ? { requeueAfter: Math.min(...wakeUps) } : undefined;
  }

  private plan(key: string, policy: BackupPolicy): PolicyRun {
    const { namespace, name } = splitKey(key);
    const groupSnapshots = this.groupObservation(key);
    const plan = planBackupPolicy({
      policy,
      pvcs: this.cache.pvcs.list({ namespace: namespace! }),
      volume: (pvName) => this.cache.pvs.get(pvName),
      snapshotClasses: this.cache.snapshotClasses.list(),
      snapshots: this.cache.snapshots.byIndex(INDEX_POLICY, key),
      restoreJobs: this.cache.restoreJobs.list({ namespace: namespace! }),
      namespacesWithPvc: (pvcName) => namespacesOf(this.cache.pvcs, pvcName),
      now: this.clock.now(),
      hooksEnabled: this.hookExecutor !== undefined,
      ...(groupSnapshots ? { groupSnapshots } : {}),
    });
    return {
      namespace: namespace!,
      name,
      policy,
      plan,
      log: this.logger.child({ namespace, name }),
      labels: { namespace: namespace!, policy: name },
      current: policy,
      hookRun: policy.status?.hookRun,
      hookResults: policy.status?.lastHooks,
      hookFailure: undefined,
      skipRun: false,
      hookEvents: [],
      inDrill: snapshotsInDrill(policy.status),
    };
  }

  private groupObservation(key: string): GroupObservation | undefined {
    const { namespace } = splitKey(key);
    const groups = this.groupCache;
    return (
      groups && {
        groups: groups.groups.byIndex(INDEX_POLICY, key),
        classes: groups.classes.list(),
        members: (group) => this.cache.snapshots.byIndex(INDEX_GROUP, makeKey(group, namespace)),
      }
    );
  }

  /**
   * The restore drill step (verify.ts): its status is recorded before its scratch objects are
   * created or deleted, so a restart finds the drill where it was. Not while the policy is
   * blocked (its spec is then not known to be valid).
   */
  private async runDrill(run: PolicyRun): Promise<void> {
    if (run.plan.blockedBy) return;
    const verification = run.policy.status?.verification;
    const key = makeKey(run.name, run.namespace);
    const plan = planVerify({
      policy: run.policy,
      spec: validatePolicySpec(run.policy),
      snapshots: this.cache.snapshots.byIndex(INDEX_POLICY, key),
      groupSnapshots: this.groupObservation(key),
      pvcs: this.cache.pvcs.list({ namespace: run.namespace }),
      now: this.clock.now(),
      image: this.verifyImage,
      drill: verification && (await observeDrill(this.client, run, verification)),
    });
    run.verify = plan;
    if (plan.recordFirst) {
      run.current = await this.writeStatus(
        BackupPolicies,
        run.current,
        withVerifyStatus(run.current.status ?? {}, plan.status),
      );
    }
    await createScratch(this.client, plan.create);
    await deleteScratch(this.client, run, plan.delete);
  }

  private async syncOwnedClass(desired: VolumeSnapshotClass | undefined): Promise<void> {
    if (!desired || classInSync(this.cache.snapshotClasses.get(desired.metadata.name!), desired))
      return;
    await createOrPatch<VolumeSnapshotClass>(this.client, VolumeSnapshotClasses, desired, (cls) => {
      cls.metadata.labels = { ...cls.metadata.labels, ...desired.metadata.labels };
      cls.metadata.annotations = { ...cls.metadata.annotations, ...desired.metadata.annotations };
      cls.driver = desired.driver;
      cls.deletionPolicy = desired.deletionPolicy;
      cls.parameters = { ...desired.parameters };
    });
  }

  /** The policy of the group a member VolumeSnapshot belongs to, as a work-queue key. */
  private groupPolicyOf(snapshot: VolumeSnapshot): string | undefined {
    const owner = snapshot.metadata.ownerReferences?.find((o) => o.kind === 'VolumeGroupSnapshot');
    if (!owner || !this.groupCache) return undefined;
    const group = this.groupCache.groups.get(owner.name, snapshot.metadata.namespace);
    return group ? policyKeyOf(group) : undefined;
  }

  private async syncOwnedGroupClass(desired: VolumeGroupSnapshotClass | undefined): Promise<void> {
    if (!desired || !this.groupCache) return;
    if (classInSync(this.groupCache.classes.get(desired.metadata.name!), desired)) return;
    await createOrPatch<VolumeGroupSnapshotClass>(
      this.client,
      VolumeGroupSnapshotClasses,
      desired,
      (cls) => {
        cls.metadata.labels = { ...cls.metadata.labels, ...desired.metadata.labels };
        cls.metadata.annotations = { ...cls.metadata.annotations, ...desired.metadata.annotations };
        cls.driver = desired.driver;
        cls.deletionPolicy = desired.deletionPolicy;
        cls.parameters = { ...desired.parameters };
      },
    );
  }

  /** The run before: every snapshot is cut (or failed), so its post hooks are due. */
  private async runDuePostHooks(run: PolicyRun): Promise<void> {
    const previous = run.hookRun;
    if (!run.plan.postHooks || !previous) return;
    const outcomes = await this.runHookPhase(run, 'post', run.plan.postHooks.pvcs);
    const fatal = failedFatally(outcomes);
    if (fatal.length > 0) {
      run.hookFailure = `post hooks of ${previous.run} failed: ${summariseProblems(
        fatal.map((o) => o.description),
        'see status.lastHooks',
      )}`;
    }
    const rest: HookRun = { ...previous };
    delete rest.message;
    await this.recordHooks(
      run,
      {
        ...rest,
        state: 'Done',
        time: rfc3339(this.clock.now()),
        ...(run.hookFailure ? { message: run.hookFailure } : {}),
      },
      lastHooks(run.hookResults, outcomes),
    );
  }

  private async runPreHooks(run: PolicyRun): Promise<void> {
    if (!run.plan.preHooks) return;
    const { run: runName, pvcs: pvcNames, snapshots: names } = run.plan.preHooks;
    const outcomes = await this.runHookPhase(run, 'pre', pvcNames);
    const skip = skippingFailure(outcomes);
    if (skip) {
      // Post hooks always run: what the pre hooks that did run began is ended.
      const post = await this.runHookPhase(run, 'post', pvcNames);
      run.skipRun = true;
      run.hookFailure = `${runName} skipped, no snapshot taken: ${skip.description} (onError Fail)`;
      await this.recordHooks(
        run,
        {
          run: runName,
          state: 'Skipped',
          pvcs: pvcNames,
          message: run.hookFailure,
          time: rfc3339(this.clock.now()),
        },
        lastHooks([], [...outcomes, ...post]),
      );
      return;
    }
    // Recorded before any snapshot is created: after a restart, the post hooks of this run
    // are still found due once its snapshots are cut.
    await this.recordHooks(
      run,
      {
        run: runName,
        state: (run.plan.hooks?.post?.length ?? 0) > 0 ? 'PreHooksDone' : 'Done',
        pvcs: pvcNames,
        snapshots: names,
        time: rfc3339(this.clock.now()),
      },
      lastHooks([], outcomes),
    );
  }

  private async runHookPhase(
    run: PolicyRun,
    phase: HookPhase,
    pvcNames: readonly string[],
  ): Promise<HookOutcome[]> {
    const hooks = run.plan.hooks?.[phase] ?? [];
    const executor = this.hookExecutor;
    if (!executor || hooks.length === 0) return [];
    const pods = await this.client.list<Pod>(Pods, { namespace: run.namespace });
    const targets = hookTargets(phase, hooks, pvcNames, pods.items);
    if (targets.length === 0) {
      run.hookEvents.push({
        type: 'Normal',
        reason: BackupPolicyReason.HooksNotRun,
        message: `no Running pod mounts PVC ${pvcNames.join(', ')}: no ${phase} hook ran`,
      });
    }
    const outcomes = await runHooks(executor, run.namespace, targets, () => this.clock.now());
    for (const o of outcomes.filter((x) => x.failed)) {
      run.hookEvents.push({
        type: 'Warning',
        reason: BackupPolicyReason.HookFailed,
        message: `${o.description}; onError ${o.onError}${o.onError === 'Continue' ? ': the run goes on' : ''}`,
      });
    }
    const ok = outcomes.filter((x) => !x.failed).length;
    if (ok > 0) {
      run.hookEvents.push({
        type: 'Normal',
        reason: BackupPolicyReason.HooksRan,
        message: `${phase} hooks: ${ok} of ${outcomes.length} succeeded`,
      });
    }
    run.log.info('ran hooks', { phase, hooks: outcomes.length, failed: outcomes.length - ok });
    return outcomes;
  }

  private async recordHooks(
    run: PolicyRun,
    hookRun: HookRun,
    results: BackupPolicyStatus['lastHooks'],
  ): Promise<void> {
    run.hookRun = hookRun;
    run.hookResults = results;
    run.current = await this.writeStatus(BackupPolicies, run.current, {
      ...run.current.status,
      hookRun,
      lastHooks: results,
    });
  }

  /** A failure leaves the run unrecorded, so the next attempt retries the same names. */
  private async createSnapshots(run: PolicyRun): Promise<void> {
    const failures: string[] = [];
    for (const snapshot of run.skipRun ? [] : run.plan.create) {
      try {
        await this.client.create(VolumeSnapshots, snapshot, { fieldManager: FIELD_MANAGER });
        this.metrics?.snapshotsCreated.inc(run.labels);
      } catch (error) {
        if (isAlreadyExists(error)) continue;
        this.metrics?.snapshotsFailed.inc(run.labels);
        failures.push(`${snapshot.metadata.name}: ${errorMessage(error)}`);
        run.log.warn('could not create a snapshot', {
          snapshot: snapshot.metadata.name,
          error: errorMessage(error),
        });
      }
    }
    if (failures.length === 0) return;
    const message = `could not create ${failures.length} snapshot(s): ${summariseProblems(failures, 'see the controller log')}`;
    const conditions = setCondition(
      run.policy.status?.conditions,
      {
        type: CONDITION_DEGRADED,
        status: 'True',
        reason: BackupPolicyReason.SnapshotCreateFailed,
        message,
      },
      this.clock.now(),
    );
    await this.writeStatus(BackupPolicies, run.current, {
      ...run.current.status,
      conditions,
    });
    this.emit(run.policy, run.hookEvents);
    this.recorder.event(run.policy, 'Warning', BackupPolicyReason.SnapshotCreateFailed, message);
    throw new Error(message);
  }

  /** A failure leaves the run unrecorded, so the next attempt retries the same name. */
  private async createGroups(run: PolicyRun): Promise<void> {
    const failures: string[] = [];
    for (const group of run.plan.createGroups) {
      try {
        await this.client.create(VolumeGroupSnapshots, group, { fieldManager: FIELD_MANAGER });
        run.log.info('created a VolumeGroupSnapshot', { group: group.metadata.name });
      } catch (error) {
        if (isAlreadyExists(error)) continue;
        failures.push(`${group.metadata.name}: ${errorMessage(error)}`);
        run.log.warn('could not create a VolumeGroupSnapshot', {
          group: group.metadata.name,
          error: errorMessage(error),
        });
      }
    }
    if (failures.length === 0) return;
    const message = `could not create VolumeGroupSnapshot ${summariseProblems(failures, 'see the controller log')}`;
    const conditions = setCondition(
      run.policy.status?.conditions,
      {
        type: CONDITION_DEGRADED,
        status: 'True',
        reason: BackupPolicyReason.GroupCreateFailed,
        message: capMessage(message),
      },
      this.clock.now(),
    );
    await this.writeStatus(BackupPolicies, run.current, { ...run.current.status, conditions });
    this.recorder.event(run.policy, 'Warning', BackupPolicyReason.GroupCreateFailed, message);
    throw new Error(message);
  }

  /**
   * Deleting is the one step that cannot be undone, so it is never taken on the word of the
   * cache: the policy is read live before each deletion, and pruning stops when it changed
   * since the plan was made (a new plan follows) or is suspended. Each snapshot or group is
   * read live too, and deleted only in the version read.
   */
  private async prune(run: PolicyRun): Promise<void> {
    const planned = [
      ...run.plan.prune.map((prune) => ({
        kind: SNAPSHOT_PRUNE,
        name: prune.name,
        prune: () => this.pruneSnapshot(run, prune),
      })),
      ...run.plan.pruneGroups.map((prune) => ({
        kind: GROUP_PRUNE,
        name: prune.name,
        prune: () => this.pruneGroup(run, prune),
      })),
    ];
    for (const [done, { kind, name, prune }] of planned.entries()) {
      const stopped = await this.pruneStoppedBy(run);
      if (stopped) {
        run.log.info('pruning stopped', { reason: stopped, remaining: planned.length - done });
        return;
      }
      try {
        await prune();
      } catch (error) {
        this.pruneFailed(run, kind, name, error);
      }
    }
  }

  /** Why pruning must stop now, from the policy as the API server has it; undefined: go on. */
  private async pruneStoppedBy(run: PolicyRun): Promise<string | undefined> {
    const planned = run.policy;
    const live = await this.client.get<BackupPolicy>(
      BackupPolicies,
      planned.metadata.name!,
      planned.metadata.namespace,
    );
    if (!live) return 'the policy was deleted';
    run.inDrill = snapshotsInDrill(live.status);
    if (live.metadata.deletionTimestamp) return 'the policy is being deleted';
    if (live.metadata.uid !== planned.metadata.uid) return 'the policy was replaced';
    if (live.metadata.generation !== planned.metadata.generation) {
      return `the spec changed (generation ${planned.metadata.generation} -> ${live.metadata.generation}) since the plan was made`;
    }
    if (live.spec?.suspend) return 'the policy is suspended';
    return undefined;
  }

  private async pruneSnapshot(run: PolicyRun, prune: PlannedPrune): Promise<void> {
    // Read live and delete only that version: a RestoreJob holding it (a finalizer it adds
    // before using it) either shows here or makes the delete fail as a conflict.
    const snapshot = await this.client.get<VolumeSnapshot>(
      VolumeSnapshots,
      prune.name,
      run.namespace,
    );
    if (!snapshot || isDeleting(snapshot)) return;
    if (isHeldForRestore(snapshot) || run.inDrill.has(prune.name)) {
      run.log.info('not pruning a snapshot a restore is using', { snapshot: prune.name });
      return;
    }
    await this.client.delete(VolumeSnapshots, prune.name, run.namespace, onlyThisVersion(snapshot));
    this.recorder.event(
      run.policy,
      'Normal',
      BackupPolicyReason.Pruned,
      `deleted snapshot ${prune.name} of PVC ${prune.pvc}: ${prune.message}`,
    );
    this.metrics?.snapshotsPruned.inc(run.labels);
    run.log.info('pruned a snapshot', { snapshot: prune.name, pvc: prune.pvc });
  }

  /**
   * Retention deletes a VolumeGroupSnapshot, never one of its members: the snapshot controller
   * deletes the members with their group, so no group is ever left partly deleted. The group
   * is deleted only after its members were checked live for a restore holding one.
   */
  private async pruneGroup(run: PolicyRun, prune: PlannedGroupPrune): Promise<void> {
    const group = await this.client.get<VolumeGroupSnapshot>(
      VolumeGroupSnapshots,
      prune.name,
      run.namespace,
    );
    if (!group || isDeleting(group)) return;
    for (const member of prune.members) {
      const snapshot = await this.client.get<VolumeSnapshot>(
        VolumeSnapshots,
        member,
        run.namespace,
      );
      if ((snapshot && isHeldForRestore(snapshot)) || run.inDrill.has(member)) {
        run.log.info('not pruning a group a restore is using', {
          group: prune.name,
          snapshot: member,
        });
        return;
      }
    }
    await this.client.delete(
      VolumeGroupSnapshots,
      prune.name,
      run.namespace,
      onlyThisVersion(group),
    );
    this.recorder.event(
      run.policy,
      'Normal',
      BackupPolicyReason.GroupPruned,
      `deleted VolumeGroupSnapshot ${prune.name} with its ${prune.members.length} member snapshot(s): ${prune.message}`,
    );
    if (prune.members.length > 0)
      this.metrics?.snapshotsPruned.inc(run.labels, prune.members.length);
    run.log.info('pruned a group', { group: prune.name, members: prune.members.length });
  }

  private pruneFailed(run: PolicyRun, kind: PruneKind, name: string, error: unknown): void {
    if (isNotFound(error)) return;
    if (isConflict(error)) {
      // It changed since it was read (say, a restore now holds it): decided next time.
      run.log.info(`a ${kind.noun} changed before it was pruned`, { [kind.logKey]: name });
      return;
    }
    this.recorder.event(
      run.policy,
      'Warning',
      kind.failedReason,
      `could not delete ${kind.what} ${name}: ${errorMessage(error)}`,
    );
    run.log.warn(`could not prune a ${kind.noun}`, {
      [kind.logKey]: name,
      error: errorMessage(error),
    });
  }

  /** The final status write, then the run's events, metrics and log line. */
  private async finish(run: PolicyRun): Promise<void> {
    const { plan, policy } = run;
    await this.writeStatus(BackupPolicies, run.current, this.finalStatus(run));
    this.emit(policy, run.hookEvents);
    // A skipped run started nothing.
    this.emit(
      policy,
      run.skipRun
        ? plan.events.filter((e) => e.reason !== BackupPolicyReason.RunStarted)
        : plan.events,
    );
    const newlyFailed = plan.newlyFailedSnapshots;
    if (newlyFailed > 0) this.metrics?.snapshotsFailed.inc(run.labels, newlyFailed);
    const lastSuccess = plan.status.lastSuccessfulTime;
    if (lastSuccess)
      this.metrics?.policyLastSuccess.set(run.labels, Date.parse(lastSuccess) / 1000);
    if (plan.create.length > 0 && !run.skipRun)
      run.log.info('started a run', { snapshots: plan.create.length });
    if (plan.createGroups.length > 0)
      run.log.info('started a run', { groups: plan.createGroups.length });
    this.finishDrill(run);
  }

  /** The drill's Events, its result in the metrics and log, and the staleness gauge. */
  private finishDrill(run: PolicyRun): void {
    const drill = run.verify;
    if (!drill) return;
    this.emit(run.policy, drill.events);
    if (drill.finished) {
      this.metrics?.verifications.inc({ ...run.labels, result: drill.finished.result });
      run.log.info('a restore drill ended', {
        result: drill.finished.result,
        reason: drill.finished.reason,
      });
    }
    const since = drill.status.lastSuccessfulVerificationTime ?? drill.status.verifySince;
    if (since && run.policy.spec?.verify) {
      this.metrics?.policyLastVerificationSuccess.set(run.labels, Date.parse(since) / 1000);
    } else if (!run.policy.spec?.verify) {
      this.metrics?.policyLastVerificationSuccess.remove(run.labels);
    }
  }

  private finalStatus(run: PolicyRun): BackupPolicyStatus {
    const status: BackupPolicyStatus = run.verify
      ? withVerifyStatus(run.plan.status, run.verify.status)
      : { ...run.plan.status };
    const problem = run.verify?.problem;
    const degraded = status.conditions?.find((c) => c.type === CONDITION_DEGRADED);
    if (problem && degraded?.status !== 'True') {
      status.conditions = setCondition(
        status.conditions,
        { type: CONDITION_DEGRADED, status: 'True', ...problem, ...this.generationOf(run) },
        this.clock.now(),
      );
    }
    if (run.hookRun) status.hookRun = run.hookRun;
    if (run.hookResults) status.lastHooks = run.hookResults;
    if (run.hookFailure) {
      status.conditions = setCondition(
        status.conditions,
        {
          type: CONDITION_DEGRADED,
          status: 'True',
          reason: BackupPolicyReason.HookFailed,
          message: capMessage(run.hookFailure),
          ...this.generationOf(run),
        },
        this.clock.now(),
      );
    }
    return status;
  }

  private generationOf(run: PolicyRun): { observedGeneration?: number } {
    const generation = run.policy.metadata.generation;
    return generation !== undefined ? { observedGeneration: generation } : {};
  }

  /**
   * The classes the policy owns that nothing of it uses any more (classesToDelete): its
   * VolumeSnapshotClasses no snapshot uses and, where the cluster serves groups, its
   * VolumeGroupSnapshotClasses no group uses. `wanted` keeps the classes its spec asks for now.
   */
  private async deleteUnusedClasses(
    namespace: string,
    policy: string,
    wanted: { snapshotClass?: string; groupClass?: string },
  ): Promise<void> {
    const groups = this.groupCache;
    const kinds: OwnedClasses[] = [
      {
        type: VolumeSnapshotClasses,
        classes: this.cache.snapshotClasses,
        wanted: wanted.snapshotClass,
        users: 'snapshot',
        usedBy: (cls) => this.cache.snapshots.byIndex(INDEX_CLASS, cls).length,
      },
      ...(groups
        ? [
            {
              type: VolumeGroupSnapshotClasses,
              classes: groups.classes,
              wanted: wanted.groupClass,
              users: 'group',
              usedBy: (cls: string) =>
                groups.groups.list().filter((g) => g.spec?.volumeGroupSnapshotClassName === cls)
                  .length,
            },
          ]
        : []),
    ];
    for (const kind of kinds) {
      const owned = kind.classes.list({
        labelSelector: {
          matchLabels: { [LABEL_POLICY]: labelValue(policy), [LABEL_POLICY_NAMESPACE]: namespace },
        },
      });
      for (const name of classesToDelete(namespace, policy, kind.wanted, owned, kind.usedBy)) {
        try {
          await this.client.delete(kind.type, name);
          this.logger.info(`deleted an owned ${kind.type.kind} no ${kind.users} uses`, {
            namespace,
            policy,
            class: name,
          });
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
      }
    }
  }
}

/** The policy a snapshot or owned class belongs to, as a work-queue key. */
function policyKeyOf(obj: KubeObject): string | undefined {
  const labels = obj.metadata?.labels ?? {};
  const annotation = obj.metadata?.annotations?.[ANNOTATION_POLICY_NAME];
  if (!labels[LABEL_POLICY] || !annotation) return undefined;
  // Owned classes are cluster-scoped and name `namespace/policy`; snapshots name the policy.
  if (annotation.includes('/')) return annotation;
  return obj.metadata?.namespace ? makeKey(annotation, obj.metadata.namespace) : undefined;
}

const failedFatally = (outcomes: readonly HookOutcome[]) =>
  outcomes.filter((o) => o.failed && o.onError === 'Fail');

/** A resync (same object twice) always passes: it is the safety net of level-based control. */
const isResync = (a: KubeObject, b: KubeObject) =>
  a.metadata?.resourceVersion === b.metadata?.resourceVersion;

/** The policy's own status writes need no new look; spec, annotations (run-now) and deletion do. */
function specOrAnnotationsChanged(a: BackupPolicy, b: BackupPolicy): boolean {
  return (
    isResync(a, b) ||
    a.metadata.generation !== b.metadata.generation ||
    !deepEqual(a.metadata.annotations ?? {}, b.metadata.annotations ?? {}) ||
    a.metadata.deletionTimestamp !== b.metadata.deletionTimestamp
  );
}

/**
 * What a policy reads from a PVC: labels (selection), phase and volume (Bound, driver),
 * dataSource (in use), deletion. Finalizer churn from the snapshot controller is ignored.
 */
function selectionFactsChanged(a: Pvc, b: Pvc): boolean {
  return (
    isResync(a, b) ||
    !deepEqual(a.metadata.labels ?? {}, b.metadata.labels ?? {}) ||
    a.status?.phase !== b.status?.phase ||
    a.spec?.volumeName !== b.spec?.volumeName ||
    a.metadata.deletionTimestamp !== b.metadata.deletionTimestamp
  );
}

/** What a policy reads from a RestoreJob: whether, and which snapshot, it still uses. */
function restoreUseChanged(a: RestoreJob, b: RestoreJob): boolean {
  return (
    isResync(a, b) ||
    a.status?.phase !== b.status?.phase ||
    a.status?.snapshotName !== b.status?.snapshotName
  );
}

function classInSync<C extends VolumeSnapshotClass | VolumeGroupSnapshotClass>(
  current: C | undefined,
  desired: C,
): boolean {
  if (!current) return false;
  const labels = desired.metadata.labels ?? {};
  return (
    current.driver === desired.driver &&
    current.deletionPolicy === desired.deletionPolicy &&
    deepEqual(current.parameters ?? {}, desired.parameters ?? {}) &&
    Object.entries(labels).every(([k, v]) => current.metadata.labels?.[k] === v)
  );
}

type BackupPolicyCache = ReturnType<typeof backupPolicyCache>;

/** The kinds the BackupPolicy controller reads, with the indexes it looks them up by. */
function backupPolicyCache(informers: InformerFactory) {
  return {
    policies: informers.informer<BackupPolicy>(BackupPolicies),
    restoreJobs: informers.informer<RestoreJob>(RestoreJobs),
    pvcs: informers.informer<Pvc>(PersistentVolumeClaims, { indexers: byName }),
    pvs: informers.informer<Pv>(PersistentVolumes),
    snapshotClasses: informers.informer<VolumeSnapshotClass>(VolumeSnapshotClasses),
    snapshots: informers.informer<VolumeSnapshot>(VolumeSnapshots, {
      indexers: {
        [INDEX_POLICY]: (s) => {
          const key = policyKeyOf(s);
          return key ? [key] : [];
        },
        [INDEX_CLASS]: (s) =>
          s.spec?.volumeSnapshotClassName ? [s.spec.volumeSnapshotClassName] : [],
        // A group's member names its group as owner.
        [INDEX_GROUP]: (s) =>
          (s.metadata.ownerReferences ?? [])
            .filter((o) => o.kind === 'VolumeGroupSnapshot')
            .map((o) => makeKey(o.name, s.metadata.namespace)),
      },
    }),
  };
}

/** The classes of one kind a policy may own, and what uses them. */
interface OwnedClasses {
  type: ResourceType;
  classes: {
    list(options: CacheListOptions): readonly { metadata: VolumeSnapshotClass['metadata'] }[];
  };
  wanted: string | undefined;
  /** What uses a class, as log lines name it. */
  users: string;
  usedBy(className: string): number;
}

interface GroupCache {
  groups: Informer<VolumeGroupSnapshot>;
  classes: Informer<VolumeGroupSnapshotClass>;
}

function groupSnapshotCache(informers: InformerFactory): GroupCache {
  return {
    groups: informers.informer<VolumeGroupSnapshot>(VolumeGroupSnapshots, {
      indexers: {
        [INDEX_POLICY]: (g) => {
          const key = policyKeyOf(g);
          return key ? [key] : [];
        },
      },
    }),
    classes: informers.informer<VolumeGroupSnapshotClass>(VolumeGroupSnapshotClasses),
  };
}

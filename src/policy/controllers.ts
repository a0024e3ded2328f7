/**
 * The BackupPolicy and RestoreJob reconcilers: thin glue between the informer caches, the
 * pure planners (backup-policy.ts, restore-job.ts) and the API server.
 *
 * Status writes carry the resourceVersion the plan was made from, so a plan made from a stale
 * cache fails with a conflict and is made again instead of, say, counting a missed run twice.
 * Object creation is idempotent by name, so such a retry never creates anything twice.
 */
import type {
  BackupPolicy,
  BackupPolicyStatus,
  HookPhase,
  HookRun,
  RestoreJob,
  VolumeSnapshot,
  VolumeSnapshotClass,
  VolumeSnapshotContent,
} from '../api/index.js';
import {
  ANNOTATION_POLICY_NAME,
  CONDITION_DEGRADED,
  LABEL_POLICY,
  LABEL_POLICY_NAMESPACE,
  LABEL_RESTORE_JOB,
} from '../api/index.js';
import type {
  EventRecorder,
  Informer,
  KubeClient,
  KubeObject,
  ResourceType,
} from '../kube/index.js';
import {
  Controller,
  type ReconcileResult,
  KubeEventRecorder,
  type Manager,
  PersistentVolumeClaims,
  PersistentVolumes,
  StorageClasses,
  createMergePatch,
  createOrPatch,
  deepEqual,
  isAlreadyExists,
  isConflict,
  isNotFound,
  makeKey,
  rfc3339,
  setCondition,
  splitKey,
} from '../kube/index.js';
import { errorMessage, silentLogger, type Logger } from '../observability/logger.js';
import { timeReconcile, type SnapbackMetrics } from '../observability/metrics.js';
import {
  VolumeSnapshotClasses,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../kube/resource.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { PlannedEvent } from './backup-policy.js';
import { classesToDelete, planBackupPolicy } from './backup-policy.js';
import { capMessage, summariseProblems } from './messages.js';
import { labelValue } from './naming.js';
import type { Pv, Pvc, StorageClass } from './objects.js';
import {
  BackupPolicies,
  RestoreJobs,
  isDeleting,
  isHeldForRestore,
  isTerminal,
} from './objects.js';
import { planRestoreJob, staleRestoreHolds } from './restore-job.js';
import type { PodExecutor } from '../kube/exec.js';
import {
  Pods,
  REASON_HOOK_FAILED,
  hookTargets,
  lastHooks,
  runHooks,
  skippingFailure,
  type HookOutcome,
  type Pod,
} from './hooks.js';

const INDEX_POLICY = 'snapback.policy/by-policy';
const INDEX_CLASS = 'snapback.policy/by-class';
const INDEX_NAME = 'snapback.policy/by-name';

const FIELD_MANAGER = 'snapback-policy-controller';

export interface PolicyControllerOptions {
  clock?: Clock;
  logger?: Logger;
  events?: EventRecorder;
  /** Concurrent reconciles per controller. */
  workers?: number;
  /** How long a RestoreJob waits for a named snapshot to appear before failing. */
  restoreSourceWaitMs?: number;
  /** Prometheus series to update (from `createMetrics()`); none when absent. */
  metrics?: PolicyMetrics;
  /**
   * Runs BackupPolicy hooks in pods (pods/exec). Without it hooks are disabled: a policy that
   * sets them reports HooksDisabled and takes no snapshot.
   */
  hookExecutor?: PodExecutor;
}

export type PolicyMetrics = Pick<
  SnapbackMetrics,
  | 'snapshotsCreated'
  | 'snapshotsFailed'
  | 'snapshotsPruned'
  | 'restores'
  | 'policyLastSuccess'
  | 'reconcileDuration'
>;

export interface PolicyControllers {
  backupPolicies: Controller;
  restoreJobs: Controller;
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

function eventsFor(
  recorder: EventRecorder,
  obj: KubeObject,
  events: readonly PlannedEvent[],
): void {
  for (const e of events) recorder.event(obj, e.type, e.reason, e.message);
}

/**
 * Adds both controllers (and the informers they need) to a manager, so they share caches
 * with anything else the process runs, such as the embedded snapshot stack.
 */
export function addPolicyControllers(
  manager: Manager,
  options: PolicyControllerOptions = {},
): PolicyControllers {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger();
  const client = manager.client;
  const recorder =
    options.events ?? new KubeEventRecorder({ client, component: FIELD_MANAGER, clock, logger });
  const metrics = options.metrics;
  const timed = (controller: string, reconcile: () => Promise<ReconcileResult>) =>
    metrics
      ? timeReconcile(metrics, controller, reconcile, (r) =>
          r?.requeueAfter !== undefined ? 'requeue' : 'success',
        )
      : reconcile();
  const informers = manager.informers;
  const policies = informers.informer<BackupPolicy>(BackupPolicies);
  const restoreJobs = informers.informer<RestoreJob>(RestoreJobs);
  const pvcs = informers.informer<Pvc>(PersistentVolumeClaims, {
    indexers: { [INDEX_NAME]: (p) => [p.metadata.name!] },
  });
  const pvs = informers.informer<Pv>(PersistentVolumes);
  const storageClasses = informers.informer<StorageClass>(StorageClasses);
  const snapshotClasses = informers.informer<VolumeSnapshotClass>(VolumeSnapshotClasses);
  const contents = informers.informer<VolumeSnapshotContent>(VolumeSnapshotContents);
  const snapshots = informers.informer<VolumeSnapshot>(VolumeSnapshots, {
    indexers: {
      [INDEX_POLICY]: (s) => {
        const key = policyKeyOf(s);
        return key ? [key] : [];
      },
      [INDEX_CLASS]: (s) =>
        s.spec?.volumeSnapshotClassName ? [s.spec.volumeSnapshotClassName] : [],
      [INDEX_NAME]: (s) => [s.metadata.name!],
    },
  });

  const namespacesOf = <T extends KubeObject>(informer: Informer<T>, name: string) =>
    informer.byIndex(INDEX_NAME, name).map((o) => o.metadata!.namespace!);

  const policyLog = logger.child({ controller: 'backuppolicy' });
  const backupPolicies = new Controller({
    name: 'backuppolicy',
    workers: options.workers ?? 4,
    logger,
    reconcile: (key) =>
      timed('backuppolicy', async () => {
        const { namespace, name } = splitKey(key);
        const policy = policies.get(name, namespace);
        if (!policy) {
          await deleteUnusedClasses(namespace!, name, undefined);
          return;
        }
        const plan = planBackupPolicy({
          policy,
          pvcs: pvcs.list({ namespace: namespace! }),
          volume: (pvName) => pvs.get(pvName),
          snapshotClasses: snapshotClasses.list(),
          snapshots: snapshots.byIndex(INDEX_POLICY, key),
          restoreJobs: restoreJobs.list({ namespace: namespace! }),
          namespacesWithPvc: (pvcName) => namespacesOf(pvcs, pvcName),
          now: clock.now(),
          hooksEnabled: options.hookExecutor !== undefined,
        });
        const log = policyLog.child({ namespace, name });
        const labels = { namespace: namespace!, policy: name };

        if (
          plan.ownedClass &&
          !classInSync(snapshotClasses.get(plan.ownedClass.metadata.name!), plan.ownedClass)
        ) {
          const desired = plan.ownedClass;
          await createOrPatch<VolumeSnapshotClass>(
            client,
            VolumeSnapshotClasses,
            desired,
            (cls) => {
              cls.metadata.labels = { ...cls.metadata.labels, ...desired.metadata.labels };
              cls.metadata.annotations = {
                ...cls.metadata.annotations,
                ...desired.metadata.annotations,
              };
              cls.driver = desired.driver;
              cls.deletionPolicy = desired.deletionPolicy;
              cls.parameters = { ...desired.parameters };
            },
          );
        }

        // Hooks. `current` follows the status writes made on the way, so that each is guarded
        // by the resourceVersion of the one before.
        let current = policy;
        let hookRun = policy.status?.hookRun;
        let hookResults = policy.status?.lastHooks;
        let hookFailure: string | undefined;
        let skipRun = false;
        const hookEvents: PlannedEvent[] = [];
        const executor = options.hookExecutor;
        const runPhase = async (phase: HookPhase, pvcNames: readonly string[]) => {
          const hooks = plan.hooks?.[phase] ?? [];
          if (!executor || hooks.length === 0) return [];
          const pods = await client.list<Pod>(Pods, { namespace: namespace! });
          const targets = hookTargets(phase, hooks, pvcNames, pods.items);
          if (targets.length === 0) {
            hookEvents.push({
              type: 'Normal',
              reason: 'HooksNotRun',
              message: `no Running pod mounts PVC ${pvcNames.join(', ')}: no ${phase} hook ran`,
            });
          }
          const outcomes = await runHooks(executor, namespace!, targets, () => clock.now());
          for (const o of outcomes.filter((x) => x.failed)) {
            hookEvents.push({
              type: 'Warning',
              reason: REASON_HOOK_FAILED,
              message: `${o.description}; onError ${o.onError}${o.onError === 'Continue' ? ': the run goes on' : ''}`,
            });
          }
          const ok = outcomes.filter((x) => !x.failed).length;
          if (ok > 0) {
            hookEvents.push({
              type: 'Normal',
              reason: 'HooksRan',
              message: `${phase} hooks: ${ok} of ${outcomes.length} succeeded`,
            });
          }
          log.info('ran hooks', { phase, hooks: outcomes.length, failed: outcomes.length - ok });
          return outcomes;
        };
        const failedFatally = (outcomes: readonly HookOutcome[]) =>
          outcomes.filter((o) => o.failed && o.onError === 'Fail');
        const recordHooks = async (run: HookRun, results: BackupPolicyStatus['lastHooks']) => {
          hookRun = run;
          hookResults = results;
          current = await writeStatus(client, BackupPolicies, current, {
            ...current.status,
            hookRun,
            lastHooks: hookResults,
          });
        };

        if (plan.postHooks && hookRun) {
          // The run before: every snapshot is cut (or failed), so its post hooks are due.
          const outcomes = await runPhase('post', plan.postHooks.pvcs);
          const fatal = failedFatally(outcomes);
          if (fatal.length > 0) {
            hookFailure = `post hooks of ${hookRun.run} failed: ${summariseProblems(
              fatal.map((o) => o.description),
              'see status.lastHooks',
            )}`;
          }
          const rest: HookRun = { ...hookRun };
          delete rest.message;
          await recordHooks(
            {
              ...rest,
              state: 'Done',
              time: rfc3339(clock.now()),
              ...(hookFailure ? { message: hookFailure } : {}),
            },
            lastHooks(hookResults, outcomes),
          );
        }

        if (plan.preHooks) {
          const { run, pvcs: pvcNames, snapshots: names } = plan.preHooks;
          const outcomes = await runPhase('pre', pvcNames);
          const skip = skippingFailure(outcomes);
          if (skip) {
            // Post hooks always run: what the pre hooks that did run began is ended.
            const post = await runPhase('post', pvcNames);
            skipRun = true;
            hookFailure = `${run} skipped, no snapshot taken: ${skip.description} (onError Fail)`;
            await recordHooks(
              {
                run,
                state: 'Skipped',
                pvcs: pvcNames,
                message: hookFailure,
                time: rfc3339(clock.now()),
              },
              lastHooks([], [...outcomes, ...post]),
            );
          } else {
            // Recorded before any snapshot is created: after a restart, the post hooks of this
            // run are still found due once its snapshots are cut.
            await recordHooks(
              {
                run,
                state: (plan.hooks?.post?.length ?? 0) > 0 ? 'PreHooksDone' : 'Done',
                pvcs: pvcNames,
                snapshots: names,
                time: rfc3339(clock.now()),
              },
              lastHooks([], outcomes),
            );
          }
        }

        const failures: string[] = [];
        for (const snapshot of skipRun ? [] : plan.create) {
          try {
            await client.create(VolumeSnapshots, snapshot, { fieldManager: FIELD_MANAGER });
            metrics?.snapshotsCreated.inc(labels);
          } catch (error) {
            if (isAlreadyExists(error)) continue;
            metrics?.snapshotsFailed.inc(labels);
            failures.push(`${snapshot.metadata.name}: ${errorMessage(error)}`);
            log.warn('could not create a snapshot', {
              snapshot: snapshot.metadata.name,
              error: errorMessage(error),
            });
          }
        }
        if (failures.length > 0) {
          // The run is not recorded as done: the next attempt retries the same names.
          const message = `could not create ${failures.length} snapshot(s): ${summariseProblems(failures, 'see the controller log')}`;
          const conditions = setCondition(
            policy.status?.conditions,
            { type: CONDITION_DEGRADED, status: 'True', reason: 'SnapshotCreateFailed', message },
            clock.now(),
          );
          await writeStatus(client, BackupPolicies, current, { ...current.status, conditions });
          eventsFor(recorder, policy, hookEvents);
          recorder.event(policy, 'Warning', 'SnapshotCreateFailed', message);
          throw new Error(message);
        }

        for (const prune of plan.prune) {
          // Deleting is the one step that cannot be undone, so it is never taken on the word
          // of the cache: the policy is read live before each deletion, and pruning stops when
          // it changed since the plan was made (a new plan follows) or is suspended.
          const stopped = await pruneStoppedBy(policy);
          if (stopped) {
            log.info('pruning stopped', { reason: stopped, remaining: plan.prune.length });
            break;
          }
          try {
            // Read live and delete only that version: a RestoreJob holding it (a finalizer it
            // adds before using it) either shows here or makes the delete fail as a conflict.
            const snapshot = await client.get<VolumeSnapshot>(
              VolumeSnapshots,
              prune.name,
              namespace,
            );
            if (!snapshot || isDeleting(snapshot)) continue;
            if (isHeldForRestore(snapshot)) {
              log.info('not pruning a snapshot a restore is using', { snapshot: prune.name });
              continue;
            }
            await client.delete(VolumeSnapshots, prune.name, namespace, {
              preconditions: {
                ...(snapshot.metadata.uid ? { uid: snapshot.metadata.uid } : {}),
                ...(snapshot.metadata.resourceVersion
                  ? { resourceVersion: snapshot.metadata.resourceVersion }
                  : {}),
              },
            });
            recorder.event(
              policy,
              'Normal',
              'Pruned',
              `deleted snapshot ${prune.name} of PVC ${prune.pvc}: ${prune.message}`,
            );
            metrics?.snapshotsPruned.inc(labels);
            log.info('pruned a snapshot', { snapshot: prune.name, pvc: prune.pvc });
          } catch (error) {
            if (isNotFound(error)) continue;
            if (isConflict(error)) {
              // It changed since it was read (say, a restore now holds it): decided next time.
              log.info('a snapshot changed before it was pruned', { snapshot: prune.name });
              continue;
            }
            recorder.event(
              policy,
              'Warning',
              'PruneFailed',
              `could not delete snapshot ${prune.name}: ${errorMessage(error)}`,
            );
            log.warn('could not prune a snapshot', {
              snapshot: prune.name,
              error: errorMessage(error),
            });
          }
        }

        const status: BackupPolicyStatus = { ...plan.status };
        if (hookRun) status.hookRun = hookRun;
        if (hookResults) status.lastHooks = hookResults;
        if (hookFailure) {
          status.conditions = setCondition(
            status.conditions,
            {
              type: CONDITION_DEGRADED,
              status: 'True',
              reason: REASON_HOOK_FAILED,
              message: capMessage(hookFailure),
              ...(policy.metadata.generation !== undefined
                ? { observedGeneration: policy.metadata.generation }
                : {}),
            },
            clock.now(),
          );
        }
        await writeStatus(client, BackupPolicies, current, status);
        eventsFor(recorder, policy, hookEvents);
        // A skipped run started nothing.
        eventsFor(
          recorder,
          policy,
          skipRun ? plan.events.filter((e) => e.reason !== 'RunStarted') : plan.events,
        );
        const newlyFailed = plan.events.filter((e) => e.reason === 'SnapshotFailed').length;
        if (newlyFailed > 0) metrics?.snapshotsFailed.inc(labels, newlyFailed);
        const lastSuccess = plan.status.lastSuccessfulTime;
        if (lastSuccess) metrics?.policyLastSuccess.set(labels, Date.parse(lastSuccess) / 1000);
        if (plan.create.length > 0 && !skipRun)
          log.info('started a run', { snapshots: plan.create.length });
        if (!plan.blockedBy)
          await deleteUnusedClasses(namespace!, name, plan.ownedClass?.metadata.name);
        return plan.requeueAfterMs !== undefined
          ? { requeueAfter: plan.requeueAfterMs }
          : undefined;
      }),
  });

  /** Why pruning must stop now, from the policy as the API server has it; undefined: go on. */
  async function pruneStoppedBy(planned: BackupPolicy): Promise<string | undefined> {
    const live = await client.get<BackupPolicy>(
      BackupPolicies,
      planned.metadata.name!,
      planned.metadata.namespace,
    );
    if (!live) return 'the policy was deleted';
    if (live.metadata.deletionTimestamp) return 'the policy is being deleted';
    if (live.metadata.uid !== planned.metadata.uid) return 'the policy was replaced';
    if (live.metadata.generation !== planned.metadata.generation) {
      return `the spec changed (generation ${planned.metadata.generation} -> ${live.metadata.generation}) since the plan was made`;
    }
    if (live.spec?.suspend) return 'the policy is suspended';
    return undefined;
  }

  async function deleteUnusedClasses(
    namespace: string,
    policy: string,
    wanted: string | undefined,
  ): Promise<void> {
    const owned = snapshotClasses.list({
      labelSelector: {
        matchLabels: { [LABEL_POLICY]: labelValue(policy), [LABEL_POLICY_NAMESPACE]: namespace },
      },
    });
    const stale = classesToDelete(
      namespace,
      policy,
      wanted,
      owned,
      (cls) => snapshots.byIndex(INDEX_CLASS, cls).length,
    );
    for (const name of stale) {
      try {
        await client.delete(VolumeSnapshotClasses, name);
        policyLog.info('deleted an owned VolumeSnapshotClass no snapshot uses', {
          namespace,
          policy,
          class: name,
        });
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
  }

  const policiesInNamespace = (obj: KubeObject) =>
    policies
      .list({ namespace: obj.metadata?.namespace ?? '' })
      .map((p) => makeKey(p.metadata.name!, p.metadata.namespace));
  backupPolicies
    .watch(policies, { updatePredicate: specOrAnnotationsChanged })
    .watch(snapshots, { toKeys: policyKeyOf })
    .watch(snapshotClasses, { toKeys: policyKeyOf })
    .watch(pvcs, { toKeys: policiesInNamespace, updatePredicate: selectionFactsChanged })
    .watch(restoreJobs, { toKeys: policiesInNamespace, updatePredicate: restoreUseChanged });

  const restoreLog = logger.child({ controller: 'restorejob' });
  const restores = new Controller({
    name: 'restorejob',
    workers: options.workers ?? 4,
    logger,
    reconcile: (key) =>
      timed('restorejob', async () => {
        const { namespace, name } = splitKey(key);
        const namespaceSnapshots = snapshots.list({ namespace: namespace! });
        // Level-based: every reconcile of a namespace lets go of the holds of RestoreJobs that
        // finished, are being deleted or are gone, whichever job the key names.
        await releaseStaleHolds(namespaceSnapshots, restoreJobs.list({ namespace: namespace! }));
        const job = restoreJobs.get(name, namespace);
        if (!job || job.metadata.deletionTimestamp || isTerminal(job)) return;
        // The cache may not show a PVC created a moment ago; the target is read live so that a
        // restore in progress is never mistaken for one whose PVC vanished.
        const targetName = job.spec?.target?.pvcName;
        const liveTarget = targetName
          ? await client.get<Pvc>(PersistentVolumeClaims, targetName, namespace)
          : undefined;
        const cached = pvcs
          .list({ namespace: namespace! })
          .filter((p) => p.metadata.name !== targetName);
        const plan = planRestoreJob({
          job,
          snapshots: namespaceSnapshots,
          pvcs: liveTarget ? [...cached, liveTarget] : cached,
          storageClasses: storageClasses.list(),
          snapshotClasses: snapshotClasses.list(),
          content: (contentName) => contents.get(contentName),
          namespacesWithSnapshot: (snapshotName) => namespacesOf(snapshots, snapshotName),
          now: clock.now(),
          ...(options.restoreSourceWaitMs !== undefined
            ? { sourceWaitMs: options.restoreSourceWaitMs }
            : {}),
        });
        if (plan.hold && plan.holdFinalizer) {
          // Guarded by the resourceVersion the plan saw: a prune that got there first (or any
          // other change) makes this fail, and the job is planned again from what is there now.
          const held = plan.hold;
          await client.patch(VolumeSnapshots, held.metadata.name!, namespace, 'merge', {
            metadata: {
              resourceVersion: held.metadata.resourceVersion,
              finalizers: [...(held.metadata.finalizers ?? []), plan.holdFinalizer],
            },
          });
          restoreLog.info('holding the restore source', {
            namespace,
            name,
            snapshot: held.metadata.name,
          });
        }
        if (plan.createPvc) {
          try {
            await client.create(PersistentVolumeClaims, plan.createPvc, {
              fieldManager: FIELD_MANAGER,
            });
            restoreLog.info('created the restore target', { namespace, name, pvc: targetName });
          } catch (error) {
            // Someone else took the name in between: look again, and fail as TargetExists.
            if (isAlreadyExists(error))
              throw new Error(`PVC ${targetName} appeared while being created`, { cause: error });
            throw error;
          }
        }
        if (plan.status) await writeStatus(client, RestoreJobs, job, plan.status);
        eventsFor(recorder, job, plan.events);
        const phase = plan.status?.phase;
        if ((phase === 'Succeeded' || phase === 'Failed') && job.status?.phase !== phase) {
          metrics?.restores.inc({
            namespace: namespace!,
            result: phase === 'Succeeded' ? 'succeeded' : 'failed',
          });
        }
        return plan.requeueAfterMs !== undefined
          ? { requeueAfter: plan.requeueAfterMs }
          : undefined;
      }),
  });
  async function releaseStaleHolds(
    namespaceSnapshots: readonly VolumeSnapshot[],
    jobs: readonly RestoreJob[],
  ): Promise<void> {
    for (const { snapshot, finalizers } of staleRestoreHolds(namespaceSnapshots, jobs)) {
      try {
        await client.patch(
          VolumeSnapshots,
          snapshot.metadata.name!,
          snapshot.metadata.namespace,
          'merge',
          { metadata: { resourceVersion: snapshot.metadata.resourceVersion, finalizers } },
        );
        restoreLog.info('released a restore source', {
          namespace: snapshot.metadata.namespace,
          snapshot: snapshot.metadata.name,
        });
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
  }
  /** A snapshot still held by a job that is gone has no job to queue: it is queued by name. */
  const restoreKeysOfSnapshot = (snapshot: VolumeSnapshot) => {
    const keys = activeJobsInNamespace(snapshot);
    const jobs = restoreJobs.list({ namespace: snapshot.metadata.namespace ?? '' });
    if (staleRestoreHolds([snapshot], jobs).length > 0)
      keys.push(makeKey(snapshot.metadata.name!, snapshot.metadata.namespace));
    return keys;
  };
  const jobKeyOfPvc = (pvc: Pvc) => {
    const job = pvc.metadata.labels?.[LABEL_RESTORE_JOB];
    return job ? makeKey(job, pvc.metadata.namespace) : undefined;
  };
  const activeJobsInNamespace = (obj: KubeObject) =>
    restoreJobs
      .list({ namespace: obj.metadata?.namespace ?? '' })
      .filter((j) => !isTerminal(j))
      .map((j) => makeKey(j.metadata.name!, j.metadata.namespace));
  restores
    .watch(restoreJobs)
    .watch(pvcs, { toKeys: jobKeyOfPvc })
    .watch(snapshots, { toKeys: restoreKeysOfSnapshot });

  manager.add(backupPolicies).add(restores);
  return { backupPolicies, restoreJobs: restores };
}

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

function classInSync(
  current: VolumeSnapshotClass | undefined,
  desired: VolumeSnapshotClass,
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

/**
 * Merge-patches status with the difference, guarded by the resourceVersion the plan saw;
 * returns the object as written (or as it was, when nothing changed).
 */
async function writeStatus<
  T extends KubeObject & {
    metadata: { name?: string; namespace?: string; resourceVersion?: string };
    status?: object;
  },
>(client: KubeClient, type: ResourceType, obj: T, status: object): Promise<T> {
  const diff = createMergePatch(obj.status ?? {}, status);
  if (!diff) return obj;
  return client.patch<T>(
    type,
    obj.metadata.name!,
    obj.metadata.namespace,
    'merge',
    { metadata: { resourceVersion: obj.metadata.resourceVersion }, status: diff },
    { subresource: 'status', fieldManager: FIELD_MANAGER },
  );
}

/**
 * The BackupPolicy and RestoreJob reconcilers: thin glue between the informer caches, the
 * pure planners (backup-policy.ts, restore-job.ts) and the API server.
 *
 * Status writes carry the resourceVersion the plan was made from, so a plan made from a stale
 * cache fails with a conflict and is made again instead of, say, counting a missed run twice.
 * Object creation is idempotent by name, so such a retry never creates anything twice.
 */
import type {
  RestoreJob,
  VolumeSnapshot,
  VolumeSnapshotClass,
  VolumeSnapshotContent,
} from '../api/index.js';
import { LABEL_RESTORE_JOB } from '../api/index.js';
import type { EventRecorder, KubeObject } from '../kube/index.js';
import {
  Controller,
  KubeEventRecorder,
  type Manager,
  PersistentVolumeClaims,
  StorageClasses,
  isAlreadyExists,
  isNotFound,
  makeKey,
  splitKey,
} from '../kube/index.js';
import type { PodExecutor } from '../kube/exec.js';
import {
  VolumeSnapshotClasses,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../kube/resource.js';
import { silentLogger, type Logger } from '../observability/logger.js';
import type { SnapbackMetrics } from '../observability/metrics.js';
import { systemClock, type Clock } from '../util/clock.js';
import {
  BackupPolicyController,
  FIELD_MANAGER,
  byName,
  eventsFor,
  namespacesOf,
  timed,
  writeStatus,
} from './backup-policy-controller.js';
import type { Pvc, StorageClass } from './objects.js';
import { RestoreJobs, isTerminal } from './objects.js';
import { planRestoreJob, staleRestoreHolds } from './restore-job.js';

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
  const informers = manager.informers;
  const backupPolicies = new BackupPolicyController({
    client,
    informers,
    recorder,
    clock,
    logger,
    ...(options.workers !== undefined ? { workers: options.workers } : {}),
    ...(metrics ? { metrics } : {}),
    ...(options.hookExecutor ? { hookExecutor: options.hookExecutor } : {}),
  }).controller;

  const restoreJobs = informers.informer<RestoreJob>(RestoreJobs);
  const pvcs = informers.informer<Pvc>(PersistentVolumeClaims, { indexers: byName });
  const storageClasses = informers.informer<StorageClass>(StorageClasses);
  const snapshotClasses = informers.informer<VolumeSnapshotClass>(VolumeSnapshotClasses);
  const contents = informers.informer<VolumeSnapshotContent>(VolumeSnapshotContents);
  const snapshots = informers.informer<VolumeSnapshot>(VolumeSnapshots, { indexers: byName });

  const restoreLog = logger.child({ controller: 'restorejob' });
  const restores = new Controller({
    name: 'restorejob',
    workers: options.workers ?? 4,
    logger,
    reconcile: (key) =>
      timed(metrics, 'restorejob', async () => {
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

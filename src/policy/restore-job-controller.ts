/**
 * The RestoreJob controller: thin glue between the informer caches, the pure planner
 * (restore-job.ts) and the API server. One reconcile lets go of the holds of finished jobs,
 * then, for a job still running, holds its source snapshot (or the group members it restores
 * from), creates the target PVCs and writes the status.
 */
import type { BackupPolicy, RestoreJob } from '../api/index.js';
import type { VolumeGroupSnapshot, VolumeGroupSnapshotContent } from '../api/group-snapshot.js';
import type {
  VolumeSnapshot,
  VolumeSnapshotClass,
  VolumeSnapshotContent,
} from '../api/snapshot.js';
import { LABEL_RESTORE_JOB } from '../api/index.js';
import type { InformerFactory, KubeObject } from '../kube/index.js';
import {
  type ReconcileResult,
  PersistentVolumeClaims,
  StorageClasses,
  isAlreadyExists,
  isNotFound,
  makeKey,
  splitKey,
} from '../kube/index.js';
import {
  VolumeGroupSnapshotContents,
  VolumeGroupSnapshots,
  VolumeSnapshotClasses,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../kube/resource.js';
import type { SnapbackMetrics } from '../observability/metrics.js';
import { FIELD_MANAGER, PolicyController, byName, namespacesOf } from './policy-controller.js';
import type { PolicyControllerOptions } from './policy-controller.js';
import type { Pvc, StorageClass } from './objects.js';
import { BackupPolicies, RestoreJobs, isTerminal } from './objects.js';
import { planRestoreJob, staleRestoreHolds, type RestoreJobPlan } from './restore-job.js';

const CONTROLLER = 'restorejob';

export type RestoreJobMetrics = Pick<SnapbackMetrics, 'restores' | 'reconcileDuration'>;

export interface RestoreJobControllerOptions extends PolicyControllerOptions<RestoreJobMetrics> {
  /** How long a job waits for a named snapshot to appear before failing. */
  sourceWaitMs?: number | undefined;
  /**
   * Whether the cluster serves groupsnapshot.storage.k8s.io/v1: only then are
   * VolumeGroupSnapshots watched and restored from (a job that needs one fails, saying so).
   */
  groupSnapshots?: boolean | undefined;
}

export class RestoreJobController extends PolicyController<RestoreJobMetrics, RestoreJobCache> {
  private readonly sourceWaitMs: number | undefined;

  constructor(options: RestoreJobControllerOptions) {
    super(CONTROLLER, options, (informers) =>
      restoreJobCache(informers, options.groupSnapshots ?? false),
    );
    this.sourceWaitMs = options.sourceWaitMs;

    this.controller
      .watch(this.cache.restoreJobs)
      .watch(this.cache.pvcs, { toKeys: jobKeyOfPvc })
      .watch(this.cache.snapshots, { toKeys: (snapshot) => this.keysOfSnapshot(snapshot) });
    if (this.cache.groups) {
      this.controller
        .watch(this.cache.groups.snapshots, {
          toKeys: (group) => this.activeJobsInNamespace(group),
        })
        .watch(this.cache.groups.contents, {
          toKeys: (content) => {
            const ref = content.spec?.volumeGroupSnapshotRef;
            return ref?.namespace ? this.activeJobsInNamespace({ metadata: ref }) : [];
          },
        });
    }
  }

  protected async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const namespaceSnapshots = this.cache.snapshots.list({ namespace: namespace! });
    // Level-based: every reconcile of a namespace lets go of the holds of RestoreJobs that
    // finished, are being deleted or are gone, whichever job the key names.
    await this.releaseStaleHolds(
      namespaceSnapshots,
      this.cache.restoreJobs.list({ namespace: namespace! }),
    );
    const groups = this.cache.groups?.snapshots.list({ namespace: namespace! }) ?? [];
    const job = this.cache.restoreJobs.get(name, namespace);
    if (!job || job.metadata.deletionTimestamp || isTerminal(job)) return;
    const plan = await this.plan(job, namespaceSnapshots, groups);
    await this.holdSource(job, plan);
    await this.createTarget(job, plan);
    await this.report(job, plan);
    return plan.requeueAfterMs !== undefined ? { requeueAfter: plan.requeueAfterMs } : undefined;
  }

  private async plan(
    job: RestoreJob,
    namespaceSnapshots: readonly VolumeSnapshot[],
    groups: readonly VolumeGroupSnapshot[],
  ): Promise<RestoreJobPlan> {
    const namespace = job.metadata.namespace!;
    // The cache may not show a PVC created a moment ago; the targets known so far are read
    // live so that a restore in progress is never mistaken for one whose PVC vanished.
    const targetNames = new Set(knownTargets(job));
    const live: Pvc[] = [];
    for (const targetName of targetNames) {
      const pvc = await this.client.get<Pvc>(PersistentVolumeClaims, targetName, namespace);
      if (pvc) live.push(pvc);
    }
    const cached = this.cache.pvcs
      .list({ namespace })
      .filter((p) => !targetNames.has(p.metadata.name!));
    const groupCache = this.cache.groups;
    return planRestoreJob({
      job,
      snapshots: namespaceSnapshots,
      pvcs: [...cached, ...live],
      policies: this.cache.policies.list({ namespace }),
      ...(groupCache
        ? {
            groups: {
              snapshots: groups,
              content: (contentName: string) => groupCache.contents.get(contentName),
            },
          }
        : {}),
      storageClasses: this.cache.storageClasses.list(),
      snapshotClasses: this.cache.snapshotClasses.list(),
      content: (contentName) => this.cache.contents.get(contentName),
      namespacesWithSnapshot: (snapshotName) => namespacesOf(this.cache.snapshots, snapshotName),
      now: this.clock.now(),
      ...(this.sourceWaitMs !== undefined ? { sourceWaitMs: this.sourceWaitMs } : {}),
    });
  }

  /**
   * Guarded by the resourceVersion the plan saw: a prune that got there first (or any other
   * change) makes this fail, and the job is planned again from what is there now.
   */
  private async holdSource(job: RestoreJob, plan: RestoreJobPlan): Promise<void> {
    const finalizer = plan.holdFinalizer;
    if (!finalizer) return;
    const { namespace, name } = job.metadata;
    for (const held of [...(plan.hold ? [plan.hold] : []), ...(plan.holdMembers ?? [])]) {
      await this.client.patch(VolumeSnapshots, held.metadata.name!, namespace, 'merge', {
        metadata: {
          resourceVersion: held.metadata.resourceVersion,
          finalizers: [...(held.metadata.finalizers ?? []), finalizer],
        },
      });
      this.logger.info('holding the restore source', {
        namespace,
        name,
        snapshot: held.metadata.name,
      });
    }
  }

  private async createTarget(job: RestoreJob, plan: RestoreJobPlan): Promise<void> {
    const { namespace, name } = job.metadata;
    for (const pvc of plan.createPvcs ?? []) {
      const targetName = pvc.metadata.name;
      try {
        await this.client.create(PersistentVolumeClaims, pvc, { fieldManager: FIELD_MANAGER });
        this.logger.info('created the restore target', { namespace, name, pvc: targetName });
      } catch (error) {
        // Someone else took the name in between: look again, and fail as TargetExists.
        if (isAlreadyExists(error))
          throw new Error(`PVC ${targetName} appeared while being created`, { cause: error });
        throw error;
      }
    }
  }

  /** Status, events, and the count of jobs that finished. */
  private async report(job: RestoreJob, plan: RestoreJobPlan): Promise<void> {
    if (plan.status) await this.writeStatus(RestoreJobs, job, plan.status);
    this.emit(job, plan.events);
    const phase = plan.status?.phase;
    if ((phase === 'Succeeded' || phase === 'Failed') && job.status?.phase !== phase) {
      this.metrics?.restores.inc({
        namespace: job.metadata.namespace!,
        result: phase === 'Succeeded' ? 'succeeded' : 'failed',
      });
    }
  }

  private async releaseStaleHolds(
    namespaceSnapshots: readonly VolumeSnapshot[],
    jobs: readonly RestoreJob[],
  ): Promise<void> {
    for (const { snapshot, finalizers } of staleRestoreHolds(namespaceSnapshots, jobs)) {
      try {
        await this.client.patch(
          VolumeSnapshots,
          snapshot.metadata.name!,
          snapshot.metadata.namespace,
          'merge',
          { metadata: { resourceVersion: snapshot.metadata.resourceVersion, finalizers } },
        );
        this.logger.info('released a restore source', {
          namespace: snapshot.metadata.namespace,
          snapshot: snapshot.metadata.name,
        });
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
  }

  /** A snapshot still held by a job that is gone has no job to queue: it is queued by name. */
  private keysOfSnapshot(snapshot: VolumeSnapshot): string[] {
    const keys = this.activeJobsInNamespace(snapshot);
    const jobs = this.cache.restoreJobs.list({ namespace: snapshot.metadata.namespace ?? '' });
    if (staleRestoreHolds([snapshot], jobs).length > 0)
      keys.push(makeKey(snapshot.metadata.name!, snapshot.metadata.namespace));
    return keys;
  }

  private activeJobsInNamespace(obj: Pick<KubeObject, 'metadata'>): string[] {
    return this.cache.restoreJobs
      .list({ namespace: obj.metadata?.namespace ?? '' })
      .filter((j) => !isTerminal(j))
      .map((j) => makeKey(j.metadata.name!, j.metadata.namespace));
  }
}

/** The targets of a job known before planning: the one it names, and those its status lists. */
function knownTargets(job: RestoreJob): string[] {
  const target = job.spec?.target;
  const pvcName = job.spec?.source?.backupPolicy?.pvcName;
  const named =
    target?.pvcName ??
    (target?.pvcNameSuffix !== undefined && pvcName !== undefined
      ? `${pvcName}${target.pvcNameSuffix}`
      : undefined);
  return [
    ...(named ? [named] : []),
    ...(job.status?.pvcName ? [job.status.pvcName] : []),
    ...(job.status?.pvcs ?? []).map((p) => p.name),
  ];
}

function jobKeyOfPvc(pvc: Pvc): string | undefined {
  const job = pvc.metadata.labels?.[LABEL_RESTORE_JOB];
  return job ? makeKey(job, pvc.metadata.namespace) : undefined;
}

type RestoreJobCache = ReturnType<typeof restoreJobCache>;

/** The kinds the RestoreJob controller reads, with the indexes it looks them up by. */
function restoreJobCache(informers: InformerFactory, groupSnapshots: boolean) {
  return {
    restoreJobs: informers.informer<RestoreJob>(RestoreJobs),
    policies: informers.informer<BackupPolicy>(BackupPolicies),
    groups: groupSnapshots
      ? {
          snapshots: informers.informer<VolumeGroupSnapshot>(VolumeGroupSnapshots),
          contents: informers.informer<VolumeGroupSnapshotContent>(VolumeGroupSnapshotContents),
        }
      : undefined,
    pvcs: informers.informer<Pvc>(PersistentVolumeClaims),
    storageClasses: informers.informer<StorageClass>(StorageClasses),
    snapshotClasses: informers.informer<VolumeSnapshotClass>(VolumeSnapshotClasses),
    contents: informers.informer<VolumeSnapshotContent>(VolumeSnapshotContents),
    snapshots: informers.informer<VolumeSnapshot>(VolumeSnapshots, { indexers: byName }),
  };
}

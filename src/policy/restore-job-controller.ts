/**
 * The RestoreJob controller: thin glue between the informer caches, the pure planner
 * (restore-job.ts) and the API server. One reconcile lets go of the holds of finished jobs,
 * then, for a job still running, holds its source snapshot (or the group members it restores
 * from), creates the target PVCs and writes the status. A job with mode Swap (with
 * --restore-swap) also gets its finalizer first, and the swap's actions (restore-swap.ts) are
 * done before the status that records them is written.
 */
import type { BackupPolicy, RestoreJob } from '../api/index.js';
import type { VolumeGroupSnapshot, VolumeGroupSnapshotContent } from '../api/group-snapshot.js';
import type {
  VolumeSnapshot,
  VolumeSnapshotClass,
  VolumeSnapshotContent,
} from '../api/snapshot.js';
import {
  ANNOTATION_SWAP_JOB,
  ANNOTATION_SWAP_REPLICAS,
  FINALIZER_SWAP,
  LABEL_RESTORE_JOB,
} from '../api/index.js';
import type { InformerFactory, KubeObject } from '../kube/index.js';
import {
  type ReconcileResult,
  PersistentVolumeClaims,
  StorageClasses,
  isAlreadyExists,
  isConflict,
  isNotFound,
  makeKey,
  splitKey,
} from '../kube/index.js';
import {
  PersistentVolumes,
  StatefulSets,
  VolumeGroupSnapshotContents,
  VolumeGroupSnapshots,
  VolumeSnapshotClasses,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../kube/resource.js';
import type { SnapbackMetrics } from '../observability/metrics.js';
import { FIELD_MANAGER, PolicyController, byName, namespacesOf } from './policy-controller.js';
import type { PolicyControllerOptions } from './policy-controller.js';
import type { Pv, Pvc, StorageClass } from './objects.js';
import { BackupPolicies, RestoreJobs, isTerminal } from './objects.js';
import { Pods, type Pod } from './hooks.js';
import {
  planRestoreJob,
  staleRestoreHolds,
  type RestoreJobPlan,
  type SwapView,
} from './restore-job.js';
import type { StatefulSet, SwapAction } from './restore-swap.js';

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
  /**
   * Whether jobs with mode Swap may act (--restore-swap): only then are StatefulSets watched
   * and PVs read; without it such a job fails with SwapDisabled, touching nothing.
   */
  restoreSwap?: boolean | undefined;
}

export class RestoreJobController extends PolicyController<RestoreJobMetrics, RestoreJobCache> {
  private readonly sourceWaitMs: number | undefined;

  constructor(options: RestoreJobControllerOptions) {
    super(CONTROLLER, options, (informers) =>
      restoreJobCache(informers, options.groupSnapshots ?? false, options.restoreSwap ?? false),
    );
    this.sourceWaitMs = options.sourceWaitMs;
    if (this.cache.statefulSets) {
      this.controller.watch(this.cache.statefulSets, {
        toKeys: (set) => this.swapJobsOf(set),
      });
    }

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
    const cached = this.cache.restoreJobs.get(name, namespace);
    if (!cached || settled(cached)) return;
    // A swap acts on the workload before it writes its next step: it is planned from the job
    // as it is now, never from a cached copy a step or more behind (whose actions would undo
    // the steps since, such as locking the workload again after the lock was released).
    let job = cached.spec?.mode === 'Swap' ? await this.liveJob(name, namespace!) : cached;
    if (!job) return;
    const plan = await this.plan(job, namespaceSnapshots, groups);
    if (plan.finalizer && 'add' in plan.finalizer)
      job = await this.setFinalizers(job, [...(job.metadata.finalizers ?? []), plan.finalizer.add]);
    await this.holdSource(job, plan);
    await this.createTarget(job, plan);
    for (const action of plan.swapActions ?? []) await this.act(job, action);
    job = await this.report(job, plan);
    if (plan.finalizer && 'remove' in plan.finalizer) {
      const { remove } = plan.finalizer;
      await this.setFinalizers(
        job,
        (job.metadata.finalizers ?? []).filter((f) => f !== remove),
      );
    }
    return plan.requeueAfterMs !== undefined ? { requeueAfter: plan.requeueAfterMs } : undefined;
  }

  /** The job read from the API server; undefined once it is gone or has let go of everything. */
  private async liveJob(name: string, namespace: string): Promise<RestoreJob | undefined> {
    const job = await this.client.get<RestoreJob>(RestoreJobs, name, namespace);
    return job && !settled(job) ? job : undefined;
  }

  /** Guarded by the resourceVersion seen: the job's status was planned from it. */
  private async setFinalizers(job: RestoreJob, finalizers: string[]): Promise<RestoreJob> {
    const { namespace, name, resourceVersion } = job.metadata;
    return this.client.patch<RestoreJob>(RestoreJobs, name!, namespace, 'merge', {
      metadata: { resourceVersion, finalizers },
    });
  }

  /** One step of a swap, idempotent: done already (gone, exists) is done. */
  private async act(job: RestoreJob, action: SwapAction): Promise<void> {
    const namespace = job.metadata.namespace!;
    const set = job.spec.target.workload?.name ?? '';
    this.logger.info('swap', {
      namespace,
      name: job.metadata.name,
      action: action.kind,
      ...('name' in action ? { pvc: action.name } : {}),
      ...('pv' in action ? { pv: action.pv } : {}),
      ...('replicas' in action ? { replicas: action.replicas ?? null } : {}),
    });
    switch (action.kind) {
      case 'createPvc':
        try {
          await this.client.create(PersistentVolumeClaims, action.pvc, {
            fieldManager: FIELD_MANAGER,
          });
        } catch (error) {
          if (!isAlreadyExists(error)) throw error;
        }
        return;
      case 'deletePvc':
        try {
          await this.client.delete(PersistentVolumeClaims, action.name, namespace, {
            preconditions: { uid: action.uid },
          });
        } catch (error) {
          if (!isNotFound(error) && !isConflict(error)) throw error;
        }
        return;
      case 'reclaimPolicy':
        await this.client.patch(PersistentVolumes, action.pv, undefined, 'merge', {
          spec: { persistentVolumeReclaimPolicy: action.policy },
        });
        return;
      case 'claimPv':
        await this.client.patch(PersistentVolumes, action.pv, undefined, 'merge', {
          spec: {
            claimRef: {
              apiVersion: 'v1',
              kind: 'PersistentVolumeClaim',
              namespace,
              name: action.claim,
              uid: null,
              resourceVersion: null,
            },
          },
        });
        return;
      case 'scale':
        await this.client.patch(StatefulSets, set, namespace, 'merge', {
          spec: { replicas: action.replicas },
        });
        return;
      case 'lock': {
        const locked = action.replicas !== undefined;
        await this.client.patch(StatefulSets, set, namespace, 'merge', {
          metadata: {
            annotations: {
              [ANNOTATION_SWAP_JOB]: locked ? job.metadata.uid : null,
              [ANNOTATION_SWAP_REPLICAS]: locked ? String(action.replicas) : null,
            },
          },
        });
        return;
      }
    }
  }

  /** What a Swap job looks at, read live: the cache may lag behind the swap's own writes. */
  private async swapView(job: RestoreJob): Promise<SwapView | undefined> {
    const namespace = job.metadata.namespace!;
    const ref = job.spec?.target?.workload;
    if (!this.cache.statefulSets || job.spec?.mode !== 'Swap' || !ref) return undefined;
    const workload = await this.client.get<StatefulSet>(StatefulSets, ref.name, namespace);
    const matchLabels = workload?.spec?.selector?.matchLabels ?? {};
    const labelSelector = Object.entries(matchLabels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const pods = workload
      ? (
          await this.client.list<Pod>(Pods, {
            namespace,
            ...(labelSelector ? { labelSelector } : {}),
          })
        ).items.filter((p) =>
          (p.metadata.ownerReferences ?? []).some((o) => o.uid === workload.metadata.uid),
        )
      : [];
    const pvs = new Map<string, Pv>();
    for (const v of job.status?.swap?.volumes ?? []) {
      for (const pvName of [v.restoredVolume, v.retainedVolume]) {
        if (!pvName || pvs.has(pvName)) continue;
        const pv = await this.client.get<Pv>(PersistentVolumes, pvName);
        if (pv) pvs.set(pvName, pv);
      }
    }
    return {
      workload,
      pods,
      pv: (pvName) => pvs.get(pvName) ?? this.cache.pvs?.get(pvName),
    };
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
    const swap = await this.swapView(job);
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
      ...(swap ? { swap } : {}),
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

  /** Status, events, and the count of jobs that finished; returns the job as written. */
  private async report(job: RestoreJob, plan: RestoreJobPlan): Promise<RestoreJob> {
    const written = plan.status ? await this.writeStatus(RestoreJobs, job, plan.status) : job;
    this.emit(job, plan.events);
    const phase = plan.status?.phase;
    if ((phase === 'Succeeded' || phase === 'Failed') && job.status?.phase !== phase) {
      this.metrics?.restores.inc({
        namespace: job.metadata.namespace!,
        result: phase === 'Succeeded' ? 'succeeded' : 'failed',
      });
    }
    return written;
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

  /** The Swap jobs of a StatefulSet's namespace that name it, running or holding the finalizer. */
  private swapJobsOf(set: StatefulSet): string[] {
    return this.cache.restoreJobs
      .list({ namespace: set.metadata.namespace ?? '' })
      .filter(
        (j) =>
          j.spec?.target?.workload?.name === set.metadata.name &&
          (!isTerminal(j) || (j.metadata.finalizers ?? []).includes(FINALIZER_SWAP)),
      )
      .map((j) => makeKey(j.metadata.name!, j.metadata.namespace));
  }

  private activeJobsInNamespace(obj: Pick<KubeObject, 'metadata'>): string[] {
    return this.cache.restoreJobs
      .list({ namespace: obj.metadata?.namespace ?? '' })
      .filter((j) => !isTerminal(j))
      .map((j) => makeKey(j.metadata.name!, j.metadata.namespace));
  }
}

/** Ended or deleted: nothing left to do, unless a swap holds its finalizer (until the workload runs again). */
function settled(job: RestoreJob): boolean {
  const swapping = (job.metadata.finalizers ?? []).includes(FINALIZER_SWAP);
  return !swapping && (!!job.metadata.deletionTimestamp || isTerminal(job));
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
    ...(job.status?.swap?.volumes ?? []).flatMap((v) => [v.claim, v.restoredClaim]),
  ];
}

function jobKeyOfPvc(pvc: Pvc): string | undefined {
  const job = pvc.metadata.labels?.[LABEL_RESTORE_JOB];
  return job ? makeKey(job, pvc.metadata.namespace) : undefined;
}

type RestoreJobCache = ReturnType<typeof restoreJobCache>;

/** The kinds the RestoreJob controller reads, with the indexes it looks them up by. */
function restoreJobCache(informers: InformerFactory, groupSnapshots: boolean, swap: boolean) {
  return {
    statefulSets: swap ? informers.informer<StatefulSet>(StatefulSets) : undefined,
    pvs: swap ? informers.informer<Pv>(PersistentVolumes) : undefined,
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

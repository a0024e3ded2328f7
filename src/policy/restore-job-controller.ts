/**
 * The RestoreJob controller: thin glue between the informer caches, the pure planner
 * (restore-job.ts) and the API server. One reconcile lets go of the holds of finished jobs,
 * then, for a job still running, holds its source snapshot, creates the target PVC and writes
 * the status.
 */
import type {
  RestoreJob,
  VolumeSnapshot,
  VolumeSnapshotClass,
  VolumeSnapshotContent,
} from '../api/index.js';
import { LABEL_RESTORE_JOB } from '../api/index.js';
import type {
  EventRecorder,
  Informer,
  InformerFactory,
  KubeClient,
  KubeObject,
} from '../kube/index.js';
import {
  Controller,
  type ReconcileResult,
  PersistentVolumeClaims,
  StorageClasses,
  isAlreadyExists,
  isNotFound,
  makeKey,
  splitKey,
} from '../kube/index.js';
import {
  VolumeSnapshotClasses,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../kube/resource.js';
import { silentLogger, type Logger } from '../observability/logger.js';
import type { SnapbackMetrics } from '../observability/metrics.js';
import { systemClock, type Clock } from '../util/clock.js';
import {
  FIELD_MANAGER,
  byName,
  eventsFor,
  namespacesOf,
  timed,
  writeStatus,
} from './controller-support.js';
import type { Pvc, StorageClass } from './objects.js';
import { RestoreJobs, isTerminal } from './objects.js';
import { planRestoreJob, staleRestoreHolds, type RestoreJobPlan } from './restore-job.js';

const CONTROLLER = 'restorejob';

export type RestoreJobMetrics = Pick<SnapbackMetrics, 'restores' | 'reconcileDuration'>;

export interface RestoreJobControllerOptions {
  client: KubeClient;
  informers: InformerFactory;
  recorder: EventRecorder;
  clock?: Clock | undefined;
  logger?: Logger | undefined;
  /** Concurrent reconciles. */
  workers?: number | undefined;
  /** How long a job waits for a named snapshot to appear before failing. */
  sourceWaitMs?: number | undefined;
  /** Prometheus series to update; none when absent. */
  metrics?: RestoreJobMetrics | undefined;
}

export class RestoreJobController {
  readonly controller: Controller;
  private readonly client: KubeClient;
  private readonly recorder: EventRecorder;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly metrics: RestoreJobMetrics | undefined;
  private readonly sourceWaitMs: number | undefined;
  private readonly restoreJobs: Informer<RestoreJob>;
  private readonly pvcs: Informer<Pvc>;
  private readonly storageClasses: Informer<StorageClass>;
  private readonly snapshotClasses: Informer<VolumeSnapshotClass>;
  private readonly contents: Informer<VolumeSnapshotContent>;
  private readonly snapshots: Informer<VolumeSnapshot>;

  constructor(options: RestoreJobControllerOptions) {
    this.client = options.client;
    this.recorder = options.recorder;
    this.clock = options.clock ?? systemClock;
    const logger = options.logger ?? silentLogger();
    this.log = logger.child({ controller: CONTROLLER });
    this.metrics = options.metrics;
    this.sourceWaitMs = options.sourceWaitMs;
    const informers = options.informers;
    this.restoreJobs = informers.informer<RestoreJob>(RestoreJobs);
    this.pvcs = informers.informer<Pvc>(PersistentVolumeClaims);
    this.storageClasses = informers.informer<StorageClass>(StorageClasses);
    this.snapshotClasses = informers.informer<VolumeSnapshotClass>(VolumeSnapshotClasses);
    this.contents = informers.informer<VolumeSnapshotContent>(VolumeSnapshotContents);
    this.snapshots = informers.informer<VolumeSnapshot>(VolumeSnapshots, { indexers: byName });

    this.controller = new Controller({
      name: CONTROLLER,
      workers: options.workers ?? 4,
      logger,
      reconcile: (key) => timed(this.metrics, CONTROLLER, () => this.reconcile(key)),
    })
      .watch(this.restoreJobs)
      .watch(this.pvcs, { toKeys: jobKeyOfPvc })
      .watch(this.snapshots, { toKeys: (snapshot) => this.keysOfSnapshot(snapshot) });
  }

  private async reconcile(key: string): Promise<ReconcileResult> {
    const { namespace, name } = splitKey(key);
    const namespaceSnapshots = this.snapshots.list({ namespace: namespace! });
    // Level-based: every reconcile of a namespace lets go of the holds of RestoreJobs that
    // finished, are being deleted or are gone, whichever job the key names.
    await this.releaseStaleHolds(
      namespaceSnapshots,
      this.restoreJobs.list({ namespace: namespace! }),
    );
    const job = this.restoreJobs.get(name, namespace);
    if (!job || job.metadata.deletionTimestamp || isTerminal(job)) return;
    const plan = await this.plan(job, namespaceSnapshots);
    await this.holdSource(job, plan);
    await this.createTarget(job, plan);
    await this.report(job, plan);
    return plan.requeueAfterMs !== undefined ? { requeueAfter: plan.requeueAfterMs } : undefined;
  }

  private async plan(
    job: RestoreJob,
    namespaceSnapshots: readonly VolumeSnapshot[],
  ): Promise<RestoreJobPlan> {
    const namespace = job.metadata.namespace!;
    // The cache may not show a PVC created a moment ago; the target is read live so that a
    // restore in progress is never mistaken for one whose PVC vanished.
    const targetName = job.spec?.target?.pvcName;
    const liveTarget = targetName
      ? await this.client.get<Pvc>(PersistentVolumeClaims, targetName, namespace)
      : undefined;
    const cached = this.pvcs.list({ namespace }).filter((p) => p.metadata.name !== targetName);
    return planRestoreJob({
      job,
      snapshots: namespaceSnapshots,
      pvcs: liveTarget ? [...cached, liveTarget] : cached,
      storageClasses: this.storageClasses.list(),
      snapshotClasses: this.snapshotClasses.list(),
      content: (contentName) => this.contents.get(contentName),
      namespacesWithSnapshot: (snapshotName) => namespacesOf(this.snapshots, snapshotName),
      now: this.clock.now(),
      ...(this.sourceWaitMs !== undefined ? { sourceWaitMs: this.sourceWaitMs } : {}),
    });
  }

  /**
   * Guarded by the resourceVersion the plan saw: a prune that got there first (or any other
   * change) makes this fail, and the job is planned again from what is there now.
   */
  private async holdSource(job: RestoreJob, plan: RestoreJobPlan): Promise<void> {
    const held = plan.hold;
    if (!held || !plan.holdFinalizer) return;
    const { namespace, name } = job.metadata;
    await this.client.patch(VolumeSnapshots, held.metadata.name!, namespace, 'merge', {
      metadata: {
        resourceVersion: held.metadata.resourceVersion,
        finalizers: [...(held.metadata.finalizers ?? []), plan.holdFinalizer],
      },
    });
    this.log.info('holding the restore source', {
      namespace,
      name,
      snapshot: held.metadata.name,
    });
  }

  private async createTarget(job: RestoreJob, plan: RestoreJobPlan): Promise<void> {
    if (!plan.createPvc) return;
    const { namespace, name } = job.metadata;
    const targetName = job.spec?.target?.pvcName;
    try {
      await this.client.create(PersistentVolumeClaims, plan.createPvc, {
        fieldManager: FIELD_MANAGER,
      });
      this.log.info('created the restore target', { namespace, name, pvc: targetName });
    } catch (error) {
      // Someone else took the name in between: look again, and fail as TargetExists.
      if (isAlreadyExists(error))
        throw new Error(`PVC ${targetName} appeared while being created`, { cause: error });
      throw error;
    }
  }

  /** Status, events, and the count of jobs that finished. */
  private async report(job: RestoreJob, plan: RestoreJobPlan): Promise<void> {
    if (plan.status) await writeStatus(this.client, RestoreJobs, job, plan.status);
    eventsFor(this.recorder, job, plan.events);
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
        this.log.info('released a restore source', {
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
    const jobs = this.restoreJobs.list({ namespace: snapshot.metadata.namespace ?? '' });
    if (staleRestoreHolds([snapshot], jobs).length > 0)
      keys.push(makeKey(snapshot.metadata.name!, snapshot.metadata.namespace));
    return keys;
  }

  private activeJobsInNamespace(obj: KubeObject): string[] {
    return this.restoreJobs
      .list({ namespace: obj.metadata?.namespace ?? '' })
      .filter((j) => !isTerminal(j))
      .map((j) => makeKey(j.metadata.name!, j.metadata.namespace));
  }
}

function jobKeyOfPvc(pvc: Pvc): string | undefined {
  const job = pvc.metadata.labels?.[LABEL_RESTORE_JOB];
  return job ? makeKey(job, pvc.metadata.namespace) : undefined;
}

/**
 * The snapshot controller (upstream's "common controller"): binds VolumeSnapshots to
 * VolumeSnapshotContents, creates `snapcontent-<uid>` for dynamic snapshots, mirrors content
 * status onto snapshots, and runs the finalizer and deletion protocol with the CSI snapshotter
 * sidecar. Decisions live in ./plan.ts; this file reads the caches and performs the writes.
 */
import {
  ANN_VOLUME_SNAPSHOT_BEING_DELETED,
  FINALIZER_PVC_AS_SOURCE,
  FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND,
  volumeSnapshotContentNameFor,
  type VolumeSnapshot,
  type VolumeSnapshotClass,
  type VolumeSnapshotContent,
} from '../../api/snapshot.js';
import {
  Controller,
  FreshView,
  type PatchOptions,
  type Reconciler,
  ItemExponentialRateLimiter,
  PersistentVolumeClaims,
  PersistentVolumes,
  addFinalizer,
  createIfAbsent,
  isConflict,
  isNotFound,
  keyOf,
  makeKey,
  removeFinalizer,
  type EventRecorder,
  type Informer,
  type InformerFactory,
  type KubeClient,
  type Runnable,
} from '../../kube/index.js';
import { errorMessage, silentLogger, type Logger } from '../../observability/logger.js';
import { GROUP_SNAPSHOT_VERSIONS, volumeGroupSnapshots } from '../group.js';
import { systemClock, type Clock } from '../../util/clock.js';
import {
  VolumeSnapshotClasses,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../../kube/resource.js';
import {
  DEFAULT_CONTROLLER_SETTINGS,
  Reasons,
  planContent,
  planPvcFinalizer,
  planSnapshot,
  reportError,
  restoreSourcesOf,
  type ContentAction,
  type ControllerSettings,
  type FailureReport,
  type PersistentVolume,
  type PersistentVolumeClaim,
  type SnapshotAction,
} from './plan.js';

/** Index of the VolumeSnapshot informer: `namespace/pvc` of a dynamic snapshot's source. */
export const INDEX_SNAPSHOTS_BY_SOURCE_PVC = 'snapshot-controller/source-pvc';
/** Index of the PVC informer: `namespace/snapshot` a PVC restores from. */
export const INDEX_PVCS_BY_RESTORE_SOURCE = 'snapshot-controller/restore-source';

export interface SnapshotControllerOptions {
  client: KubeClient;
  informers: InformerFactory;
  recorder: EventRecorder;
  /** Concurrent reconciles per queue (upstream `--worker-threads`, default 10). */
  workers?: number;
  /** Retry backoff per key (upstream `--retry-interval-start` / `-max`: 1 s .. 5 min). */
  retryIntervalStartMs?: number;
  retryIntervalMaxMs?: number;
  settings?: Partial<ControllerSettings>;
  clock?: Clock;
  logger?: Logger;
}

/** The three controllers of the snapshot controller, run and stopped together. */
export class SnapshotController implements Runnable {
  readonly name = 'snapshot-controller';
  readonly snapshots: Controller;
  readonly contents: Controller;
  readonly claims: Controller;
  private readonly client: KubeClient;
  private readonly recorder: EventRecorder;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly settings: ControllerSettings;
  private readonly snapshotView: FreshView<VolumeSnapshot>;
  private readonly contentView: FreshView<VolumeSnapshotContent>;
  private readonly pvcView: FreshView<PersistentVolumeClaim>;
  private readonly snapshotInformer: Informer<VolumeSnapshot>;
  private readonly contentInformer: Informer<VolumeSnapshotContent>;
  private readonly classInformer: Informer<VolumeSnapshotClass>;
  private readonly pvcInformer: Informer<PersistentVolumeClaim>;
  private readonly pvInformer: Informer<PersistentVolume>;

  constructor(options: SnapshotControllerOptions) {
    this.client = options.client;
    this.recorder = options.recorder;
    this.clock = options.clock ?? systemClock;
    this.logger = (options.logger ?? silentLogger()).child({ controller: 'snapshot-controller' });
    this.settings = { ...DEFAULT_CONTROLLER_SETTINGS, ...options.settings };
    const informers = options.informers;
    this.snapshotInformer = informers.informer<VolumeSnapshot>(VolumeSnapshots, {
      indexers: {
        [INDEX_SNAPSHOTS_BY_SOURCE_PVC]: (snapshot) => {
          const pvc = snapshot.spec?.source?.persistentVolumeClaimName;
          return pvc ? [makeKey(pvc, snapshot.metadata.namespace)] : [];
        },
      },
    });
    this.contentInformer = informers.informer<VolumeSnapshotContent>(VolumeSnapshotContents);
    this.classInformer = informers.informer<VolumeSnapshotClass>(VolumeSnapshotClasses);
    this.pvcInformer = informers.informer<PersistentVolumeClaim>(PersistentVolumeClaims, {
      indexers: { [INDEX_PVCS_BY_RESTORE_SOURCE]: restoreSourcesOf },
    });
    this.pvInformer = informers.informer<PersistentVolume>(PersistentVolumes);
    this.snapshotView = new FreshView(this.snapshotInformer, this.clock);
    this.contentView = new FreshView(this.contentInformer, this.clock);
    this.pvcView = new FreshView(this.pvcInformer, this.clock);

    // one work queue per kind, each with its own backoff
    const controller = (name: string, reconcile: Reconciler) =>
      new Controller({
        name: `snapshot-controller-${name}`,
        reconcile,
        workers: options.workers ?? 10,
        logger: options.logger,
        rateLimiter: new ItemExponentialRateLimiter(
          options.retryIntervalStartMs ?? 1_000,
          options.retryIntervalMaxMs ?? 300_000,
        ),
      });

    this.snapshots = controller('snapshot', (key) => this.syncSnapshot(key))
      .watch(this.snapshotInformer)
      .watch(this.contentInformer, { toKeys: snapshotKeyOfContent })
      .watch(this.pvcInformer, { toKeys: (pvc) => this.snapshotsAffectedBy(pvc) })
      .watch(this.pvInformer, {
        toKeys: (pv) => {
          const claim = pv.spec?.claimRef;
          return claim?.name && claim.namespace
            ? this.snapshotsOfPvc(makeKey(claim.name, claim.namespace))
            : undefined;
        },
      })
      .watch(this.classInformer, {
        // a class appearing (or becoming the default) may unblock snapshots waiting for one
        toKeys: () =>
          this.snapshotInformer
            .list()
            .filter((snapshot) => !snapshot.status?.boundVolumeSnapshotContentName)
            .map(keyOf),
      });

    this.contents = controller('content', (key) => this.syncContent(key))
      .watch(this.contentInformer)
      .watch(this.snapshotInformer, {
        toKeys: (snapshot) => [
          ...new Set(
            [
              snapshot.status?.boundVolumeSnapshotContentName,
              snapshot.spec?.source?.volumeSnapshotContentName,
              snapshot.metadata.uid
                ? volumeSnapshotContentNameFor(snapshot.metadata.uid)
                : undefined,
            ].filter((name): name is string => !!name),
          ),
        ],
      });

    this.claims = controller('pvc', (key) => this.syncPvc(key))
      .watch(this.pvcInformer, {
        toKeys: (pvc) =>
          pvc.metadata?.finalizers?.includes(FINALIZER_PVC_AS_SOURCE) ? keyOf(pvc) : undefined,
      })
      .watch(this.snapshotInformer, {
        toKeys: (snapshot) => {
          const pvc = snapshot.spec?.source?.persistentVolumeClaimName;
          return pvc ? makeKey(pvc, snapshot.metadata.namespace) : undefined;
        },
      });
  }

  async start(signal?: AbortSignal): Promise<void> {
    this.logger.info('starting');
    await Promise.all([
      this.snapshots.start(signal),
      this.contents.start(signal),
      this.claims.start(signal),
    ]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.snapshots.stop(), this.contents.stop(), this.claims.stop()]);
    this.logger.info('stopped');
  }

  /** Items waiting in the three queues. */
  get queueDepth(): number {
    return this.snapshots.queueDepth + this.contents.queueDepth + this.claims.queueDepth;
  }

  private snapshotsOfPvc(pvcKey: string): string[] {
    return this.snapshotInformer.byIndex(INDEX_SNAPSHOTS_BY_SOURCE_PVC, pvcKey).map(keyOf);
  }

  /** Snapshots taken from the PVC (waiting for it to bind) and snapshots it restores from. */
  private snapshotsAffectedBy(pvc: PersistentVolumeClaim): string[] {
    return [...this.snapshotsOfPvc(keyOf(pvc)), ...restoreSourcesOf(pvc)];
  }

  private async syncSnapshot(key: string): Promise<void> {
    const snapshot = this.snapshotView.get(key);
    if (!snapshot) return;
    const namespace = snapshot.metadata.namespace!;
    const pvcName = snapshot.spec?.source?.persistentVolumeClaimName;
    const pvc = pvcName ? this.pvcView.get(makeKey(pvcName, namespace)) : undefined;
    const pv = pvc?.spec?.volumeName ? this.pvInformer.get(pvc.spec.volumeName) : undefined;
    const plan = planSnapshot({
      snapshot,
      content: (name) => this.contentView.get(name),
      pvc,
      pv,
      classes: this.classInformer.list(),
      restoringPvcs: this.pvcInformer.byIndex(INDEX_PVCS_BY_RESTORE_SOURCE, key),
      groupSnapshotExists: await this.groupSnapshotExistsFor(snapshot),
      now: this.clock.now(),
      settings: this.settings,
    });
    await this.executeSnapshotPlan(snapshot, plan.actions);
    if (plan.retry) throw new Error(plan.retry);
  }

  /**
   * For a snapshot being deleted that names its group: whether that VolumeGroupSnapshot
   * exists, in any served version (a version or a CRD that is not served answers 404). Read
   * from the API server: the group's CRDs may not be installed, so there is no informer.
   */
  private async groupSnapshotExistsFor(snapshot: VolumeSnapshot): Promise<boolean | undefined> {
    const groupName = snapshot.status?.volumeGroupSnapshotName;
    if (!snapshot.metadata.deletionTimestamp || !groupName) return undefined;
    for (const version of GROUP_SNAPSHOT_VERSIONS) {
      const group = await this.client.get(
        volumeGroupSnapshots(version),
        groupName,
        snapshot.metadata.namespace,
      );
      if (group) return true;
    }
    return false;
  }

  private async executeSnapshotPlan(
    initial: VolumeSnapshot,
    actions: SnapshotAction[],
  ): Promise<void> {
    let snapshot = initial;
    const namespace = initial.metadata.namespace!;
    for (const action of actions) {
      try {
        switch (action.type) {
          case 'setSnapshotClass':
            snapshot = await this.patchSnapshot(snapshot, {
              metadata: { resourceVersion: snapshot.metadata.resourceVersion },
              spec: { volumeSnapshotClassName: action.className },
            });
            break;
          case 'updateSnapshotFinalizers': {
            const finalizers = (snapshot.metadata.finalizers ?? []).filter(
              (f) => !action.remove.includes(f),
            );
            for (const finalizer of action.add)
              if (!finalizers.includes(finalizer)) finalizers.push(finalizer);
            snapshot = await this.patchSnapshot(snapshot, {
              metadata: { resourceVersion: snapshot.metadata.resourceVersion, finalizers },
            });
            break;
          }
          case 'addPvcFinalizer': {
            const pvc = this.pvcView.get(makeKey(action.pvcName, namespace));
            if (!pvc) throw new Error(`PVC ${namespace}/${action.pvcName} not found`);
            this.pvcView.remember(
              await addFinalizer(this.client, PersistentVolumeClaims, pvc, FINALIZER_PVC_AS_SOURCE),
            );
            break;
          }
          case 'createContent': {
            const created = await createIfAbsent(
              this.client,
              VolumeSnapshotContents,
              action.content,
            );
            if (created) this.contentView.remember(created);
            break;
          }
          case 'bindContent': {
            const content = this.contentView.get(action.contentName);
            this.contentView.remember(
              await this.client.patch<VolumeSnapshotContent>(
                VolumeSnapshotContents,
                action.contentName,
                undefined,
                'merge',
                {
                  metadata: { resourceVersion: content?.metadata.resourceVersion },
                  spec: {
                    volumeSnapshotRef: { uid: action.uid },
                    ...(action.className !== undefined
                      ? { volumeSnapshotClassName: action.className }
                      : {}),
                  },
                },
              ),
            );
            break;
          }
          case 'annotateContentBeingDeleted':
            await this.annotateBeingDeleted(action.contentName);
            break;
          case 'deleteContent':
            await this.client
              .delete(VolumeSnapshotContents, action.contentName)
              .catch((error: unknown) => {
                if (!isNotFound(error)) throw error;
              });
            break;
          case 'patchSnapshotStatus':
            snapshot = await this.patchSnapshot(
              snapshot,
              { status: action.status },
              { subresource: 'status' },
            );
            break;
          case 'event':
            this.recorder.event(snapshot, action.eventType, action.reason, action.message);
            break;
        }
      } catch (error) {
        if (isNotFound(error) && snapshotWrites.has(action.type)) {
          // the snapshot itself is gone: nothing left to converge
          this.snapshotView.forget(keyOf(snapshot));
          return;
        }
        if ('onFailure' in action && action.onFailure) {
          await this.reportFailure(snapshot, action.onFailure, error);
        }
        throw error;
      }
    }
  }

  /** A merge patch of the snapshot (or of its status subresource), remembered as our write. */
  private async patchSnapshot(
    snapshot: VolumeSnapshot,
    patch: unknown,
    options?: PatchOptions,
  ): Promise<VolumeSnapshot> {
    return this.snapshotView.remember(
      await this.client.patch<VolumeSnapshot>(
        VolumeSnapshots,
        snapshot.metadata.name!,
        snapshot.metadata.namespace,
        'merge',
        patch,
        options,
      ),
    );
  }

  /** Upstream's error reporting for a failed write: status.error and/or a Warning event. */
  private async reportFailure(
    snapshot: VolumeSnapshot,
    report: FailureReport,
    error: unknown,
  ): Promise<void> {
    // conflicts are routine (a newer version exists) and retried at once by the next sync
    if (isConflict(error) || isNotFound(error)) return;
    if (report.precededBy) {
      const { reason, message, suffix = '' } = report.precededBy;
      this.recorder.event(
        snapshot,
        'Warning',
        reason,
        `${message} ${errorMessage(error)}${suffix}`,
      );
    }
    const message = `${report.message} ${errorMessage(error)}`;
    if (!report.toStatus) {
      this.recorder.event(snapshot, 'Warning', report.reason, message);
      return;
    }
    for (const action of reportError(snapshot, report.reason, message, this.clock.now())) {
      if (action.type === 'event') {
        this.recorder.event(snapshot, action.eventType, action.reason, action.message);
      } else if (action.type === 'patchSnapshotStatus') {
        try {
          await this.patchSnapshot(snapshot, { status: action.status }, { subresource: 'status' });
        } catch (statusError) {
          this.logger.warn('could not record the error on the snapshot', {
            namespace: snapshot.metadata.namespace,
            name: snapshot.metadata.name,
            error: errorMessage(statusError),
          });
        }
      }
    }
  }

  private async annotateBeingDeleted(contentName: string): Promise<void> {
    try {
      this.contentView.remember(
        await this.client.patch<VolumeSnapshotContent>(
          VolumeSnapshotContents,
          contentName,
          undefined,
          'merge',
          {
            metadata: { annotations: { [ANN_VOLUME_SNAPSHOT_BEING_DELETED]: 'yes' } },
          },
        ),
      );
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  private async syncContent(name: string): Promise<void> {
    const content = this.contentView.get(name);
    if (!content) return;
    const ref = content.spec?.volumeSnapshotRef;
    const snapshot =
      ref?.name && ref.namespace
        ? this.snapshotView.get(makeKey(ref.name, ref.namespace))
        : undefined;
    const plan = planContent({ content, snapshot });
    for (const action of plan.actions) await this.executeContentAction(content, action);
    if (plan.retry) throw new Error(plan.retry);
  }

  private async executeContentAction(
    content: VolumeSnapshotContent,
    action: ContentAction,
  ): Promise<void> {
    switch (action.type) {
      case 'addContentFinalizer':
        this.contentView.remember(
          await addFinalizer(
            this.client,
            VolumeSnapshotContents,
            content,
            FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND,
          ),
        );
        break;
      case 'annotateContentBeingDeleted':
        await this.annotateBeingDeleted(content.metadata.name!);
        break;
      case 'event':
        this.recorder.event(content, action.eventType, action.reason, action.message);
        break;
    }
  }

  private async syncPvc(key: string): Promise<void> {
    const pvc = this.pvcView.get(key);
    if (!pvc) return;
    const snapshots = this.snapshotInformer
      .byIndex(INDEX_SNAPSHOTS_BY_SOURCE_PVC, key)
      .map((snapshot) => this.snapshotView.get(keyOf(snapshot)) ?? snapshot);
    const { removeFinalizer: remove } = planPvcFinalizer({ pvc, snapshots });
    if (!remove) return;
    try {
      this.pvcView.remember(
        await removeFinalizer(this.client, PersistentVolumeClaims, pvc, FINALIZER_PVC_AS_SOURCE),
      );
    } catch (error) {
      // upstream reports this on the snapshots that released the PVC (checkandRemovePVCFinalizer)
      if (!isConflict(error) && !isNotFound(error)) {
        for (const snapshot of snapshots) {
          this.recorder.event(
            snapshot,
            'Warning',
            PVC_FINALIZER_ERROR.reason,
            PVC_FINALIZER_ERROR.message,
          );
        }
      }
      throw error;
    }
  }
}

/** Upstream's event for a PVC finalizer that could not be removed. */
const PVC_FINALIZER_ERROR = {
  reason: Reasons.pvcFinalizerError,
  message: 'Error check and remove PVC Finalizer for VolumeSnapshot',
};

/** Actions that write the snapshot itself. */
const snapshotWrites = new Set<SnapshotAction['type']>([
  'setSnapshotClass',
  'updateSnapshotFinalizers',
  'patchSnapshotStatus',
]);

/** The snapshot a content's ref names, as a work-queue key. */
function snapshotKeyOfContent(content: VolumeSnapshotContent): string | undefined {
  const ref = content.spec?.volumeSnapshotRef;
  return ref?.name && ref.namespace ? makeKey(ref.name, ref.namespace) : undefined;
}

export function createSnapshotController(options: SnapshotControllerOptions): SnapshotController {
  return new SnapshotController(options);
}

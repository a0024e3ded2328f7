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
  type VolumeSnapshot,
  type VolumeSnapshotClass,
  type VolumeSnapshotContent,
} from '../../api/snapshot.js';
import type { OwnWrites } from '../../kube/index.js';
import {
  PersistentVolumeClaims,
  PersistentVolumes,
  isConflict,
  isNotFound,
  keyOf,
  makeKey,
  type Controller,
  type InformerFactory,
} from '../../kube/index.js';
import { GROUP_SNAPSHOT_VERSIONS, volumeGroupSnapshots } from '../group.js';
import {
  VolumeSnapshotClasses,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../../kube/resource.js';
import {
  PlanControllerSet,
  type PlanControllerOptions,
  type PlanSubject,
} from '../common/plan-controller-set.js';
import {
  CONTENT_REF_FIELDS,
  DEFAULT_CONTROLLER_SETTINGS,
  Reasons,
  contentsOf,
  planContent,
  planPvcFinalizer,
  planSnapshot,
  restoreSourcesOf,
  type ControllerSettings,
  type PersistentVolume,
  type PersistentVolumeClaim,
  type SnapshotAction,
} from './plan.js';

/** Index of the VolumeSnapshot informer: `namespace/pvc` of a dynamic snapshot's source. */
export const INDEX_SNAPSHOTS_BY_SOURCE_PVC = 'snapshot-controller/source-pvc';
/** Index of the PVC informer: `namespace/snapshot` a PVC restores from. */
export const INDEX_PVCS_BY_RESTORE_SOURCE = 'snapshot-controller/restore-source';

export interface SnapshotControllerOptions extends PlanControllerOptions {
  settings?: Partial<ControllerSettings>;
}

/** The three controllers of the snapshot controller, run and stopped together. */
export class SnapshotController extends PlanControllerSet {
  readonly snapshots: Controller;
  readonly contents: Controller;
  readonly claims: Controller;
  private readonly settings: ControllerSettings;
  private readonly cache: ReturnType<typeof snapshotControllerCache>;
  private readonly snapshotWrites: OwnWrites<VolumeSnapshot>;
  private readonly snapshotPlans: PlanSubject<VolumeSnapshot, SnapshotAction>;
  private readonly contentWrites: OwnWrites<VolumeSnapshotContent>;
  private readonly pvcWrites: OwnWrites<PersistentVolumeClaim>;

  constructor(options: SnapshotControllerOptions) {
    super('snapshot-controller', options);
    this.settings = { ...DEFAULT_CONTROLLER_SETTINGS, ...options.settings };
    this.cache = snapshotControllerCache(options.informers);
    this.snapshotWrites = this.ownWrites(VolumeSnapshots, this.cache.snapshots);
    this.contentWrites = this.ownWrites(VolumeSnapshotContents, this.cache.contents);
    this.pvcWrites = this.ownWrites(PersistentVolumeClaims, this.cache.pvcs);
    this.snapshotPlans = {
      writes: this.snapshotWrites,
      what: 'snapshot',
      ownWrites: snapshotWrites,
      classField: 'volumeSnapshotClassName',
    };

    this.snapshots = this.queue('snapshot', (key) => this.syncSnapshot(key))
      .watch(this.cache.snapshots)
      .watch(this.cache.contents, { toKeys: snapshotKeyOfContent })
      .watch(this.cache.pvcs, { toKeys: (pvc) => this.snapshotsAffectedBy(pvc) })
      .watch(this.cache.pvs, {
        toKeys: (pv) => {
          const claim = pv.spec?.claimRef;
          return claim?.name && claim.namespace
            ? this.snapshotsOfPvc(makeKey(claim.name, claim.namespace))
            : undefined;
        },
      })
      .watch(this.cache.classes, {
        // a class appearing (or becoming the default) may unblock snapshots waiting for one
        toKeys: () =>
          this.cache.snapshots
            .list()
            .filter((snapshot) => !snapshot.status?.boundVolumeSnapshotContentName)
            .map(keyOf),
      });

    this.contents = this.queue('content', (key) => this.syncContent(key))
      .watch(this.cache.contents)
      .watch(this.cache.snapshots, {
        toKeys: contentsOf,
      });

    this.claims = this.queue('pvc', (key) => this.syncPvc(key))
      .watch(this.cache.pvcs, {
        toKeys: (pvc) =>
          pvc.metadata?.finalizers?.includes(FINALIZER_PVC_AS_SOURCE) ? keyOf(pvc) : undefined,
      })
      .watch(this.cache.snapshots, {
        toKeys: (snapshot) => {
          const pvc = snapshot.spec?.source?.persistentVolumeClaimName;
          return pvc ? makeKey(pvc, snapshot.metadata.namespace) : undefined;
        },
      });
  }

  private snapshotsOfPvc(pvcKey: string): string[] {
    return this.cache.snapshots.byIndex(INDEX_SNAPSHOTS_BY_SOURCE_PVC, pvcKey).map(keyOf);
  }

  /** Snapshots taken from the PVC (waiting for it to bind) and snapshots it restores from. */
  private snapshotsAffectedBy(pvc: PersistentVolumeClaim): string[] {
    return [...this.snapshotsOfPvc(keyOf(pvc)), ...restoreSourcesOf(pvc)];
  }

  private async syncSnapshot(key: string): Promise<void> {
    const snapshot = this.snapshotWrites.get(key);
    if (!snapshot) return;
    const namespace = snapshot.metadata.namespace!;
    const pvcName = snapshot.spec?.source?.persistentVolumeClaimName;
    const pvc = pvcName ? this.pvcWrites.get(makeKey(pvcName, namespace)) : undefined;
    const pv = pvc?.spec?.volumeName ? this.cache.pvs.get(pvc.spec.volumeName) : undefined;
    const plan = planSnapshot({
      snapshot,
      content: (name) => this.contentWrites.get(name),
      pvc,
      pv,
      classes: this.cache.classes.list(),
      restoringPvcs: this.cache.pvcs.byIndex(INDEX_PVCS_BY_RESTORE_SOURCE, key),
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

  private executeSnapshotPlan(snapshot: VolumeSnapshot, actions: SnapshotAction[]): Promise<void> {
    const namespace = snapshot.metadata.namespace!;
    return this.applyPlan(this.snapshotPlans, snapshot, actions, async (action, current) => {
      switch (action.type) {
        case 'setSnapshotClass':
          return this.setClassName(this.snapshotPlans, current, action.className);
        case 'updateSnapshotFinalizers': {
          const finalizers = (current.metadata.finalizers ?? []).filter(
            (f) => !action.remove.includes(f),
          );
          for (const finalizer of action.add)
            if (!finalizers.includes(finalizer)) finalizers.push(finalizer);
          return this.snapshotWrites.patchObject(current, {
            metadata: { resourceVersion: current.metadata.resourceVersion, finalizers },
          });
        }
        case 'addPvcFinalizer': {
          const pvc = this.pvcWrites.get(makeKey(action.pvcName, namespace));
          if (!pvc) throw new Error(`PVC ${namespace}/${action.pvcName} not found`);
          await this.pvcWrites.addFinalizer(pvc, FINALIZER_PVC_AS_SOURCE);
          return;
        }
        case 'createContent':
          return this.contentWrites.create(action.content);
        case 'bindContent':
          return this.bindContent(
            this.contentWrites,
            action.contentName,
            CONTENT_REF_FIELDS,
            action.uid,
            action.className,
          );
        case 'annotateContentBeingDeleted':
          return this.annotateBeingDeleted(action.contentName);
        case 'deleteContent':
          return this.contentWrites.deleteIfPresent(action.contentName);
        case 'patchSnapshotStatus':
          return this.snapshotWrites.patchObject(
            current,
            { status: action.status },
            { subresource: 'status' },
          );
      }
    });
  }

  private annotateBeingDeleted(contentName: string): Promise<void> {
    return this.contentWrites.annotateIfPresent(contentName, undefined, {
      [ANN_VOLUME_SNAPSHOT_BEING_DELETED]: 'yes',
    });
  }

  private async syncContent(name: string): Promise<void> {
    const content = this.contentWrites.get(name);
    if (!content) return;
    const ref = content.spec?.volumeSnapshotRef;
    const snapshot =
      ref?.name && ref.namespace
        ? this.snapshotWrites.get(makeKey(ref.name, ref.namespace))
        : undefined;
    await this.applyContentPlan(content, planContent({ content, snapshot }), (action) =>
      action.type === 'addContentFinalizer'
        ? this.contentWrites.addFinalizer(content, FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND)
        : this.annotateBeingDeleted(content.metadata.name!),
    );
  }

  private async syncPvc(key: string): Promise<void> {
    const pvc = this.pvcWrites.get(key);
    if (!pvc) return;
    const snapshots = this.cache.snapshots
      .byIndex(INDEX_SNAPSHOTS_BY_SOURCE_PVC, key)
      .map((snapshot) => this.snapshotWrites.get(keyOf(snapshot)) ?? snapshot);
    const { removeFinalizer: remove } = planPvcFinalizer({ pvc, snapshots });
    if (!remove) return;
    try {
      await this.pvcWrites.removeFinalizer(pvc, FINALIZER_PVC_AS_SOURCE);
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

/** The kinds the snapshot controller reads, with the indexes it looks them up by. */
function snapshotControllerCache(informers: InformerFactory) {
  return {
    snapshots: informers.informer<VolumeSnapshot>(VolumeSnapshots, {
      indexers: {
        [INDEX_SNAPSHOTS_BY_SOURCE_PVC]: (snapshot) => {
          const pvc = snapshot.spec?.source?.persistentVolumeClaimName;
          return pvc ? [makeKey(pvc, snapshot.metadata.namespace)] : [];
        },
      },
    }),
    contents: informers.informer<VolumeSnapshotContent>(VolumeSnapshotContents),
    classes: informers.informer<VolumeSnapshotClass>(VolumeSnapshotClasses),
    pvcs: informers.informer<PersistentVolumeClaim>(PersistentVolumeClaims, {
      indexers: { [INDEX_PVCS_BY_RESTORE_SOURCE]: restoreSourcesOf },
    }),
    pvs: informers.informer<PersistentVolume>(PersistentVolumes),
  };
}

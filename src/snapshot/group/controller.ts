/**
 * The group snapshot controller (the group paths of upstream's common controller): creates
 * `groupsnapcontent-<uid>` for dynamic VolumeGroupSnapshots or binds pre-provisioned ones,
 * makes each member's VolumeSnapshot and VolumeSnapshotContent once the CSI snapshotter has
 * cut the group, mirrors the content's status onto the group, and runs the group's finalizer
 * and deletion protocol. Decisions live in ./plan.ts; this file reads the caches and performs
 * the writes, as ../controller/controller.ts does for single snapshots.
 */
import {
  ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
  FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND,
  FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND,
  type VolumeGroupSnapshot,
  type VolumeGroupSnapshotClass,
  type VolumeGroupSnapshotContent,
} from '../../api/group-snapshot.js';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../../api/snapshot.js';
import {
  FreshView,
  OwnWrites,
  PersistentVolumeClaims,
  PersistentVolumes,
  VolumeSnapshotContents,
  VolumeSnapshots,
  keyOf,
  makeKey,
  type Controller,
  type Informer,
} from '../../kube/index.js';
import { errorMessage } from '../../observability/logger.js';
import {
  PlanControllerSet,
  type PlanControllerOptions,
  type PlanSubject,
} from '../common/controller.js';
import type { PersistentVolume, PersistentVolumeClaim } from '../controller/plan.js';
import { parentGroupOf } from '../group.js';
import { groupContentsOf, planGroupContent, planGroupSnapshot, type GroupAction } from './plan.js';
import {
  VolumeGroupSnapshotClasses,
  VolumeGroupSnapshotContents,
  VolumeGroupSnapshots,
} from '../../kube/resource.js';

/** Index of the PV informer: `<driver>^<volume handle>` of a CSI volume. */
export const INDEX_PVS_BY_CSI_HANDLE = 'group-snapshot-controller/csi-handle';
/** Index of the VolumeSnapshot informer: `namespace/group` of the group that owns it. */
export const INDEX_SNAPSHOTS_BY_PARENT_GROUP = 'group-snapshot-controller/parent-group';

const csiHandleKey = (driver: string, volumeHandle: string) => `${driver}^${volumeHandle}`;

export type GroupSnapshotControllerOptions = PlanControllerOptions;

/** The two controllers of the group snapshot paths, run and stopped together. */
export class GroupSnapshotController extends PlanControllerSet {
  readonly groups: Controller;
  readonly groupContents: Controller;
  private readonly groupWrites: OwnWrites<VolumeGroupSnapshot>;
  private readonly groupPlans: PlanSubject<VolumeGroupSnapshot, GroupAction>;
  private readonly groupContentWrites: OwnWrites<VolumeGroupSnapshotContent>;
  private readonly snapshotWrites: OwnWrites<VolumeSnapshot>;
  private readonly snapshotContentWrites: OwnWrites<VolumeSnapshotContent>;
  private readonly groupView: FreshView<VolumeGroupSnapshot>;
  private readonly groupContentView: FreshView<VolumeGroupSnapshotContent>;
  private readonly snapshotView: FreshView<VolumeSnapshot>;
  private readonly snapshotContentView: FreshView<VolumeSnapshotContent>;
  private readonly groupInformer: Informer<VolumeGroupSnapshot>;
  private readonly groupContentInformer: Informer<VolumeGroupSnapshotContent>;
  private readonly classInformer: Informer<VolumeGroupSnapshotClass>;
  private readonly pvcInformer: Informer<PersistentVolumeClaim>;
  private readonly pvInformer: Informer<PersistentVolume>;
  private readonly snapshotInformer: Informer<VolumeSnapshot>;
  private readonly snapshotContentInformer: Informer<VolumeSnapshotContent>;

  constructor(options: GroupSnapshotControllerOptions) {
    super('group-snapshot-controller', options);
    const informers = options.informers;
    this.groupInformer = informers.informer<VolumeGroupSnapshot>(VolumeGroupSnapshots);
    this.groupContentInformer = informers.informer<VolumeGroupSnapshotContent>(
      VolumeGroupSnapshotContents,
    );
    this.classInformer = informers.informer<VolumeGroupSnapshotClass>(VolumeGroupSnapshotClasses);
    this.pvcInformer = informers.informer<PersistentVolumeClaim>(PersistentVolumeClaims);
    this.pvInformer = informers.informer<PersistentVolume>(PersistentVolumes, {
      indexers: {
        [INDEX_PVS_BY_CSI_HANDLE]: (pv) => {
          const csi = pv.spec?.csi;
          return csi ? [csiHandleKey(csi.driver, csi.volumeHandle)] : [];
        },
      },
    });
    this.snapshotInformer = informers.informer<VolumeSnapshot>(VolumeSnapshots, {
      indexers: {
        [INDEX_SNAPSHOTS_BY_PARENT_GROUP]: (snapshot) => {
          const parent = parentGroupOf(snapshot);
          return parent ? [makeKey(parent, snapshot.metadata.namespace)] : [];
        },
      },
    });
    this.snapshotContentInformer =
      informers.informer<VolumeSnapshotContent>(VolumeSnapshotContents);
    this.groupView = new FreshView(this.groupInformer, this.clock);
    this.groupContentView = new FreshView(this.groupContentInformer, this.clock);
    this.snapshotView = new FreshView(this.snapshotInformer, this.clock);
    this.snapshotContentView = new FreshView(this.snapshotContentInformer, this.clock);
    this.groupWrites = new OwnWrites(this.client, VolumeGroupSnapshots, this.groupView);
    this.groupContentWrites = new OwnWrites(
      this.client,
      VolumeGroupSnapshotContents,
      this.groupContentView,
    );
    this.snapshotWrites = new OwnWrites(this.client, VolumeSnapshots, this.snapshotView);
    this.groupPlans = {
      writes: this.groupWrites,
      what: 'group snapshot',
      ownWrites: groupWrites,
      classField: 'volumeGroupSnapshotClassName',
    };
    this.snapshotContentWrites = new OwnWrites(
      this.client,
      VolumeSnapshotContents,
      this.snapshotContentView,
    );

    // groups still waiting for their content: a class, a PVC or a PV may unblock them
    const unboundGroups = (namespace?: string) =>
      this.groupInformer
        .list(namespace !== undefined ? { namespace } : {})
        .filter((group) => !group.status?.boundVolumeGroupSnapshotContentName)
        .map(keyOf);

    this.groups = this.queue('group', (key) => this.syncGroup(key))
      .watch(this.groupInformer)
      .watch(this.groupContentInformer, {
        toKeys: (content) => {
          const ref = content.spec?.volumeGroupSnapshotRef;
          return ref?.name && ref.namespace ? makeKey(ref.name, ref.namespace) : undefined;
        },
      })
      .watch(this.classInformer, { toKeys: () => unboundGroups() })
      .watch(this.pvcInformer, {
        toKeys: (pvc) => (pvc.metadata?.namespace ? unboundGroups(pvc.metadata.namespace) : []),
      })
      .watch(this.pvInformer, {
        toKeys: (pv) =>
          pv.spec?.claimRef?.namespace ? unboundGroups(pv.spec.claimRef.namespace) : [],
      })
      .watch(this.snapshotInformer, {
        toKeys: (snapshot) => {
          const parent = parentGroupOf(snapshot);
          return parent ? makeKey(parent, snapshot.metadata.namespace) : undefined;
        },
      });

    this.groupContents = this.queue('content', (key) => this.syncGroupContent(key))
      .watch(this.groupContentInformer)
      .watch(this.groupInformer, {
        toKeys: groupContentsOf,
      });
  }

  private async syncGroup(key: string): Promise<void> {
    const group = this.groupView.get(key);
    if (!group) return;
    const namespace = group.metadata.namespace!;
    const claims = this.pvcInformer.list({ namespace });
    const plan = planGroupSnapshot({
      group,
      content: (name) => this.groupContentView.get(name),
      classes: this.classInformer.list(),
      pvcs: claims,
      pv: (name) => this.pvInformer.get(name),
      pvByHandle: (driver, volumeHandle) => {
        const pvs = this.pvInformer.byIndex(
          INDEX_PVS_BY_CSI_HANDLE,
          csiHandleKey(driver, volumeHandle),
        );
        return pvs.length === 1 ? pvs[0] : undefined;
      },
      snapshot: (name) => this.snapshotView.get(makeKey(name, namespace)),
      snapshotContent: (name) => this.snapshotContentView.get(name),
      members: this.snapshotInformer
        .byIndex(INDEX_SNAPSHOTS_BY_PARENT_GROUP, key)
        .map((snapshot) => this.snapshotView.get(keyOf(snapshot)) ?? snapshot),
      restoringPvcs: claims.filter((pvc) => pvc.status?.phase === 'Pending'),
      now: this.clock.now(),
    });
    await this.executeGroupPlan(group, plan.actions);
    if (plan.retry) throw new Error(plan.retry);
  }

  private executeGroupPlan(group: VolumeGroupSnapshot, actions: GroupAction[]): Promise<void> {
    const namespace = group.metadata.namespace!;
    return this.applyPlan(this.groupPlans, group, actions, async (action, current) => {
      switch (action.type) {
        case 'setGroupClass':
          return this.setClassName(this.groupPlans, current, action.className);
        case 'addGroupBoundFinalizer':
          return this.groupWrites.addFinalizer(current, FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND);
        case 'removeGroupBoundFinalizer':
          return this.groupWrites.removeFinalizer(current, FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND);
        case 'createGroupContent':
          return this.groupContentWrites.create(action.content);
        case 'bindGroupContent':
          return this.bindContent(
            this.groupContentWrites,
            action.contentName,
            GROUP_CONTENT_REF_FIELDS,
            action.uid,
            action.className,
          );
        case 'patchGroupStatus':
          return this.groupWrites.patchObject(
            current,
            { status: action.status },
            { subresource: 'status' },
          );
        case 'createMemberContent':
          return memberStep('creating volumesnapshotcontent', () =>
            this.snapshotContentWrites.create(action.content),
          );
        case 'createMemberSnapshot':
          return memberStep('error creating or fetching volumesnapshot', () =>
            this.snapshotWrites.create(action.snapshot),
          );
        case 'bindMemberContent':
          return memberStep('binding volumesnapshotcontent to volumesnapshot', () =>
            this.bindMemberContent(action.contentName, action.snapshotName, namespace),
          );
        case 'patchMemberSnapshotStatus':
          return memberStep('binding volumesnapshot to volumesnapshotcontent', () =>
            this.snapshotWrites.patch(
              action.snapshotName,
              namespace,
              { status: action.status },
              { subresource: 'status' },
            ),
          );
        case 'patchMemberContentStatus':
          return memberStep('setting snapshotHandle in volumesnapshotcontent', () =>
            this.snapshotContentWrites.patch(
              action.contentName,
              undefined,
              { status: action.status },
              { subresource: 'status' },
            ),
          );
        case 'annotateGroupContentBeingDeleted':
          return this.groupContentWrites.annotateIfPresent(action.contentName, undefined, {
            [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes',
          });
        case 'deleteGroupContent':
          return this.groupContentWrites.deleteIfPresent(action.contentName);
        case 'deleteMemberSnapshot':
          return this.snapshotWrites.deleteIfPresent(action.snapshotName, namespace);
      }
    });
  }

  /** Fills the member snapshot's uid into its content's ref; the snapshot must exist by now. */
  private async bindMemberContent(
    contentName: string,
    snapshotName: string,
    namespace: string,
  ): Promise<void> {
    const snapshot =
      this.snapshotView.get(makeKey(snapshotName, namespace)) ??
      (await this.client.get<VolumeSnapshot>(VolumeSnapshots, snapshotName, namespace));
    const uid = snapshot?.metadata.uid;
    if (!uid) throw new Error(`created snapshot ${snapshotName} has an empty UID`);
    await this.snapshotContentWrites.patch(contentName, undefined, {
      spec: { volumeSnapshotRef: { uid } },
    });
  }

  private async syncGroupContent(name: string): Promise<void> {
    const content = this.groupContentView.get(name);
    if (!content) return;
    await this.applyContentPlan(content, planGroupContent(content), () =>
      this.groupContentWrites.addFinalizer(content, FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND),
    );
  }
}

/** A member write; its failure names the step, as upstream's createIndividualSnapshotForGroupSnapshot. */
async function memberStep(step: string, write: () => Promise<unknown>): Promise<void> {
  try {
    await write();
  } catch (error) {
    throw new Error(`createIndividualSnapshotForGroupSnapshot: ${step} ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

/** Where a VolumeGroupSnapshotContent names its group and its class. */
const GROUP_CONTENT_REF_FIELDS = {
  ref: 'volumeGroupSnapshotRef',
  className: 'volumeGroupSnapshotClassName',
};

/** Actions that write the group itself. */
const groupWrites = new Set<GroupAction['type']>([
  'setGroupClass',
  'addGroupBoundFinalizer',
  'removeGroupBoundFinalizer',
  'patchGroupStatus',
]);

export function createGroupSnapshotController(
  options: GroupSnapshotControllerOptions,
): GroupSnapshotController {
  return new GroupSnapshotController(options);
}

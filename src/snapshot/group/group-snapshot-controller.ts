/**
 * The group snapshot controller (the group paths of upstream's common controller): creates
 * `groupsnapcontent-<uid>` for dynamic VolumeGroupSnapshots or binds pre-provisioned ones,
 * makes each member's VolumeSnapshot and VolumeSnapshotContent once the CSI snapshotter has
 * cut the group, mirrors the content's status onto the group, and runs the group's finalizer
 * and deletion protocol. Decisions live in ./plan.ts; this file reads the caches and performs
 * the writes, as ../controller/snapshot-controller.ts does for single snapshots.
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
import type { OwnWrites } from '../../kube/index.js';
import {
  PersistentVolumeClaims,
  PersistentVolumes,
  VolumeSnapshotContents,
  VolumeSnapshots,
  keyOf,
  makeKey,
  type Controller,
  type InformerFactory,
} from '../../kube/index.js';
import { errorMessage } from '../../observability/logger.js';
import {
  PlanControllerSet,
  type PlanControllerOptions,
  type PlanSubject,
} from '../common/plan-controller-set.js';
import type { PersistentVolume, PersistentVolumeClaim } from '../controller/plan.js';
import { parentGroupOf } from '../group.js';
import {
  GROUP_CONTENT_REF_FIELDS,
  groupContentsOf,
  planGroupContent,
  planGroupSnapshot,
  type GroupAction,
} from './plan.js';
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
  private readonly cache: ReturnType<typeof groupSnapshotControllerCache>;
  private readonly groupWrites: OwnWrites<VolumeGroupSnapshot>;
  private readonly groupPlans: PlanSubject<VolumeGroupSnapshot, GroupAction>;
  private readonly groupContentWrites: OwnWrites<VolumeGroupSnapshotContent>;
  private readonly snapshotWrites: OwnWrites<VolumeSnapshot>;
  private readonly snapshotContentWrites: OwnWrites<VolumeSnapshotContent>;

  constructor(options: GroupSnapshotControllerOptions) {
    super('group-snapshot-controller', options);
    this.cache = groupSnapshotControllerCache(options.informers);
    this.groupWrites = this.ownWrites(VolumeGroupSnapshots, this.cache.groups);
    this.groupContentWrites = this.ownWrites(VolumeGroupSnapshotContents, this.cache.groupContents);
    this.snapshotWrites = this.ownWrites(VolumeSnapshots, this.cache.snapshots);
    this.groupPlans = {
      writes: this.groupWrites,
      what: 'group snapshot',
      ownWrites: groupWrites,
      classField: 'volumeGroupSnapshotClassName',
    };
    this.snapshotContentWrites = this.ownWrites(
      VolumeSnapshotContents,
      this.cache.snapshotContents,
    );

    // groups still waiting for their content: a class, a PVC or a PV may unblock them
    const unboundGroups = (namespace?: string) =>
      this.cache.groups
        .list(namespace !== undefined ? { namespace } : {})
        .filter((group) => !group.status?.boundVolumeGroupSnapshotContentName)
        .map(keyOf);

    this.groups = this.queue('group', (key) => this.syncGroup(key))
      .watch(this.cache.groups)
      .watch(this.cache.groupContents, {
        toKeys: (content) => {
          const ref = content.spec?.volumeGroupSnapshotRef;
          return ref?.name && ref.namespace ? makeKey(ref.name, ref.namespace) : undefined;
        },
      })
      .watch(this.cache.classes, { toKeys: () => unboundGroups() })
      .watch(this.cache.pvcs, {
        toKeys: (pvc) => (pvc.metadata?.namespace ? unboundGroups(pvc.metadata.namespace) : []),
      })
      .watch(this.cache.pvs, {
        toKeys: (pv) =>
          pv.spec?.claimRef?.namespace ? unboundGroups(pv.spec.claimRef.namespace) : [],
      })
      .watch(this.cache.snapshots, {
        toKeys: (snapshot) => {
          const parent = parentGroupOf(snapshot);
          return parent ? makeKey(parent, snapshot.metadata.namespace) : undefined;
        },
      });

    this.groupContents = this.queue('content', (key) => this.syncGroupContent(key))
      .watch(this.cache.groupContents)
      .watch(this.cache.groups, {
        toKeys: groupContentsOf,
      });
  }

  private async syncGroup(key: string): Promise<void> {
    const group = this.groupWrites.get(key);
    if (!group) return;
    const namespace = group.metadata.namespace!;
    const claims = this.cache.pvcs.list({ namespace });
    const plan = planGroupSnapshot({
      group,
      content: (name) => this.groupContentWrites.get(name),
      classes: this.cache.classes.list(),
      pvcs: claims,
      pv: (name) => this.cache.pvs.get(name),
      pvByHandle: (driver, volumeHandle) => {
        const pvs = this.cache.pvs.byIndex(
          INDEX_PVS_BY_CSI_HANDLE,
          csiHandleKey(driver, volumeHandle),
        );
        return pvs.length === 1 ? pvs[0] : undefined;
      },
      snapshot: (name) => this.snapshotWrites.get(makeKey(name, namespace)),
      snapshotContent: (name) => this.snapshotContentWrites.get(name),
      members: this.cache.snapshots
        .byIndex(INDEX_SNAPSHOTS_BY_PARENT_GROUP, key)
        .map((snapshot) => this.snapshotWrites.get(keyOf(snapshot)) ?? snapshot),
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
      this.snapshotWrites.get(makeKey(snapshotName, namespace)) ??
      (await this.client.get<VolumeSnapshot>(VolumeSnapshots, snapshotName, namespace));
    const uid = snapshot?.metadata.uid;
    if (!uid) throw new Error(`created snapshot ${snapshotName} has an empty UID`);
    await this.snapshotContentWrites.patch(contentName, undefined, {
      spec: { volumeSnapshotRef: { uid } },
    });
  }

  private async syncGroupContent(name: string): Promise<void> {
    const content = this.groupContentWrites.get(name);
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

/** The kinds the group snapshot controller reads, with the indexes it looks them up by. */
function groupSnapshotControllerCache(informers: InformerFactory) {
  return {
    groups: informers.informer<VolumeGroupSnapshot>(VolumeGroupSnapshots),
    groupContents: informers.informer<VolumeGroupSnapshotContent>(VolumeGroupSnapshotContents),
    classes: informers.informer<VolumeGroupSnapshotClass>(VolumeGroupSnapshotClasses),
    pvcs: informers.informer<PersistentVolumeClaim>(PersistentVolumeClaims),
    pvs: informers.informer<PersistentVolume>(PersistentVolumes, {
      indexers: {
        [INDEX_PVS_BY_CSI_HANDLE]: (pv) => {
          const csi = pv.spec?.csi;
          return csi ? [csiHandleKey(csi.driver, csi.volumeHandle)] : [];
        },
      },
    }),
    snapshots: informers.informer<VolumeSnapshot>(VolumeSnapshots, {
      indexers: {
        [INDEX_SNAPSHOTS_BY_PARENT_GROUP]: (snapshot) => {
          const parent = parentGroupOf(snapshot);
          return parent ? [makeKey(parent, snapshot.metadata.namespace)] : [];
        },
      },
    }),
    snapshotContents: informers.informer<VolumeSnapshotContent>(VolumeSnapshotContents),
  };
}

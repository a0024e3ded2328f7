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
  volumeGroupSnapshotContentNameFor,
  type VolumeGroupSnapshot,
  type VolumeGroupSnapshotClass,
  type VolumeGroupSnapshotContent,
} from '../../api/group-snapshot.js';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../../api/snapshot.js';
import {
  Controller,
  FreshView,
  ItemExponentialRateLimiter,
  PersistentVolumeClaims,
  PersistentVolumes,
  VolumeSnapshotContents,
  VolumeSnapshots,
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
  type PatchOptions,
  type Reconciler,
  type Runnable,
} from '../../kube/index.js';
import { errorMessage, silentLogger, type Logger } from '../../observability/logger.js';
import { systemClock, type Clock } from '../../util/clock.js';
import type { PersistentVolume, PersistentVolumeClaim } from '../controller/plan.js';
import { parentGroupOf } from '../group.js';
import {
  planGroupContent,
  planGroupSnapshot,
  reportGroupError,
  type GroupAction,
  type GroupFailureReport,
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

export interface GroupSnapshotControllerOptions {
  client: KubeClient;
  informers: InformerFactory;
  recorder: EventRecorder;
  /** Concurrent reconciles per queue (upstream `--worker-threads`, default 10). */
  workers?: number;
  /** Retry backoff per key (upstream `--retry-interval-start` / `-max`: 1 s .. 5 min). */
  retryIntervalStartMs?: number;
  retryIntervalMaxMs?: number;
  clock?: Clock;
  logger?: Logger;
}

/** The two controllers of the group snapshot paths, run and stopped together. */
export class GroupSnapshotController implements Runnable {
  readonly name = 'group-snapshot-controller';
  readonly groups: Controller;
  readonly groupContents: Controller;
  private readonly client: KubeClient;
  private readonly recorder: EventRecorder;
  private readonly clock: Clock;
  private readonly logger: Logger;
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
    this.client = options.client;
    this.recorder = options.recorder;
    this.clock = options.clock ?? systemClock;
    this.logger = (options.logger ?? silentLogger()).child({
      controller: 'group-snapshot-controller',
    });
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

    const controller = (name: string, reconcile: Reconciler) =>
      new Controller({
        name: `group-snapshot-controller-${name}`,
        reconcile,
        workers: options.workers ?? 10,
        logger: options.logger,
        rateLimiter: new ItemExponentialRateLimiter(
          options.retryIntervalStartMs ?? 1_000,
          options.retryIntervalMaxMs ?? 300_000,
        ),
      });

    // groups still waiting for their content: a class, a PVC or a PV may unblock them
    const unboundGroups = (namespace?: string) =>
      this.groupInformer
        .list(namespace !== undefined ? { namespace } : {})
        .filter((group) => !group.status?.boundVolumeGroupSnapshotContentName)
        .map(keyOf);

    this.groups = controller('group', (key) => this.syncGroup(key))
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

    this.groupContents = controller('content', (key) => this.syncGroupContent(key))
      .watch(this.groupContentInformer)
      .watch(this.groupInformer, {
        toKeys: (group) => [
          ...new Set(
            [
              group.status?.boundVolumeGroupSnapshotContentName,
              group.spec?.source?.volumeGroupSnapshotContentName,
              group.metadata.uid
                ? volumeGroupSnapshotContentNameFor(group.metadata.uid)
                : undefined,
            ].filter((name): name is string => !!name),
          ),
        ],
      });
  }

  async start(signal?: AbortSignal): Promise<void> {
    this.logger.info('starting');
    await Promise.all([this.groups.start(signal), this.groupContents.start(signal)]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.groups.stop(), this.groupContents.stop()]);
    this.logger.info('stopped');
  }

  /** Items waiting in the two queues. */
  get queueDepth(): number {
    return this.groups.queueDepth + this.groupContents.queueDepth;
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

  private async executeGroupPlan(
    initial: VolumeGroupSnapshot,
    actions: GroupAction[],
  ): Promise<void> {
    let group = initial;
    const namespace = initial.metadata.namespace!;
    for (const action of actions) {
      try {
        switch (action.type) {
          case 'setGroupClass':
            group = await this.patchGroup(group, {
              metadata: { resourceVersion: group.metadata.resourceVersion },
              spec: { volumeGroupSnapshotClassName: action.className },
            });
            break;
          case 'addGroupBoundFinalizer':
            group = this.groupView.remember(
              await addFinalizer(
                this.client,
                VolumeGroupSnapshots,
                group,
                FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND,
              ),
            );
            break;
          case 'removeGroupBoundFinalizer':
            group = this.groupView.remember(
              await removeFinalizer(
                this.client,
                VolumeGroupSnapshots,
                group,
                FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND,
              ),
            );
            break;
          case 'createGroupContent': {
            const created = await createIfAbsent(
              this.client,
              VolumeGroupSnapshotContents,
              action.content,
            );
            if (created) this.groupContentView.remember(created);
            break;
          }
          case 'bindGroupContent': {
            const content = this.groupContentView.get(action.contentName);
            this.groupContentView.remember(
              await this.client.patch<VolumeGroupSnapshotContent>(
                VolumeGroupSnapshotContents,
                action.contentName,
                undefined,
                'merge',
                {
                  metadata: { resourceVersion: content?.metadata.resourceVersion },
                  spec: {
                    volumeGroupSnapshotRef: { uid: action.uid },
                    ...(action.className !== undefined
                      ? { volumeGroupSnapshotClassName: action.className }
                      : {}),
                  },
                },
              ),
            );
            break;
          }
          case 'patchGroupStatus':
            group = await this.patchGroup(
              group,
              { status: action.status },
              { subresource: 'status' },
            );
            break;
          case 'createMemberContent':
            await this.memberStep('creating volumesnapshotcontent', async () => {
              const created = await createIfAbsent(
                this.client,
                VolumeSnapshotContents,
                action.content,
              );
              if (created) this.snapshotContentView.remember(created);
            });
            break;
          case 'createMemberSnapshot':
            await this.memberStep('error creating or fetching volumesnapshot', async () => {
              const created = await createIfAbsent(this.client, VolumeSnapshots, action.snapshot);
              if (created) this.snapshotView.remember(created);
            });
            break;
          case 'bindMemberContent':
            await this.memberStep('binding volumesnapshotcontent to volumesnapshot', () =>
              this.bindMemberContent(action.contentName, action.snapshotName, namespace),
            );
            break;
          case 'patchMemberSnapshotStatus':
            await this.memberStep('binding volumesnapshot to volumesnapshotcontent', async () => {
              this.snapshotView.remember(
                await this.client.patch<VolumeSnapshot>(
                  VolumeSnapshots,
                  action.snapshotName,
                  namespace,
                  'merge',
                  { status: action.status },
                  { subresource: 'status' },
                ),
              );
            });
            break;
          case 'patchMemberContentStatus':
            await this.memberStep('setting snapshotHandle in volumesnapshotcontent', async () => {
              this.snapshotContentView.remember(
                await this.client.patch<VolumeSnapshotContent>(
                  VolumeSnapshotContents,
                  action.contentName,
                  undefined,
                  'merge',
                  { status: action.status },
                  { subresource: 'status' },
                ),
              );
            });
            break;
          case 'annotateGroupContentBeingDeleted':
            await this.annotateBeingDeleted(action.contentName);
            break;
          case 'deleteGroupContent':
            await this.client
              .delete(VolumeGroupSnapshotContents, action.contentName)
              .catch((error: unknown) => {
                if (!isNotFound(error)) throw error;
              });
            break;
          case 'deleteMemberSnapshot':
            await this.client
              .delete(VolumeSnapshots, action.snapshotName, namespace)
              .catch((error: unknown) => {
                if (!isNotFound(error)) throw error;
              });
            break;
          case 'event':
            this.recorder.event(group, action.eventType, action.reason, action.message);
            break;
        }
      } catch (error) {
        if (isNotFound(error) && groupWrites.has(action.type)) {
          // the group itself is gone: nothing left to converge
          this.groupView.forget(keyOf(group));
          return;
        }
        if ('onFailure' in action && action.onFailure) {
          await this.reportFailure(group, action.onFailure, error);
        }
        throw error;
      }
    }
  }

  /** A member write; its failure names the step, as upstream's createIndividualSnapshotForGroupSnapshot. */
  private async memberStep(step: string, write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (error) {
      throw new Error(`createIndividualSnapshotForGroupSnapshot: ${step} ${errorMessage(error)}`, {
        cause: error,
      });
    }
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
    this.snapshotContentView.remember(
      await this.client.patch<VolumeSnapshotContent>(
        VolumeSnapshotContents,
        contentName,
        undefined,
        'merge',
        { spec: { volumeSnapshotRef: { uid } } },
      ),
    );
  }

  /** A merge patch of the group (or of its status subresource), remembered as our write. */
  private async patchGroup(
    group: VolumeGroupSnapshot,
    patch: unknown,
    options?: PatchOptions,
  ): Promise<VolumeGroupSnapshot> {
    return this.groupView.remember(
      await this.client.patch<VolumeGroupSnapshot>(
        VolumeGroupSnapshots,
        group.metadata.name!,
        group.metadata.namespace,
        'merge',
        patch,
        options,
      ),
    );
  }

  /** Upstream's error reporting for a failed write: status.error and/or a Warning event. */
  private async reportFailure(
    group: VolumeGroupSnapshot,
    report: GroupFailureReport,
    error: unknown,
  ): Promise<void> {
    // conflicts are routine (a newer version exists) and retried at once by the next sync
    if (isConflict(error) || isNotFound(error)) return;
    if (report.precededBy) {
      const { reason, message, suffix = '' } = report.precededBy;
      this.recorder.event(group, 'Warning', reason, `${message} ${errorMessage(error)}${suffix}`);
    }
    const message = `${report.message} ${errorMessage(error)}`;
    if (!report.toStatus) {
      this.recorder.event(group, 'Warning', report.reason, message);
      return;
    }
    const actions = reportGroupError(
      group,
      report.reason,
      message,
      this.clock.now(),
      !report.keepReadyToUse,
    );
    for (const action of actions) {
      if (action.type === 'event') {
        this.recorder.event(group, action.eventType, action.reason, action.message);
      } else if (action.type === 'patchGroupStatus') {
        try {
          await this.patchGroup(group, { status: action.status }, { subresource: 'status' });
        } catch (statusError) {
          this.logger.warn('could not record the error on the group snapshot', {
            namespace: group.metadata.namespace,
            name: group.metadata.name,
            error: errorMessage(statusError),
          });
        }
      }
    }
  }

  private async annotateBeingDeleted(contentName: string): Promise<void> {
    try {
      this.groupContentView.remember(
        await this.client.patch<VolumeGroupSnapshotContent>(
          VolumeGroupSnapshotContents,
          contentName,
          undefined,
          'merge',
          { metadata: { annotations: { [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes' } } },
        ),
      );
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  private async syncGroupContent(name: string): Promise<void> {
    const content = this.groupContentView.get(name);
    if (!content) return;
    const plan = planGroupContent(content);
    for (const action of plan.actions) {
      switch (action.type) {
        case 'addGroupContentFinalizer':
          this.groupContentView.remember(
            await addFinalizer(
              this.client,
              VolumeGroupSnapshotContents,
              content,
              FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND,
            ),
          );
          break;
        case 'event':
          this.recorder.event(content, action.eventType, action.reason, action.message);
          break;
      }
    }
    if (plan.retry) throw new Error(plan.retry);
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

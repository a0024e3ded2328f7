/**
 * The CSI snapshotter's group paths: watches VolumeGroupSnapshotContents (and their classes)
 * and carries out ./group-plan.ts against one CSI driver's GroupController service. It only
 * ever writes VolumeGroupSnapshotContents (status, the being-created annotation, the
 * bound-protection finalizer) and Events; the members' VolumeSnapshots and contents are the
 * snapshot controller's (src/snapshot/group/), made from the status this writes.
 */
import {
  FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND,
  type VolumeGroupSnapshotClass,
  type VolumeGroupSnapshotContent,
  type VolumeGroupSnapshotContentStatus,
} from '../../api/group-snapshot.js';
import type { CallOptions } from '../../csi/client.js';
import { isGrpcError, messageOf } from '../../csi/status.js';
import type { CreateVolumeGroupSnapshotRequest } from '../../gen/csi/csi/v1/CreateVolumeGroupSnapshotRequest.js';
import type { CreateVolumeGroupSnapshotResponse__Output } from '../../gen/csi/csi/v1/CreateVolumeGroupSnapshotResponse.js';
import type { DeleteVolumeGroupSnapshotRequest } from '../../gen/csi/csi/v1/DeleteVolumeGroupSnapshotRequest.js';
import type { GetVolumeGroupSnapshotRequest } from '../../gen/csi/csi/v1/GetVolumeGroupSnapshotRequest.js';
import type { GetVolumeGroupSnapshotResponse__Output } from '../../gen/csi/csi/v1/GetVolumeGroupSnapshotResponse.js';
import type { GroupControllerGetCapabilitiesRequest } from '../../gen/csi/csi/v1/GroupControllerGetCapabilitiesRequest.js';
import type { GroupControllerGetCapabilitiesResponse__Output } from '../../gen/csi/csi/v1/GroupControllerGetCapabilitiesResponse.js';
import type { EventRecorder, ReconcileContext, ReconcileResult } from '../../kube/index.js';
import { VolumeGroupSnapshotClasses, VolumeGroupSnapshotContents } from '../../kube/resource.js';
import { errorMessage } from '../../observability/logger.js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  DEFAULT_GROUP_SIDECAR_SETTINGS,
  REASON_GROUP_CHECK_FAILED,
  REASON_GROUP_DELETE_ERROR,
  GROUP_SNAPSHOT_CONTENT,
  groupCreateFailedMessage,
  groupReportOf,
  groupStatusAfterReport,
  planGroupSnapshotContent,
  type GroupContentPlan,
} from './group-plan.js';
import { ContentQueue, type ContentQueueOptions } from './content-queue.js';
import type { SidecarSettings } from './shared-plan.js';

/** The GroupController calls the sidecar makes (a CsiClient's `groupController` provides them). */
export interface GroupSnapshotterCsi {
  createVolumeGroupSnapshot(
    request: CreateVolumeGroupSnapshotRequest,
    options?: CallOptions,
  ): Promise<CreateVolumeGroupSnapshotResponse__Output>;
  deleteVolumeGroupSnapshot(
    request: DeleteVolumeGroupSnapshotRequest,
    options?: CallOptions,
  ): Promise<unknown>;
  getVolumeGroupSnapshot(
    request: GetVolumeGroupSnapshotRequest,
    options?: CallOptions,
  ): Promise<GetVolumeGroupSnapshotResponse__Output>;
}

export interface GroupContentSidecarOptions extends ContentQueueOptions {
  csi: GroupSnapshotterCsi;
  recorder: EventRecorder;
  /** The CSI driver served (GetPluginInfo's name). */
  driverName: string;
  /** `--extra-create-metadata`. */
  extraCreateMetadata?: boolean;
  /** `--groupsnapshot-name-prefix` (default `groupsnapshot`). */
  groupSnapshotNamePrefix?: string;
  /** `--groupsnapshot-name-uuid-length` (default -1: the whole UID). */
  groupSnapshotNameUuidLength?: number;
}

/**
 * Whether the driver serves group snapshots (upstream's check at start-up: the GroupController
 * capability CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT). A driver without the service answers
 * UNIMPLEMENTED, which means no.
 */
export async function supportsGroupSnapshots(
  csi: {
    groupControllerGetCapabilities(
      request: GroupControllerGetCapabilitiesRequest,
      options?: CallOptions,
    ): Promise<GroupControllerGetCapabilitiesResponse__Output>;
  },
  timeoutMs: number,
): Promise<boolean> {
  try {
    const response = await csi.groupControllerGetCapabilities({}, { timeoutMs });
    return response.capabilities.some(
      (capability) => capability.rpc?.type === 'CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT',
    );
  } catch (error) {
    if (isGrpcError(error, GrpcStatus.UNIMPLEMENTED)) return false;
    throw error;
  }
}

const GROUP_SIDECAR_NAME = 'csi-snapshotter-group';

/** The group content queue of the CSI snapshotter; the caller starts it (or a Manager does). */
export class GroupContentSidecar extends ContentQueue<
  VolumeGroupSnapshotContentStatus,
  VolumeGroupSnapshotContent,
  VolumeGroupSnapshotClass
> {
  readonly name = GROUP_SIDECAR_NAME;
  private readonly options: GroupContentSidecarOptions;
  private readonly settings: SidecarSettings;

  constructor(options: GroupContentSidecarOptions) {
    super(GROUP_SIDECAR_NAME, options, {
      contents: VolumeGroupSnapshotContents,
      classes: VolumeGroupSnapshotClasses,
      kind: GROUP_SNAPSHOT_CONTENT,
      recorder: options.recorder,
    });
    this.options = options;
    this.settings = {
      driverName: options.driverName,
      extraCreateMetadata: options.extraCreateMetadata ?? false,
      namePrefix: options.groupSnapshotNamePrefix ?? DEFAULT_GROUP_SIDECAR_SETTINGS.namePrefix,
      nameUuidLength:
        options.groupSnapshotNameUuidLength ?? DEFAULT_GROUP_SIDECAR_SETTINGS.nameUuidLength,
    };
    if (!this.settings.namePrefix) {
      throw new Error('group snapshot name prefix cannot be of length 0');
    }
  }

  /** One sync of the content named `key` (upstream syncGroupSnapshotContent). */
  protected async sync(
    key: string,
    content: VolumeGroupSnapshotContent,
    context?: ReconcileContext,
  ): Promise<ReconcileResult> {
    const className = content.spec?.volumeGroupSnapshotClassName;
    const groupClass = className ? this.classes.get(className) : undefined;
    const plan = planGroupSnapshotContent(content, groupClass, this.settings);
    if (plan.action !== 'notOurs' && plan.action !== 'upToDate') {
      this.logger.debug('syncing group content', { name: key, action: plan.action });
    }
    const call: CallOptions = { timeoutMs: this.timeoutMs, signal: context?.signal };
    switch (plan.action) {
      case 'notOurs':
      case 'upToDate':
        return this.settled(key);
      case 'removeBeingCreated':
        await this.writes.removeBeingCreated(content);
        return this.settled(key);
      case 'createGroupSnapshot':
        return this.createGroupSnapshot(key, content, plan, call);
      case 'getGroupSnapshot':
        return this.getGroupSnapshot(key, content, plan, call);
      case 'deleteGroupSnapshot':
        await this.deleteGroupSnapshot(content, plan, call);
        return this.settled(key);
      case 'removeFinalizer':
        await this.release(content);
        return this.settled(key);
      case 'fail':
        await this.writes.recordFailure(content, plan.reason, plan.message, {
          keepReadyToUse: plan.reason === REASON_GROUP_DELETE_ERROR,
        });
        throw new Error(plan.message);
    }
  }

  private async createGroupSnapshot(
    key: string,
    content: VolumeGroupSnapshotContent,
    plan: Extract<GroupContentPlan, { action: 'createGroupSnapshot' }>,
    call: CallOptions,
  ): Promise<ReconcileResult> {
    const { current, answer: group } = await this.cut(content, {
      secretRef: plan.call.secretRef,
      failureReason: plan.failureReason,
      secretFailure: (error) =>
        GROUP_SNAPSHOT_CONTENT.failureMessage(
          plan.failureReason,
          `failed to get input parameters to create group snapshot for group snapshot content ${content.metadata.name}: ${errorMessage(error)}`,
        ),
      call: async (secrets) => {
        const response = await this.options.csi.createVolumeGroupSnapshot(
          {
            name: plan.call.name,
            source_volume_ids: plan.call.sourceVolumeIds,
            parameters: plan.call.parameters,
            secrets,
          },
          call,
        );
        if (!response.group_snapshot?.group_snapshot_id) {
          throw new Error('CreateVolumeGroupSnapshot returned no group snapshot id');
        }
        return response.group_snapshot;
      },
      callFailure: (current, error) => groupCreateFailedMessage(plan.failureReason, current, error),
    });

    const report = groupReportOf(group);
    await this.recordCut(current, groupStatusAfterReport(current.status, report, this.clock.now()));
    this.logger.info('group snapshot cut', {
      name: key,
      groupSnapshot: report.groupSnapshotId,
      members: report.members.length,
      readyToUse: report.readyToUse,
    });
    return this.afterReport(key, report);
  }

  private async getGroupSnapshot(
    key: string,
    content: VolumeGroupSnapshotContent,
    plan: Extract<GroupContentPlan, { action: 'getGroupSnapshot' }>,
    call: CallOptions,
  ): Promise<ReconcileResult> {
    const report = await this.recorded(
      content,
      REASON_GROUP_CHECK_FAILED,
      (error) =>
        GROUP_SNAPSHOT_CONTENT.failureMessage(
          REASON_GROUP_CHECK_FAILED,
          `failed to list group snapshot for group snapshot content ${content.metadata.name}: ${messageOf(error)}`,
        ),
      async () => {
        const secrets = await this.writes.readSecret(plan.call.secretRef, content);
        const response = await this.options.csi.getVolumeGroupSnapshot(
          {
            group_snapshot_id: plan.call.groupSnapshotId,
            snapshot_ids: plan.call.snapshotIds,
            secrets,
          },
          call,
        );
        if (!response.group_snapshot) {
          throw new Error(
            `GetVolumeGroupSnapshot returned no group snapshot for ${plan.call.groupSnapshotId}`,
          );
        }
        // the handle the content names is the one that counts, whatever the driver echoes
        return {
          ...groupReportOf(response.group_snapshot),
          groupSnapshotId: plan.call.groupSnapshotId,
        };
      },
    );
    const status = groupStatusAfterReport(content.status, report, this.clock.now());
    return this.reported(key, content, status, report);
  }

  private async deleteGroupSnapshot(
    content: VolumeGroupSnapshotContent,
    plan: Extract<GroupContentPlan, { action: 'deleteGroupSnapshot' }>,
    call: CallOptions,
  ): Promise<void> {
    const keep = { keepReadyToUse: true };
    const secrets = await this.recorded(
      content,
      REASON_GROUP_DELETE_ERROR,
      (error) => GROUP_SNAPSHOT_CONTENT.deleteFailedMessage(errorMessage(error)),
      () => this.writes.readSecret(plan.call.secretRef, content),
      keep,
    );
    // e.g. FAILED_PRECONDITION while disks made from a member remain: the finalizer stays
    await this.recorded(
      content,
      REASON_GROUP_DELETE_ERROR,
      (error) => GROUP_SNAPSHOT_CONTENT.deleteFailedMessage(messageOf(error)),
      () =>
        this.options.csi.deleteVolumeGroupSnapshot(
          {
            group_snapshot_id: plan.call.groupSnapshotId,
            snapshot_ids: plan.call.snapshotIds,
            secrets,
          },
          call,
        ),
      keep,
    );
    const cleared = await this.writes.writeStatus(
      content,
      GROUP_SNAPSHOT_CONTENT.statusAfterRelease(content.status),
    );
    this.logger.info('group snapshot deleted', {
      name: content.metadata.name,
      groupSnapshot: plan.call.groupSnapshotId,
    });
    await this.release(cleared);
  }

  private async release(content: VolumeGroupSnapshotContent): Promise<void> {
    await this.writes.removeFinalizer(content, FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND);
    this.logger.info('released group content', {
      name: content.metadata.name,
      policy: content.spec.deletionPolicy,
    });
  }
}

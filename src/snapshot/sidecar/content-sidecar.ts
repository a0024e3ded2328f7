/**
 * The CSI snapshotter sidecar: watches VolumeSnapshotContents (and their classes) and carries
 * out ./plan.ts against one CSI driver. It only ever writes VolumeSnapshotContents (status,
 * the being-created annotation, the bound-protection finalizer) and Events.
 */
import {
  FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND,
  SNAPSHOT_API_VERSION,
  VOLUME_SNAPSHOT_KIND,
  type VolumeSnapshotClass,
  type VolumeSnapshotContent,
  type VolumeSnapshotContentStatus,
} from '../../api/snapshot.js';
import type { CallOptions } from '../../csi/client.js';
import type { CreateSnapshotRequest } from '../../gen/csi/csi/v1/CreateSnapshotRequest.js';
import type { CreateSnapshotResponse__Output } from '../../gen/csi/csi/v1/CreateSnapshotResponse.js';
import type { DeleteSnapshotRequest } from '../../gen/csi/csi/v1/DeleteSnapshotRequest.js';
import type { ListSnapshotsRequest } from '../../gen/csi/csi/v1/ListSnapshotsRequest.js';
import type { ListSnapshotsResponse__Output } from '../../gen/csi/csi/v1/ListSnapshotsResponse.js';
import type { Snapshot__Output } from '../../gen/csi/csi/v1/Snapshot.js';
import type { Controller, EventRecorder, KubeObject, ReconcileResult } from '../../kube/index.js';
import { errorMessage } from '../../observability/logger.js';
import {
  REASON_CHECK_FAILED,
  REASON_DELETE_ERROR,
  SNAPSHOT_CONTENT,
  createFailedMessage,
  planContent,
  statusAfterReport,
  type ContentPlan,
  type SidecarSettings,
  type SnapshotReport,
} from './plan.js';
import { VolumeSnapshotClasses, VolumeSnapshotContents } from '../../kube/resource.js';
import { messageOf } from '../../csi/status.js';
import { ContentQueue, type ContentQueueOptions } from './content-queue.js';

/** The CSI Controller calls the sidecar makes (a CsiClient's `controller` provides them). */
export interface SnapshotterCsi {
  createSnapshot(
    request: CreateSnapshotRequest,
    options?: CallOptions,
  ): Promise<CreateSnapshotResponse__Output>;
  deleteSnapshot(request: DeleteSnapshotRequest, options?: CallOptions): Promise<unknown>;
  listSnapshots(
    request: ListSnapshotsRequest,
    options?: CallOptions,
  ): Promise<ListSnapshotsResponse__Output>;
}

export interface SidecarOptions extends ContentQueueOptions {
  csi: SnapshotterCsi;
  /** Whether the driver reported LIST_SNAPSHOTS; without it a pre-provisioned one is ready. */
  listSnapshots: boolean;
  events: EventRecorder;
  settings: SidecarSettings;
}

/** Builds the sidecar; the caller starts it (directly or through a Manager). */
export function createSidecar(options: SidecarOptions): Controller {
  return new Sidecar(options).controller;
}

class Sidecar extends ContentQueue<
  VolumeSnapshotContentStatus,
  VolumeSnapshotContent,
  VolumeSnapshotClass
> {
  private readonly options: SidecarOptions;

  constructor(options: SidecarOptions) {
    super('csi-snapshotter', options, {
      contents: VolumeSnapshotContents,
      classes: VolumeSnapshotClasses,
      kind: SNAPSHOT_CONTENT,
      recorder: options.events,
    });
    this.options = options;
  }

  protected async sync(key: string, content: VolumeSnapshotContent): Promise<ReconcileResult> {
    const className = content.spec?.volumeSnapshotClassName;
    const snapshotClass = className ? this.classes.get(className) : undefined;
    const plan = planContent(content, snapshotClass, this.options.settings);
    if (plan.action !== 'notOurs' && plan.action !== 'upToDate' && plan.action !== 'leftToGroup') {
      this.logger.debug('syncing content', { name: key, action: plan.action });
    }
    switch (plan.action) {
      case 'notOurs':
      case 'upToDate':
      case 'leftToGroup':
        return this.settled(key);
      case 'removeBeingCreated':
        await this.writes.removeBeingCreated(content);
        return this.settled(key);
      case 'createSnapshot':
        return this.createSnapshot(key, content, plan);
      case 'checkSnapshot':
        return this.checkSnapshot(key, content, plan);
      case 'deleteSnapshot':
        await this.deleteSnapshot(content, plan);
        return;
      case 'removeFinalizer':
        await this.writes.removeFinalizer(content, FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND);
        this.logger.info('released content', { name: key, policy: content.spec.deletionPolicy });
        return;
      case 'fail':
        if (plan.reason === REASON_DELETE_ERROR)
          this.events.event(content, 'Warning', plan.reason, plan.message);
        else await this.writes.recordFailure(content, plan.reason, plan.message);
        throw new Error(plan.message);
    }
  }

  private get events(): EventRecorder {
    return this.options.events;
  }

  private async createSnapshot(
    key: string,
    content: VolumeSnapshotContent,
    plan: Extract<ContentPlan, { action: 'createSnapshot' }>,
  ): Promise<ReconcileResult> {
    const { current, answer: snapshot } = await this.cut(content, {
      secretRef: plan.call.secretRef,
      failureReason: plan.failureReason,
      secretFailure: (error) =>
        SNAPSHOT_CONTENT.failureMessage(
          plan.failureReason,
          `failed to get input parameters to create snapshot for content ${content.metadata?.name}: ${errorMessage(error)}`,
        ),
      call: async (secrets) => {
        const response = await this.options.csi.createSnapshot(
          {
            name: plan.call.name,
            source_volume_id: plan.call.sourceVolumeId,
            parameters: plan.call.parameters,
            secrets,
          },
          { timeoutMs: this.timeoutMs },
        );
        const snapshot = response.snapshot;
        if (!snapshot?.snapshot_id) throw new Error('CreateSnapshot returned no snapshot id');
        return snapshot;
      },
      callFailure: (current, error) => createFailedMessage(plan.failureReason, current, error),
    });
    const report = reportOf(snapshot);
    await this.recordCut(current, statusAfterReport(current.status, report, this.clock.now()));
    this.logger.info('snapshot cut', {
      name: key,
      snapshot: report.snapshotId,
      readyToUse: report.readyToUse,
    });
    return this.afterReport(key, report);
  }

  private async checkSnapshot(
    key: string,
    content: VolumeSnapshotContent,
    plan: Extract<ContentPlan, { action: 'checkSnapshot' }>,
  ): Promise<ReconcileResult> {
    const report: SnapshotReport = !this.options.listSnapshots
      ? { snapshotId: plan.snapshotId, readyToUse: true, sizeBytes: 0 }
      : await this.recorded(
          content,
          REASON_CHECK_FAILED,
          (error) => SNAPSHOT_CONTENT.failureMessage(REASON_CHECK_FAILED, messageOf(error)),
          async () => {
            const secrets = await this.writes.readSecret(plan.secretRef, content);
            const response = await this.options.csi.listSnapshots(
              { snapshot_id: plan.snapshotId, secrets },
              { timeoutMs: this.timeoutMs },
            );
            const found = response.entries.find((entry) => entry.snapshot)?.snapshot;
            if (!found) throw new Error(`can not find snapshot for snapshotID ${plan.snapshotId}`);
            return reportOf(found);
          },
        );
    const status = statusAfterReport(content.status, report, this.clock.now());
    return this.reported(key, content, status, report);
  }

  private async deleteSnapshot(
    content: VolumeSnapshotContent,
    plan: Extract<ContentPlan, { action: 'deleteSnapshot' }>,
  ): Promise<void> {
    let secrets: Record<string, string>;
    try {
      secrets = await this.writes.readSecret(plan.secretRef, content);
    } catch (error) {
      this.events.event(
        content,
        'Warning',
        REASON_DELETE_ERROR,
        'Failed to get snapshot credentials',
      );
      throw error;
    }
    try {
      await this.options.csi.deleteSnapshot(
        { snapshot_id: plan.snapshotId, secrets },
        { timeoutMs: this.timeoutMs },
      );
    } catch (error) {
      // e.g. FAILED_PRECONDITION from forceDelete=false with dependent disks: the finalizer
      // stays, and the driver's reason goes where users look (both objects)
      const message = SNAPSHOT_CONTENT.deleteFailedMessage(messageOf(error));
      const recorded = await this.writes.recordFailure(content, REASON_DELETE_ERROR, message, {
        keepReadyToUse: true,
      });
      if (recorded) this.events.event(snapshotOf(content), 'Warning', REASON_DELETE_ERROR, message);
      throw new Error(message, { cause: error });
    }
    const cleared = await this.writes.writeStatus(
      content,
      SNAPSHOT_CONTENT.statusAfterRelease(content.status),
    );
    this.logger.info('snapshot deleted', {
      name: content.metadata?.name,
      snapshot: plan.snapshotId,
    });
    await this.writes.removeFinalizer(cleared, FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND);
  }
}

function reportOf(snapshot: Snapshot__Output): SnapshotReport {
  const seconds = Number(snapshot.creation_time?.seconds ?? 0);
  const nanos = snapshot.creation_time?.nanos ?? 0;
  return {
    snapshotId: snapshot.snapshot_id,
    readyToUse: snapshot.ready_to_use,
    creationTime: seconds || nanos ? new Date(seconds * 1000 + Math.floor(nanos / 1e6)) : undefined,
    sizeBytes: Number(snapshot.size_bytes ?? 0),
  };
}

/** The VolumeSnapshot a content is bound to, as an Event's involved object. */
function snapshotOf(content: VolumeSnapshotContent): KubeObject {
  const ref = content.spec.volumeSnapshotRef;
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: VOLUME_SNAPSHOT_KIND,
    metadata: { name: ref?.name, namespace: ref?.namespace, uid: ref?.uid },
  };
}

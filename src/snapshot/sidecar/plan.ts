/**
 * The CSI snapshotter sidecar's decisions, as pure functions: what to do with one
 * VolumeSnapshotContent (create, poll, delete, release, nothing), how a CSI answer changes
 * the content's status, and which gRPC failures are final. The controller in ./content-sidecar.ts
 * only carries these decisions out. Semantics follow upstream csi-snapshotter v8
 * (see docs: reference/external-snapshotter.md §3).
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  ANN_DELETION_SECRET_NAME,
  ANN_DELETION_SECRET_NAMESPACE,
  ANN_VOLUME_SNAPSHOT_BEING_CREATED,
  ANN_VOLUME_SNAPSHOT_BEING_DELETED,
  FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND,
  type VolumeSnapshotClass,
  type VolumeSnapshotContent,
  type VolumeSnapshotContentStatus,
} from '../../api/snapshot.js';
import { isGroupSnapshotMemberContent } from '../group.js';
import {
  PARAM_SNAPSHOTTER_LIST_SECRET_NAME,
  PARAM_SNAPSHOTTER_LIST_SECRET_NAMESPACE,
  PARAM_SNAPSHOTTER_SECRET_NAME,
  PARAM_SNAPSHOTTER_SECRET_NAMESPACE,
  PARAM_VOLUME_SNAPSHOT_CONTENT_NAME,
  PARAM_VOLUME_SNAPSHOT_NAME,
  PARAM_VOLUME_SNAPSHOT_NAMESPACE,
} from '../../api/csi-parameters.js';
import {
  resolveSecretTemplate,
  secretParameterKeys,
  secretTemplates,
  type SecretField,
} from '../../api/secret-template.js';
import { grpcCodeOf, messageOf } from '../../csi/status.js';
import { planForeign, ContentKind, type SecretRef, type SidecarSettings } from './shared-plan.js';

export type { SecretRef, SidecarSettings };

/** Upstream's flag defaults for the snapshot paths (`--snapshot-name-*`). */
export const DEFAULT_SIDECAR_SETTINGS: Omit<SidecarSettings, 'driverName'> = {
  namePrefix: 'snapshot',
  nameUuidLength: -1,
  extraCreateMetadata: false,
};

/** Event reasons, as upstream emits them, so alerts written for upstream keep matching. */
export const REASON_CREATION_FAILED = 'SnapshotCreationFailed';
export const REASON_CHECK_FAILED = 'SnapshotContentCheckandUpdateFailed';
export const REASON_DELETE_ERROR = 'SnapshotDeleteError';

export interface CreateSnapshotCall {
  name: string;
  sourceVolumeId: string;
  /** Class parameters without the `csi.storage.k8s.io/` keys (plus extra metadata if asked). */
  parameters: Record<string, string>;
  /** The Secret whose data goes into the request's `secrets`. */
  secretRef?: SecretRef;
}

export type ContentPlan =
  /** Another driver's content, or one without a source: not ours to touch. */
  | { action: 'notOurs'; why: string }
  /** Ready, nothing to call. */
  | { action: 'upToDate' }
  /** A member of a group snapshot not cut yet: the group's call takes it, not ours. */
  | { action: 'leftToGroup' }
  /** Ready, but the being-created annotation outlived the call that set it. */
  | { action: 'removeBeingCreated' }
  /**
   * CreateSnapshot, the first time or again with the same name to poll a snapshot that is
   * not ready yet. `failureReason` is the Event reason a failure is reported under.
   */
  | { action: 'createSnapshot'; call: CreateSnapshotCall; failureReason: string }
  /**
   * A pre-provisioned content, or a group member the group's call has cut, that is not ready
   * yet: ListSnapshots by its handle.
   */
  | { action: 'checkSnapshot'; snapshotId: string; secretRef?: SecretRef }
  /** Being deleted with policy Delete: DeleteSnapshot, then release the content. */
  | { action: 'deleteSnapshot'; snapshotId: string; secretRef?: SecretRef }
  /** Being deleted, nothing (more) to delete on the backend: drop our finalizer. */
  | { action: 'removeFinalizer' }
  /** The content cannot be acted on as it is; reported like a failed call, then retried. */
  | { action: 'fail'; reason: string; message: string };

/** How VolumeSnapshotContents are marked, named, given a Secret and an error status. */
export const SNAPSHOT_CONTENT = new ContentKind<VolumeSnapshotContentStatus, VolumeSnapshotContent>(
  {
    what: 'snapshot content',
    noun: 'snapshot',
    reasons: {
      creationFailed: REASON_CREATION_FAILED,
      checkFailed: REASON_CHECK_FAILED,
      deleteError: REASON_DELETE_ERROR,
    },
    beingCreated: ANN_VOLUME_SNAPSHOT_BEING_CREATED,
    beingDeleted: ANN_VOLUME_SNAPSHOT_BEING_DELETED,
    secretAnnotations: { name: ANN_DELETION_SECRET_NAME, namespace: ANN_DELETION_SECRET_NAMESPACE },
    sidecarParameters: new Set([
      PARAM_SNAPSHOTTER_SECRET_NAME,
      PARAM_SNAPSHOTTER_SECRET_NAMESPACE,
      PARAM_SNAPSHOTTER_LIST_SECRET_NAME,
      PARAM_SNAPSHOTTER_LIST_SECRET_NAMESPACE,
    ]),
    extraMetadata: {
      name: PARAM_VOLUME_SNAPSHOT_NAME,
      namespace: PARAM_VOLUME_SNAPSHOT_NAMESPACE,
      contentName: PARAM_VOLUME_SNAPSHOT_CONTENT_NAME,
    },
    unboundPreProvisioned: (content) =>
      !!content.spec.source.snapshotHandle && !content.spec.volumeSnapshotRef?.uid,
    heldFields: ['snapshotHandle', 'creationTime', 'restoreSize'],
    statusTime: (now) => now.toISOString(),
    missingUid: 'corrupted snapshot object, it is missing UID',
  },
);

/** The Secret named by the content's deletion-secret annotations (upstream reads both). */
const deletionSecretRef = (content: VolumeSnapshotContent): SecretRef | undefined =>
  SNAPSHOT_CONTENT.annotatedSecretRef(content);

/**
 * The list secret a class names for pre-provisioned contents. Only the content name can be
 * templated here: there is no VolumeSnapshot in this call, as upstream.
 */
export function listSecretRef(
  snapshotClass: VolumeSnapshotClass | undefined,
  contentName: string,
): SecretRef | undefined {
  const keys = secretParameterKeys('snapshotter-list');
  const templates = secretTemplates(snapshotClass?.parameters ?? {}, keys);
  if (templates === undefined) return undefined;
  if (templates === 'incomplete' || !templates.name || !templates.namespace) {
    throw new Error(`${keys.name} and ${keys.namespace} must be set together`);
  }
  const resolve = (field: SecretField): string => {
    const resolved = resolveSecretTemplate('snapshotter-list', field, templates[field], {
      'volumesnapshotcontent.name': contentName,
    });
    // a `${` left without its `}` cannot be resolved either
    if ('unknown' in resolved || resolved.value.includes('${')) {
      throw new Error(
        `${keys[field]} "${templates[field]}" uses a token that cannot be resolved here; only ` +
          '${volumesnapshotcontent.name} is available',
      );
    }
    return resolved.value;
  };
  return { name: resolve('name'), namespace: resolve('namespace') };
}

/**
 * What the sidecar does with a content. `snapshotClass` is the class the content names, or
 * undefined when it names none or that class does not exist.
 */
export function planContent(
  content: VolumeSnapshotContent,
  snapshotClass: VolumeSnapshotClass | undefined,
  settings: SidecarSettings,
): ContentPlan {
  const contentName = content.metadata?.name ?? '';
  const source = content.spec?.source ?? {};
  const hasSource = !!source.volumeHandle || !!source.snapshotHandle;
  const foreign = planForeign(settings.driverName, hasSource, content, snapshotClass);
  if (foreign) return foreign;

  if (SNAPSHOT_CONTENT.mayRelease(content)) {
    const handle = content.status?.snapshotHandle;
    const hasFinalizer = content.metadata?.finalizers?.includes(
      FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND,
    );
    if (
      content.spec.deletionPolicy === 'Delete' &&
      handle &&
      !content.status?.volumeGroupSnapshotHandle
    ) {
      try {
        return {
          action: 'deleteSnapshot',
          snapshotId: handle,
          secretRef: deletionSecretRef(content),
        };
      } catch (error) {
        return { action: 'fail', reason: REASON_DELETE_ERROR, message: failedToDelete(error) };
      }
    }
    return hasFinalizer ? { action: 'removeFinalizer' } : { action: 'upToDate' };
  }

  const firstAttempt = !content.status;
  const ready = SNAPSHOT_CONTENT.planReady(content);
  if (ready) return ready;

  const preProvisioned = content.spec.source.snapshotHandle;
  if (preProvisioned) {
    return planCheck(preProvisioned, () => listSecretRef(snapshotClass, contentName));
  }

  // Group members, as upstream's syncContent and checkandUpdateContentStatusOperation: once
  // the group's call has cut one (status has both handles) its readiness is listed with the
  // credentials its annotations name (members carry no class); until then, and for any
  // content marked as a member, no CreateSnapshot of its own is ever made.
  const groupHandle = content.status?.volumeGroupSnapshotHandle;
  const memberHandle = content.status?.snapshotHandle;
  if (groupHandle && memberHandle) return planCheck(memberHandle, () => deletionSecretRef(content));
  if (isGroupSnapshotMemberContent(content)) return { action: 'leftToGroup' };

  const failureReason = firstAttempt ? REASON_CREATION_FAILED : REASON_CHECK_FAILED;
  const inputError = (error: unknown): ContentPlan => ({
    action: 'fail',
    reason: failureReason,
    message: SNAPSHOT_CONTENT.failureMessage(
      failureReason,
      `failed to get input parameters to create snapshot for content ${contentName}: ${messageOf(error)}`,
    ),
  });
  const className = content.spec.volumeSnapshotClassName;
  if (!className) {
    return inputError(`failed to take snapshot ${contentName} without a snapshot class`);
  }
  if (!snapshotClass) {
    return inputError(`volumesnapshotclass.snapshot.storage.k8s.io "${className}" not found`);
  }
  try {
    const ref = content.spec.volumeSnapshotRef;
    const parameters = SNAPSHOT_CONTENT.createParameters(
      snapshotClass.parameters,
      settings,
      ref,
      contentName,
    );
    return {
      action: 'createSnapshot',
      failureReason,
      call: {
        name: SNAPSHOT_CONTENT.createName(ref?.uid, settings),
        sourceVolumeId: content.spec.source.volumeHandle!,
        parameters,
        secretRef: deletionSecretRef(content),
      },
    };
  } catch (error) {
    return inputError(error);
  }
}

/** ListSnapshots of `snapshotId` with the Secret `secretRef` names, or why it cannot be made. */
function planCheck(snapshotId: string, secretRef: () => SecretRef | undefined): ContentPlan {
  try {
    return { action: 'checkSnapshot', snapshotId, secretRef: secretRef() };
  } catch (error) {
    return { action: 'fail', reason: REASON_CHECK_FAILED, message: failedToCheck(error) };
  }
}

/** What a CreateSnapshot or ListSnapshots call reported. */
export interface SnapshotReport {
  snapshotId: string;
  readyToUse: boolean;
  /** Absent when the driver did not say; the sidecar then uses the time it was told. */
  creationTime?: Date;
  /** 0 when unknown. */
  sizeBytes: number;
}

/**
 * The content status after a successful call (upstream updateSnapshotContentStatus): fields
 * already set are kept, except readyToUse, whose move to true also clears the error. Returns
 * undefined when nothing changes, so no write is needed.
 */
export function statusAfterReport(
  current: VolumeSnapshotContentStatus | undefined,
  report: SnapshotReport,
  now: Date,
): VolumeSnapshotContentStatus | undefined {
  const createdAt = nanoseconds(report.creationTime ?? now);
  if (!current) {
    const status: VolumeSnapshotContentStatus = {
      snapshotHandle: report.snapshotId,
      readyToUse: report.readyToUse,
      creationTime: createdAt,
    };
    if (report.sizeBytes > 0) status.restoreSize = report.sizeBytes;
    return status;
  }
  const next: VolumeSnapshotContentStatus = { ...current };
  let changed = false;
  if (!next.snapshotHandle) {
    next.snapshotHandle = report.snapshotId;
    changed = true;
  }
  if (next.readyToUse !== report.readyToUse) {
    next.readyToUse = report.readyToUse;
    if (report.readyToUse) delete next.error;
    changed = true;
  }
  if (next.creationTime === undefined || next.creationTime === null) {
    next.creationTime = createdAt;
    changed = true;
  }
  if ((next.restoreSize === undefined || next.restoreSize === null) && report.sizeBytes > 0) {
    next.restoreSize = report.sizeBytes;
    changed = true;
  }
  return changed ? next : undefined;
}

/**
 * Whether a gRPC failure is final: the call surely did not start or surely failed, so no
 * snapshot can be in the making. Unknown (non-gRPC) errors are not final: a CreateSnapshot
 * might still be running, so the being-created annotation must stay.
 */
export function isFinalCsiError(error: unknown): boolean {
  const code = grpcCodeOf(error);
  if (code === undefined) return false;
  return ![
    GrpcStatus.CANCELLED,
    GrpcStatus.DEADLINE_EXCEEDED,
    GrpcStatus.UNAVAILABLE,
    GrpcStatus.RESOURCE_EXHAUSTED,
    GrpcStatus.ABORTED,
  ].includes(code);
}

function failedToDelete(error: unknown): string {
  return SNAPSHOT_CONTENT.deleteFailedMessage(messageOf(error));
}

function failedToCheck(error: unknown): string {
  return SNAPSHOT_CONTENT.failureMessage(REASON_CHECK_FAILED, messageOf(error));
}

/** The message a failed CreateSnapshot call is recorded with. */
export function createFailedMessage(
  reason: string,
  content: VolumeSnapshotContent,
  error: unknown,
): string {
  return SNAPSHOT_CONTENT.failureMessage(
    reason,
    `failed to take snapshot of the volume ${content.spec.source.volumeHandle}: ${messageOf(error)}`,
  );
}

function nanoseconds(time: Date): number {
  // creationTime is int64 nanoseconds on the wire; a JS number keeps milliseconds exactly
  return time.getTime() * 1_000_000;
}

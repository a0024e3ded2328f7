/**
 * The CSI snapshotter's group paths, as pure functions: what to do with one
 * VolumeGroupSnapshotContent (CreateVolumeGroupSnapshot, GetVolumeGroupSnapshot,
 * DeleteVolumeGroupSnapshot, release, nothing) and how a driver's answer changes the content's
 * status. ./group-content-sidecar.ts only carries these decisions out. Semantics follow upstream
 * csi-snapshotter v8 (pkg/sidecar-controller/groupsnapshot_helper.go), with one deliberate
 * difference: a dynamic group cut but not ready yet is polled with GetVolumeGroupSnapshot
 * (every group driver has it: the one GroupController capability is
 * CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT) rather than by repeating CreateVolumeGroupSnapshot,
 * and each answer refreshes the members' readiness.
 */
import {
  ANN_GROUP_DELETION_SECRET_NAME,
  ANN_GROUP_DELETION_SECRET_NAMESPACE,
  ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED,
  ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
  FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND,
  PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAME,
  PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE,
  PARAM_GROUP_SNAPSHOTTER_SECRET_NAME,
  PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE,
  PARAM_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME,
  PARAM_VOLUME_GROUP_SNAPSHOT_NAME,
  PARAM_VOLUME_GROUP_SNAPSHOT_NAMESPACE,
  type VolumeGroupSnapshotClass,
  type VolumeGroupSnapshotContent,
  type VolumeGroupSnapshotContentStatus,
  type VolumeSnapshotInfo,
} from '../../api/group-snapshot.js';
import {
  fillPlaceholders,
  invalidSecretField,
  secretTemplates,
} from '../../api/secret-template.js';
import type { VolumeSnapshotContent } from '../../api/snapshot.js';
import { messageOf } from '../../csi/status.js';
import type { VolumeGroupSnapshot__Output } from '../../gen/csi/csi/v1/VolumeGroupSnapshot.js';
import type { Timestamp__Output } from '../../gen/csi/google/protobuf/Timestamp.js';
import { deepEqual, rfc3339 } from '../../kube/objects.js';
import { isGroupSnapshotMemberContent } from '../group.js';
import { planForeign, ContentKind, type SecretRef, type SidecarSettings } from './shared-plan.js';
import { DEFAULT_SIDECAR_SETTINGS, SNAPSHOT_CONTENT } from './plan.js';

/** Upstream's flag defaults for the group paths (`--groupsnapshot-name-*`). */
export const DEFAULT_GROUP_SIDECAR_SETTINGS: Omit<SidecarSettings, 'driverName'> = {
  ...DEFAULT_SIDECAR_SETTINGS,
  namePrefix: 'groupsnapshot',
};

/** Event reasons, as upstream emits them, so alerts written for upstream keep matching. */
export const REASON_GROUP_CREATION_FAILED = 'GroupSnapshotCreationFailed';
export const REASON_GROUP_CHECK_FAILED = 'GroupSnapshotContentCheckandUpdateFailed';
export const REASON_GROUP_DELETE_ERROR = 'GroupSnapshotDeleteError';

export interface CreateGroupSnapshotCall {
  name: string;
  sourceVolumeIds: string[];
  /** Class parameters without the `csi.storage.k8s.io/` keys (plus extra metadata if asked). */
  parameters: Record<string, string>;
  secretRef?: SecretRef;
}

export interface GroupSnapshotIdsCall {
  groupSnapshotId: string;
  snapshotIds: string[];
  secretRef?: SecretRef;
}

export type GroupContentPlan =
  /** Another driver's content, or one without a source: not ours to touch. */
  | { action: 'notOurs'; why: string }
  /** Ready (or released), nothing to call. */
  | { action: 'upToDate' }
  /** Ready, but the being-created annotation outlived the call that set it. */
  | { action: 'removeBeingCreated' }
  /**
   * CreateVolumeGroupSnapshot, the first time or again with the same name after a failure.
   * `failureReason` is the Event reason a failure is reported under.
   */
  | { action: 'createGroupSnapshot'; call: CreateGroupSnapshotCall; failureReason: string }
  /** A pre-provisioned group, or a dynamic one cut but not ready: GetVolumeGroupSnapshot. */
  | { action: 'getGroupSnapshot'; call: GroupSnapshotIdsCall }
  /** Being deleted with policy Delete: DeleteVolumeGroupSnapshot, then release the content. */
  | { action: 'deleteGroupSnapshot'; call: GroupSnapshotIdsCall }
  /** Being deleted, nothing (more) to delete on the storage system: drop the finalizer. */
  | { action: 'removeFinalizer' }
  /** The content cannot be acted on as it is; reported like a failed call, then retried. */
  | { action: 'fail'; reason: string; message: string };

/**
 * Whether a member VolumeSnapshotContent was cut by a group call, so that the single-snapshot
 * path must never call CreateSnapshot for it: upstream checks the group handle annotation; a
 * group handle in the status says the same where the annotation went missing.
 */
export function isGroupMember(content: VolumeSnapshotContent): boolean {
  return isGroupSnapshotMemberContent(content);
}

/** How VolumeGroupSnapshotContents are marked, named, given a Secret and an error status. */
export const GROUP_SNAPSHOT_CONTENT = new ContentKind<
  VolumeGroupSnapshotContentStatus,
  VolumeGroupSnapshotContent
>({
  what: 'group snapshot content',
  noun: 'group snapshot',
  reasons: {
    creationFailed: REASON_GROUP_CREATION_FAILED,
    checkFailed: REASON_GROUP_CHECK_FAILED,
    deleteError: REASON_GROUP_DELETE_ERROR,
  },
  beingCreated: ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED,
  beingDeleted: ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
  secretAnnotations: {
    name: ANN_GROUP_DELETION_SECRET_NAME,
    namespace: ANN_GROUP_DELETION_SECRET_NAMESPACE,
  },
  // upstream RemovePrefixedParameters: the snapshot sidecar's keys and the group ones
  sidecarParameters: new Set([
    ...SNAPSHOT_CONTENT.facts.sidecarParameters,
    PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAME,
    PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE,
    PARAM_GROUP_SNAPSHOTTER_SECRET_NAME,
    PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE,
  ]),
  extraMetadata: {
    name: PARAM_VOLUME_GROUP_SNAPSHOT_NAME,
    namespace: PARAM_VOLUME_GROUP_SNAPSHOT_NAMESPACE,
    contentName: PARAM_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME,
  },
  unboundPreProvisioned: (content) =>
    !!content.spec.source.groupSnapshotHandles && !content.spec.volumeGroupSnapshotRef?.uid,
  // the members' list stays, as upstream's clearGroupSnapshotContentStatus leaves it
  heldFields: ['volumeGroupSnapshotHandle', 'creationTime'],
  statusTime: rfc3339,
  missingUid: 'group snapshot object is missing UID',
});

/**
 * The Secret of the group calls that create and delete: the one the snapshot controller
 * resolved from the class's group-snapshotter-secret parameters and recorded on the content
 * (upstream GetCredentialsFromAnnotationForGroupSnapshot), so it is still known once the class
 * is gone.
 */
const groupDeletionSecretRef = (content: VolumeGroupSnapshotContent): SecretRef | undefined =>
  GROUP_SNAPSHOT_CONTENT.annotatedSecretRef(content);

const GET_SECRET_KEYS = {
  name: PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAME,
  namespace: PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE,
};

/**
 * The Secret a class names for GetVolumeGroupSnapshot (group-snapshotter-get-secret). As
 * upstream resolves it here, without a VolumeGroupSnapshot: only the content's name can be
 * templated.
 */
export function groupGetSecretRef(
  groupClass: VolumeGroupSnapshotClass | undefined,
  contentName: string,
): SecretRef | undefined {
  const templates = secretTemplates(groupClass?.parameters ?? {}, GET_SECRET_KEYS);
  if (templates === undefined) return undefined;
  if (templates === 'incomplete') {
    throw new Error(
      `${GET_SECRET_KEYS.name} and ${GET_SECRET_KEYS.namespace} must be set together`,
    );
  }
  const ref = { name: '', namespace: '' };
  for (const field of ['name', 'namespace'] as const) {
    const filled = fillPlaceholders(templates[field], {
      'volumegroupsnapshotcontent.name': contentName,
    });
    // a `${` left without its `}` cannot be resolved either
    if ('unknown' in filled || filled.value.includes('${')) {
      throw new Error(
        `${GET_SECRET_KEYS[field]} "${templates[field]}" uses a token that cannot be resolved ` +
          'here; only ${volumegroupsnapshotcontent.name} is available',
      );
    }
    ref[field] = filled.value;
  }
  const invalid = invalidSecretField(ref);
  if (invalid) {
    throw new Error(
      `${GET_SECRET_KEYS[invalid]} resolves to "${ref[invalid]}", which is not a valid ${invalid === 'name' ? 'secret' : 'namespace'} name`,
    );
  }
  return ref;
}

/** The members' snapshot IDs, from the status (dynamic) or the spec (pre-provisioned). */
function memberSnapshotIds(content: VolumeGroupSnapshotContent): string[] {
  const infos = content.status?.volumeSnapshotInfoList ?? [];
  if (infos.length > 0) return infos.map((info) => info.snapshotHandle ?? '');
  return [...(content.spec.source.groupSnapshotHandles?.volumeSnapshotHandles ?? [])];
}

/**
 * What the sidecar does with a group content (upstream syncGroupSnapshotContent).
 * `groupClass` is the class the content names, or undefined when it names none or that class
 * does not exist.
 */
export function planGroupSnapshotContent(
  content: VolumeGroupSnapshotContent,
  groupClass: VolumeGroupSnapshotClass | undefined,
  settings: SidecarSettings,
): GroupContentPlan {
  const contentName = content.metadata?.name ?? '';
  const source = content.spec?.source ?? {};
  const hasSource = !!source.groupSnapshotHandles || (source.volumeHandles?.length ?? 0) > 0;
  const foreign = planForeign(settings.driverName, hasSource, content, groupClass);
  if (foreign) return foreign;

  if (GROUP_SNAPSHOT_CONTENT.mayRelease(content)) return planRelease(content);

  const dynamic = (content.spec.source.volumeHandles?.length ?? 0) > 0;
  if (dynamic && !content.status) {
    return planCreate(content, groupClass, settings, REASON_GROUP_CREATION_FAILED);
  }
  const ready = GROUP_SNAPSHOT_CONTENT.planReady(content);
  if (ready) return ready;

  const checkFailed = (error: unknown): GroupContentPlan => ({
    action: 'fail',
    reason: REASON_GROUP_CHECK_FAILED,
    message: GROUP_SNAPSHOT_CONTENT.failureMessage(REASON_GROUP_CHECK_FAILED, messageOf(error)),
  });
  const handles = content.spec.source.groupSnapshotHandles;
  if (handles) {
    const className = content.spec.volumeGroupSnapshotClassName;
    if (className && !groupClass) {
      return checkFailed(
        `failed to get group snapshot class ${className} for group snapshot content ${contentName}: ` +
          `volumegroupsnapshotclass.groupsnapshot.storage.k8s.io "${className}" not found`,
      );
    }
    if (handles.volumeSnapshotHandles.length === 0) {
      return checkFailed(
        `cannot list group snapshot ${contentName}. No snapshots found in the group snapshot content`,
      );
    }
    try {
      return {
        action: 'getGroupSnapshot',
        call: {
          groupSnapshotId: handles.volumeGroupSnapshotHandle,
          snapshotIds: [...handles.volumeSnapshotHandles],
          secretRef: groupGetSecretRef(groupClass, contentName),
        },
      };
    } catch (error) {
      return checkFailed(
        `failed to get secret reference for group snapshot content ${contentName}: ${messageOf(error)}`,
      );
    }
  }

  // cut but not ready: ask how it goes, with the class's get secret or else the one the group
  // was created with; without the members' IDs (a failed first call left only an error) the
  // same CreateVolumeGroupSnapshot is made again, which is idempotent
  const groupSnapshotId = content.status?.volumeGroupSnapshotHandle;
  const snapshotIds = memberSnapshotIds(content);
  if (groupSnapshotId && snapshotIds.length > 0) {
    try {
      return {
        action: 'getGroupSnapshot',
        call: {
          groupSnapshotId,
          snapshotIds,
          secretRef: groupGetSecretRef(groupClass, contentName) ?? groupDeletionSecretRef(content),
        },
      };
    } catch (error) {
      return checkFailed(error);
    }
  }
  return planCreate(content, groupClass, settings, REASON_GROUP_CHECK_FAILED);
}

function planRelease(content: VolumeGroupSnapshotContent): GroupContentPlan {
  const groupSnapshotId = content.status?.volumeGroupSnapshotHandle;
  if (content.spec.deletionPolicy === 'Delete' && groupSnapshotId) {
    const deleteFailed = (detail: string): GroupContentPlan => ({
      action: 'fail',
      reason: REASON_GROUP_DELETE_ERROR,
      message: GROUP_SNAPSHOT_CONTENT.deleteFailedMessage(detail),
    });
    const snapshotIds = memberSnapshotIds(content);
    if (snapshotIds.length === 0) {
      return deleteFailed(
        `cannot delete group snapshot content ${content.metadata?.name}. No snapshots found in the group snapshot`,
      );
    }
    try {
      return {
        action: 'deleteGroupSnapshot',
        call: { groupSnapshotId, snapshotIds, secretRef: groupDeletionSecretRef(content) },
      };
    } catch (error) {
      return deleteFailed(messageOf(error));
    }
  }
  const hasFinalizer = content.metadata?.finalizers?.includes(
    FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND,
  );
  return hasFinalizer ? { action: 'removeFinalizer' } : { action: 'upToDate' };
}

function planCreate(
  content: VolumeGroupSnapshotContent,
  groupClass: VolumeGroupSnapshotClass | undefined,
  settings: SidecarSettings,
  failureReason: string,
): GroupContentPlan {
  const contentName = content.metadata?.name ?? '';
  const inputError = (error: unknown): GroupContentPlan => ({
    action: 'fail',
    reason: failureReason,
    message: GROUP_SNAPSHOT_CONTENT.failureMessage(
      failureReason,
      `failed to get input parameters to create group snapshot for group snapshot content ${contentName}: ${messageOf(error)}`,
    ),
  });
  const className = content.spec.volumeGroupSnapshotClassName;
  if (!className) {
    return inputError(
      `failed to take group snapshot ${contentName} without a group snapshot class`,
    );
  }
  if (!groupClass) {
    return inputError(
      `volumegroupsnapshotclass.groupsnapshot.storage.k8s.io "${className}" not found`,
    );
  }
  const ref = content.spec.volumeGroupSnapshotRef;
  try {
    const secretRef = groupDeletionSecretRef(content);
    const parameters = GROUP_SNAPSHOT_CONTENT.createParameters(
      groupClass.parameters,
      settings,
      ref,
      contentName,
    );
    if (!ref?.uid) {
      throw new Error(
        `cannot create group snapshot. Group snapshot content ${contentName} not bound to a group snapshot`,
      );
    }
    return {
      action: 'createGroupSnapshot',
      failureReason,
      call: {
        name: GROUP_SNAPSHOT_CONTENT.createName(ref.uid, settings),
        sourceVolumeIds: [...content.spec.source.volumeHandles!],
        parameters,
        secretRef,
      },
    };
  } catch (error) {
    return inputError(error);
  }
}

/** One member of a group, as the driver reported it. */
export interface MemberReport {
  volumeHandle: string;
  snapshotHandle: string;
  readyToUse: boolean;
  /** Nanoseconds since the epoch, as VolumeSnapshotInfo keeps it; absent when not reported. */
  creationTimeNs?: number;
  /** 0 when unknown. */
  sizeBytes: number;
}

/** What a CreateVolumeGroupSnapshot or GetVolumeGroupSnapshot call reported. */
export interface GroupSnapshotReport {
  groupSnapshotId: string;
  readyToUse: boolean;
  /** Absent when the driver did not say; the sidecar then uses the time it was told. */
  creationTime?: Date;
  members: MemberReport[];
}

function timestampOf(
  time: Timestamp__Output | null | undefined,
): { date: Date; ns: number } | undefined {
  if (!time) return undefined;
  const seconds = Number(time.seconds ?? 0);
  const nanos = time.nanos ?? 0;
  if (!seconds && !nanos) return undefined;
  return { date: new Date(seconds * 1000 + Math.floor(nanos / 1e6)), ns: seconds * 1e9 + nanos };
}

/** The report in a driver's VolumeGroupSnapshot message. */
export function groupReportOf(group: VolumeGroupSnapshot__Output): GroupSnapshotReport {
  return {
    groupSnapshotId: group.group_snapshot_id,
    readyToUse: group.ready_to_use,
    creationTime: timestampOf(group.creation_time)?.date,
    members: (group.snapshots ?? []).map((snapshot) => {
      const created = timestampOf(snapshot.creation_time);
      return {
        volumeHandle: snapshot.source_volume_id,
        snapshotHandle: snapshot.snapshot_id,
        readyToUse: snapshot.ready_to_use,
        creationTimeNs: created?.ns,
        sizeBytes: Number(snapshot.size_bytes ?? 0),
      };
    }),
  };
}

function infoOf(member: MemberReport): VolumeSnapshotInfo {
  const info: VolumeSnapshotInfo = {
    volumeHandle: member.volumeHandle,
    snapshotHandle: member.snapshotHandle,
    readyToUse: member.readyToUse,
  };
  if (member.creationTimeNs !== undefined) info.creationTime = member.creationTimeNs;
  if (member.sizeBytes > 0) info.restoreSize = member.sizeBytes;
  return info;
}

/**
 * The group content status after a successful call (upstream updateGroupSnapshotContentStatus):
 * fields already set are kept, except readyToUse, whose move to true also clears the error.
 * The members are listed once; later answers refresh each listed member's readiness (and fill
 * what it lacked), since the snapshot controller copies these onto the members' contents.
 * Returns undefined when nothing changes.
 */
export function groupStatusAfterReport(
  current: VolumeGroupSnapshotContentStatus | undefined,
  report: GroupSnapshotReport,
  now: Date,
): VolumeGroupSnapshotContentStatus | undefined {
  const createdAt = rfc3339(report.creationTime ?? now);
  if (!current) {
    const status: VolumeGroupSnapshotContentStatus = {
      volumeGroupSnapshotHandle: report.groupSnapshotId,
      readyToUse: report.readyToUse,
      creationTime: createdAt,
    };
    if (report.members.length > 0) status.volumeSnapshotInfoList = report.members.map(infoOf);
    return status;
  }
  const next: VolumeGroupSnapshotContentStatus = { ...current };
  if (!next.volumeGroupSnapshotHandle) next.volumeGroupSnapshotHandle = report.groupSnapshotId;
  if (next.readyToUse !== report.readyToUse) {
    next.readyToUse = report.readyToUse;
    if (report.readyToUse) delete next.error;
  }
  if (!next.creationTime) next.creationTime = createdAt;
  const listed = next.volumeSnapshotInfoList ?? [];
  if (listed.length === 0) {
    if (report.members.length > 0) next.volumeSnapshotInfoList = report.members.map(infoOf);
  } else {
    next.volumeSnapshotInfoList = listed.map((info) => {
      const member = report.members.find((m) => m.snapshotHandle === info.snapshotHandle);
      if (!member) return info;
      const fresh = infoOf(member);
      const merged: VolumeSnapshotInfo = { ...info, readyToUse: member.readyToUse };
      if (merged.creationTime === undefined && fresh.creationTime !== undefined) {
        merged.creationTime = fresh.creationTime;
      }
      if (merged.restoreSize === undefined && fresh.restoreSize !== undefined) {
        merged.restoreSize = fresh.restoreSize;
      }
      return merged;
    });
  }
  return deepEqual(next, current) ? undefined : next;
}

/** The message a failed CreateVolumeGroupSnapshot call is recorded with. */
export function groupCreateFailedMessage(
  reason: string,
  content: VolumeGroupSnapshotContent,
  error: unknown,
): string {
  const volumes = (content.spec.source.volumeHandles ?? []).join(', ');
  return GROUP_SNAPSHOT_CONTENT.failureMessage(
    reason,
    `failed to take group snapshot of the volumes [${volumes}]: ${messageOf(error)}`,
  );
}

/**
 * The group snapshot controller's decisions as pure functions of what the caches hold: for one
 * VolumeGroupSnapshot or one VolumeGroupSnapshotContent, the ordered writes that move it
 * towards the state upstream's common snapshot-controller (external-snapshotter v8, its group
 * paths) would reach. The vocabulary, and the steps taken as for a snapshot, are those of
 * ../common/plan.ts (`groups` below words them for a group); ./group-snapshot-controller.ts
 * carries plans out.
 */
import {
  ANN_GROUP_DELETION_SECRET_NAME,
  ANN_GROUP_DELETION_SECRET_NAMESPACE,
  ANN_IS_DEFAULT_GROUP_CLASS,
  ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
  ANN_VOLUME_GROUP_SNAPSHOT_HANDLE,
  FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND,
  FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND,
  GROUP_SNAPSHOT_API_VERSION,
  PARAM_GROUP_SNAPSHOTTER_SECRET_NAME,
  PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE,
  VOLUME_GROUP_SNAPSHOT_CONTENT_KIND,
  VOLUME_GROUP_SNAPSHOT_KIND,
  memberVolumeSnapshotContentNameFor,
  memberVolumeSnapshotNameFor,
  volumeGroupSnapshotContentNameFor,
  volumeGroupSnapshotOwnerReference,
  type VolumeGroupSnapshot,
  type VolumeGroupSnapshotClass,
  type VolumeGroupSnapshotContent,
  type VolumeSnapshotInfo,
} from '../../api/group-snapshot.js';
import {
  ANN_DELETION_SECRET_NAME,
  ANN_DELETION_SECRET_NAMESPACE,
  FINALIZER_VOLUME_SNAPSHOT_IN_GROUP,
  SNAPSHOT_API_VERSION,
  VOLUME_SNAPSHOT_CONTENT_KIND,
  VOLUME_SNAPSHOT_KIND,
  type VolumeSnapshot,
  type VolumeSnapshotContent,
  type VolumeSnapshotContentStatus,
} from '../../api/snapshot.js';
import { fillPlaceholders } from '../../api/secret-template.js';
import { labelSelectorMatches, labelSelectorToString } from '../../kube/selectors.js';
import {
  isRestoringFrom,
  type PersistentVolume,
  type PersistentVolumeClaim,
} from '../controller/plan.js';
import type { EventAction, FailureReport, Plan } from '../common/plan.js';
import {
  KindPlans,
  has,
  keyOfObject as groupKey,
  quoted,
  secretAnnotations,
  updateFailed,
  warnAndRetry,
  warning,
} from '../common/plan.js';

/** Event reasons as upstream's group paths emit them, so alerts written for upstream match. */
export const GroupReasons = {
  creatingGroupSnapshot: 'CreatingGroupSnapshot',
  groupSnapshotCreated: 'GroupSnapshotCreated',
  groupSnapshotReady: 'GroupSnapshotReady',
  getClassFailed: 'GetGroupSnapshotClassFailed',
  setDefaultClassFailed: 'SetDefaultGroupSnapshotClassFailed',
  validationError: 'GroupSnapshotValidationError',
  finalizerError: 'GroupSnapshotFinalizerError',
  contentMissing: 'GroupSnapshotContentMissing',
  contentMismatch: 'GroupSnapshotContentMismatch',
  contentMisbound: 'GroupSnapshotContentMisbound',
  misbound: 'GroupSnapshotMisbound',
  bindFailed: 'GroupSnapshotBindFailed',
  statusUpdateFailed: 'GroupSnapshotStatusUpdateFailed',
  contentCreationFailed: 'GroupSnapshotContentCreationFailed',
  createContentFailed: 'CreateGroupSnapshotContentFailed',
  deletePending: 'SnapshotDeletePending',
  snapshotDeleteError: 'SnapshotDeleteError',
  contentDeleteError: 'GroupSnapshotContentObjectDeleteError',
  contentValidationError: 'GroupContentValidationError',
} as const;

const GROUP_SECRET_KEYS = {
  name: PARAM_GROUP_SNAPSHOTTER_SECRET_NAME,
  namespace: PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE,
};

/** The steps a group's plan shares with a snapshot's, worded for a VolumeGroupSnapshot. */
const groups = new KindPlans({
  statusAction: 'patchGroupStatus',
  apiVersion: GROUP_SNAPSHOT_API_VERSION,
  kind: VOLUME_GROUP_SNAPSHOT_KIND,
  noun: 'group snapshot',
  contentNameFor: volumeGroupSnapshotContentNameFor,
  defaultClassAnnotation: ANN_IS_DEFAULT_GROUP_CLASS,
  secretParameterKeys: GROUP_SECRET_KEYS,
  deletionSecretKeys: {
    name: ANN_GROUP_DELETION_SECRET_NAME,
    namespace: ANN_GROUP_DELETION_SECRET_NAMESPACE,
  },
  beingDeletedAnnotation: ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
  reasons: {
    ...GroupReasons,
    created: GroupReasons.groupSnapshotCreated,
    ready: GroupReasons.groupSnapshotReady,
  },
});

/** Where a VolumeGroupSnapshotContent names its group and class. */
export const GROUP_CONTENT_REF_FIELDS = groups.contentFields;

export type GroupAction =
  /** Update `spec.volumeGroupSnapshotClassName` (the default class was chosen). */
  | { type: 'setGroupClass'; className: string; onFailure: FailureReport }
  | { type: 'addGroupBoundFinalizer'; onFailure: FailureReport }
  | { type: 'removeGroupBoundFinalizer' }
  /** Create `groupsnapcontent-<uid>`; AlreadyExists counts as success. */
  | {
      type: 'createGroupContent';
      content: VolumeGroupSnapshotContent;
      onFailure: FailureReport;
    }
  /** Fill the uid (and class) into a pre-provisioned content's ref. */
  | {
      type: 'bindGroupContent';
      contentName: string;
      uid: string;
      className?: string;
      onFailure: FailureReport;
    }
  /** Merge patch of the group's `status` (null removes a field). */
  | { type: 'patchGroupStatus'; status: Record<string, unknown>; onFailure?: FailureReport }
  /** Create a member's VolumeSnapshotContent; AlreadyExists counts as success. */
  | { type: 'createMemberContent'; content: VolumeSnapshotContent }
  /** Create a member's VolumeSnapshot; AlreadyExists counts as success. */
  | { type: 'createMemberSnapshot'; snapshot: VolumeSnapshot }
  /** Fill the member snapshot's uid (known once it exists) into its content's ref. */
  | { type: 'bindMemberContent'; contentName: string; snapshotName: string }
  | { type: 'patchMemberSnapshotStatus'; snapshotName: string; status: Record<string, unknown> }
  | { type: 'patchMemberContentStatus'; contentName: string; status: VolumeSnapshotContentStatus }
  | { type: 'annotateGroupContentBeingDeleted'; contentName: string }
  | { type: 'deleteGroupContent'; contentName: string; onFailure: FailureReport }
  | { type: 'deleteMemberSnapshot'; snapshotName: string; onFailure: FailureReport }
  | EventAction;

export interface GroupObservation {
  group: VolumeGroupSnapshot;
  /** A VolumeGroupSnapshotContent from the cache by name. */
  content(name: string): VolumeGroupSnapshotContent | undefined;
  classes: VolumeGroupSnapshotClass[];
  /** The PVCs of the group's namespace; the plan applies the selector. */
  pvcs: PersistentVolumeClaim[];
  pv(name: string): PersistentVolume | undefined;
  /** The one PV of a CSI driver's volume handle; undefined when none or several. */
  pvByHandle(driver: string, volumeHandle: string): PersistentVolume | undefined;
  /** A VolumeSnapshot of the group's namespace by name. */
  snapshot(name: string): VolumeSnapshot | undefined;
  /** A VolumeSnapshotContent by name. */
  snapshotContent(name: string): VolumeSnapshotContent | undefined;
  /** The VolumeSnapshots that name this group as their owner. */
  members: VolumeSnapshot[];
  /** PVCs of the group's namespace restored from a snapshot (the plan checks which). */
  restoringPvcs: PersistentVolumeClaim[];
  now: Date;
}

const boundName = (group: VolumeGroupSnapshot) =>
  group.status?.boundVolumeGroupSnapshotContentName || undefined;
const isReady = (group: VolumeGroupSnapshot) => group.status?.readyToUse === true;

/** The content points back at exactly this group (name, namespace and uid). */
export function isGroupBoundTo(
  content: VolumeGroupSnapshotContent,
  group: VolumeGroupSnapshot,
): boolean {
  return groups.isBoundTo(content, group);
}

/** The contents a group may be bound to (the content queue's keys it wakes). */
export function groupContentsOf(group: VolumeGroupSnapshot): string[] {
  return groups.contentsOf(
    group.status?.boundVolumeGroupSnapshotContentName,
    group.spec?.source?.volumeGroupSnapshotContentName,
    group.metadata.uid,
  );
}

/** The default group class of a driver: exactly one of its classes carries the annotation. */
export function chooseDefaultGroupClass(
  classes: VolumeGroupSnapshotClass[],
  driver: string,
): { class: VolumeGroupSnapshotClass } | { error: string } {
  return groups.chooseDefaultClass(classes, driver);
}

/**
 * The PVCs the group's selector picks in its namespace, by name. Unlike upstream, which
 * lists with matchLabels only, matchExpressions count too, as everywhere else in Kubernetes.
 */
export function selectedClaims(
  group: VolumeGroupSnapshot,
  pvcs: PersistentVolumeClaim[],
): PersistentVolumeClaim[] {
  const selector = group.spec.source.selector ?? {};
  return pvcs
    .filter(
      (pvc) =>
        pvc.metadata?.namespace === group.metadata.namespace &&
        labelSelectorMatches(
          { matchLabels: selector.matchLabels, matchExpressions: selector.matchExpressions },
          pvc.metadata?.labels,
        ),
    )
    .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
}

/**
 * The PVs of the selected PVCs, checked as upstream's getVolumesFromVolumeGroupSnapshot does,
 * with its texts: some PVC matches, each is Bound, its PV exists and is bound back to it.
 */
export function groupVolumes(
  obs: GroupObservation,
): { pvs: PersistentVolume[] } | { error: string } {
  const { group } = obs;
  const claims = selectedClaims(group, obs.pvcs);
  if (claims.length === 0) {
    const selector = group.spec.source.selector ?? {};
    const text =
      labelSelectorToString({
        matchLabels: selector.matchLabels,
        matchExpressions: selector.matchExpressions,
      }) || '<none>';
    return { error: `label selector ${text} for group snapshot not applied to any PVC` };
  }
  const pvs: PersistentVolume[] = [];
  for (const pvc of claims) {
    const volume = groups.boundVolume(pvc, obs.pv(pvc.spec?.volumeName ?? ''));
    if ('error' in volume) return volume;
    pvs.push(volume.pv);
  }
  return { pvs };
}

/**
 * The Secret of the class's group-snapshotter-secret parameters, as upstream's
 * GetGroupSnapshotSecretReference resolves it: the namespace may use the content's name and
 * the group's namespace, the name also the group's name; without a group (the members'
 * deletion Secret) only the content's name.
 */
export function groupSnapshotterSecretRef(
  parameters: Record<string, string> | undefined,
  contentName: string,
  group: VolumeGroupSnapshot | undefined,
): { ref?: { name: string; namespace: string } } | { error: string } {
  const namespaceValues: Record<string, string> = {
    'volumegroupsnapshotcontent.name': contentName,
  };
  if (group) namespaceValues['volumegroupsnapshot.namespace'] = group.metadata.namespace ?? '';
  const nameValues: Record<string, string> = { ...namespaceValues };
  if (group) nameValues['volumegroupsnapshot.name'] = group.metadata.name ?? '';
  return groups.classSecretRef(parameters, (field, template) =>
    fillPlaceholders(template, field === 'namespace' ? namespaceValues : nameValues),
  );
}

const MEMBER_DELETION_SECRET_KEYS = {
  name: ANN_DELETION_SECRET_NAME,
  namespace: ANN_DELETION_SECRET_NAMESPACE,
};

/** The content a dynamic group gets: `groupsnapcontent-<uid>`, bound to it from the start. */
export function desiredGroupContent(
  group: VolumeGroupSnapshot,
  groupClass: VolumeGroupSnapshotClass,
  volumeHandles: string[],
  secret: { name: string; namespace: string } | undefined,
): VolumeGroupSnapshotContent {
  return {
    apiVersion: GROUP_SNAPSHOT_API_VERSION,
    kind: VOLUME_GROUP_SNAPSHOT_CONTENT_KIND,
    metadata: groups.newContentMetadata(
      volumeGroupSnapshotContentNameFor(group.metadata.uid!),
      secret,
    ),
    spec: {
      volumeGroupSnapshotRef: groups.referenceTo(group),
      source: { volumeHandles },
      volumeGroupSnapshotClassName: groupClass.metadata.name,
      deletionPolicy: groupClass.deletionPolicy,
      driver: groupClass.driver,
    },
  };
}

/**
 * A member's VolumeSnapshotContent, as upstream builds it: the member's volume handle as its
 * source (the group call already cut it; the group handle annotation tells the CSI
 * snapshotter so), the group content's driver and policy, and the members' deletion Secret.
 * Its snapshot handle comes into its status (memberContentStatus).
 */
export function desiredMemberContent(
  group: VolumeGroupSnapshot,
  groupContent: VolumeGroupSnapshotContent,
  volumeHandle: string,
  pv: PersistentVolume | undefined,
  secret: { name: string; namespace: string } | undefined,
): VolumeSnapshotContent {
  const uid = group.metadata.uid!;
  const content: VolumeSnapshotContent = {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: VOLUME_SNAPSHOT_CONTENT_KIND,
    metadata: {
      name: memberVolumeSnapshotContentNameFor(uid, volumeHandle),
      annotations: {
        [ANN_VOLUME_GROUP_SNAPSHOT_HANDLE]: groupContent.status!.volumeGroupSnapshotHandle!,
        ...secretAnnotations(secret, MEMBER_DELETION_SECRET_KEYS),
      },
    },
    spec: {
      volumeSnapshotRef: {
        kind: VOLUME_SNAPSHOT_KIND,
        name: memberVolumeSnapshotNameFor(uid, volumeHandle),
        namespace: groupContent.spec.volumeGroupSnapshotRef.namespace,
      },
      deletionPolicy: groupContent.spec.deletionPolicy,
      driver: groupContent.spec.driver,
      source: { volumeHandle },
    },
  };
  const volumeMode = pv?.spec?.volumeMode;
  if (volumeMode === 'Block' || volumeMode === 'Filesystem') {
    content.spec.sourceVolumeMode = volumeMode;
  }
  return content;
}

/**
 * A member's VolumeSnapshot: owned by the group (so it goes with it), protected by the
 * in-group finalizer, its source the PVC of the member's PV (empty when the PV is not found,
 * as upstream).
 */
export function desiredMemberSnapshot(
  group: VolumeGroupSnapshot,
  groupContent: VolumeGroupSnapshotContent,
  volumeHandle: string,
  pv: PersistentVolume | undefined,
): VolumeSnapshot {
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: VOLUME_SNAPSHOT_KIND,
    metadata: {
      name: memberVolumeSnapshotNameFor(group.metadata.uid!, volumeHandle),
      namespace: groupContent.spec.volumeGroupSnapshotRef.namespace,
      ownerReferences: [volumeGroupSnapshotOwnerReference(group)],
      finalizers: [FINALIZER_VOLUME_SNAPSHOT_IN_GROUP],
    },
    spec: { source: { persistentVolumeClaimName: pv?.spec?.claimRef?.name ?? '' } },
  };
}

/** What a member's content status says, from the CSI driver's report of that member. */
export function memberContentStatus(
  info: VolumeSnapshotInfo,
  groupContent: VolumeGroupSnapshotContent,
): VolumeSnapshotContentStatus {
  const status: VolumeSnapshotContentStatus = {};
  if (info.snapshotHandle !== undefined) status.snapshotHandle = info.snapshotHandle;
  const groupHandle = groupContent.status?.volumeGroupSnapshotHandle;
  if (groupHandle !== undefined) status.volumeGroupSnapshotHandle = groupHandle;
  if (info.creationTime !== undefined) status.creationTime = info.creationTime;
  if (info.restoreSize !== undefined) status.restoreSize = info.restoreSize;
  if (info.readyToUse !== undefined) status.readyToUse = info.readyToUse;
  return status;
}

/** Records the error on the group (once per message), then fails the reconcile with it. */
function fail(
  obs: GroupObservation,
  reason: string,
  message: string,
  setReadyFalse = true,
): Plan<GroupAction> {
  return groups.failure(obs.group, reason, message, obs.now, setReadyFalse);
}

function statusActions(
  group: VolumeGroupSnapshot,
  content: VolumeGroupSnapshotContent,
  setReadyFalseOnFailure: boolean,
): GroupAction[] {
  const mirror = groups.statusMirror(group, content, content.status ?? {});
  return groups.statusActions(mirror, {
    reason: GroupReasons.statusUpdateFailed,
    message: 'GroupSnapshot status update failed,',
    toStatus: true,
    keepReadyToUse: !setReadyFalseOnFailure,
  });
}

/** What a VolumeGroupSnapshotContent's source says it was made for. */
function sourceOfGroupContent({ spec }: VolumeGroupSnapshotContent) {
  const handles = !!spec.source.groupSnapshotHandles;
  return { preprovisioned: handles, dynamic: !handles };
}

/** The next steps for one VolumeGroupSnapshot (upstream's syncGroupSnapshotByKey and syncGroupSnapshot). */
export function planGroupSnapshot(obs: GroupObservation): Plan<GroupAction> {
  const { group } = obs;
  // a class problem never blocks deletion: the group may be deleted because of it
  if (group.metadata.deletionTimestamp) return planGroupDeletion(obs);

  const actions: GroupAction[] = [];
  const { selector, volumeGroupSnapshotContentName } = group.spec.source ?? {};
  let className = group.spec.volumeGroupSnapshotClassName;
  let groupClass: VolumeGroupSnapshotClass | undefined;
  if (className !== undefined) {
    groupClass = obs.classes.find((candidate) => candidate.metadata.name === className);
    if (!groupClass) {
      return fail(
        obs,
        GroupReasons.getClassFailed,
        `failed to get group snapshot class with error volumegroupsnapshotclass.groupsnapshot.storage.k8s.io "${className}" not found`,
        false,
      );
    }
  } else if (selector && volumeGroupSnapshotContentName === undefined) {
    const volumes = groupVolumes(obs);
    const choice =
      'error' in volumes
        ? volumes
        : !volumes.pvs[0]!.spec?.csi
          ? {
              error: `snapshotting non-CSI volumes is not supported, group snapshot:${groupKey(group)}`,
            }
          : chooseDefaultGroupClass(obs.classes, volumes.pvs[0]!.spec.csi.driver);
    if ('error' in choice) {
      return fail(
        obs,
        GroupReasons.setDefaultClassFailed,
        `Failed to set default group snapshot class with error ${choice.error}`,
        false,
      );
    }
    groupClass = choice.class;
    className = groupClass.metadata.name!;
    actions.push({
      type: 'setGroupClass',
      className,
      onFailure: {
        reason: GroupReasons.setDefaultClassFailed,
        message: 'Failed to set default group snapshot class with error',
        toStatus: false,
      },
    });
  }

  if ((selector === undefined) === (volumeGroupSnapshotContentName === undefined)) {
    return fail(
      obs,
      GroupReasons.validationError,
      'Exactly one of Selector and VolumeGroupSnapshotContentName should be specified',
    );
  }
  const preprovisioned = volumeGroupSnapshotContentName !== undefined;
  const found = groups.checkedContent(
    group,
    volumeGroupSnapshotContentName,
    (name) => obs.content(name),
    sourceOfGroupContent,
    obs.now,
  );
  if ('failure' in found) return found.failure;

  // the bound finalizer waits for the binding to be recorded (upstream's
  // NeedToAddGroupSnapshotBoundFinalizer), whatever the content's deletion policy
  if (
    found.content &&
    boundName(group) &&
    !has(group.metadata.finalizers, FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND)
  ) {
    actions.push({
      type: 'addGroupBoundFinalizer',
      onFailure: {
        reason: GroupReasons.finalizerError,
        message: 'Failed to check and update group snapshot:',
        toStatus: false,
      },
    });
  }

  const rest: Plan<GroupAction> =
    isReady(group) && boundName(group)
      ? planReadyGroup(obs)
      : preprovisioned
        ? planPreprovisionedGroup(obs, found.content, className)
        : planDynamicGroup(obs, found.content, groupClass);
  return { actions: [...actions, ...rest.actions], retry: rest.retry };
}

/** A ready, bound group: only checks that the binding still holds (upstream's syncReadyGroupSnapshot). */
function planReadyGroup(obs: GroupObservation): Plan<GroupAction> {
  const { group, now } = obs;
  const content = obs.content(boundName(group)!);
  return { actions: groups.readyBinding(group, content, now) };
}

/** Binds a pre-provisioned content (fills its ref's uid and class) and mirrors its status. */
function planPreprovisionedGroup(
  obs: GroupObservation,
  found: VolumeGroupSnapshotContent | undefined,
  className: string | undefined,
): Plan<GroupAction> {
  const { group } = obs;
  if (!found) {
    return {
      actions: groups.contentMissing(group, obs.now),
      retry: `group snapshot ${groupKey(group)} requests an non-existing group snapshot content ${group.spec.source.volumeGroupSnapshotContentName}`,
    };
  }
  const ref = found.spec.volumeGroupSnapshotRef;
  // upstream's checkAndBindGroupSnapshotContent: a content bound by uid that names a class is
  // left alone; otherwise the uid is filled and the group's class, if it names one, copied
  if (ref.uid && found.spec.volumeGroupSnapshotClassName !== undefined) {
    return { actions: statusActions(group, found, false) };
  }
  const { action, content } = groups.binding('bindGroupContent', group, found, className);
  return { actions: [action, ...statusActions(group, content, false)] };
}

/**
 * A dynamic group: creates `groupsnapcontent-<uid>` from the selected volumes, then, once the
 * CSI snapshotter has cut the group (handle and member list in the content's status), the
 * members, and mirrors the content's status.
 */
function planDynamicGroup(
  obs: GroupObservation,
  content: VolumeGroupSnapshotContent | undefined,
  groupClass: VolumeGroupSnapshotClass | undefined,
): Plan<GroupAction> {
  const { group } = obs;
  if (content) {
    const members = planMembers(obs, content, groupClass);
    if (members.retry) return members;
    return { actions: [...members.actions, ...statusActions(group, content, true)] };
  }

  // the checks and texts of upstream's createGroupSnapshotContent, in its order
  const key = groupKey(group);
  const creationFailed = (detail: string) =>
    fail(
      obs,
      GroupReasons.contentCreationFailed,
      `failed to create group snapshot content with error ${detail}`,
    );
  const inputFailed = (detail: string) =>
    creationFailed(
      `failed to get input parameters to create group snapshot ${group.metadata.name}: ${quoted(detail)}`,
    );
  if (!groupClass) {
    return inputFailed(
      `failed to take group snapshot ${group.metadata.name} without a group snapshot class`,
    );
  }
  const volumes = groupVolumes(obs);
  if ('error' in volumes) return inputFailed(volumes.error);
  const contentName = volumeGroupSnapshotContentNameFor(group.metadata.uid!);
  const secret = groupSnapshotterSecretRef(groupClass.parameters, contentName, group);
  if ('error' in secret) return inputFailed(secret.error);
  const volumeHandles: string[] = [];
  for (const pv of volumes.pvs) {
    const csi = pv.spec?.csi;
    if (!csi) {
      return withWarning(
        `Cannot snapshot a non-CSI volume: ${pv.metadata?.name}`,
        creationFailed(
          `cannot snapshot a non-CSI volume for group snapshot ${key}: ${pv.metadata?.name}`,
        ),
      );
    }
    if (csi.driver !== groupClass.driver) {
      const message = `Volume CSI driver (${csi.driver}) mismatch with VolumeGroupSnapshotClass (${groupClass.driver}) ${key}: ${pv.metadata?.name}`;
      return withWarning(message, creationFailed(updateFailed(key, message)));
    }
    volumeHandles.push(csi.volumeHandle);
  }

  const created = desiredGroupContent(group, groupClass, volumeHandles, secret.ref);
  return {
    actions: [
      {
        type: 'createGroupContent',
        content: created,
        onFailure: {
          reason: GroupReasons.contentCreationFailed,
          message: `failed to create group snapshot content with error ${updateFailed(key, '').trimEnd()}`,
          toStatus: true,
          precededBy: {
            reason: GroupReasons.createContentFailed,
            message: `Error creating volume group snapshot content object for group snapshot ${key}:`,
            suffix: '.',
          },
        },
      },
      {
        type: 'event',
        eventType: 'Normal',
        reason: GroupReasons.creatingGroupSnapshot,
        message: `Waiting for a group snapshot ${key} to be created by the CSI driver.`,
      },
      ...statusActions(group, created, false),
    ],
  };
}

/** A failure to create the group content, preceded by upstream's CreateGroupSnapshotContentFailed. */
function withWarning(message: string, failure: Plan<GroupAction>): Plan<GroupAction> {
  return {
    ...failure,
    actions: [warning(GroupReasons.createContentFailed, message), ...failure.actions],
  };
}

/**
 * The members of a cut group (upstream's createSnapshotsForGroupSnapshotContent): for each
 * member the CSI driver reported, its VolumeSnapshotContent and VolumeSnapshot, bound to each
 * other, the member's snapshot handle and readiness in the content's status. Each step is
 * planned only while missing, so a sync that stopped half-way resumes where it stopped.
 */
export function planMembers(
  obs: GroupObservation,
  groupContent: VolumeGroupSnapshotContent,
  groupClass: VolumeGroupSnapshotClass | undefined,
): Plan<GroupAction> {
  const { group } = obs;
  const infos = groupContent.status?.volumeSnapshotInfoList ?? [];
  if (!groupContent.status?.volumeGroupSnapshotHandle || infos.length === 0) return { actions: [] };
  if (!groupClass) {
    return {
      actions: [],
      retry:
        'getGroupSnapshotSecret: internal error: cannot find reference to volume group snapshot class',
    };
  }
  const secret = groupSnapshotterSecretRef(
    groupClass.parameters,
    groupContent.metadata.name!,
    undefined,
  );
  if ('error' in secret) {
    return {
      actions: [],
      retry: `getGroupSnapshotSecret: failed to get secret reference for group snapshot content ${groupContent.metadata.name}: ${secret.error}`,
    };
  }
  const actions: GroupAction[] = [];
  for (const info of infos) {
    const volumeHandle = info.volumeHandle ?? '';
    const pv = obs.pvByHandle(groupContent.spec.driver, volumeHandle);
    const contentName = memberVolumeSnapshotContentNameFor(group.metadata.uid!, volumeHandle);
    const snapshotName = memberVolumeSnapshotNameFor(group.metadata.uid!, volumeHandle);
    const content = obs.snapshotContent(contentName);
    const snapshot = obs.snapshot(snapshotName);
    if (!content) {
      actions.push({
        type: 'createMemberContent',
        content: desiredMemberContent(group, groupContent, volumeHandle, pv, secret.ref),
      });
    }
    if (!snapshot) {
      actions.push({
        type: 'createMemberSnapshot',
        snapshot: desiredMemberSnapshot(group, groupContent, volumeHandle, pv),
      });
    }
    if (!content || !snapshot || content.spec.volumeSnapshotRef.uid !== snapshot.metadata.uid) {
      actions.push({ type: 'bindMemberContent', contentName, snapshotName });
    }
    // status.volumeGroupSnapshotName is what keeps a member from being deleted on its own
    const memberStatus = snapshot?.status;
    if (
      memberStatus?.boundVolumeSnapshotContentName !== contentName ||
      memberStatus.volumeGroupSnapshotName !== group.metadata.name
    ) {
      actions.push({
        type: 'patchMemberSnapshotStatus',
        snapshotName,
        status: {
          boundVolumeSnapshotContentName: contentName,
          volumeGroupSnapshotName: group.metadata.name,
        },
      });
    }
    const wanted = memberContentStatus(info, groupContent);
    const current = content?.status ?? {};
    const stale = (Object.keys(wanted) as (keyof VolumeSnapshotContentStatus)[]).some(
      (field) => current[field] !== wanted[field],
    );
    if (!content || stale) {
      actions.push({ type: 'patchMemberContentStatus', contentName, status: wanted });
    }
  }
  return { actions };
}

/**
 * A group being deleted (upstream's processGroupSnapshotWithDeletionTimestamp): refused while
 * a PVC is being restored from a member; otherwise its content is marked being-deleted and,
 * with policy Delete, deleted (the CSI snapshotter then deletes the group on the storage
 * system; the group keeps its bound finalizer until the content is gone), the members are
 * deleted with it, and with Retain the content stays and the finalizer goes at once.
 */
export function planGroupDeletion(obs: GroupObservation): Plan<GroupAction> {
  const { group } = obs;
  if (!has(group.metadata.finalizers, FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND)) {
    return { actions: [] };
  }
  // the content the status names or, for a dynamic group whose status was not written yet,
  // groupsnapcontent-<uid>; a pre-provisioned content the status does not name is never touched
  const contentName =
    boundName(group) ??
    (group.spec.source.volumeGroupSnapshotContentName === undefined
      ? volumeGroupSnapshotContentNameFor(group.metadata.uid!)
      : undefined);
  const candidate = contentName ? obs.content(contentName) : undefined;
  const content = candidate && isGroupBoundTo(candidate, group) ? candidate : undefined;
  const deleteContent = content?.spec.deletionPolicy === 'Delete';

  const key = groupKey(group);
  for (const member of obs.members) {
    if (obs.restoringPvcs.some((pvc) => isRestoringFrom(pvc, member))) {
      const message = `Snapshot ${member.metadata.namespace}/${member.metadata.name} belonging to VolumeGroupSnapshot ${key} is being used to restore a PVC`;
      return {
        actions: [warning(GroupReasons.deletePending, message)],
        retry: `${message}: snapshot is in use, will retry deletion`,
      };
    }
  }

  const actions: GroupAction[] = content
    ? groups.contentRelease(content, deleteContent, {
        annotate: 'annotateGroupContentBeingDeleted',
        delete: 'deleteGroupContent',
      })
    : [];
  for (const member of obs.members) {
    if (member.metadata.deletionTimestamp) continue;
    actions.push({
      type: 'deleteMemberSnapshot',
      snapshotName: member.metadata.name!,
      onFailure: {
        reason: GroupReasons.snapshotDeleteError,
        message: `failed to delete snapshot API object ${member.metadata.namespace}/${member.metadata.name} part of group snapshot ${key}:`,
        toStatus: false,
      },
    });
  }
  if (!(content && deleteContent)) actions.push({ type: 'removeGroupBoundFinalizer' });
  return { actions };
}

export type GroupContentAction = { type: 'addGroupContentFinalizer' } | EventAction;

/** The next steps for one VolumeGroupSnapshotContent (upstream's syncGroupSnapshotContent). */
export function planGroupContent(content: VolumeGroupSnapshotContent): Plan<GroupContentAction> {
  const { groupSnapshotHandles, volumeHandles } = content.spec.source;
  const dynamic = (volumeHandles?.length ?? 0) > 0;
  if (!!groupSnapshotHandles === dynamic) {
    return warnAndRetry(
      GroupReasons.contentValidationError,
      'Exactly one of GroupSnapshotHandles and VolumeHandles should be specified',
    );
  }
  // pre-bound: waits for its group to bind it
  if (!content.spec.volumeGroupSnapshotRef.uid) return { actions: [] };
  if (
    !content.metadata.deletionTimestamp &&
    !has(content.metadata.finalizers, FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND)
  ) {
    return { actions: [{ type: 'addGroupContentFinalizer' }] };
  }
  return { actions: [] };
}

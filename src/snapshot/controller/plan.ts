/**
 * The snapshot controller's decisions as pure functions of what the caches hold: for one
 * VolumeSnapshot, one VolumeSnapshotContent or one source PVC, the ordered writes that move
 * it towards the state upstream's common snapshot-controller (external-snapshotter v8) would
 * reach. ./snapshot-controller.ts only carries these plans out.
 */
import type { V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import {
  ANN_DELETION_SECRET_NAME,
  ANN_DELETION_SECRET_NAMESPACE,
  ANN_IS_DEFAULT_CLASS,
  ANN_VOLUME_SNAPSHOT_BEING_DELETED,
  FINALIZER_PVC_AS_SOURCE,
  FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE,
  FINALIZER_VOLUME_SNAPSHOT_BOUND,
  FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND,
  FINALIZER_VOLUME_SNAPSHOT_IN_GROUP,
  SNAPSHOT_API_VERSION,
  SNAPSHOT_GROUP,
  VOLUME_SNAPSHOT_CONTENT_KIND,
  VOLUME_SNAPSHOT_KIND,
  volumeSnapshotContentNameFor,
  type VolumeSnapshot,
  type VolumeSnapshotClass,
  type VolumeSnapshotContent,
  type VolumeSnapshotStatus,
} from '../../api/snapshot.js';
import { formatBytes, parseQuantity } from '../../api/quantity.js';
import { isGroupSnapshotMember } from '../group.js';
import type { EventAction, FailureReport, Plan } from '../common/plan.js';
import {
  KindPlans,
  has,
  keyOfObject as snapshotKey,
  quoted,
  updateFailed,
  warnAndRetry,
  warning,
} from '../common/plan.js';
import { resolveSecretTemplate, secretParameterKeys } from '../../api/secret-template.js';

export type PersistentVolumeClaim = V1PersistentVolumeClaim;
export type PersistentVolume = V1PersistentVolume;

/** Event reasons as upstream emits them, so alerts written for upstream keep matching. */
export const Reasons = {
  creatingSnapshot: 'CreatingSnapshot',
  snapshotCreated: 'SnapshotCreated',
  snapshotReady: 'SnapshotReady',
  getClassFailed: 'GetSnapshotClassFailed',
  setDefaultClassFailed: 'SetDefaultSnapshotClassFailed',
  validationError: 'SnapshotValidationError',
  finalizerError: 'SnapshotFinalizerError',
  contentMissing: 'SnapshotContentMissing',
  contentMismatch: 'SnapshotContentMismatch',
  contentMisbound: 'SnapshotContentMisbound',
  misbound: 'SnapshotMisbound',
  bindFailed: 'SnapshotBindFailed',
  statusUpdateFailed: 'SnapshotStatusUpdateFailed',
  handleSet: 'SnapshotHandleSet',
  contentCreationFailed: 'SnapshotContentCreationFailed',
  createContentFailed: 'CreateSnapshotContentFailed',
  pvcFinalizerError: 'ErrorPVCFinalizer',
  deletePending: 'SnapshotDeletePending',
  contentDeleteError: 'SnapshotContentObjectDeleteError',
  contentValidationError: 'ContentValidationError',
} as const;

/** The steps a snapshot's plan shares with a group's, worded for a VolumeSnapshot. */
const snapshots = new KindPlans({
  statusAction: 'patchSnapshotStatus',
  apiVersion: SNAPSHOT_API_VERSION,
  kind: VOLUME_SNAPSHOT_KIND,
  noun: 'snapshot',
  contentNameFor: volumeSnapshotContentNameFor,
  defaultClassAnnotation: ANN_IS_DEFAULT_CLASS,
  secretParameterKeys: secretParameterKeys('snapshotter'),
  deletionSecretKeys: { name: ANN_DELETION_SECRET_NAME, namespace: ANN_DELETION_SECRET_NAMESPACE },
  beingDeletedAnnotation: ANN_VOLUME_SNAPSHOT_BEING_DELETED,
  reasons: { ...Reasons, created: Reasons.snapshotCreated, ready: Reasons.snapshotReady },
});

/** Where a VolumeSnapshotContent names its snapshot and class. */
export const CONTENT_REF_FIELDS = snapshots.contentFields;

export type { EventType, FailureReport, Plan } from '../common/plan.js';

export type SnapshotAction =
  /** Merge-patch `spec.volumeSnapshotClassName` (the default class was chosen). */
  | { type: 'setSnapshotClass'; className: string; onFailure: FailureReport }
  | { type: 'updateSnapshotFinalizers'; add: string[]; remove: string[]; onFailure?: FailureReport }
  | { type: 'addPvcFinalizer'; pvcName: string; onFailure: FailureReport }
  /** Create the content; AlreadyExists counts as success. */
  | { type: 'createContent'; content: VolumeSnapshotContent; onFailure: FailureReport }
  /** Fill the uid (and class) into a pre-provisioned content's ref. */
  | {
      type: 'bindContent';
      contentName: string;
      uid: string;
      className?: string;
      onFailure: FailureReport;
    }
  | { type: 'annotateContentBeingDeleted'; contentName: string }
  | { type: 'deleteContent'; contentName: string; onFailure: FailureReport }
  /** Merge patch of `status` (null removes a field). */
  | { type: 'patchSnapshotStatus'; status: Record<string, unknown>; onFailure?: FailureReport }
  | EventAction;

export interface ControllerSettings {
  /** `--prevent-volume-mode-conversion`: record the source volume mode on new contents. */
  preventVolumeModeConversion: boolean;
}

export const DEFAULT_CONTROLLER_SETTINGS: ControllerSettings = {
  preventVolumeModeConversion: true,
};

export interface SnapshotObservation {
  snapshot: VolumeSnapshot;
  /** A content from the cache by name. */
  content(name: string): VolumeSnapshotContent | undefined;
  /** The source PVC (`spec.source.persistentVolumeClaimName`), if it exists. */
  pvc?: PersistentVolumeClaim;
  /** The PV the source PVC is bound to, if it exists. */
  pv?: PersistentVolume;
  classes: VolumeSnapshotClass[];
  /** PVCs in the snapshot's namespace whose data source is this snapshot. */
  restoringPvcs: PersistentVolumeClaim[];
  /**
   * Whether the VolumeGroupSnapshot that `status.volumeGroupSnapshotName` names exists;
   * looked up for a snapshot being deleted that names one (unknown counts as existing).
   */
  groupSnapshotExists?: boolean;
  now: Date;
  settings: ControllerSettings;
}

const isReady = (snapshot: VolumeSnapshot) => snapshot.status?.readyToUse === true;
const boundName = (snapshot: VolumeSnapshot) =>
  snapshot.status?.boundVolumeSnapshotContentName || undefined;

/** The content points back at exactly this snapshot (name, namespace and uid). */
export function isBoundTo(content: VolumeSnapshotContent, snapshot: VolumeSnapshot): boolean {
  return snapshots.isBoundTo(content, snapshot);
}

/** Deleting, and still holding one of our finalizers (so it waits for us). */
export function isDeletionCandidate(snapshot: VolumeSnapshot): boolean {
  return (
    !!snapshot.metadata.deletionTimestamp &&
    (has(snapshot.metadata.finalizers, FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE) ||
      has(snapshot.metadata.finalizers, FINALIZER_VOLUME_SNAPSHOT_BOUND))
  );
}

/** Being deleted, and its deletion went ahead: nothing of it is still taken from its PVC. */
function isReleased(snapshot: VolumeSnapshot): boolean {
  return (
    !!snapshot.metadata.deletionTimestamp &&
    !has(snapshot.metadata.finalizers, FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE)
  );
}

/** The contents a snapshot may be bound to (the content queue's keys it wakes). */
export function contentsOf(snapshot: VolumeSnapshot): string[] {
  return snapshots.contentsOf(
    snapshot.status?.boundVolumeSnapshotContentName,
    snapshot.spec?.source?.volumeSnapshotContentName,
    snapshot.metadata.uid,
  );
}

/** A Pending PVC whose data source (or data source ref) is this snapshot: a restore in progress. */
export function isRestoringFrom(pvc: PersistentVolumeClaim, snapshot: VolumeSnapshot): boolean {
  if (pvc.metadata?.namespace !== snapshot.metadata.namespace || pvc.status?.phase !== 'Pending')
    return false;
  return [pvc.spec?.dataSource, pvc.spec?.dataSourceRef].some(
    (source) =>
      source?.kind === VOLUME_SNAPSHOT_KIND &&
      source.apiGroup === SNAPSHOT_GROUP &&
      source.name === snapshot.metadata.name &&
      (!('namespace' in source) ||
        !source.namespace ||
        source.namespace === snapshot.metadata.namespace),
  );
}

/** The snapshot names (`namespace/name`) a PVC restores from; the PVC index of the controller. */
export function restoreSourcesOf(pvc: PersistentVolumeClaim): string[] {
  const namespace = pvc.metadata?.namespace ?? '';
  const sources = new Set<string>();
  for (const source of [pvc.spec?.dataSource, pvc.spec?.dataSourceRef]) {
    if (source?.kind === VOLUME_SNAPSHOT_KIND && source.apiGroup === SNAPSHOT_GROUP) {
      const sourceNamespace = ('namespace' in source && source.namespace) || namespace;
      sources.add(`${sourceNamespace}/${source.name}`);
    }
  }
  return [...sources];
}

/**
 * The default class for a driver: exactly one class of that driver must carry the
 * is-default-class annotation.
 */
export function chooseDefaultClass(
  classes: VolumeSnapshotClass[],
  driver: string,
): { class: VolumeSnapshotClass } | { error: string } {
  return snapshots.chooseDefaultClass(classes, driver);
}

/**
 * The source PV of a dynamic snapshot, checked as upstream's getVolumeFromVolumeSnapshot does
 * before taking a snapshot, with its error texts (users and alerts know them). Whether the PV
 * is a CSI volume is left to the caller: upstream words that differently per caller.
 */
function sourceVolume(obs: SnapshotObservation): { pv: PersistentVolume } | { error: string } {
  const { snapshot, pvc, pv } = obs;
  const pvcName = snapshot.spec.source.persistentVolumeClaimName;
  if (!pvc) {
    return {
      error: `failed to retrieve PVC ${pvcName} from the lister: ${quoted(`persistentvolumeclaim "${pvcName}" not found`)}`,
    };
  }
  return snapshots.boundVolume(pvc, pv);
}

/**
 * The deletion Secret of a new content from the class's snapshotter-secret parameters, with
 * the placeholders the `snapshotter` kind allows (../../api/secret-template.ts).
 */
export function snapshotterSecretRef(
  parameters: Record<string, string> | undefined,
  contentName: string,
  snapshot: VolumeSnapshot,
): { ref?: { name: string; namespace: string } } | { error: string } {
  const values = {
    'volumesnapshotcontent.name': contentName,
    'volumesnapshot.namespace': snapshot.metadata.namespace ?? '',
    'volumesnapshot.name': snapshot.metadata.name ?? '',
  };
  return snapshots.classSecretRef(parameters, (field, template) =>
    resolveSecretTemplate('snapshotter', field, template, values),
  );
}

/** The content a dynamic snapshot gets: `snapcontent-<uid>`, bound to it from the start. */
export function desiredContent(
  snapshot: VolumeSnapshot,
  snapshotClass: VolumeSnapshotClass,
  pv: PersistentVolume,
  secret: { name: string; namespace: string } | undefined,
  settings: ControllerSettings,
): VolumeSnapshotContent {
  const name = volumeSnapshotContentNameFor(snapshot.metadata.uid!);
  const content: VolumeSnapshotContent = {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: VOLUME_SNAPSHOT_CONTENT_KIND,
    metadata: snapshots.newContentMetadata(name, secret),
    spec: {
      volumeSnapshotRef: snapshots.referenceTo(snapshot),
      source: { volumeHandle: pv.spec!.csi!.volumeHandle },
      volumeSnapshotClassName: snapshotClass.metadata.name,
      deletionPolicy: snapshotClass.deletionPolicy,
      driver: snapshotClass.driver,
    },
  };
  // as upstream's createSnapshotContent: recorded only when the PV states its mode
  const volumeMode = pv.spec?.volumeMode;
  if (
    settings.preventVolumeModeConversion &&
    (volumeMode === 'Block' || volumeMode === 'Filesystem')
  ) {
    content.spec.sourceVolumeMode = volumeMode;
  }
  return content;
}

/** RFC 3339 (second precision) of a content's creationTime in nanoseconds. */
function creationTimeOf(nanoseconds: number): string {
  return new Date(Math.floor(nanoseconds / 1e6)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function isZeroQuantity(quantity: string | undefined): boolean {
  if (quantity === undefined) return false;
  try {
    return parseQuantity(quantity) === 0;
  } catch {
    return false;
  }
}

/**
 * What the snapshot's status should gain from its bound content: the binding, readyToUse,
 * creationTime (once), restoreSize (only to fill an empty or zero value) and the content's
 * error (cleared with it, and once ready). Events mark the first creation and readiness.
 */
export function statusFromContent(
  snapshot: VolumeSnapshot,
  content: VolumeSnapshotContent,
): { patch?: Record<string, unknown>; events: EventAction[] } {
  const source = content.status ?? {};
  const { patch, events } = snapshots.statusMirror(snapshot, content, {
    creationTime:
      source.creationTime !== undefined ? creationTimeOf(source.creationTime) : undefined,
    error: source.readyToUse === true ? undefined : source.error,
  });
  const current: VolumeSnapshotStatus = snapshot.status ?? {};
  if (
    source.restoreSize !== undefined &&
    (current.restoreSize === undefined ||
      (isZeroQuantity(current.restoreSize) && source.restoreSize > 0))
  ) {
    patch.restoreSize = formatBytes(source.restoreSize);
  }
  return { patch: Object.keys(patch).length > 0 ? patch : undefined, events };
}

/** Records the error on the snapshot (once per message), then fails the reconcile with it. */
function fail(
  snapshot: VolumeSnapshot,
  reason: string,
  message: string,
  now: Date,
  setReadyFalse = true,
): Plan<SnapshotAction> {
  return snapshots.failure(snapshot, reason, message, now, setReadyFalse);
}

/** What a VolumeSnapshotContent's source says it was made for. */
const sourceOfContent = ({ spec }: VolumeSnapshotContent) => ({
  preprovisioned: !!spec.source.snapshotHandle,
  dynamic: !!spec.source.volumeHandle,
});

/** The next steps for one VolumeSnapshot (upstream's syncSnapshotByKey and syncSnapshot). */
export function planSnapshot(obs: SnapshotObservation): Plan<SnapshotAction> {
  const { snapshot, now } = obs;
  const deleting = !!snapshot.metadata.deletionTimestamp;
  const actions: SnapshotAction[] = [];
  let className = snapshot.spec.volumeSnapshotClassName;
  let snapshotClass: VolumeSnapshotClass | undefined;

  // A class problem never blocks deletion: the snapshot may be deleted because of it.
  if (!deleting) {
    if (className !== undefined) {
      snapshotClass = obs.classes.find((candidate) => candidate.metadata.name === className);
      if (!snapshotClass) {
        return fail(
          snapshot,
          Reasons.getClassFailed,
          `Failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io "${className}" not found`,
          now,
          false,
        );
      }
    } else if (
      snapshot.spec.source.persistentVolumeClaimName !== undefined &&
      // a group member is made by its group, class and all (upstream's SetDefaultSnapshotClass)
      !isGroupSnapshotMember(snapshot)
    ) {
      const volume = sourceVolume(obs);
      const choice =
        'error' in volume
          ? volume
          : !volume.pv.spec?.csi
            ? {
                error: `snapshotting non-CSI volumes is not supported, snapshot:${snapshotKey(snapshot)}`,
              }
            : chooseDefaultClass(obs.classes, volume.pv.spec.csi.driver);
      if ('error' in choice) {
        return fail(
          snapshot,
          Reasons.setDefaultClassFailed,
          `Failed to set default snapshot class with error ${choice.error}`,
          now,
          false,
        );
      }
      snapshotClass = choice.class;
      className = snapshotClass.metadata.name;
      actions.push({
        type: 'setSnapshotClass',
        className: className!,
        onFailure: {
          reason: Reasons.setDefaultClassFailed,
          message: 'Failed to set default snapshot class with error',
          toStatus: false,
        },
      });
    }
  }

  // Deletion proceeds whatever state creation is in (upstream's
  // processSnapshotWithDeletionTimestamp): a snapshot whose creation failed for good must not
  // wait for a readiness that never comes. A CreateSnapshot still in flight is waited for by
  // the sidecar, which keeps the content while it carries the being-created annotation.
  if (deleting) return planDeletion(obs);

  const { persistentVolumeClaimName, volumeSnapshotContentName } = snapshot.spec.source;
  if ((persistentVolumeClaimName === undefined) === (volumeSnapshotContentName === undefined)) {
    return fail(
      snapshot,
      Reasons.validationError,
      'Exactly one of PersistentVolumeClaimName and VolumeSnapshotContentName should be specified',
      now,
    );
  }
  const preprovisioned = volumeSnapshotContentName !== undefined;
  // a dynamic group member's content is made and named by its group, never snapcontent-<uid>
  const groupMember = !preprovisioned && isGroupSnapshotMember(snapshot);
  const found = groupMember
    ? {}
    : snapshots.checkedContent(
        snapshot,
        volumeSnapshotContentName,
        (name) => obs.content(name),
        sourceOfContent,
        now,
      );
  const binding: Plan<SnapshotAction> =
    'failure' in found
      ? found.failure
      : isReady(snapshot) && boundName(snapshot)
        ? planReadySnapshot(obs)
        : preprovisioned
          ? planPreprovisionedBinding(obs, found.content, className)
          : groupMember
            ? planGroupMemberStatus(obs)
            : planDynamicBinding(obs, found.content, snapshotClass);

  // finalizers first: as-source always (until deletion), bound-protection once the snapshot
  // is bound, or about to be, to a content whose policy is Delete
  const finalizers = snapshot.metadata.finalizers ?? [];
  const add: string[] = [];
  if (!deleting && !finalizers.includes(FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE)) {
    add.push(FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE);
  }
  // bound-protection waits for the binding to be recorded in the status (upstream's
  // NeedToAddSnapshotBoundFinalizer), so it is added on the sync after the binding
  const boundContent = 'failure' in found || !boundName(snapshot) ? undefined : found.content;
  if (
    !deleting &&
    !finalizers.includes(FINALIZER_VOLUME_SNAPSHOT_BOUND) &&
    boundContent?.spec.deletionPolicy === 'Delete'
  ) {
    add.push(FINALIZER_VOLUME_SNAPSHOT_BOUND);
  }
  if (add.length > 0) {
    actions.push({
      type: 'updateSnapshotFinalizers',
      add,
      remove: [],
      onFailure: {
        reason: Reasons.finalizerError,
        message: 'Failed to check and update snapshot:',
        toStatus: false,
      },
    });
  }
  return { actions: [...actions, ...binding.actions], retry: binding.retry };
}

/** Binds a pre-provisioned content (fills its ref's uid and class) and mirrors its status. */
function planPreprovisionedBinding(
  obs: SnapshotObservation,
  found: VolumeSnapshotContent | undefined,
  className: string | undefined,
): Plan<SnapshotAction> {
  const { snapshot } = obs;
  if (!found) {
    return {
      actions: snapshots.contentMissing(snapshot, obs.now),
      retry: `snapshot ${snapshotKey(snapshot)} requests a non-existing content ${snapshot.spec.source.volumeSnapshotContentName}`,
    };
  }
  const ref = found.spec.volumeSnapshotRef;
  // upstream's checkandBindSnapshotContent: a content bound by uid that names a class is left
  // alone; otherwise the uid is filled and the snapshot's class, if it names one, replaces
  // the content's
  const bound = !!ref.uid && found.spec.volumeSnapshotClassName !== undefined;
  const copyClass = className !== undefined && found.spec.volumeSnapshotClassName !== className;
  if (bound || (ref.uid && !copyClass)) return { actions: statusActions(snapshot, found) };
  const { action, content } = snapshots.binding('bindContent', snapshot, found, className);
  return { actions: [action, ...statusActions(snapshot, content)] };
}

/**
 * A member of a dynamic group snapshot (upstream's syncUnreadySnapshot for members): its
 * group binds it, so it only mirrors the content its status names, and waits until it does.
 */
function planGroupMemberStatus(obs: SnapshotObservation): Plan<SnapshotAction> {
  const { snapshot } = obs;
  const name = boundName(snapshot);
  if (!name) {
    return {
      actions: [],
      retry: `detected group snapshot member ${snapshotKey(snapshot)} with no content, retrying`,
    };
  }
  const content = obs.content(name);
  if (!content) {
    return {
      actions: [],
      retry: `group snapshot member ${snapshotKey(snapshot)} requests an non-existing content ${name}`,
    };
  }
  return { actions: statusActions(snapshot, content) };
}

/** Binds a dynamic snapshot to `snapcontent-<uid>`, creating it (and protecting the PVC) first. */
function planDynamicBinding(
  obs: SnapshotObservation,
  content: VolumeSnapshotContent | undefined,
  snapshotClass: VolumeSnapshotClass | undefined,
): Plan<SnapshotAction> {
  const { snapshot, now } = obs;
  if (content) {
    if (content.spec.source.snapshotHandle) {
      return fail(
        snapshot,
        Reasons.handleSet,
        `Snapshot handle should not be set in content ${snapshotKey(snapshot)} for dynamic provisioning`,
        now,
      );
    }
    return { actions: statusActions(snapshot, content) };
  }
  // the checks and texts of upstream's createSnapshotContent, in its order: the PVC
  // (ensurePVCFinalizer), then the input (getCreateSnapshotInput), then the CSI source
  const creationFailed = (detail: string) =>
    fail(
      snapshot,
      Reasons.contentCreationFailed,
      `Failed to create snapshot content with error ${detail}`,
      now,
    );
  const inputFailed = (detail: string) =>
    creationFailed(
      `failed to get input parameters to create snapshot ${snapshot.metadata.name}: ${quoted(detail)}`,
    );
  const pvcName = snapshot.spec.source.persistentVolumeClaimName!;
  const pvc = obs.pvc;
  if (!pvc)
    return creationFailed(updateFailed(snapshot.metadata.name!, 'cannot get claim from snapshot'));
  const protectedPvc = has(pvc.metadata?.finalizers, FINALIZER_PVC_AS_SOURCE);
  // a PVC being deleted can still be snapshotted while it is protected: it cannot go away
  if (pvc.metadata?.deletionTimestamp && !protectedPvc) {
    return creationFailed(
      updateFailed(pvcName, 'cannot add finalizer on claim because it is being deleted'),
    );
  }
  if (!snapshotClass) {
    return inputFailed(
      `failed to take snapshot ${snapshot.metadata.name} without a snapshot class`,
    );
  }
  const volume = sourceVolume(obs);
  if ('error' in volume) return inputFailed(volume.error);
  const contentName = volumeSnapshotContentNameFor(snapshot.metadata.uid!);
  const secret = snapshotterSecretRef(snapshotClass.parameters, contentName, snapshot);
  if ('error' in secret) return inputFailed(secret.error);
  if (!volume.pv.spec?.csi) {
    return creationFailed(
      `cannot find CSI PersistentVolumeSource for volume ${volume.pv.metadata?.name}`,
    );
  }

  const actions: SnapshotAction[] = [];
  if (!protectedPvc) {
    actions.push({
      type: 'addPvcFinalizer',
      pvcName,
      onFailure: {
        reason: Reasons.contentCreationFailed,
        message: `Failed to create snapshot content with error snapshot controller failed to update ${pvcName} on API server:`,
        toStatus: true,
      },
    });
  }
  const created = desiredContent(snapshot, snapshotClass, volume.pv, secret.ref, obs.settings);
  actions.push({
    type: 'createContent',
    content: created,
    onFailure: {
      reason: Reasons.contentCreationFailed,
      message: `Failed to create snapshot content with error snapshot controller failed to update ${snapshotKey(snapshot)} on API server:`,
      toStatus: true,
      precededBy: {
        reason: Reasons.createContentFailed,
        message: `Error creating volume snapshot content object for snapshot ${snapshotKey(snapshot)}:`,
        suffix: '.',
      },
    },
  });
  actions.push({
    type: 'event',
    eventType: 'Normal',
    reason: Reasons.creatingSnapshot,
    message: `Waiting for a snapshot ${snapshotKey(snapshot)} to be created by the CSI driver.`,
  });
  return { actions: [...actions, ...statusActions(snapshot, created)] };
}

function statusActions(snapshot: VolumeSnapshot, content: VolumeSnapshotContent): SnapshotAction[] {
  return snapshots.statusActions(statusFromContent(snapshot, content), {
    reason: Reasons.statusUpdateFailed,
    message: 'Snapshot status update failed,',
    toStatus: true,
  });
}

/** A ready, bound snapshot: only checks that the binding still holds. */
function planReadySnapshot(obs: SnapshotObservation): Plan<SnapshotAction> {
  const { snapshot, now } = obs;
  const content = obs.content(boundName(snapshot)!);
  return { actions: snapshots.readyBinding(snapshot, content, now) };
}

/**
 * A snapshot being deleted: refused while a PVC is being restored from it; otherwise the bound
 * content is marked being-deleted and, with policy Delete, deleted (the snapshot keeps its
 * bound finalizer until the content is gone); with Retain, the content stays and both
 * finalizers go. A content that does not point back at the snapshot is never touched.
 */
function planDeletion(obs: SnapshotObservation): Plan<SnapshotAction> {
  const { snapshot } = obs;
  if (!isDeletionCandidate(snapshot)) return { actions: [] };
  // As upstream's processSnapshotWithDeletionTimestamp: the content is the one the status
  // names or, for a dynamic snapshot whose status was not written yet, snapcontent-<uid>.
  // A pre-provisioned content the status does not name yet is never touched: the admin's
  // backend snapshot stays, whatever its deletion policy.
  const contentName =
    boundName(snapshot) ??
    (snapshot.spec.source.persistentVolumeClaimName !== undefined
      ? volumeSnapshotContentNameFor(snapshot.metadata.uid!)
      : undefined);
  const candidate = contentName ? obs.content(contentName) : undefined;
  const content = candidate && isBoundTo(candidate, snapshot) ? candidate : undefined;

  const restores = obs.restoringPvcs.filter((pvc) => isRestoringFrom(pvc, snapshot));
  if (restores.length > 0) {
    const names = restores.map((pvc) => pvc.metadata?.name).sort();
    return {
      actions: [
        warning(
          Reasons.deletePending,
          `Snapshot is being used to restore a PVC (${names.join(', ')})`,
        ),
      ],
      retry: `snapshot ${snapshotKey(snapshot)} is being used to restore PVC ${names.join(', ')}`,
    };
  }

  // a member of a group that still exists goes with its group (upstream's
  // checkandRemoveSnapshotFinalizersAndCheckandDeleteContent); once the group is gone the
  // in-group finalizer goes with ours
  const groupName = snapshot.status?.volumeGroupSnapshotName;
  if (groupName && obs.groupSnapshotExists !== false) {
    const message = `deletion of the individual volume snapshot ${snapshotKey(snapshot)} is not allowed as it belongs to group snapshot ${snapshot.metadata.namespace}/${groupName}. Deleting the group snapshot will trigger the deletion of all the individual volume snapshots that are part of the group.`;
    return warnAndRetry(Reasons.deletePending, message);
  }

  const deleteContent = content?.spec.deletionPolicy === 'Delete';
  const actions: SnapshotAction[] = content
    ? snapshots.contentRelease(content, deleteContent, {
        annotate: 'annotateContentBeingDeleted',
        delete: 'deleteContent',
      })
    : [];
  const remove = [FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE];
  if (!(content && deleteContent)) remove.push(FINALIZER_VOLUME_SNAPSHOT_BOUND);
  if (groupName) remove.push(FINALIZER_VOLUME_SNAPSHOT_IN_GROUP);
  const present = remove.filter((finalizer) => has(snapshot.metadata.finalizers, finalizer));
  if (present.length > 0)
    actions.push({ type: 'updateSnapshotFinalizers', add: [], remove: present });
  return { actions };
}

export type ContentAction =
  { type: 'addContentFinalizer' } | { type: 'annotateContentBeingDeleted' } | EventAction;

export interface ContentObservation {
  content: VolumeSnapshotContent;
  /** The snapshot the content's ref names, if it exists. */
  snapshot?: VolumeSnapshot;
}

/** The next steps for one VolumeSnapshotContent (upstream's syncContent). */
export function planContent({ content, snapshot }: ContentObservation): Plan<ContentAction> {
  const { volumeHandle, snapshotHandle } = content.spec.source;
  if ((volumeHandle === undefined) === (snapshotHandle === undefined)) {
    return warnAndRetry(
      Reasons.contentValidationError,
      'Exactly one of VolumeHandle and SnapshotHandle should be specified',
    );
  }
  // pre-bound: waits for its snapshot to bind it
  if (!content.spec.volumeSnapshotRef.uid) return { actions: [] };
  const actions: ContentAction[] = [];
  if (
    !content.metadata.deletionTimestamp &&
    !has(content.metadata.finalizers, FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND)
  ) {
    actions.push({ type: 'addContentFinalizer' });
  }
  // a snapshot of the same name but another uid is a new object: this content's is gone,
  // and a content whose snapshot is gone is never deleted here (that could lose data)
  const own =
    snapshot && snapshot.metadata.uid === content.spec.volumeSnapshotRef.uid ? snapshot : undefined;
  if (
    own &&
    isDeletionCandidate(own) &&
    content.metadata.annotations?.[ANN_VOLUME_SNAPSHOT_BEING_DELETED] !== 'yes'
  ) {
    actions.push({ type: 'annotateContentBeingDeleted' });
  }
  return { actions };
}

export interface PvcObservation {
  pvc: PersistentVolumeClaim;
  /** Snapshots in the PVC's namespace. */
  snapshots: VolumeSnapshot[];
}

/**
 * Whether the PVC's source-protection finalizer can go: no snapshot of it is still being
 * taken (readyToUse not true). Run for the PVC itself, so the finalizer also goes when the
 * last such snapshot was deleted before it became ready. A snapshot being deleted stops
 * counting once its deletion went ahead (its as-source finalizer is gone), as upstream's
 * checkandRemovePVCFinalizer skips the snapshot whose finalizers it is removing
 * (isPVCBeingUsed with skipCurrentSnapshot); otherwise a snapshot that never became ready
 * would keep its PVC forever.
 */
export function planPvcFinalizer({ pvc, snapshots }: PvcObservation): {
  removeFinalizer: boolean;
  usedBy: string[];
} {
  if (!has(pvc.metadata?.finalizers, FINALIZER_PVC_AS_SOURCE))
    return { removeFinalizer: false, usedBy: [] };
  const usedBy = snapshots
    .filter(
      (snapshot) =>
        snapshot.metadata.namespace === pvc.metadata?.namespace &&
        snapshot.spec.source.persistentVolumeClaimName === pvc.metadata?.name &&
        !isReady(snapshot) &&
        !isReleased(snapshot),
    )
    .map((snapshot) => snapshot.metadata.name!)
    .sort();
  return { removeFinalizer: usedBy.length === 0, usedBy };
}

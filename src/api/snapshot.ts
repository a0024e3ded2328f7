/**
 * Types and well-known names of the standard snapshot API, snapshot.storage.k8s.io/v1.
 *
 * snapback only creates and watches these objects (and, with the embedded snapshot stack,
 * reconciles them), so the types mirror the upstream wire format: optional where the server
 * may omit a field, quantities and times as the strings the API server returns.
 */
import type { V1ObjectReference } from '@kubernetes/client-node';
import type { ApiObjectMeta } from './meta.js';

export const SNAPSHOT_GROUP = 'snapshot.storage.k8s.io';
export const SNAPSHOT_VERSION = 'v1';
export const SNAPSHOT_API_VERSION = `${SNAPSHOT_GROUP}/${SNAPSHOT_VERSION}` as const;

export const VOLUME_SNAPSHOT_KIND = 'VolumeSnapshot';
export const VOLUME_SNAPSHOT_CONTENT_KIND = 'VolumeSnapshotContent';
export const VOLUME_SNAPSHOT_CLASS_KIND = 'VolumeSnapshotClass';

export const VOLUME_SNAPSHOT_PLURAL = 'volumesnapshots';
export const VOLUME_SNAPSHOT_CONTENT_PLURAL = 'volumesnapshotcontents';
export const VOLUME_SNAPSHOT_CLASS_PLURAL = 'volumesnapshotclasses';

/** What happens to the backend snapshot when its VolumeSnapshotContent is deleted. */
export type DeletionPolicy = 'Delete' | 'Retain';

export type VolumeMode = 'Filesystem' | 'Block';

/** The annotation prefix shared by the snapshot controller and the CSI snapshotter. */
const ANNOTATION_PREFIX = 'snapshot.storage.kubernetes.io';

/** On a VolumeSnapshotClass: `"true"` marks the default class of its driver. */
export const ANN_IS_DEFAULT_CLASS = `${ANNOTATION_PREFIX}/is-default-class`;
/** On a VolumeSnapshotContent: `"yes"` while a CSI CreateSnapshot call may be in flight. */
export const ANN_VOLUME_SNAPSHOT_BEING_CREATED = `${ANNOTATION_PREFIX}/volumesnapshot-being-created`;
/** On a VolumeSnapshotContent: `"yes"` once its VolumeSnapshot is being deleted. */
export const ANN_VOLUME_SNAPSHOT_BEING_DELETED = `${ANNOTATION_PREFIX}/volumesnapshot-being-deleted`;
/** On a VolumeSnapshotContent: the Secret whose data the CSI DeleteSnapshot call receives. */
export const ANN_DELETION_SECRET_NAME = `${ANNOTATION_PREFIX}/deletion-secret-name`;
export const ANN_DELETION_SECRET_NAMESPACE = `${ANNOTATION_PREFIX}/deletion-secret-namespace`;

/** The value the being-created and being-deleted annotations carry. */
export const ANNOTATION_YES = 'yes';

/** On a VolumeSnapshotContent (distributed snapshotting): the node whose sidecar owns it. */
export const LABEL_MANAGED_BY = `${ANNOTATION_PREFIX}/managed-by`;

/** On a VolumeSnapshot, always, until the snapshot is being deleted. */
export const FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE = `${ANNOTATION_PREFIX}/volumesnapshot-as-source-protection`;
/** On a VolumeSnapshot bound to a content whose deletion policy is Delete. */
export const FINALIZER_VOLUME_SNAPSHOT_BOUND = `${ANNOTATION_PREFIX}/volumesnapshot-bound-protection`;
/** On a VolumeSnapshot that belongs to a VolumeGroupSnapshot. */
export const FINALIZER_VOLUME_SNAPSHOT_IN_GROUP = `${ANNOTATION_PREFIX}/volumesnapshot-in-group-protection`;
/** On a bound VolumeSnapshotContent; only the CSI snapshotter removes it. */
export const FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND = `${ANNOTATION_PREFIX}/volumesnapshotcontent-bound-protection`;
/** On a PVC while a snapshot of it is being taken. */
export const FINALIZER_PVC_AS_SOURCE = `${ANNOTATION_PREFIX}/pvc-as-source-protection`;

/**
 * The class parameter of the Alibaba Cloud disk driver (and of snapback's disk driver) that
 * allows deleting a snapshot from which disks were created. Its value is the string "true".
 */
export const PARAM_FORCE_DELETE = 'forceDelete';

/** The name the snapshot controller gives the content of a dynamically created snapshot. */
export function volumeSnapshotContentNameFor(volumeSnapshotUid: string): string {
  return `snapcontent-${volumeSnapshotUid}`;
}

export interface SnapshotError {
  /** RFC 3339 time of the failure. */
  time?: string;
  message?: string;
}

export interface VolumeSnapshotSource {
  /** Dynamic provisioning: the PVC (same namespace) to snapshot. */
  persistentVolumeClaimName?: string;
  /** Pre-provisioned: an existing VolumeSnapshotContent to bind to. */
  volumeSnapshotContentName?: string;
}

export interface VolumeSnapshotSpec {
  source: VolumeSnapshotSource;
  /** Absent means the default class of the source volume's driver. Never the empty string. */
  volumeSnapshotClassName?: string;
}

export interface VolumeSnapshotStatus {
  boundVolumeSnapshotContentName?: string;
  /** RFC 3339 time at which the storage system took the snapshot. */
  creationTime?: string;
  readyToUse?: boolean;
  /** A quantity such as "20Gi". */
  restoreSize?: string;
  error?: SnapshotError;
  volumeGroupSnapshotName?: string;
}

export interface VolumeSnapshot {
  apiVersion: typeof SNAPSHOT_API_VERSION;
  kind: typeof VOLUME_SNAPSHOT_KIND;
  metadata: ApiObjectMeta;
  spec: VolumeSnapshotSpec;
  status?: VolumeSnapshotStatus;
}

export interface VolumeSnapshotContentSource {
  /** Dynamic provisioning: the CSI volume handle to snapshot. */
  volumeHandle?: string;
  /** Pre-provisioned: the CSI snapshot handle of an existing backend snapshot. */
  snapshotHandle?: string;
}

export interface VolumeSnapshotContentSpec {
  /** The VolumeSnapshot bound to this content; `uid` is empty while the content is pre-bound. */
  volumeSnapshotRef: V1ObjectReference;
  deletionPolicy: DeletionPolicy;
  driver: string;
  volumeSnapshotClassName?: string;
  source: VolumeSnapshotContentSource;
  sourceVolumeMode?: VolumeMode;
}

export interface VolumeSnapshotContentStatus {
  snapshotHandle?: string;
  /** Nanoseconds since the Unix epoch. */
  creationTime?: number;
  /** Bytes. */
  restoreSize?: number;
  readyToUse?: boolean;
  error?: SnapshotError;
  volumeGroupSnapshotHandle?: string;
}

export interface VolumeSnapshotContent {
  apiVersion: typeof SNAPSHOT_API_VERSION;
  kind: typeof VOLUME_SNAPSHOT_CONTENT_KIND;
  metadata: ApiObjectMeta;
  spec: VolumeSnapshotContentSpec;
  status?: VolumeSnapshotContentStatus;
}

/** Cluster-scoped; its fields sit at the top level, not under `spec`. */
export interface VolumeSnapshotClass {
  apiVersion: typeof SNAPSHOT_API_VERSION;
  kind: typeof VOLUME_SNAPSHOT_CLASS_KIND;
  metadata: ApiObjectMeta;
  driver: string;
  parameters?: Record<string, string>;
  deletionPolicy: DeletionPolicy;
}

/**
 * Types and well-known names of the group snapshot API, groupsnapshot.storage.k8s.io/v1 (GA in
 * Kubernetes 1.36): several volumes of a namespace snapshotted at one instant.
 *
 * As with snapshot.storage.k8s.io, snapback creates and watches these objects (and, with the
 * embedded snapshot stack, reconciles them), so the types mirror the upstream wire format:
 * optional where the server may omit a field, times as the strings the API server returns.
 * Each member of a group is an ordinary VolumeSnapshot with its VolumeSnapshotContent (see
 * snapshot.ts), named by the functions below so that every controller finds the same objects.
 */
import { createHash } from 'node:crypto';
import type { V1LabelSelector, V1ObjectReference, V1OwnerReference } from '@kubernetes/client-node';
import { CSI_PARAMETER_PREFIX } from './csi-parameters.js';
import type { ApiObjectMeta } from './meta.js';
import type { DeletionPolicy, SnapshotError } from './snapshot.js';

export const GROUP_SNAPSHOT_GROUP = 'groupsnapshot.storage.k8s.io';
export const GROUP_SNAPSHOT_VERSION = 'v1';
export const GROUP_SNAPSHOT_API_VERSION =
  `${GROUP_SNAPSHOT_GROUP}/${GROUP_SNAPSHOT_VERSION}` as const;

export const VOLUME_GROUP_SNAPSHOT_KIND = 'VolumeGroupSnapshot';
export const VOLUME_GROUP_SNAPSHOT_CONTENT_KIND = 'VolumeGroupSnapshotContent';
export const VOLUME_GROUP_SNAPSHOT_CLASS_KIND = 'VolumeGroupSnapshotClass';

export const VOLUME_GROUP_SNAPSHOT_PLURAL = 'volumegroupsnapshots';
export const VOLUME_GROUP_SNAPSHOT_CONTENT_PLURAL = 'volumegroupsnapshotcontents';
export const VOLUME_GROUP_SNAPSHOT_CLASS_PLURAL = 'volumegroupsnapshotclasses';

/** The annotation prefix of the group paths of the snapshot controller and the CSI snapshotter. */
const ANNOTATION_PREFIX = 'groupsnapshot.storage.kubernetes.io';

/** On a VolumeGroupSnapshotClass: `"true"` marks the default class of its driver. */
export const ANN_IS_DEFAULT_GROUP_CLASS = `${ANNOTATION_PREFIX}/is-default-class`;
/** On a VolumeGroupSnapshotContent: `"yes"` while a CSI CreateVolumeGroupSnapshot call may be in flight. */
export const ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED = `${ANNOTATION_PREFIX}/volumegroupsnapshot-being-created`;
/** On a VolumeGroupSnapshotContent: `"yes"` once its VolumeGroupSnapshot is being deleted. */
export const ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED = `${ANNOTATION_PREFIX}/volumegroupsnapshot-being-deleted`;
/** On a VolumeGroupSnapshotContent: the Secret whose data the CSI DeleteVolumeGroupSnapshot call receives. */
export const ANN_GROUP_DELETION_SECRET_NAME = `${ANNOTATION_PREFIX}/deletion-secret-name`;
export const ANN_GROUP_DELETION_SECRET_NAMESPACE = `${ANNOTATION_PREFIX}/deletion-secret-namespace`;

/**
 * On a member VolumeSnapshotContent: the group snapshot handle it was cut in. Tells the CSI
 * snapshotter not to call CreateSnapshot for it (the group call already took it). Note the
 * domain: upstream spells this one with k8s.io, unlike the other group annotations.
 */
export const ANN_VOLUME_GROUP_SNAPSHOT_HANDLE = `${GROUP_SNAPSHOT_GROUP}/volumeGroupSnapshotHandle`;

/** On a VolumeGroupSnapshotContent bound to a VolumeGroupSnapshot; only the CSI snapshotter removes it. */
export const FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND = `${ANNOTATION_PREFIX}/volumegroupsnapshotcontent-bound-protection`;
/** On a VolumeGroupSnapshot bound to a content whose deletion policy is Delete. */
export const FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND = `${ANNOTATION_PREFIX}/volumegroupsnapshot-bound-protection`;

/** VolumeGroupSnapshotClass parameters the CSI snapshotter reads (secrets for the group calls). */
export const PARAM_GROUP_SNAPSHOTTER_SECRET_NAME = `${CSI_PARAMETER_PREFIX}group-snapshotter-secret-name`;
export const PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE = `${CSI_PARAMETER_PREFIX}group-snapshotter-secret-namespace`;
export const PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAME = `${CSI_PARAMETER_PREFIX}group-snapshotter-get-secret-name`;
export const PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE = `${CSI_PARAMETER_PREFIX}group-snapshotter-get-secret-namespace`;

/** Added by csi-snapshotter with --extra-create-metadata to CreateVolumeGroupSnapshot. */
export const PARAM_VOLUME_GROUP_SNAPSHOT_NAME = `${CSI_PARAMETER_PREFIX}volumegroupsnapshot/name`;
export const PARAM_VOLUME_GROUP_SNAPSHOT_NAMESPACE = `${CSI_PARAMETER_PREFIX}volumegroupsnapshot/namespace`;
export const PARAM_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME = `${CSI_PARAMETER_PREFIX}volumegroupsnapshotcontent/name`;

/** The name the snapshot controller gives the content of a dynamically created group snapshot. */
export function volumeGroupSnapshotContentNameFor(volumeGroupSnapshotUid: string): string {
  return `groupsnapcontent-${volumeGroupSnapshotUid}`;
}

/** The hex SHA-256 of the group's UID followed by the member's volume handle (no separator). */
function memberDigest(volumeGroupSnapshotUid: string, volumeHandle: string): string {
  return createHash('sha256')
    .update(volumeGroupSnapshotUid + volumeHandle)
    .digest('hex');
}

/** The name of the VolumeSnapshot made for one member of a group (in the group's namespace). */
export function memberVolumeSnapshotNameFor(
  volumeGroupSnapshotUid: string,
  volumeHandle: string,
): string {
  return `snapshot-${memberDigest(volumeGroupSnapshotUid, volumeHandle)}`;
}

/** The name of the VolumeSnapshotContent made for one member of a group. */
export function memberVolumeSnapshotContentNameFor(
  volumeGroupSnapshotUid: string,
  volumeHandle: string,
): string {
  return `snapcontent-${memberDigest(volumeGroupSnapshotUid, volumeHandle)}`;
}

/**
 * The owner reference a member VolumeSnapshot carries, so that it goes with its group. Not a
 * controller reference, and it does not block the owner's deletion.
 */
export function volumeGroupSnapshotOwnerReference(group: {
  metadata: { name?: string; uid?: string };
}): V1OwnerReference {
  return {
    apiVersion: GROUP_SNAPSHOT_API_VERSION,
    kind: VOLUME_GROUP_SNAPSHOT_KIND,
    name: group.metadata.name ?? '',
    uid: group.metadata.uid ?? '',
  };
}

export interface VolumeGroupSnapshotSource {
  /** Dynamic provisioning: the PVCs of this namespace to snapshot together, read once. */
  selector?: V1LabelSelector;
  /** Pre-provisioned: an existing VolumeGroupSnapshotContent to bind to. */
  volumeGroupSnapshotContentName?: string;
}

export interface VolumeGroupSnapshotSpec {
  source: VolumeGroupSnapshotSource;
  /** Absent means the default class of the volumes' driver. Never the empty string. */
  volumeGroupSnapshotClassName?: string;
}

export interface VolumeGroupSnapshotStatus {
  boundVolumeGroupSnapshotContentName?: string;
  /** RFC 3339 time at which the storage system took the group snapshot. */
  creationTime?: string;
  /** True once every member snapshot is ready. */
  readyToUse?: boolean;
  error?: SnapshotError;
}

export interface VolumeGroupSnapshot {
  apiVersion: typeof GROUP_SNAPSHOT_API_VERSION;
  kind: typeof VOLUME_GROUP_SNAPSHOT_KIND;
  metadata: ApiObjectMeta;
  spec: VolumeGroupSnapshotSpec;
  status?: VolumeGroupSnapshotStatus;
}

/** A pre-provisioned group snapshot: its CSI group snapshot ID and its members' snapshot IDs. */
export interface GroupSnapshotHandles {
  volumeGroupSnapshotHandle: string;
  volumeSnapshotHandles: string[];
}

export interface VolumeGroupSnapshotContentSource {
  /** Dynamic provisioning: the CSI volume handles to snapshot together. */
  volumeHandles?: string[];
  /** Pre-provisioned: an existing group snapshot on the storage system. */
  groupSnapshotHandles?: GroupSnapshotHandles;
}

export interface VolumeGroupSnapshotContentSpec {
  /** The VolumeGroupSnapshot bound to this content; `uid` is empty while the content is pre-bound. */
  volumeGroupSnapshotRef: V1ObjectReference;
  deletionPolicy: DeletionPolicy;
  driver: string;
  volumeGroupSnapshotClassName?: string;
  source: VolumeGroupSnapshotContentSource;
}

/** One member snapshot of a group, as the CSI driver reported it. */
export interface VolumeSnapshotInfo {
  volumeHandle?: string;
  snapshotHandle?: string;
  /** Nanoseconds since the Unix epoch. */
  creationTime?: number;
  readyToUse?: boolean;
  /** Bytes. */
  restoreSize?: number;
}

export interface VolumeGroupSnapshotContentStatus {
  volumeGroupSnapshotHandle?: string;
  /** RFC 3339 (unlike VolumeSnapshotContent's nanoseconds). */
  creationTime?: string;
  readyToUse?: boolean;
  error?: SnapshotError;
  volumeSnapshotInfoList?: VolumeSnapshotInfo[];
}

export interface VolumeGroupSnapshotContent {
  apiVersion: typeof GROUP_SNAPSHOT_API_VERSION;
  kind: typeof VOLUME_GROUP_SNAPSHOT_CONTENT_KIND;
  metadata: ApiObjectMeta;
  spec: VolumeGroupSnapshotContentSpec;
  status?: VolumeGroupSnapshotContentStatus;
}

/** Cluster-scoped; its fields sit at the top level, not under `spec`. */
export interface VolumeGroupSnapshotClass {
  apiVersion: typeof GROUP_SNAPSHOT_API_VERSION;
  kind: typeof VOLUME_GROUP_SNAPSHOT_CLASS_KIND;
  metadata: ApiObjectMeta;
  driver: string;
  parameters?: Record<string, string>;
  deletionPolicy: DeletionPolicy;
}

/**
 * How the snapshot controller and the sidecar recognise members of a VolumeGroupSnapshot
 * (groupsnapshot.storage.k8s.io). Members are made and bound by a group controller; the
 * single-snapshot paths leave them alone, as upstream external-snapshotter v8 does.
 */
import type { VolumeSnapshot, VolumeSnapshotContent } from '../api/snapshot.js';
import type { ResourceType } from '../kube/index.js';

export const GROUP_SNAPSHOT_GROUP = 'groupsnapshot.storage.k8s.io';
export const VOLUME_GROUP_SNAPSHOT_KIND = 'VolumeGroupSnapshot';
/** Served versions, newest first: any of them shows a group that exists. */
export const GROUP_SNAPSHOT_VERSIONS = ['v1', 'v1beta2', 'v1beta1'] as const;
/** On a VolumeSnapshotContent that a group snapshot made (upstream's member marker). */
export const ANN_VOLUME_GROUP_SNAPSHOT_HANDLE = `${GROUP_SNAPSHOT_GROUP}/volumeGroupSnapshotHandle`;

export function volumeGroupSnapshots(version: string): ResourceType {
  return {
    group: GROUP_SNAPSHOT_GROUP,
    version,
    plural: 'volumegroupsnapshots',
    kind: VOLUME_GROUP_SNAPSHOT_KIND,
    namespaced: true,
  };
}

/**
 * The VolumeGroupSnapshot that owns a snapshot, by owner reference (upstream's
 * IsVolumeGroupSnapshotMember). Any served version of the group counts.
 */
export function parentGroupOf(snapshot: VolumeSnapshot): string | undefined {
  return snapshot.metadata.ownerReferences?.find(
    (owner) =>
      owner.kind === VOLUME_GROUP_SNAPSHOT_KIND &&
      owner.apiVersion.split('/')[0] === GROUP_SNAPSHOT_GROUP,
  )?.name;
}

export function isGroupSnapshotMember(snapshot: VolumeSnapshot): boolean {
  return parentGroupOf(snapshot) !== undefined;
}

/**
 * A content a group snapshot made: the group controller marks it with the group handle
 * annotation (upstream's check); a group handle in its status says the same, even where the
 * annotation is missing. The group's CreateVolumeGroupSnapshot, not CreateSnapshot, takes it.
 */
export function isGroupSnapshotMemberContent(content: VolumeSnapshotContent): boolean {
  return (
    content.metadata?.annotations?.[ANN_VOLUME_GROUP_SNAPSHOT_HANDLE] !== undefined ||
    !!content.status?.volumeGroupSnapshotHandle
  );
}

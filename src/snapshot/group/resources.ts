/**
 * The groupsnapshot.storage.k8s.io/v1 collections, as the kube library addresses them.
 * src/kube/resource.ts declares the snapshot.storage.k8s.io ones; these sit with the group
 * controller until they join them there.
 */
import {
  GROUP_SNAPSHOT_GROUP,
  GROUP_SNAPSHOT_VERSION,
  VOLUME_GROUP_SNAPSHOT_CLASS_KIND,
  VOLUME_GROUP_SNAPSHOT_CLASS_PLURAL,
  VOLUME_GROUP_SNAPSHOT_CONTENT_KIND,
  VOLUME_GROUP_SNAPSHOT_CONTENT_PLURAL,
  VOLUME_GROUP_SNAPSHOT_KIND,
  VOLUME_GROUP_SNAPSHOT_PLURAL,
} from '../../api/group-snapshot.js';
import type { ResourceType } from '../../kube/resource.js';

export const VolumeGroupSnapshots: ResourceType = {
  group: GROUP_SNAPSHOT_GROUP,
  version: GROUP_SNAPSHOT_VERSION,
  plural: VOLUME_GROUP_SNAPSHOT_PLURAL,
  kind: VOLUME_GROUP_SNAPSHOT_KIND,
  namespaced: true,
};

export const VolumeGroupSnapshotContents: ResourceType = {
  group: GROUP_SNAPSHOT_GROUP,
  version: GROUP_SNAPSHOT_VERSION,
  plural: VOLUME_GROUP_SNAPSHOT_CONTENT_PLURAL,
  kind: VOLUME_GROUP_SNAPSHOT_CONTENT_KIND,
  namespaced: false,
};

export const VolumeGroupSnapshotClasses: ResourceType = {
  group: GROUP_SNAPSHOT_GROUP,
  version: GROUP_SNAPSHOT_VERSION,
  plural: VOLUME_GROUP_SNAPSHOT_CLASS_PLURAL,
  kind: VOLUME_GROUP_SNAPSHOT_CLASS_KIND,
  namespaced: false,
};

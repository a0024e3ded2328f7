import {
  SNAPSHOT_GROUP,
  SNAPSHOT_VERSION,
  VOLUME_SNAPSHOT_CLASS_KIND,
  VOLUME_SNAPSHOT_CLASS_PLURAL,
  VOLUME_SNAPSHOT_CONTENT_KIND,
  VOLUME_SNAPSHOT_CONTENT_PLURAL,
  VOLUME_SNAPSHOT_KIND,
  VOLUME_SNAPSHOT_PLURAL,
} from '../../api/snapshot.js';
import type { ResourceType } from '../../kube/index.js';

/** The snapshot.storage.k8s.io/v1 collections, as the kube library addresses them. */
export const VolumeSnapshots: ResourceType = {
  group: SNAPSHOT_GROUP,
  version: SNAPSHOT_VERSION,
  plural: VOLUME_SNAPSHOT_PLURAL,
  kind: VOLUME_SNAPSHOT_KIND,
  namespaced: true,
};

export const VolumeSnapshotContents: ResourceType = {
  group: SNAPSHOT_GROUP,
  version: SNAPSHOT_VERSION,
  plural: VOLUME_SNAPSHOT_CONTENT_PLURAL,
  kind: VOLUME_SNAPSHOT_CONTENT_KIND,
  namespaced: false,
};

export const VolumeSnapshotClasses: ResourceType = {
  group: SNAPSHOT_GROUP,
  version: SNAPSHOT_VERSION,
  plural: VOLUME_SNAPSHOT_CLASS_PLURAL,
  kind: VOLUME_SNAPSHOT_CLASS_KIND,
  namespaced: false,
};

/** Which REST collection an object lives in; enough to build every URL the client needs. */
import {
  SNAPSHOT_GROUP,
  SNAPSHOT_VERSION,
  VOLUME_SNAPSHOT_CLASS_KIND,
  VOLUME_SNAPSHOT_CLASS_PLURAL,
  VOLUME_SNAPSHOT_CONTENT_KIND,
  VOLUME_SNAPSHOT_CONTENT_PLURAL,
  VOLUME_SNAPSHOT_KIND,
  VOLUME_SNAPSHOT_PLURAL,
} from '../api/snapshot.js';
import {
  GROUP_SNAPSHOT_GROUP,
  GROUP_SNAPSHOT_VERSION,
  VOLUME_GROUP_SNAPSHOT_CLASS_KIND,
  VOLUME_GROUP_SNAPSHOT_CLASS_PLURAL,
  VOLUME_GROUP_SNAPSHOT_CONTENT_KIND,
  VOLUME_GROUP_SNAPSHOT_CONTENT_PLURAL,
  VOLUME_GROUP_SNAPSHOT_KIND,
  VOLUME_GROUP_SNAPSHOT_PLURAL,
} from '../api/group-snapshot.js';

export interface ResourceType {
  /** API group; `''` for the core group. */
  group: string;
  version: string;
  /** Lower-case plural used in URLs, e.g. `persistentvolumeclaims`. */
  plural: string;
  kind: string;
  namespaced: boolean;
}

/** Metadata every object we handle carries (client-node's V1ObjectMeta, with names required). */
export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: Date | string;
  deletionTimestamp?: Date | string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/**
 * Any Kubernetes object as JSON: `metadata` is always present on what the API server returns.
 * Timestamps are RFC 3339 strings here, even where client-node's `V1...` types say `Date`.
 */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export function apiVersionOf(type: ResourceType): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

/** `namespace/name` for namespaced objects, `name` for cluster-scoped ones (client-go's key). */
export function keyOf(obj: KubeObject): string {
  const name = obj.metadata?.name ?? '';
  const namespace = obj.metadata?.namespace;
  return namespace ? `${namespace}/${name}` : name;
}

export function makeKey(name: string, namespace?: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

export function splitKey(key: string): { namespace?: string; name: string } {
  const slash = key.indexOf('/');
  if (slash < 0) return { name: key };
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export const PersistentVolumeClaims: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'persistentvolumeclaims',
  kind: 'PersistentVolumeClaim',
  namespaced: true,
};

export const PersistentVolumes: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'persistentvolumes',
  kind: 'PersistentVolume',
  namespaced: false,
};

export const StatefulSets: ResourceType = {
  group: 'apps',
  version: 'v1',
  plural: 'statefulsets',
  kind: 'StatefulSet',
  namespaced: true,
};

export const ConfigMaps: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'configmaps',
  kind: 'ConfigMap',
  namespaced: true,
};

export const Secrets: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'secrets',
  kind: 'Secret',
  namespaced: true,
};

export const Events: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'events',
  kind: 'Event',
  namespaced: true,
};

export const Nodes: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'nodes',
  kind: 'Node',
  namespaced: false,
};

export const StorageClasses: ResourceType = {
  group: 'storage.k8s.io',
  version: 'v1',
  plural: 'storageclasses',
  kind: 'StorageClass',
  namespaced: false,
};

export const Leases: ResourceType = {
  group: 'coordination.k8s.io',
  version: 'v1',
  plural: 'leases',
  kind: 'Lease',
  namespaced: true,
};

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

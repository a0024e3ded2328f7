/**
 * Builders for the groupsnapshot.storage.k8s.io/v1 objects in their wire format, in the style
 * of ./fixtures.ts: a field left undefined is left out of the object.
 */
import {
  ANN_IS_DEFAULT_GROUP_CLASS,
  GROUP_SNAPSHOT_API_VERSION,
  type GroupSnapshotHandles,
  type VolumeGroupSnapshot,
  type VolumeGroupSnapshotClass,
  type VolumeGroupSnapshotContent,
} from '../../src/api/group-snapshot.js';
import type { DeletionPolicy } from '../../src/api/snapshot.js';
import type { MetaOptions } from './fixtures.js';

function defined<T extends object>(object: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(object).filter(([, value]) => value !== undefined),
  ) as Partial<T>;
}

function meta(options: MetaOptions) {
  const {
    name,
    namespace,
    uid,
    resourceVersion,
    labels,
    annotations,
    finalizers,
    deletionTimestamp,
    ownerReferences,
  } = options;
  return {
    name,
    ...defined({
      namespace,
      uid,
      resourceVersion,
      labels,
      annotations,
      finalizers,
      deletionTimestamp,
      ownerReferences,
    }),
  };
}

export interface GroupSnapshotOptions extends MetaOptions {
  /** `spec.source.selector.matchLabels` (a dynamic group). */
  matchLabels?: Record<string, string>;
  /** `spec.source.volumeGroupSnapshotContentName` (a pre-provisioned group). */
  contentName?: string;
  className?: string;
  status?: VolumeGroupSnapshot['status'];
}

export function buildGroupSnapshot(options: GroupSnapshotOptions): VolumeGroupSnapshot {
  const { matchLabels, contentName, className, status } = options;
  return {
    apiVersion: GROUP_SNAPSHOT_API_VERSION,
    kind: 'VolumeGroupSnapshot',
    metadata: meta(options) as VolumeGroupSnapshot['metadata'],
    spec: {
      source: defined({
        selector: matchLabels !== undefined ? { matchLabels } : undefined,
        volumeGroupSnapshotContentName: contentName,
      }),
      ...defined({ volumeGroupSnapshotClassName: className }),
    },
    ...defined({ status }),
  };
}

export interface GroupContentOptions extends MetaOptions {
  driver: string;
  groupRef: { name: string; namespace: string; uid?: string };
  deletionPolicy?: DeletionPolicy;
  /** `spec.source.volumeHandles` (dynamic); otherwise `groupSnapshotHandles`. */
  volumeHandles?: string[];
  groupSnapshotHandles?: GroupSnapshotHandles;
  className?: string;
  status?: VolumeGroupSnapshotContent['status'];
}

export function buildGroupContent(options: GroupContentOptions): VolumeGroupSnapshotContent {
  const { driver, groupRef, deletionPolicy, volumeHandles, groupSnapshotHandles, className } =
    options;
  return {
    apiVersion: GROUP_SNAPSHOT_API_VERSION,
    kind: 'VolumeGroupSnapshotContent',
    metadata: meta(options) as VolumeGroupSnapshotContent['metadata'],
    spec: {
      volumeGroupSnapshotRef: {
        kind: 'VolumeGroupSnapshot',
        ...defined(groupRef),
      },
      deletionPolicy: deletionPolicy ?? 'Delete',
      driver,
      source: defined({ volumeHandles, groupSnapshotHandles }),
      ...defined({ volumeGroupSnapshotClassName: className }),
    },
    ...defined({ status: options.status }),
  };
}

export interface GroupClassOptions extends MetaOptions {
  driver: string;
  isDefault?: boolean;
  deletionPolicy?: DeletionPolicy;
  parameters?: Record<string, string>;
}

export function buildGroupClass(options: GroupClassOptions): VolumeGroupSnapshotClass {
  const { driver, isDefault, deletionPolicy, parameters } = options;
  const annotations = isDefault
    ? { ...options.annotations, [ANN_IS_DEFAULT_GROUP_CLASS]: 'true' }
    : options.annotations;
  return {
    apiVersion: GROUP_SNAPSHOT_API_VERSION,
    kind: 'VolumeGroupSnapshotClass',
    metadata: meta({ ...options, annotations }) as VolumeGroupSnapshotClass['metadata'],
    driver,
    deletionPolicy: deletionPolicy ?? 'Delete',
    ...defined({ parameters }),
  };
}

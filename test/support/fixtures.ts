/**
 * One builder for the core and snapshot objects the unit tests feed to the plans and
 * controllers: PVCs, PVs, StorageClasses, VolumeSnapshots, VolumeSnapshotContents and
 * VolumeSnapshotClasses in their wire format. Each suite keeps its own defaults in a small
 * preset (e.g. test/unit/policy/fixtures.ts) that calls these; a field left undefined here is
 * left out of the object, so a preset says exactly what its objects carry.
 */
import type {
  V1PersistentVolume,
  V1PersistentVolumeClaim,
  V1StorageClass,
} from '@kubernetes/client-node';
import {
  ANN_IS_DEFAULT_CLASS,
  SNAPSHOT_API_VERSION,
  SNAPSHOT_GROUP,
  type DeletionPolicy,
  type VolumeSnapshot,
  type VolumeSnapshotClass,
  type VolumeSnapshotContent,
} from '../../src/api/snapshot.js';

/** The metadata every builder accepts; only the fields given are set. */
export interface MetaOptions {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  /** Sets `deletionTimestamp` (a string, or a Date where the client-node type wants one). */
  deletionTimestamp?: string | Date;
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string }[];
}

function meta(options: MetaOptions) {
  const { name, ...rest } = options;
  return { name, ...defined(rest) };
}

/** `object` without its undefined fields. */
function defined<T extends object>(object: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(object).filter(([, value]) => value !== undefined),
  ) as Partial<T>;
}

/**
 * The core kinds come as client-node's types by default; a suite whose code reads them in
 * their wire format (times as strings, e.g. src/policy/objects.ts) names that type instead.
 */
function cast<T>(object: object): T {
  return object as T;
}

const DEFAULT_CLASS_ANNOTATION = 'storageclass.kubernetes.io/is-default-class';

export interface PvcOptions extends MetaOptions {
  accessModes?: string[];
  size?: string;
  storageClassName?: string;
  volumeName?: string;
  volumeMode?: 'Filesystem' | 'Block';
  /** The VolumeSnapshot it is restored from (`spec.dataSource`). */
  restoreFrom?: string;
  /** `status.phase`; no status when undefined. */
  phase?: string;
}

export function buildPvc<T = V1PersistentVolumeClaim>(options: PvcOptions): T {
  const { accessModes, size, storageClassName, volumeName, volumeMode, restoreFrom, phase } =
    options;
  return cast<T>({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: meta(pick(options)),
    spec: {
      accessModes: accessModes ?? ['ReadWriteOnce'],
      resources: { requests: { storage: size ?? '1Gi' } },
      ...defined({ storageClassName, volumeName, volumeMode }),
      ...(restoreFrom !== undefined
        ? { dataSource: { apiGroup: SNAPSHOT_GROUP, kind: 'VolumeSnapshot', name: restoreFrom } }
        : {}),
    },
    ...(phase !== undefined ? { status: { phase } } : {}),
  });
}

export interface PvOptions extends MetaOptions {
  /** The CSI driver of the volume; `null` makes a hostPath volume (not CSI). */
  driver: string | null;
  volumeHandle?: string;
  capacity?: string;
  claimRef?: { name: string; namespace: string; uid?: string };
  volumeMode?: 'Filesystem' | 'Block';
}

export function buildPv<T = V1PersistentVolume>(options: PvOptions): T {
  const { driver, volumeHandle, capacity, claimRef, volumeMode } = options;
  return cast<T>({
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: meta(pick(options)),
    spec: {
      ...(capacity !== undefined ? { capacity: { storage: capacity } } : {}),
      ...(claimRef !== undefined ? { claimRef } : {}),
      ...(driver === null
        ? { hostPath: { path: '/tmp/x' } }
        : { csi: { driver, volumeHandle: volumeHandle ?? `handle-${options.name}` } }),
      ...defined({ volumeMode }),
    },
  });
}

export interface StorageClassOptions extends MetaOptions {
  provisioner: string;
  isDefault?: boolean;
  reclaimPolicy?: 'Delete' | 'Retain';
  volumeBindingMode?: 'Immediate' | 'WaitForFirstConsumer';
  parameters?: Record<string, string>;
}

export function buildStorageClass<T = V1StorageClass>(options: StorageClassOptions): T {
  const { provisioner, isDefault, reclaimPolicy, volumeBindingMode, parameters } = options;
  const annotations = isDefault
    ? { ...options.annotations, [DEFAULT_CLASS_ANNOTATION]: 'true' }
    : options.annotations;
  return cast<T>({
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: meta({ ...pick(options), annotations }),
    provisioner,
    ...defined({ reclaimPolicy, volumeBindingMode, parameters }),
  });
}

export interface SnapshotClassOptions extends MetaOptions {
  driver: string;
  isDefault?: boolean;
  deletionPolicy?: DeletionPolicy;
  parameters?: Record<string, string>;
}

export function buildSnapshotClass(options: SnapshotClassOptions): VolumeSnapshotClass {
  const { driver, isDefault, deletionPolicy, parameters } = options;
  const annotations = isDefault
    ? { ...options.annotations, [ANN_IS_DEFAULT_CLASS]: 'true' }
    : options.annotations;
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: 'VolumeSnapshotClass',
    metadata: meta({ ...pick(options), annotations }),
    driver,
    deletionPolicy: deletionPolicy ?? 'Delete',
    ...defined({ parameters }),
  };
}

export interface SnapshotOptions extends MetaOptions {
  /** `spec.source.persistentVolumeClaimName` (a dynamic snapshot). */
  pvc?: string;
  /** `spec.source.volumeSnapshotContentName` (a pre-provisioned snapshot). */
  contentName?: string;
  className?: string;
  status?: VolumeSnapshot['status'];
}

export function buildSnapshot(options: SnapshotOptions): VolumeSnapshot {
  const { pvc, contentName, className, status } = options;
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: 'VolumeSnapshot',
    metadata: meta(pick(options)) as VolumeSnapshot['metadata'],
    spec: {
      source: defined({
        persistentVolumeClaimName: pvc,
        volumeSnapshotContentName: contentName,
      }) as VolumeSnapshot['spec']['source'],
      ...defined({ volumeSnapshotClassName: className }),
    },
    ...defined({ status }),
  };
}

export interface ContentOptions extends MetaOptions {
  driver: string;
  snapshotRef: { name: string; namespace: string; uid?: string; kind?: string };
  deletionPolicy?: DeletionPolicy;
  /** `spec.source.snapshotHandle` (pre-provisioned); otherwise `volumeHandle`. */
  snapshotHandle?: string;
  volumeHandle?: string;
  className?: string;
  status?: VolumeSnapshotContent['status'];
}

export function buildContent(options: ContentOptions): VolumeSnapshotContent {
  const { driver, snapshotRef, deletionPolicy, snapshotHandle, volumeHandle, className, status } =
    options;
  const { kind, ...ref } = snapshotRef;
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: 'VolumeSnapshotContent',
    metadata: meta(pick(options)) as VolumeSnapshotContent['metadata'],
    spec: {
      volumeSnapshotRef: {
        ...defined({ kind }),
        ...defined(ref),
      } as VolumeSnapshotContent['spec']['volumeSnapshotRef'],
      deletionPolicy: deletionPolicy ?? 'Delete',
      driver,
      source:
        snapshotHandle !== undefined ? { snapshotHandle } : { volumeHandle: volumeHandle ?? 'h' },
      ...defined({ volumeSnapshotClassName: className }),
    },
    ...defined({ status }),
  };
}

/** The metadata fields of a builder's options, in a fixed order. */
function pick(options: MetaOptions): MetaOptions {
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
    namespace,
    uid,
    resourceVersion,
    labels,
    annotations,
    finalizers,
    deletionTimestamp,
    ownerReferences,
  };
}

import {
  ANN_IS_DEFAULT_CLASS,
  SNAPSHOT_API_VERSION,
  type DeletionPolicy,
  type VolumeSnapshot,
  type VolumeSnapshotClass,
  type VolumeSnapshotContent,
} from '../../../../src/api/snapshot.js';
import type {
  PersistentVolume,
  PersistentVolumeClaim,
} from '../../../../src/snapshot/controller/plan.js';

export const NS = 'ns';
export const DRIVER = 'local.snapback.dev';

export function snapshot(
  name: string,
  options: {
    uid?: string;
    pvc?: string;
    content?: string;
    className?: string;
    finalizers?: string[];
    deleting?: boolean;
    status?: VolumeSnapshot['status'];
    /** The VolumeGroupSnapshot that owns it (a group member). */
    group?: string;
  } = {},
): VolumeSnapshot {
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: 'VolumeSnapshot',
    metadata: {
      name,
      namespace: NS,
      uid: options.uid ?? `uid-${name}`,
      resourceVersion: '10',
      ...(options.finalizers ? { finalizers: options.finalizers } : {}),
      ...(options.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
      ...(options.group !== undefined
        ? {
            ownerReferences: [
              {
                apiVersion: 'groupsnapshot.storage.k8s.io/v1',
                kind: 'VolumeGroupSnapshot',
                name: options.group,
                uid: `uid-${options.group}`,
              },
            ],
          }
        : {}),
    },
    spec: {
      source: {
        ...(options.pvc !== undefined ? { persistentVolumeClaimName: options.pvc } : {}),
        ...(options.content !== undefined ? { volumeSnapshotContentName: options.content } : {}),
      },
      ...(options.className !== undefined ? { volumeSnapshotClassName: options.className } : {}),
    },
    ...(options.status ? { status: options.status } : {}),
  };
}

export function content(
  name: string,
  options: {
    snapshotName?: string;
    snapshotUid?: string;
    volumeHandle?: string;
    snapshotHandle?: string;
    policy?: DeletionPolicy;
    className?: string;
    finalizers?: string[];
    annotations?: Record<string, string>;
    deleting?: boolean;
    status?: VolumeSnapshotContent['status'];
  } = {},
): VolumeSnapshotContent {
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: 'VolumeSnapshotContent',
    metadata: {
      name,
      resourceVersion: '20',
      ...(options.finalizers ? { finalizers: options.finalizers } : {}),
      ...(options.annotations ? { annotations: options.annotations } : {}),
      ...(options.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    spec: {
      volumeSnapshotRef: {
        kind: 'VolumeSnapshot',
        name: options.snapshotName ?? 'snap',
        namespace: NS,
        ...(options.snapshotUid !== undefined ? { uid: options.snapshotUid } : {}),
      },
      deletionPolicy: options.policy ?? 'Delete',
      driver: DRIVER,
      source:
        options.snapshotHandle !== undefined
          ? { snapshotHandle: options.snapshotHandle }
          : { volumeHandle: options.volumeHandle ?? 'vol-1' },
      ...(options.className !== undefined ? { volumeSnapshotClassName: options.className } : {}),
    },
    ...(options.status ? { status: options.status } : {}),
  };
}

export function snapshotClass(
  name: string,
  options: {
    driver?: string;
    isDefault?: boolean;
    policy?: DeletionPolicy;
    parameters?: Record<string, string>;
  } = {},
): VolumeSnapshotClass {
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: 'VolumeSnapshotClass',
    metadata: {
      name,
      ...(options.isDefault ? { annotations: { [ANN_IS_DEFAULT_CLASS]: 'true' } } : {}),
    },
    driver: options.driver ?? DRIVER,
    deletionPolicy: options.policy ?? 'Delete',
    ...(options.parameters ? { parameters: options.parameters } : {}),
  };
}

export function pvc(
  name: string,
  options: {
    phase?: 'Pending' | 'Bound' | 'Lost';
    volumeName?: string;
    finalizers?: string[];
    deleting?: boolean;
    restoreFrom?: string;
  } = {},
): PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name,
      namespace: NS,
      uid: `uid-${name}`,
      resourceVersion: '30',
      ...(options.finalizers ? { finalizers: options.finalizers } : {}),
      ...(options.deleting ? { deletionTimestamp: new Date('2026-01-01T00:00:00Z') } : {}),
    },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: '1Gi' } },
      ...(options.volumeName !== undefined ? { volumeName: options.volumeName } : {}),
      ...(options.restoreFrom !== undefined
        ? {
            dataSource: {
              apiGroup: 'snapshot.storage.k8s.io',
              kind: 'VolumeSnapshot',
              name: options.restoreFrom,
            },
          }
        : {}),
    },
    status: { phase: options.phase ?? 'Bound' },
  };
}

export function pv(
  name: string,
  options: {
    claim?: string;
    claimUid?: string;
    csi?: boolean;
    driver?: string;
    volumeMode?: 'Block' | 'Filesystem';
  } = {},
): PersistentVolume {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name, resourceVersion: '40' },
    spec: {
      capacity: { storage: '1Gi' },
      claimRef: {
        name: options.claim ?? 'data',
        namespace: NS,
        uid: options.claimUid ?? `uid-${options.claim ?? 'data'}`,
      },
      ...(options.csi === false
        ? { hostPath: { path: '/tmp/x' } }
        : { csi: { driver: options.driver ?? DRIVER, volumeHandle: `handle-${name}` } }),
      ...(options.volumeMode ? { volumeMode: options.volumeMode } : {}),
    },
  };
}

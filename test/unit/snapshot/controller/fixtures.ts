/** The snapshot controller suites' presets of the shared builders (test/support/fixtures.ts). */
import type {
  DeletionPolicy,
  VolumeSnapshot,
  VolumeSnapshotClass,
  VolumeSnapshotContent,
} from '../../../../src/api/snapshot.js';
import type {
  PersistentVolume,
  PersistentVolumeClaim,
} from '../../../../src/snapshot/controller/plan.js';
import {
  buildContent,
  buildPv,
  buildPvc,
  buildSnapshot,
  buildSnapshotClass,
} from '../../../support/fixtures.js';

export const NS = 'ns';
export const DRIVER = 'local.snapback.dev';
const DELETED_AT = '2026-01-01T00:00:00Z';

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
  const { group } = options;
  return buildSnapshot({
    name,
    namespace: NS,
    uid: options.uid ?? `uid-${name}`,
    resourceVersion: '10',
    finalizers: options.finalizers,
    deletionTimestamp: options.deleting ? DELETED_AT : undefined,
    ownerReferences:
      group === undefined
        ? undefined
        : [
            {
              apiVersion: 'groupsnapshot.storage.k8s.io/v1',
              kind: 'VolumeGroupSnapshot',
              name: group,
              uid: `uid-${group}`,
            },
          ],
    pvc: options.pvc,
    contentName: options.content,
    className: options.className,
    status: options.status,
  });
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
  return buildContent({
    name,
    resourceVersion: '20',
    finalizers: options.finalizers,
    annotations: options.annotations,
    deletionTimestamp: options.deleting ? DELETED_AT : undefined,
    driver: DRIVER,
    snapshotRef: {
      kind: 'VolumeSnapshot',
      name: options.snapshotName ?? 'snap',
      namespace: NS,
      uid: options.snapshotUid,
    },
    deletionPolicy: options.policy ?? 'Delete',
    snapshotHandle: options.snapshotHandle,
    volumeHandle: options.volumeHandle ?? 'vol-1',
    className: options.className,
    status: options.status,
  });
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
  return buildSnapshotClass({
    name,
    driver: options.driver ?? DRIVER,
    isDefault: options.isDefault,
    deletionPolicy: options.policy,
    parameters: options.parameters,
  });
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
  return buildPvc({
    name,
    namespace: NS,
    uid: `uid-${name}`,
    resourceVersion: '30',
    finalizers: options.finalizers,
    deletionTimestamp: options.deleting ? new Date(DELETED_AT) : undefined,
    volumeName: options.volumeName,
    restoreFrom: options.restoreFrom,
    phase: options.phase ?? 'Bound',
  });
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
  const claim = options.claim ?? 'data';
  return buildPv({
    name,
    resourceVersion: '40',
    capacity: '1Gi',
    claimRef: { name: claim, namespace: NS, uid: options.claimUid ?? `uid-${claim}` },
    driver: options.csi === false ? null : (options.driver ?? DRIVER),
    volumeMode: options.volumeMode,
  });
}

/**
 * The shapes of the objects the policy layer reads, as they arrive from the API server (times
 * are strings there), and facts derived from them that both reconcilers share.
 */
import type {
  V1PersistentVolume,
  V1PersistentVolumeClaim,
  V1StorageClass,
} from '@kubernetes/client-node';
import type { ApiObjectMeta, RestoreJob, SnapshotError, VolumeSnapshot } from '../api/index.js';
import {
  ANNOTATION_RUN_TIME,
  API_VERSION,
  BACKUP_POLICY_KIND,
  BACKUP_POLICY_PLURAL,
  FINALIZER_RESTORE_SOURCE_PREFIX,
  GROUP as API_GROUP,
  RESTORE_JOB_KIND,
  RESTORE_JOB_PLURAL,
  SNAPSHOT_GROUP,
  VERSION,
} from '../api/index.js';
import type { ResourceType } from '../kube/index.js';

export type Pvc = Omit<V1PersistentVolumeClaim, 'metadata'> & { metadata: ApiObjectMeta };
export type Pv = Omit<V1PersistentVolume, 'metadata'> & { metadata: ApiObjectMeta };
export type StorageClass = Omit<V1StorageClass, 'metadata'> & { metadata: ApiObjectMeta };

export const BackupPolicies: ResourceType = {
  group: API_GROUP,
  version: VERSION,
  plural: BACKUP_POLICY_PLURAL,
  kind: BACKUP_POLICY_KIND,
  namespaced: true,
};

export const RestoreJobs: ResourceType = {
  group: API_GROUP,
  version: VERSION,
  plural: RESTORE_JOB_PLURAL,
  kind: RESTORE_JOB_KIND,
  namespaced: true,
};

export { API_VERSION };

/** The annotation marking a StorageClass as the cluster default. */
export const ANN_DEFAULT_STORAGE_CLASS = 'storageclass.kubernetes.io/is-default-class';

export function time(value: Date | string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/**
 * What a VolumeSnapshot and a VolumeGroupSnapshot share that the policy reads: run time,
 * readiness and error.
 */
export interface SnapshotLike {
  metadata: ApiObjectMeta;
  status?: { creationTime?: string; readyToUse?: boolean; error?: SnapshotError };
}

/** The run time a snapshot stands for: its run annotation, else when it was taken or created. */
export function snapshotTime(snapshot: SnapshotLike): Date {
  return (
    time(snapshot.metadata.annotations?.[ANNOTATION_RUN_TIME]) ??
    time(snapshot.status?.creationTime) ??
    time(snapshot.metadata.creationTimestamp) ??
    new Date(0)
  );
}

export function isReady(snapshot: SnapshotLike): boolean {
  return snapshot.status?.readyToUse === true;
}

export function hasFailed(snapshot: SnapshotLike): boolean {
  return !isReady(snapshot) && snapshot.status?.error !== undefined;
}

export function isDeleting(obj: { metadata: ApiObjectMeta }): boolean {
  return obj.metadata.deletionTimestamp !== undefined && obj.metadata.deletionTimestamp !== null;
}

export function isTerminal(job: RestoreJob): boolean {
  return job.status?.phase === 'Succeeded' || job.status?.phase === 'Failed';
}

/** The finalizer with which a RestoreJob holds the snapshot it has chosen. */
export function restoreSourceFinalizer(jobUid: string): string {
  return `${FINALIZER_RESTORE_SOURCE_PREFIX}${jobUid}`;
}

/** The uids of the RestoreJobs holding a snapshot as their source. */
export function restoreHolders(snapshot: { metadata: ApiObjectMeta }): string[] {
  return (snapshot.metadata.finalizers ?? [])
    .filter((f) => f.startsWith(FINALIZER_RESTORE_SOURCE_PREFIX))
    .map((f) => f.slice(FINALIZER_RESTORE_SOURCE_PREFIX.length));
}

/** A RestoreJob has chosen this snapshot and not finished: it must not be pruned. */
export function isHeldForRestore(snapshot: VolumeSnapshot): boolean {
  return restoreHolders(snapshot).length > 0;
}

/** The VolumeSnapshot a PVC is being created from, if any. */
export function pvcSnapshotSource(pvc: Pvc): string | undefined {
  for (const source of [pvc.spec?.dataSourceRef, pvc.spec?.dataSource]) {
    if (source?.kind === 'VolumeSnapshot' && source.apiGroup === SNAPSHOT_GROUP) {
      return source.name;
    }
  }
  return undefined;
}

/**
 * Snapshots of a namespace that must not be deleted because a restore depends on them: the
 * source of a RestoreJob that has not finished, or the dataSource of a PVC still Pending.
 */
export function snapshotsInUse(
  restoreJobs: readonly RestoreJob[],
  pvcs: readonly Pvc[],
): Set<string> {
  const inUse = new Set<string>();
  for (const job of restoreJobs) {
    if (isTerminal(job)) continue;
    if (job.spec?.source?.volumeSnapshotName) inUse.add(job.spec.source.volumeSnapshotName);
    if (job.status?.snapshotName) inUse.add(job.status.snapshotName);
  }
  for (const pvc of pvcs) {
    const phase = pvc.status?.phase;
    if (phase !== undefined && phase !== 'Pending') continue;
    const source = pvcSnapshotSource(pvc);
    if (source) inUse.add(source);
  }
  return inUse;
}

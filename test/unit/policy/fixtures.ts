/** The policy suites' presets of the shared builders (test/support/fixtures.ts). */
import {
  ANNOTATION_PVC_NAME,
  ANNOTATION_RUN_TIME,
  LABEL_POLICY,
  LABEL_PVC,
} from '../../../src/api/v1alpha1.js';
import { ANN_IS_DEFAULT_GROUP_CLASS } from '../../../src/api/group-snapshot.js';
import type {
  BackupPolicy,
  BackupPolicySpecInput,
  RestoreJob,
  RestoreJobSpecInput,
  VolumeGroupSnapshot,
  VolumeGroupSnapshotClass,
  VolumeGroupSnapshotContent,
  VolumeSnapshot,
  VolumeSnapshotClass,
  VolumeSnapshotContent,
} from '../../../src/api/index.js';
import type { BackupPolicyObservation } from '../../../src/policy/backup-policy.js';
import type { GroupObservation } from '../../../src/policy/plan-groups.js';
import type { Pv, Pvc, StorageClass } from '../../../src/policy/objects.js';
import type { RestoreJobObservation } from '../../../src/policy/restore-job.js';
import {
  buildContent,
  buildPv,
  buildPvc,
  buildSnapshot,
  buildSnapshotClass,
  buildStorageClass,
} from '../../support/fixtures.js';

export const NS = 'team-a';
export const DRIVER = 'local.snapback.dev';

export function policy(
  spec: Partial<BackupPolicySpecInput>,
  extra: { annotations?: Record<string, string>; status?: BackupPolicy['status'] } = {},
): BackupPolicy {
  return {
    apiVersion: 'snapback.dev/v1alpha1',
    kind: 'BackupPolicy',
    metadata: {
      name: 'nightly',
      namespace: NS,
      uid: 'policy-uid',
      generation: 1,
      creationTimestamp: '2026-01-01T00:00:00Z',
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
    },
    spec: { schedule: '@hourly', pvcNames: ['data'], ...spec } as BackupPolicy['spec'],
    ...(extra.status ? { status: extra.status } : {}),
  };
}

export function pvc(
  name: string,
  opts: {
    phase?: string;
    labels?: Record<string, string>;
    namespace?: string;
    volumeName?: string;
    storageClassName?: string;
    size?: string;
    dataSource?: string;
  } = {},
): Pvc {
  const phase = opts.phase ?? 'Bound';
  return buildPvc<Pvc>({
    name,
    namespace: opts.namespace ?? NS,
    labels: opts.labels ?? {},
    uid: `uid-${name}`,
    size: opts.size,
    storageClassName: opts.storageClassName ?? 'local',
    volumeName: phase === 'Bound' ? (opts.volumeName ?? `pv-${name}`) : undefined,
    restoreFrom: opts.dataSource,
    phase,
  });
}

export function pv(name: string, driver: string | null = DRIVER): Pv {
  return buildPv<Pv>({ name, driver, volumeHandle: `vol-${name}` });
}

export function snapshotClass(
  name: string,
  opts: { driver?: string; isDefault?: boolean; labels?: Record<string, string> } = {},
): VolumeSnapshotClass {
  return buildSnapshotClass({
    name,
    labels: opts.labels,
    isDefault: opts.isDefault,
    driver: opts.driver ?? DRIVER,
  });
}

export function storageClass(
  name: string,
  opts: { provisioner?: string; isDefault?: boolean } = {},
): StorageClass {
  return buildStorageClass<StorageClass>({
    name,
    isDefault: opts.isDefault,
    provisioner: opts.provisioner ?? DRIVER,
  });
}

export function volumeSnapshot(
  name: string,
  opts: {
    pvc?: string;
    policy?: string;
    runTime?: string;
    ready?: boolean;
    error?: string;
    restoreSize?: string;
    deleting?: boolean;
    className?: string;
    content?: string;
  } = {},
): VolumeSnapshot {
  const pvcName = opts.pvc ?? 'data';
  return buildSnapshot({
    name,
    namespace: NS,
    labels: { [LABEL_POLICY]: opts.policy ?? 'nightly', [LABEL_PVC]: pvcName },
    annotations: {
      [ANNOTATION_RUN_TIME]: opts.runTime ?? '2026-01-01T10:00:00Z',
      [ANNOTATION_PVC_NAME]: pvcName,
    },
    deletionTimestamp: opts.deleting ? '2026-01-01T00:00:00Z' : undefined,
    pvc: pvcName,
    className: opts.className,
    status: {
      readyToUse: opts.ready ?? true,
      restoreSize: opts.restoreSize ?? '1Gi',
      ...(opts.content ? { boundVolumeSnapshotContentName: opts.content } : {}),
      ...(opts.error ? { error: { message: opts.error } } : {}),
    },
  });
}

export function content(name: string, driver = DRIVER): VolumeSnapshotContent {
  return buildContent({ name, driver, snapshotRef: { name: 'x', namespace: NS } });
}

export function restoreJob(
  spec: RestoreJobSpecInput,
  extra: { status?: RestoreJob['status']; created?: string } = {},
): RestoreJob {
  return {
    apiVersion: 'snapback.dev/v1alpha1',
    kind: 'RestoreJob',
    metadata: {
      name: 'restore-1',
      namespace: NS,
      uid: 'job-uid',
      generation: 1,
      creationTimestamp: extra.created ?? '2026-01-01T12:00:00Z',
    },
    spec: spec as RestoreJob['spec'],
    ...(extra.status ? { status: extra.status } : {}),
  };
}

export function policyObservation(
  p: BackupPolicy,
  parts: Partial<Omit<BackupPolicyObservation, 'policy' | 'volume'>> & { pvs?: Pv[] } = {},
): BackupPolicyObservation {
  const pvcs = parts.pvcs ?? [pvc('data')];
  const pvs = parts.pvs ?? pvcs.map((c) => pv(c.spec?.volumeName ?? `pv-${c.metadata.name}`));
  return {
    policy: p,
    pvcs,
    volume: (name) => pvs.find((v) => v.metadata.name === name),
    snapshotClasses: parts.snapshotClasses ?? [snapshotClass('default', { isDefault: true })],
    snapshots: parts.snapshots ?? [],
    restoreJobs: parts.restoreJobs ?? [],
    namespacesWithPvc: parts.namespacesWithPvc ?? (() => []),
    now: parts.now ?? new Date('2026-01-01T00:30:00Z'),
    ...(parts.groupSnapshots ? { groupSnapshots: parts.groupSnapshots } : {}),
  };
}

/** A VolumeGroupSnapshot of a Group policy, labelled and annotated as the policy makes them. */
export function volumeGroupSnapshot(
  name: string,
  opts: {
    policy?: string;
    runTime?: string;
    ready?: boolean;
    error?: string;
    deleting?: boolean;
    className?: string;
    created?: string;
  } = {},
): VolumeGroupSnapshot {
  return {
    apiVersion: 'groupsnapshot.storage.k8s.io/v1',
    kind: 'VolumeGroupSnapshot',
    metadata: {
      name,
      namespace: NS,
      uid: `uid-${name}`,
      labels: { [LABEL_POLICY]: opts.policy ?? 'nightly' },
      annotations: {
        [ANNOTATION_RUN_TIME]: opts.runTime ?? '2026-01-01T10:00:00Z',
        'snapback.dev/policy-name': opts.policy ?? 'nightly',
      },
      creationTimestamp: opts.created ?? opts.runTime ?? '2026-01-01T10:00:00Z',
      ...(opts.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    spec: {
      source: { selector: { matchLabels: { app: 'db' } } },
      ...(opts.className ? { volumeGroupSnapshotClassName: opts.className } : {}),
    },
    status: {
      readyToUse: opts.ready ?? true,
      ...(opts.error ? { error: { message: opts.error } } : {}),
    },
  };
}

/** A member VolumeSnapshot the snapshot controller made for `group` (no policy labels). */
export function groupMember(
  group: string,
  pvcName: string,
  opts: { ready?: boolean; finalizers?: string[] } = {},
): VolumeSnapshot {
  const s = buildSnapshot({
    name: `snapshot-${group}-${pvcName}`,
    namespace: NS,
    pvc: pvcName,
    status: { readyToUse: opts.ready ?? true, volumeGroupSnapshotName: group },
  });
  s.metadata.ownerReferences = [
    {
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshot',
      name: group,
      uid: `uid-${group}`,
    },
  ];
  if (opts.finalizers) s.metadata.finalizers = opts.finalizers;
  return s;
}

export function groupSnapshotClass(
  name: string,
  opts: { driver?: string; isDefault?: boolean; labels?: Record<string, string> } = {},
): VolumeGroupSnapshotClass {
  return {
    apiVersion: 'groupsnapshot.storage.k8s.io/v1',
    kind: 'VolumeGroupSnapshotClass',
    metadata: {
      name,
      ...(opts.labels ? { labels: opts.labels } : {}),
      ...(opts.isDefault ? { annotations: { [ANN_IS_DEFAULT_GROUP_CLASS]: 'true' } } : {}),
    },
    driver: opts.driver ?? DRIVER,
    deletionPolicy: 'Delete',
  };
}

/** What the controller observes of the group snapshot API: groups, classes, members by group. */
export function groupObservation(
  parts: {
    groups?: VolumeGroupSnapshot[];
    classes?: VolumeGroupSnapshotClass[];
    members?: VolumeSnapshot[];
  } = {},
): GroupObservation {
  const members = parts.members ?? [];
  return {
    groups: parts.groups ?? [],
    classes: parts.classes ?? [groupSnapshotClass('group-default', { isDefault: true })],
    members: (group) =>
      members.filter((m) => m.metadata.ownerReferences?.some((o) => o.name === group)),
  };
}

export function restoreObservation(
  job: RestoreJob,
  parts: Partial<Omit<RestoreJobObservation, 'job' | 'content'>> & {
    contents?: VolumeSnapshotContent[];
  } = {},
): RestoreJobObservation {
  const contents = parts.contents ?? [];
  return {
    job,
    snapshots: parts.snapshots ?? [],
    pvcs: parts.pvcs ?? [],
    storageClasses: parts.storageClasses ?? [storageClass('local', { isDefault: true })],
    snapshotClasses: parts.snapshotClasses ?? [snapshotClass('default', { isDefault: true })],
    content: (name) => contents.find((c) => c.metadata.name === name),
    namespacesWithSnapshot: parts.namespacesWithSnapshot ?? (() => []),
    policies: parts.policies ?? [],
    ...(parts.groups ? { groups: parts.groups } : {}),
    now: parts.now ?? new Date('2026-01-01T12:00:10Z'),
    ...(parts.sourceWaitMs !== undefined ? { sourceWaitMs: parts.sourceWaitMs } : {}),
    ...(parts.swap ? { swap: parts.swap } : {}),
  };
}

/** A policy with consistency Group over the PVCs labelled app=db. */
export function groupPolicy(name = 'nightly'): BackupPolicy {
  const p = policy({ consistency: 'Group', selector: { matchLabels: { app: 'db' } } });
  delete (p.spec as { pvcNames?: string[] }).pvcNames;
  p.metadata.name = name;
  return p;
}

/** A VolumeGroupSnapshot a Group policy took at `time`, bound to content `content-<name>`. */
export function restorableGroup(
  name: string,
  opts: {
    policy?: string;
    time?: string;
    ready?: boolean;
    error?: string;
    deleting?: boolean;
  } = {},
): VolumeGroupSnapshot {
  const { time, ...rest } = opts;
  const taken = time ?? '2026-01-01T10:00:00Z';
  const group = volumeGroupSnapshot(name, { ...rest, runTime: taken });
  group.status = {
    ...group.status,
    creationTime: taken,
    boundVolumeGroupSnapshotContentName: `content-${name}`,
  };
  return group;
}

/** The content of a group, reporting `members` member snapshots. */
export function restorableGroupContent(
  group: VolumeGroupSnapshot,
  members: number,
): VolumeGroupSnapshotContent {
  return {
    apiVersion: 'groupsnapshot.storage.k8s.io/v1',
    kind: 'VolumeGroupSnapshotContent',
    metadata: { name: group.status!.boundVolumeGroupSnapshotContentName! },
    spec: {
      volumeGroupSnapshotRef: {
        name: group.metadata.name!,
        namespace: NS,
        uid: group.metadata.uid!,
      },
      deletionPolicy: 'Delete',
      driver: DRIVER,
      source: { volumeHandles: Array.from({ length: members }, (_, i) => `vol-${i}`) },
    },
    status: {
      readyToUse: true,
      volumeSnapshotInfoList: Array.from({ length: members }, (_, i) => ({
        volumeHandle: `vol-${i}`,
        snapshotHandle: `snap-${i}`,
        readyToUse: true,
      })),
    },
  };
}

/**
 * A member VolumeSnapshot as the snapshot controller makes it: named after the group, owned by
 * it, its source PVC in spec, the group in status, and no policy label.
 */
export function restorableMember(
  group: VolumeGroupSnapshot,
  pvcName: string,
  opts: { ready?: boolean; restoreSize?: string; error?: string } = {},
): VolumeSnapshot {
  const member = buildSnapshot({
    name: `${group.metadata.name}-${pvcName}`,
    namespace: NS,
    pvc: pvcName,
    status: {
      readyToUse: opts.ready ?? true,
      restoreSize: opts.restoreSize ?? '1Gi',
      volumeGroupSnapshotName: group.metadata.name!,
      ...(opts.error ? { error: { message: opts.error } } : {}),
    },
  });
  member.metadata.ownerReferences = [
    {
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshot',
      name: group.metadata.name!,
      uid: group.metadata.uid!,
    },
  ];
  return member;
}

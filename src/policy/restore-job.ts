/**
 * What a RestoreJob wants done, from what is observed: a pure function the reconciler wraps.
 *
 * Phases: Pending (resolving and waiting for a ready snapshot) -> Restoring (the target PVC
 * exists with the snapshot as dataSource) -> Succeeded (the PVC is Bound) | Failed (with a
 * reason). The target PVC carries labels and annotations linking it to the job but no
 * ownerReference, so deleting the job never deletes the restored data; a PVC that exists and
 * was not created for this job is never touched.
 *
 * From a BackupPolicy with consistency Group the source is one VolumeGroupSnapshot of the
 * policy: every member (or the one of source.backupPolicy.pvcName) is restored into its own
 * PVC, all created together once every target name is free, and the job succeeds when all
 * are Bound.
 */
import { z } from 'zod';
import type {
  BackupPolicy,
  RestoredPvc,
  RestoredPvcPhase,
  RestoreJob,
  RestoreJobSpec,
  RestoreJobStatus,
} from '../api/index.js';
import type { VolumeGroupSnapshot, VolumeGroupSnapshotContent } from '../api/group-snapshot.js';
import type {
  VolumeSnapshot,
  VolumeSnapshotClass,
  VolumeSnapshotContent,
} from '../api/snapshot.js';
import {
  ANNOTATION_POLICY_NAME,
  ANNOTATION_PVC_NAME,
  ANNOTATION_RESTORE_JOB_UID,
  ANNOTATION_RESTORED_FROM,
  ANNOTATION_RUN_TIME,
  AT_LATEST,
  CONDITION_READY,
  FINALIZER_SWAP,
  LABEL_POLICY,
  MAX_STATUS_PVCS,
  LABEL_PVC,
  LABEL_RESTORE_JOB,
  RestoreJobSpecSchema,
  restoreSourceSummary,
  restoreTargetSummary,
  SNAPSHOT_GROUP,
  VOLUME_GROUP_SNAPSHOT_KIND,
} from '../api/index.js';
import { OBJECT_NAME_MAX_LENGTH } from '../api/formats.js';
import { rfc3339, setCondition } from '../kube/index.js';
import { formatBytes, parseQuantity } from '../api/quantity.js';
import type { PlannedEvent } from './backup-policy.js';
import { labelValue } from './naming.js';
import { capMessage } from './messages.js';
import { RestoreJobReason } from './reasons.js';
import type { Pv, Pvc, StorageClass } from './objects.js';
import type { Pod } from './hooks.js';
import {
  type ClaimRestore,
  type StatefulSet,
  type SwapAction,
  type SwapDecision,
  decideSwap,
} from './restore-swap.js';
import {
  ANN_DEFAULT_STORAGE_CLASS,
  hasFailed,
  isDeleting,
  isReady,
  isTerminal,
  restoreHolders,
  restoreSourceFinalizer,
  snapshotTime,
  time,
} from './objects.js';

/** How long a RestoreJob waits for a named snapshot to appear before failing. */
export const DEFAULT_SOURCE_WAIT_MS = 60_000;
/** While waiting on something no watch reports (the grace period), look again this often. */
const RECHECK_MS = 5_000;

export interface RestoreJobObservation {
  job: RestoreJob;
  /** VolumeSnapshots of the job's namespace. */
  snapshots: readonly VolumeSnapshot[];
  /** PVCs of the job's namespace. */
  pvcs: readonly Pvc[];
  storageClasses: readonly StorageClass[];
  snapshotClasses: readonly VolumeSnapshotClass[];
  content(name: string): VolumeSnapshotContent | undefined;
  /** Other namespaces holding a VolumeSnapshot of this name. */
  namespacesWithSnapshot(name: string): string[];
  /** BackupPolicies of the job's namespace (a policy's consistency says what it took). */
  policies: readonly BackupPolicy[];
  /**
   * VolumeGroupSnapshots of the job's namespace, with the contents they are bound to; absent
   * when the cluster does not serve groupsnapshot.storage.k8s.io/v1.
   */
  groups?: {
    snapshots: readonly VolumeGroupSnapshot[];
    content(name: string): VolumeGroupSnapshotContent | undefined;
  };
  now: Date;
  sourceWaitMs?: number;
  /** What a job with mode Swap looks at; absent when the controller runs without --restore-swap. */
  swap?: SwapView;
}

export interface SwapView {
  /** The job's target.workload, read live. */
  workload: StatefulSet | undefined;
  /** The pods the workload owns. */
  pods: readonly Pod[];
  pv(name: string): Pv | undefined;
}

export interface RestoreJobPlan {
  /**
   * The snapshot chosen, to hold with `holdFinalizer` before anything else is written, so that
   * retention cannot prune it from the moment it is chosen; absent when it holds it already.
   */
  hold?: VolumeSnapshot;
  /**
   * The same for a restore from a group: the members it restores from, each held (retention
   * keeps a group while any member is held, and deletes it whole).
   */
  holdMembers?: VolumeSnapshot[];
  holdFinalizer?: string;
  /** The target PVCs to create, all in this reconcile. */
  createPvcs?: Pvc[];
  /** The status to write, or undefined when nothing changes (a finished job). */
  status?: RestoreJobStatus;
  events: PlannedEvent<RestoreJobReason>[];
  requeueAfterMs?: number;
  /** Mode Swap: what to do to the workload, its PVCs and PVs, in this order. */
  swapActions?: SwapAction[];
  /** Mode Swap: add the swap finalizer before anything else, or remove it after the status. */
  finalizer?: { add: string } | { remove: string };
}

/** What a restore from a group adds to any outcome. */
interface GroupParts {
  /** The VolumeGroupSnapshot chosen. */
  group?: string;
  /** Every target of the group restore, with how far it is. */
  pvcs?: RestoredPvc[];
  /** The one target PVC, when there is one. */
  pvcName?: string;
  /** The member VolumeSnapshots restored from, held while the job runs. */
  members?: string[];
}

type Outcome = GroupParts &
  (
    | {
        phase: 'Pending';
        reason: RestoreJobReason;
        message: string;
        snapshot?: string;
        recheck?: boolean;
        /** Look again then: the pending deadline. */
        wakeAt?: Date;
      }
    | { phase: 'Failed'; reason: RestoreJobReason; message: string; snapshot?: string }
    | {
        phase: 'Restoring';
        reason: RestoreJobReason;
        message: string;
        snapshot?: string;
        create?: Pvc[];
      }
    | { phase: 'Succeeded'; reason: RestoreJobReason; message: string; snapshot?: string }
  );

const sameName = (name: string) => (o: { metadata: { name?: string } }) => o.metadata.name === name;

function resolveByName(observed: RestoreJobObservation, name: string): VolumeSnapshot | Outcome {
  const snapshot = observed.snapshots.find(sameName(name));
  if (snapshot) return snapshot;
  const namespace = observed.job.metadata.namespace!;
  const elsewhere = observed.namespacesWithSnapshot(name).filter((ns) => ns !== namespace);
  if (elsewhere.length > 0) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.SourceInOtherNamespace,
      message: `VolumeSnapshot ${name} is in namespace ${elsewhere.join(', ')}, not ${namespace}; a RestoreJob restores snapshots of its own namespace only (create the RestoreJob there)`,
    };
  }
  const created = time(observed.job.metadata.creationTimestamp) ?? observed.now;
  const waited = observed.now.getTime() - created.getTime();
  if (waited < (observed.sourceWaitMs ?? DEFAULT_SOURCE_WAIT_MS)) {
    return {
      phase: 'Pending',
      reason: RestoreJobReason.SnapshotNotFound,
      message: `waiting for VolumeSnapshot ${name} to exist in namespace ${namespace}`,
      recheck: true,
    };
  }
  return {
    phase: 'Failed',
    reason: RestoreJobReason.SnapshotNotFound,
    message: `VolumeSnapshot ${name} not found in namespace ${namespace}`,
  };
}

/** Waiting on a snapshot ends here: the job's creation plus spec.pendingDeadlineSeconds. */
function pendingDeadline(observed: RestoreJobObservation, spec: RestoreJobSpec): Date {
  const created = time(observed.job.metadata.creationTimestamp) ?? observed.now;
  return new Date(created.getTime() + spec.pendingDeadlineSeconds * 1000);
}

/** Pending until the deadline, then Failed: waiting on a snapshot never lasts for ever. */
function waitOrFail(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  waiting: { reason: RestoreJobReason; message: string; snapshot?: string },
  failed: { reason: RestoreJobReason; message: string },
): Outcome {
  const deadline = pendingDeadline(observed, spec);
  const snapshot = waiting.snapshot !== undefined ? { snapshot: waiting.snapshot } : {};
  if (observed.now.getTime() < deadline.getTime()) {
    return {
      phase: 'Pending',
      reason: waiting.reason,
      message: `${waiting.message}; waiting until ${rfc3339(deadline)} (spec.pendingDeadlineSeconds)`,
      wakeAt: deadline,
      ...snapshot,
    };
  }
  return {
    phase: 'Failed',
    reason: failed.reason,
    message: `${failed.message}, ${spec.pendingDeadlineSeconds}s after the RestoreJob was created (spec.pendingDeadlineSeconds)`,
    ...snapshot,
  };
}

/** What a wait says while it lasts, and once it fails at the deadline. */
interface WaitMessages {
  waiting: string;
  failed: string;
  /** The snapshot waited on, when there is one. */
  snapshot?: string;
}

/** Waiting for a snapshot to become ready: SnapshotNotReady, Pending then Failed. */
function waitForReady(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  { waiting, failed, snapshot }: WaitMessages,
): Outcome {
  const reason = RestoreJobReason.SnapshotNotReady;
  return waitOrFail(
    observed,
    spec,
    { reason, message: waiting, ...(snapshot !== undefined ? { snapshot } : {}) },
    { reason, message: failed },
  );
}

/**
 * Waiting out a snapshot error: errors are often transient (the snapshot controller retries),
 * so SnapshotError while the job may wait, then SnapshotFailed.
 */
function waitOutError(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  { waiting, failed, snapshot }: WaitMessages,
): Outcome {
  return waitOrFail(
    observed,
    spec,
    {
      reason: RestoreJobReason.SnapshotError,
      message: waiting,
      ...(snapshot !== undefined ? { snapshot } : {}),
    },
    { reason: RestoreJobReason.SnapshotFailed, message: failed },
  );
}

type PolicySource = NonNullable<RestoreJobSpec['source']['backupPolicy']>;
/** A policy source naming its PVC, as the Volume path needs. */
type PvcPolicySource = PolicySource & { pvcName: string };

/**
 * The newest ready snapshot of the policy's PVC taken at or before source.at; else wait for
 * one that may still become ready, or fail when there is none.
 */
function resolveByPolicy(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  source: PvcPolicySource,
): VolumeSnapshot | Outcome {
  const candidates = policySnapshots(observed.snapshots, source);
  const what = `BackupPolicy ${source.name} has no snapshot of PVC ${source.pvcName}`;
  if (candidates.length === 0) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.NoSnapshots,
      message: `${what} in namespace ${observed.job.metadata.namespace}`,
    };
  }
  const at = source.at === AT_LATEST ? undefined : new Date(source.at);
  const eligible = at
    ? candidates.filter((s) => snapshotTime(s).getTime() <= at.getTime())
    : candidates;
  const readyOne = eligible.find(isReady);
  if (readyOne) return readyOne;
  if (eligible.length > 0) return waitForEligible(observed, spec, source, eligible);
  const oldestReady = [...candidates].reverse().find(isReady);
  return {
    phase: 'Failed',
    reason: RestoreJobReason.NoSnapshotBefore,
    message: `${what} taken at or before ${source.at}${oldestReady ? `; the oldest ready one is from ${rfc3339(snapshotTime(oldestReady))}` : ''}`,
  };
}

/** The policy's snapshots of the PVC, not being deleted, the newest first. */
function policySnapshots(
  snapshots: readonly VolumeSnapshot[],
  source: PvcPolicySource,
): VolumeSnapshot[] {
  return snapshots
    .filter(
      (s) =>
        s.metadata.labels?.[LABEL_POLICY] === labelValue(source.name) &&
        s.metadata.labels?.[LABEL_PVC] === labelValue(source.pvcName) &&
        (s.metadata.annotations?.[ANNOTATION_PVC_NAME] ?? source.pvcName) === source.pvcName &&
        !isDeleting(s),
    )
    .sort((a, b) => snapshotTime(b).getTime() - snapshotTime(a).getTime());
}

/** None of the eligible snapshots (newest first) is ready: wait for one, or fail at the deadline. */
function waitForEligible(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  source: PvcPolicySource,
  eligible: readonly VolumeSnapshot[],
): Outcome {
  const when = source.at === AT_LATEST ? '' : ` taken at or before ${source.at}`;
  if (eligible.some((s) => !hasFailed(s))) {
    return waitForReady(observed, spec, {
      waiting: `waiting for a snapshot of PVC ${source.pvcName}${when} to become ready`,
      failed: `no snapshot of PVC ${source.pvcName}${when} became ready`,
    });
  }
  const newest = eligible[0]!;
  const error = `(the newest, ${newest.metadata.name}: ${newest.status?.error?.message ?? 'no message'})`;
  return waitOutError(observed, spec, {
    waiting: `every snapshot of PVC ${source.pvcName}${when} reports an error ${error}`,
    failed: `every snapshot of PVC ${source.pvcName}${when} still reports an error ${error}`,
  });
}

function snapshotDriver(
  observed: RestoreJobObservation,
  snapshot: VolumeSnapshot,
): string | undefined {
  const contentName = snapshot.status?.boundVolumeSnapshotContentName;
  const fromContent = contentName ? observed.content(contentName)?.spec.driver : undefined;
  if (fromContent) return fromContent;
  const className = snapshot.spec.volumeSnapshotClassName;
  return className ? observed.snapshotClasses.find(sameName(className))?.driver : undefined;
}

/** The PVC to create from the snapshot, or why it cannot be made. */
function buildTarget(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  snapshot: VolumeSnapshot,
  targetName: string,
): Pvc | Outcome {
  const sourcePvcName =
    spec.source.backupPolicy?.pvcName ?? snapshot.spec.source.persistentVolumeClaimName;
  const sourcePvc = sourcePvcName ? observed.pvcs.find(sameName(sourcePvcName)) : undefined;
  const bytes = targetBytes(spec.target, snapshot, sourcePvc);
  if (isOutcome(bytes)) return bytes;
  const storage = targetStorageClass(observed, spec.target, sourcePvc);
  if (isOutcome(storage)) return storage;
  const driver = snapshotDriver(observed, snapshot);
  const { storageClass } = storage;
  if (driver && storageClass && storageClass.provisioner !== driver) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.DriverMismatch,
      message: `StorageClass ${storageClass.metadata.name} provisions with ${storageClass.provisioner}, but VolumeSnapshot ${snapshot.metadata.name} was taken by ${driver}; choose a StorageClass of ${driver}`,
    };
  }
  return targetPvc(observed.job, spec.target, {
    name: targetName,
    snapshot,
    sourcePvc,
    bytes,
    className: storage.className,
  });
}

type Target = RestoreJobSpec['target'];

/**
 * The size to request: target.size (at least the restore size), else the larger of the
 * restore size and the source PVC's request.
 */
function targetBytes(
  target: Target,
  snapshot: VolumeSnapshot,
  sourcePvc: Pvc | undefined,
): number | Outcome {
  const snapshotLabel = `VolumeSnapshot ${snapshot.metadata.name}`;
  const restoreSize = snapshot.status?.restoreSize;
  const sourceSize = sourcePvc?.spec?.resources?.requests?.storage;
  try {
    const restoreBytes = restoreSize !== undefined ? parseQuantity(restoreSize) : undefined;
    if (target.size !== undefined) {
      const bytes = parseQuantity(target.size);
      if (restoreBytes === undefined || bytes >= restoreBytes) return bytes;
      return {
        phase: 'Failed',
        reason: RestoreJobReason.SizeTooSmall,
        message: `target.size ${target.size} is smaller than the restore size ${restoreSize} of ${snapshotLabel}; use at least ${restoreSize}`,
      };
    }
    const candidates = [
      restoreBytes,
      sourceSize !== undefined ? parseQuantity(sourceSize) : undefined,
    ].filter((n): n is number => n !== undefined);
    if (candidates.length > 0) return Math.max(...candidates);
    return {
      phase: 'Failed',
      reason: RestoreJobReason.SizeUnknown,
      message: `${snapshotLabel} reports no restore size and the source PVC is gone; set target.size`,
    };
  } catch (error) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.InvalidSize,
      message: (error as Error).message,
    };
  }
}

/**
 * The StorageClass: target.storageClassName, else the source PVC's, else the cluster default
 * (then `className` is unset and the PVC names none).
 */
function targetStorageClass(
  observed: RestoreJobObservation,
  target: Target,
  sourcePvc: Pvc | undefined,
): { className?: string; storageClass?: StorageClass } | Outcome {
  const className = target.storageClassName ?? sourcePvc?.spec?.storageClassName ?? undefined;
  if (className !== undefined && className !== '') {
    const storageClass = observed.storageClasses.find(sameName(className));
    if (storageClass) return { className, storageClass };
    return {
      phase: 'Failed',
      reason: RestoreJobReason.StorageClassNotFound,
      message: `StorageClass ${className} not found${target.storageClassName ? '' : ' (taken from the source PVC)'}; set target.storageClassName`,
    };
  }
  const defaults = observed.storageClasses.filter(
    (c) => c.metadata.annotations?.[ANN_DEFAULT_STORAGE_CLASS] === 'true',
  );
  if (defaults.length === 0) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.NoStorageClass,
      message:
        'target.storageClassName is not set, the source PVC is gone and the cluster has no default StorageClass; set target.storageClassName',
    };
  }
  return { ...(className !== undefined ? { className } : {}), storageClass: defaults[0]! };
}

function targetPvc(
  job: RestoreJob,
  target: Target,
  {
    name,
    snapshot,
    sourcePvc,
    bytes,
    className,
  }: {
    name: string;
    snapshot: VolumeSnapshot;
    sourcePvc: Pvc | undefined;
    bytes: number;
    className: string | undefined;
  },
): Pvc {
  const accessModes = target.accessModes ?? sourcePvc?.spec?.accessModes ?? ['ReadWriteOnce'];
  const volumeMode = sourcePvc?.spec?.volumeMode;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name,
      namespace: job.metadata.namespace!,
      labels: { ...target.labels, [LABEL_RESTORE_JOB]: labelValue(job.metadata.name!) },
      annotations: {
        ...target.annotations,
        [ANNOTATION_RESTORE_JOB_UID]: job.metadata.uid ?? '',
        [ANNOTATION_RESTORED_FROM]: snapshot.metadata.name!,
      },
    },
    spec: {
      accessModes: [...accessModes],
      resources: { requests: { storage: formatBytes(bytes) } },
      ...(className ? { storageClassName: className } : {}),
      ...(volumeMode ? { volumeMode } : {}),
      dataSource: {
        apiGroup: SNAPSHOT_GROUP,
        kind: 'VolumeSnapshot',
        name: snapshot.metadata.name!,
      },
    },
  };
}

function isOutcome(value: unknown): value is Outcome {
  return typeof value === 'object' && value !== null && 'phase' in value;
}

/** Whether an existing PVC was created by this job. */
export function createdByJob(pvc: Pvc, job: RestoreJob): boolean {
  return (
    pvc.metadata.labels?.[LABEL_RESTORE_JOB] === labelValue(job.metadata.name!) &&
    pvc.metadata.annotations?.[ANNOTATION_RESTORE_JOB_UID] === job.metadata.uid
  );
}

/**
 * The job's outcome, step by step: a valid spec; then the target PVC if it exists (ours, and
 * how far it is), or was deleted while restoring; else the source snapshot, once ready, and
 * the PVC to create from it.
 */
function decide(observed: RestoreJobObservation): Outcome {
  const { job } = observed;
  const spec = validRestoreSpec(job);
  if (isOutcome(spec)) return spec;
  const source = spec.source.backupPolicy;
  if (source) {
    const mode = policyMode(observed, source);
    if (isOutcome(mode)) return mode;
    if (mode === 'Group') return decideGroup(observed, spec, source);
  }
  const targetName = singleTargetName(spec);
  if (isOutcome(targetName)) return targetName;
  const existing = observed.pvcs.find(sameName(targetName));
  if (existing) return { ...existingTarget(job, existing, targetName), pvcName: targetName };
  if (job.status?.phase === 'Restoring') {
    const resolved = job.status.snapshotName;
    return {
      phase: 'Failed',
      reason: RestoreJobReason.TargetDeleted,
      message: `PVC ${targetName} was deleted before it was Bound`,
      ...(resolved ? { snapshot: resolved } : {}),
    };
  }
  const found = sourceSnapshot(observed, spec);
  if (isOutcome(found)) return found;
  return unusableSnapshot(observed, spec, found) ?? restoreFrom(observed, spec, found, targetName);
}

/**
 * Whether a policy source restores from the policy's VolumeGroupSnapshots: when the policy
 * has consistency Group, when no PVC is named, or (the policy gone) when the PVC has no
 * snapshot of the policy and the policy left groups; a Volume policy without a PVC is an error.
 */
function policyMode(
  observed: RestoreJobObservation,
  source: PolicySource,
): 'Volume' | 'Group' | Outcome {
  if (observed.job.status?.volumeGroupSnapshotName) return 'Group';
  const policy = observed.policies.find(sameName(source.name));
  const pvcName = source.pvcName;
  if (policy) {
    if (policy.spec.consistency === 'Group') return 'Group';
    if (pvcName !== undefined) return 'Volume';
    return {
      phase: 'Failed',
      reason: RestoreJobReason.PvcNameRequired,
      message: `BackupPolicy ${source.name} has consistency Volume: it snapshots each PVC on its own, so a restore from it names the PVC; set source.backupPolicy.pvcName`,
    };
  }
  if (pvcName === undefined) return 'Group';
  const hasVolumeSnapshots = policySnapshots(observed.snapshots, { ...source, pvcName }).length > 0;
  return !hasVolumeSnapshots && policyGroups(observed, source).length > 0 ? 'Group' : 'Volume';
}

/** The one target: target.pvcName, or the source PVC's name with target.pvcNameSuffix. */
function singleTargetName(spec: RestoreJobSpec): string | Outcome {
  if (spec.target.pvcName !== undefined) return spec.target.pvcName;
  // The API admits a suffix only with a policy source, and the Volume path has its pvcName.
  return suffixedName(spec.source.backupPolicy?.pvcName ?? '', spec.target.pvcNameSuffix ?? '');
}

/** `<source pvc><suffix>`, or Failed when that is longer than a PVC name may be. */
function suffixedName(sourcePvc: string, suffix: string): string | Outcome {
  const name = `${sourcePvc}${suffix}`;
  if (name.length <= OBJECT_NAME_MAX_LENGTH) return name;
  return {
    phase: 'Failed',
    reason: RestoreJobReason.TargetNameTooLong,
    message: `PVC ${sourcePvc} with target.pvcNameSuffix ${suffix} makes a name of ${name.length} characters, more than the ${OBJECT_NAME_MAX_LENGTH} a PVC name may have; choose a shorter suffix`,
  };
}

/** The spec with defaults applied, or Failed naming what is wrong. */
function validRestoreSpec(job: RestoreJob): RestoreJobSpec | Outcome {
  const parsed = RestoreJobSpecSchema.safeParse(job.spec);
  if (parsed.success) return parsed.data;
  return {
    phase: 'Failed',
    reason: RestoreJobReason.InvalidSpec,
    message: `spec is invalid: ${z.prettifyError(parsed.error)}`,
  };
}

/** The source snapshot, resolved once: later reconciles keep the snapshot first chosen. */
function sourceSnapshot(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
): VolumeSnapshot | Outcome {
  const resolved = observed.job.status?.snapshotName;
  if (resolved) return resolveByName(observed, resolved);
  if (spec.source.volumeSnapshotName !== undefined) {
    return resolveByName(observed, spec.source.volumeSnapshotName);
  }
  const source = spec.source.backupPolicy!;
  return resolveByPolicy(observed, spec, { ...source, pvcName: source.pvcName ?? '' });
}

/** Restoring: the PVC to create from a ready snapshot, or why it cannot be made. */
function restoreFrom(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  snapshot: VolumeSnapshot,
  targetName: string,
): Outcome {
  const name = snapshot.metadata.name!;
  const pvc = buildTarget(observed, spec, snapshot, targetName);
  if (isOutcome(pvc)) return { ...pvc, snapshot: name } as Outcome;
  return {
    phase: 'Restoring',
    reason: RestoreJobReason.Provisioning,
    message: `creating PVC ${targetName} from VolumeSnapshot ${name}`,
    snapshot: name,
    pvcName: targetName,
    create: [pvc],
  };
}

/** How far a target PVC that exists is: never one this job did not create. */
function existingTarget(job: RestoreJob, existing: Pvc, targetName: string): Outcome {
  if (!createdByJob(existing, job)) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.TargetExists,
      message: `PVC ${targetName} already exists and was not created by this RestoreJob; a restore never overwrites a volume: choose another target.pvcName or target.pvcNameSuffix`,
    };
  }
  const snapshot =
    existing.metadata.annotations?.[ANNOTATION_RESTORED_FROM] ?? job.status?.snapshotName ?? '';
  switch (existing.status?.phase) {
    case 'Bound':
      return {
        phase: 'Succeeded',
        reason: RestoreJobReason.Restored,
        message: `PVC ${targetName} is Bound to ${existing.spec?.volumeName ?? 'its volume'}, restored from VolumeSnapshot ${snapshot}`,
        snapshot,
      };
    case 'Lost':
      return {
        phase: 'Failed',
        reason: RestoreJobReason.VolumeLost,
        message: `PVC ${targetName} lost its volume`,
        snapshot,
      };
    default:
      return {
        phase: 'Restoring',
        reason: RestoreJobReason.Provisioning,
        message: `waiting for PVC ${targetName} to be provisioned from VolumeSnapshot ${snapshot} and Bound`,
        snapshot,
      };
  }
}

// ---------------------------------------------------------------------------------------------
// Restoring from a VolumeGroupSnapshot

/**
 * When a group was taken: as for a policy's snapshots, its run's time, else status.creationTime,
 * else when the object was made.
 */
function groupTime(group: VolumeGroupSnapshot): Date {
  return (
    time(group.metadata.annotations?.[ANNOTATION_RUN_TIME]) ??
    time(group.status?.creationTime) ??
    time(group.metadata.creationTimestamp) ??
    new Date(0)
  );
}

const groupReady = (group: VolumeGroupSnapshot) => group.status?.readyToUse === true;
const groupFailed = (group: VolumeGroupSnapshot) =>
  !groupReady(group) && group.status?.error !== undefined;

/** The policy's groups (by its snapback.dev/policy label), not being deleted, the newest first. */
function policyGroups(
  observed: RestoreJobObservation,
  source: PolicySource,
): VolumeGroupSnapshot[] {
  return (observed.groups?.snapshots ?? [])
    .filter(
      (g) =>
        g.metadata.labels?.[LABEL_POLICY] === labelValue(source.name) &&
        (g.metadata.annotations?.[ANNOTATION_POLICY_NAME] ?? source.name) === source.name &&
        !isDeleting(g),
    )
    .sort((a, b) => groupTime(b).getTime() - groupTime(a).getTime());
}

/**
 * The group to restore: the one chosen before, else the newest ready group of the policy
 * taken at or before source.at; else wait for one that may still become ready, or fail.
 */
function chosenGroup(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  source: PolicySource,
): VolumeGroupSnapshot | Outcome {
  const namespace = observed.job.metadata.namespace!;
  if (!observed.groups) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.GroupSnapshotsUnavailable,
      message: `restoring from BackupPolicy ${source.name} needs its VolumeGroupSnapshots, but the cluster does not serve groupsnapshot.storage.k8s.io/v1; install the group snapshot CRDs (crds/) and restart snapback`,
    };
  }
  const resolved = observed.job.status?.volumeGroupSnapshotName;
  if (resolved) {
    const group = observed.groups.snapshots.find(sameName(resolved));
    if (group) return group;
    return {
      phase: 'Failed',
      reason: RestoreJobReason.GroupNotFound,
      message: `VolumeGroupSnapshot ${resolved}, chosen for this restore, no longer exists in namespace ${namespace}`,
    };
  }
  const candidates = policyGroups(observed, source);
  const what = `BackupPolicy ${source.name} has no VolumeGroupSnapshot`;
  if (candidates.length === 0) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.NoSnapshots,
      message: `${what} in namespace ${namespace}`,
    };
  }
  const at = source.at === AT_LATEST ? undefined : new Date(source.at);
  const eligible = at
    ? candidates.filter((g) => groupTime(g).getTime() <= at.getTime())
    : candidates;
  const readyOne = eligible.find(groupReady);
  if (readyOne) return readyOne;
  const when = at ? ` taken at or before ${source.at}` : '';
  if (eligible.some((g) => !groupFailed(g))) {
    return waitForReady(observed, spec, {
      waiting: `waiting for a VolumeGroupSnapshot of BackupPolicy ${source.name}${when} to become ready`,
      failed: `no VolumeGroupSnapshot of BackupPolicy ${source.name}${when} became ready`,
    });
  }
  if (eligible.length > 0) {
    const newest = eligible[0]!;
    const error = `(the newest, ${newest.metadata.name}: ${newest.status?.error?.message ?? 'no message'})`;
    return waitOutError(observed, spec, {
      waiting: `every VolumeGroupSnapshot of BackupPolicy ${source.name}${when} reports an error ${error}`,
      failed: `every VolumeGroupSnapshot of BackupPolicy ${source.name}${when} still reports an error ${error}`,
    });
  }
  const oldestReady = [...candidates].reverse().find(groupReady);
  return {
    phase: 'Failed',
    reason: RestoreJobReason.NoSnapshotBefore,
    message: `${what} taken at or before ${source.at}${oldestReady ? `; the oldest ready one is from ${rfc3339(groupTime(oldestReady))}` : ''}`,
  };
}

/** The group's member VolumeSnapshots: those that name it in status or are owned by it. */
function groupMembers(
  observed: RestoreJobObservation,
  group: VolumeGroupSnapshot,
): VolumeSnapshot[] {
  const { name, uid } = group.metadata;
  return observed.snapshots.filter(
    (s) =>
      s.status?.volumeGroupSnapshotName === name ||
      (uid !== undefined &&
        (s.metadata.ownerReferences ?? []).some(
          (ref) => ref.kind === VOLUME_GROUP_SNAPSHOT_KIND && ref.uid === uid,
        )),
  );
}

/** How many members the group has, as its content reports; undefined while not known. */
function expectedMembers(
  observed: RestoreJobObservation,
  group: VolumeGroupSnapshot,
): number | undefined {
  const contentName = group.status?.boundVolumeGroupSnapshotContentName;
  const content = contentName ? observed.groups?.content(contentName) : undefined;
  return content?.status?.volumeSnapshotInfoList?.length;
}

const memberSource = (member: VolumeSnapshot) => member.spec.source.persistentVolumeClaimName;

interface GroupTarget {
  member: VolumeSnapshot;
  sourcePvc: string;
  name: string;
}

const plural = (names: readonly string[], one: string, many: string) =>
  names.length === 1 ? one : many;
const listed = (names: readonly string[]) => names.join(', ');

/** A restore from a group: the group chosen, then every target, created together. */
function decideGroup(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  source: PolicySource,
): Outcome {
  const found = chosenGroup(observed, spec, source);
  if (isOutcome(found)) return found;
  const { snapshot, ...decided } = fromGroup(observed, spec, source, found);
  // status.snapshotName and status.pvcName speak of a restore of one PVC only.
  const single = source.pvcName !== undefined || decided.pvcs?.length === 1;
  return {
    ...decided,
    group: found.metadata.name!,
    ...(single && snapshot ? { snapshot } : {}),
  } as Outcome;
}

function fromGroup(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  source: PolicySource,
  group: VolumeGroupSnapshot,
): Outcome {
  const label = `VolumeGroupSnapshot ${group.metadata.name}`;
  const unusable = unusableGroup(observed, spec, group, label);
  if (unusable) return unusable;
  const targets = groupTargets(observed, spec, source, group, label);
  if (isOutcome(targets)) return targets;
  const members = targets.map((t) => t.member.metadata.name!);
  return { ...restoreTargets(observed, spec, targets, label), members } as Outcome;
}

/** The targets of a group restore: refused, created, waited on, or all Bound. */
function restoreTargets(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  targets: readonly GroupTarget[],
  label: string,
): Outcome {
  const { job } = observed;
  const existing = new Map(targets.map((t) => [t.name, observed.pvcs.find(sameName(t.name))]));
  const foreign = targets
    .filter((t) => {
      const pvc = existing.get(t.name);
      return pvc !== undefined && !createdByJob(pvc, job);
    })
    .map((t) => t.name);
  if (foreign.length > 0) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.TargetExists,
      message: `PVC ${listed(foreign)} already ${plural(foreign, 'exists', 'exist')} and ${plural(foreign, 'was', 'were')} not created by this RestoreJob; a restore never overwrites a volume, so none of the ${targets.length} target PVCs is created: choose another ${spec.target.pvcName !== undefined ? 'target.pvcName' : 'target.pvcNameSuffix'}`,
    };
  }
  const before = new Map((job.status?.pvcs ?? []).map((p) => [p.name, p.phase]));
  const deleted = targets
    .filter((t) => !existing.get(t.name) && (before.get(t.name) ?? 'Pending') !== 'Pending')
    .map((t) => t.name);
  if (deleted.length > 0) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.TargetDeleted,
      message: `PVC ${listed(deleted)} ${plural(deleted, 'was', 'were')} deleted before ${plural(deleted, 'it was', 'they were')} Bound`,
    };
  }
  const creates: Pvc[] = [];
  for (const target of targets.filter((t) => !existing.get(t.name))) {
    const memberName = target.member.metadata.name!;
    const waiting = unusableSnapshot(observed, spec, target.member);
    if (waiting) return waiting;
    const pvc = buildTarget(observed, spec, target.member, target.name);
    if (isOutcome(pvc)) return { ...pvc, snapshot: memberName } as Outcome;
    creates.push(pvc);
  }
  const pvcs: RestoredPvc[] = targets.map((t) => ({
    name: t.name,
    sourcePvc: t.sourcePvc,
    snapshotName: t.member.metadata.name!,
    phase: restoredPhase(existing.get(t.name)),
  }));
  const parts = {
    pvcs,
    ...(targets.length === 1 ? { pvcName: targets[0]!.name } : {}),
    snapshot: targets[0]!.member.metadata.name!,
  };
  return { ...groupProgress(pvcs, creates, label), ...parts } as Outcome;
}

/** Why the chosen group cannot be restored from now (being deleted, failed, not ready). */
function unusableGroup(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  group: VolumeGroupSnapshot,
  label: string,
): Outcome | undefined {
  if (isDeleting(group)) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.SnapshotDeleting,
      message: `${label} is being deleted`,
    };
  }
  if (groupFailed(group)) {
    const error = group.status?.error?.message ?? 'no message';
    return waitOutError(observed, spec, {
      waiting: `${label} reports an error: ${error}`,
      failed: `${label} still reports an error: ${error}`,
    });
  }
  if (!groupReady(group)) {
    return waitForReady(observed, spec, {
      waiting: `waiting for ${label} to be ready`,
      failed: `${label} did not become ready`,
    });
  }
  return undefined;
}

/**
 * The members to restore and the PVC each goes to, once every member is seen: all of them,
 * or the one of source.pvcName; each to target.pvcName or `<source pvc><suffix>`.
 */
function groupTargets(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  source: PolicySource,
  group: VolumeGroupSnapshot,
  label: string,
): GroupTarget[] | Outcome {
  const members = groupMembers(observed, group);
  const expected = expectedMembers(observed, group);
  if (expected === undefined || members.length < expected) {
    const seen = `${members.length} of ${expected ?? 'an unknown number'} seen`;
    const wait = waitOrFail(
      observed,
      spec,
      {
        reason: RestoreJobReason.MembersNotFound,
        message: `waiting for the member VolumeSnapshots of ${label} (${seen})`,
      },
      {
        reason: RestoreJobReason.MembersNotFound,
        message: `the member VolumeSnapshots of ${label} were not all found (${seen})`,
      },
    );
    return wait.phase === 'Pending' ? { ...wait, recheck: true } : wait;
  }
  const selected =
    source.pvcName === undefined
      ? members
      : members.filter((m) => memberSource(m) === source.pvcName);
  if (selected.length === 0) {
    const sources = members.map(memberSource).filter((name): name is string => !!name);
    return {
      phase: 'Failed',
      reason: RestoreJobReason.MemberNotFound,
      message: `${label} has no member of PVC ${source.pvcName}; its members are of ${sources.length > 0 ? `PVC ${listed(sources.sort())}` : 'no named PVC'}`,
    };
  }
  if (selected.length > MAX_STATUS_PVCS) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.TooManyMembers,
      message: `${label} has ${selected.length} members, more than the ${MAX_STATUS_PVCS} one RestoreJob restores; restore them in parts with source.backupPolicy.pvcName`,
    };
  }
  const targets: GroupTarget[] = [];
  for (const member of selected) {
    const sourcePvc = memberSource(member);
    if (!sourcePvc) {
      return {
        phase: 'Failed',
        reason: RestoreJobReason.MemberWithoutSource,
        message: `member VolumeSnapshot ${member.metadata.name} of ${label} records no source PVC, so it has no target name; restore it with source.volumeSnapshotName and target.pvcName`,
      };
    }
    const name = spec.target.pvcName ?? suffixedName(sourcePvc, spec.target.pvcNameSuffix ?? '');
    if (isOutcome(name)) return name;
    const twin = targets.find((t) => t.name === name);
    if (twin) {
      return {
        phase: 'Failed',
        reason: RestoreJobReason.DuplicateTarget,
        message: `members ${twin.member.metadata.name} and ${member.metadata.name} of ${label} would both be restored into PVC ${name}`,
      };
    }
    targets.push({ member, sourcePvc, name });
  }
  return targets.sort((a, b) => a.name.localeCompare(b.name));
}

/** How far a target is: not created yet (Pending), Provisioning, Bound or Lost. */
function restoredPhase(pvc: Pvc | undefined): RestoredPvcPhase {
  if (!pvc) return 'Pending';
  if (pvc.status?.phase === 'Bound') return 'Bound';
  if (pvc.status?.phase === 'Lost') return 'Lost';
  return 'Provisioning';
}

/** The outcome of a group restore from its targets: creating, waiting, Succeeded or Failed. */
function groupProgress(pvcs: RestoredPvc[], creates: Pvc[], label: string): Outcome {
  const named = (phase: RestoredPvcPhase) =>
    pvcs.filter((p) => p.phase === phase).map((p) => p.name);
  const lost = named('Lost');
  if (lost.length > 0) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.VolumeLost,
      message: `PVC ${listed(lost)} lost ${plural(lost, 'its volume', 'their volumes')}`,
    };
  }
  if (creates.length > 0) {
    for (const entry of pvcs) if (entry.phase === 'Pending') entry.phase = 'Provisioning';
    const names = creates.map((c) => c.metadata.name!);
    return {
      phase: 'Restoring',
      reason: RestoreJobReason.Provisioning,
      message: `creating PVC ${listed(names)} from the ${plural(names, 'member', 'members')} of ${label}`,
      create: creates,
    };
  }
  const bound = named('Bound');
  if (bound.length === pvcs.length) {
    return {
      phase: 'Succeeded',
      reason: RestoreJobReason.Restored,
      message: `PVC ${listed(bound)} ${plural(bound, 'is', 'are')} Bound, restored from ${label}`,
    };
  }
  const waiting = pvcs.filter((p) => p.phase !== 'Bound').map((p) => p.name);
  return {
    phase: 'Restoring',
    reason: RestoreJobReason.Provisioning,
    message: `waiting for PVC ${listed(waiting)} to be provisioned from ${label} and Bound (${bound.length} of ${pvcs.length} Bound)`,
  };
}

/** Why the chosen snapshot cannot be restored from now (being deleted, failed, not ready). */
function unusableSnapshot(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  snapshot: VolumeSnapshot,
): Outcome | undefined {
  const name = snapshot.metadata.name!;
  if (isDeleting(snapshot)) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.SnapshotDeleting,
      message: `VolumeSnapshot ${name} is being deleted`,
      snapshot: name,
    };
  }
  if (hasFailed(snapshot)) {
    const error = snapshot.status?.error?.message ?? 'no message';
    return waitOutError(observed, spec, {
      waiting: `VolumeSnapshot ${name} reports an error: ${error}`,
      failed: `VolumeSnapshot ${name} still reports an error: ${error}`,
      snapshot: name,
    });
  }
  if (isReady(snapshot)) return undefined;
  return waitForReady(observed, spec, {
    waiting: `waiting for VolumeSnapshot ${name} to be ready`,
    failed: `VolumeSnapshot ${name} did not become ready`,
    snapshot: name,
  });
}

/**
 * The plan, step by step: nothing for a finished job; else the outcome decided now, the
 * status and Events it makes, the snapshot to hold and when to look again.
 */
export function planRestoreJob(observed: RestoreJobObservation): RestoreJobPlan {
  if (observed.job.spec?.mode === 'Swap') return planSwap(observed);
  const previous = observed.job.status;
  if (previous?.phase === 'Succeeded' || previous?.phase === 'Failed') return { events: [] };

  const decided = decide(observed);
  const outcome = { ...decided, message: capMessage(decided.message) } as Outcome;
  const plan: RestoreJobPlan = {
    status: restoreStatus(observed, outcome),
    events: restoreEvents(previous, outcome),
    ...restoreHold(observed, outcome),
  };
  if (outcome.phase === 'Restoring' && outcome.create) plan.createPvcs = outcome.create;
  const requeue = requeueOf(observed, outcome);
  if (requeue !== undefined) plan.requeueAfterMs = requeue;
  return plan;
}

/** When a Pending outcome looks again: to recheck, or at its deadline. */
function requeueOf(observed: RestoreJobObservation, outcome: Outcome): number | undefined {
  if (outcome.phase !== 'Pending') return undefined;
  const waits = [
    ...(outcome.recheck ? [RECHECK_MS] : []),
    ...(outcome.wakeAt ? [outcome.wakeAt.getTime() - observed.now.getTime() + 1000] : []),
  ];
  return waits.length > 0 ? Math.max(0, Math.min(...waits)) : undefined;
}

/**
 * Mode Swap: the swap's next step (restore-swap.ts), each claim restored as a New restore of
 * the claim from the policy would restore it; the finalizer held from the first step until the
 * workload runs again.
 */
function planSwap(observed: RestoreJobObservation): RestoreJobPlan {
  const { job } = observed;
  const held = (job.metadata.finalizers ?? []).includes(FINALIZER_SWAP);
  if (isTerminal(job))
    return held ? { events: [], finalizer: { remove: FINALIZER_SWAP } } : { events: [] };
  const spec = validRestoreSpec(job);
  if (isOutcome(spec)) {
    const outcome = { ...spec, message: capMessage(spec.message) };
    return { status: restoreStatus(observed, outcome), events: restoreEvents(job.status, outcome) };
  }
  const view = observed.swap;
  const decision = decideSwap({
    job,
    spec,
    enabled: view !== undefined,
    workload: view?.workload,
    pods: view?.pods ?? [],
    pvcs: observed.pvcs,
    pv: (name) => view?.pv(name),
    storageClasses: observed.storageClasses,
    now: observed.now,
    restore: (claim, restoredClaim, snapshotName) =>
      claimRestore(observed, spec, { claim, restoredClaim, snapshotName }),
  });
  const outcome = {
    phase: decision.phase,
    reason: decision.reason,
    message: capMessage(decision.message),
    ...(decision.snapshot ? { snapshot: decision.snapshot } : {}),
    ...(decision.group ? { group: decision.group } : {}),
    ...(decision.snapshots ? { members: decision.snapshots } : {}),
  } as Outcome;
  const status = restoreStatus(observed, outcome);
  if (decision.swap) status.swap = decision.swap;
  const restoring = (decision.swap?.step ?? 'RestoringVolumes') === 'RestoringVolumes';
  const plan: RestoreJobPlan = {
    status,
    events: swapEvents(job.status, decision),
    ...(restoring && !isDeleting(job) ? restoreHold(observed, outcome) : {}),
    swapActions: decision.actions,
  };
  if (decision.finalizer && !held && !isDeleting(job)) plan.finalizer = { add: FINALIZER_SWAP };
  if (!decision.finalizer && held) plan.finalizer = { remove: FINALIZER_SWAP };
  if (
    decision.requeueAfterMs !== undefined &&
    decision.phase !== 'Succeeded' &&
    decision.phase !== 'Failed'
  )
    plan.requeueAfterMs = decision.requeueAfterMs;
  return plan;
}

/** Restores one claim of a swap: a New restore of it from the policy, into `restoredClaim`. */
function claimRestore(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  {
    claim,
    restoredClaim,
    snapshotName,
  }: { claim: string; restoredClaim: string; snapshotName: string | undefined },
): ClaimRestore {
  const { job } = observed;
  const group = job.status?.volumeGroupSnapshotName;
  const single: RestoreJob = {
    ...job,
    spec: {
      ...spec,
      mode: 'New',
      source: { backupPolicy: { ...spec.source.backupPolicy!, pvcName: claim } },
      target: { pvcName: restoredClaim },
    },
    // The snapshot (or group) chosen stays chosen; a restored PVC that went is made again.
    status: {
      phase: 'Pending',
      ...(snapshotName ? { snapshotName } : {}),
      ...(group ? { volumeGroupSnapshotName: group } : {}),
    },
  };
  const observedOne = { ...observed, job: single };
  const outcome = decide(observedOne);
  const requeue = requeueOf(observedOne, outcome);
  return {
    phase: outcome.phase,
    reason: outcome.reason,
    message: outcome.message,
    ...(outcome.snapshot ? { snapshot: outcome.snapshot } : {}),
    ...(outcome.group ? { group: outcome.group } : {}),
    ...(outcome.phase === 'Restoring' && outcome.create ? { create: outcome.create } : {}),
    ...(requeue !== undefined ? { requeueAfterMs: requeue } : {}),
  };
}

/** An Event when the swap moves to another step or phase (a wait that goes on is no news). */
function swapEvents(
  previous: RestoreJobStatus | undefined,
  decision: SwapDecision,
): PlannedEvent<RestoreJobReason>[] {
  const step = decision.swap?.step;
  const same = previous?.phase === decision.phase && previous?.swap?.step === step;
  if (same && (decision.phase !== 'Pending' || previous?.message === decision.message)) return [];
  const warning = decision.phase === 'Failed' || decision.reason === RestoreJobReason.RollingBack;
  return [
    {
      type: warning ? 'Warning' : 'Normal',
      reason: decision.reason,
      message: capMessage(decision.message),
    },
  ];
}

/** The last status written, brought to the outcome. */
function restoreStatus(observed: RestoreJobObservation, outcome: Outcome): RestoreJobStatus {
  const { job, now } = observed;
  const status: RestoreJobStatus = structuredClone(job.status ?? {});
  const generation = job.metadata.generation;
  if (generation !== undefined) status.observedGeneration = generation;
  status.phase = outcome.phase;
  status.message = outcome.message;
  try {
    status.source = restoreSourceSummary(job.spec.source);
    status.target = restoreTargetSummary(job.spec.target);
  } catch {
    delete status.source;
    delete status.target;
  }
  status.startTime ??= rfc3339(now);
  if (outcome.snapshot) status.snapshotName = outcome.snapshot;
  if (outcome.group) status.volumeGroupSnapshotName = outcome.group;
  if (outcome.pvcs) status.pvcs = outcome.pvcs;
  if ((outcome.phase === 'Restoring' || outcome.phase === 'Succeeded') && outcome.pvcName)
    status.pvcName = outcome.pvcName;
  if (outcome.phase === 'Succeeded' || outcome.phase === 'Failed')
    status.completionTime = rfc3339(now);
  status.conditions = setCondition(
    status.conditions,
    {
      type: CONDITION_READY,
      status: outcome.phase === 'Succeeded' ? 'True' : 'False',
      reason: outcome.reason,
      message: outcome.message,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    },
    now,
  );
  return status;
}

/** An Event when the phase or its message changes (a Pending wait that goes on is no news). */
function restoreEvents(
  previous: RestoreJobStatus | undefined,
  outcome: Outcome,
): PlannedEvent<RestoreJobReason>[] {
  if (previous?.phase === outcome.phase && previous?.message === outcome.message) return [];
  const { reason, message } = outcome;
  switch (outcome.phase) {
    case 'Failed':
      return [{ type: 'Warning', reason, message }];
    case 'Succeeded':
      return [{ type: 'Normal', reason: RestoreJobReason.RestoreSucceeded, message }];
    case 'Restoring':
      return outcome.create
        ? [{ type: 'Normal', reason: RestoreJobReason.RestoreStarted, message }]
        : [];
    case 'Pending':
      return [{ type: 'Normal', reason, message }];
  }
}

/**
 * The snapshot chosen (or, from a group, the members chosen) while the job waits or restores,
 * those not held for the job yet.
 */
function restoreHold(
  observed: RestoreJobObservation,
  outcome: Outcome,
): Pick<RestoreJobPlan, 'hold' | 'holdMembers' | 'holdFinalizer'> {
  const uid = observed.job.metadata.uid;
  const running = outcome.phase === 'Pending' || outcome.phase === 'Restoring';
  if (!uid || !running) return {};
  const unheld = (name: string) => {
    const chosen = observed.snapshots.find(sameName(name));
    return chosen && !isDeleting(chosen) && !restoreHolders(chosen).includes(uid)
      ? chosen
      : undefined;
  };
  const holdFinalizer = restoreSourceFinalizer(uid);
  if (outcome.group || outcome.members) {
    const members = (outcome.members ?? [])
      .map(unheld)
      .filter((m): m is VolumeSnapshot => m !== undefined);
    return members.length > 0 ? { holdMembers: members, holdFinalizer } : {};
  }
  const snapshot = outcome.snapshot ? unheld(outcome.snapshot) : undefined;
  return snapshot ? { hold: snapshot, holdFinalizer } : {};
}

/**
 * Restore holds to let go of: finalizers of RestoreJobs that finished, are being deleted or
 * are gone. Returns each snapshot concerned with the finalizers it should keep.
 */
export function staleRestoreHolds(
  snapshots: readonly VolumeSnapshot[],
  jobs: readonly RestoreJob[],
): Array<{ snapshot: VolumeSnapshot; finalizers: string[] }> {
  const active = new Set(
    jobs.filter((j) => !isTerminal(j) && !isDeleting(j)).map((j) => j.metadata.uid),
  );
  const stale: Array<{ snapshot: VolumeSnapshot; finalizers: string[] }> = [];
  for (const snapshot of snapshots) {
    const holders = restoreHolders(snapshot);
    if (holders.every((uid) => active.has(uid))) continue;
    const gone = new Set(holders.filter((uid) => !active.has(uid)).map(restoreSourceFinalizer));
    const finalizers = (snapshot.metadata.finalizers ?? []).filter((f) => !gone.has(f));
    stale.push({ snapshot, finalizers });
  }
  return stale;
}

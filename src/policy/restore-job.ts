/**
 * What a RestoreJob wants done, from what is observed: a pure function the reconciler wraps.
 *
 * Phases: Pending (resolving and waiting for a ready snapshot) -> Restoring (the target PVC
 * exists with the snapshot as dataSource) -> Succeeded (the PVC is Bound) | Failed (with a
 * reason). The target PVC carries labels and annotations linking it to the job but no
 * ownerReference, so deleting the job never deletes the restored data; a PVC that exists and
 * was not created for this job is never touched.
 */
import { z } from 'zod';
import type {
  RestoreJob,
  RestoreJobSpec,
  RestoreJobStatus,
  VolumeSnapshot,
  VolumeSnapshotClass,
  VolumeSnapshotContent,
} from '../api/index.js';
import {
  ANNOTATION_PVC_NAME,
  ANNOTATION_RESTORE_JOB_UID,
  ANNOTATION_RESTORED_FROM,
  AT_LATEST,
  CONDITION_READY,
  LABEL_POLICY,
  LABEL_PVC,
  LABEL_RESTORE_JOB,
  RestoreJobSpecSchema,
  restoreSourceSummary,
  SNAPSHOT_GROUP,
} from '../api/index.js';
import { rfc3339, setCondition } from '../kube/index.js';
import { formatBytes, parseQuantity } from '../api/quantity.js';
import type { PlannedEvent } from './backup-policy.js';
import { labelValue } from './naming.js';
import { capMessage } from './messages.js';
import { RestoreJobReason } from './reasons.js';
import type { Pvc, StorageClass } from './objects.js';
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
  now: Date;
  sourceWaitMs?: number;
}

export interface RestoreJobPlan {
  /**
   * The snapshot chosen, to hold with `holdFinalizer` before anything else is written, so that
   * retention cannot prune it from the moment it is chosen; absent when it holds it already.
   */
  hold?: VolumeSnapshot;
  holdFinalizer?: string;
  createPvc?: Pvc;
  /** The status to write, or undefined when nothing changes (a finished job). */
  status?: RestoreJobStatus;
  events: PlannedEvent<RestoreJobReason>[];
  requeueAfterMs?: number;
}

type Outcome =
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
      snapshot: string;
      create?: Pvc;
    }
  | { phase: 'Succeeded'; reason: RestoreJobReason; message: string; snapshot: string };

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

/**
 * The newest ready snapshot of the policy's PVC taken at or before source.at; else wait for
 * one that may still become ready, or fail when there is none.
 */
function resolveByPolicy(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  source: PolicySource,
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
  source: PolicySource,
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
  source: PolicySource,
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
  return targetPvc(observed.job, spec.target, snapshot, sourcePvc, bytes, storage.className);
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
  snapshot: VolumeSnapshot,
  sourcePvc: Pvc | undefined,
  bytes: number,
  className: string | undefined,
): Pvc {
  const accessModes = target.accessModes ?? sourcePvc?.spec?.accessModes ?? ['ReadWriteOnce'];
  const volumeMode = sourcePvc?.spec?.volumeMode;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: target.pvcName,
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
  const targetName = spec.target.pvcName;
  const existing = observed.pvcs.find(sameName(targetName));
  if (existing) return existingTarget(job, existing, targetName);
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
  return unusableSnapshot(observed, spec, found) ?? restoreFrom(observed, spec, found);
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
  return resolveByPolicy(observed, spec, spec.source.backupPolicy!);
}

/** Restoring: the PVC to create from a ready snapshot, or why it cannot be made. */
function restoreFrom(
  observed: RestoreJobObservation,
  spec: RestoreJobSpec,
  snapshot: VolumeSnapshot,
): Outcome {
  const name = snapshot.metadata.name!;
  const pvc = buildTarget(observed, spec, snapshot);
  if (isOutcome(pvc)) return { ...pvc, snapshot: name } as Outcome;
  return {
    phase: 'Restoring',
    reason: RestoreJobReason.Provisioning,
    message: `creating PVC ${spec.target.pvcName} from VolumeSnapshot ${name}`,
    snapshot: name,
    create: pvc,
  };
}

/** How far a target PVC that exists is: never one this job did not create. */
function existingTarget(job: RestoreJob, existing: Pvc, targetName: string): Outcome {
  if (!createdByJob(existing, job)) {
    return {
      phase: 'Failed',
      reason: RestoreJobReason.TargetExists,
      message: `PVC ${targetName} already exists and was not created by this RestoreJob; a restore never overwrites a volume: choose another target.pvcName`,
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
  const previous = observed.job.status;
  if (previous?.phase === 'Succeeded' || previous?.phase === 'Failed') return { events: [] };

  const decided = decide(observed);
  const outcome = { ...decided, message: capMessage(decided.message) } as Outcome;
  const plan: RestoreJobPlan = {
    status: restoreStatus(observed, outcome),
    events: restoreEvents(previous, outcome),
    ...restoreHold(observed, outcome),
  };
  if (outcome.phase === 'Restoring' && outcome.create) plan.createPvc = outcome.create;
  if (outcome.phase === 'Pending') {
    const waits = [
      ...(outcome.recheck ? [RECHECK_MS] : []),
      ...(outcome.wakeAt ? [outcome.wakeAt.getTime() - observed.now.getTime() + 1000] : []),
    ];
    if (waits.length > 0) plan.requeueAfterMs = Math.max(0, Math.min(...waits));
  }
  return plan;
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
  } catch {
    delete status.source;
  }
  status.startTime ??= rfc3339(now);
  if (outcome.snapshot) status.snapshotName = outcome.snapshot;
  if (outcome.phase === 'Restoring' || outcome.phase === 'Succeeded')
    status.pvcName = job.spec.target.pvcName;
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

/** The snapshot chosen while the job waits or restores, when it is not held for the job yet. */
function restoreHold(
  observed: RestoreJobObservation,
  outcome: Outcome,
): Pick<RestoreJobPlan, 'hold' | 'holdFinalizer'> {
  const chosen =
    (outcome.phase === 'Pending' || outcome.phase === 'Restoring') && outcome.snapshot
      ? observed.snapshots.find(sameName(outcome.snapshot))
      : undefined;
  const uid = observed.job.metadata.uid;
  if (!chosen || !uid || isDeleting(chosen) || restoreHolders(chosen).includes(uid)) return {};
  return { hold: chosen, holdFinalizer: restoreSourceFinalizer(uid) };
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

/**
 * A RestoreJob with mode Swap: what to do next, from the step in status.swap and what is
 * observed. A pure function the RestoreJob planner wraps.
 *
 * Steps: RestoringVolumes (each PVC of the StatefulSet restored into `<claim>-swap-<uid>`, as a
 * New restore would) -> RetainingVolumes (the StatefulSet locked by annotations, the old and the
 * restored PVs set to Retain) -> ScalingDown (replicas 0, until its pods are gone) ->
 * ReplacingClaims (the restored PVCs and the old PVCs deleted, their PVs kept; a PVC of the
 * original name created again, bound to the restored PV; then scaled back) -> WaitingForReady
 * -> Done. Not Ready within readyTimeoutSeconds of scaling down (or the job deleted while the
 * workload is down): RollingBack (the PVCs bound to the old PVs again) -> RolledBack.
 *
 * Every step is planned from the status written at the end of the step before and from what is
 * observed, and its actions are idempotent: a controller killed between an action and the
 * status write plans the same step again, sees the action done, and goes on. The workload is
 * scaled to 0 only once its replicas are recorded (status and the StatefulSet's annotation),
 * and from then on every way out scales it back.
 */
import type { V1StatefulSet } from '@kubernetes/client-node';
import type {
  ApiObjectMeta,
  RestoreJob,
  RestoreJobSpec,
  SwapStatus,
  SwapStep,
  SwapVolume,
} from '../api/index.js';
import {
  ANNOTATION_RESTORE_JOB_UID,
  ANNOTATION_RESTORED_FROM,
  ANNOTATION_SWAP_JOB,
  ANNOTATION_SWAP_REPLICAS,
  LABEL_RESTORE_JOB,
} from '../api/index.js';
import { OBJECT_NAME_MAX_LENGTH } from '../api/formats.js';
import { rfc3339 } from '../kube/index.js';
import type { Pod } from './hooks.js';
import { labelValue } from './naming.js';
import type { Pv, Pvc, StorageClass } from './objects.js';
import { isDeleting, time } from './objects.js';
import { RestoreJobReason } from './reasons.js';

export type StatefulSet = Omit<V1StatefulSet, 'metadata'> & { metadata: ApiObjectMeta };

/** While a swap waits on pods, PVCs or PVs (pods are not watched), look again this often. */
export const SWAP_RECHECK_MS = 2_000;

/** The outcome of restoring one claim, as the New restore decides it. */
export interface ClaimRestore {
  phase: 'Pending' | 'Restoring' | 'Succeeded' | 'Failed';
  reason: RestoreJobReason;
  message: string;
  /** The VolumeSnapshot chosen, once known. */
  snapshot?: string;
  /** The VolumeGroupSnapshot chosen, when the policy takes groups. */
  group?: string;
  /** The restored PVC to create. */
  create?: Pvc[];
  /** Look again then. */
  requeueAfterMs?: number;
}

export interface SwapObservation {
  job: RestoreJob;
  spec: RestoreJobSpec;
  /** Whether the controller runs with --restore-swap. */
  enabled: boolean;
  workload: StatefulSet | undefined;
  /** The pods the StatefulSet owns. */
  pods: readonly Pod[];
  /** PVCs of the job's namespace. */
  pvcs: readonly Pvc[];
  pv(name: string): Pv | undefined;
  storageClasses: readonly StorageClass[];
  /** Restores `claim` from the policy into `restoredClaim`, as a New restore would. */
  restore(claim: string, restoredClaim: string, snapshotName?: string): ClaimRestore;
  now: Date;
}

export type SwapAction =
  | { kind: 'createPvc'; pvc: Pvc }
  | { kind: 'deletePvc'; name: string; uid: string }
  /** Sets spec.persistentVolumeReclaimPolicy. */
  | { kind: 'reclaimPolicy'; pv: string; policy: string }
  /** Pre-binds a PV to a PVC by name (claimRef without uid), so that only it binds there. */
  | { kind: 'claimPv'; pv: string; claim: string }
  | { kind: 'scale'; replicas: number }
  /** Sets (or with `undefined`, removes) the lock annotations on the StatefulSet. */
  | { kind: 'lock'; replicas: number | undefined };

export interface SwapDecision {
  phase: 'Pending' | 'Restoring' | 'Succeeded' | 'Failed';
  reason: RestoreJobReason;
  message: string;
  /** Absent while nothing has been resolved. */
  swap?: SwapStatus;
  /** Every snapshot restored from, to hold while the volumes are restored. */
  snapshots?: string[];
  snapshot?: string;
  group?: string;
  actions: SwapAction[];
  /** Whether the job needs the swap finalizer (false: remove it). */
  finalizer: boolean;
  requeueAfterMs?: number;
}

const WAYS_DOWN: readonly SwapStep[] = ['ScalingDown', 'ReplacingClaims', 'WaitingForReady'];

/** The next thing a Swap restore does. */
export function decideSwap(observed: SwapObservation): SwapDecision {
  const swap = observed.job.status?.swap;
  if (!swap || swap.step === 'RestoringVolumes') return restoringVolumes(observed, swap);
  if (swap.step === 'Done' || swap.step === 'RolledBack') return finished(observed, swap);
  const { workload } = observed;
  if (!workload)
    return swap.step === 'RetainingVolumes' ? goneBeforeDown(swap) : goneWhileDown(swap);
  return nextStep({ ...observed, workload }, swap);
}

/** What the steps from RetainingVolumes on see: the workload is there. */
type WithWorkload = SwapObservation & { workload: StatefulSet };

function nextStep(observed: WithWorkload, swap: SwapStatus): SwapDecision {
  const deadline = downDeadline(observed, swap);
  const deleting = isDeleting(observed.job);
  if (WAYS_DOWN.includes(swap.step) && (deleting || observed.now.getTime() >= deadline)) {
    const why = deleting
      ? 'the RestoreJob is being deleted while the workload is down'
      : `StatefulSet ${swap.workload} was not Ready within ${observed.spec.readyTimeoutSeconds}s of being scaled down (spec.readyTimeoutSeconds)`;
    return rollingBack(observed, { ...swap, step: 'RollingBack', rollbackCause: why });
  }
  switch (swap.step) {
    case 'RetainingVolumes':
      return deleting ? released(observed, swap) : retainingVolumes(observed, swap);
    case 'ScalingDown':
      return scalingDown(observed, swap);
    case 'ReplacingClaims':
      return replacingClaims(observed, swap);
    case 'WaitingForReady':
      return waitingForReady(observed, swap);
    case 'RollingBack':
      return rollingBack(observed, swap);
    case 'RestoringVolumes':
      return restoringVolumes(observed, swap);
    case 'Done':
    case 'RolledBack':
      return finished(observed, swap);
  }
}

function downDeadline(observed: SwapObservation, swap: SwapStatus): number {
  const down = time(swap.scaledDownAt) ?? observed.now;
  return down.getTime() + observed.spec.readyTimeoutSeconds * 1000;
}

function failed(reason: RestoreJobReason, message: string, swap?: SwapStatus): SwapDecision {
  return {
    phase: 'Failed',
    reason,
    message,
    actions: [],
    finalizer: false,
    ...(swap ? { swap } : {}),
  };
}

function going(
  swap: SwapStatus,
  message: string,
  actions: SwapAction[] = [],
  reason: RestoreJobReason = RestoreJobReason.Swapping,
): SwapDecision {
  return {
    phase: 'Restoring',
    reason,
    message,
    swap,
    actions,
    finalizer: true,
    requeueAfterMs: SWAP_RECHECK_MS,
  };
}

function finished(observed: SwapObservation, swap: SwapStatus): SwapDecision {
  const done = swap.step === 'Done';
  return {
    phase: done ? 'Succeeded' : 'Failed',
    reason: done ? RestoreJobReason.Swapped : RestoreJobReason.RolledBack,
    message: observed.job.status?.message ?? `the swap ended: ${swap.step}`,
    swap,
    actions: [],
    finalizer: false,
  };
}

// ---------------------------------------------------------------------------------------------
// RestoringVolumes: nothing of the workload is touched yet.

/** The PVCs of the StatefulSet, by template and ordinal: `<template>-<set>-<ordinal>`. */
export function workloadClaims(set: StatefulSet): string[] {
  const replicas = set.spec?.replicas ?? 1;
  const start = set.spec?.ordinals?.start ?? 0;
  const names: string[] = [];
  for (const template of set.spec?.volumeClaimTemplates ?? []) {
    for (let i = start; i < start + replicas; i++)
      names.push(`${template.metadata?.name}-${set.metadata.name}-${i}`);
  }
  return names;
}

function templateOf(set: StatefulSet, claim: string) {
  return (set.spec?.volumeClaimTemplates ?? []).find((t) =>
    claim.startsWith(`${t.metadata?.name}-${set.metadata.name}-`),
  );
}

/** The PVC a claim is first restored into. */
export function restoredClaimName(claim: string, job: RestoreJob): string {
  const suffix = `-swap-${(job.metadata.uid ?? '').slice(0, 8)}`;
  return `${claim.slice(0, OBJECT_NAME_MAX_LENGTH - suffix.length)}${suffix}`;
}

function restoringVolumes(observed: SwapObservation, prior: SwapStatus | undefined): SwapDecision {
  const { job, spec, workload } = observed;
  const ref = spec.target.workload!;
  if (isDeleting(job)) {
    const decision = failed(
      RestoreJobReason.Deleted,
      'the RestoreJob was deleted before the swap began',
    );
    decision.actions = dropRestoredCopies(observed);
    return decision;
  }
  if (!observed.enabled) {
    return failed(
      RestoreJobReason.SwapDisabled,
      'mode Swap is disabled: the controller runs without --restore-swap (chart value restore.swap.enabled); nothing was touched',
    );
  }
  if (!workload) {
    return failed(
      RestoreJobReason.WorkloadNotFound,
      `StatefulSet ${ref.name} not found in namespace ${job.metadata.namespace}; nothing was touched`,
    );
  }
  const lockedBy = workload.metadata.annotations?.[ANNOTATION_SWAP_JOB];
  if (lockedBy !== undefined && lockedBy !== job.metadata.uid) {
    return failed(
      RestoreJobReason.WorkloadBusy,
      `StatefulSet ${ref.name} is being swapped by another RestoreJob (uid ${lockedBy}, annotation ${ANNOTATION_SWAP_JOB}); one swap at a time: try again when it ends`,
    );
  }
  const claims = selectedClaims(observed, workload);
  if (!Array.isArray(claims)) return claims;
  const volumes: SwapVolume[] = [];
  const creates: Pvc[] = [];
  const waiting: string[] = [];
  let group: string | undefined;
  let requeue: number | undefined;
  for (const claim of claims) {
    const before = prior?.volumes.find((v) => v.claim === claim.metadata.name);
    const restoredClaim = before?.restoredClaim ?? restoredClaimName(claim.metadata.name!, job);
    const restored = observed.restore(claim.metadata.name!, restoredClaim, before?.snapshotName);
    if (restored.group) group = restored.group;
    if (restored.phase === 'Failed') return notRestored(observed, workload, claim, restored);
    if (restored.requeueAfterMs !== undefined)
      requeue = Math.min(requeue ?? Infinity, restored.requeueAfterMs);
    creates.push(...(restored.create ?? []).map((pvc) => nearWorkload(observed, pvc, claim)));
    if (restored.phase !== 'Succeeded') waiting.push(`${claim.metadata.name}: ${restored.message}`);
    if (restored.snapshot) {
      const pvc = observed.pvcs.find((p) => p.metadata.name === restoredClaim);
      volumes.push({
        claim: claim.metadata.name!,
        snapshotName: restored.snapshot,
        restoredClaim,
        ...(pvc?.spec?.volumeName && restored.phase === 'Succeeded'
          ? { restoredVolume: pvc.spec.volumeName }
          : {}),
        retainedVolume: claim.spec!.volumeName!,
      });
    }
  }
  const swap: SwapStatus = {
    step: 'RestoringVolumes',
    workload: workload.metadata.name!,
    volumes,
  };
  const snapshots = volumes.map((v) => v.snapshotName);
  const parts = {
    swap,
    snapshots,
    ...(group ? { group } : {}),
    ...(snapshots.length === 1 ? { snapshot: snapshots[0]! } : {}),
  };
  if (waiting.length === 0) {
    return going(
      { ...swap, step: 'RetainingVolumes' },
      `restored ${list(volumes.map((v) => v.claim))} of StatefulSet ${swap.workload} into ${list(volumes.map((v) => v.restoredClaim))}; next: keep the old volumes (reclaim policy Retain)`,
    );
  }
  const pending = volumes.length < claims.length && creates.length === 0;
  return {
    phase: pending ? 'Pending' : 'Restoring',
    reason: pending ? RestoreJobReason.SnapshotNotReady : RestoreJobReason.Provisioning,
    message: `restoring the PVCs of StatefulSet ${swap.workload} before touching it: ${waiting.join('; ')}`,
    ...parts,
    actions: creates.map((pvc) => ({ kind: 'createPvc', pvc })),
    finalizer: true,
    requeueAfterMs: requeue ?? SWAP_RECHECK_MS,
  };
}

/** The claims to swap: every PVC of the workload, or the one of source.backupPolicy.pvcName. */
function selectedClaims(observed: SwapObservation, workload: StatefulSet): Pvc[] | SwapDecision {
  const name = workload.metadata.name!;
  const all = workloadClaims(workload);
  const wanted = observed.spec.source.backupPolicy?.pvcName;
  if (all.length === 0) {
    return failed(
      RestoreJobReason.WorkloadNotCovered,
      `StatefulSet ${name} has ${(workload.spec?.replicas ?? 1) === 0 ? 'no replicas' : 'no volumeClaimTemplates'}, so no PVCs to swap; nothing was touched`,
    );
  }
  if (wanted !== undefined && !all.includes(wanted)) {
    return failed(
      RestoreJobReason.WorkloadNotCovered,
      `PVC ${wanted} (source.backupPolicy.pvcName) is not a PVC of StatefulSet ${name}, whose PVCs are ${list(all)}; nothing was touched`,
    );
  }
  const names = wanted !== undefined ? [wanted] : all;
  const claims: Pvc[] = [];
  for (const claimName of names) {
    const pvc = observed.pvcs.find((p) => p.metadata.name === claimName);
    if (!pvc || pvc.status?.phase !== 'Bound' || !pvc.spec?.volumeName) {
      return failed(
        RestoreJobReason.ClaimNotBound,
        `PVC ${claimName} of StatefulSet ${name} ${pvc ? 'is not Bound' : 'does not exist'}: a swap replaces bound volumes only; nothing was touched`,
      );
    }
    claims.push(pvc);
  }
  return claims;
}

/** A claim that cannot be restored: the workload is not covered by the policy, or why not. */
function notRestored(
  observed: SwapObservation,
  workload: StatefulSet,
  claim: Pvc,
  restored: ClaimRestore,
): SwapDecision {
  const uncovered: RestoreJobReason[] = [
    RestoreJobReason.NoSnapshots,
    RestoreJobReason.MemberNotFound,
    RestoreJobReason.NoSnapshotBefore,
  ];
  const policy = observed.spec.source.backupPolicy!.name;
  const decision = uncovered.includes(restored.reason)
    ? failed(
        RestoreJobReason.WorkloadNotCovered,
        `StatefulSet ${workload.metadata.name} mounts PVC ${claim.metadata.name}, which BackupPolicy ${policy} has no snapshot of (${restored.message}); a swap restores every PVC of the workload (or source.backupPolicy.pvcName): nothing was touched`,
      )
    : failed(
        restored.reason,
        `PVC ${claim.metadata.name} of StatefulSet ${workload.metadata.name}: ${restored.message}; nothing was touched`,
      );
  decision.actions = dropRestoredCopies(observed);
  return decision;
}

/** The restored copies made so far, of no use once the swap fails: they go (the snapshots stay). */
function dropRestoredCopies(observed: SwapObservation): SwapAction[] {
  const volumes = observed.job.status?.swap?.volumes ?? [];
  return observed.pvcs
    .filter(
      (p) =>
        p.metadata.labels?.[LABEL_RESTORE_JOB] === labelValue(observed.job.metadata.name!) &&
        p.metadata.annotations?.[ANNOTATION_RESTORE_JOB_UID] === observed.job.metadata.uid &&
        !volumes.some((v) => v.claim === p.metadata.name) &&
        !isDeleting(p),
    )
    .map((p) => ({ kind: 'deletePvc', name: p.metadata.name!, uid: p.metadata.uid! }));
}

/**
 * A restored PVC of a StorageClass that binds on first use is provisioned on the node of the
 * pod that mounts the claim now, as the scheduler would choose.
 */
function nearWorkload(observed: SwapObservation, pvc: Pvc, claim: Pvc): Pvc {
  const className = pvc.spec?.storageClassName;
  const storageClass = observed.storageClasses.find((c) => c.metadata.name === className);
  if (storageClass?.volumeBindingMode !== 'WaitForFirstConsumer') return pvc;
  const pod = observed.pods.find((p) =>
    (p.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === claim.metadata.name),
  );
  const node = pod?.spec?.nodeName;
  if (!node) return pvc;
  const annotations = { ...pvc.metadata.annotations, 'volume.kubernetes.io/selected-node': node };
  return { ...pvc, metadata: { ...pvc.metadata, annotations } };
}

// ---------------------------------------------------------------------------------------------
// RetainingVolumes .. WaitingForReady

function goneBeforeDown(swap: SwapStatus): SwapDecision {
  return failed(
    RestoreJobReason.WorkloadNotFound,
    `StatefulSet ${swap.workload} was deleted before it was scaled down; its PVCs were not touched`,
    { ...swap, step: 'RolledBack' },
  );
}

function retainingVolumes(observed: WithWorkload, swap: SwapStatus): SwapDecision {
  const { workload } = observed;
  const actions: SwapAction[] = [];
  const replicas = lockedReplicas(observed, workload) ?? workload.spec?.replicas ?? 1;
  if (lockedReplicas(observed, workload) === undefined) actions.push({ kind: 'lock', replicas });
  for (const v of swap.volumes) {
    for (const pv of [v.retainedVolume, v.restoredVolume]) {
      if (pv && observed.pv(pv)?.spec?.persistentVolumeReclaimPolicy !== 'Retain')
        actions.push({ kind: 'reclaimPolicy', pv, policy: 'Retain' });
    }
  }
  const next: SwapStatus = {
    ...swap,
    step: 'ScalingDown',
    replicas,
    scaledDownAt: rfc3339(observed.now),
  };
  return going(
    next,
    `kept the old volumes ${list(swap.volumes.map((v) => v.retainedVolume ?? v.claim))} (reclaim policy Retain); scaling StatefulSet ${swap.workload} from ${replicas} to 0`,
    actions,
  );
}

/** The replicas recorded on the workload by this job's lock, if it holds it. */
function lockedReplicas(observed: SwapObservation, workload: StatefulSet): number | undefined {
  const annotations = workload.metadata.annotations ?? {};
  if (annotations[ANNOTATION_SWAP_JOB] !== observed.job.metadata.uid) return undefined;
  const replicas = Number(annotations[ANNOTATION_SWAP_REPLICAS]);
  return Number.isInteger(replicas) && replicas >= 0 ? replicas : undefined;
}

/** The job deleted before the workload was scaled down: the lock and the finalizer go. */
function released(observed: WithWorkload, swap: SwapStatus): SwapDecision {
  const decision = failed(
    RestoreJobReason.Deleted,
    'the RestoreJob was deleted before the workload was scaled down; nothing was swapped',
    { ...swap, step: 'RolledBack' },
  );
  if (lockedReplicas(observed, observed.workload) !== undefined)
    decision.actions.push({ kind: 'lock', replicas: undefined });
  return decision;
}

function scalingDown(observed: WithWorkload, swap: SwapStatus): SwapDecision {
  const { workload } = observed;
  const actions: SwapAction[] = [];
  if ((workload.spec?.replicas ?? 1) !== 0) actions.push({ kind: 'scale', replicas: 0 });
  if (observed.pods.length > 0) {
    return going(
      swap,
      `scaling StatefulSet ${swap.workload} to 0: waiting for ${list(observed.pods.map((p) => p.metadata.name!))} to go`,
      actions,
    );
  }
  return replacingClaims(observed, { ...swap, step: 'ReplacingClaims' }, actions);
}

/** The workload deleted while down: nothing to scale back; the volumes are as they are. */
function goneWhileDown(swap: SwapStatus): SwapDecision {
  return failed(
    RestoreJobReason.WorkloadNotFound,
    `StatefulSet ${swap.workload} was deleted during the swap; the old volumes ${list(swap.volumes.map((v) => v.retainedVolume ?? v.claim))} are kept (reclaim policy Retain)`,
    { ...swap, step: 'RolledBack' },
  );
}

/** How far one claim is from being bound to `pv`, and what gets it there. */
function rebind(
  observed: SwapObservation,
  workload: StatefulSet,
  claim: string,
  pv: string,
  annotations: Record<string, string>,
): { bound: boolean; actions: SwapAction[]; waiting?: string } {
  const current = observed.pvcs.find((p) => p.metadata.name === claim);
  if (current && current.spec?.volumeName === pv) {
    if (current.status?.phase === 'Bound') return { bound: true, actions: [] };
    return { bound: false, actions: [], waiting: `PVC ${claim} to bind to ${pv}` };
  }
  if (current) {
    if (isDeleting(current)) return { bound: false, actions: [], waiting: `PVC ${claim} to go` };
    return {
      bound: false,
      actions: [{ kind: 'deletePvc', name: claim, uid: current.metadata.uid! }],
      waiting: `PVC ${claim} to go`,
    };
  }
  const volume = observed.pv(pv);
  if (!volume) return { bound: false, actions: [], waiting: `PV ${pv}, which is not found` };
  const actions: SwapAction[] = [];
  const ref = volume.spec?.claimRef;
  const preBound =
    ref?.name === claim && ref.namespace === observed.job.metadata.namespace && !ref.uid;
  if (!preBound) actions.push({ kind: 'claimPv', pv, claim });
  actions.push({ kind: 'createPvc', pvc: claimFor(workload, claim, volume, annotations) });
  return { bound: false, actions, waiting: `PVC ${claim} to bind to ${pv}` };
}

/** The PVC `claim` as the StatefulSet would make it, bound to `pv`. */
function claimFor(
  workload: StatefulSet,
  claim: string,
  pv: Pv,
  annotations: Record<string, string>,
): Pvc {
  const template = templateOf(workload, claim);
  const spec = template?.spec ?? {};
  const storageClassName = pv.spec?.storageClassName ?? spec.storageClassName;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: claim,
      namespace: workload.metadata.namespace!,
      labels: {
        ...template?.metadata?.labels,
        ...workload.spec?.selector?.matchLabels,
      },
      annotations: { ...template?.metadata?.annotations, ...annotations },
    },
    spec: {
      accessModes: [...(spec.accessModes ?? pv.spec?.accessModes ?? ['ReadWriteOnce'])],
      resources: {
        requests: { storage: spec.resources?.requests?.storage ?? pv.spec!.capacity!.storage! },
      },
      ...(storageClassName !== undefined ? { storageClassName } : {}),
      ...(spec.volumeMode ? { volumeMode: spec.volumeMode } : {}),
      volumeName: pv.metadata.name!,
    },
  };
}

function replacingClaims(
  observed: WithWorkload,
  swap: SwapStatus,
  before: SwapAction[] = [],
): SwapDecision {
  const { workload } = observed;
  const actions = [...before];
  const waiting: string[] = [];
  const uid = observed.job.metadata.uid ?? '';
  for (const v of swap.volumes) {
    const restored = observed.pvcs.find((p) => p.metadata.name === v.restoredClaim);
    if (restored && !isDeleting(restored)) {
      actions.push({ kind: 'deletePvc', name: v.restoredClaim, uid: restored.metadata.uid! });
    }
    if (restored) {
      waiting.push(`PVC ${v.restoredClaim} to go`);
      continue;
    }
    const step = rebind(observed, workload, v.claim, v.restoredVolume!, {
      [ANNOTATION_RESTORED_FROM]: v.snapshotName,
      [ANNOTATION_RESTORE_JOB_UID]: uid,
    });
    actions.push(...step.actions);
    if (!step.bound) waiting.push(step.waiting!);
  }
  if (waiting.length > 0) {
    return going(
      swap,
      `replacing the PVCs of StatefulSet ${swap.workload}: waiting for ${waiting.join(', ')}`,
      actions,
    );
  }
  return scalingUp(observed, swap, actions);
}

function scalingUp(
  observed: WithWorkload,
  swap: SwapStatus,
  before: SwapAction[] = [],
): SwapDecision {
  const { workload } = observed;
  const replicas = swap.replicas ?? 1;
  const actions = [...before];
  if ((workload.spec?.replicas ?? 1) !== replicas) actions.push({ kind: 'scale', replicas });
  return going(
    { ...swap, step: 'WaitingForReady' },
    `${list(swap.volumes.map((v) => v.claim))} bound to the restored ${list(swap.volumes.map((v) => v.restoredVolume!))}; scaled StatefulSet ${swap.workload} back to ${replicas}, waiting for it to be Ready`,
    actions,
  );
}

function isReadyAt(workload: StatefulSet, replicas: number): boolean {
  const status = workload.status;
  return (
    (status?.observedGeneration ?? 0) >= (workload.metadata.generation ?? 0) &&
    (workload.spec?.replicas ?? 1) === replicas &&
    (status?.readyReplicas ?? 0) >= replicas &&
    (status?.replicas ?? 0) === replicas
  );
}

function waitingForReady(observed: WithWorkload, swap: SwapStatus): SwapDecision {
  const { workload } = observed;
  const replicas = swap.replicas ?? 1;
  if (!isReadyAt(workload, replicas)) {
    const ready = workload.status?.readyReplicas ?? 0;
    const until = rfc3339(new Date(downDeadline(observed, swap)));
    return going(
      swap,
      `waiting for StatefulSet ${swap.workload} to be Ready on the restored volumes (${ready} of ${replicas} Ready); rolling back at ${until} (spec.readyTimeoutSeconds)`,
    );
  }
  const actions: SwapAction[] = [{ kind: 'lock', replicas: undefined }];
  // The restored volumes are the workload's now: they get back their class's reclaim policy.
  for (const v of swap.volumes) actions.push(...classReclaimPolicy(observed, v.restoredVolume!));
  return {
    phase: 'Succeeded',
    reason: RestoreJobReason.Swapped,
    message: `StatefulSet ${swap.workload} is Ready (${replicas} of ${replicas}) on ${list(swap.volumes.map((v) => `${v.claim} restored from ${v.snapshotName}`))}; the old volumes ${list(swap.volumes.map((v) => v.retainedVolume!))} are kept (reclaim policy Retain): delete them once the restored data is trusted`,
    swap: { ...swap, step: 'Done' },
    actions,
    finalizer: false,
  };
}

// ---------------------------------------------------------------------------------------------
// RollingBack

function rollingBack(observed: WithWorkload, swap: SwapStatus): SwapDecision {
  const { workload } = observed;
  const replicas = swap.replicas ?? 1;
  const cause = swap.rollbackCause ?? 'the swap did not complete';
  const misplaced = swap.volumes.filter((v) => {
    const pvc = observed.pvcs.find((p) => p.metadata.name === v.claim);
    return !(pvc && pvc.spec?.volumeName === v.retainedVolume && pvc.status?.phase === 'Bound');
  });
  if (misplaced.length > 0) {
    const actions: SwapAction[] = [];
    if ((workload.spec?.replicas ?? 1) !== 0) actions.push({ kind: 'scale', replicas: 0 });
    const waiting: string[] = observed.pods.map((p) => `pod ${p.metadata.name} to go`);
    if (waiting.length === 0) {
      for (const v of misplaced) {
        const step = rebind(observed, workload, v.claim, v.retainedVolume!, {});
        actions.push(...step.actions);
        if (!step.bound) waiting.push(step.waiting!);
      }
    }
    return going(
      swap,
      `${cause}; rolling back to the old volumes: waiting for ${waiting.join(', ')}`,
      actions,
      RestoreJobReason.RollingBack,
    );
  }
  const actions: SwapAction[] = [{ kind: 'lock', replicas: undefined }];
  if ((workload.spec?.replicas ?? 1) !== replicas) actions.push({ kind: 'scale', replicas });
  // The old volumes are the workload's again: they get back their class's reclaim policy.
  for (const v of swap.volumes) actions.push(...classReclaimPolicy(observed, v.retainedVolume!));
  const kept = swap.volumes.map((v) => v.restoredVolume).filter((n): n is string => !!n);
  return {
    phase: 'Failed',
    reason: RestoreJobReason.RolledBack,
    message: `${cause}: rolled back, ${list(swap.volumes.map((v) => v.claim))} bound to the old volumes ${list(swap.volumes.map((v) => v.retainedVolume!))} again and StatefulSet ${swap.workload} scaled back to ${replicas}${kept.length > 0 ? `; the restored volumes ${list(kept)} are kept (reclaim policy Retain) to look into` : ''}`,
    swap: { ...swap, step: 'RolledBack' },
    actions,
    finalizer: false,
  };
}

/** Sets a PV back to the reclaim policy of its StorageClass (Delete when it has none). */
function classReclaimPolicy(observed: SwapObservation, name: string): SwapAction[] {
  const pv = observed.pv(name);
  if (!pv) return [];
  const className = pv.spec?.storageClassName;
  const policy =
    observed.storageClasses.find((c) => c.metadata.name === className)?.reclaimPolicy ?? 'Delete';
  return pv.spec?.persistentVolumeReclaimPolicy === policy
    ? []
    : [{ kind: 'reclaimPolicy', pv: name, policy }];
}

function list(names: readonly string[]): string {
  return names.join(', ');
}

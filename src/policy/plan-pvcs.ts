/**
 * The PVCs a BackupPolicy selects, and for each whether it can be snapshotted now and with
 * which VolumeSnapshotClass: a step of planBackupPolicy (backup-policy.ts).
 */
import type { BackupPolicySpec, VolumeSnapshotClass } from '../api/index.js';
import { ANN_IS_DEFAULT_CLASS } from '../api/index.js';
import { labelSelectorMatches } from '../kube/index.js';
import type { BackupPolicyObservation } from './backup-policy.js';
import type { Pvc } from './objects.js';
import { isDeleting } from './objects.js';
import { BackupPolicyReason } from './reasons.js';

/** A problem, with the condition reason it is reported under. */
export interface Problem {
  reason: BackupPolicyReason;
  message: string;
}

export interface PvcPlan {
  name: string;
  pvc?: Pvc;
  /** Why this PVC is not snapshotted, with the condition reason. */
  problem?: Problem;
  /** The class its snapshots use; undefined means the driver's default class. */
  className?: string;
}

export function selectPvcs(
  spec: BackupPolicySpec,
  observed: BackupPolicyObservation,
): Array<{ name: string; pvc?: Pvc }> {
  const live = observed.pvcs.filter((p) => !isDeleting(p));
  if (spec.pvcNames) {
    return spec.pvcNames.map((name) => {
      const pvc = live.find((p) => p.metadata.name === name);
      return pvc ? { name, pvc } : { name };
    });
  }
  const selector = spec.selector ?? {};
  return live
    .filter((p) => labelSelectorMatches(selector, p.metadata.labels ?? {}))
    .map((pvc) => ({ name: pvc.metadata.name!, pvc }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function planPvc(
  entry: { name: string; pvc?: Pvc },
  spec: BackupPolicySpec,
  ownedClass: VolumeSnapshotClass | undefined,
  observed: BackupPolicyObservation,
): PvcPlan {
  const { name, pvc } = entry;
  if (!pvc) return { name, problem: pvcNotFound(name, observed) };
  const problem = volumeProblem(pvc, observed);
  if (problem) return { name, pvc, problem };
  return { name, pvc, ...pvcClass(name, pvcDriver(pvc, observed), spec, ownedClass, observed) };
}

function pvcNotFound(name: string, observed: BackupPolicyObservation): Problem {
  const namespace = observed.policy.metadata.namespace!;
  const elsewhere = observed.namespacesWithPvc(name).filter((ns) => ns !== namespace);
  const hint = elsewhere.length
    ? ` (a PVC of that name exists in namespace ${elsewhere.join(', ')}; a policy only backs up PVCs of its own namespace)`
    : '';
  return {
    reason: BackupPolicyReason.PVCNotFound,
    message: `PVC ${name} not found in namespace ${namespace}${hint}`,
  };
}

/** Why a PVC's volume cannot be snapshotted yet, if it cannot. */
export function volumeProblem(pvc: Pvc, observed: BackupPolicyObservation): Problem | undefined {
  const name = pvc.metadata.name!;
  if (pvc.status?.phase !== 'Bound') {
    return {
      reason: BackupPolicyReason.PVCNotBound,
      message: `PVC ${name} is ${pvc.status?.phase ?? 'Pending'}, not Bound; it is snapshotted once Bound`,
    };
  }
  const volume = pvc.spec?.volumeName ? observed.volume(pvc.spec.volumeName) : undefined;
  if (volume && !volume.spec?.csi) {
    return {
      reason: BackupPolicyReason.VolumeNotCSI,
      message: `PVC ${name} is bound to ${volume.metadata.name}, which is not a CSI volume; only CSI volumes can be snapshotted`,
    };
  }
  return undefined;
}

/**
 * The class a PVC's snapshots use: the one named, the owned one, or (none set) the driver's
 * default, which must then be exactly one.
 */
function pvcClass(
  name: string,
  driver: string | undefined,
  spec: BackupPolicySpec,
  ownedClass: VolumeSnapshotClass | undefined,
  observed: BackupPolicyObservation,
): Pick<PvcPlan, 'className' | 'problem'> {
  const classRef = spec.snapshotClass;
  if (classRef?.name !== undefined) {
    const cls = observed.snapshotClasses.find((c) => c.metadata.name === classRef.name)!;
    if (!driver || cls.driver === driver) return { className: classRef.name };
    return {
      problem: {
        reason: BackupPolicyReason.DriverMismatch,
        message: `VolumeSnapshotClass ${cls.metadata.name} is for driver ${cls.driver}, but PVC ${name} uses ${driver}`,
      },
    };
  }
  if (ownedClass) {
    if (!driver || ownedClass.driver === driver) return { className: ownedClass.metadata.name! };
    return {
      problem: {
        reason: BackupPolicyReason.DriverMismatch,
        message: `snapshotClass.template.driver is ${ownedClass.driver}, but PVC ${name} uses ${driver}`,
      },
    };
  }
  if (!driver) return {};
  const problem = defaultClassProblem(driver, observed.snapshotClasses);
  return problem ? { problem } : {};
}

/** Snapshots that name no class get the driver's default: so it must be exactly one. */
function defaultClassProblem(
  driver: string,
  classes: readonly VolumeSnapshotClass[],
): Problem | undefined {
  const defaults = classes.filter(
    (c) => c.driver === driver && c.metadata.annotations?.[ANN_IS_DEFAULT_CLASS] === 'true',
  );
  if (defaults.length === 1) return undefined;
  return {
    reason: BackupPolicyReason.NoDefaultSnapshotClass,
    message:
      defaults.length === 0
        ? `no VolumeSnapshotClass for driver ${driver} is marked default; set spec.snapshotClass`
        : `${defaults.length} VolumeSnapshotClasses for driver ${driver} are marked default (${defaults.map((c) => c.metadata.name).join(', ')}); set spec.snapshotClass`,
  };
}

export function pvcDriver(pvc: Pvc, observed: BackupPolicyObservation): string | undefined {
  const volumeName = pvc.spec?.volumeName;
  return volumeName ? observed.volume(volumeName)?.spec?.csi?.driver : undefined;
}

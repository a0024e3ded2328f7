/**
 * The reasons of the policy controllers' Events and status conditions, in one place: a user
 * filters Events and writes alerts on them, so their spelling is part of the API. Each object
 * also names a type, the union of its values, so a plan cannot carry a reason spelled wrong.
 */

/** Reasons of a BackupPolicy's Events and of its Ready, Degraded and Suspended conditions. */
export const BackupPolicyReason = {
  // The whole policy is blocked (Ready=False): nothing is created or pruned.
  InvalidSpec: 'InvalidSpec',
  InvalidSchedule: 'InvalidSchedule',
  InvalidTimeZone: 'InvalidTimeZone',
  HooksDisabled: 'HooksDisabled',
  SnapshotClassNotFound: 'SnapshotClassNotFound',
  SnapshotClassConflict: 'SnapshotClassConflict',
  NoPVCsSelected: 'NoPVCsSelected',
  /** spec.consistency Group on a cluster that does not serve groupsnapshot.storage.k8s.io/v1. */
  GroupSnapshotAPIUnavailable: 'GroupSnapshotAPIUnavailable',
  GroupSnapshotClassNotFound: 'GroupSnapshotClassNotFound',
  GroupSnapshotClassConflict: 'GroupSnapshotClassConflict',
  /** spec.hooks with consistency Group: hooks run around per-PVC snapshots only. */
  HooksWithGroup: 'HooksWithGroup',
  // One PVC is not snapshotted.
  PVCNotFound: 'PVCNotFound',
  PVCNotBound: 'PVCNotBound',
  VolumeNotCSI: 'VolumeNotCSI',
  DriverMismatch: 'DriverMismatch',
  NoDefaultSnapshotClass: 'NoDefaultSnapshotClass',
  // consistency Group: no group is taken (every selected PVC must be snapshottable).
  NoDefaultGroupSnapshotClass: 'NoDefaultGroupSnapshotClass',
  MixedDrivers: 'MixedDrivers',
  GroupNotTaken: 'GroupNotTaken',
  /** A PVC a group of the policy holds no longer exists; the groups holding it stay whole. */
  MemberPVCDeleted: 'MemberPVCDeleted',
  // Runs.
  RunStarted: 'RunStarted',
  NothingToSnapshot: 'NothingToSnapshot',
  RunSkipped: 'RunSkipped',
  MissedRuns: 'MissedRuns',
  InvalidRunNowToken: 'InvalidRunNowToken',
  SnapshotCreateFailed: 'SnapshotCreateFailed',
  // Snapshots and retention.
  SnapshotFailed: 'SnapshotFailed',
  SnapshotTimedOut: 'SnapshotTimedOut',
  PruningPaused: 'PruningPaused',
  Pruned: 'Pruned',
  PruneFailed: 'PruneFailed',
  // Groups (consistency Group), one Event per group.
  GroupCreated: 'GroupCreated',
  GroupCreateFailed: 'GroupCreateFailed',
  GroupReady: 'GroupReady',
  GroupFailed: 'GroupFailed',
  GroupTimedOut: 'GroupTimedOut',
  GroupPruned: 'GroupPruned',
  GroupPruneFailed: 'GroupPruneFailed',
  // Hooks.
  HookFailed: 'HookFailed',
  HooksNotRun: 'HooksNotRun',
  HooksRan: 'HooksRan',
  // Restore drills (spec.verify): Degraded while they cannot run, an Event for each result.
  VerifyDisabled: 'VerifyDisabled',
  InvalidVerifySchedule: 'InvalidVerifySchedule',
  VerificationStarted: 'VerificationStarted',
  VerificationSucceeded: 'VerificationSucceeded',
  VerificationFailed: 'VerificationFailed',
  VerificationTimedOut: 'VerificationTimedOut',
  VolumeMountFailed: 'VolumeMountFailed',
  ScratchRestoreFailed: 'ScratchRestoreFailed',
  NoSnapshotToVerify: 'NoSnapshotToVerify',
  // Conditions of a policy that works.
  Scheduled: 'Scheduled',
  AsExpected: 'AsExpected',
  Suspended: 'Suspended',
  NotSuspended: 'NotSuspended',
  /** Suspended=False after a suspension: its transition time is when the schedule resumed. */
  Resumed: 'Resumed',
} as const;
export type BackupPolicyReason = (typeof BackupPolicyReason)[keyof typeof BackupPolicyReason];

/** Reasons of a RestoreJob's Events and of its Ready condition. */
export const RestoreJobReason = {
  InvalidSpec: 'InvalidSpec',
  // Finding the source snapshot.
  SnapshotNotFound: 'SnapshotNotFound',
  SourceInOtherNamespace: 'SourceInOtherNamespace',
  NoSnapshots: 'NoSnapshots',
  NoSnapshotBefore: 'NoSnapshotBefore',
  SnapshotNotReady: 'SnapshotNotReady',
  SnapshotError: 'SnapshotError',
  SnapshotFailed: 'SnapshotFailed',
  SnapshotDeleting: 'SnapshotDeleting',
  // Restoring from a VolumeGroupSnapshot.
  PvcNameRequired: 'PvcNameRequired',
  GroupSnapshotsUnavailable: 'GroupSnapshotsUnavailable',
  GroupNotFound: 'GroupNotFound',
  MembersNotFound: 'MembersNotFound',
  MemberNotFound: 'MemberNotFound',
  MemberWithoutSource: 'MemberWithoutSource',
  TooManyMembers: 'TooManyMembers',
  TargetNameTooLong: 'TargetNameTooLong',
  DuplicateTarget: 'DuplicateTarget',
  // Building the target PVC.
  SizeTooSmall: 'SizeTooSmall',
  SizeUnknown: 'SizeUnknown',
  InvalidSize: 'InvalidSize',
  StorageClassNotFound: 'StorageClassNotFound',
  NoStorageClass: 'NoStorageClass',
  DriverMismatch: 'DriverMismatch',
  // The target PVC.
  TargetExists: 'TargetExists',
  TargetDeleted: 'TargetDeleted',
  Provisioning: 'Provisioning',
  Restored: 'Restored',
  VolumeLost: 'VolumeLost',
  // Mode Swap.
  SwapDisabled: 'SwapDisabled',
  WorkloadNotFound: 'WorkloadNotFound',
  WorkloadNotCovered: 'WorkloadNotCovered',
  WorkloadBusy: 'WorkloadBusy',
  ClaimNotBound: 'ClaimNotBound',
  Swapping: 'Swapping',
  Swapped: 'Swapped',
  RollingBack: 'RollingBack',
  RolledBack: 'RolledBack',
  Deleted: 'Deleted',
  // Events only.
  RestoreStarted: 'RestoreStarted',
  RestoreSucceeded: 'RestoreSucceeded',
} as const;
export type RestoreJobReason = (typeof RestoreJobReason)[keyof typeof RestoreJobReason];

import { DiskError, type DiskErrorCode } from '../../../csi/errors.js';
import { EcsError, isThrottling, isTransient } from './ecs.js';

/**
 * ECS error codes -> the CSI codes the services return, with a message that says what
 * happened and what to do. Codes an operation treats as success (a NotFound on delete) are
 * handled by the operation before it gets here.
 */

const authCodes =
  /^(SignatureDoesNotMatch|IncompleteSignature|InvalidAccessKeyId|InvalidAccessKeySecret|InvalidSecurityToken|Forbidden|NoPermission|InvalidTimeStamp|SignatureNonceUsed)/;

interface Mapping {
  code: DiskErrorCode;
  advice?: string;
}

function mapping(error: EcsError): Mapping {
  if (isThrottling(error)) {
    return {
      code: 'UNAVAILABLE',
      advice: 'ECS is throttling this API; the call is retried with backoff',
    };
  }
  if (authCodes.test(error.code)) {
    return {
      code: 'PERMISSION_DENIED',
      advice: /^(Forbidden|NoPermission)/.test(error.code)
        ? 'grant the RAM policy the ECS actions the disk driver needs'
        : 'ECS rejected the credentials: check that the access key secret (or STS token) belongs to the access key id, and the clock',
    };
  }
  if (error.code === 'CredentialsUnavailable') {
    return {
      code: 'UNAVAILABLE',
      advice: 'no credentials could be obtained from the configured source',
    };
  }
  if (isTransient(error))
    return { code: 'UNAVAILABLE', advice: 'a temporary ECS failure; retry later' };
  switch (error.code) {
    case 'IdempotentParameterMismatch':
      return {
        code: 'ALREADY_EXISTS',
        advice: 'the name was used before with different arguments',
      };
    case 'QuotaExceed.Snapshot':
      return {
        code: 'RESOURCE_EXHAUSTED',
        advice: 'the disk has reached its snapshot quota; delete old snapshots',
      };
    case 'IncorrectDiskStatus.CreatingSnapshot':
      return {
        code: 'ABORTED',
        advice: 'ECS takes one snapshot of a disk at a time; retry when the running one completes',
      };
    case 'IncorrectDiskStatus.Initializing':
      return { code: 'ABORTED', advice: 'the disk is still being created; retry later' };
    case 'IncorrectDiskStatus.NeverAttached':
    case 'IncorrectDiskStatus.NeverUsed':
      return {
        code: 'FAILED_PRECONDITION',
        advice:
          'ECS snapshots only disks that have been attached to an instance; mount the volume in a pod first',
      };
    case 'IncorrectDiskStatus':
    case 'IncorrectInstanceStatus':
      return { code: 'FAILED_PRECONDITION' };
    case 'SnapshotCreatedDisk':
      return { code: 'FAILED_PRECONDITION', advice: 'disks created from the snapshot still exist' };
    case 'SnapshotCreatedImage':
      return {
        code: 'FAILED_PRECONDITION',
        advice: 'a custom image was created from the snapshot; delete the image first',
      };
    case 'InvalidSnapshotId.NotReady':
      return {
        code: 'UNAVAILABLE',
        advice: 'the snapshot cannot be restored from yet; retry when it is ready',
      };
    case 'InvalidDiskId.NotFound':
    case 'InvalidSnapshotId.NotFound':
    case 'InvalidSnapshotGroup.NotFound':
      return { code: 'NOT_FOUND' };
    // Snapshot-consistent groups (CreateSnapshotGroup): rules about which disks go together.
    case 'NumberExceed.TooManyDisks':
    case 'CapacityExceed.TooManyDisks':
      return {
        code: 'INVALID_ARGUMENT',
        advice: 'ECS limits how many disks, and how many GiB in all, one group may hold',
      };
    case 'DiskCategory.OperationNotSupported':
      return {
        code: 'INVALID_ARGUMENT',
        advice: 'snapshot-consistent groups take only ESSD-family disks',
      };
    case 'InvalidDisk.DiskCategoryInconsistent':
      return {
        code: 'INVALID_ARGUMENT',
        advice: 'Regional ESSDs are grouped only with other Regional ESSDs',
      };
    case 'InvalidDiskIds.NotInSameZone':
      return { code: 'INVALID_ARGUMENT', advice: 'the disks of a group must be in one zone' };
    case 'Duplicate.TagKey':
      return { code: 'INVALID_ARGUMENT' };
    case 'InvalidDiskSize.TooSmall':
    case 'InvalidDiskSize.TooLarge':
      return { code: 'OUT_OF_RANGE' };
    case 'QuotaExceed.Disk':
    case 'Zone.NotOnSale':
    case 'OperationDenied.NoStock':
      return { code: 'RESOURCE_EXHAUSTED' };
  }
  if (/^(Invalid|Missing|MissingParameter|UnsupportedParameter)/.test(error.code))
    return { code: 'INVALID_ARGUMENT' };
  return { code: 'INTERNAL' };
}

/** `what` says what the driver was doing, e.g. "creating snapshot snapshot-1 of disk d-1". */
export function diskErrorFromEcs(error: EcsError, what: string): DiskError {
  const { code, advice } = mapping(error);
  const tail = advice ? `; ${advice}` : '';
  return new DiskError(
    code,
    `${what}: ECS ${error.action} failed with ${error.describe()}${tail}`,
    { cause: error },
  );
}

/** Rethrows an EcsError as a DiskError; anything else passes through unchanged. */
export function rethrowEcs(what: string): (error: unknown) => never {
  return (error: unknown) => {
    if (error instanceof EcsError) throw diskErrorFromEcs(error, what);
    throw error;
  };
}

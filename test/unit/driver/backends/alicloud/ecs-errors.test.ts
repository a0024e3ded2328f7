import { expect } from 'chai';
import {
  EcsError,
  isTransient,
  type EcsAction,
} from '../../../../../src/driver/backends/alicloud/ecs.js';
import { diskErrorFromEcs } from '../../../../../src/driver/backends/alicloud/ecs-errors.js';
import { toEcsError } from '../../../../../src/driver/backends/alicloud/sdk-client.js';

const ecsError = (code: string, statusCode?: number, action: EcsAction = 'CreateSnapshot') =>
  new EcsError(action, code, `message for ${code}`, { statusCode, requestId: 'REQ-1' });

describe('ECS error mapping', function () {
  const table: [string, number | undefined, string][] = [
    ['Throttling.User', 400, 'UNAVAILABLE'],
    ['Throttling.Api', 400, 'UNAVAILABLE'],
    ['Throttling', 503, 'UNAVAILABLE'],
    ['InternalError', 500, 'UNAVAILABLE'],
    ['ServiceUnavailable', 503, 'UNAVAILABLE'],
    ['NetworkError', undefined, 'UNAVAILABLE'],
    ['RequestTimeout', undefined, 'UNAVAILABLE'],
    ['IdempotentProcessing', 400, 'UNAVAILABLE'],
    ['IdempotentParameterMismatch', 400, 'ALREADY_EXISTS'],
    ['QuotaExceed.Snapshot', 403, 'RESOURCE_EXHAUSTED'],
    ['IncorrectDiskStatus.CreatingSnapshot', 403, 'ABORTED'],
    ['IncorrectDiskStatus.Initializing', 403, 'ABORTED'],
    ['IncorrectDiskStatus.NeverAttached', 403, 'FAILED_PRECONDITION'],
    ['SnapshotCreatedDisk', 403, 'FAILED_PRECONDITION'],
    ['SnapshotCreatedImage', 403, 'FAILED_PRECONDITION'],
    ['InvalidSnapshotId.NotFound', 404, 'NOT_FOUND'],
    ['InvalidDiskId.NotFound', 404, 'NOT_FOUND'],
    ['InvalidSnapshotId.NotReady', 403, 'UNAVAILABLE'],
    ['InvalidDiskSize.TooSmall', 400, 'OUT_OF_RANGE'],
    ['InvalidZoneId.NotFound', 404, 'INVALID_ARGUMENT'],
    ['MissingParameter', 400, 'INVALID_ARGUMENT'],
    ['SignatureDoesNotMatch', 400, 'PERMISSION_DENIED'],
    ['InvalidAccessKeyId.NotFound', 404, 'PERMISSION_DENIED'],
    ['Forbidden.RAM', 403, 'PERMISSION_DENIED'],
    ['SomethingNew', 400, 'INTERNAL'],
    // Snapshot-consistent groups.
    ['InvalidSnapshotGroup.NotFound', 404, 'NOT_FOUND'],
    ['NumberExceed.TooManyDisks', 403, 'INVALID_ARGUMENT'],
    ['CapacityExceed.TooManyDisks', 403, 'INVALID_ARGUMENT'],
    ['DiskCategory.OperationNotSupported', 400, 'INVALID_ARGUMENT'],
    ['InvalidDisk.DiskCategoryInconsistent', 403, 'INVALID_ARGUMENT'],
    ['InvalidDiskIds.NotInSameZone', 400, 'INVALID_ARGUMENT'],
    ['Duplicate.TagKey', 400, 'INVALID_ARGUMENT'],
    ['InvalidParameter.Name', 400, 'INVALID_ARGUMENT'],
    ['MissingParamter.InstanceId', 400, 'INVALID_ARGUMENT'],
  ];
  for (const [code, status, expected] of table) {
    it(`${code} -> ${expected}`, function () {
      const mapped = diskErrorFromEcs(
        ecsError(code, status),
        'creating snapshot snap-1 of disk d-1',
      );
      expect(mapped.code).to.equal(expected);
      expect(mapped.message).to.include(
        'creating snapshot snap-1 of disk d-1: ECS CreateSnapshot failed with',
      );
      expect(mapped.message).to.include(code);
      if (status !== undefined) expect(mapped.message).to.include('request id REQ-1');
    });
  }

  it('never treats throttling as permanent', function () {
    expect(isTransient(ecsError('Throttling.User', 400))).to.equal(true);
    expect(isTransient(ecsError('Throttling.Api', 200))).to.equal(true);
    expect(isTransient(ecsError('SnapshotCreatedDisk', 403))).to.equal(false);
  });

  it('explains rejected credentials without quoting them', function () {
    const mapped = diskErrorFromEcs(ecsError('SignatureDoesNotMatch', 400), 'checking access');
    expect(mapped.message).to.include('access key secret');
  });

  describe('toEcsError (what the SDK throws)', function () {
    it('keeps code, status, request id and retry-after of an API error', function () {
      const sdkError = Object.assign(new Error('code: 400, denied request id: R'), {
        name: 'ThrottlingError',
        code: 'Throttling.User',
        statusCode: 400,
        requestId: 'R',
        retryAfter: 1500,
        data: { Message: 'Request was denied due to user flow control.' },
      });
      const error = toEcsError('CreateSnapshot', sdkError);
      expect(error).to.include({
        code: 'Throttling.User',
        message: 'Request was denied due to user flow control.',
      });
      expect(error.statusCode).to.equal(400);
      expect(error.retryAfterMs).to.equal(1500);
    });

    it('classifies connection failures and timeouts as transient', function () {
      const refused = toEcsError(
        'DescribeDisks',
        Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      );
      expect(refused.code).to.equal('NetworkError');
      const slow = toEcsError(
        'DescribeDisks',
        Object.assign(new Error('ReadTimeout(10000). POST / failed.'), {
          name: 'RequestTimeoutError',
        }),
      );
      expect(slow.code).to.equal('RequestTimeout');
      expect(isTransient(refused) && isTransient(slow)).to.equal(true);
    });
  });
});

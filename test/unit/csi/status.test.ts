import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';

import { toServiceError } from '../../../src/csi/status.js';
import { DiskError, type DiskErrorCode } from '../../../src/csi/errors.js';

describe('csi: gRPC status of thrown errors', function () {
  const codes: DiskErrorCode[] = [
    'INVALID_ARGUMENT',
    'NOT_FOUND',
    'ALREADY_EXISTS',
    'FAILED_PRECONDITION',
    'OUT_OF_RANGE',
    'RESOURCE_EXHAUSTED',
    'ABORTED',
    'UNAVAILABLE',
    'INTERNAL',
  ];
  for (const code of codes) {
    it(`DiskError ${code} becomes gRPC ${code} with its message`, function () {
      const status = toServiceError(new DiskError(code, `reason for ${code}`));
      expect(status.code).to.equal(grpc.status[code]);
      expect(status.details).to.equal(`reason for ${code}`);
    });
  }

  it('any other error is INTERNAL with its message', function () {
    const status = toServiceError(new Error('disk on fire'));
    expect(status.code).to.equal(grpc.status.INTERNAL);
    expect(status.details).to.equal('disk on fire');
  });
});

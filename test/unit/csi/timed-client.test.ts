import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { timedCsiClient, type CallTimer } from '../../../src/csi/client.js';

describe('timedCsiClient', function () {
  function recordingTimer(observed: string[]): CallTimer {
    return {
      startTimer:
        ({ driver, method }) =>
        ({ code }) =>
          observed.push(`${driver} ${method} ${code}`),
    };
  }

  it('observes each call by method and gRPC status code name, passing results and errors through', async function () {
    const refusal = Object.assign(new Error('snapshot has dependent disks'), {
      code: grpc.status.FAILED_PRECONDITION,
      details: 'snapshot has dependent disks',
      metadata: new grpc.Metadata(),
    });
    const client = {
      createSnapshot: async (request: { name: string }) => ({ snapshotId: `id-${request.name}` }),
      deleteSnapshot: async () => {
        throw refusal;
      },
    };
    const observed: string[] = [];
    const timed = timedCsiClient(client, 'local.snapback.dev', recordingTimer(observed));

    expect(await timed.createSnapshot({ name: 'a' })).to.deep.equal({ snapshotId: 'id-a' });
    const error = await timed.deleteSnapshot().catch((e: unknown) => e);
    expect(error).to.equal(refusal);
    expect(observed).to.deep.equal([
      'local.snapback.dev createSnapshot OK',
      'local.snapback.dev deleteSnapshot FAILED_PRECONDITION',
    ]);
  });
});

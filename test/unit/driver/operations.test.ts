import { expect } from 'chai';

import type { DiskError } from '../../../src/csi/errors.js';
import { OperationLocks } from '../../../src/driver/operations.js';

describe('driver: one operation per volume or snapshot', function () {
  it('answers a second call on a busy key with ABORTED and frees the key afterwards', async function () {
    const locks = new OperationLocks();
    let release!: () => void;
    const first = locks.run(
      ['volume/a'],
      () => new Promise<string>((r) => (release = () => r('done'))),
    );
    let error: unknown;
    await locks.run(['volume/b', 'volume/a'], async () => 'never').catch((e) => (error = e));
    expect((error as DiskError).code).to.equal('ABORTED');
    expect((error as DiskError).message).to.match(/volume\/a/);
    release();
    expect(await first).to.equal('done');
    expect(await locks.run(['volume/a'], async () => 'again')).to.equal('again');
  });

  it('frees the keys when the operation fails', async function () {
    const locks = new OperationLocks();
    await locks
      .run(['snapshot/s'], async () => {
        throw new Error('boom');
      })
      .catch(() => undefined);
    expect(await locks.run(['snapshot/s'], async () => 1)).to.equal(1);
  });

  it('runs operations on different keys side by side', async function () {
    const locks = new OperationLocks();
    let release!: () => void;
    const slow = locks.run(['volume/a'], () => new Promise<void>((r) => (release = r)));
    expect(await locks.run(['volume/b'], async () => 'b')).to.equal('b');
    release();
    await slow;
  });
});

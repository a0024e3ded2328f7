import { expect } from 'chai';
import sinon from 'sinon';
import { silentLogger } from '../../../../../src/observability/logger.js';
import {
  EcsError,
  type EcsApi,
  type EcsAction,
} from '../../../../../src/driver/backends/alicloud/ecs.js';
import {
  RateLimitedEcsApi,
  TokenBucket,
  backoffDelay,
  type RetryPolicy,
} from '../../../../../src/driver/backends/alicloud/throttle.js';

const policy: RetryPolicy = { baseDelayMs: 200, maxDelayMs: 10_000, budgetMs: 30_000 };

/** An EcsApi whose DeleteSnapshot answers from a script, recording when each call came. */
function scriptedApi(script: (EcsError | 'ok')[], calls: number[]): EcsApi {
  const unused = () => Promise.reject(new Error('not scripted'));
  return {
    createSnapshot: unused,
    describeSnapshots: unused,
    createDisk: unused,
    describeDisks: unused,
    deleteDisk: unused,
    resizeDisk: unused,
    createSnapshotGroup: unused,
    describeSnapshotGroups: unused,
    deleteSnapshotGroup: unused,
    async deleteSnapshot() {
      calls.push(Date.now());
      const next = script.shift() ?? 'ok';
      if (next !== 'ok') throw next;
    },
  };
}

const throttling = (retryAfterMs?: number) =>
  new EcsError(
    'DeleteSnapshot',
    'Throttling.User',
    'Request was denied due to user flow control.',
    {
      statusCode: 400,
      retryAfterMs,
    },
  );
const serverError = () =>
  new EcsError('DeleteSnapshot', 'InternalError', 'boom', { statusCode: 500 });

describe('ECS flow control', function () {
  let clock: sinon.SinonFakeTimers;

  beforeEach(function () {
    clock = sinon.useFakeTimers({ now: Date.parse('2026-01-01T00:00:00Z') });
  });

  afterEach(function () {
    clock.restore();
  });

  describe('backoffDelay', function () {
    it('grows exponentially with equal jitter and stops at the cap', function () {
      expect(backoffDelay(0, policy, undefined, () => 0)).to.equal(100);
      expect(backoffDelay(0, policy, undefined, () => 0.999)).to.equal(199);
      expect(backoffDelay(3, policy, undefined, () => 0)).to.equal(800);
      expect(backoffDelay(20, policy, undefined, () => 0)).to.equal(5000);
      expect(backoffDelay(20, policy, undefined, () => 0.999)).to.be.lessThan(10_000);
    });

    it('honours retryAfter, adding a little jitter', function () {
      expect(backoffDelay(5, policy, 1500, () => 0)).to.equal(1500);
      expect(backoffDelay(5, policy, 1500, () => 0.999)).to.equal(1599);
    });
  });

  describe('TokenBucket', function () {
    it('hands out the burst at once, then the rate, in FIFO order', async function () {
      const bucket = new TokenBucket(10, 10);
      const granted: [number, number][] = [];
      const start = Date.now();
      const all = Array.from({ length: 25 }, (_, i) =>
        bucket.take().then(() => granted.push([i, Date.now() - start])),
      );
      await clock.tickAsync(0);
      expect(granted).to.have.length(10);
      await clock.tickAsync(1000);
      expect(granted).to.have.length(20);
      await clock.tickAsync(500);
      await Promise.all(all);
      expect(granted.map(([i]) => i)).to.deep.equal([...Array(25).keys()]);
      expect(granted[24]![1]).to.equal(1500);
    });

    it('hands out nothing while paused, and only one request right after the pause', async function () {
      const bucket = new TokenBucket(10, 10);
      bucket.pauseUntil(Date.now() + 2000);
      let granted = 0;
      for (let i = 0; i < 3; i++) void bucket.take().then(() => granted++);
      await clock.tickAsync(1999);
      expect(granted).to.equal(0);
      await clock.tickAsync(1);
      expect(granted).to.equal(1);
      await clock.tickAsync(200);
      expect(granted).to.equal(3);
    });

    it('rejects waiters when closed', async function () {
      const bucket = new TokenBucket(1, 1);
      await bucket.take();
      const waiting = bucket.take();
      bucket.close();
      const error = await waiting.catch((e: Error) => e);
      expect((error as Error).message).to.equal('the ECS client is closed');
    });
  });

  describe('RateLimitedEcsApi', function () {
    function limited(
      script: (EcsError | 'ok')[],
      calls: number[],
      limits: Partial<Record<EcsAction, number>> = {},
    ) {
      return new RateLimitedEcsApi(scriptedApi(script, calls), {
        limits,
        retry: policy,
        logger: silentLogger(),
        random: () => 0,
      });
    }

    it('retries throttling no sooner than ECS asked, then succeeds', async function () {
      const calls: number[] = [];
      const api = limited([throttling(3000), throttling(3000), 'ok'], calls);
      const start = Date.now();
      let done = false;
      void api.deleteSnapshot({ snapshotId: 's-1', force: false }).then(() => (done = true));
      await clock.tickAsync(2999);
      expect(calls.map((t) => t - start)).to.deep.equal([0]);
      await clock.tickAsync(10_000);
      expect(done).to.equal(true);
      expect(calls.map((t) => t - start)).to.deep.equal([0, 3000, 6000]);
    });

    it('pauses the whole API after a throttle, so other callers wait too', async function () {
      const calls: number[] = [];
      const api = limited([throttling(2000)], calls);
      const start = Date.now();
      void api.deleteSnapshot({ snapshotId: 's-1', force: false });
      await clock.tickAsync(1);
      void api.deleteSnapshot({ snapshotId: 's-2', force: false });
      await clock.tickAsync(1000);
      expect(calls.map((t) => t - start)).to.deep.equal([0]);
      await clock.tickAsync(2000);
      expect(calls).to.have.length(3);
      expect(calls.every((t) => t === start || t - start >= 2000)).to.equal(true);
    });

    it('backs off exponentially on 5xx', async function () {
      const calls: number[] = [];
      const api = limited([serverError(), serverError(), serverError(), 'ok'], calls);
      const start = Date.now();
      const done = api.deleteSnapshot({ snapshotId: 's-1', force: false });
      await clock.tickAsync(60_000);
      await done;
      expect(calls.map((t) => t - start)).to.deep.equal([0, 100, 300, 700]);
    });

    it('surfaces throttling as the transient error it is once the budget is spent', async function () {
      const calls: number[] = [];
      const api = limited(
        Array.from({ length: 100 }, () => throttling(10_000)),
        calls,
      );
      const start = Date.now();
      const outcome = api
        .deleteSnapshot({ snapshotId: 's-1', force: false })
        .catch((e: unknown) => e);
      await clock.tickAsync(120_000);
      const error = (await outcome) as EcsError;
      expect(error).to.be.instanceOf(EcsError);
      expect(error.code).to.equal('Throttling.User');
      // 30 s budget, 10 s retry-after: attempts at 0, 10, 20 and 30 s, then no more.
      expect(calls.map((t) => t - start)).to.deep.equal([0, 10_000, 20_000, 30_000]);
    });

    it('reports each attempt as success, throttled or error to the metrics hook', async function () {
      const outcomes: string[] = [];
      const api = new RateLimitedEcsApi(scriptedApi([throttling(1000), serverError(), 'ok'], []), {
        retry: policy,
        logger: silentLogger(),
        random: () => 0,
        onCall: (action, outcome) => outcomes.push(`${action}:${outcome}`),
      });
      const done = api.deleteSnapshot({ snapshotId: 's-1', force: false });
      await clock.tickAsync(10_000);
      await done;
      expect(outcomes).to.deep.equal([
        'DeleteSnapshot:throttled',
        'DeleteSnapshot:error',
        'DeleteSnapshot:success',
      ]);
    });

    it('does not retry an error that will not change', async function () {
      const calls: number[] = [];
      const api = limited(
        [new EcsError('DeleteSnapshot', 'SnapshotCreatedDisk', 'has disks', { statusCode: 403 })],
        calls,
      );
      const error = (await api
        .deleteSnapshot({ snapshotId: 's-1', force: false })
        .catch((e: unknown) => e)) as EcsError;
      expect(error.code).to.equal('SnapshotCreatedDisk');
      expect(calls).to.have.length(1);
    });

    it('keeps each API to its own rate', async function () {
      const calls: number[] = [];
      const api = limited([], calls, { DeleteSnapshot: 5 });
      const start = Date.now();
      const all = Array.from({ length: 15 }, (_, i) =>
        api.deleteSnapshot({ snapshotId: `s-${i}`, force: false }),
      );
      await clock.tickAsync(5000);
      await Promise.all(all);
      const offsets = calls.map((t) => t - start);
      expect(offsets.filter((t) => t === 0)).to.have.length(5);
      expect(offsets[14]).to.equal(2000);
    });
  });
});

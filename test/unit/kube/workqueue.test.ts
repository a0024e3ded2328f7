import { expect } from 'chai';
import sinon from 'sinon';
import {
  BucketRateLimiter,
  ItemExponentialRateLimiter,
  MaxOfRateLimiter,
  TokenBucket,
  defaultControllerRateLimiter,
} from '../../../src/kube/rate-limit.js';
import { WorkQueue } from '../../../src/kube/workqueue.js';

/** Resolves `get()` if an item is ready without letting timers run. */
async function tryGet(queue: WorkQueue): Promise<string | undefined> {
  let got: string | undefined;
  let settled = false;
  const pending = queue.get().then((item) => {
    got = item;
    settled = true;
  });
  await Promise.resolve();
  await Promise.resolve();
  if (!settled) {
    // leave the getter registered: the caller decides whether to shut the queue down
    void pending;
    return undefined;
  }
  return got;
}

describe('WorkQueue', function () {
  let clock: sinon.SinonFakeTimers;

  beforeEach(function () {
    clock = sinon.useFakeTimers({ now: 0 });
  });

  afterEach(function () {
    clock.restore();
  });

  it('hands out items in order and deduplicates an item queued twice', async function () {
    const queue = new WorkQueue();
    queue.add('a');
    queue.add('b');
    queue.add('a');
    expect(queue.length).to.equal(2);
    expect(await queue.get()).to.equal('a');
    expect(await queue.get()).to.equal('b');
    expect(queue.length).to.equal(0);
  });

  it('never hands the same item to two workers at once, and re-runs it if added while in flight', async function () {
    const queue = new WorkQueue();
    queue.add('a');
    const first = await queue.get();
    expect(first).to.equal('a');
    queue.add('a');
    queue.add('a');
    expect(queue.length, 'held back while in flight').to.equal(0);
    expect(await tryGet(queue)).to.equal(undefined);
    queue.done('a');
    // the waiting getter above received it
    expect(queue.processingLength).to.equal(1);
    expect(queue.length).to.equal(0);
    queue.done('a');
    expect(queue.processingLength).to.equal(0);
    queue.add('a');
    expect(await queue.get()).to.equal('a');
  });

  it('does not re-run an item that was not added again while in flight', async function () {
    const queue = new WorkQueue();
    queue.add('a');
    await queue.get();
    queue.done('a');
    expect(queue.length).to.equal(0);
    expect(await tryGet(queue)).to.equal(undefined);
    queue.shutDown();
  });

  it('wakes a waiting worker when an item arrives', async function () {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.add('x');
    expect(await waiting).to.equal('x');
  });

  it('addAfter delivers after the delay and keeps only the earliest time per item', async function () {
    const queue = new WorkQueue();
    queue.addAfter('a', 1000);
    queue.addAfter('a', 300);
    queue.addAfter('a', 5000);
    expect(queue.delayedLength).to.equal(1);
    await clock.tickAsync(299);
    expect(queue.length).to.equal(0);
    await clock.tickAsync(1);
    expect(queue.length).to.equal(1);
    expect(await queue.get()).to.equal('a');
    queue.done('a');
    await clock.tickAsync(10_000);
    expect(queue.length, 'the later timers were dropped').to.equal(0);
  });

  it('backs off exponentially per item and forget resets it', async function () {
    const queue = new WorkQueue(new ItemExponentialRateLimiter(5, 1_000_000));
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const start = Date.now();
      queue.addRateLimited('k');
      while (queue.length === 0) await clock.tickAsync(1);
      delays.push(Date.now() - start);
      await queue.get();
      queue.done('k');
    }
    expect(delays).to.deep.equal([5, 10, 20, 40, 80]);
    expect(queue.numRequeues('k')).to.equal(5);
    queue.forget('k');
    expect(queue.numRequeues('k')).to.equal(0);
    const start = Date.now();
    queue.addRateLimited('k');
    while (queue.length === 0) await clock.tickAsync(1);
    expect(Date.now() - start).to.equal(5);
  });

  it('keeps the backoff of one key independent of another', function () {
    const limiter = new ItemExponentialRateLimiter(1000, 300_000);
    expect([limiter.when('a'), limiter.when('a'), limiter.when('a')]).to.deep.equal([
      1000, 2000, 4000,
    ]);
    expect(limiter.when('b')).to.equal(1000);
    for (let i = 0; i < 20; i++) limiter.when('a');
    expect(limiter.when('a'), 'capped').to.equal(300_000);
  });

  it('shutDown releases waiting workers and drops delayed items', async function () {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.addAfter('later', 100);
    queue.shutDown();
    expect(await waiting).to.equal(undefined);
    await clock.tickAsync(200);
    expect(queue.length).to.equal(0);
    queue.add('x');
    expect(await queue.get()).to.equal(undefined);
  });
});

describe('rate limiters', function () {
  it('a token bucket allows a burst, then one token per 1/qps seconds', function () {
    let now = 0;
    const bucket = new TokenBucket(10, 3, () => now);
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).to.deep.equal([0, 0, 0]);
    expect(bucket.reserve()).to.equal(100);
    expect(bucket.reserve(), 'reservations queue up').to.equal(200);
    now = 1000;
    expect(bucket.reserve()).to.equal(0);
  });

  it('tryTake never goes into debt', function () {
    let now = 0;
    const bucket = new TokenBucket(1, 2, () => now);
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).to.deep.equal([
      true,
      true,
      false,
    ]);
    now = 999;
    expect(bucket.tryTake()).to.equal(false);
    now = 1000;
    expect(bucket.tryTake()).to.equal(true);
  });

  it('the default controller limiter is the max of per-item backoff and the overall bucket', function () {
    const now = 0;
    const limiter = new MaxOfRateLimiter(
      new ItemExponentialRateLimiter(5, 1_000_000),
      new BucketRateLimiter(10, 2, () => now),
    );
    expect(limiter.when('a')).to.equal(5);
    expect(limiter.when('b')).to.equal(5);
    expect(limiter.when('c'), 'the bucket is empty').to.equal(100);
    expect(limiter.numRequeues('a')).to.equal(1);
    limiter.forget('a');
    expect(limiter.numRequeues('a')).to.equal(0);
    expect(
      defaultControllerRateLimiter({ baseDelayMs: 1000, maxDelayMs: 300_000 }).when('x'),
    ).to.equal(1000);
  });
});

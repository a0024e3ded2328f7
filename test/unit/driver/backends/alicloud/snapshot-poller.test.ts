import { expect } from 'chai';
import sinon from 'sinon';
import { silentLogger } from '../../../../../src/observability/logger.js';
import {
  EcsError,
  type EcsApi,
  type EcsSnapshot,
} from '../../../../../src/driver/backends/alicloud/ecs.js';
import { SnapshotPoller } from '../../../../../src/driver/backends/alicloud/snapshot-poller.js';

function snapshot(id: string, patch: Partial<EcsSnapshot> = {}): EcsSnapshot {
  return {
    id,
    name: '',
    sourceDiskId: 'd-1',
    sourceDiskSizeGiB: 20,
    status: 'progressing',
    progress: '0%',
    creationTime: '',
    available: false,
    usage: 'none',
    tags: {},
    ...patch,
  };
}

/** A DescribeSnapshots that answers from a map and records each call's ids. */
function fakeApi(
  state: Map<string, EcsSnapshot>,
  calls: string[][],
  failNext = { count: 0 },
): EcsApi {
  const unused = () => Promise.reject(new Error('unused'));
  return {
    createSnapshot: unused,
    deleteSnapshot: unused,
    createDisk: unused,
    describeDisks: unused,
    deleteDisk: unused,
    resizeDisk: unused,
    createSnapshotGroup: unused,
    describeSnapshotGroups: unused,
    deleteSnapshotGroup: unused,
    async describeSnapshots(input) {
      const ids = input.snapshotIds ?? [];
      calls.push(ids);
      expect(ids.length).to.be.at.most(100);
      expect(input.maxResults).to.equal(100);
      if (failNext.count > 0) {
        failNext.count -= 1;
        throw new EcsError('DescribeSnapshots', 'ServiceUnavailable', 'down', { statusCode: 503 });
      }
      return {
        items: ids.map((id) => state.get(id)).filter((s): s is EcsSnapshot => s !== undefined),
      };
    },
  };
}

describe('SnapshotPoller', function () {
  let clock: sinon.SinonFakeTimers;
  let state: Map<string, EcsSnapshot>;
  let calls: string[][];

  beforeEach(function () {
    clock = sinon.useFakeTimers();
    state = new Map();
    calls = [];
  });

  afterEach(function () {
    clock.restore();
  });

  const poller = (failNext?: { count: number }) =>
    new SnapshotPoller(fakeApi(state, calls, failNext), {
      intervalMs: 1000,
      batchWindowMs: 20,
      logger: silentLogger(),
    });

  it('coalesces lookups made together into one call per 100 ids', async function () {
    for (let i = 0; i < 150; i++) state.set(`s-${i}`, snapshot(`s-${i}`));
    const p = poller();
    const results = Promise.all(Array.from({ length: 150 }, (_, i) => p.lookup(`s-${i}`)));
    void p.lookup('s-missing');
    await clock.tickAsync(20);
    const found = await results;
    expect(found.every((s, i) => s?.id === `s-${i}`)).to.equal(true);
    expect(calls.map((c) => c.length).sort()).to.deep.equal([100, 51]);
    p.close();
  });

  it('polls every watched snapshot in one call per tick until each is done', async function () {
    for (let i = 0; i < 5; i++) state.set(`s-${i}`, snapshot(`s-${i}`));
    const p = poller();
    const done: string[] = [];
    for (let i = 0; i < 5; i++) {
      void p
        .watch(`s-${i}`, (s) => s?.available === true, 60_000)
        .then((r) => done.push(`${r.snapshot?.id}:${r.satisfied}`));
    }
    await clock.tickAsync(1000);
    expect(calls).to.have.length(1);
    expect(p.latest('s-0')?.snapshot?.available).to.equal(false);
    state.set('s-1', snapshot('s-1', { available: true }));
    state.set('s-3', snapshot('s-3', { available: true }));
    await clock.tickAsync(1000);
    expect(done).to.deep.equal(['s-1:true', 's-3:true']);
    expect(p.latest('s-1')).to.equal(undefined);
    for (const id of ['s-0', 's-2', 's-4']) state.set(id, snapshot(id, { available: true }));
    await clock.tickAsync(1000);
    expect(done).to.have.length(5);
    expect(calls.map((c) => c.length)).to.deep.equal([5, 5, 3]);
    await clock.tickAsync(10_000);
    expect(calls).to.have.length(3);
    p.close();
  });

  it('reports a snapshot that disappears, and ends a watch unsatisfied at its deadline', async function () {
    state.set('s-gone', snapshot('s-gone'));
    state.set('s-slow', snapshot('s-slow'));
    const p = poller();
    const gone = p.watch('s-gone', (s) => !s || s.available, 60_000);
    const slow = p.watch('s-slow', (s) => !s || s.available, 2500);
    await clock.tickAsync(1000);
    state.delete('s-gone');
    await clock.tickAsync(1000);
    expect(await gone).to.deep.equal({ snapshot: undefined, satisfied: true });
    await clock.tickAsync(1000);
    const result = await slow;
    expect(result.satisfied).to.equal(false);
    expect(result.snapshot?.id).to.equal('s-slow');
    p.close();
  });

  it('rejects lookups when ECS fails, but keeps watching through the failure', async function () {
    state.set('s-1', snapshot('s-1'));
    const p = poller({ count: 1 });
    const watched = p.watch('s-1', (s) => s?.available === true, 60_000);
    const lookedUp = p.lookup('s-1').catch((e: unknown) => e);
    await clock.tickAsync(20);
    expect(((await lookedUp) as EcsError).code).to.equal('ServiceUnavailable');
    state.set('s-1', snapshot('s-1', { available: true }));
    await clock.tickAsync(1000);
    expect((await watched).satisfied).to.equal(true);
    p.close();
  });
});

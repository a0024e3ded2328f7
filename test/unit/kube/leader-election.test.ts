import { expect } from 'chai';
import sinon from 'sinon';
import type { KubeClient } from '../../../src/kube/client.js';
import { LeaderElector, type Lease } from '../../../src/kube/leader-election.js';
import { Leases } from '../../../src/kube/resource.js';
import { FakeKubeClient } from '../../support/fakes/kube-client.js';

/** A client whose requests fail while `cut` is set, as if the network were partitioned. */
function partitionable(client: KubeClient): { client: KubeClient; cut: boolean } {
  const state = { cut: false, client: undefined as unknown as KubeClient };
  state.client = new Proxy(client, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (state.cut) return Promise.reject(new Error('connect ETIMEDOUT'));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return state;
}

interface Timeline {
  leading: Set<string>;
  maxConcurrent: number;
  log: string[];
}

function candidate(client: KubeClient, identity: string, timeline: Timeline) {
  const stop = new AbortController();
  const elector = new LeaderElector({
    client,
    namespace: 'kube-system',
    name: 'snapback',
    identity,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    onStartedLeading: () => {
      timeline.leading.add(identity);
      timeline.maxConcurrent = Math.max(timeline.maxConcurrent, timeline.leading.size);
      timeline.log.push(`${Date.now()} ${identity} started`);
    },
    onStoppedLeading: () => {
      timeline.leading.delete(identity);
      timeline.log.push(`${Date.now()} ${identity} stopped`);
    },
  });
  const result = elector.run(stop.signal);
  return { elector, stop, result };
}

describe('LeaderElector', function () {
  let clock: sinon.SinonFakeTimers;
  let api: FakeKubeClient;
  let timeline: Timeline;

  beforeEach(function () {
    clock = sinon.useFakeTimers({
      now: 1_700_000_000_000,
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'],
    });
    api = new FakeKubeClient();
    timeline = { leading: new Set(), maxConcurrent: 0, log: [] };
  });

  afterEach(function () {
    clock.restore();
  });

  const lease = () => api.peek<Lease>(Leases, 'snapback', 'kube-system');

  it('acquires a free lease, records itself as holder and renews it', async function () {
    const a = candidate(api, 'a', timeline);
    await clock.tickAsync(100);
    expect(a.elector.isLeader()).to.equal(true);
    expect([...timeline.leading]).to.deep.equal(['a']);
    const first = lease()!.spec!;
    expect(first).to.include({
      holderIdentity: 'a',
      leaseDurationSeconds: 15,
      leaseTransitions: 0,
    });
    expect(first.renewTime).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    await clock.tickAsync(5_000);
    expect(lease()!.spec!.renewTime).to.not.equal(first.renewTime);
    expect(lease()!.spec!.acquireTime).to.equal(first.acquireTime);
    a.stop.abort();
    expect(await a.result).to.equal('stopped');
  });

  it('a second candidate waits while the leader renews, and takes over at once after a release', async function () {
    const a = candidate(api, 'a', timeline);
    await clock.tickAsync(100);
    const b = candidate(api, 'b', timeline);
    await clock.tickAsync(60_000);
    expect(b.elector.isLeader()).to.equal(false);
    expect(b.elector.leader).to.equal('a');
    a.stop.abort();
    expect(await a.result).to.equal('stopped');
    expect(lease()!.spec!.holderIdentity, 'released').to.equal('');
    await clock.tickAsync(2_500);
    expect(b.elector.isLeader()).to.equal(true);
    expect(lease()!.spec).to.include({ holderIdentity: 'b', leaseTransitions: 1 });
    expect(timeline.maxConcurrent).to.equal(1);
    b.stop.abort();
    await b.result;
  });

  it('a partitioned leader steps down before anyone else can take the lease', async function () {
    const link = partitionable(api);
    const a = candidate(link.client, 'a', timeline);
    await clock.tickAsync(100);
    const b = candidate(api, 'b', timeline);
    await clock.tickAsync(10_000);
    link.cut = true;
    const cutAt = Date.now();
    // step in small increments so an overlap, if any, would be observed
    for (let elapsed = 0; elapsed < 40_000; elapsed += 100) {
      await clock.tickAsync(100);
      expect(timeline.leading.size, timeline.log.join('\n')).to.be.at.most(1);
    }
    expect(await a.result).to.equal('lost');
    expect(b.elector.isLeader()).to.equal(true);
    const stoppedAt = Number(
      timeline.log.find((line) => line.endsWith('a stopped'))!.split(' ')[0],
    );
    const startedAt = Number(
      timeline.log.find((line) => line.endsWith('b started'))!.split(' ')[0],
    );
    expect(stoppedAt - cutAt, 'a gives up within the renew deadline').to.be.at.most(10_000);
    expect(startedAt - stoppedAt, 'b starts only after a stopped').to.be.greaterThan(0);
    b.stop.abort();
    await b.result;
  });

  it('steps down when another holder took the lease over', async function () {
    const a = candidate(api, 'a', timeline);
    await clock.tickAsync(100);
    const current = lease()!;
    await api.replace(Leases, {
      ...current,
      spec: { ...current.spec, holderIdentity: 'intruder' },
    });
    await clock.tickAsync(3_000);
    expect(await a.result).to.equal('lost');
    expect(timeline.leading.size).to.equal(0);
  });

  it('rejects timings that cannot be safe', function () {
    const base = {
      client: api,
      namespace: 'n',
      name: 'l',
      identity: 'x',
      onStartedLeading: () => undefined,
    };
    expect(
      () => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }),
    ).to.throw(/renew deadline/);
    expect(
      () => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }),
    ).to.throw(/retry period/);
  });
});

import { expect } from 'chai';
import type { KubeClient } from '../../../src/kube/client.js';
import { FakeKubeClient } from '../../../src/kube/fake-client.js';
import { Manager, type Runnable } from '../../../src/kube/manager.js';
import { ConfigMaps } from '../../../src/kube/resource.js';
import { eventually } from './eventually.js';

class Recorder implements Runnable {
  readonly log: string[] = [];
  running = false;

  async start(): Promise<void> {
    this.running = true;
    this.log.push('start');
  }

  async stop(): Promise<void> {
    this.running = false;
    this.log.push('stop');
  }
}

function partitionable(client: KubeClient): { client: KubeClient; cut: boolean } {
  const state = { cut: false, client: undefined as unknown as KubeClient };
  state.client = new Proxy(client, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function' || property === 'watch') return value;
      return (...args: unknown[]) =>
        state.cut
          ? Promise.reject(new Error('partitioned'))
          : (value as (...a: unknown[]) => unknown).apply(target, args);
    },
  });
  return state;
}

describe('Manager', function () {
  it('without leader election: starts runnables once the caches synced, stops them on stop()', async function () {
    const client = new FakeKubeClient();
    const manager = new Manager({ client });
    const informer = manager.informers.informer(ConfigMaps);
    const runnable = new Recorder();
    let syncedAtStart: boolean | undefined;
    manager.add({
      start: async () => {
        syncedAtStart = informer.hasSynced();
        await runnable.start();
      },
      stop: () => runnable.stop(),
    });
    const done = manager.run();
    await eventually(() => runnable.running);
    expect(syncedAtStart).to.equal(true);
    expect(manager.isLeader()).to.equal(true);
    expect(await manager.stop()).to.equal('stopped');
    expect(await done).to.equal('stopped');
    expect(runnable.log).to.deep.equal(['start', 'stop']);
    expect(client.openWatches, 'informers stopped').to.equal(0);
  });

  it('with leader election: only the leader runs, and losing the lease stops the work and ends the manager', async function () {
    const api = new FakeKubeClient();
    const election = {
      namespace: 'ns',
      name: 'lease',
      leaseDurationMs: 600,
      renewDeadlineMs: 400,
      retryPeriodMs: 50,
    };
    const linkA = partitionable(api);
    const a = new Recorder();
    const b = new Recorder();
    const managerA = new Manager({
      client: linkA.client,
      leaderElection: { ...election, identity: 'a' },
    }).add(a);
    const doneA = managerA.run();
    await eventually(() => a.running);
    const managerB = new Manager({
      client: api,
      leaderElection: { ...election, identity: 'b' },
    }).add(b);
    const doneB = managerB.run();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(b.running, 'the standby does not run').to.equal(false);

    let overlap = false;
    const watch = setInterval(() => (overlap ||= a.running && b.running), 5);
    linkA.cut = true;
    expect(await doneA).to.equal('lost');
    expect(a.log).to.deep.equal(['start', 'stop']);
    await eventually(
      () => b.running,
      () => `b: ${b.log.join(',')}`,
      5_000,
    );
    clearInterval(watch);
    expect(overlap).to.equal(false);
    await managerB.stop();
    expect(await doneB).to.equal('stopped');
  });
});

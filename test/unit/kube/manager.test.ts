import { expect } from 'chai';
import sinon from 'sinon';
import type { KubeClient } from '../../../src/kube/client.js';
import { Controller } from '../../../src/kube/controller.js';
import { LeadershipLostError, Manager, type Runnable } from '../../../src/kube/manager.js';
import { ConfigMaps, Leases, type KubeObject } from '../../../src/kube/resource.js';
import { eventually } from './eventually.js';
import { FakeKubeClient } from '../../support/fakes/kube-client.js';

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

  describe('losing the lease in the middle of a reconcile (fake clock)', function () {
    let clock: sinon.SinonFakeTimers;

    beforeEach(function () {
      clock = sinon.useFakeTimers({
        now: 1_700_000_000_000,
        toFake: [
          'setTimeout',
          'clearTimeout',
          'setInterval',
          'clearInterval',
          'Date',
          'performance',
        ],
      });
    });

    afterEach(function () {
      clock.restore();
    });

    /** Advances the fake clock in small steps until `check` holds. */
    async function until(check: () => boolean, what: string, limitMs = 60_000): Promise<void> {
      for (let waited = 0; !check(); waited += 10) {
        if (waited > limitMs) throw new Error(`not within ${limitMs} ms of fake time: ${what}`);
        await clock.tickAsync(10);
      }
    }

    it('aborts the reconcile and its CSI call, refuses its later writes, starts no new reconcile, and ends with lost', async function () {
      const api = new FakeKubeClient();
      api.seed(ConfigMaps, { metadata: { name: 'a', namespace: 'ns' } });
      // only the Lease requests fail: the rest of the API server still takes writes
      const lease = { cut: false };
      const client = new Proxy(api, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver) as unknown;
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) =>
            lease.cut && args[0] === Leases
              ? Promise.reject(new Error('connect ETIMEDOUT'))
              : (value as (...a: unknown[]) => unknown).apply(target, args);
        },
      });
      const manager = new Manager({
        client,
        leaderElection: {
          namespace: 'ns',
          name: 'lease',
          identity: 'a',
          leaseDurationMs: 15_000,
          renewDeadlineMs: 10_000,
          retryPeriodMs: 2_000,
        },
      });

      // a CSI-like service whose call takes a minute unless cancelled
      const csiCalls: Array<{ signal?: AbortSignal; outcome?: string }> = [];
      const csi = manager.fenceCalls({
        createSnapshot(_request: object, options?: { signal?: AbortSignal }) {
          const call: { signal?: AbortSignal; outcome?: string } = { signal: options?.signal };
          csiCalls.push(call);
          return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
              call.outcome = 'completed';
              resolve({});
            }, 60_000);
            options?.signal?.addEventListener('abort', () => {
              clearTimeout(timer);
              call.outcome = 'cancelled';
              reject(new Error('CANCELLED'));
            });
          });
        },
      });
      const reconciled: string[] = [];
      let reconcileSignal: AbortSignal | undefined;
      let laterWrite: unknown;
      const controller = new Controller({
        name: 'writer',
        reconcile: async (key, context) => {
          reconciled.push(key);
          reconcileSignal = context.signal;
          const name = key.split('/')[1]!;
          await manager.client.create(ConfigMaps, {
            metadata: { name: `before-${name}`, namespace: 'ns' },
          });
          await csi.createSnapshot({}).catch(() => undefined);
          try {
            await manager.client.create(ConfigMaps, {
              metadata: { name: `after-${name}`, namespace: 'ns' },
            });
          } catch (error) {
            laterWrite = error;
          }
        },
      }).watch(manager.informers.informer<KubeObject>(ConfigMaps));
      manager.add(controller);

      let exit: string | undefined;
      void manager.run().then((result) => (exit = result));
      await until(() => csiCalls.length === 1, 'the reconcile of ns/a reached its CSI call');
      expect(manager.isLeader()).to.equal(true);
      expect(csiCalls[0]!.signal, 'the CSI call carries the leadership signal').to.not.equal(
        undefined,
      );

      lease.cut = true;
      const cutAt = Date.now();
      await until(() => exit !== undefined, 'the manager ended', 20_000);
      expect(exit).to.equal('lost');
      expect(Date.now() - cutAt, 'lost no later than the renew deadline').to.be.at.most(10_100);
      expect(csiCalls[0]!.outcome).to.equal('cancelled');
      expect(reconcileSignal?.aborted, 'the reconcile context aborted').to.equal(true);
      expect(laterWrite).to.be.instanceOf(LeadershipLostError);

      // a change after the loss starts no reconcile, and nothing was written past the loss
      await api.create(ConfigMaps, { metadata: { name: 'b', namespace: 'ns' } });
      await clock.tickAsync(5_000);
      expect(reconciled).to.deep.equal(['ns/a']);
      const written = api.writes
        .filter((action) => action.resource === 'configmaps')
        .map((action) => action.name ?? (action.body as KubeObject).metadata?.name);
      expect(written).to.deep.equal(['before-a', 'b']);
      await manager.stop();
    });
  });
});

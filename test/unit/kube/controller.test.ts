import { expect } from 'chai';
import { Controller, type ReconcileResult } from '../../../src/kube/controller.js';
import { TerminalError } from '../../../src/kube/errors.js';
import { Informer } from '../../../src/kube/informer.js';
import { ItemExponentialRateLimiter } from '../../../src/kube/rate-limit.js';
import { ConfigMaps, PersistentVolumeClaims, type KubeObject } from '../../../src/kube/resource.js';
import { eventually } from './eventually.js';
import { FakeKubeClient } from '../../support/fakes/kube-client.js';

const cm = (name: string) => ({ metadata: { name, namespace: 'ns' } });

describe('Controller', function () {
  let client: FakeKubeClient;
  let controller: Controller | undefined;
  let informer: Informer<KubeObject>;

  beforeEach(function () {
    client = new FakeKubeClient();
    informer = new Informer({ client, type: ConfigMaps });
  });

  afterEach(async function () {
    await controller?.stop();
    await informer.stop();
  });

  function start(reconcile: (key: string) => Promise<ReconcileResult>, workers = 2) {
    controller = new Controller({
      name: 'test',
      reconcile,
      workers,
      rateLimiter: new ItemExponentialRateLimiter(5, 40),
    }).watch(informer);
    informer.start();
    return controller.start();
  }

  it('reconciles every object after the cache synced, and again when it changes', async function () {
    client.seed(ConfigMaps, cm('a'), cm('b'));
    const calls: string[] = [];
    await start(async (key) => {
      expect(informer.hasSynced(), 'reconcile runs on a synced cache').to.equal(true);
      calls.push(key);
    });
    await eventually(() => calls.length === 2);
    expect(calls.sort()).to.deep.equal(['ns/a', 'ns/b']);
    await client.patch(ConfigMaps, 'a', 'ns', 'merge', { data: { x: '1' } });
    await eventually(() => calls.length === 3);
    expect(calls[2]).to.equal('ns/a');
  });

  it('never runs two reconciles of one key at once, and runs again for a change made meanwhile', async function () {
    client.seed(ConfigMaps, cm('a'));
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    let release!: () => void;
    const firstBlocked = new Promise<void>((resolve) => (release = resolve));
    await start(async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      calls++;
      if (calls === 1) await firstBlocked;
      running--;
    }, 4);
    await eventually(() => calls === 1);
    controller!.enqueue('ns/a');
    controller!.enqueue('ns/a');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls, 'held back while in flight').to.equal(1);
    release();
    await eventually(() => calls === 2);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls, 'the two adds were merged into one re-run').to.equal(2);
    expect(maxRunning).to.equal(1);
  });

  it('retries a failing key with growing delays and forgets the failures after a success', async function () {
    const times: number[] = [];
    let failures = 3;
    await start(async () => {
      times.push(Date.now());
      if (failures-- > 0) throw new Error('transient');
    });
    controller!.enqueue('ns/x');
    await eventually(() => times.length === 4);
    const gaps = times.slice(1).map((time, i) => time - times[i]!);
    expect(gaps[0]).to.be.at.least(4);
    expect(gaps[1]).to.be.at.least(9);
    expect(gaps[2]).to.be.at.least(19);
    expect(controller!.queue.numRequeues('ns/x')).to.equal(0);
  });

  it('does not retry a TerminalError', async function () {
    let calls = 0;
    await start(async () => {
      calls++;
      throw new TerminalError('spec.source is invalid');
    });
    controller!.enqueue('ns/bad');
    await eventually(() => calls === 1);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(calls).to.equal(1);
    expect(controller!.queue.delayedLength).to.equal(0);
  });

  it('requeues after requeueAfter', async function () {
    const times: number[] = [];
    await start(async () => {
      times.push(Date.now());
      return times.length < 2 ? { requeueAfter: 30 } : undefined;
    });
    controller!.enqueue('ns/later');
    await eventually(() => times.length === 2);
    expect(times[1]! - times[0]!).to.be.at.least(29);
  });

  it('maps objects of another informer to keys with toKeys', async function () {
    const pvcs = new Informer<KubeObject>({ client, type: PersistentVolumeClaims });
    const calls: string[] = [];
    controller = new Controller({
      name: 'mapper',
      reconcile: async (key) => void calls.push(key),
    }).watch(pvcs, {
      toKeys: (pvc) => [`owner/${pvc.metadata?.labels?.owner}`],
    });
    pvcs.start();
    await controller.start();
    await client.create(PersistentVolumeClaims, {
      metadata: { name: 'p', namespace: 'ns', labels: { owner: 'o1' } },
    });
    await eventually(() => calls.includes('owner/o1'));
    await pvcs.stop();
  });

  it('stop() waits for reconciles in flight and hands out no more keys', async function () {
    let finished = false;
    let started = 0;
    await start(async () => {
      started++;
      await new Promise((resolve) => setTimeout(resolve, 30));
      finished = true;
    });
    controller!.enqueue('ns/slow');
    await eventually(() => started === 1);
    await controller!.stop();
    expect(finished).to.equal(true);
    controller!.enqueue('ns/other');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(started).to.equal(1);
  });

  it('exposes the queue depth', async function () {
    controller = new Controller({ name: 'depth', reconcile: async () => undefined });
    controller.enqueue('a');
    controller.enqueue('b');
    controller.enqueue('a');
    expect(controller.queueDepth).to.equal(2);
  });
});

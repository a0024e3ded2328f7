import { expect } from 'chai';
import type * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../support/control-plane.js';
import {
  createTestNamespace,
  deleteTestNamespace,
  kubeConfigFor,
  sharedControlPlane,
} from '../../support/cluster.js';
import { waitFor } from '../../support/processes.js';
import {
  ConfigMaps,
  Events,
  HttpKubeClient,
  Informer,
  InformerFactory,
  KubeEventRecorder,
  LeaderElector,
  Leases,
  isAlreadyExists,
  isConflict,
  type CoreEvent,
  type KubeObject,
  type Lease,
} from '../../../src/kube/index.js';
import { FaultyClient } from './support.js';

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

describe('kube toolkit against a real API server', function () {
  let controlPlane: ControlPlane;
  let kc: k8s.KubeConfig;
  let client: HttpKubeClient;
  let namespace: string;

  before(async function () {
    controlPlane = await sharedControlPlane();
    kc = kubeConfigFor(controlPlane);
    client = new HttpKubeClient(kc, { qps: 200, burst: 200 });
    namespace = await createTestNamespace(kc, 'kube');
  });

  after(async function () {
    if (kc && namespace) await deleteTestNamespace(kc, namespace);
  });

  const configMap = (name: string, data: Record<string, string> = {}): ConfigMap => ({
    metadata: { name, namespace },
    data,
  });

  describe('HttpKubeClient', function () {
    it('creates, reads, lists in pages, patches and deletes, with API errors told apart', async function () {
      const created = await client.create(ConfigMaps, configMap('crud', { a: '1' }));
      expect(created.metadata?.uid).to.be.a('string');
      expect(
        isAlreadyExists(
          await client.create(ConfigMaps, configMap('crud')).catch((e: unknown) => e),
        ),
      ).to.equal(true);
      const patched = await client.patch<ConfigMap>(ConfigMaps, 'crud', namespace, 'merge', {
        data: { b: '2' },
      });
      expect(patched.data).to.deep.equal({ a: '1', b: '2' });
      const stale = await client
        .replace(ConfigMaps, { ...created, data: {} })
        .catch((e: unknown) => e);
      expect(isConflict(stale), String(stale)).to.equal(true);
      const jsonPatched = await client.patch<ConfigMap>(ConfigMaps, 'crud', namespace, 'json', [
        { op: 'remove', path: '/data/a' },
      ]);
      expect(jsonPatched.data).to.deep.equal({ b: '2' });

      for (let i = 0; i < 5; i++) await client.create(ConfigMaps, configMap(`page-${i}`));
      const paged = new HttpKubeClient(kc, { listPageSize: 2 });
      const all = await paged.list<ConfigMap>(ConfigMaps, { namespace, labelSelector: '' });
      expect(all.items.filter((item) => item.metadata?.name?.startsWith('page-'))).to.have.length(
        5,
      );
      expect(all.items[0]).to.include({ kind: 'ConfigMap', apiVersion: 'v1' });
      expect(paged.requests, 'followed the continue tokens').to.be.at.least(3);

      await client.delete(ConfigMaps, 'crud', namespace);
      expect(await client.get(ConfigMaps, 'crud', namespace)).to.equal(undefined);
    });
  });

  describe('Informer', function () {
    it('sees adds, updates and deletes, and survives dropped watches and an expired resourceVersion', async function () {
      const faulty = new FaultyClient(client);
      const informer = new Informer<ConfigMap>({
        client: faulty.client,
        type: ConfigMaps,
        namespace,
        labelSelector: 'test=informer',
        backoffInitialMs: 50,
        backoffMaxMs: 500,
      });
      const seen: string[] = [];
      informer.on({
        add: (obj) => seen.push(`add ${obj.metadata?.name}`),
        update: (_old, obj) =>
          seen.push(`update ${obj.metadata?.name} ${JSON.stringify(obj.data ?? {})}`),
        delete: (obj) => seen.push(`delete ${obj.metadata?.name}`),
      });
      const labelled = (name: string, data: Record<string, string> = {}) => ({
        ...configMap(name, data),
        metadata: { name, namespace, labels: { test: 'informer' } },
      });
      const describeState = () => `seen: ${seen.join(' | ')}; cache: ${informer.keys().join(', ')}`;
      try {
        await client.create(ConfigMaps, labelled('before'));
        informer.start();
        await informer.waitForSync();
        expect(informer.get('before', namespace)).to.not.equal(undefined);
        await waitFor(() => faulty.watchCalls.length > 0, 10_000, 'the first watch request');
        expect(faulty.watchCalls[0]!.allowWatchBookmarks).to.equal(true);

        await client.create(ConfigMaps, labelled('live'));
        await client.patch(ConfigMaps, 'live', namespace, 'merge', { data: { v: '2' } });
        await client.delete(ConfigMaps, 'before', namespace);
        await client.create(ConfigMaps, configMap('unlabelled'));
        await waitFor(
          () => seen.includes('delete before'),
          30_000,
          'the watch to deliver the changes',
          describeState,
        );
        expect(seen).to.deep.equal([
          'add before',
          'add live',
          'update live {"v":"2"}',
          'delete before',
        ]);

        // a dropped connection: the informer re-watches from where it was, missing nothing
        await waitFor(() => faulty.openWatches === 1, 10_000, 'an open watch');
        faulty.dropWatches();
        await client.create(ConfigMaps, labelled('during-restart'));
        await waitFor(
          () => seen.includes('add during-restart'),
          30_000,
          'the change made during the restart',
          describeState,
        );
        expect(faulty.listCalls, 'no relist for a dropped connection').to.equal(1);

        // an expired resourceVersion (410 Expired): the informer relists and reports the gap
        faulty.expireNext();
        faulty.dropWatches();
        await client.delete(ConfigMaps, 'live', namespace);
        await client.create(ConfigMaps, labelled('after-relist'));
        await waitFor(
          () => seen.includes('delete live') && seen.includes('add after-relist'),
          30_000,
          'the relist after 410 to report the gap',
          describeState,
        );
        expect(faulty.listCalls, 'one relist').to.equal(2);
        expect(informer.keys().sort()).to.deep.equal([
          `${namespace}/after-relist`,
          `${namespace}/during-restart`,
        ]);
      } finally {
        await informer.stop();
      }
      expect(faulty.openWatches).to.equal(0);
    });

    it('restarts after the API server refuses it for a while (backoff), then syncs', async function () {
      const faulty = new FaultyClient(client);
      faulty.partitioned = true;
      const informer = new Informer<ConfigMap>({
        client: faulty.client,
        type: ConfigMaps,
        namespace,
        backoffInitialMs: 20,
        backoffMaxMs: 200,
      });
      try {
        informer.start();
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(informer.hasSynced()).to.equal(false);
        faulty.partitioned = false;
        await informer.waitForSync();
        expect(informer.list().length).to.be.greaterThan(0);
      } finally {
        await informer.stop();
      }
    });

    it("shared informers cache objects without managedFields or kubectl's last-applied annotation", async function () {
      const lastApplied = 'kubectl.kubernetes.io/last-applied-configuration';
      await client.create(ConfigMaps, {
        metadata: {
          name: 'applied',
          namespace,
          annotations: { [lastApplied]: '{"data":{"a":"1"}}', team: 'storage' },
        },
        data: { a: '1' },
      } as ConfigMap);
      const factory = new InformerFactory(client);
      const informer = factory.informer<ConfigMap>(ConfigMaps, { namespace });
      try {
        factory.start();
        await factory.waitForSync();
        await client.patch(ConfigMaps, 'applied', namespace, 'merge', { data: { a: '2' } });
        const cached = await waitFor(
          () =>
            informer.get('applied', namespace)?.data?.a === '2'
              ? informer.get('applied', namespace)
              : undefined,
          10_000,
          'the patched ConfigMap in the cache',
          () => JSON.stringify(informer.get('applied', namespace)),
        );
        expect(cached.metadata).to.not.have.property('managedFields');
        expect(cached.metadata?.annotations).to.deep.equal({ team: 'storage' });
        const live = (await client.get<ConfigMap>(ConfigMaps, 'applied', namespace))!;
        expect(live.metadata).to.have.property('managedFields').with.length.greaterThan(0);
        expect(live.metadata?.annotations).to.have.property(lastApplied);
      } finally {
        await factory.stop();
      }
    });
  });

  describe('LeaderElector', function () {
    /** Two candidates; the leader's network is cut; the timeline of leaders must never overlap. */
    it('never has two leaders, through a partition and a release', async function () {
      const leading = new Set<string>();
      const timeline: string[] = [];
      let overlap = '';
      const candidates = ['a', 'b'].map((identity) => {
        const faulty = new FaultyClient(client);
        const stop = new AbortController();
        const elector = new LeaderElector({
          client: faulty.client,
          namespace,
          name: 'election',
          identity,
          leaseDurationMs: 3_000,
          renewDeadlineMs: 2_000,
          retryPeriodMs: 400,
          onStartedLeading: () => {
            leading.add(identity);
            timeline.push(`${Date.now()} ${identity} started`);
            if (leading.size > 1)
              overlap = `${[...leading].join(' and ')} both lead: ${timeline.join(', ')}`;
          },
          onStoppedLeading: () => {
            leading.delete(identity);
            timeline.push(`${Date.now()} ${identity} stopped`);
          },
        });
        return { identity, faulty, stop, elector, result: elector.run(stop.signal) };
      });
      const [a, b] = candidates as [(typeof candidates)[0], (typeof candidates)[0]];
      const describeState = () =>
        `leading: ${[...leading].join(',')}; timeline: ${timeline.join(', ')}`;
      try {
        const first = await waitFor(() => [...leading][0], 20_000, 'a leader', describeState);
        const [leader, follower] = first === 'a' ? [a, b] : [b, a];
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        expect([...leading], 'the follower keeps waiting while the leader renews').to.deep.equal([
          leader.identity,
        ]);

        leader.faulty.partitioned = true;
        expect(await leader.result).to.equal('lost');
        await waitFor(
          () => leading.has(follower.identity),
          20_000,
          'the follower to take over',
          describeState,
        );
        const lease = await client.get<Lease>(Leases, 'election', namespace);
        expect(lease?.spec).to.include({ holderIdentity: follower.identity, leaseTransitions: 1 });

        // a graceful stop releases the lease: a new candidate gets it well before it would expire
        const c = new LeaderElector({
          client,
          namespace,
          name: 'election',
          identity: 'c',
          leaseDurationMs: 30_000,
          renewDeadlineMs: 20_000,
          retryPeriodMs: 300,
          onStartedLeading: () => {
            leading.add('c');
            timeline.push(`${Date.now()} c started`);
            if (leading.size > 1)
              overlap = `${[...leading].join(' and ')} both lead: ${timeline.join(', ')}`;
          },
          onStoppedLeading: () => void leading.delete('c'),
        });
        const stopC = new AbortController();
        const resultC = c.run(stopC.signal);
        follower.stop.abort();
        expect(await follower.result).to.equal('stopped');
        const releasedAt = Date.now();
        await waitFor(
          () => leading.has('c'),
          10_000,
          'c to take the released lease',
          describeState,
        );
        expect(Date.now() - releasedAt, 'no wait for expiry').to.be.below(5_000);
        stopC.abort();
        await resultC;
        expect(overlap).to.equal('');
      } finally {
        for (const candidate of candidates) candidate.stop.abort();
        await Promise.all(candidates.map((candidate) => candidate.result));
      }
    });
  });

  describe('KubeEventRecorder', function () {
    it('creates Events and aggregates repeats into a count', async function () {
      const subject = await client.create<ConfigMap>(ConfigMaps, configMap('event-subject'));
      const recorder = new KubeEventRecorder({
        client,
        component: 'snapback-test',
        host: 'test-host',
      });
      for (let i = 0; i < 3; i++)
        recorder.event(subject, 'Warning', 'Repeated', 'the same thing happened');
      recorder.event(subject, 'Normal', 'Other', 'something else');
      await recorder.flush();
      const events = (
        await client.list<CoreEvent>(Events, {
          namespace,
          fieldSelector: `involvedObject.name=event-subject`,
        })
      ).items;
      const byReason = Object.fromEntries(events.map((event) => [event.reason, event]));
      expect(Object.keys(byReason).sort()).to.deep.equal(['Other', 'Repeated']);
      expect(byReason.Repeated).to.deep.include({
        count: 3,
        type: 'Warning',
        message: 'the same thing happened',
      });
      expect(byReason.Repeated!.involvedObject).to.include({
        kind: 'ConfigMap',
        uid: subject.metadata?.uid,
      });
      expect(byReason.Repeated!.source).to.deep.equal({
        component: 'snapback-test',
        host: 'test-host',
      });
      expect(byReason.Other).to.include({ count: 1 });
    });
  });
});

import { expect } from 'chai';
import sinon from 'sinon';
import { ApiError } from '../../../src/kube/errors.js';
import {
  Informer,
  LAST_APPLIED_ANNOTATION,
  stripUnreadFields,
} from '../../../src/kube/informer.js';
import { InformerFactory } from '../../../src/kube/informer-factory.js';
import { ConfigMaps, PersistentVolumeClaims, type KubeObject } from '../../../src/kube/resource.js';
import { eventually } from './eventually.js';
import { FakeKubeClient } from '../../support/fakes/kube-client.js';

interface Pvc extends KubeObject {
  spec?: { dataSource?: { kind: string; name: string } };
}

const cm = (name: string, data: Record<string, string> = {}, labels?: Record<string, string>) => ({
  metadata: { name, namespace: 'ns', labels },
  data,
});

describe('Informer', function () {
  let client: FakeKubeClient;
  let informers: Informer<KubeObject>[];

  function informer<T extends KubeObject>(
    options: Partial<ConstructorParameters<typeof Informer<T>>[0]> = {},
  ) {
    const created = new Informer<T>({
      client,
      type: ConfigMaps,
      backoffInitialMs: 5,
      backoffMaxMs: 20,
      ...options,
    });
    informers.push(created as unknown as Informer<KubeObject>);
    return created;
  }

  beforeEach(function () {
    client = new FakeKubeClient();
    informers = [];
  });

  afterEach(async function () {
    await Promise.all(informers.map((created) => created.stop()));
  });

  it('lists, syncs, then delivers add, update and delete from the watch', async function () {
    client.seed(ConfigMaps, cm('a'));
    const cache = informer();
    const seen: string[] = [];
    cache.on({
      add: (obj) => seen.push(`add ${obj.metadata?.name}`),
      update: (old, obj) =>
        seen.push(`update ${old.metadata?.resourceVersion}->${obj.metadata?.resourceVersion}`),
      delete: (obj) => seen.push(`delete ${obj.metadata?.name}`),
    });
    expect(cache.hasSynced()).to.equal(false);
    cache.start();
    await cache.waitForSync();
    expect(cache.hasSynced()).to.equal(true);
    expect(cache.get('a', 'ns')?.metadata?.name).to.equal('a');

    await client.create(ConfigMaps, cm('b'));
    const updated = await client.patch(ConfigMaps, 'a', 'ns', 'merge', { data: { k: 'v' } });
    await client.delete(ConfigMaps, 'b', 'ns');
    await eventually(
      () => seen.length === 4,
      () => seen.join(', '),
    );
    const version = Number(updated.metadata?.resourceVersion);
    expect(seen).to.deep.equal(['add a', 'add b', `update ${version - 2}->${version}`, 'delete b']);
    expect(cache.list().map((obj) => obj.metadata?.name)).to.deep.equal(['a']);
    expect(cache.lastSyncResourceVersion).to.equal(String(version + 1));
  });

  it('asks for watch bookmarks', async function () {
    const watch = sinon.spy(client, 'watch');
    const cache = informer();
    cache.start();
    await eventually(() => watch.called);
    expect(watch.firstCall.args[1].allowWatchBookmarks).to.equal(true);
    expect(watch.firstCall.args[1].resourceVersion).to.not.equal('');
  });

  it('relists when the resourceVersion expired (410) and reports what changed in the gap', async function () {
    client.seed(ConfigMaps, cm('keep'), cm('gone'));
    const cache = informer();
    const seen: string[] = [];
    cache.on({
      add: (obj) => seen.push(`add ${obj.metadata?.name}`),
      update: (_old, obj) => seen.push(`update ${obj.metadata?.name}`),
      delete: (obj) => seen.push(`delete ${obj.metadata?.name}`),
    });
    cache.start();
    await cache.waitForSync();
    seen.length = 0;
    const list = sinon.spy(client, 'list');

    // changes the informer never sees as events: the watch ends and history is compacted
    client.closeWatches();
    await eventually(() => client.openWatches === 1);
    client.closeWatches();
    await client.delete(ConfigMaps, 'gone', 'ns');
    await client.create(ConfigMaps, cm('new'));
    client.compact();
    await eventually(
      () => seen.length >= 2,
      () => seen.join(', '),
    );
    expect(list.callCount, 'one relist after the 410').to.equal(1);
    expect(seen.sort()).to.deep.equal(['add new', 'delete gone']);
    expect(cache.keys().sort()).to.deep.equal(['ns/keep', 'ns/new']);
  });

  it('restarts after a watch error with backoff and resumes from the last resourceVersion', async function () {
    const cache = informer();
    const added: string[] = [];
    cache.on({ add: (obj) => added.push(obj.metadata!.name!) });
    cache.start();
    await cache.waitForSync();
    const watch = sinon.spy(client, 'watch');
    const list = sinon.spy(client, 'list');
    const resumeFrom = cache.lastSyncResourceVersion;
    client.failNext('watch', 'configmaps', new ApiError(500, 'InternalError', 'boom'));
    client.closeWatches(new Error('connection reset'));
    await eventually(() => client.openWatches === 1 && watch.callCount >= 2);
    expect(list.callCount, 'no relist for an ordinary error').to.equal(0);
    expect(watch.lastCall.args[1].resourceVersion).to.equal(resumeFrom);
    await client.create(ConfigMaps, cm('after'));
    await eventually(() => added.includes('after'));
  });

  it('keeps retrying the initial list until it succeeds', async function () {
    client.seed(ConfigMaps, cm('a'));
    client.failNext('list', 'configmaps', new ApiError(503, 'ServiceUnavailable', 'down'));
    client.failNext('list', 'configmaps', new Error('ECONNREFUSED'));
    const cache = informer();
    cache.start();
    await cache.waitForSync();
    expect(client.actions.filter((action) => action.verb === 'list')).to.have.length(3);
    expect(cache.get('a', 'ns')).to.not.equal(undefined);
  });

  it('maintains custom indexes through updates and deletes', async function () {
    const bySnapshot = (pvc: Pvc) =>
      pvc.spec?.dataSource?.kind === 'VolumeSnapshot' ? [`ns/${pvc.spec.dataSource.name}`] : [];
    const cache = informer<Pvc>({ type: PersistentVolumeClaims, indexers: { bySnapshot } });
    client.seed(PersistentVolumeClaims, {
      metadata: { name: 'restore', namespace: 'ns' },
      spec: { dataSource: { kind: 'VolumeSnapshot', name: 'snap-1' } },
    } as Pvc);
    cache.start();
    await cache.waitForSync();
    expect(cache.byIndex('bySnapshot', 'ns/snap-1').map((pvc) => pvc.metadata?.name)).to.deep.equal(
      ['restore'],
    );
    await client.patch(PersistentVolumeClaims, 'restore', 'ns', 'merge', {
      spec: { dataSource: { name: 'snap-2' } },
    });
    await eventually(() => cache.byIndex('bySnapshot', 'ns/snap-2').length === 1);
    expect(cache.byIndex('bySnapshot', 'ns/snap-1')).to.deep.equal([]);
    await client.delete(PersistentVolumeClaims, 'restore', 'ns');
    await eventually(() => cache.byIndex('bySnapshot', 'ns/snap-2').length === 0);
    expect(() => cache.byIndex('nope', 'x')).to.throw(/no index "nope"/);
  });

  it('replays cached objects to a handler registered late, and filters lists by selectors', async function () {
    client.seed(ConfigMaps, cm('a', {}, { app: 'x' }), cm('b', {}, { app: 'y' }), {
      metadata: { name: 'c', namespace: 'other', labels: { app: 'x' } },
    });
    const cache = informer();
    cache.start();
    await cache.waitForSync();
    const added: string[] = [];
    cache.on({ add: (obj) => added.push(obj.metadata!.name!) });
    expect(added.sort()).to.deep.equal(['a', 'b', 'c']);
    expect(
      cache
        .list({ labelSelector: 'app=x' })
        .map((obj) => obj.metadata?.name)
        .sort(),
    ).to.deep.equal(['a', 'c']);
    expect(
      cache.list({ namespace: 'ns', labelSelector: { matchLabels: { app: 'x' } } }),
    ).to.have.length(1);
    expect(cache.list({ fieldSelector: 'metadata.name=b' })).to.have.length(1);
  });

  it('emits resync updates with the same object on the resync period', async function () {
    client.seed(ConfigMaps, cm('a'));
    const cache = informer({ resyncPeriodMs: 20 });
    let resyncs = 0;
    cache.on({ update: (old, obj) => (old === obj ? resyncs++ : undefined) });
    cache.start();
    await eventually(() => resyncs >= 2);
  });

  it('a handler that throws does not stop the others', async function () {
    const cache = informer();
    const seen: string[] = [];
    cache.on({
      add: () => {
        throw new Error('bad handler');
      },
    });
    cache.on({ add: (obj) => seen.push(obj.metadata!.name!) });
    cache.start();
    await cache.waitForSync();
    await client.create(ConfigMaps, cm('x'));
    await eventually(() => seen.includes('x'));
  });

  it('stop() ends the watch and rejects pending waitForSync callers with an abort signal', async function () {
    client.failNext('list', 'configmaps', new Error('down'));
    const cache = informer({ backoffInitialMs: 10_000 });
    cache.start();
    const abort = new AbortController();
    const waiting = cache.waitForSync(abort.signal);
    abort.abort();
    let failure: unknown;
    await waiting.catch((error: unknown) => (failure = error));
    expect(String(failure)).to.match(/stopped before configmaps synced/);
    await cache.stop();
    expect(client.openWatches).to.equal(0);
  });
});

describe('InformerFactory', function () {
  it('shares one informer per type and scope and adds indexers to it', async function () {
    const client = new FakeKubeClient();
    const factory = new InformerFactory(client);
    const a = factory.informer(ConfigMaps);
    const b = factory.informer(ConfigMaps, {
      indexers: { byName: (obj) => [obj.metadata!.name!] },
    });
    const c = factory.informer(ConfigMaps, { namespace: 'ns' });
    expect(a).to.equal(b);
    expect(a).to.not.equal(c);
    expect(a.hasIndex('byName')).to.equal(true);
    factory.start();
    await factory.waitForSync();
    expect(factory.hasSynced()).to.equal(true);
    const late = factory.informer(PersistentVolumeClaims);
    await late.waitForSync();
    await factory.stop();
    expect(client.openWatches).to.equal(0);
  });

  it('caches objects without managedFields or the last-applied annotation, by default', async function () {
    const client = new FakeKubeClient();
    const managedFields = [{ manager: 'kubectl', operation: 'Apply', fieldsV1: { 'f:data': {} } }];
    client.seed(ConfigMaps, {
      metadata: {
        name: 'listed',
        namespace: 'ns',
        annotations: { [LAST_APPLIED_ANNOTATION]: '{"big":"manifest"}', kept: 'yes' },
        managedFields,
      },
      data: { k: 'v' },
    } as KubeObject);
    const factory = new InformerFactory(client);
    const cache = factory.informer(ConfigMaps);
    const seen: KubeObject[] = [];
    cache.on({ add: (obj) => seen.push(obj), update: (_old, obj) => seen.push(obj) });
    factory.start();
    await factory.waitForSync();
    await client.create(ConfigMaps, {
      metadata: {
        name: 'watched',
        namespace: 'ns',
        annotations: { [LAST_APPLIED_ANNOTATION]: '{}' },
        managedFields,
      },
    } as KubeObject);
    await eventually(
      () => cache.get('watched', 'ns') !== undefined,
      () => cache.keys().join(', '),
    );
    const listed = cache.get('listed', 'ns') as KubeObject & { data?: unknown };
    expect(listed.metadata).to.not.have.property('managedFields');
    expect(listed.metadata?.annotations).to.deep.equal({ kept: 'yes' });
    expect(listed.data).to.deep.equal({ k: 'v' });
    expect(cache.get('watched', 'ns')!.metadata).to.not.have.any.keys(
      'managedFields',
      'annotations',
    );
    expect(seen.map((obj) => obj.metadata?.name)).to.deep.equal(['listed', 'watched']);
    expect(seen.every((obj) => !('managedFields' in obj.metadata!))).to.equal(true);
    await factory.stop();
  });

  it('keeps objects as received when given the identity transform', async function () {
    const client = new FakeKubeClient();
    const managedFields = [{ manager: 'kubectl', operation: 'Update' }];
    client.seed(ConfigMaps, {
      metadata: { name: 'a', namespace: 'ns', managedFields },
    } as KubeObject);
    const factory = new InformerFactory(client, { transform: (obj) => obj });
    const cache = factory.informer(ConfigMaps);
    factory.start();
    await factory.waitForSync();
    expect(cache.get('a', 'ns')!.metadata).to.have.deep.property('managedFields', managedFields);
    await factory.stop();
  });
});

describe('stripUnreadFields', function () {
  it('drops managedFields and the last-applied annotation without modifying its input', function () {
    const input = {
      metadata: {
        name: 'a',
        resourceVersion: '7',
        annotations: { [LAST_APPLIED_ANNOTATION]: '{}', other: 'x' },
        managedFields: [{ manager: 'm' }],
      },
      spec: { size: 1 },
    } as KubeObject;
    const copy = structuredClone(input);
    expect(stripUnreadFields(input)).to.deep.equal({
      metadata: { name: 'a', resourceVersion: '7', annotations: { other: 'x' } },
      spec: { size: 1 },
    });
    expect(input).to.deep.equal(copy);
  });

  it('returns the same object when there is nothing to drop', function () {
    const input = { metadata: { name: 'a', annotations: { other: 'x' } } } as KubeObject;
    expect(stripUnreadFields(input)).to.equal(input);
    const bare = { kind: 'List' } as KubeObject;
    expect(stripUnreadFields(bare)).to.equal(bare);
  });
});

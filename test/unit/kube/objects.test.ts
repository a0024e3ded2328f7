import { expect } from 'chai';
import { isConflict } from '../../../src/kube/errors.js';
import {
  addFinalizer,
  applyMergePatch,
  createMergePatch,
  createIfAbsent,
  createOrPatch,
  patchStatusDiff,
  removeFinalizer,
  setCondition,
  type Condition,
} from '../../../src/kube/objects.js';
import { ConfigMaps, type KubeObject, type ResourceType } from '../../../src/kube/resource.js';
import { FakeKubeClient } from '../../support/fakes/kube-client.js';

const Widgets: ResourceType = {
  group: 'example.dev',
  version: 'v1',
  plural: 'widgets',
  kind: 'Widget',
  namespaced: true,
};

interface Widget extends KubeObject {
  spec?: { size?: number; tags?: string[] };
  status?: {
    phase?: string;
    note?: string;
    counts?: Record<string, number>;
    observedGeneration?: number;
    conditions?: Condition[];
  };
}

describe('setCondition', function () {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const t1 = new Date('2026-01-01T01:00:00Z');

  it('adds a condition with the transition time', function () {
    const result = setCondition(
      undefined,
      { type: 'Ready', status: 'False', reason: 'Pending', message: 'waiting' },
      t0,
    );
    expect(result).to.deep.equal([
      {
        type: 'Ready',
        status: 'False',
        reason: 'Pending',
        message: 'waiting',
        lastTransitionTime: '2026-01-01T00:00:00Z',
      },
    ]);
  });

  it('keeps lastTransitionTime when the status is unchanged but refreshes reason and message', function () {
    const before = setCondition(
      undefined,
      { type: 'Ready', status: 'False', reason: 'Pending', message: 'a' },
      t0,
    );
    const after = setCondition(
      before,
      {
        type: 'Ready',
        status: 'False',
        reason: 'StillPending',
        message: 'b',
        observedGeneration: 2,
      },
      t1,
    );
    expect(after[0]).to.deep.equal({
      type: 'Ready',
      status: 'False',
      reason: 'StillPending',
      message: 'b',
      observedGeneration: 2,
      lastTransitionTime: '2026-01-01T00:00:00Z',
    });
    expect(before[0]!.reason, 'the input is not modified').to.equal('Pending');
  });

  it('moves lastTransitionTime when the status changes, leaving other conditions alone', function () {
    let conditions = setCondition(
      undefined,
      { type: 'Ready', status: 'False', reason: 'P', message: '' },
      t0,
    );
    conditions = setCondition(
      conditions,
      { type: 'Degraded', status: 'False', reason: 'OK', message: '' },
      t0,
    );
    conditions = setCondition(
      conditions,
      { type: 'Ready', status: 'True', reason: 'Done', message: '' },
      t1,
    );
    expect(conditions.map((c) => [c.type, c.status, c.lastTransitionTime])).to.deep.equal([
      ['Ready', 'True', '2026-01-01T01:00:00Z'],
      ['Degraded', 'False', '2026-01-01T00:00:00Z'],
    ]);
  });
});

describe('merge patches', function () {
  it('computes the smallest RFC 7386 patch and round-trips through applyMergePatch', function () {
    const before = { a: 1, b: { c: 2, d: [1, 2] }, gone: 'x', same: { deep: true } };
    const after = { a: 1, b: { c: 3, d: [1, 2, 3] }, added: { n: null }, same: { deep: true } };
    const patch = createMergePatch(before, after);
    expect(patch).to.deep.equal({ b: { c: 3, d: [1, 2, 3] }, gone: null, added: { n: null } });
    expect(createMergePatch(after, structuredClone(after))).to.equal(undefined);
    expect(applyMergePatch(before, { b: { c: 3, d: [1, 2, 3] }, gone: null })).to.deep.equal({
      a: 1,
      b: { c: 3, d: [1, 2, 3] },
      same: { deep: true },
    });
  });
});

describe('finalizers, status and createOrPatch against the fake API server', function () {
  let client: FakeKubeClient;

  beforeEach(function () {
    client = new FakeKubeClient();
  });

  it('adds and removes a finalizer idempotently, keeping the others', async function () {
    client.seed(Widgets, {
      metadata: { name: 'w', namespace: 'ns', finalizers: ['other.dev/keep'] },
    });
    let widget = (await client.get<Widget>(Widgets, 'w', 'ns'))!;
    widget = await addFinalizer(client, Widgets, widget, 'example.dev/protect');
    const writes = client.writes.length;
    widget = await addFinalizer(client, Widgets, widget, 'example.dev/protect');
    expect(client.writes.length, 'no write when already present').to.equal(writes);
    expect(widget.metadata?.finalizers).to.deep.equal(['other.dev/keep', 'example.dev/protect']);
    widget = await removeFinalizer(client, Widgets, widget, 'example.dev/protect');
    widget = await removeFinalizer(client, Widgets, widget, 'example.dev/protect');
    expect(widget.metadata?.finalizers).to.deep.equal(['other.dev/keep']);
  });

  it('refuses a finalizer change based on a stale copy instead of dropping a newer finalizer', async function () {
    client.seed(Widgets, { metadata: { name: 'w', namespace: 'ns' } });
    const stale = (await client.get<Widget>(Widgets, 'w', 'ns'))!;
    await client.patch(Widgets, 'w', 'ns', 'merge', {
      metadata: { finalizers: ['someone.else/f'] },
    });
    const error = await addFinalizer(client, Widgets, stale, 'example.dev/protect').catch(
      (e: unknown) => e,
    );
    expect(isConflict(error)).to.equal(true);
    expect(client.peek<Widget>(Widgets, 'w', 'ns')!.metadata?.finalizers).to.deep.equal([
      'someone.else/f',
    ]);
  });

  it('patchStatusDiff sends only what differs, removes what is gone, and nothing when equal', async function () {
    client.seed(Widgets, {
      metadata: { name: 'w', namespace: 'ns' },
      spec: { size: 1 },
      status: { phase: 'Pending', note: 'old', counts: { a: 1, b: 2 } },
    } as Widget);
    const widget = (await client.get<Widget>(Widgets, 'w', 'ns'))!;
    const updated = await patchStatusDiff(
      client,
      Widgets,
      widget,
      { phase: 'Ready', counts: { a: 1, b: 3 } },
      { fieldManager: 'test' },
    );
    expect(updated.status).to.deep.equal({ phase: 'Ready', counts: { a: 1, b: 3 } });
    expect(updated.spec).to.deep.equal({ size: 1 });
    expect(client.actions.at(-1)).to.deep.include({
      verb: 'patch',
      resource: 'widgets/status',
      patchType: 'merge',
      body: { status: { phase: 'Ready', note: null, counts: { b: 3 } } },
    });
    const requests = client.actions.length;
    expect(await patchStatusDiff(client, Widgets, updated, { ...updated.status })).to.equal(
      updated,
    );
    expect(client.actions.length).to.equal(requests);
  });

  it('patchStatusDiff guarded: a status decided from a stale copy fails with a conflict', async function () {
    client.seed(Widgets, {
      metadata: { name: 'w', namespace: 'ns' },
      status: { phase: 'A' },
    } as Widget);
    const stale = (await client.get<Widget>(Widgets, 'w', 'ns'))!;
    await patchStatusDiff(client, Widgets, stale, { phase: 'B' });
    const error = await patchStatusDiff(
      client,
      Widgets,
      stale,
      { phase: 'C' },
      { guarded: true },
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isConflict(error), String(error)).to.equal(true);
    expect((await client.get<Widget>(Widgets, 'w', 'ns'))?.status).to.deep.equal({ phase: 'B' });
  });

  it('createIfAbsent creates once, then leaves the existing object alone; other errors pass', async function () {
    const widget = { metadata: { name: 'w', namespace: 'ns', labels: { size: '1' } } } as Widget;
    const created = await createIfAbsent(client, Widgets, widget);
    expect(created?.metadata?.resourceVersion).to.be.a('string');
    const again = await createIfAbsent(client, Widgets, {
      metadata: { name: 'w', namespace: 'ns', labels: { size: '2' } },
    } as Widget);
    expect(again).to.equal(undefined);
    expect((await client.get<Widget>(Widgets, 'w', 'ns'))?.metadata?.labels).to.deep.equal({
      size: '1',
    });
    let failure: unknown;
    try {
      await createIfAbsent(client, Widgets, { metadata: { namespace: 'ns' } } as Widget);
    } catch (error) {
      failure = error;
    }
    expect(failure, 'an object without a name is refused, not taken as existing').to.be.instanceOf(
      Error,
    );
  });

  it('createOrPatch creates, then patches only the difference, then does nothing', async function () {
    const mutate = (size: number) => (widget: Widget) => {
      widget.spec = { ...widget.spec, size };
      widget.metadata!.labels = { ...widget.metadata!.labels, owner: 'me' };
    };
    const base: Widget = { metadata: { name: 'w', namespace: 'ns' } };
    expect((await createOrPatch(client, Widgets, base, mutate(1))).operation).to.equal('created');
    await client.patch(Widgets, 'w', 'ns', 'merge', {
      metadata: { labels: { foreign: 'kept' } },
      spec: { tags: ['t'] },
    });
    const patched = await createOrPatch(client, Widgets, base, mutate(2));
    expect(patched.operation).to.equal('patched');
    expect(client.actions.at(-1)!.body).to.deep.equal({ spec: { size: 2 } });
    expect(patched.object.spec).to.deep.equal({ size: 2, tags: ['t'] });
    expect(patched.object.metadata?.labels).to.deep.equal({ foreign: 'kept', owner: 'me' });
    expect((await createOrPatch(client, Widgets, base, mutate(2))).operation).to.equal('unchanged');
  });
});

describe('FakeKubeClient', function () {
  let client: FakeKubeClient;

  beforeEach(function () {
    client = new FakeKubeClient();
  });

  it('assigns uid, resourceVersion and generation; bumps generation on spec changes only', async function () {
    const created = await client.create<Widget>(Widgets, {
      metadata: { name: 'w', namespace: 'ns' },
      spec: { size: 1 },
      status: { phase: 'ignored' },
    });
    expect(created.metadata?.uid).to.be.a('string');
    expect(created.metadata?.generation).to.equal(1);
    expect(created.status, 'status is dropped on create').to.equal(undefined);
    const labelled = await client.patch<Widget>(Widgets, 'w', 'ns', 'merge', {
      metadata: { labels: { a: 'b' } },
    });
    expect(labelled.metadata?.generation).to.equal(1);
    expect(Number(labelled.metadata?.resourceVersion)).to.be.greaterThan(
      Number(created.metadata?.resourceVersion),
    );
    const resized = await client.patch<Widget>(Widgets, 'w', 'ns', 'merge', {
      spec: { size: 2 },
      status: { phase: 'x' },
    });
    expect(resized.metadata?.generation).to.equal(2);
    expect(resized.status, 'status needs the subresource').to.equal(undefined);
  });

  it('rejects a replace with a stale resourceVersion and a second create', async function () {
    const created = await client.create<Widget>(Widgets, {
      metadata: { name: 'w', namespace: 'ns' },
    });
    await client.replace(Widgets, { ...created, spec: { size: 1 } });
    const stale = await client
      .replace(Widgets, { ...created, spec: { size: 2 } })
      .catch((e: unknown) => e);
    expect(isConflict(stale)).to.equal(true);
    const again = await client
      .create(Widgets, { metadata: { name: 'w', namespace: 'ns' } })
      .catch((e: unknown) => e);
    expect(again).to.include({ code: 409, reason: 'AlreadyExists' });
  });

  it('keeps an object with finalizers until the last one is removed', async function () {
    await client.create(Widgets, { metadata: { name: 'w', namespace: 'ns', finalizers: ['f'] } });
    await client.delete(Widgets, 'w', 'ns');
    const terminating = client.peek<Widget>(Widgets, 'w', 'ns')!;
    expect(terminating.metadata?.deletionTimestamp).to.be.a('string');
    await client.patch(Widgets, 'w', 'ns', 'json', [
      { op: 'remove', path: '/metadata/finalizers/0' },
    ]);
    expect(client.peek(Widgets, 'w', 'ns')).to.equal(undefined);
  });

  it('applies JSON patches and fails a `test` operation with a conflict', async function () {
    await client.create(Widgets, {
      metadata: { name: 'w', namespace: 'ns' },
      spec: { tags: ['a'] },
    } as Widget);
    await client.patch(Widgets, 'w', 'ns', 'json', [
      { op: 'test', path: '/spec/tags', value: ['a'] },
      { op: 'add', path: '/spec/tags/-', value: 'b' },
      { op: 'add', path: '/metadata/annotations', value: { 'x/y': 'z' } },
    ]);
    expect(client.peek<Widget>(Widgets, 'w', 'ns')!.spec?.tags).to.deep.equal(['a', 'b']);
    const failed = await client
      .patch(Widgets, 'w', 'ns', 'json', [{ op: 'test', path: '/spec/tags', value: ['a'] }])
      .catch((e: unknown) => e);
    expect(isConflict(failed)).to.equal(true);
  });

  it('filters lists by namespace and label selector, and injects one-shot errors', async function () {
    client.seed(
      ConfigMaps,
      { metadata: { name: 'a', namespace: 'x', labels: { k: 'v' } } },
      { metadata: { name: 'b', namespace: 'y' } },
    );
    expect((await client.list(ConfigMaps, { namespace: 'x' })).items).to.have.length(1);
    expect((await client.list(ConfigMaps, { labelSelector: 'k=v' })).items).to.have.length(1);
    expect((await client.list(ConfigMaps, { labelSelector: '!k' })).items).to.have.length(1);
    client.failNext('get', 'configmaps', new Error('injected'));
    expect(String(await client.get(ConfigMaps, 'a', 'x').catch((e: unknown) => e))).to.match(
      /injected/,
    );
    expect(await client.get(ConfigMaps, 'a', 'x')).to.not.equal(undefined);
  });
});

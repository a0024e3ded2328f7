import { expect } from 'chai';
import { FreshView, OwnWrites } from '../../../src/kube/fresh-view.js';
import type { InformerHandlers } from '../../../src/kube/informer.js';
import { ConfigMaps, type KubeObject } from '../../../src/kube/resource.js';
import { FakeClock } from '../../support/fakes/clock.js';
import { FakeKubeClient } from '../../support/fakes/kube-client.js';

/** The two things FreshView reads of an informer: its cache and its delete events. */
class Cache {
  readonly objects = new Map<string, KubeObject>();
  private readonly handlers: InformerHandlers<KubeObject>[] = [];
  getByKey(key: string) {
    return this.objects.get(key);
  }
  on(handlers: InformerHandlers<KubeObject>) {
    this.handlers.push(handlers);
    return () => undefined;
  }
  delete(key: string) {
    const obj = this.objects.get(key)!;
    this.objects.delete(key);
    for (const handlers of this.handlers) handlers.delete?.(obj);
  }
}

const object = (name: string, resourceVersion: string, extra: KubeObject['metadata'] = {}) => ({
  metadata: { name, namespace: 'ns', resourceVersion, ...extra },
});

describe('FreshView (read-your-own-writes over an informer)', function () {
  let cache: Cache;
  let clock: FakeClock;
  let view: FreshView<KubeObject>;
  beforeEach(function () {
    cache = new Cache();
    clock = new FakeClock('2026-01-01T00:00:00Z');
    view = new FreshView(cache, clock);
  });

  it('returns our write while the cache still holds an older version', function () {
    cache.objects.set('ns/a', object('a', '10'));
    view.remember(object('a', '11'));
    expect(view.get('ns/a')?.metadata?.resourceVersion).to.equal('11');
  });

  it('returns the cache once it has caught up or moved past our write, and forgets ours', function () {
    view.remember(object('a', '11'));
    cache.objects.set('ns/a', object('a', '12'));
    expect(view.get('ns/a')?.metadata?.resourceVersion).to.equal('12');
    cache.objects.set('ns/a', object('a', '9'));
    expect(view.get('ns/a')?.metadata?.resourceVersion).to.equal('9');
  });

  it('trusts a write the cache never showed for 30 s on the injected clock, then forgets it', function () {
    view.remember(object('a', '11'));
    clock.advance(29_999);
    expect(view.get('ns/a')?.metadata?.resourceVersion).to.equal('11');
    clock.advance(1);
    expect(view.get('ns/a')).to.equal(undefined);
    clock.set('2026-01-01T00:00:00Z');
    expect(view.get('ns/a'), 'forgotten, not just hidden').to.equal(undefined);
  });

  it('forgets our write when the informer reports the object deleted', function () {
    cache.objects.set('ns/a', object('a', '10'));
    view.remember(object('a', '11'));
    cache.delete('ns/a');
    expect(view.get('ns/a')).to.equal(undefined);
  });

  it('does not keep the last write of a deleted object whose finalizers are gone', function () {
    cache.objects.set('ns/a', object('a', '10'));
    view.remember(object('a', '11', { deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: [] }));
    expect(view.get('ns/a')?.metadata?.resourceVersion).to.equal('10');
  });

  it('forget() drops our write', function () {
    cache.objects.set('ns/a', object('a', '10'));
    view.remember(object('a', '11'));
    view.forget('ns/a');
    expect(view.get('ns/a')?.metadata?.resourceVersion).to.equal('10');
  });
});

describe('OwnWrites.patchStatusDiff', function () {
  // (the fake client serves a status subresource for any kind, ConfigMaps included)
  type Widget = KubeObject & { status?: { phase?: string } };

  it('writes the status difference and serves the written object before the cache has it', async function () {
    const client = new FakeKubeClient();
    client.seed(ConfigMaps, {
      metadata: { name: 'w', namespace: 'ns' },
      status: { phase: 'A' },
    } as Widget);
    const cache = new Cache();
    const cached = (await client.get<Widget>(ConfigMaps, 'w', 'ns'))!;
    cache.objects.set('ns/w', cached);
    const writes = new OwnWrites<Widget>(
      client,
      ConfigMaps,
      new FreshView(cache, new FakeClock('2026-01-01T00:00:00Z')),
    );
    const requests = client.actions.length;
    expect(await writes.patchStatusDiff(cached, { phase: 'A' })).to.equal(cached);
    expect(client.actions.length, 'no request when nothing differs').to.equal(requests);
    await writes.patchStatusDiff(cached, { phase: 'B' });
    expect(writes.get('ns/w')?.status).to.deep.equal({ phase: 'B' });
    expect(client.actions.at(-1)).to.deep.include({
      verb: 'patch',
      resource: 'configmaps/status',
      body: { status: { phase: 'B' } },
    });
  });
});

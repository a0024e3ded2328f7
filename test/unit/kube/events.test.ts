import { expect } from 'chai';
import { ApiError } from '../../../src/kube/errors.js';
import { KubeEventRecorder, type CoreEvent } from '../../../src/kube/events.js';
import { Events } from '../../../src/kube/resource.js';
import { FakeClock } from '../../support/fakes/clock.js';
import { FakeEventRecorder } from '../../support/fakes/event-recorder.js';
import { FakeKubeClient } from '../../support/fakes/kube-client.js';

const snapshot = {
  apiVersion: 'snapshot.storage.k8s.io/v1',
  kind: 'VolumeSnapshot',
  metadata: { name: 'snap', namespace: 'ns', uid: 'u-1', resourceVersion: '7' },
};

describe('KubeEventRecorder', function () {
  let client: FakeKubeClient;
  let clock: FakeClock;
  let recorder: KubeEventRecorder;

  beforeEach(function () {
    client = new FakeKubeClient();
    clock = new FakeClock('2026-01-01T00:00:00Z');
    recorder = new KubeEventRecorder({ client, component: 'snapback-test', host: 'node-1', clock });
  });

  it('creates a core/v1 Event naming the object, the reason and the source', async function () {
    recorder.event(
      snapshot,
      'Normal',
      'CreatingSnapshot',
      'Waiting for a snapshot ns/snap to be created',
    );
    await recorder.flush();
    const [event] = client.all<CoreEvent>(Events);
    expect(event!.metadata?.namespace).to.equal('ns');
    expect(event!.metadata?.name).to.match(/^snap\.[0-9a-f]+$/);
    expect(event!.involvedObject).to.deep.equal({
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      name: 'snap',
      namespace: 'ns',
      uid: 'u-1',
      resourceVersion: '7',
    });
    expect(event).to.include({ type: 'Normal', reason: 'CreatingSnapshot', count: 1 });
    expect(event!.source).to.deep.equal({ component: 'snapback-test', host: 'node-1' });
    expect(event!.firstTimestamp).to.equal('2026-01-01T00:00:00Z');
  });

  it('aggregates repeats into one Event with a count and the last timestamp', async function () {
    for (let i = 0; i < 3; i++) {
      recorder.event(snapshot, 'Warning', 'SnapshotBindFailed', 'no PV');
      clock.advance(60_000);
    }
    await recorder.flush();
    const events = client.all<CoreEvent>(Events);
    expect(events).to.have.length(1);
    expect(events[0]).to.include({
      count: 3,
      firstTimestamp: '2026-01-01T00:00:00Z',
      lastTimestamp: '2026-01-01T00:02:00Z',
    });
    expect(client.writes.map((action) => action.verb)).to.deep.equal(['create', 'patch', 'patch']);
  });

  it('keeps different reasons, types and objects apart', async function () {
    recorder.event(snapshot, 'Normal', 'A', 'm');
    recorder.event(snapshot, 'Warning', 'A', 'm');
    recorder.event(snapshot, 'Normal', 'B', 'm');
    recorder.event(
      { ...snapshot, metadata: { ...snapshot.metadata, uid: 'u-2' } },
      'Normal',
      'A',
      'm',
    );
    await recorder.flush();
    expect(client.all(Events)).to.have.length(4);
  });

  it('combines many different messages with the same reason into one Event', async function () {
    recorder = new KubeEventRecorder({ client, component: 'c', clock, similarEventsLimit: 3 });
    for (let i = 0; i < 6; i++) recorder.event(snapshot, 'Warning', 'Failed', `attempt ${i}`);
    await recorder.flush();
    const events = client.all<CoreEvent>(Events);
    expect(events).to.have.length(4);
    const combined = events.find((event) =>
      event.message.startsWith('(combined from similar events)'),
    );
    expect(combined).to.include({ count: 3, message: '(combined from similar events): attempt 5' });
  });

  it('starts a new Event when the old one was deleted (expired)', async function () {
    recorder.event(snapshot, 'Normal', 'A', 'm');
    await recorder.flush();
    await client.delete(Events, client.all(Events)[0]!.metadata!.name!, 'ns');
    recorder.event(snapshot, 'Normal', 'A', 'm');
    await recorder.flush();
    expect(client.all<CoreEvent>(Events).map((event) => event.count)).to.deep.equal([1]);
  });

  it('drops a flood from one object beyond the spam burst, and never throws on API errors', async function () {
    recorder = new KubeEventRecorder({
      client,
      component: 'c',
      clock,
      spamBurst: 2,
      similarEventsLimit: 100,
    });
    client.failNext('create', 'events', new ApiError(403, 'Forbidden', 'no RBAC for events'));
    for (let i = 0; i < 5; i++) recorder.event(snapshot, 'Normal', 'R', `m${i}`);
    await recorder.flush();
    expect(client.writes.filter((action) => action.verb === 'create')).to.have.length(2);
    expect(client.all(Events)).to.have.length(1);
  });

  it('puts Events about cluster-scoped objects in the default namespace', async function () {
    recorder.event(
      { kind: 'VolumeSnapshotContent', metadata: { name: 'snapcontent-1', uid: 'c' } },
      'Normal',
      'R',
      'm',
    );
    await recorder.flush();
    expect(client.all(Events)[0]!.metadata?.namespace).to.equal('default');
  });
});

describe('FakeEventRecorder', function () {
  it('keeps "<type> <reason> <message>" lines', function () {
    const fake = new FakeEventRecorder();
    fake.event(snapshot, 'Warning', 'SnapshotDeletePending', 'in use');
    expect(fake.lines).to.deep.equal(['Warning SnapshotDeletePending in use']);
    expect(fake.events[0]!.object).to.equal('ns/snap');
  });
});

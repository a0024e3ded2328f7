import { expect } from 'chai';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  ANN_VOLUME_SNAPSHOT_BEING_CREATED,
  ANN_VOLUME_SNAPSHOT_BEING_DELETED,
  FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND,
  type VolumeSnapshotClass,
  type VolumeSnapshotContent,
} from '../../../../src/api/snapshot.js';
import type { CreateSnapshotRequest } from '../../../../src/gen/csi/csi/v1/CreateSnapshotRequest.js';
import type { CreateSnapshotResponse__Output } from '../../../../src/gen/csi/csi/v1/CreateSnapshotResponse.js';
import type { ListSnapshotsResponse__Output } from '../../../../src/gen/csi/csi/v1/ListSnapshotsResponse.js';
import { Manager } from '../../../../src/kube/index.js';
import {
  createSidecar,
  type SnapshotterCsi,
} from '../../../../src/snapshot/sidecar/content-sidecar.js';
import { DEFAULT_SIDECAR_SETTINGS } from '../../../../src/snapshot/sidecar/plan.js';
import { VolumeSnapshotClasses, VolumeSnapshotContents } from '../../../../src/kube/resource.js';
import { ANN_VOLUME_GROUP_SNAPSHOT_HANDLE } from '../../../../src/snapshot/group.js';
import { waitFor } from '../../../support/processes.js';
import { FakeEventRecorder } from '../../../support/fakes/event-recorder.js';
import { FakeKubeClient } from '../../../support/fakes/kube-client.js';

const DRIVER = 'local.snapback.dev';
const UID = '0a0b0c0d-1111-2222-3333-444455556666';
const NAME = `snapcontent-${UID}`;

type Answer = { snapshot: { id: string; ready: boolean; size?: number } } | { error: Error };

/** A CSI controller that answers from a script and records every call. */
class ScriptedCsi implements SnapshotterCsi {
  readonly calls: Array<{ method: string; request: unknown }> = [];
  /** Answers in order; the last one repeats. */
  creates: Answer[] = [];
  /** DeleteSnapshot fails with this while it is set. */
  deleteError: Error | undefined;

  async createSnapshot(request: CreateSnapshotRequest): Promise<CreateSnapshotResponse__Output> {
    this.calls.push({ method: 'CreateSnapshot', request });
    const answer = this.creates.length > 1 ? this.creates.shift() : this.creates[0];
    if (!answer) throw new Error('no scripted CreateSnapshot answer');
    if ('error' in answer) throw answer.error;
    return {
      snapshot: {
        snapshot_id: answer.snapshot.id,
        source_volume_id: request.source_volume_id ?? '',
        ready_to_use: answer.snapshot.ready,
        size_bytes: String(answer.snapshot.size ?? 0),
        creation_time: { seconds: '1767225600', nanos: 0 },
        group_snapshot_id: '',
      },
    };
  }

  async deleteSnapshot(request: unknown): Promise<unknown> {
    this.calls.push({ method: 'DeleteSnapshot', request });
    if (this.deleteError) throw this.deleteError;
    return {};
  }

  async listSnapshots(request: unknown): Promise<ListSnapshotsResponse__Output> {
    this.calls.push({ method: 'ListSnapshots', request });
    return { entries: [], next_token: '' };
  }

  count(method: string): number {
    return this.calls.filter((call) => call.method === method).length;
  }
}

function grpcError(code: GrpcStatus, details: string): Error {
  return Object.assign(new Error(`${code} ${GrpcStatus[code]}: ${details}`), { code, details });
}

const snapshotClass: VolumeSnapshotClass = {
  apiVersion: 'snapshot.storage.k8s.io/v1',
  kind: 'VolumeSnapshotClass',
  metadata: { name: 'local' },
  driver: DRIVER,
  deletionPolicy: 'Delete',
  parameters: { forceDelete: 'false' },
};

function content(): VolumeSnapshotContent {
  return {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshotContent',
    metadata: { name: NAME, finalizers: [FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND] },
    spec: {
      driver: DRIVER,
      deletionPolicy: 'Delete',
      volumeSnapshotClassName: 'local',
      volumeSnapshotRef: {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshot',
        name: 'snap',
        namespace: 'ns',
        uid: UID,
      },
      source: { volumeHandle: 'vol-1' },
    },
  };
}

describe('sidecar controller (fake API server, scripted CSI driver)', function () {
  let client: FakeKubeClient;
  let csi: ScriptedCsi;
  let events: FakeEventRecorder;
  let manager: Manager;
  let running: Promise<unknown>;

  const stored = () => client.peek<VolumeSnapshotContent>(VolumeSnapshotContents, NAME);

  beforeEach(function () {
    client = new FakeKubeClient();
    csi = new ScriptedCsi();
    events = new FakeEventRecorder();
    client.seed(VolumeSnapshotClasses, snapshotClass);
  });

  function start(): void {
    manager = new Manager({ client });
    manager.add(
      createSidecar({
        client,
        informers: manager.informers,
        csi,
        listSnapshots: true,
        events,
        settings: { ...DEFAULT_SIDECAR_SETTINGS, driverName: DRIVER },
        retryIntervalStartMs: 20,
        retryIntervalMaxMs: 100,
      }),
    );
    running = manager.run();
  }

  afterEach(async function () {
    await manager.stop();
    await running;
  });

  it('creates snapshot-<uid>, records handle, size and readiness, and leaves no annotation', async function () {
    csi.creates = [{ snapshot: { id: 'snap-abc', ready: true, size: 4096 } }];
    client.seed(VolumeSnapshotContents, content());
    start();
    const done = await waitFor(
      () => (stored()?.status?.readyToUse ? stored() : undefined),
      5_000,
      'the content to become ready',
      () => JSON.stringify(stored()),
    );
    expect(done.status).to.deep.include({
      snapshotHandle: 'snap-abc',
      readyToUse: true,
      restoreSize: 4096,
      creationTime: 1767225600 * 1e9,
    });
    expect(done.metadata.annotations?.[ANN_VOLUME_SNAPSHOT_BEING_CREATED]).to.equal(undefined);
    expect(csi.calls[0]).to.deep.equal({
      method: 'CreateSnapshot',
      request: {
        name: `snapshot-${UID}`,
        source_volume_id: 'vol-1',
        parameters: { forceDelete: 'false' },
        secrets: {},
      },
    });
    // the annotation was set before the call: the write log shows it went on, then off
    const annotationWrites = client.writes
      .filter((w) => w.resource === 'volumesnapshotcontents' && w.verb === 'patch')
      .map((w) => JSON.stringify(w.body));
    expect(annotationWrites[0]).to.contain(`"${ANN_VOLUME_SNAPSHOT_BEING_CREATED}":"yes"`);
    expect(annotationWrites.at(-1)).to.contain(`"${ANN_VOLUME_SNAPSHOT_BEING_CREATED}":null`);
  });

  it('polls a snapshot that is not ready by calling CreateSnapshot again with the same name', async function () {
    csi.creates = [
      { snapshot: { id: 'snap-abc', ready: false } },
      { snapshot: { id: 'snap-abc', ready: false } },
      { snapshot: { id: 'snap-abc', ready: true, size: 10 } },
    ];
    client.seed(VolumeSnapshotContents, content());
    start();
    await waitFor(() => stored()?.status?.readyToUse, 5_000, 'the content to become ready');
    expect(csi.count('CreateSnapshot')).to.equal(3);
    expect(new Set(csi.calls.map((c) => (c.request as { name: string }).name))).to.deep.equal(
      new Set([`snapshot-${UID}`]),
    );
    expect(csi.count('ListSnapshots')).to.equal(0);
  });

  it('keeps the being-created annotation after a non-final error (timeout), with the error on the status', async function () {
    csi.creates = [{ error: grpcError(GrpcStatus.DEADLINE_EXCEEDED, 'took too long') }];
    client.seed(VolumeSnapshotContents, content());
    start();
    const failed = await waitFor(
      () => (stored()?.status?.error ? stored() : undefined),
      5_000,
      'the error to be recorded',
    );
    expect(failed.metadata.annotations?.[ANN_VOLUME_SNAPSHOT_BEING_CREATED]).to.equal('yes');
    expect(failed.status?.readyToUse).to.equal(false);
    expect(failed.status?.error?.message).to.match(
      /failed to take snapshot of the volume vol-1: DEADLINE_EXCEEDED: took too long$/,
    );
    expect(events.lines[0]).to.equal(
      'Warning SnapshotCreationFailed Failed to create snapshot: failed to take snapshot of the volume vol-1: DEADLINE_EXCEEDED: took too long',
    );
    // retried (CreateSnapshot again), and the annotation is never removed in between
    await waitFor(() => csi.count('CreateSnapshot') >= 3, 5_000, 'the call to be retried');
    expect(
      client.writes.some((w) =>
        JSON.stringify(w.body).includes(`"${ANN_VOLUME_SNAPSHOT_BEING_CREATED}":null`),
      ),
    ).to.equal(false);
  });

  it('removes the being-created annotation after a final error, then retries and succeeds', async function () {
    csi.creates = [
      { error: grpcError(GrpcStatus.INVALID_ARGUMENT, 'bad parameter') },
      { snapshot: { id: 'snap-abc', ready: true } },
    ];
    client.seed(VolumeSnapshotContents, content());
    start();
    await waitFor(
      () => stored()?.status?.readyToUse,
      5_000,
      'the retry to succeed',
      () => JSON.stringify(stored()),
    );
    const removals = client.writes.filter((w) =>
      JSON.stringify(w.body).includes(`"${ANN_VOLUME_SNAPSHOT_BEING_CREATED}":null`),
    );
    // once after the final error, once after the success
    expect(removals).to.have.length(2);
    expect(stored()?.status?.error).to.equal(undefined);
    expect(events.lines.some((l) => l.includes('INVALID_ARGUMENT: bad parameter'))).to.equal(true);
  });

  it('FAILED_PRECONDITION on delete keeps the finalizer and reports the reason on both objects', async function () {
    const reason =
      'snapshot snap-abc has dependent disks disk-1 and was created without forceDelete=true';
    csi.deleteError = grpcError(GrpcStatus.FAILED_PRECONDITION, reason);
    const deleting = content();
    deleting.metadata.annotations = { [ANN_VOLUME_SNAPSHOT_BEING_DELETED]: 'yes' };
    deleting.status = {
      snapshotHandle: 'snap-abc',
      readyToUse: true,
      restoreSize: 10,
      creationTime: 1,
    };
    client.seed(VolumeSnapshotContents, deleting);
    await client.delete(VolumeSnapshotContents, NAME);
    start();

    const refused = await waitFor(
      () => (stored()?.status?.error ? stored() : undefined),
      5_000,
      'the refusal to be recorded',
      () => JSON.stringify({ stored: stored(), calls: csi.calls, events: events.lines }),
    );
    expect(refused.metadata.finalizers).to.include(FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND);
    expect(refused.status?.error?.message).to.equal(
      `Failed to delete snapshot: FAILED_PRECONDITION: ${reason}`,
    );
    expect(refused.status?.readyToUse).to.equal(true);
    const deleteEvents = events.events.filter((e) => e.reason === 'SnapshotDeleteError');
    expect(deleteEvents.map((e) => `${e.kind} ${e.object}`)).to.have.members([
      `VolumeSnapshotContent ${NAME}`,
      'VolumeSnapshot ns/snap',
    ]);
    expect(deleteEvents.every((e) => e.message.includes(reason))).to.equal(true);

    // retries keep the content while the driver refuses, without piling up Events
    await waitFor(() => csi.count('DeleteSnapshot') >= 3, 5_000, 'the deletion to be retried');
    expect(stored()?.metadata.finalizers).to.include(FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND);
    expect(events.events.filter((e) => e.reason === 'SnapshotDeleteError')).to.have.length(2);

    // the dependents are gone: the next retry deletes the snapshot and releases the content
    csi.deleteError = undefined;
    await waitFor(
      () => stored() === undefined,
      5_000,
      'the content to be deleted',
      () => JSON.stringify(stored()),
    );
    expect(stored()).to.equal(undefined);
  });

  it('with policy Retain, releases the content without calling DeleteSnapshot', async function () {
    const retained = content();
    retained.spec.deletionPolicy = 'Retain';
    retained.metadata.annotations = { [ANN_VOLUME_SNAPSHOT_BEING_DELETED]: 'yes' };
    retained.status = { snapshotHandle: 'snap-abc', readyToUse: true };
    client.seed(VolumeSnapshotContents, retained);
    await client.delete(VolumeSnapshotContents, NAME);
    start();
    await waitFor(() => stored() === undefined, 5_000, 'the content to be released');
    expect(csi.calls).to.deep.equal([]);
  });

  it('never calls CreateSnapshot for a group member; lists it once the group cut it', async function () {
    const member = content();
    member.metadata.annotations = { [ANN_VOLUME_GROUP_SNAPSHOT_HANDLE]: 'group-1' };
    delete member.spec.volumeSnapshotClassName;
    client.seed(VolumeSnapshotContents, member);
    start();
    await manager.informers.waitForSync();
    // a content of ours created afterwards is handled, so the queue did run past the member
    const ours = content();
    ours.metadata.name = 'snapcontent-ours';
    csi.creates = [{ snapshot: { id: 'snap-ours', ready: true } }];
    await client.create(VolumeSnapshotContents, ours);
    await waitFor(
      () =>
        client.peek<VolumeSnapshotContent>(VolumeSnapshotContents, 'snapcontent-ours')?.status
          ?.readyToUse,
      5_000,
      'our content to be handled',
    );
    expect(csi.count('CreateSnapshot')).to.equal(1);
    expect(stored()?.status, 'no failure recorded on the member').to.equal(undefined);

    // the group's call cut it: its readiness is listed by the member handle
    await client.patch(
      VolumeSnapshotContents,
      NAME,
      undefined,
      'merge',
      {
        status: { snapshotHandle: 'member-1', volumeGroupSnapshotHandle: 'g-1', readyToUse: false },
      },
      { subresource: 'status' },
    );
    await client.patch(VolumeSnapshotContents, NAME, undefined, 'merge', {
      metadata: { labels: { touched: 'yes' } },
    });
    await waitFor(() => csi.count('ListSnapshots') > 0, 5_000, 'a ListSnapshots call');
    expect(csi.calls.find((call) => call.method === 'ListSnapshots')?.request).to.deep.include({
      snapshot_id: 'member-1',
    });
    expect(csi.count('CreateSnapshot')).to.equal(1);
  });

  it('leaves another driver’s content alone', async function () {
    const foreign = content();
    foreign.spec.driver = 'other.csi.dev';
    client.seed(VolumeSnapshotContents, foreign);
    start();
    await manager.informers.waitForSync();
    // a content of ours created afterwards is handled, so the queue did run past the foreign one
    const ours = content();
    ours.metadata.name = 'snapcontent-ours';
    csi.creates = [{ snapshot: { id: 'snap-ours', ready: true } }];
    await client.create(VolumeSnapshotContents, ours);
    await waitFor(
      () =>
        client.peek<VolumeSnapshotContent>(VolumeSnapshotContents, 'snapcontent-ours')?.status
          ?.readyToUse,
      5_000,
      'our content to be handled',
    );
    expect(csi.count('CreateSnapshot')).to.equal(1);
    expect(stored()?.status).to.equal(undefined);
  });
});

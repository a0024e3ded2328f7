import { expect } from 'chai';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  ANN_GROUP_DELETION_SECRET_NAME,
  ANN_GROUP_DELETION_SECRET_NAMESPACE,
  ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED,
  ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
  FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND,
  PARAM_GROUP_SNAPSHOTTER_SECRET_NAME,
  PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE,
  PARAM_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME,
  PARAM_VOLUME_GROUP_SNAPSHOT_NAME,
  PARAM_VOLUME_GROUP_SNAPSHOT_NAMESPACE,
  type VolumeGroupSnapshotContent,
} from '../../../../src/api/group-snapshot.js';
import type { CreateVolumeGroupSnapshotRequest } from '../../../../src/gen/csi/csi/v1/CreateVolumeGroupSnapshotRequest.js';
import type { CreateVolumeGroupSnapshotResponse__Output } from '../../../../src/gen/csi/csi/v1/CreateVolumeGroupSnapshotResponse.js';
import type { DeleteVolumeGroupSnapshotRequest } from '../../../../src/gen/csi/csi/v1/DeleteVolumeGroupSnapshotRequest.js';
import type { GetVolumeGroupSnapshotRequest } from '../../../../src/gen/csi/csi/v1/GetVolumeGroupSnapshotRequest.js';
import type { GetVolumeGroupSnapshotResponse__Output } from '../../../../src/gen/csi/csi/v1/GetVolumeGroupSnapshotResponse.js';
import type { VolumeGroupSnapshot__Output } from '../../../../src/gen/csi/csi/v1/VolumeGroupSnapshot.js';
import { Manager } from '../../../../src/kube/index.js';
import {
  Secrets,
  VolumeGroupSnapshotClasses,
  VolumeGroupSnapshotContents,
} from '../../../../src/kube/resource.js';
import {
  GroupContentSidecar,
  supportsGroupSnapshots,
  type GroupContentSidecarOptions,
  type GroupSnapshotterCsi,
} from '../../../../src/snapshot/sidecar/group-content-sidecar.js';
import { FakeEventRecorder } from '../../../support/fakes/event-recorder.js';
import { FakeKubeClient } from '../../../support/fakes/kube-client.js';
import { buildGroupClass, buildGroupContent } from '../../../support/group-fixtures.js';
import { waitFor } from '../../../support/processes.js';

const DRIVER = 'local.snapback.dev';
const UID = '5b0c1d2e-4444-5555-6666-777788889999';
const NAME = `groupsnapcontent-${UID}`;
const CREATED_AT = { seconds: '1772359200', nanos: 0 };

type Answer = { ready: boolean; members?: boolean } | { error: Error };

/** A CSI GroupController that answers from scripts and records every call. */
class ScriptedGroupCsi implements GroupSnapshotterCsi {
  readonly calls: Array<{ method: string; request: unknown }> = [];
  /** Answers in order; the last one repeats. */
  creates: Answer[] = [];
  gets: Answer[] = [];
  deletes: Array<{ error?: Error }> = [{}];
  /** The content as stored while CreateVolumeGroupSnapshot runs. */
  duringCreate: Array<VolumeGroupSnapshotContent | undefined> = [];
  constructor(private readonly peek: () => VolumeGroupSnapshotContent | undefined) {}

  private next<T>(script: T[]): T {
    const answer = script.length > 1 ? script.shift() : script[0];
    if (!answer) throw new Error('no scripted answer');
    return answer;
  }

  private group(
    id: string,
    answer: { ready: boolean },
    volumes: string[],
  ): VolumeGroupSnapshot__Output {
    return {
      group_snapshot_id: id,
      ready_to_use: answer.ready,
      creation_time: CREATED_AT,
      snapshots: volumes.map((volume) => ({
        snapshot_id: `snap-${volume}`,
        source_volume_id: volume,
        ready_to_use: answer.ready,
        size_bytes: '1073741824',
        creation_time: CREATED_AT,
        group_snapshot_id: id,
      })),
    };
  }

  async createVolumeGroupSnapshot(
    request: CreateVolumeGroupSnapshotRequest,
  ): Promise<CreateVolumeGroupSnapshotResponse__Output> {
    this.calls.push({ method: 'CreateVolumeGroupSnapshot', request });
    this.duringCreate.push(this.peek());
    const answer = this.next(this.creates);
    if ('error' in answer) throw answer.error;
    return { group_snapshot: this.group('group-1', answer, request.source_volume_ids ?? []) };
  }

  async getVolumeGroupSnapshot(
    request: GetVolumeGroupSnapshotRequest,
  ): Promise<GetVolumeGroupSnapshotResponse__Output> {
    this.calls.push({ method: 'GetVolumeGroupSnapshot', request });
    const answer = this.next(this.gets);
    if ('error' in answer) throw answer.error;
    const volumes = (request.snapshot_ids ?? []).map((id) => id.replace(/^snap-/, ''));
    return { group_snapshot: this.group(request.group_snapshot_id ?? '', answer, volumes) };
  }

  async deleteVolumeGroupSnapshot(request: DeleteVolumeGroupSnapshotRequest): Promise<unknown> {
    this.calls.push({ method: 'DeleteVolumeGroupSnapshot', request });
    const answer = this.next(this.deletes);
    if (answer.error) throw answer.error;
    return {};
  }

  count(method: string): number {
    return this.calls.filter((call) => call.method === method).length;
  }
}

function grpcError(code: GrpcStatus, details: string): Error {
  return Object.assign(new Error(`${code} ${GrpcStatus[code]}: ${details}`), { code, details });
}

const secretAnnotations = {
  [ANN_GROUP_DELETION_SECRET_NAME]: 'group-creds',
  [ANN_GROUP_DELETION_SECRET_NAMESPACE]: 'storage',
};

function dynamicContent(annotations: Record<string, string> = secretAnnotations) {
  return buildGroupContent({
    name: NAME,
    driver: DRIVER,
    groupRef: { name: 'nightly', namespace: 'apps', uid: UID },
    className: 'group',
    volumeHandles: ['vol-a', 'vol-b'],
    finalizers: [FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND],
    annotations,
  });
}

describe('sidecar group controller (fake API server, scripted GroupController)', function () {
  let client: FakeKubeClient;
  let csi: ScriptedGroupCsi;
  let recorder: FakeEventRecorder;
  let manager: Manager | undefined;
  let running: Promise<unknown> | undefined;

  const stored = () => client.peek<VolumeGroupSnapshotContent>(VolumeGroupSnapshotContents, NAME);
  const describeStored = () => JSON.stringify(stored());

  beforeEach(function () {
    client = new FakeKubeClient();
    csi = new ScriptedGroupCsi(stored);
    recorder = new FakeEventRecorder();
    client.seed(
      VolumeGroupSnapshotClasses,
      buildGroupClass({
        name: 'group',
        driver: DRIVER,
        parameters: {
          consistency: 'crash',
          [PARAM_GROUP_SNAPSHOTTER_SECRET_NAME]: 'group-creds',
          [PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE]: 'storage',
        },
      }),
    );
    client.seed(Secrets, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'group-creds', namespace: 'storage' },
      data: { token: Buffer.from('s3cret').toString('base64') },
    } as never);
  });

  function start(options: Partial<GroupContentSidecarOptions> = {}): void {
    manager = new Manager({ client });
    manager.add(
      new GroupContentSidecar({
        client,
        informers: manager.informers,
        csi,
        recorder,
        driverName: DRIVER,
        retryIntervalStartMs: 20,
        retryIntervalMaxMs: 100,
        ...options,
      }),
    );
    running = manager.run();
  }

  afterEach(async function () {
    await manager?.stop();
    await running;
    manager = undefined;
  });

  it('creates groupsnapshot-<uid> with the class parameters and secret, under the being-created annotation, and records the group', async function () {
    csi.creates = [{ ready: true }];
    client.seed(VolumeGroupSnapshotContents, dynamicContent());
    start();
    const done = await waitFor(
      () => (stored()?.status?.readyToUse ? stored() : undefined),
      5_000,
      'the group content to become ready',
      describeStored,
    );
    expect(csi.calls[0]).to.deep.equal({
      method: 'CreateVolumeGroupSnapshot',
      request: {
        name: `groupsnapshot-${UID}`,
        source_volume_ids: ['vol-a', 'vol-b'],
        parameters: { consistency: 'crash' },
        secrets: { token: 's3cret' },
      },
    });
    expect(
      csi.duringCreate[0]?.metadata.annotations?.[ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED],
    ).to.equal('yes');
    expect(done.metadata.annotations?.[ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED]).to.equal(
      undefined,
    );
    expect(done.status).to.deep.equal({
      volumeGroupSnapshotHandle: 'group-1',
      readyToUse: true,
      creationTime: '2026-03-01T10:00:00Z',
      volumeSnapshotInfoList: ['vol-a', 'vol-b'].map((volume) => ({
        volumeHandle: volume,
        snapshotHandle: `snap-${volume}`,
        readyToUse: true,
        creationTime: 1772359200 * 1e9,
        restoreSize: 1073741824,
      })),
    });
    expect(csi.count('GetVolumeGroupSnapshot')).to.equal(0);
  });

  it('with extra create metadata, passes the group and content names', async function () {
    csi.creates = [{ ready: true }];
    client.seed(VolumeGroupSnapshotContents, dynamicContent());
    start({
      extraCreateMetadata: true,
      groupSnapshotNamePrefix: 'grp',
      groupSnapshotNameUuidLength: 8,
    });
    await waitFor(() => stored()?.status?.readyToUse, 5_000, 'ready', describeStored);
    const request = csi.calls[0]!.request as CreateVolumeGroupSnapshotRequest;
    expect(request.name).to.equal('grp-5b0c1d2e');
    expect(request.parameters).to.deep.equal({
      consistency: 'crash',
      [PARAM_VOLUME_GROUP_SNAPSHOT_NAME]: 'nightly',
      [PARAM_VOLUME_GROUP_SNAPSHOT_NAMESPACE]: 'apps',
      [PARAM_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME]: NAME,
    });
  });

  it('polls a group that is not ready with GetVolumeGroupSnapshot, with backoff, until it is', async function () {
    csi.creates = [{ ready: false }];
    csi.gets = [{ ready: false }, { ready: false }, { ready: true }];
    client.seed(VolumeGroupSnapshotContents, dynamicContent());
    start();
    const done = await waitFor(
      () => (stored()?.status?.readyToUse ? stored() : undefined),
      5_000,
      'the group to become ready',
      describeStored,
    );
    expect(csi.count('CreateVolumeGroupSnapshot')).to.equal(1);
    expect(csi.count('GetVolumeGroupSnapshot')).to.equal(3);
    expect(csi.calls[1]!.request).to.deep.equal({
      group_snapshot_id: 'group-1',
      snapshot_ids: ['snap-vol-a', 'snap-vol-b'],
      secrets: { token: 's3cret' },
    });
    expect(done.status?.volumeSnapshotInfoList?.map((info) => info.readyToUse)).to.deep.equal([
      true,
      true,
    ]);
    // once ready, the driver is not asked again
    const calls = csi.calls.length;
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(csi.calls.length).to.equal(calls);
  });

  it('a final error: the annotation goes, the error is on the status with a Warning, and the retry succeeds', async function () {
    csi.creates = [
      { error: grpcError(GrpcStatus.INVALID_ARGUMENT, 'disks in two zones') },
      { ready: true },
    ];
    client.seed(VolumeGroupSnapshotContents, dynamicContent());
    start();
    await waitFor(
      () => stored()?.status?.readyToUse,
      5_000,
      'the retry to succeed',
      describeStored,
    );
    expect(recorder.lines[0]).to.equal(
      'Warning GroupSnapshotCreationFailed Failed to create group snapshot: failed to take group ' +
        'snapshot of the volumes [vol-a, vol-b]: INVALID_ARGUMENT: disks in two zones',
    );
    const removals = client.writes.filter((w) =>
      JSON.stringify(w.body).includes(`"${ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED}":null`),
    );
    expect(removals).to.have.length(2);
    expect(stored()?.status?.error).to.equal(undefined);
    expect(csi.count('CreateVolumeGroupSnapshot')).to.equal(2);
  });

  it('a timeout keeps the being-created annotation, records the error and retries', async function () {
    csi.creates = [{ error: grpcError(GrpcStatus.DEADLINE_EXCEEDED, 'took too long') }];
    client.seed(VolumeGroupSnapshotContents, dynamicContent());
    start();
    const failed = await waitFor(
      () => (stored()?.status?.error ? stored() : undefined),
      5_000,
      'the error to be recorded',
      describeStored,
    );
    expect(failed.metadata.annotations?.[ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED]).to.equal('yes');
    expect(failed.status?.readyToUse).to.equal(false);
    await waitFor(
      () => csi.count('CreateVolumeGroupSnapshot') >= 3,
      5_000,
      'the call to be retried',
    );
    expect(
      client.writes.some((w) =>
        JSON.stringify(w.body).includes(`"${ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED}":null`),
      ),
    ).to.equal(false);
    // a retry is a check now, reported under upstream's other reason (once per message)
    expect(recorder.events.map((e) => e.reason)).to.deep.equal([
      'GroupSnapshotCreationFailed',
      'GroupSnapshotContentCheckandUpdateFailed',
    ]);
  });

  it('an unreadable secret fails before any call, on the status and as an Event', async function () {
    client.seed(
      VolumeGroupSnapshotContents,
      dynamicContent({
        [ANN_GROUP_DELETION_SECRET_NAME]: 'missing',
        [ANN_GROUP_DELETION_SECRET_NAMESPACE]: 'storage',
      }),
    );
    start();
    const failed = await waitFor(
      () => (stored()?.status?.error ? stored() : undefined),
      5_000,
      'the error to be recorded',
      describeStored,
    );
    expect(failed.status?.error?.message).to.contain('secret storage/missing could not be read');
    expect(recorder.events[0]?.reason).to.equal('GroupSnapshotCreationFailed');
    expect(csi.calls).to.have.length(0);
  });

  it('fills a pre-provisioned content from GetVolumeGroupSnapshot', async function () {
    csi.gets = [{ ready: true }];
    client.seed(
      VolumeGroupSnapshotContents,
      buildGroupContent({
        name: NAME,
        driver: DRIVER,
        groupRef: { name: 'imported', namespace: 'apps', uid: UID },
        groupSnapshotHandles: {
          volumeGroupSnapshotHandle: 'group-pre',
          volumeSnapshotHandles: ['snap-vol-x', 'snap-vol-y'],
        },
        finalizers: [FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND],
      }),
    );
    start();
    const done = await waitFor(
      () => (stored()?.status?.readyToUse ? stored() : undefined),
      5_000,
      'the pre-provisioned content to be filled',
      describeStored,
    );
    expect(csi.calls).to.deep.equal([
      {
        method: 'GetVolumeGroupSnapshot',
        request: {
          group_snapshot_id: 'group-pre',
          snapshot_ids: ['snap-vol-x', 'snap-vol-y'],
          secrets: {},
        },
      },
    ]);
    expect(done.status?.volumeGroupSnapshotHandle).to.equal('group-pre');
    expect(done.status?.creationTime).to.equal('2026-03-01T10:00:00Z');
    expect(done.status?.volumeSnapshotInfoList?.map((info) => info.volumeHandle)).to.deep.equal([
      'vol-x',
      'vol-y',
    ]);
  });

  describe('deletion', function () {
    function readyContent(policy: 'Delete' | 'Retain') {
      return buildGroupContent({
        name: NAME,
        driver: DRIVER,
        groupRef: { name: 'nightly', namespace: 'apps', uid: UID },
        className: 'group',
        deletionPolicy: policy,
        volumeHandles: ['vol-a', 'vol-b'],
        finalizers: [FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND],
        annotations: { ...secretAnnotations, [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes' },
        deletionTimestamp: '2026-03-01T11:00:00Z',
        status: {
          volumeGroupSnapshotHandle: 'group-1',
          readyToUse: true,
          creationTime: '2026-03-01T10:00:00Z',
          volumeSnapshotInfoList: [
            { volumeHandle: 'vol-a', snapshotHandle: 'snap-vol-a', readyToUse: true },
            { volumeHandle: 'vol-b', snapshotHandle: 'snap-vol-b', readyToUse: true },
          ],
        },
      });
    }

    it('Delete: DeleteVolumeGroupSnapshot with every member and the deletion secret, then the finalizer goes', async function () {
      client.seed(VolumeGroupSnapshotContents, readyContent('Delete'));
      start();
      await waitFor(() => !stored(), 5_000, 'the content to be released', describeStored);
      expect(csi.calls).to.deep.equal([
        {
          method: 'DeleteVolumeGroupSnapshot',
          request: {
            group_snapshot_id: 'group-1',
            snapshot_ids: ['snap-vol-a', 'snap-vol-b'],
            secrets: { token: 's3cret' },
          },
        },
      ]);
      const statusWrite = client.writes.find(
        (w) => w.resource === 'volumegroupsnapshotcontents/status',
      );
      expect(JSON.stringify(statusWrite?.body)).to.contain('"volumeGroupSnapshotHandle":null');
    });

    it('Retain: no CSI call, only the finalizer goes', async function () {
      client.seed(VolumeGroupSnapshotContents, readyContent('Retain'));
      start();
      await waitFor(() => !stored(), 5_000, 'the content to be released', describeStored);
      expect(csi.calls).to.have.length(0);
    });

    it('a refused delete keeps the finalizer, reports the reason on the status and as a Warning, and is retried', async function () {
      csi.deletes = [
        { error: grpcError(GrpcStatus.FAILED_PRECONDITION, 'disk d-1 was made from snap-vol-a') },
        {},
      ];
      client.seed(VolumeGroupSnapshotContents, readyContent('Delete'));
      start();
      await waitFor(() => !stored(), 5_000, 'the retry to release the content', describeStored);
      expect(csi.count('DeleteVolumeGroupSnapshot')).to.equal(2);
      expect(recorder.lines).to.deep.equal([
        'Warning GroupSnapshotDeleteError Failed to delete group snapshot: FAILED_PRECONDITION: disk d-1 was made from snap-vol-a',
      ]);
      const errorWrite = client.writes.find(
        (w) =>
          w.resource === 'volumegroupsnapshotcontents/status' &&
          JSON.stringify(w.body).includes('FAILED_PRECONDITION'),
      );
      expect(errorWrite, 'the error was written to the status').to.not.equal(undefined);
      // the finalizer stayed while the delete was refused: only the second call released it
      const finalizerWrites = client.writes.filter(
        (w) =>
          w.resource === 'volumegroupsnapshotcontents' &&
          JSON.stringify(w.body).includes('finalizers'),
      );
      expect(finalizerWrites).to.have.length(1);
    });
  });

  it('leaves another driver alone', async function () {
    client.seed(
      VolumeGroupSnapshotContents,
      buildGroupContent({
        name: NAME,
        driver: 'other.csi.example.com',
        groupRef: { name: 'nightly', namespace: 'apps', uid: UID },
        volumeHandles: ['vol-a'],
      }),
    );
    start();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(csi.calls).to.have.length(0);
    expect(client.writes).to.have.length(0);
  });

  describe('supportsGroupSnapshots', function () {
    it('true with CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT, false without, false on UNIMPLEMENTED', async function () {
      const answering = (types: string[]) => ({
        groupControllerGetCapabilities: async () => ({
          capabilities: types.map((type) => ({ rpc: { type }, type: 'rpc' as const })),
        }),
      });
      expect(
        await supportsGroupSnapshots(
          answering(['CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT']) as never,
          1_000,
        ),
      ).to.equal(true);
      expect(await supportsGroupSnapshots(answering([]) as never, 1_000)).to.equal(false);
      const unimplemented = {
        groupControllerGetCapabilities: async () => {
          throw grpcError(GrpcStatus.UNIMPLEMENTED, 'unknown service csi.v1.GroupController');
        },
      };
      expect(await supportsGroupSnapshots(unimplemented as never, 1_000)).to.equal(false);
      const down = {
        groupControllerGetCapabilities: async () => {
          throw grpcError(GrpcStatus.UNAVAILABLE, 'connection refused');
        },
      };
      let thrown: unknown;
      await supportsGroupSnapshots(down as never, 1_000).catch((error: unknown) => {
        thrown = error;
      });
      expect(String(thrown)).to.contain('connection refused');
    });
  });
});

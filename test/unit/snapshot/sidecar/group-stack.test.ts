import { expect } from 'chai';
import type { VolumeGroupSnapshot } from '../../../../src/api/group-snapshot.js';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../../../../src/api/snapshot.js';
import type { CreateVolumeGroupSnapshotRequest } from '../../../../src/gen/csi/csi/v1/CreateVolumeGroupSnapshotRequest.js';
import type { ListSnapshotsRequest } from '../../../../src/gen/csi/csi/v1/ListSnapshotsRequest.js';
import type { VolumeGroupSnapshot__Output } from '../../../../src/gen/csi/csi/v1/VolumeGroupSnapshot.js';
import {
  InformerFactory,
  PersistentVolumeClaims,
  PersistentVolumes,
  VolumeSnapshotContents,
  VolumeSnapshots,
  type Runnable,
} from '../../../../src/kube/index.js';
import {
  VolumeGroupSnapshotClasses,
  VolumeGroupSnapshotContents,
  VolumeGroupSnapshots,
} from '../../../../src/kube/resource.js';
import { createSnapshotController } from '../../../../src/snapshot/controller/snapshot-controller.js';
import { createGroupSnapshotController } from '../../../../src/snapshot/group/group-snapshot-controller.js';
import { createSidecar } from '../../../../src/snapshot/sidecar/content-sidecar.js';
import { GroupContentSidecar } from '../../../../src/snapshot/sidecar/group-content-sidecar.js';
import { DEFAULT_SIDECAR_SETTINGS } from '../../../../src/snapshot/sidecar/plan.js';
import { eventually } from '../../kube/eventually.js';
import { FakeEventRecorder } from '../../../support/fakes/event-recorder.js';
import { FakeKubeClient } from '../../../support/fakes/kube-client.js';
import { buildPv, buildPvc } from '../../../support/fixtures.js';
import { buildGroupClass } from '../../../support/group-fixtures.js';

const NS = 'ns';
const DRIVER = 'local.snapback.dev';
const CREATED_AT = { seconds: '1772359200', nanos: 0 };

/** One driver behind both sidecars: the group calls cut members, ListSnapshots reports them. */
class GroupDriver {
  readonly calls: string[] = [];
  groupReady = false;
  members: string[] = [];

  private group(id: string): VolumeGroupSnapshot__Output {
    return {
      group_snapshot_id: id,
      ready_to_use: this.groupReady,
      creation_time: CREATED_AT,
      snapshots: this.members.map((volume) => this.snapshot(volume, id)),
    };
  }

  private snapshot(volume: string, groupId: string) {
    return {
      snapshot_id: `snap-${volume}`,
      source_volume_id: volume,
      ready_to_use: this.groupReady,
      size_bytes: String(2 ** 30),
      creation_time: CREATED_AT,
      group_snapshot_id: groupId,
    };
  }

  readonly groupCsi = {
    createVolumeGroupSnapshot: async (request: CreateVolumeGroupSnapshotRequest) => {
      this.calls.push('CreateVolumeGroupSnapshot');
      this.members = [...(request.source_volume_ids ?? [])];
      return { group_snapshot: this.group('group-1') };
    },
    getVolumeGroupSnapshot: async () => {
      this.calls.push('GetVolumeGroupSnapshot');
      return { group_snapshot: this.group('group-1') };
    },
    deleteVolumeGroupSnapshot: async () => {
      this.calls.push('DeleteVolumeGroupSnapshot');
      return {};
    },
  };

  readonly csi = {
    createSnapshot: async (): Promise<never> => {
      this.calls.push('CreateSnapshot');
      throw new Error('a member must not be snapshotted on its own');
    },
    deleteSnapshot: async () => {
      this.calls.push('DeleteSnapshot');
      return {};
    },
    listSnapshots: async (request: ListSnapshotsRequest) => {
      this.calls.push('ListSnapshots');
      const volume = (request.snapshot_id ?? '').replace(/^snap-/, '');
      return {
        entries: this.members.includes(volume)
          ? [{ snapshot: this.snapshot(volume, 'group-1') }]
          : [],
        next_token: '',
      };
    },
  };
}

/**
 * The whole embedded stack for a group on one fake API server: the snapshot controller and
 * its group paths, the CSI snapshotter and its group paths, against one scripted driver.
 */
describe('sidecar group paths with the rest of the embedded stack', function () {
  let client: FakeKubeClient;
  let informers: InformerFactory;
  let recorder: FakeEventRecorder;
  let driver: GroupDriver;
  let parts: Runnable[];

  const state = () =>
    JSON.stringify({
      groups: client.all(VolumeGroupSnapshots),
      groupContents: client.all(VolumeGroupSnapshotContents),
      snapshots: client.all(VolumeSnapshots),
      contents: client.all(VolumeSnapshotContents),
      calls: driver.calls,
      events: recorder.lines,
    });

  beforeEach(async function () {
    client = new FakeKubeClient();
    informers = new InformerFactory(client);
    recorder = new FakeEventRecorder();
    driver = new GroupDriver();
    client.seed(VolumeGroupSnapshotClasses, buildGroupClass({ name: 'gold', driver: DRIVER }));
    for (const suffix of ['a', 'b']) {
      client.seed(
        PersistentVolumes,
        buildPv({
          name: `pv-${suffix}`,
          driver: DRIVER,
          claimRef: { name: `data-${suffix}`, namespace: NS, uid: `uid-data-${suffix}` },
        }),
      );
      client.seed(
        PersistentVolumeClaims,
        buildPvc({
          name: `data-${suffix}`,
          namespace: NS,
          uid: `uid-data-${suffix}`,
          labels: { app: 'db' },
          volumeName: `pv-${suffix}`,
          phase: 'Bound',
        }),
      );
    }
    const queue = { workers: 2, retryIntervalStartMs: 5, retryIntervalMaxMs: 40 };
    parts = [
      createSnapshotController({ client, informers, recorder, ...queue }),
      createGroupSnapshotController({ client, informers, recorder, ...queue }),
      createSidecar({
        client,
        informers,
        csi: driver.csi,
        listSnapshots: true,
        events: recorder,
        settings: { ...DEFAULT_SIDECAR_SETTINGS, driverName: DRIVER },
        ...queue,
      }),
      new GroupContentSidecar({
        client,
        informers,
        csi: driver.groupCsi,
        recorder,
        driverName: DRIVER,
        ...queue,
      }),
    ];
    informers.start();
    await Promise.all(parts.map((part) => part.start()));
  });

  afterEach(async function () {
    await Promise.all(parts.map((part) => part.stop()));
    await informers.stop();
  });

  it('a group is cut once, its members become ready without CreateSnapshot, and deletion goes through DeleteVolumeGroupSnapshot', async function () {
    const created = await client.create<VolumeGroupSnapshot>(VolumeGroupSnapshots, {
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshot',
      metadata: { name: 'g', namespace: NS },
      spec: {
        source: { selector: { matchLabels: { app: 'db' } } },
        volumeGroupSnapshotClassName: 'gold',
      },
    });
    const group = () => client.peek<VolumeGroupSnapshot>(VolumeGroupSnapshots, 'g', NS);
    const members = () => client.all<VolumeSnapshot>(VolumeSnapshots);

    // cut, not ready: the members exist and wait for the group
    await eventually(() => client.all(VolumeSnapshotContents).length === 2, state, 5_000);
    expect(group()?.status?.readyToUse).to.not.equal(true);

    driver.groupReady = true;
    await eventually(
      () =>
        group()?.status?.readyToUse === true &&
        members().length === 2 &&
        members().every((snapshot) => snapshot.status?.readyToUse === true),
      state,
      5_000,
    );
    expect(driver.calls.filter((call) => call === 'CreateVolumeGroupSnapshot')).to.have.length(1);
    expect(driver.calls).to.not.include('CreateSnapshot');
    for (const content of client.all<VolumeSnapshotContent>(VolumeSnapshotContents)) {
      expect(content.status?.volumeGroupSnapshotHandle).to.equal('group-1');
    }
    const groupContent = client.peek(
      VolumeGroupSnapshotContents,
      `groupsnapcontent-${created.metadata.uid}`,
    );
    expect(groupContent).to.not.equal(undefined);

    await client.delete(VolumeGroupSnapshots, 'g', NS);
    await eventually(
      () =>
        group() === undefined &&
        members().length === 0 &&
        client.all(VolumeSnapshotContents).length === 0 &&
        client.all(VolumeGroupSnapshotContents).length === 0,
      state,
      5_000,
    );
    expect(driver.calls.filter((call) => call === 'DeleteVolumeGroupSnapshot')).to.have.length(1);
    // members go with the group's call, never one by one
    expect(driver.calls).to.not.include('DeleteSnapshot');
  });
});

import { expect } from 'chai';
import {
  FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND,
  type VolumeGroupSnapshot,
} from '../../../../src/api/group-snapshot.js';
import {
  FINALIZER_VOLUME_SNAPSHOT_IN_GROUP,
  type VolumeSnapshot,
  type VolumeSnapshotContent,
} from '../../../../src/api/snapshot.js';
import {
  InformerFactory,
  PersistentVolumeClaims,
  PersistentVolumes,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../../../../src/kube/index.js';
import {
  createSnapshotController,
  type SnapshotController,
} from '../../../../src/snapshot/controller/snapshot-controller.js';
import {
  createGroupSnapshotController,
  type GroupSnapshotController,
} from '../../../../src/snapshot/group/group-snapshot-controller.js';
import {
  VolumeGroupSnapshotClasses,
  VolumeGroupSnapshotContents,
  VolumeGroupSnapshots,
} from '../../../../src/kube/resource.js';
import { eventually } from '../../kube/eventually.js';
import { FakeEventRecorder } from '../../../support/fakes/event-recorder.js';
import { FakeKubeClient } from '../../../support/fakes/kube-client.js';
import { buildPv, buildPvc } from '../../../support/fixtures.js';
import { buildGroupClass } from '../../../support/group-fixtures.js';

const NS = 'ns';
const DRIVER = 'local.snapback.dev';

/**
 * The group controller next to the snapshot controller on one fake API server, as the stack
 * runs them: the members it makes are completed by the snapshot controller, and a group's
 * deletion takes its members with it. The test plays the CSI snapshotter.
 */
describe('GroupSnapshotController with the SnapshotController', function () {
  let client: FakeKubeClient;
  let informers: InformerFactory;
  let recorder: FakeEventRecorder;
  let groups: GroupSnapshotController;
  let snapshots: SnapshotController;

  const vgs = (name: string) => client.peek<VolumeGroupSnapshot>(VolumeGroupSnapshots, name, NS);
  const memberSnapshots = () => client.all<VolumeSnapshot>(VolumeSnapshots);
  const memberContents = () => client.all<VolumeSnapshotContent>(VolumeSnapshotContents);
  const state = () =>
    JSON.stringify({
      groups: client.all(VolumeGroupSnapshots),
      groupContents: client.all(VolumeGroupSnapshotContents),
      snapshots: memberSnapshots(),
      contents: memberContents(),
      events: recorder.lines,
    });

  beforeEach(async function () {
    client = new FakeKubeClient();
    informers = new InformerFactory(client);
    recorder = new FakeEventRecorder();
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
    const common = {
      client,
      informers,
      recorder,
      workers: 2,
      retryIntervalStartMs: 5,
      retryIntervalMaxMs: 50,
    };
    snapshots = createSnapshotController(common);
    groups = createGroupSnapshotController(common);
    informers.start();
    await Promise.all([snapshots.start(), groups.start()]);
  });

  afterEach(async function () {
    await Promise.all([groups.stop(), snapshots.stop()]);
    await informers.stop();
  });

  it('members become ready through the snapshot controller and go with their group', async function () {
    const created = await client.create<VolumeGroupSnapshot>(VolumeGroupSnapshots, {
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshot',
      metadata: { name: 'g', namespace: NS },
      spec: {
        source: { selector: { matchLabels: { app: 'db' } } },
        volumeGroupSnapshotClassName: 'gold',
      },
    });
    const contentName = `groupsnapcontent-${created.metadata.uid}`;
    await eventually(
      () => vgs('g')?.status?.boundVolumeGroupSnapshotContentName === contentName,
      state,
    );
    await client.patch(
      VolumeGroupSnapshotContents,
      contentName,
      undefined,
      'merge',
      {
        status: {
          volumeGroupSnapshotHandle: 'group-1',
          creationTime: '2026-03-01T12:00:00Z',
          readyToUse: true,
          volumeSnapshotInfoList: ['a', 'b'].map((suffix) => ({
            volumeHandle: `handle-pv-${suffix}`,
            snapshotHandle: `snap-${suffix}`,
            creationTime: 1_772_366_400_000_000_000,
            readyToUse: true,
            restoreSize: 2 ** 30,
          })),
        },
      },
      { subresource: 'status' },
    );
    await eventually(
      () =>
        vgs('g')?.status?.readyToUse === true &&
        memberSnapshots().length === 2 &&
        memberSnapshots().every(
          (snapshot) =>
            snapshot.status?.readyToUse === true && snapshot.status.restoreSize === '1Gi',
        ),
      state,
    );
    expect(vgs('g')!.metadata.finalizers).to.include(FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND);
    for (const snapshot of memberSnapshots()) {
      expect(snapshot.metadata.finalizers).to.include(FINALIZER_VOLUME_SNAPSHOT_IN_GROUP);
      expect(snapshot.status!.volumeGroupSnapshotName).to.equal('g');
    }

    // a member cannot be deleted on its own while its group exists
    const [first] = memberSnapshots();
    await client.delete(VolumeSnapshots, first!.metadata.name!, NS);
    await eventually(
      () =>
        recorder.lines.some((line) =>
          line.startsWith(
            `Warning SnapshotDeletePending deletion of the individual volume snapshot ns/${first!.metadata.name} is not allowed`,
          ),
        ),
      state,
    );
    expect(memberContents().every((content) => !content.metadata.deletionTimestamp)).to.equal(true);

    // the group goes, then its members and their contents; the test plays the CSI snapshotter,
    // releasing each content the controllers delete
    await client.delete(VolumeGroupSnapshots, 'g', NS);
    const release = async () => {
      for (const type of [VolumeGroupSnapshotContents, VolumeSnapshotContents]) {
        for (const object of client.all<VolumeSnapshotContent>(type)) {
          if (object.metadata.deletionTimestamp && object.metadata.finalizers?.length) {
            await client.patch(type, object.metadata.name!, undefined, 'merge', {
              metadata: { finalizers: null },
            });
          }
        }
      }
    };
    await eventually(async () => {
      await release();
      return (
        vgs('g') === undefined &&
        memberSnapshots().length === 0 &&
        memberContents().length === 0 &&
        client.all(VolumeGroupSnapshotContents).length === 0
      );
    }, state);
  });
});

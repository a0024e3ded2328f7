import { expect } from 'chai';
import {
  ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
  ANN_VOLUME_GROUP_SNAPSHOT_HANDLE,
  FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND,
  FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND,
  memberVolumeSnapshotContentNameFor,
  memberVolumeSnapshotNameFor,
  type VolumeGroupSnapshot,
  type VolumeGroupSnapshotContent,
} from '../../../../src/api/group-snapshot.js';
import {
  FINALIZER_VOLUME_SNAPSHOT_IN_GROUP,
  type VolumeSnapshot,
  type VolumeSnapshotContent,
} from '../../../../src/api/snapshot.js';
import {
  ApiError,
  InformerFactory,
  PersistentVolumeClaims,
  PersistentVolumes,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../../../../src/kube/index.js';
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
import { buildGroupClass, buildGroupContent } from '../../../support/group-fixtures.js';

const NS = 'ns';
const DRIVER = 'local.snapback.dev';

/** The controller against the in-memory API server, with the test playing the CSI snapshotter. */
describe('GroupSnapshotController (fake API server)', function () {
  let client: FakeKubeClient;
  let informers: InformerFactory;
  let recorder: FakeEventRecorder;
  let controller: GroupSnapshotController;

  const vgs = (name: string) => client.peek<VolumeGroupSnapshot>(VolumeGroupSnapshots, name, NS);
  const vgsc = (name: string) =>
    client.peek<VolumeGroupSnapshotContent>(VolumeGroupSnapshotContents, name);
  const vs = (name: string) => client.peek<VolumeSnapshot>(VolumeSnapshots, name, NS);
  const vsc = (name: string) => client.peek<VolumeSnapshotContent>(VolumeSnapshotContents, name);
  const state = () =>
    JSON.stringify({
      groups: client.all(VolumeGroupSnapshots),
      groupContents: client.all(VolumeGroupSnapshotContents),
      snapshots: client.all(VolumeSnapshots),
      contents: client.all(VolumeSnapshotContents),
      events: recorder.lines,
    });

  beforeEach(async function () {
    client = new FakeKubeClient();
    informers = new InformerFactory(client);
    recorder = new FakeEventRecorder();
    client.seed(
      VolumeGroupSnapshotClasses,
      buildGroupClass({ name: 'gold', driver: DRIVER, isDefault: true }),
      buildGroupClass({ name: 'keep', driver: DRIVER, deletionPolicy: 'Retain' }),
    );
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
    controller = createGroupSnapshotController({
      client,
      informers,
      recorder,
      workers: 2,
      retryIntervalStartMs: 5,
      retryIntervalMaxMs: 50,
    });
    informers.start();
    await controller.start();
  });

  afterEach(async function () {
    await controller.stop();
    await informers.stop();
  });

  async function createGroup(name: string, className?: string): Promise<VolumeGroupSnapshot> {
    return client.create<VolumeGroupSnapshot>(VolumeGroupSnapshots, {
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshot',
      metadata: { name, namespace: NS },
      spec: {
        source: { selector: { matchLabels: { app: 'db' } } },
        ...(className ? { volumeGroupSnapshotClassName: className } : {}),
      },
    });
  }

  /** What the CSI snapshotter's group path does: the group cut, its members listed. */
  async function snapshotterReports(contentName: string, ready = true): Promise<void> {
    await client.patch(
      VolumeGroupSnapshotContents,
      contentName,
      undefined,
      'merge',
      {
        status: {
          volumeGroupSnapshotHandle: 'group-1',
          creationTime: '2026-03-01T12:00:00Z',
          readyToUse: ready,
          volumeSnapshotInfoList: ['a', 'b'].map((suffix) => ({
            volumeHandle: `handle-pv-${suffix}`,
            snapshotHandle: `snap-${suffix}`,
            creationTime: 1_772_366_400_000_000_000,
            readyToUse: ready,
            restoreSize: 2 ** 30,
          })),
        },
      },
      { subresource: 'status' },
    );
  }

  /** A dynamic group taken to readyToUse with its two members. */
  async function readyGroup(name: string, className?: string): Promise<VolumeGroupSnapshot> {
    const created = await createGroup(name, className);
    const contentName = `groupsnapcontent-${created.metadata.uid}`;
    await eventually(
      () => vgs(name)?.status?.boundVolumeGroupSnapshotContentName === contentName,
      state,
    );
    await snapshotterReports(contentName);
    await eventually(() => vgs(name)?.status?.readyToUse === true, state);
    return created;
  }

  it('takes a dynamic group with the default class to readyToUse, members and all', async function () {
    const created = await createGroup('g');
    const uid = created.metadata.uid!;
    const contentName = `groupsnapcontent-${uid}`;
    await eventually(
      () => vgs('g')?.status?.boundVolumeGroupSnapshotContentName === contentName,
      state,
    );
    expect(vgs('g')!.spec.volumeGroupSnapshotClassName).to.equal('gold');
    expect(vgsc(contentName)!.spec).to.deep.include({
      deletionPolicy: 'Delete',
      driver: DRIVER,
      volumeGroupSnapshotClassName: 'gold',
      source: { volumeHandles: ['handle-pv-a', 'handle-pv-b'] },
    });
    expect(vgsc(contentName)!.spec.volumeGroupSnapshotRef).to.deep.include({ name: 'g', uid });
    await eventually(
      () =>
        !!vgsc(contentName)?.metadata.finalizers?.includes(
          FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND,
        ) && !!vgs('g')?.metadata.finalizers?.includes(FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND),
      state,
    );
    expect(client.all(VolumeSnapshots)).to.have.length(0);

    await snapshotterReports(contentName);
    await eventually(() => vgs('g')?.status?.readyToUse === true, state);
    expect(vgs('g')!.status).to.deep.include({ creationTime: '2026-03-01T12:00:00Z' });
    for (const suffix of ['a', 'b']) {
      const handle = `handle-pv-${suffix}`;
      const snapshot = vs(memberVolumeSnapshotNameFor(uid, handle))!;
      const content = vsc(memberVolumeSnapshotContentNameFor(uid, handle))!;
      expect(snapshot.metadata.ownerReferences).to.deep.equal([
        {
          apiVersion: 'groupsnapshot.storage.k8s.io/v1',
          kind: 'VolumeGroupSnapshot',
          name: 'g',
          uid,
        },
      ]);
      expect(snapshot.metadata.finalizers).to.deep.equal([FINALIZER_VOLUME_SNAPSHOT_IN_GROUP]);
      expect(snapshot.spec.source).to.deep.equal({ persistentVolumeClaimName: `data-${suffix}` });
      expect(snapshot.status).to.deep.equal({
        boundVolumeSnapshotContentName: content.metadata.name,
        volumeGroupSnapshotName: 'g',
      });
      expect(content.metadata.annotations).to.deep.equal({
        [ANN_VOLUME_GROUP_SNAPSHOT_HANDLE]: 'group-1',
      });
      expect(content.spec.volumeSnapshotRef).to.deep.include({
        name: snapshot.metadata.name,
        namespace: NS,
        uid: snapshot.metadata.uid,
      });
      expect(content.spec.source).to.deep.equal({ volumeHandle: handle });
      expect(content.status).to.deep.equal({
        snapshotHandle: `snap-${suffix}`,
        volumeGroupSnapshotHandle: 'group-1',
        creationTime: 1_772_366_400_000_000_000,
        restoreSize: 2 ** 30,
        readyToUse: true,
      });
    }
    await eventually(
      () =>
        recorder.lines.includes('Normal GroupSnapshotReady GroupSnapshot ns/g is ready to use.'),
      state,
    );
    expect(recorder.lines).to.include(
      'Normal CreatingGroupSnapshot Waiting for a group snapshot ns/g to be created by the CSI driver.',
    );
  });

  it('reports a group whose selector picks no PVC, and creates nothing', async function () {
    await client.create<VolumeGroupSnapshot>(VolumeGroupSnapshots, {
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshot',
      metadata: { name: 'empty', namespace: NS },
      spec: {
        source: { selector: { matchLabels: { app: 'none' } } },
        volumeGroupSnapshotClassName: 'gold',
      },
    });
    await eventually(() => !!vgs('empty')?.status?.error, state);
    expect(vgs('empty')!.status!.error!.message).to.include(
      'label selector app=none for group snapshot not applied to any PVC',
    );
    expect(
      recorder.lines.some((line) => line.startsWith('Warning GroupSnapshotContentCreationFailed')),
    ).to.equal(true);
    expect(client.all(VolumeGroupSnapshotContents)).to.have.length(0);
  });

  it('reports a failed content creation on the group and retries it', async function () {
    client.failNext(
      'create',
      'volumegroupsnapshotcontents',
      new ApiError(500, 'InternalError', 'etcd is down'),
    );
    const created = await createGroup('g', 'gold');
    const contentName = `groupsnapcontent-${created.metadata.uid}`;
    await eventually(
      () => vgs('g')?.status?.boundVolumeGroupSnapshotContentName === contentName,
      state,
    );
    expect(
      recorder.lines.some((line) =>
        line.startsWith(
          'Warning CreateGroupSnapshotContentFailed Error creating volume group snapshot content object for group snapshot ns/g:',
        ),
      ),
    ).to.equal(true);
    expect(
      recorder.lines.some((line) =>
        line.startsWith(
          'Warning GroupSnapshotContentCreationFailed failed to create group snapshot content with error snapshot controller failed to update ns/g on API server: etcd is down',
        ),
      ),
    ).to.equal(true);
    expect(vgsc(contentName)).to.not.equal(undefined);
    // the binding's status write clears the recorded error
    expect(vgs('g')!.status!.error).to.equal(undefined);
  });

  it('Delete policy: deleting the group deletes its content and members, then lets go', async function () {
    const created = await readyGroup('g');
    const contentName = `groupsnapcontent-${created.metadata.uid}`;
    const members = client.all<VolumeSnapshot>(VolumeSnapshots).map((s) => s.metadata.name!);
    expect(members).to.have.length(2);

    await client.delete(VolumeGroupSnapshots, 'g', NS);
    await eventually(() => !!vgsc(contentName)?.metadata.deletionTimestamp, state);
    expect(vgsc(contentName)!.metadata.annotations).to.include({
      [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes',
    });
    // members are deleted with the group (their in-group finalizer keeps them for now)
    await eventually(() => members.every((name) => !!vs(name)?.metadata.deletionTimestamp), state);
    // the group waits for its content, which the CSI snapshotter releases once the storage group is gone
    expect(vgs('g')!.metadata.finalizers).to.include(FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND);
    await client.patch(VolumeGroupSnapshotContents, contentName, undefined, 'merge', {
      metadata: { finalizers: null },
    });
    await eventually(() => vgs('g') === undefined, state);
  });

  it('Retain policy: deleting the group keeps its content', async function () {
    const created = await readyGroup('g', 'keep');
    const contentName = `groupsnapcontent-${created.metadata.uid}`;
    await client.delete(VolumeGroupSnapshots, 'g', NS);
    await eventually(() => vgs('g') === undefined, state);
    const content = vgsc(contentName)!;
    expect(content.metadata.deletionTimestamp).to.equal(undefined);
    expect(content.metadata.annotations).to.include({
      [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes',
    });
    expect(
      client.all<VolumeSnapshot>(VolumeSnapshots).every((s) => !!s.metadata.deletionTimestamp),
    ).to.equal(true);
  });

  it('binds a pre-provisioned group to its content', async function () {
    client.seed(
      VolumeGroupSnapshotContents,
      buildGroupContent({
        name: 'pre',
        driver: DRIVER,
        deletionPolicy: 'Retain',
        groupRef: { name: 'imported', namespace: NS },
        groupSnapshotHandles: {
          volumeGroupSnapshotHandle: 'group-9',
          volumeSnapshotHandles: ['snap-x'],
        },
        status: { volumeGroupSnapshotHandle: 'group-9', readyToUse: true },
      }),
    );
    const created = await client.create<VolumeGroupSnapshot>(VolumeGroupSnapshots, {
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshot',
      metadata: { name: 'imported', namespace: NS },
      spec: { source: { volumeGroupSnapshotContentName: 'pre' } },
    });
    await eventually(() => vgs('imported')?.status?.readyToUse === true, state);
    expect(vgs('imported')!.status!.boundVolumeGroupSnapshotContentName).to.equal('pre');
    expect(vgsc('pre')!.spec.volumeGroupSnapshotRef.uid).to.equal(created.metadata.uid);
    await eventually(
      () =>
        !!vgs('imported')?.metadata.finalizers?.includes(FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND) &&
        !!vgsc('pre')?.metadata.finalizers?.includes(FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND),
      state,
    );
  });
});

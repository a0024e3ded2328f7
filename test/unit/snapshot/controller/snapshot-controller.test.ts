import { expect } from 'chai';
import {
  ANN_VOLUME_SNAPSHOT_BEING_DELETED,
  FINALIZER_PVC_AS_SOURCE,
  FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE,
  FINALIZER_VOLUME_SNAPSHOT_BOUND,
  FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND,
  FINALIZER_VOLUME_SNAPSHOT_IN_GROUP,
  type VolumeSnapshot,
  type VolumeSnapshotContent,
} from '../../../../src/api/snapshot.js';
import {
  ApiError,
  InformerFactory,
  PersistentVolumeClaims,
  PersistentVolumes,
} from '../../../../src/kube/index.js';
import {
  createSnapshotController,
  type SnapshotController,
} from '../../../../src/snapshot/controller/snapshot-controller.js';
import type { PersistentVolumeClaim } from '../../../../src/snapshot/controller/plan.js';
import {
  VolumeSnapshotClasses,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../../../../src/kube/resource.js';
import { volumeGroupSnapshots } from '../../../../src/snapshot/group.js';
import { eventually } from '../../kube/eventually.js';
import { NS, pv, pvc, snapshotClass } from './fixtures.js';
import { FakeEventRecorder } from '../../../support/fakes/event-recorder.js';
import { FakeKubeClient } from '../../../support/fakes/kube-client.js';

/** The controller against the in-memory API server, with the test playing the sidecar. */
describe('SnapshotController (fake API server)', function () {
  let client: FakeKubeClient;
  let informers: InformerFactory;
  let recorder: FakeEventRecorder;
  let controller: SnapshotController;

  const vs = (name: string) => client.peek<VolumeSnapshot>(VolumeSnapshots, name, NS);
  const vsc = (name: string) => client.peek<VolumeSnapshotContent>(VolumeSnapshotContents, name);
  const claim = (name: string) =>
    client.peek<PersistentVolumeClaim>(PersistentVolumeClaims, name, NS);
  const state = () =>
    JSON.stringify({
      snapshots: client.all(VolumeSnapshots),
      contents: client.all(VolumeSnapshotContents),
      events: recorder.lines,
    });

  beforeEach(async function () {
    client = new FakeKubeClient();
    informers = new InformerFactory(client);
    recorder = new FakeEventRecorder();
    client.seed(
      VolumeSnapshotClasses,
      snapshotClass('gold'),
      snapshotClass('keep', { policy: 'Retain' }),
    );
    client.seed(PersistentVolumes, pv('pv-1', { claim: 'data' }));
    client.seed(PersistentVolumeClaims, {
      ...pvc('data', { volumeName: 'pv-1' }),
      metadata: { name: 'data', namespace: NS, uid: 'uid-data' },
    });
    controller = createSnapshotController({
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

  async function createSnapshot(name: string, className = 'gold'): Promise<VolumeSnapshot> {
    return client.create<VolumeSnapshot>(VolumeSnapshots, {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: { name, namespace: NS },
      spec: { source: { persistentVolumeClaimName: 'data' }, volumeSnapshotClassName: className },
    });
  }

  /** What the sidecar would do: report the snapshot taken and ready. */
  async function sidecarReports(contentName: string): Promise<void> {
    await client.patch(
      VolumeSnapshotContents,
      contentName,
      undefined,
      'merge',
      {
        status: {
          snapshotHandle: 'backend-1',
          readyToUse: true,
          creationTime: 1_772_366_400_000_000_000,
          restoreSize: 2 ** 30,
        },
      },
      { subresource: 'status' },
    );
  }

  it('takes a dynamic snapshot to readyToUse and releases the PVC', async function () {
    const created = await createSnapshot('snap');
    const contentName = `snapcontent-${created.metadata.uid}`;
    await eventually(
      () => vs('snap')?.status?.boundVolumeSnapshotContentName === contentName,
      state,
    );
    expect(vsc(contentName)!.spec).to.deep.include({
      deletionPolicy: 'Delete',
      driver: 'local.snapback.dev',
      volumeSnapshotClassName: 'gold',
    });
    expect(vsc(contentName)!.spec.source).to.deep.equal({ volumeHandle: 'handle-pv-1' });
    await eventually(
      () =>
        !!vsc(contentName)?.metadata.finalizers?.includes(FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND),
      state,
    );
    // bound-protection follows on the sync after the binding is in the status
    await eventually(
      () =>
        !!vs('snap')?.metadata.finalizers?.includes(FINALIZER_VOLUME_SNAPSHOT_BOUND) &&
        !!vs('snap')?.metadata.finalizers?.includes(FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE),
      state,
    );
    expect(claim('data')!.metadata?.finalizers).to.include(FINALIZER_PVC_AS_SOURCE);

    await sidecarReports(contentName);
    await eventually(() => vs('snap')?.status?.readyToUse === true, state);
    expect(vs('snap')!.status).to.deep.include({
      restoreSize: '1Gi',
      creationTime: '2026-03-01T12:00:00Z',
    });
    await eventually(
      () => !(claim('data')!.metadata?.finalizers ?? []).includes(FINALIZER_PVC_AS_SOURCE),
      state,
    );
    await eventually(
      () => recorder.lines.some((line) => line.startsWith('Normal SnapshotReady')),
      state,
    );
    expect(recorder.lines.map((line) => line.split(' ').slice(0, 2).join(' '))).to.include.members([
      'Normal CreatingSnapshot',
      'Normal SnapshotCreated',
      'Normal SnapshotReady',
    ]);
  });

  it('Delete: deletes the content, and the snapshot goes once the sidecar released it', async function () {
    const created = await createSnapshot('snap');
    const contentName = `snapcontent-${created.metadata.uid}`;
    await sidecarReportsWhenCreated(contentName);
    await eventually(() => vs('snap')?.status?.readyToUse === true, state);
    await eventually(
      () =>
        !!vsc(contentName)?.metadata.finalizers?.includes(FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND),
      state,
    );
    await client.delete(VolumeSnapshots, 'snap', NS);
    await eventually(() => !!vsc(contentName)?.metadata.deletionTimestamp, state);
    expect(vsc(contentName)!.metadata.annotations?.[ANN_VOLUME_SNAPSHOT_BEING_DELETED]).to.equal(
      'yes',
    );
    expect(
      vs('snap')!.metadata.finalizers,
      'bound-protection stays until the content is gone',
    ).to.deep.equal([FINALIZER_VOLUME_SNAPSHOT_BOUND]);
    // the sidecar deletes the backend snapshot and releases the content
    await client.patch(VolumeSnapshotContents, contentName, undefined, 'merge', {
      metadata: { finalizers: null },
    });
    await eventually(() => vs('snap') === undefined, state);
  });

  it('Retain: the snapshot goes and the content stays', async function () {
    const created = await createSnapshot('snap', 'keep');
    const contentName = `snapcontent-${created.metadata.uid}`;
    await sidecarReportsWhenCreated(contentName);
    await eventually(() => vs('snap')?.status?.readyToUse === true, state);
    await client.delete(VolumeSnapshots, 'snap', NS);
    await eventually(() => vs('snap') === undefined, state);
    expect(vsc(contentName)!.metadata.deletionTimestamp).to.equal(undefined);
  });

  it('holds a deletion while a PVC restores from the snapshot, and proceeds once it is bound', async function () {
    const created = await createSnapshot('snap', 'keep');
    await sidecarReportsWhenCreated(`snapcontent-${created.metadata.uid}`);
    await eventually(() => vs('snap')?.status?.readyToUse === true, state);
    await client.create(
      PersistentVolumeClaims,
      pvc('restore', { phase: 'Pending', restoreFrom: 'snap' }),
    );
    await client.patch(
      PersistentVolumeClaims,
      'restore',
      NS,
      'merge',
      { status: { phase: 'Pending' } },
      { subresource: 'status' },
    );
    await client.delete(VolumeSnapshots, 'snap', NS);
    await eventually(
      () => recorder.lines.some((line) => line.startsWith('Warning SnapshotDeletePending')),
      state,
    );
    expect(vs('snap'), 'not deleted while the restore is pending').to.not.equal(undefined);
    await client.patch(
      PersistentVolumeClaims,
      'restore',
      NS,
      'merge',
      { status: { phase: 'Bound' } },
      { subresource: 'status' },
    );
    await eventually(() => vs('snap') === undefined, state);
  });

  it('deletes a snapshot whose creation failed for good, and lets its PVC go', async function () {
    const created = await createSnapshot('snap');
    const contentName = `snapcontent-${created.metadata.uid}`;
    await eventually(() => vsc(contentName) !== undefined, state);
    // the sidecar's part: the driver refused the class with a final error
    const refusal = 'Failed to create snapshot: INVALID_ARGUMENT: unknown parameter "tier"';
    await client.patch(
      VolumeSnapshotContents,
      contentName,
      undefined,
      'merge',
      { status: { readyToUse: false, error: { time: '2026-03-01T12:00:00Z', message: refusal } } },
      { subresource: 'status' },
    );
    await eventually(() => vs('snap')?.status?.error?.message === refusal, state);
    expect(claim('data')!.metadata?.finalizers).to.include(FINALIZER_PVC_AS_SOURCE);

    await client.delete(VolumeSnapshots, 'snap', NS);
    await client.delete(PersistentVolumeClaims, 'data', NS);
    await eventually(() => !!vsc(contentName)?.metadata.deletionTimestamp, state);
    // the sidecar: nothing on the backend to delete, so it releases the content
    await client.patch(VolumeSnapshotContents, contentName, undefined, 'merge', {
      metadata: { finalizers: null },
    });
    await eventually(() => vs('snap') === undefined, state);
    await eventually(() => claim('data') === undefined, state);
  });

  it('leaves a group member to its group, and deletes it only once the group is gone', async function () {
    const group = volumeGroupSnapshots('v1beta2');
    await client.create(group, {
      apiVersion: 'groupsnapshot.storage.k8s.io/v1beta2',
      kind: 'VolumeGroupSnapshot',
      metadata: { name: 'group-1', namespace: NS },
    });
    const member = await client.create<VolumeSnapshot>(VolumeSnapshots, {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: {
        name: 'member',
        namespace: NS,
        finalizers: [FINALIZER_VOLUME_SNAPSHOT_IN_GROUP],
        ownerReferences: [
          {
            apiVersion: 'groupsnapshot.storage.k8s.io/v1beta2',
            kind: 'VolumeGroupSnapshot',
            name: 'group-1',
            uid: 'uid-group-1',
          },
        ],
      },
      spec: { source: { persistentVolumeClaimName: 'data' } },
    });
    await eventually(
      () => !!vs('member')?.metadata.finalizers?.includes(FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE),
      state,
    );
    // what the group controller does: the member content and the binding
    await client.create<VolumeSnapshotContent>(VolumeSnapshotContents, {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshotContent',
      metadata: {
        name: 'snapcontent-5e1f',
        annotations: { 'groupsnapshot.storage.k8s.io/volumeGroupSnapshotHandle': 'g-1' },
      },
      spec: {
        volumeSnapshotRef: { name: 'member', namespace: NS, uid: member.metadata.uid },
        deletionPolicy: 'Retain',
        driver: 'local.snapback.dev',
        source: { volumeHandle: 'handle-pv-1' },
      },
    });
    await client.patch(
      VolumeSnapshots,
      'member',
      NS,
      'merge',
      {
        status: {
          boundVolumeSnapshotContentName: 'snapcontent-5e1f',
          volumeGroupSnapshotName: 'group-1',
          readyToUse: false,
        },
      },
      { subresource: 'status' },
    );
    await client.delete(VolumeSnapshots, 'member', NS);
    await eventually(
      () =>
        recorder.lines.some((line) =>
          line.startsWith(
            'Warning SnapshotDeletePending deletion of the individual volume snapshot ns/member is not allowed as it belongs to group snapshot ns/group-1.',
          ),
        ),
      state,
    );
    const held = vs('member')!;
    expect(held.spec.volumeSnapshotClassName, 'no default class for a member').to.equal(undefined);
    expect(vsc(`snapcontent-${member.metadata.uid}`), 'no content of its own').to.equal(undefined);
    expect(claim('data')!.metadata?.finalizers ?? []).to.not.include(FINALIZER_PVC_AS_SOURCE);
    expect(held.metadata.finalizers).to.include(FINALIZER_VOLUME_SNAPSHOT_IN_GROUP);

    await client.delete(group, 'group-1', NS);
    await eventually(() => vs('member') === undefined, state);
    expect(vsc('snapcontent-5e1f')!.metadata.annotations).to.include({
      'snapshot.storage.kubernetes.io/volumesnapshot-being-deleted': 'yes',
    });
  });

  it('binds a pre-provisioned content', async function () {
    await client.create<VolumeSnapshotContent>(VolumeSnapshotContents, {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshotContent',
      metadata: { name: 'imported' },
      spec: {
        volumeSnapshotRef: { name: 'snap', namespace: NS },
        deletionPolicy: 'Retain',
        driver: 'local.snapback.dev',
        source: { snapshotHandle: 'backend-7' },
      },
    });
    await client.patch(
      VolumeSnapshotContents,
      'imported',
      undefined,
      'merge',
      { status: { snapshotHandle: 'backend-7', readyToUse: true, restoreSize: 1024 } },
      { subresource: 'status' },
    );
    const created = await client.create<VolumeSnapshot>(VolumeSnapshots, {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: { name: 'snap', namespace: NS },
      spec: { source: { volumeSnapshotContentName: 'imported' } },
    });
    await eventually(() => vs('snap')?.status?.readyToUse === true, state);
    expect(vs('snap')!.status).to.deep.include({
      boundVolumeSnapshotContentName: 'imported',
      restoreSize: '1Ki',
    });
    expect(vsc('imported')!.spec.volumeSnapshotRef.uid).to.equal(created.metadata.uid);
  });

  it('recovers from a failed write by retrying', async function () {
    client.failNext(
      'create',
      'volumesnapshotcontents',
      new ApiError(500, 'InternalError', 'etcd timeout'),
    );
    const created = await createSnapshot('snap');
    await eventually(
      () =>
        vs('snap')?.status?.boundVolumeSnapshotContentName ===
        `snapcontent-${created.metadata.uid}`,
      state,
    );
    // upstream's two reports of a failed create, in its words
    expect(recorder.lines).to.include.members([
      'Warning CreateSnapshotContentFailed Error creating volume snapshot content object for snapshot ns/snap: etcd timeout.',
      'Warning SnapshotContentCreationFailed Failed to create snapshot content with error snapshot controller failed to update ns/snap on API server: etcd timeout',
    ]);
    expect(vs('snap')!.status?.error, 'the error is not left behind').to.equal(undefined);
  });

  it('reports ErrorPVCFinalizer when the PVC cannot be released, and retries', async function () {
    const created = await createSnapshot('snap');
    const contentName = `snapcontent-${created.metadata.uid}`;
    await eventually(
      () => !!claim('data')?.metadata?.finalizers?.includes(FINALIZER_PVC_AS_SOURCE),
      state,
    );
    client.failNext(
      'patch',
      'persistentvolumeclaims',
      new ApiError(500, 'InternalError', 'etcd timeout'),
    );
    await sidecarReportsWhenCreated(contentName);
    await eventually(
      () =>
        recorder.lines.includes(
          'Warning ErrorPVCFinalizer Error check and remove PVC Finalizer for VolumeSnapshot',
        ),
      state,
    );
    await eventually(
      () => !(claim('data')!.metadata?.finalizers ?? []).includes(FINALIZER_PVC_AS_SOURCE),
      state,
    );
  });

  async function sidecarReportsWhenCreated(contentName: string): Promise<void> {
    await eventually(() => vsc(contentName) !== undefined, state);
    await sidecarReports(contentName);
  }
});

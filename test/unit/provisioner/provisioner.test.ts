import { expect } from 'chai';
import type {
  V1PersistentVolume,
  V1PersistentVolumeClaim,
  V1StorageClass,
} from '@kubernetes/client-node';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../../../src/api/snapshot.js';
import type { CallOptions } from '../../../src/csi/client.js';
import type { CreateVolumeRequest } from '../../../src/gen/csi/csi/v1/CreateVolumeRequest.js';
import type { CreateVolumeResponse__Output } from '../../../src/gen/csi/csi/v1/CreateVolumeResponse.js';
import {
  ApiError,
  Manager,
  PersistentVolumeClaims,
  PersistentVolumes,
  StorageClasses,
  type KubeObject,
} from '../../../src/kube/index.js';
import { createProvisioner, type ProvisionerCsi } from '../../../src/provisioner/provisioner.js';
import {
  ANN_PROVISIONED_BY,
  ANN_STORAGE_PROVISIONER,
  DEFAULT_PROVISIONER_SETTINGS,
  FINALIZER_PV,
  FINALIZER_SNAPSHOT_SOURCE,
} from '../../../src/provisioner/plan.js';
import { VolumeSnapshotContents, VolumeSnapshots } from '../../../src/kube/resource.js';
import { sleep, waitFor } from '../../support/processes.js';
import { FakeEventRecorder } from '../../support/fakes/event-recorder.js';
import { FakeKubeClient } from '../../support/fakes/kube-client.js';
import { buildPvc, buildStorageClass } from '../../support/fixtures.js';

const DRIVER = 'local.snapback.dev';
const GI = 2 ** 30;

class ScriptedCsi implements ProvisionerCsi {
  readonly creates: CreateVolumeRequest[] = [];
  readonly deletes: string[] = [];
  /** Volume ids the "backend" holds. */
  readonly volumes = new Set<string>();
  seenFinalizer: boolean | undefined;
  beforeCreate: (() => Promise<void>) | undefined;
  /**
   * How many of the next CreateVolume calls outlive the caller's deadline: the backend makes
   * the volume all the same, the caller gets DEADLINE_EXCEEDED, as from a slow cloud API.
   */
  timeouts = 0;

  async createVolume(
    request: CreateVolumeRequest,
    options?: CallOptions,
  ): Promise<CreateVolumeResponse__Output> {
    this.creates.push(request);
    await this.beforeCreate?.();
    const id = `vol-${request.name}`;
    if (this.timeouts > 0) {
      this.timeouts--;
      await sleep(options?.timeoutMs ?? 0);
      this.volumes.add(id);
      throw Object.assign(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'), {
        code: 4,
        details: 'Deadline exceeded',
      });
    }
    this.volumes.add(id);
    return {
      volume: {
        volume_id: id,
        capacity_bytes: String(request.capacity_range?.required_bytes ?? 0),
        volume_context: { image: `/images/${id}` },
        content_source: request.volume_content_source
          ? { snapshot: { snapshot_id: 'snap-1' }, type: 'snapshot' }
          : null,
        accessible_topology: [{ segments: { 'topology.local.snapback.dev/node': 'node-a' } }],
      },
    };
  }

  async deleteVolume(request: { volume_id?: string }): Promise<unknown> {
    this.deletes.push(request.volume_id ?? '');
    this.volumes.delete(request.volume_id ?? '');
    return {};
  }
}

function storageClass(reclaimPolicy: 'Delete' | 'Retain' = 'Delete'): V1StorageClass & KubeObject {
  return buildStorageClass<V1StorageClass & KubeObject>({
    name: 'local',
    provisioner: DRIVER,
    reclaimPolicy,
    volumeBindingMode: 'Immediate',
  });
}

function claim(name: string, extra: Partial<NonNullable<V1PersistentVolumeClaim['spec']>> = {}) {
  const pvc = buildPvc<V1PersistentVolumeClaim & KubeObject>({
    name,
    namespace: 'ns',
    uid: `uid-${name}`,
    annotations: { [ANN_STORAGE_PROVISIONER]: DRIVER },
    storageClassName: 'local',
  });
  return { ...pvc, spec: { ...pvc.spec, ...extra } };
}

describe('provisioner controller (fake API server, scripted CSI driver)', function () {
  let client: FakeKubeClient;
  let csi: ScriptedCsi;
  let events: FakeEventRecorder;
  let manager: Manager;
  let running: Promise<unknown>;

  beforeEach(function () {
    client = new FakeKubeClient();
    csi = new ScriptedCsi();
    events = new FakeEventRecorder();
  });

  function start(timeoutMs?: number, crossNamespaceVolumeDataSource = false): void {
    manager = new Manager({ client });
    manager.add(
      createProvisioner({
        client,
        informers: manager.informers,
        csi,
        capabilities: {
          createDeleteVolume: true,
          createDeleteSnapshot: true,
          topology: true,
          singleNodeMultiWriter: false,
        },
        events,
        settings: {
          ...DEFAULT_PROVISIONER_SETTINGS,
          driverName: DRIVER,
          identity: 'test-identity',
          crossNamespaceVolumeDataSource,
        },
        retryIntervalStartMs: 20,
        retryIntervalMaxMs: 100,
        timeoutMs,
      }),
    );
    running = manager.run();
  }

  afterEach(async function () {
    await manager.stop();
    await running;
  });

  const pv = (name: string) =>
    client.peek<V1PersistentVolume & KubeObject>(PersistentVolumes, name);

  /** A ready VolumeSnapshot ns/snap of PVC data, bound to its ready content. */
  function seedReadySnapshot(restoreSize: string, contentRestoreBytes?: number): void {
    client.seed(VolumeSnapshots, {
      metadata: { name: 'snap', namespace: 'ns', uid: 'snap-uid' },
      spec: { source: { persistentVolumeClaimName: 'data' } },
      status: {
        boundVolumeSnapshotContentName: 'snapcontent-snap-uid',
        readyToUse: true,
        restoreSize,
      },
    } as VolumeSnapshot);
    client.seed(VolumeSnapshotContents, {
      metadata: { name: 'snapcontent-snap-uid' },
      spec: {
        driver: DRIVER,
        deletionPolicy: 'Delete',
        volumeSnapshotRef: { name: 'snap', namespace: 'ns', uid: 'snap-uid' },
        source: { volumeHandle: 'vol-src' },
      },
      status: {
        snapshotHandle: 'snap-1',
        readyToUse: true,
        ...(contentRestoreBytes !== undefined && { restoreSize: contentRestoreBytes }),
      },
    } as VolumeSnapshotContent);
  }

  it('provisions a blank volume: CreateVolume pvc-<uid>, a PV with claimRef and node affinity, Events', async function () {
    client.seed(StorageClasses, storageClass());
    client.seed(PersistentVolumeClaims, claim('data'));
    start();
    const created = await waitFor(() => pv('pvc-uid-data'), 5_000, 'the PV to be created');
    expect(csi.creates).to.have.length(1);
    expect(csi.creates[0]).to.deep.include({
      name: 'pvc-uid-data',
      capacity_range: { required_bytes: String(GI), limit_bytes: '0' },
    });
    expect(created.metadata?.annotations?.[ANN_PROVISIONED_BY]).to.equal(DRIVER);
    expect(created.metadata?.finalizers).to.deep.equal([FINALIZER_PV]);
    expect(created.spec?.claimRef).to.deep.include({
      namespace: 'ns',
      name: 'data',
      uid: 'uid-data',
    });
    expect(created.spec?.csi?.volumeHandle).to.equal('vol-pvc-uid-data');
    expect(created.spec?.persistentVolumeReclaimPolicy).to.equal('Delete');
    expect(created.spec?.nodeAffinity?.required?.nodeSelectorTerms).to.deep.equal([
      {
        matchExpressions: [
          { key: 'topology.local.snapback.dev/node', operator: 'In', values: ['node-a'] },
        ],
      },
    ]);
    await waitFor(() => events.events.length >= 2, 5_000, 'the events');
    expect(events.lines).to.deep.equal([
      'Normal Provisioning External provisioner is provisioning volume for claim "ns/data"',
      'Normal ProvisioningSucceeded Successfully provisioned volume pvc-uid-data',
    ]);
  });

  it('repeats a CreateVolume that timed out and creates the PV when it answers', async function () {
    client.seed(StorageClasses, storageClass());
    client.seed(PersistentVolumeClaims, claim('data'));
    csi.timeouts = 1;
    start(200);
    const created = await waitFor(() => pv('pvc-uid-data'), 5_000, 'the PV to be created');
    expect(csi.creates.map((r) => r.name)).to.deep.equal(['pvc-uid-data', 'pvc-uid-data']);
    expect(created.spec?.csi?.volumeHandle).to.equal('vol-pvc-uid-data');
    expect(csi.deletes).to.deep.equal([]);
    expect([...csi.volumes]).to.deep.equal(['vol-pvc-uid-data']);
    expect(events.lines).to.include(
      'Warning ProvisioningFailed failed to provision volume with StorageClass "local": ' +
        'DEADLINE_EXCEEDED: Deadline exceeded',
    );
  });

  it('finishes a timed-out CreateVolume of a PVC deleted meanwhile, then deletes its volume', async function () {
    client.seed(StorageClasses, storageClass());
    client.seed(PersistentVolumeClaims, claim('data'));
    csi.timeouts = 2;
    start(200);
    // deleted while the first call is still waiting for the driver
    await waitFor(() => csi.creates.length === 1, 5_000, 'the first CreateVolume');
    await client.delete(PersistentVolumeClaims, 'data', 'ns');
    await waitFor(
      () => csi.deletes.includes('vol-pvc-uid-data'),
      5_000,
      'DeleteVolume of the volume made for the deleted PVC',
      () => JSON.stringify({ creates: csi.creates.length, deletes: csi.deletes }),
    );
    // two timed out, the third answered with the volume, which was then deleted
    expect(csi.creates.map((r) => r.name)).to.deep.equal([
      'pvc-uid-data',
      'pvc-uid-data',
      'pvc-uid-data',
    ]);
    expect(csi.deletes).to.deep.equal(['vol-pvc-uid-data']);
    expect([...csi.volumes]).to.deep.equal([]);
    expect(pv('pvc-uid-data')).to.equal(undefined);
  });

  it('keeps, as a Released PV, the volume of a Retain class whose PVC was deleted while CreateVolume timed out', async function () {
    client.seed(StorageClasses, storageClass('Retain'));
    client.seed(PersistentVolumeClaims, claim('data'));
    csi.timeouts = 2;
    start(200);
    await waitFor(() => csi.creates.length === 1, 5_000, 'the first CreateVolume');
    await client.delete(PersistentVolumeClaims, 'data', 'ns');
    const kept = await waitFor(
      () => pv('pvc-uid-data'),
      5_000,
      'a PV recording the volume of the deleted PVC',
      () => JSON.stringify({ creates: csi.creates.length, deletes: csi.deletes }),
    );
    expect(csi.creates).to.have.length(3);
    expect(csi.deletes, 'a Retain volume is never deleted by the provisioner').to.deep.equal([]);
    expect([...csi.volumes]).to.include('vol-pvc-uid-data');
    expect(kept.spec?.persistentVolumeReclaimPolicy).to.equal('Retain');
    expect(kept.spec?.csi?.volumeHandle).to.equal('vol-pvc-uid-data');
    // bound to the claim that is gone: the PV controller shows it Released
    expect(kept.spec?.claimRef).to.deep.include({ name: 'data', namespace: 'ns', uid: 'uid-data' });
  });

  it('turns a failure to read ReferenceGrants into a ProvisioningFailed Event', async function () {
    client.seed(StorageClasses, storageClass());
    client.failNext(
      'list',
      'referencegrants',
      new ApiError(403, 'Forbidden', 'referencegrants.gateway.networking.k8s.io is forbidden'),
    );
    client.seed(
      PersistentVolumeClaims,
      claim('restore', {
        dataSourceRef: {
          apiGroup: 'snapshot.storage.k8s.io',
          kind: 'VolumeSnapshot',
          name: 'snap',
          namespace: 'other',
        } as NonNullable<V1PersistentVolumeClaim['spec']>['dataSourceRef'],
      }),
    );
    start(undefined, true);
    const failure = await waitFor(
      () => events.events.find((e) => e.reason === 'ProvisioningFailed'),
      5_000,
      'a ProvisioningFailed event',
    );
    expect(failure.message).to.equal(
      'failed to provision volume with StorageClass "local": error getting ReferenceGrants in ' +
        'other namespace from api server: referencegrants.gateway.networking.k8s.io is forbidden',
    );
    expect(csi.creates).to.deep.equal([]);
  });

  it('rejects a restore smaller than the snapshot with a clear Event, without calling the driver', async function () {
    client.seed(StorageClasses, storageClass());
    seedReadySnapshot('2Gi', 2 * GI);
    client.seed(
      PersistentVolumeClaims,
      claim('restore', {
        dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'snap' },
      }),
    );
    start();
    const failure = await waitFor(
      () => events.events.find((e) => e.reason === 'ProvisioningFailed'),
      5_000,
      'a ProvisioningFailed event',
    );
    expect(failure.object).to.equal('ns/restore');
    expect(failure.message).to.equal(
      'failed to provision volume with StorageClass "local": error getting handle for DataSource ' +
        'Type VolumeSnapshot by Name snap: requested volume size 1073741824 is less than the size ' +
        '2147483648 for the source snapshot snap: request at least 2Gi (spec.resources.requests.storage)',
    );
    expect(csi.creates).to.deep.equal([]);
    expect(pv('pvc-uid-restore')).to.equal(undefined);
  });

  it('restores from a ready snapshot, guarding the snapshot with a finalizer meanwhile', async function () {
    client.seed(StorageClasses, storageClass());
    seedReadySnapshot('1Gi');
    csi.beforeCreate = async () => {
      const snapshot = client.peek<VolumeSnapshot>(VolumeSnapshots, 'snap', 'ns');
      csi.seenFinalizer = snapshot?.metadata.finalizers?.includes(FINALIZER_SNAPSHOT_SOURCE);
    };
    client.seed(
      PersistentVolumeClaims,
      claim('restore', {
        dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'snap' },
      }),
    );
    start();
    await waitFor(() => pv('pvc-uid-restore'), 5_000, 'the restored PV');
    expect(csi.creates[0]?.volume_content_source).to.deep.equal({
      snapshot: { snapshot_id: 'snap-1' },
    });
    expect(csi.seenFinalizer).to.equal(true);
    await waitFor(
      () =>
        !client
          .peek<VolumeSnapshot>(VolumeSnapshots, 'snap', 'ns')
          ?.metadata.finalizers?.includes(FINALIZER_SNAPSHOT_SOURCE),
      5_000,
      'the restore finalizer to be removed',
    );
  });

  it('deletes the volume of a released Delete PV, and only then the PV', async function () {
    csi.volumes.add('vol-1');
    client.seed(PersistentVolumes, {
      metadata: {
        name: 'pvc-1',
        annotations: { [ANN_PROVISIONED_BY]: DRIVER },
        finalizers: ['kubernetes.io/pv-protection', FINALIZER_PV],
      },
      spec: {
        persistentVolumeReclaimPolicy: 'Delete',
        csi: { driver: DRIVER, volumeHandle: 'vol-1' },
      },
      status: { phase: 'Released' },
    } as V1PersistentVolume & KubeObject);
    start();
    await waitFor(() => csi.deletes.includes('vol-1'), 5_000, 'DeleteVolume');
    const remaining = await waitFor(
      () => (pv('pvc-1')?.metadata?.deletionTimestamp ? pv('pvc-1') : undefined),
      5_000,
      'the PV to be deleted',
    );
    // pv-protection is kube-controller-manager's to remove; ours is gone
    expect(remaining.metadata?.finalizers).to.deep.equal(['kubernetes.io/pv-protection']);
  });

  it('keeps a released Retain PV and its volume, dropping our finalizer', async function () {
    client.seed(PersistentVolumes, {
      metadata: {
        name: 'pvc-2',
        annotations: { [ANN_PROVISIONED_BY]: DRIVER },
        finalizers: [FINALIZER_PV],
      },
      spec: {
        persistentVolumeReclaimPolicy: 'Retain',
        csi: { driver: DRIVER, volumeHandle: 'vol-2' },
      },
      status: { phase: 'Released' },
    } as V1PersistentVolume & KubeObject);
    start();
    await waitFor(
      () =>
        pv('pvc-2')?.metadata?.finalizers === undefined ||
        pv('pvc-2')?.metadata?.finalizers?.length === 0,
      5_000,
      'our finalizer to go',
    );
    expect(csi.deletes).to.deep.equal([]);
    expect(pv('pvc-2')?.metadata?.deletionTimestamp).to.equal(undefined);
  });
});

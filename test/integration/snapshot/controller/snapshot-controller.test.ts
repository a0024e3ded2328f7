import { expect } from 'chai';
import type * as k8s from '@kubernetes/client-node';
import {
  ANN_IS_DEFAULT_CLASS,
  ANN_VOLUME_SNAPSHOT_BEING_DELETED,
  FINALIZER_PVC_AS_SOURCE,
  FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE,
  FINALIZER_VOLUME_SNAPSHOT_BOUND,
  FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND,
  type DeletionPolicy,
  type VolumeSnapshot,
  type VolumeSnapshotClass,
  type VolumeSnapshotContent,
} from '../../../../src/api/snapshot.js';
import {
  Events,
  HttpKubeClient,
  PersistentVolumeClaims,
  PersistentVolumes,
  type CoreEvent,
} from '../../../../src/kube/index.js';
import { stackOptions, startStack, type Stack } from '../../../../src/cli/controller.js';
import { silentLogger } from '../../../../src/observability/logger.js';
import type { PersistentVolumeClaim } from '../../../../src/snapshot/controller/plan.js';
import {
  VolumeSnapshotClasses,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../../../../src/kube/resource.js';
import type { ControlPlane } from '../../../support/control-plane.js';
import {
  createTestNamespace,
  deleteTestNamespace,
  kubeConfigFor,
  sharedControlPlane,
} from '../../../support/cluster.js';
import { waitFor } from '../../../support/processes.js';
import { installSnapshotCrds } from '../../stack/support.js';

const TIMEOUT = 60_000;

describe('snapshot controller (real control plane; the test plays the CSI snapshotter)', function () {
  let controlPlane: ControlPlane;
  let kc: k8s.KubeConfig;
  let client: HttpKubeClient;
  let namespace: string;
  let running: Stack;
  const classes: string[] = [];
  const volumes: string[] = [];

  before(async function () {
    controlPlane = await sharedControlPlane();
    kc = kubeConfigFor(controlPlane);
    client = new HttpKubeClient(kc, { qps: 100, burst: 100 });
    await installSnapshotCrds(controlPlane);
    namespace = await createTestNamespace(kc, 'snapctl');
    // as `snapback controller` runs it, with only the snapshot controller switched on
    running = await startStack(
      stackOptions(
        {
          kubeconfig: controlPlane.kubeconfig,
          policy: 'false',
          'csi-snapshotter': 'false',
          'csi-provisioner': 'false',
          'leader-election': 'false',
          'defer-to-upstream': 'false',
          'retry-interval-start': '200ms',
          'retry-interval-max': '2s',
          'worker-threads': '4',
        },
        {},
        silentLogger(),
      ),
    );
  });

  after(async function () {
    if (running) {
      await running.stop();
      expect(await running.exit).to.equal('stopped');
    }
    if (!client) return;
    // contents keep the sidecar's finalizer; release them so nothing is left behind
    for (const content of (await client.list<VolumeSnapshotContent>(VolumeSnapshotContents))
      .items) {
      if (content.spec.volumeSnapshotRef.namespace !== namespace) continue;
      await client
        .patch(VolumeSnapshotContents, content.metadata.name!, undefined, 'merge', {
          metadata: { finalizers: null },
        })
        .catch(() => undefined);
      await client.delete(VolumeSnapshotContents, content.metadata.name!).catch(() => undefined);
    }
    for (const name of classes)
      await client.delete(VolumeSnapshotClasses, name).catch(() => undefined);
    if (namespace) {
      for (const snapshot of (await client.list<VolumeSnapshot>(VolumeSnapshots, { namespace }))
        .items) {
        await client
          .patch(VolumeSnapshots, snapshot.metadata.name!, namespace, 'merge', {
            metadata: { finalizers: null },
          })
          .catch(() => undefined);
      }
      for (const claim of (
        await client.list<PersistentVolumeClaim>(PersistentVolumeClaims, { namespace })
      ).items) {
        await client
          .patch(PersistentVolumeClaims, claim.metadata!.name!, namespace, 'json', [
            { op: 'test', path: '/metadata/namespace', value: namespace },
            {
              op: 'replace',
              path: '/metadata/finalizers',
              value: (claim.metadata?.finalizers ?? []).filter(
                (f) => f !== FINALIZER_PVC_AS_SOURCE,
              ),
            },
          ])
          .catch(() => undefined);
      }
      await deleteTestNamespace(kc, namespace);
    }
    for (const name of volumes) await client.delete(PersistentVolumes, name).catch(() => undefined);
  });

  const driverFor = (suffix: string) => `${namespace}-${suffix}.snapback.test`;

  async function createClass(
    name: string,
    options: { driver: string; policy?: DeletionPolicy; isDefault?: boolean },
  ): Promise<string> {
    const fullName = `${namespace}-${name}`;
    await client.create<VolumeSnapshotClass>(VolumeSnapshotClasses, {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshotClass',
      metadata: {
        name: fullName,
        ...(options.isDefault ? { annotations: { [ANN_IS_DEFAULT_CLASS]: 'true' } } : {}),
      },
      driver: options.driver,
      deletionPolicy: options.policy ?? 'Delete',
    });
    classes.push(fullName);
    return fullName;
  }

  /** A PVC bound to a pre-bound CSI PV of `driver` (kube-controller-manager binds them). */
  async function boundClaim(name: string, driver: string): Promise<void> {
    const pvName = `${namespace}-${name}`;
    await client.create(PersistentVolumes, {
      metadata: { name: pvName },
      spec: {
        capacity: { storage: '1Gi' },
        accessModes: ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Retain',
        storageClassName: '',
        claimRef: { name, namespace },
        csi: { driver, volumeHandle: `handle-${pvName}` },
      },
    });
    volumes.push(pvName);
    await client.create(PersistentVolumeClaims, {
      metadata: { name, namespace },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: '',
        volumeName: pvName,
        resources: { requests: { storage: '1Gi' } },
      },
    });
    await waitFor(
      async () => (await claim(name))?.status?.phase === 'Bound',
      TIMEOUT,
      `PVC ${name} to be Bound`,
      async () => JSON.stringify((await claim(name))?.status),
    );
  }

  const claim = (name: string) =>
    client.get<PersistentVolumeClaim>(PersistentVolumeClaims, name, namespace);
  const snapshot = (name: string) => client.get<VolumeSnapshot>(VolumeSnapshots, name, namespace);
  const content = (name: string) => client.get<VolumeSnapshotContent>(VolumeSnapshotContents, name);
  const show = (name: string) => async () => JSON.stringify(await snapshot(name));

  async function createSnapshot(
    name: string,
    source: { pvc?: string; content?: string },
    className?: string,
  ): Promise<VolumeSnapshot> {
    return client.create<VolumeSnapshot>(VolumeSnapshots, {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: { name, namespace },
      spec: {
        source: source.pvc
          ? { persistentVolumeClaimName: source.pvc }
          : { volumeSnapshotContentName: source.content },
        ...(className ? { volumeSnapshotClassName: className } : {}),
      },
    });
  }

  /** The sidecar's part: report the backend snapshot as taken and ready. */
  async function reportReady(contentName: string, restoreSize = 2 ** 30): Promise<void> {
    await client.patch(
      VolumeSnapshotContents,
      contentName,
      undefined,
      'merge',
      {
        status: {
          snapshotHandle: `backend-${contentName}`,
          readyToUse: true,
          creationTime: Date.now() * 1e6,
          restoreSize,
        },
      },
      { subresource: 'status' },
    );
  }

  async function boundContentOf(name: string): Promise<string> {
    return waitFor(
      async () => (await snapshot(name))?.status?.boundVolumeSnapshotContentName,
      TIMEOUT,
      `snapshot ${name} to be bound`,
      show(name),
    );
  }

  async function takeReadySnapshot(
    name: string,
    pvcName: string,
    className: string,
  ): Promise<{ snapshot: VolumeSnapshot; contentName: string }> {
    const created = await createSnapshot(name, { pvc: pvcName }, className);
    const contentName = await boundContentOf(name);
    expect(contentName).to.equal(`snapcontent-${created.metadata.uid}`);
    await reportReady(contentName);
    await waitFor(
      async () => (await snapshot(name))?.status?.readyToUse === true,
      TIMEOUT,
      `snapshot ${name} to be ready`,
      show(name),
    );
    return { snapshot: created, contentName };
  }

  async function eventsOf(name: string): Promise<CoreEvent[]> {
    return (
      await client.list<CoreEvent>(Events, {
        namespace,
        fieldSelector: `involvedObject.name=${name}`,
      })
    ).items;
  }

  it('binds a pre-provisioned content: fills its uid and mirrors its status', async function () {
    const contentName = `${namespace}-imported`;
    await client.create<VolumeSnapshotContent>(VolumeSnapshotContents, {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshotContent',
      metadata: { name: contentName },
      spec: {
        volumeSnapshotRef: { name: 'imported', namespace },
        deletionPolicy: 'Retain',
        driver: driverFor('pre'),
        source: { snapshotHandle: 'backend-existing-1' },
      },
    });
    await reportReady(contentName, 5 * 2 ** 20);
    const created = await createSnapshot('imported', { content: contentName });
    await waitFor(
      async () => (await snapshot('imported'))?.status?.readyToUse === true,
      TIMEOUT,
      'the imported snapshot to be ready',
      show('imported'),
    );
    const bound = (await snapshot('imported'))!;
    expect(bound.status).to.include({
      boundVolumeSnapshotContentName: contentName,
      restoreSize: '5Mi',
    });
    const boundContent = (await content(contentName))!;
    expect(boundContent.spec.volumeSnapshotRef.uid).to.equal(created.metadata.uid);
    await waitFor(
      async () =>
        (await content(contentName))?.metadata.finalizers?.includes(
          FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND,
        ),
      TIMEOUT,
      'the content to get bound-protection',
    );
    expect(bound.metadata.finalizers, 'Retain: no bound-protection on the snapshot').to.deep.equal([
      FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE,
    ]);
  });

  describe('default class per driver', function () {
    it('none: the snapshot reports SetDefaultSnapshotClassFailed and waits', async function () {
      const driver = driverFor('none');
      await createClass('none-plain', { driver });
      await createClass('none-elsewhere', { driver: driverFor('unrelated'), isDefault: true });
      await boundClaim('none-data', driver);
      await createSnapshot('none', { pvc: 'none-data' });
      const error = await waitFor(
        async () => (await snapshot('none'))?.status?.error?.message,
        TIMEOUT,
        'an error on the snapshot',
        show('none'),
      );
      expect(error).to.equal(
        'Failed to set default snapshot class with error cannot find default snapshot class',
      );
      await waitFor(
        async () =>
          (await eventsOf('none')).some(
            (event) => event.reason === 'SetDefaultSnapshotClassFailed' && event.type === 'Warning',
          ),
        TIMEOUT,
        'a SetDefaultSnapshotClassFailed event',
      );
      expect((await snapshot('none'))!.spec.volumeSnapshotClassName).to.equal(undefined);
    });

    it('one: the default of the PV driver is set on the snapshot and used', async function () {
      const driver = driverFor('one');
      const chosen = await createClass('one-default', { driver, isDefault: true });
      await createClass('one-plain', { driver });
      await createClass('one-other-driver', { driver: driverFor('one-other'), isDefault: true });
      await boundClaim('one-data', driver);
      await createSnapshot('one', { pvc: 'one-data' });
      const contentName = await boundContentOf('one');
      expect((await snapshot('one'))!.spec.volumeSnapshotClassName).to.equal(chosen);
      expect((await content(contentName))!.spec).to.deep.include({
        volumeSnapshotClassName: chosen,
        driver,
        deletionPolicy: 'Delete',
      });
    });

    it('two: refuses to guess between two defaults', async function () {
      const driver = driverFor('two');
      await createClass('two-a', { driver, isDefault: true });
      await createClass('two-b', { driver, isDefault: true });
      await boundClaim('two-data', driver);
      await createSnapshot('two', { pvc: 'two-data' });
      const error = await waitFor(
        async () => (await snapshot('two'))?.status?.error?.message,
        TIMEOUT,
        'an error on the snapshot',
        show('two'),
      );
      expect(error).to.match(/2 default snapshot classes were found/);
      expect((await snapshot('two'))!.status?.boundVolumeSnapshotContentName).to.equal(undefined);
    });
  });

  describe('deletion policies', function () {
    it('Delete: the content is marked, deleted, and the snapshot goes once the sidecar released it', async function () {
      const driver = driverFor('del');
      const className = await createClass('delete', { driver, policy: 'Delete' });
      await boundClaim('del-data', driver);
      const { contentName } = await takeReadySnapshot('del', 'del-data', className);
      expect((await snapshot('del'))!.metadata.finalizers).to.have.members([
        FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE,
        FINALIZER_VOLUME_SNAPSHOT_BOUND,
      ]);
      await client.delete(VolumeSnapshots, 'del', namespace);
      const marked = await waitFor(
        async () => {
          const current = await content(contentName);
          return current?.metadata.deletionTimestamp ? current : undefined;
        },
        TIMEOUT,
        'the content to be deleted',
      );
      expect(marked.metadata.annotations?.[ANN_VOLUME_SNAPSHOT_BEING_DELETED]).to.equal('yes');
      expect(
        (await snapshot('del'))?.metadata.finalizers,
        'held until the content is gone',
      ).to.deep.equal([FINALIZER_VOLUME_SNAPSHOT_BOUND]);
      // the sidecar deletes the backend snapshot, then releases the content
      await client.patch(VolumeSnapshotContents, contentName, undefined, 'merge', {
        metadata: { finalizers: null },
      });
      await waitFor(
        async () => (await snapshot('del')) === undefined,
        TIMEOUT,
        'the snapshot to be gone',
        show('del'),
      );
    });

    it('Retain: the snapshot goes and the content stays, marked being-deleted', async function () {
      const driver = driverFor('ret');
      const className = await createClass('retain', { driver, policy: 'Retain' });
      await boundClaim('ret-data', driver);
      const { contentName } = await takeReadySnapshot('ret', 'ret-data', className);
      await client.delete(VolumeSnapshots, 'ret', namespace);
      await waitFor(
        async () => (await snapshot('ret')) === undefined,
        TIMEOUT,
        'the snapshot to be gone',
        show('ret'),
      );
      const kept = (await content(contentName))!;
      expect(kept.metadata.deletionTimestamp).to.equal(undefined);
      expect(kept.metadata.annotations?.[ANN_VOLUME_SNAPSHOT_BEING_DELETED]).to.equal('yes');
      expect(kept.status?.readyToUse).to.equal(true);
    });
  });

  it('protects the source PVC while the snapshot is taken, and releases it once ready', async function () {
    const driver = driverFor('pvc');
    const className = await createClass('pvc', { driver, policy: 'Retain' });
    await boundClaim('protected', driver);
    await createSnapshot('protecting', { pvc: 'protected' }, className);
    const contentName = await boundContentOf('protecting');
    await waitFor(
      async () =>
        (await claim('protected'))?.metadata?.finalizers?.includes(FINALIZER_PVC_AS_SOURCE),
      TIMEOUT,
      'the PVC finalizer',
    );

    // deleting the PVC now must not take it away before the snapshot is done
    await client.delete(PersistentVolumeClaims, 'protected', namespace);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const terminating = (await claim('protected'))!;
    expect(terminating.metadata?.deletionTimestamp, 'deletion was requested').to.not.equal(
      undefined,
    );
    expect(terminating.metadata?.finalizers).to.include(FINALIZER_PVC_AS_SOURCE);

    await reportReady(contentName);
    await waitFor(
      async () => (await claim('protected')) === undefined,
      TIMEOUT,
      'the PVC to be released and deleted',
      async () => JSON.stringify((await claim('protected'))?.metadata),
    );
    expect((await snapshot('protecting'))!.status?.readyToUse).to.equal(true);
  });

  it('deletes a snapshot whose creation failed for good, and its PVC can go', async function () {
    const driver = driverFor('refused');
    const className = await createClass('refused', { driver, policy: 'Delete' });
    await boundClaim('refused-data', driver);
    await createSnapshot('refused', { pvc: 'refused-data' }, className);
    const contentName = await boundContentOf('refused');
    await waitFor(
      async () =>
        (await claim('refused-data'))?.metadata?.finalizers?.includes(FINALIZER_PVC_AS_SOURCE),
      TIMEOUT,
      'the PVC finalizer',
    );
    // the sidecar's part: the driver refused the class with a final error
    const refusal = 'Failed to create snapshot: INVALID_ARGUMENT: unknown parameter "tier"';
    await client.patch(
      VolumeSnapshotContents,
      contentName,
      undefined,
      'merge',
      {
        status: { readyToUse: false, error: { time: new Date().toISOString(), message: refusal } },
      },
      { subresource: 'status' },
    );
    await waitFor(
      async () => (await snapshot('refused'))?.status?.error?.message === refusal,
      TIMEOUT,
      'the refusal on the snapshot',
      show('refused'),
    );

    await client.delete(VolumeSnapshots, 'refused', namespace);
    await client.delete(PersistentVolumeClaims, 'refused-data', namespace);
    await waitFor(
      async () => !!(await content(contentName))?.metadata.deletionTimestamp,
      TIMEOUT,
      'the content to be deleted',
      async () => JSON.stringify(await content(contentName)),
    );
    // the sidecar: nothing was created on the backend, so it releases the content at once
    await client.patch(VolumeSnapshotContents, contentName, undefined, 'merge', {
      metadata: { finalizers: null },
    });
    await waitFor(
      async () => (await snapshot('refused')) === undefined,
      TIMEOUT,
      'the snapshot to be gone',
      show('refused'),
    );
    await waitFor(
      async () => (await claim('refused-data')) === undefined,
      TIMEOUT,
      'the PVC to be released and deleted',
      async () => JSON.stringify((await claim('refused-data'))?.metadata),
    );
  });

  it('refuses to delete a snapshot a Pending PVC restores from (SnapshotDeletePending)', async function () {
    const driver = driverFor('restore');
    const className = await createClass('restore', { driver, policy: 'Retain' });
    await boundClaim('origin', driver);
    await takeReadySnapshot('in-use', 'origin', className);
    // no provisioner serves this class, so the restore stays Pending
    await client.create(PersistentVolumeClaims, {
      metadata: { name: 'restoring', namespace },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: `${namespace}-nobody-provisions-this`,
        resources: { requests: { storage: '1Gi' } },
        dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'in-use' },
      },
    });
    await waitFor(
      async () => (await claim('restoring'))?.status?.phase === 'Pending',
      TIMEOUT,
      'the restore PVC to be Pending',
    );
    await client.delete(VolumeSnapshots, 'in-use', namespace);
    await waitFor(
      async () =>
        (await eventsOf('in-use')).some((event) => event.reason === 'SnapshotDeletePending'),
      TIMEOUT,
      'a SnapshotDeletePending event',
    );
    const held = (await snapshot('in-use'))!;
    expect(held.metadata.deletionTimestamp).to.not.equal(undefined);
    expect(held.metadata.finalizers).to.include(FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE);

    await client.delete(PersistentVolumeClaims, 'restoring', namespace);
    await waitFor(
      async () => (await snapshot('in-use')) === undefined,
      TIMEOUT,
      'the snapshot to be deleted once the restore is gone',
      show('in-use'),
    );
  });
});

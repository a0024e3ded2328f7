import { expect } from 'chai';
import type * as k8s from '@kubernetes/client-node';
import {
  ANN_IS_DEFAULT_GROUP_CLASS,
  memberVolumeSnapshotContentNameFor,
  memberVolumeSnapshotNameFor,
  volumeGroupSnapshotContentNameFor,
  type VolumeGroupSnapshot,
  type VolumeGroupSnapshotContent,
} from '../../../../src/api/group-snapshot.js';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../../../../src/api/snapshot.js';
import { stackOptions, startStack, type Stack } from '../../../../src/cli/controller.js';
import {
  HttpKubeClient,
  type KubeObject,
  PersistentVolumeClaims,
  PersistentVolumes,
  VolumeGroupSnapshotClasses,
  VolumeGroupSnapshotContents,
  VolumeGroupSnapshots,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../../../../src/kube/index.js';
import { silentLogger } from '../../../../src/observability/logger.js';
import type { ControlPlane } from '../../../support/control-plane.js';
import {
  createTestNamespace,
  deleteTestNamespace,
  kubeConfigFor,
  sharedControlPlane,
} from '../../../support/cluster.js';
import { waitFor } from '../../../support/processes.js';
import { installCrds } from '../../stack/support.js';

const TIMEOUT = 60_000;

/**
 * The group paths of the embedded snapshot controller, started as `snapback controller` starts
 * it, on a real API server with the group snapshot CRDs of crds/. The test plays the CSI
 * snapshotter: it reports the group as cut in the content's status.
 */
describe('group snapshot controller (real control plane; the test plays the CSI snapshotter)', function () {
  let controlPlane: ControlPlane;
  let kc: k8s.KubeConfig;
  let client: HttpKubeClient;
  let namespace: string;
  let running: Stack | undefined;
  const volumes: string[] = [];
  let className: string;
  let driver: string;

  before(async function () {
    controlPlane = await sharedControlPlane();
    kc = kubeConfigFor(controlPlane);
    client = new HttpKubeClient(kc, { qps: 100, burst: 100 });
    await installCrds(controlPlane);
    namespace = await createTestNamespace(kc, 'groupctl');
    driver = `${namespace}.snapback.test`;
    className = `${namespace}-group`;
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
        },
        {},
        silentLogger(),
      ),
    );
  });

  after(async function () {
    if (running) await running.stop();
    if (!client) return;
    const release = async (type: typeof VolumeSnapshots, name: string, ns?: string) => {
      await client
        .patch(type, name, ns, 'merge', { metadata: { finalizers: null } })
        .catch(() => undefined);
      await client.delete(type, name, ns).catch(() => undefined);
    };
    for (const c of (await client.list<VolumeGroupSnapshotContent>(VolumeGroupSnapshotContents))
      .items) {
      if (c.spec.volumeGroupSnapshotRef.namespace === namespace)
        await release(VolumeGroupSnapshotContents, c.metadata.name!);
    }
    for (const c of (await client.list<VolumeSnapshotContent>(VolumeSnapshotContents)).items) {
      if (c.spec.volumeSnapshotRef.namespace === namespace)
        await release(VolumeSnapshotContents, c.metadata.name!);
    }
    if (namespace) {
      for (const g of (await client.list<VolumeGroupSnapshot>(VolumeGroupSnapshots, { namespace }))
        .items)
        await release(VolumeGroupSnapshots, g.metadata.name!, namespace);
      for (const s of (await client.list<VolumeSnapshot>(VolumeSnapshots, { namespace })).items)
        await release(VolumeSnapshots, s.metadata.name!, namespace);
      await deleteTestNamespace(kc, namespace);
    }
    await client.delete(VolumeGroupSnapshotClasses, className).catch(() => undefined);
    for (const name of volumes) await client.delete(PersistentVolumes, name).catch(() => undefined);
  });

  async function boundClaim(name: string): Promise<string> {
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
      metadata: { name, namespace, labels: { app: 'db' } },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: '',
        volumeName: pvName,
        resources: { requests: { storage: '1Gi' } },
      },
    });
    await waitFor(
      async () =>
        (
          await client.get<KubeObject & { status?: { phase?: string } }>(
            PersistentVolumeClaims,
            name,
            namespace,
          )
        )?.status?.phase === 'Bound',
      TIMEOUT,
      `PVC ${name} to be Bound`,
    );
    return `handle-${pvName}`;
  }

  it('cuts a dynamic group into groupsnapcontent-<uid>, then makes its members and reports it ready', async function () {
    this.timeout(3 * TIMEOUT);
    const handles = [await boundClaim('data-0'), await boundClaim('data-1')];
    await client.create(VolumeGroupSnapshotClasses, {
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshotClass',
      metadata: { name: className, annotations: { [ANN_IS_DEFAULT_GROUP_CLASS]: 'true' } },
      driver,
      deletionPolicy: 'Delete',
    });
    const group = await client.create<VolumeGroupSnapshot>(VolumeGroupSnapshots, {
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshot',
      metadata: { name: 'db', namespace },
      spec: { source: { selector: { matchLabels: { app: 'db' } } } },
    });
    const uid = group.metadata.uid!;
    const contentName = volumeGroupSnapshotContentNameFor(uid);
    const groupNow = () => client.get<VolumeGroupSnapshot>(VolumeGroupSnapshots, 'db', namespace);
    const content = await waitFor(
      () => client.get<VolumeGroupSnapshotContent>(VolumeGroupSnapshotContents, contentName),
      TIMEOUT,
      `content ${contentName}`,
      async () => JSON.stringify((await groupNow())?.status),
    );
    expect(content.spec.driver).to.equal(driver);
    expect(content.spec.deletionPolicy).to.equal('Delete');
    expect(content.spec.volumeGroupSnapshotClassName).to.equal(className);
    expect(content.spec.volumeGroupSnapshotRef).to.include({ name: 'db', namespace, uid });
    expect([...(content.spec.source.volumeHandles ?? [])].sort()).to.deep.equal(handles.sort());
    await waitFor(
      async () => (await groupNow())?.status?.boundVolumeGroupSnapshotContentName === contentName,
      TIMEOUT,
      'the group to name its content',
    );

    // the CSI snapshotter's part: the group is cut, both members ready
    const cutAt = Date.now();
    await client.patch(
      VolumeGroupSnapshotContents,
      contentName,
      undefined,
      'merge',
      {
        status: {
          volumeGroupSnapshotHandle: `group-${uid}`,
          creationTime: new Date(cutAt).toISOString(),
          readyToUse: true,
          volumeSnapshotInfoList: handles.map((h) => ({
            volumeHandle: h,
            snapshotHandle: `snap-${h}`,
            creationTime: cutAt * 1e6,
            readyToUse: true,
            restoreSize: 2 ** 30,
          })),
        },
      },
      { subresource: 'status' },
    );
    const ready = await waitFor(
      async () => {
        const g = await groupNow();
        return g?.status?.readyToUse === true ? g : undefined;
      },
      TIMEOUT,
      'the group to be ready',
      async () => JSON.stringify((await groupNow())?.status),
    );
    expect(ready.status?.creationTime).to.be.a('string');
    for (const handle of handles) {
      const member = await waitFor(
        () =>
          client.get<VolumeSnapshot & { status?: { volumeGroupSnapshotName?: string } }>(
            VolumeSnapshots,
            memberVolumeSnapshotNameFor(uid, handle),
            namespace,
          ),
        TIMEOUT,
        `the member snapshot of ${handle}`,
      );
      expect(member.metadata.ownerReferences?.map((o) => [o.kind, o.name, o.uid])).to.deep.equal([
        ['VolumeGroupSnapshot', 'db', uid],
      ]);
      const memberContent = await waitFor(
        () =>
          client.get<VolumeSnapshotContent>(
            VolumeSnapshotContents,
            memberVolumeSnapshotContentNameFor(uid, handle),
          ),
        TIMEOUT,
        `the member content of ${handle}`,
      );
      expect(memberContent.spec.volumeSnapshotRef).to.include({
        name: member.metadata.name,
        namespace,
      });
      await waitFor(
        async () =>
          (
            await client.get<VolumeSnapshot & { status?: { volumeGroupSnapshotName?: string } }>(
              VolumeSnapshots,
              member.metadata.name!,
              namespace,
            )
          )?.status?.volumeGroupSnapshotName === 'db',
        TIMEOUT,
        `member ${member.metadata.name} to name its group`,
      );
    }
  });
});

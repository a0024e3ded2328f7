import { expect } from 'chai';

import path from 'node:path';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../../../src/api/snapshot.js';
import { PersistentVolumeClaims } from '../../../src/kube/index.js';
import { VolumeSnapshotContents, VolumeSnapshots } from '../../../src/kube/resource.js';

import { sharedControlPlane } from '../../support/cluster.js';
import { waitFor } from '../../support/processes.js';
import { claim, observe, playRecipe, type Observation, type RecipeResult } from './recipe.js';
import { Rig } from './rig.js';
import {
  deleteGroupRecipe,
  observeGroup,
  playGroupRecipe,
  type GroupObservation,
} from './group-recipe.js';
import {
  LOCAL_DRIVER,
  apiClient,
  eventsFor,
  installCrds,
  startUpstream,
  type Claim,
} from './support.js';

let ours: Observation | undefined;
let oursGroup: GroupObservation | undefined;

/** Upstream's group paths are behind this gate, in both the controller and the sidecar. */
const GROUP_FEATURE = '--feature-gates=CSIVolumeGroupSnapshot=true';

describe('snapshot stack: the recipe on snapback all-in-one (local backend, real control plane)', function () {
  this.timeout(600_000);
  let rig: Rig;
  let result: RecipeResult;

  before(async function () {
    const controlPlane = await sharedControlPlane();
    await installCrds(controlPlane);
    rig = new Rig(controlPlane, apiClient(controlPlane));
    await rig.setUp('stack', []);
  });

  after(async function () {
    if (this.currentTest?.state === 'failed') console.log(rig?.logs());
    await rig?.tearDown();
  });

  it('provisions a PVC, snapshots it through snapcontent-<uid>, and restores lost+found and test with the same content', async function () {
    const { client, namespace } = rig;
    result = await playRecipe(client, rig.kubelet!, namespace, namespace);

    // provisioned: kube-controller-manager named our driver, the provisioner made the PV
    const { pvc, pv } = result.source;
    expect(pvc.metadata?.annotations?.['volume.kubernetes.io/storage-provisioner']).to.equal(
      LOCAL_DRIVER,
    );
    expect(pv.metadata?.name).to.equal(`pvc-${pvc.metadata?.uid}`);
    expect(pv.metadata?.annotations?.['pv.kubernetes.io/provisioned-by']).to.equal(LOCAL_DRIVER);
    expect(pv.spec?.claimRef).to.include({ namespace, name: 'data', uid: pvc.metadata?.uid });
    expect(pv.spec?.persistentVolumeReclaimPolicy).to.equal('Delete');
    expect(pv.spec?.nodeAffinity?.required?.nodeSelectorTerms).to.deep.equal([
      {
        matchExpressions: [
          { key: 'topology.local.snapback.dev/node', operator: 'In', values: ['node-a'] },
        ],
      },
    ]);

    // snapshotted: bound both ways through snapcontent-<uid>, handle from CreateSnapshot
    const { snapshot, content } = result;
    expect(snapshot.status?.boundVolumeSnapshotContentName).to.equal(
      `snapcontent-${snapshot.metadata.uid}`,
    );
    expect(content.spec.volumeSnapshotRef).to.include({
      name: 'snap',
      namespace,
      uid: snapshot.metadata.uid,
    });
    expect(content.spec.source.volumeHandle).to.equal(pv.spec?.csi?.volumeHandle);
    expect(content.status?.readyToUse).to.equal(true);
    expect(content.status?.snapshotHandle).to.be.a('string').and.not.equal('');

    // restored: from the snapshot, with the file written before the backup
    expect(result.restored.pv.spec?.csi?.volumeHandle).to.not.equal(pv.spec?.csi?.volumeHandle);
    expect(result.restoredEntries).to.deep.equal(['lost+found', 'test']);
    expect(result.restoredText).to.equal(result.written);

    ours = await observe(client, result);
  });

  it('refuses a restore smaller than the snapshot’s restoreSize with a ProvisioningFailed Event', async function () {
    if (!result) this.skip();
    const { client, namespace } = rig;
    await client.create(PersistentVolumeClaims, {
      ...claim('too-small', namespace, {
        dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'snap' },
        resources: { requests: { storage: '16Mi' } },
      }),
      metadata: { name: 'too-small', namespace },
    });
    try {
      const failure = await waitFor(
        async () =>
          (await eventsFor(client, namespace, 'PersistentVolumeClaim', 'too-small')).find(
            (e) => e.reason === 'ProvisioningFailed',
          ),
        60_000,
        'a ProvisioningFailed event on the PVC',
        async () =>
          JSON.stringify(await eventsFor(client, namespace, 'PersistentVolumeClaim', 'too-small')),
      );
      expect(failure.type).to.equal('Warning');
      expect(failure.message).to.contain(
        `requested volume size ${16 * 2 ** 20} is less than the size ${64 * 2 ** 20} for the source snapshot snap: request at least 64Mi`,
      );
      const pvc = await client.get<Claim>(PersistentVolumeClaims, 'too-small', namespace);
      expect(pvc?.status?.phase).to.equal('Pending');
    } finally {
      // a Pending restore would (rightly) hold the snapshot's deletion in the next test
      await client.delete(PersistentVolumeClaims, 'too-small', namespace);
      await waitFor(
        async () => !(await client.get(PersistentVolumeClaims, 'too-small', namespace)),
        60_000,
        'the too-small PVC to be gone',
      );
    }
  });

  it('keeps the content of a snapshot with a dependent disk (forceDelete=false), showing why, until the disk is gone', async function () {
    if (!result) this.skip();
    const { client, namespace } = rig;
    const contentName = result.content.metadata.name!;
    await client.delete(VolumeSnapshots, 'snap', namespace);

    const refused = await waitFor(
      async () => {
        const content = await client.get<VolumeSnapshotContent>(
          VolumeSnapshotContents,
          contentName,
        );
        return content?.metadata.deletionTimestamp && content.status?.error ? content : undefined;
      },
      120_000,
      'the deletion to be refused',
      async () => JSON.stringify(await client.get(VolumeSnapshotContents, contentName)),
    );
    expect(refused.metadata.finalizers).to.include(
      'snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection',
    );
    expect(refused.status?.error?.message).to.match(
      /^Failed to delete snapshot: FAILED_PRECONDITION: .*forceDelete/,
    );
    const reason = refused.status!.error!.message!;
    expect(reason).to.contain(result.restored.pv.spec!.csi!.volumeHandle);

    const vs = await client.get<VolumeSnapshot>(VolumeSnapshots, 'snap', namespace);
    expect(vs?.metadata.deletionTimestamp, 'the VolumeSnapshot waits for its content').to.be.a(
      'string',
    );
    // Events are written in the background: wait for both, with the driver's reason
    const deleteErrors = async (ns: string, kind: string, name: string) =>
      (await eventsFor(client, ns, kind, name))
        .filter((e) => e.reason === 'SnapshotDeleteError' && e.type === 'Warning')
        .map((e) => e.message);
    await waitFor(
      async () =>
        (await deleteErrors(namespace, 'VolumeSnapshot', 'snap')).includes(reason) &&
        (await deleteErrors('default', 'VolumeSnapshotContent', contentName)).includes(reason),
      30_000,
      'SnapshotDeleteError events on the VolumeSnapshot and its content',
      async () =>
        JSON.stringify({
          snapshot: await eventsFor(client, namespace, 'VolumeSnapshot', 'snap'),
          content: await eventsFor(client, 'default', 'VolumeSnapshotContent', contentName),
        }),
    );

    // still refused after retries: the content is kept, not dropped after a few attempts
    const retriedAt = Date.now();
    await waitFor(async () => Date.now() - retriedAt > 5_000, 10_000, 'a few retries');
    expect(await client.get(VolumeSnapshotContents, contentName)).to.not.equal(undefined);

    // the dependent disk goes: the snapshot, its content and the VolumeSnapshot follow
    await rig.kubelet!.unmount(result.restored.pv.spec!.csi!.volumeHandle);
    await client.delete(PersistentVolumeClaims, 'restored', namespace);
    await waitFor(
      async () =>
        !(await client.get(VolumeSnapshotContents, contentName)) &&
        !(await client.get(VolumeSnapshots, 'snap', namespace)),
      180_000,
      'the content and the snapshot to be deleted once the disk is gone',
      async () => JSON.stringify(await client.get(VolumeSnapshotContents, contentName)),
    );
  });

  it('snapshots two PVCs as one VolumeGroupSnapshot (both members ready, one instant) and restores a member with its data', async function () {
    const { client, namespace } = rig;
    try {
      const result = await playGroupRecipe(client, rig.kubelet!, namespace, () => rig.logs());
      const infos = result.groupContent.status!.volumeSnapshotInfoList!;
      expect(infos.map((i) => i.volumeHandle).sort()).to.deep.equal(
        Object.values(result.handles).sort(),
      );
      expect(result.instants, 'one instant for all members').to.equal(1);
      expect(result.restoredEntries).to.deep.equal(['lost+found', 'test']);
      expect(result.restoredText).to.equal(result.written);
      oursGroup = await observeGroup(client, namespace, result);
      expect(oursGroup.members.map((m) => m.status.readyToUse)).to.deep.equal([true, true]);
      expect(oursGroup.members.every((m) => m.ownedByTheGroup && m.status.inTheGroup)).to.equal(
        true,
      );
    } finally {
      // the group goes with its members while the stack runs (a member left behind, deleting,
      // would crash upstream's snapshot-controller of the next suite if it ran without its
      // group feature)
      await deleteGroupRecipe(client, namespace, () => rig.logs());
    }
  });
});

describe('snapshot stack interop: upstream snapshot-controller + csi-snapshotter driving our driver', function () {
  this.timeout(600_000);
  let rig: Rig;

  before(async function () {
    const controlPlane = await sharedControlPlane();
    await installCrds(controlPlane);
    rig = new Rig(controlPlane, apiClient(controlPlane));
    // our driver and provisioner; upstream does the snapshot controller and the sidecar
    await rig.setUp('interop', ['--snapshot-controller=false', '--csi-snapshotter=false']);
    const common = [
      `--kubeconfig=${controlPlane.kubeconfig}`,
      '--leader-election=false',
      '--retry-interval-max=2s',
    ];
    rig.processes.push(
      startUpstream(
        'SNAPSHOT_CONTROLLER',
        [...common, GROUP_FEATURE],
        path.join(rig.dir, 'snapshot-controller.log'),
      ),
      startUpstream(
        'CSI_SNAPSHOTTER',
        [...common, GROUP_FEATURE, `--csi-address=${rig.socket}`],
        path.join(rig.dir, 'csi-snapshotter.log'),
      ),
    );
  });

  after(async function () {
    if (this.currentTest?.state === 'failed') console.log(rig?.logs());
    await rig?.tearDown();
  });

  it('plays the same recipe and leaves the same objects as snapback’s embedded stack', async function () {
    const { client, namespace } = rig;
    const result = await playRecipe(client, rig.kubelet!, namespace, namespace);
    expect(result.restoredEntries).to.deep.equal(['lost+found', 'test']);
    expect(result.restoredText).to.equal(result.written);
    const upstream = await observe(client, result);
    if (!ours) this.skip();
    expect(ours).to.deep.equal(upstream);
  });

  it('takes and restores the same VolumeGroupSnapshot, with the same objects, as snapback’s embedded stack', async function () {
    const { client, namespace } = rig;
    try {
      const result = await playGroupRecipe(client, rig.kubelet!, namespace, () => rig.logs());
      expect(result.instants, 'one instant for all members').to.equal(1);
      expect(result.restoredText).to.equal(result.written);
      const upstream = await observeGroup(client, namespace, result);
      if (!oursGroup) this.skip();
      expect(oursGroup).to.deep.equal(upstream);
    } finally {
      await deleteGroupRecipe(client, namespace, () => rig.logs());
    }
  });
});

import { expect } from 'chai';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type {
  BackupPolicy,
  RestoreJob,
  VolumeGroupSnapshot,
  VolumeSnapshot,
} from '../../../src/api/index.js';
import {
  PersistentVolumeClaims,
  StorageClasses,
  VolumeGroupSnapshotClasses,
  VolumeGroupSnapshots,
  type HttpKubeClient,
  type KubeObject,
} from '../../../src/kube/index.js';
import { VolumeSnapshots } from '../../../src/kube/resource.js';
import { BackupPolicies, RestoreJobs } from '../../../src/policy/objects.js';
import type { ControlPlane } from '../../support/control-plane.js';
import { kubectl, sharedControlPlane } from '../../support/cluster.js';
import { waitFor } from '../../support/processes.js';
import { claim, writeDurably } from '../stack/recipe.js';
import { Rig } from '../stack/rig.js';
import type { Kubelet } from '../stack/support.js';
import {
  LOCAL_DRIVER,
  apiClient,
  boundClaim,
  eventsWhen,
  installCrds,
  type Started,
} from '../stack/support.js';

const GROUP_VERSION = 'snapback.dev/v1alpha1';
const MEMBERS = ['db-0', 'db-1', 'db-2'];
const POLICY = 'db';

/**
 * RestoreJobs from a Group policy end to end: `snapback all-in-one` with the local backend and
 * the group snapshot API served, three PVCs with data, the one VolumeGroupSnapshot a run of the
 * policy takes over them, and a "kubelet" that mounts through the driver's CSI socket to read
 * back what each restored PVC holds.
 */
describe('RestoreJob from a Group policy on snapback all-in-one (local backend, real control plane)', function () {
  this.timeout(900_000);
  let controlPlane: ControlPlane;
  let client: HttpKubeClient;
  let namespace: string;
  let rig: Rig | undefined;
  let aio: Started | undefined;
  let kubelet: Kubelet | undefined;
  const written: Record<string, string> = {};
  /** The group the policy's run took. */
  let group: string;

  const restoreManifest = (name: string, spec: Record<string, unknown>): RestoreJob =>
    ({
      apiVersion: GROUP_VERSION,
      kind: 'RestoreJob',
      metadata: { name, namespace },
      spec,
    }) as unknown as RestoreJob;
  const getJob = (name: string) => client.get<RestoreJob>(RestoreJobs, name, namespace);
  const groupClass = () => `${namespace}-group`;
  /** The restore holds (finalizers of RestoreJobs) on the named member snapshots. */
  const restoreHolds = async (names: string[]) => {
    const holds: string[] = [];
    for (const name of names) {
      const member = await client.get<VolumeSnapshot>(VolumeSnapshots, name, namespace);
      holds.push(
        ...(member?.metadata.finalizers ?? []).filter((f) =>
          f.startsWith('restorejob.snapback.dev/'),
        ),
      );
    }
    return holds;
  };

  async function waitForJob(name: string, phase: string): Promise<RestoreJob> {
    return waitFor(
      async () => {
        const j = await getJob(name);
        return j?.status?.phase === phase ? j : undefined;
      },
      180_000,
      `RestoreJob ${name} to be ${phase}`,
      async () => JSON.stringify((await getJob(name))?.status) + `\n${aio?.log().slice(-3000)}`,
    );
  }

  /** What a restored PVC holds, read through a mount of its volume. */
  async function contentsOf(pvcName: string): Promise<{ files: string[]; text: string }> {
    const { pv } = await boundClaim(client, namespace, pvcName);
    const mounted = await kubelet!.mount(pv);
    return {
      files: readdirSync(mounted).sort(),
      text: readFileSync(path.join(mounted, 'test'), 'utf8'),
    };
  }

  before(async function () {
    controlPlane = await sharedControlPlane();
    // Every CRD of crds/: the snapshot and group snapshot APIs, and snapback.dev.
    await installCrds(controlPlane);
    rig = new Rig(controlPlane, apiClient(controlPlane));
    await rig.setUp('group-restore', []);
    ({ client, namespace } = rig);
    aio = rig.aio;
    kubelet = rig.kubelet!;

    for (const name of MEMBERS) {
      await client.create(PersistentVolumeClaims, {
        ...claim(name, namespace),
        metadata: { name, namespace, labels: { app: 'db' } },
      });
      const { pv } = await boundClaim(client, namespace, name);
      written[name] = `${name} written before the group snapshot at ${new Date().toISOString()}\n`;
      writeDurably(path.join(await kubelet.mount(pv), 'test'), written[name]);
      await kubelet.unmount(pv.spec!.csi!.volumeHandle);
    }

    await client.create(VolumeGroupSnapshotClasses, {
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshotClass',
      metadata: { name: groupClass() },
      driver: LOCAL_DRIVER,
      deletionPolicy: 'Delete',
      parameters: { forceDelete: 'true' },
    } as KubeObject);
    // The policy whose group the RestoreJobs restore from: one run (run-now) takes one group
    // over the three PVCs; its schedule does not come round during the test.
    await client.create(BackupPolicies, {
      apiVersion: GROUP_VERSION,
      kind: 'BackupPolicy',
      metadata: { name: POLICY, namespace, annotations: { 'snapback.dev/run-now': 'one' } },
      spec: {
        schedule: '0 0 1 1 *',
        consistency: 'Group',
        selector: { matchLabels: { app: 'db' } },
        groupSnapshotClass: { name: groupClass() },
      },
    } as unknown as BackupPolicy);
    const groupsOfPolicy = async () =>
      (
        await client.list<VolumeGroupSnapshot>(VolumeGroupSnapshots, {
          namespace,
          labelSelector: `snapback.dev/policy=${POLICY}`,
        })
      ).items;
    const taken = await waitFor(
      async () => {
        const groups = await groupsOfPolicy();
        return groups.length === 1 && groups[0]!.status?.readyToUse ? groups[0] : undefined;
      },
      180_000,
      'one ready group of the policy',
      async () =>
        JSON.stringify((await groupsOfPolicy()).map((g) => [g.metadata.name, g.status])) +
        `\n${aio?.log().slice(-3000)}`,
    );
    group = taken.metadata.name!;
  });

  after(async function () {
    if (this.currentTest?.state === 'failed') console.log(aio?.log().slice(-6000));
    await rig?.tearDown();
    if (namespace) {
      await client.delete(VolumeGroupSnapshotClasses, groupClass()).catch(() => undefined);
    }
  });

  it('without pvcName restores every member of the group into <pvc><suffix>, with its data', async function () {
    await client.create(
      RestoreJobs,
      restoreManifest('all', {
        source: { backupPolicy: { name: POLICY } },
        target: { pvcNameSuffix: '-restored' },
      }),
    );
    const job = await waitForJob('all', 'Succeeded');
    expect(job.status?.volumeGroupSnapshotName).to.equal(group);
    expect(job.status?.pvcs?.map((p) => [p.name, p.sourcePvc, p.phase])).to.deep.equal(
      MEMBERS.map((name) => [`${name}-restored`, name, 'Bound']),
    );
    const members = (await client.list<VolumeSnapshot>(VolumeSnapshots, { namespace })).items;
    for (const entry of job.status!.pvcs!) {
      const member = members.find((m) => m.metadata.name === entry.snapshotName);
      expect(member?.status?.volumeGroupSnapshotName, entry.snapshotName).to.equal(group);
      expect(member?.spec.source.persistentVolumeClaimName).to.equal(entry.sourcePvc);
    }
    for (const name of MEMBERS) {
      const restored = await contentsOf(`${name}-restored`);
      expect(restored.files).to.deep.equal(['lost+found', 'test']);
      expect(restored.text, name).to.equal(written[name]);
    }
    const events = await eventsWhen(client, namespace, 'RestoreJob', 'all', (es) =>
      es.some((e) => e.reason === 'RestoreSucceeded'),
    );
    expect(events.map((e) => `${e.type} ${e.reason}`)).to.include.members([
      'Normal RestoreStarted',
      'Normal RestoreSucceeded',
    ]);
    const out = await kubectl(controlPlane, ['get', 'restorejobs', '-n', namespace, 'all']);
    expect(out.split('\n')[1]).to.match(/^all\s+policy\/db group at latest\s+.*Succeeded/);

    // Done: no member is held for the job any more.
    await waitFor(
      async () => (await restoreHolds(job.status!.pvcs!.map((p) => p.snapshotName))).length === 0,
      60_000,
      'the restore holds on the members to be released',
      async () => JSON.stringify(await restoreHolds(job.status!.pvcs!.map((p) => p.snapshotName))),
    );
  });

  it('holds the members it restores from while it restores, and lets go when deleted', async function () {
    // A StorageClass that binds only for a pod: the restore stays Restoring as long as needed.
    const waiting = `${namespace}-wait`;
    await client.create(StorageClasses, {
      metadata: { name: waiting },
      provisioner: LOCAL_DRIVER,
      volumeBindingMode: 'WaitForFirstConsumer',
    } as KubeObject);
    try {
      const created = await client.create<RestoreJob>(
        RestoreJobs,
        restoreManifest('held', {
          source: { backupPolicy: { name: POLICY } },
          target: { pvcNameSuffix: '-held', storageClassName: waiting },
        }),
      );
      const job = await waitForJob('held', 'Restoring');
      const members = job.status!.pvcs!.map((p) => p.snapshotName);
      expect(members).to.have.length(MEMBERS.length);
      const hold = `restorejob.snapback.dev/${created.metadata.uid}`;
      await waitFor(
        async () => (await restoreHolds(members)).filter((f) => f === hold).length === 3,
        60_000,
        'every member held for the job',
        async () => JSON.stringify(await restoreHolds(members)),
      );
      await client.delete(RestoreJobs, 'held', namespace);
      await waitFor(
        async () => (await restoreHolds(members)).length === 0,
        60_000,
        'the holds released once the job is deleted',
        async () => JSON.stringify(await restoreHolds(members)),
      );
      // Letting go deletes nothing: the group and the PVCs made for the job stay.
      expect(await client.get(VolumeGroupSnapshots, group, namespace)).not.to.equal(undefined);
      const names = (await client.list<KubeObject>(PersistentVolumeClaims, { namespace })).items
        .map((p) => p.metadata!.name!)
        .filter((n) => n.endsWith('-held'))
        .sort();
      expect(names).to.deep.equal(MEMBERS.map((m) => `${m}-held`));
    } finally {
      for (const m of MEMBERS) {
        await client.delete(PersistentVolumeClaims, `${m}-held`, namespace).catch(() => undefined);
      }
      await client.delete(StorageClasses, waiting).catch(() => undefined);
    }
  });

  it('with pvcName restores that one member into target.pvcName', async function () {
    await client.create(
      RestoreJobs,
      restoreManifest('one', {
        source: { backupPolicy: { name: POLICY, pvcName: 'db-1', at: 'latest' } },
        target: { pvcName: 'db-1-alone' },
      }),
    );
    const job = await waitForJob('one', 'Succeeded');
    expect(job.status?.pvcName).to.equal('db-1-alone');
    expect(job.status?.volumeGroupSnapshotName).to.equal(group);
    expect(job.status?.pvcs?.map((p) => p.name)).to.deep.equal(['db-1-alone']);
    const restored = await contentsOf('db-1-alone');
    expect(restored.text).to.equal(written['db-1']);
  });

  it('fails without creating any PVC when one target name is taken', async function () {
    // db-2-again is taken by a PVC of its own: the job creates neither db-0-again nor db-1-again.
    await client.create(PersistentVolumeClaims, {
      ...claim('db-2-again', namespace),
      metadata: { name: 'db-2-again', namespace },
    });
    await client.create(
      RestoreJobs,
      restoreManifest('clash', {
        source: { backupPolicy: { name: POLICY } },
        target: { pvcNameSuffix: '-again' },
      }),
    );
    const job = await waitForJob('clash', 'Failed');
    expect(job.status?.message).to.include('PVC db-2-again already exists');
    const names = (await client.list<KubeObject>(PersistentVolumeClaims, { namespace })).items.map(
      (p) => p.metadata!.name!,
    );
    expect(names.filter((n) => n.endsWith('-again'))).to.deep.equal(['db-2-again']);
  });
});

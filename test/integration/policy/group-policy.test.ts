import { expect } from 'chai';

import type {
  BackupPolicy,
  VolumeGroupSnapshot,
  VolumeGroupSnapshotClass,
  VolumeSnapshot,
} from '../../../src/api/index.js';
import { PersistentVolumeClaims, type HttpKubeClient } from '../../../src/kube/index.js';
import { groupSnapshotName, ownedSnapshotClassName } from '../../../src/policy/naming.js';
import { BackupPolicies } from '../../../src/policy/objects.js';
import {
  VolumeGroupSnapshotClasses,
  VolumeGroupSnapshots,
  VolumeSnapshots,
} from '../../../src/kube/resource.js';
import type { ControlPlane } from '../../support/control-plane.js';
import { sharedControlPlane } from '../../support/cluster.js';
import { waitFor } from '../../support/processes.js';
import { claim } from '../stack/recipe.js';
import { Rig } from '../stack/rig.js';
import {
  apiClient,
  boundClaim,
  eventsFor,
  eventsWhen,
  installCrds,
  type Started,
} from '../stack/support.js';

const POLICY = 'db-group';
const PVCS = ['db-0', 'db-1', 'db-2'];
/** A policy whose group the driver refuses. */
const FAILING = 'db-group-refused';

/**
 * A BackupPolicy with consistency Group end to end: a real control plane, `snapback
 * all-in-one` with the local backend and the group snapshot stack on (the group snapshot
 * controller, the CSI snapshotter's group paths, the driver's GroupController), so each run's
 * VolumeGroupSnapshot really becomes ready with one member VolumeSnapshot per PVC.
 */
describe('Group BackupPolicy on snapback all-in-one (local backend, real control plane)', function () {
  this.timeout(900_000);
  let controlPlane: ControlPlane;
  let client: HttpKubeClient;
  let namespace: string;
  let rig: Rig | undefined;
  let aio: Started | undefined;

  const getPolicy = () => client.get<BackupPolicy>(BackupPolicies, POLICY, namespace);
  const groups = async () =>
    (
      await client.list<VolumeGroupSnapshot>(VolumeGroupSnapshots, {
        namespace,
        labelSelector: `snapback.dev/policy=${POLICY}`,
      })
    ).items;
  const allSnapshots = async () =>
    (await client.list<VolumeSnapshot>(VolumeSnapshots, { namespace })).items;
  const membersOf = (group: VolumeGroupSnapshot, snapshots: VolumeSnapshot[]) =>
    snapshots.filter((s) =>
      s.metadata.ownerReferences?.some(
        (o) => o.kind === 'VolumeGroupSnapshot' && o.uid === group.metadata.uid,
      ),
    );
  const sourcesOf = (snapshots: VolumeSnapshot[]) =>
    snapshots.map((s) => s.spec.source.persistentVolumeClaimName).sort();
  const runNow = (token: string) =>
    client.patch(BackupPolicies, POLICY, namespace, 'merge', {
      metadata: { annotations: { 'snapback.dev/run-now': token } },
    });
  const runNowGroupOf = (policy: string, token: string, sequence: number) =>
    groupSnapshotName(policy, { kind: 'run-now', token, sequence });
  const runNowGroup = (token: string, sequence: number) => runNowGroupOf(POLICY, token, sequence);
  const state = async () =>
    JSON.stringify({
      policy: (await getPolicy())?.status,
      groups: (await groups()).map((g) => [g.metadata.name, g.status]),
      snapshots: (await allSnapshots()).map((s) => [
        s.metadata.name,
        s.spec.source.persistentVolumeClaimName,
        s.status?.readyToUse,
      ]),
    }) + `\n${aio?.log().slice(-3000)}`;

  /** Waits until the policy's groups are exactly `names`, each ready with its members ready. */
  async function waitForReadyGroups(names: string[], what: string) {
    return waitFor(
      async () => {
        const found = await groups();
        const snapshots = await allSnapshots();
        const ok =
          found.length === names.length &&
          found.every(
            (g) =>
              names.includes(g.metadata.name!) &&
              !g.metadata.deletionTimestamp &&
              g.status?.readyToUse === true &&
              membersOf(g, snapshots).length > 0 &&
              membersOf(g, snapshots).every((m) => m.status?.readyToUse === true),
          );
        return ok ? { groups: found, snapshots } : undefined;
      },
      240_000,
      what,
      state,
    );
  }

  before(async function () {
    controlPlane = await sharedControlPlane();
    // Every CRD of crds/: the snapshot and group snapshot APIs, and snapback.dev.
    await installCrds(controlPlane);
    rig = new Rig(controlPlane, apiClient(controlPlane));
    await rig.setUp('grouppolicy', []);
    ({ client, namespace } = rig);
    aio = rig.aio;
    for (const name of [...PVCS, 'unselected']) {
      await client.create(PersistentVolumeClaims, {
        ...claim(name, namespace),
        metadata: { name, namespace, labels: name === 'unselected' ? {} : { app: 'db' } },
      });
    }
    for (const name of [...PVCS, 'unselected']) await boundClaim(client, namespace, name);
  });

  after(async function () {
    if (this.currentTest?.state === 'failed') console.log(aio?.log().slice(-6000));
    if (namespace) {
      // Groups go with their members while the stack runs, so nothing is left half deleted.
      for (const name of [POLICY, FAILING]) {
        await client.delete(BackupPolicies, name, namespace).catch(() => undefined);
      }
      const everyGroup = async () =>
        (await client.list<VolumeGroupSnapshot>(VolumeGroupSnapshots, { namespace })).items;
      for (const g of await everyGroup().catch(() => [])) {
        await client
          .delete(VolumeGroupSnapshots, g.metadata.name!, namespace)
          .catch(() => undefined);
      }
      await waitFor(
        async () => (await everyGroup()).length === 0 && (await allSnapshots()).length === 0,
        120_000,
        'the groups and their members to be deleted',
      ).catch(() => undefined);
      for (const name of [POLICY, FAILING]) {
        await client
          .delete(VolumeGroupSnapshotClasses, ownedSnapshotClassName(namespace, name))
          .catch(() => undefined);
      }
    }
    await rig?.tearDown();
  });

  it('each run makes one VolumeGroupSnapshot of the three selected PVCs, all members ready', async function () {
    await client.create(BackupPolicies, {
      apiVersion: 'snapback.dev/v1alpha1',
      kind: 'BackupPolicy',
      metadata: { name: POLICY, namespace, annotations: { 'snapback.dev/run-now': 'one' } },
      spec: {
        schedule: '@daily',
        consistency: 'Group',
        selector: { matchLabels: { app: 'db' } },
        groupSnapshotClass: { template: { driver: 'local.snapback.dev' } },
        retention: { keepLast: 1 },
      },
    } as unknown as BackupPolicy);
    const first = runNowGroup('one', 1);
    const { groups: found, snapshots } = await waitForReadyGroups([first], 'one ready group');
    const group = found[0]!;
    expect(group.metadata.labels?.['snapback.dev/policy']).to.equal(POLICY);
    expect(group.spec.source.selector).to.deep.equal({ matchLabels: { app: 'db' } });
    const className = ownedSnapshotClassName(namespace, POLICY);
    expect(group.spec.volumeGroupSnapshotClassName).to.equal(className);
    const members = membersOf(group, snapshots);
    expect(sourcesOf(members)).to.deep.equal(PVCS);
    // Members are the snapshot controller's, not per-PVC snapshots of the policy.
    expect(snapshots.filter((s) => s.metadata.labels?.['snapback.dev/policy'])).to.deep.equal([]);

    const owned = await client.get<VolumeGroupSnapshotClass>(VolumeGroupSnapshotClasses, className);
    expect(owned?.driver).to.equal('local.snapback.dev');
    expect(owned?.metadata.labels).to.include({
      'snapback.dev/policy': POLICY,
      'snapback.dev/policy-namespace': namespace,
    });

    const policy = await waitFor(
      async () => {
        const p = await getPolicy();
        return p?.status?.readyOverTotalGroups === '1/1' ? p : undefined;
      },
      60_000,
      'status: 1/1 groups',
      state,
    );
    expect(policy.status?.lastGroup).to.include({
      name: first,
      readyToUse: true,
      members: 3,
      readyMembers: 3,
      readyOverTotal: '3/3',
    });
    expect(policy.status?.selectedPvcs).to.equal(3);
    const degraded = policy.status?.conditions?.find((c) => c.type === 'Degraded');
    expect(degraded, JSON.stringify(policy.status?.conditions)).to.include({ status: 'False' });
    const events = await waitFor(
      async () => {
        const e = await eventsFor(client, namespace, 'BackupPolicy', POLICY);
        return e.some((x) => x.reason === 'GroupReady') ? e : undefined;
      },
      60_000,
      'a GroupReady Event',
    );
    expect(events.map((e) => `${e.type} ${e.reason}`)).to.include('Normal GroupCreated');
  });

  it('keepLast 1 after a second run leaves one whole group: one VolumeGroupSnapshot, its three members, nothing else', async function () {
    await runNow('two');
    const second = runNowGroup('two', 2);
    const { groups: found, snapshots } = await waitForReadyGroups(
      [second],
      'the second group ready and the first pruned',
    );
    // Nothing else of the policy, nor any member left of the pruned group.
    const settled = await waitFor(
      async () => {
        const all = await allSnapshots();
        return all.length === 3 ? all : undefined;
      },
      120_000,
      'only the three members of the kept group',
      state,
    );
    expect(settled.map((s) => s.metadata.name).sort()).to.deep.equal(
      membersOf(found[0]!, snapshots)
        .map((s) => s.metadata.name)
        .sort(),
    );
    expect(sourcesOf(settled)).to.deep.equal(PVCS);
    const events = await eventsWhen(client, namespace, 'BackupPolicy', POLICY, (es) =>
      es.some((e) => e.reason === 'GroupPruned'),
    );
    const pruned = events.find((e) => e.reason === 'GroupPruned');
    expect(pruned?.message).to.contain(runNowGroup('one', 1));
    expect(pruned?.message).to.contain('3 member snapshot(s)');
  });

  it('a member PVC deleted mid-schedule gives a condition naming it; the kept group stays whole', async function () {
    const kept = runNowGroup('two', 2);
    await client.delete(PersistentVolumeClaims, 'db-2', namespace);
    await waitFor(
      async () => !(await client.get(PersistentVolumeClaims, 'db-2', namespace)),
      120_000,
      'PVC db-2 to be deleted',
    );
    const policy = await waitFor(
      async () => {
        const p = await getPolicy();
        const d = p?.status?.conditions?.find((c) => c.type === 'Degraded');
        return d?.reason === 'MemberPVCDeleted' ? p : undefined;
      },
      120_000,
      'Degraded MemberPVCDeleted',
      state,
    );
    const degraded = policy.status!.conditions!.find((c) => c.type === 'Degraded')!;
    expect(degraded.status).to.equal('True');
    expect(degraded.message).to.contain('PVC db-2');
    expect(degraded.message).to.contain(kept);

    // The next run takes the two PVCs left; the kept group, the last backup of db-2, stays whole.
    await runNow('three');
    const third = runNowGroup('three', 3);
    const { groups: found, snapshots } = await waitForReadyGroups(
      [kept, third],
      'the new group of two PVCs ready, the kept one still there',
    );
    const byName = new Map(found.map((g) => [g.metadata.name!, g]));
    expect(sourcesOf(membersOf(byName.get(kept)!, snapshots))).to.deep.equal(PVCS);
    expect(sourcesOf(membersOf(byName.get(third)!, snapshots))).to.deep.equal(['db-0', 'db-1']);
    expect(snapshots.filter((s) => s.metadata.deletionTimestamp)).to.deep.equal([]);
  });

  it('the owned VolumeGroupSnapshotClass outlives the policy while its groups use it, then goes', async function () {
    const className = ownedSnapshotClassName(namespace, POLICY);
    await client.delete(BackupPolicies, POLICY, namespace);
    await waitFor(async () => !(await getPolicy()), 60_000, 'the policy to be deleted', state);
    // The policy never deletes its groups: they are backups, not its parts.
    expect((await groups()).length).to.equal(2);
    expect(await client.get(VolumeGroupSnapshotClasses, className)).to.not.equal(undefined);
    for (const g of await groups()) {
      await client.delete(VolumeGroupSnapshots, g.metadata.name!, namespace);
    }
    await waitFor(
      async () =>
        (await groups()).length === 0 &&
        (await allSnapshots()).length === 0 &&
        !(await client.get(VolumeGroupSnapshotClasses, className)),
      120_000,
      'the groups, their members and then the owned class to be deleted',
      state,
    );
  });

  it('a group the driver refuses: its error in the Degraded condition and one GroupFailed Event', async function () {
    // The local backend takes no group snapshot class parameters: the driver refuses the group.
    await client.create(BackupPolicies, {
      apiVersion: 'snapback.dev/v1alpha1',
      kind: 'BackupPolicy',
      metadata: { name: FAILING, namespace, annotations: { 'snapback.dev/run-now': 'one' } },
      spec: {
        schedule: '@daily',
        consistency: 'Group',
        selector: { matchLabels: { app: 'db' } },
        groupSnapshotClass: {
          template: { driver: 'local.snapback.dev', parameters: { unknown: 'x' } },
        },
      },
    } as unknown as BackupPolicy);
    const policy = await waitFor(
      async () => {
        const p = await client.get<BackupPolicy>(BackupPolicies, FAILING, namespace);
        const d = p?.status?.conditions?.find((c) => c.type === 'Degraded');
        return d?.reason === 'GroupFailed' ? p : undefined;
      },
      120_000,
      'Degraded GroupFailed',
      async () =>
        JSON.stringify({
          policy: (await client.get<BackupPolicy>(BackupPolicies, FAILING, namespace))?.status,
          groups: (
            await client.list<VolumeGroupSnapshot>(VolumeGroupSnapshots, { namespace })
          ).items.map((g) => [g.metadata.name, g.status]),
        }),
    );
    const group = await client.get<VolumeGroupSnapshot>(
      VolumeGroupSnapshots,
      runNowGroupOf(FAILING, 'one', 1),
      namespace,
    );
    const error = group?.status?.error?.message;
    expect(error, JSON.stringify(group?.status)).to.be.a('string');
    const degraded = policy.status!.conditions!.find((c) => c.type === 'Degraded')!;
    expect(degraded.message).to.contain(`VolumeGroupSnapshot ${group!.metadata.name} failed`);
    expect(degraded.message).to.contain(error!.slice(0, 40));
    expect(policy.status?.lastGroup).to.include({ readyToUse: false, members: 0 });
    const events = await eventsWhen(client, namespace, 'BackupPolicy', FAILING, (es) =>
      es.some((e) => e.reason === 'GroupFailed'),
    );
    expect(events.filter((e) => e.reason === 'GroupFailed')).to.have.length(1);
  });
});

import { expect } from 'chai';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { BackupPolicy, RestoreJob, VolumeSnapshot } from '../../../src/api/index.js';
import {
  PersistentVolumeClaims,
  PersistentVolumes,
  StorageClasses,
  type HttpKubeClient,
  type KubeObject,
} from '../../../src/kube/index.js';
import { ownedSnapshotClassName } from '../../../src/policy/naming.js';
import { BackupPolicies, RestoreJobs } from '../../../src/policy/objects.js';
import { VolumeSnapshotClasses, VolumeSnapshots } from '../../../src/kube/resource.js';
import type { ControlPlane } from '../../support/control-plane.js';
import {
  createTestNamespace,
  deleteTestNamespace,
  kubeConfigFor,
  kubectl,
  sharedControlPlane,
} from '../../support/cluster.js';
import { waitFor } from '../../support/processes.js';
import { claim, writeDurably } from '../stack/recipe.js';
import { Rig } from '../stack/rig.js';
import type { Kubelet } from '../stack/support.js';
import {
  apiClient,
  boundClaim,
  eventsFor,
  eventsWhen,
  installCrds,
  type Started,
} from '../stack/support.js';

const GROUP_VERSION = 'snapback.dev/v1alpha1';

/**
 * BackupPolicy and RestoreJob end to end: a real control plane, `snapback all-in-one` with the
 * local backend (so snapshots really become ready and restores really carry data), and a
 * "kubelet" that mounts volumes through the driver's CSI socket.
 */
describe('policy controllers on snapback all-in-one (local backend, real control plane)', function () {
  this.timeout(900_000);
  let controlPlane: ControlPlane;
  let client: HttpKubeClient;
  let namespace: string;
  let otherNamespace: string;
  let aio: Started | undefined;
  let kubelet: Kubelet | undefined;
  let rig: Rig | undefined;

  const policyManifest = (
    name: string,
    spec: Record<string, unknown>,
    annotations: Record<string, string> = {},
  ): BackupPolicy =>
    ({
      apiVersion: GROUP_VERSION,
      kind: 'BackupPolicy',
      metadata: { name, namespace, annotations },
      spec: { schedule: '@daily', snapshotClass: { name: namespace }, ...spec },
    }) as unknown as BackupPolicy;
  const restoreManifest = (
    name: string,
    spec: Record<string, unknown>,
    ns = namespace,
  ): RestoreJob =>
    ({
      apiVersion: GROUP_VERSION,
      kind: 'RestoreJob',
      metadata: { name, namespace: ns },
      spec,
    }) as unknown as RestoreJob;
  const getPolicy = (name: string) => client.get<BackupPolicy>(BackupPolicies, name, namespace);
  const getJob = (name: string, ns = namespace) => client.get<RestoreJob>(RestoreJobs, name, ns);
  const snapshotsOf = async (policy: string) =>
    (
      await client.list<VolumeSnapshot>(VolumeSnapshots, {
        namespace,
        labelSelector: `snapback.dev/policy=${policy}`,
      })
    ).items;
  const runNow = (policy: string, token: string) =>
    client.patch(BackupPolicies, policy, namespace, 'merge', {
      metadata: { annotations: { 'snapback.dev/run-now': token } },
    });
  const pvcNames = async () =>
    (await client.list<KubeObject>(PersistentVolumeClaims, { namespace })).items
      .map((p) => p.metadata!.name!)
      .sort();

  async function waitForPolicy(name: string, what: string, check: (p: BackupPolicy) => boolean) {
    return waitFor(
      async () => {
        const p = await getPolicy(name);
        return p && check(p) ? p : undefined;
      },
      180_000,
      `BackupPolicy ${name}: ${what}`,
      async () => JSON.stringify((await getPolicy(name))?.status) + `\n${aio?.log().slice(-3000)}`,
    );
  }

  async function waitForJob(name: string, phase: string, ns = namespace) {
    return waitFor(
      async () => {
        const j = await getJob(name, ns);
        return j?.status?.phase === phase ? j : undefined;
      },
      180_000,
      `RestoreJob ${name} to be ${phase}`,
      async () => JSON.stringify((await getJob(name, ns))?.status),
    );
  }

  const isLive = (obj: KubeObject) => !obj.metadata?.deletionTimestamp;
  const allReady = (snaps: VolumeSnapshot[]) => snaps.every((s) => s.status?.readyToUse === true);

  before(async function () {
    controlPlane = await sharedControlPlane();
    // Every CRD of crds/: the snapshot API and snapback.dev.
    await installCrds(controlPlane);
    rig = new Rig(controlPlane, apiClient(controlPlane));
    // Classes named after the namespace: StorageClass and VolumeSnapshotClass of the local driver.
    await rig.setUp('policy', []);
    ({ client, namespace } = rig);
    aio = rig.aio;
    kubelet = rig.kubelet;
    otherNamespace = await createTestNamespace(kubeConfigFor(controlPlane), 'policy-other');
    for (const name of ['data', 'logs', 'unselected']) {
      await client.create(PersistentVolumeClaims, {
        ...claim(name, namespace),
        metadata: { name, namespace, labels: name === 'unselected' ? {} : { backup: 'yes' } },
      });
    }
    await boundClaim(client, namespace, 'data');
    await boundClaim(client, namespace, 'logs');
    await boundClaim(client, namespace, 'unselected');
  });

  after(async function () {
    if (this.currentTest?.state === 'failed') console.log(aio?.log().slice(-6000));
    if (otherNamespace) await deleteTestNamespace(kubeConfigFor(controlPlane), otherNamespace);
    if (namespace) {
      await client.delete(StorageClasses, `${namespace}-other`).catch(() => undefined);
      await client.delete(VolumeSnapshotClasses, `${namespace}-other`).catch(() => undefined);
      await client
        .delete(VolumeSnapshotClasses, ownedSnapshotClassName(namespace, 'bad'))
        .catch(() => undefined);
    }
    await rig?.tearDown();
  });

  it('run-now snapshots the two selected PVCs and not the unselected one', async function () {
    await client.create(
      BackupPolicies,
      policyManifest(
        'selected',
        { selector: { matchLabels: { backup: 'yes' } } },
        { 'snapback.dev/run-now': 'one' },
      ),
    );
    const snaps = await waitFor(
      async () => {
        const s = await snapshotsOf('selected');
        return s.length === 2 && allReady(s) ? s : undefined;
      },
      180_000,
      'two ready snapshots',
      async () =>
        JSON.stringify((await snapshotsOf('selected')).map((s) => [s.metadata.name, s.status])),
    );
    expect(snaps.map((s) => s.spec.source.persistentVolumeClaimName).sort()).to.deep.equal([
      'data',
      'logs',
    ]);
    const policy = await waitForPolicy(
      'selected',
      'READY 2/2',
      (p) => p.status?.readyOverTotal === '2/2',
    );
    expect(policy.status?.lastRunNowToken).to.equal('one');
    const events = await eventsWhen(client, namespace, 'BackupPolicy', 'selected', (es) =>
      es.some((e) => e.reason === 'RunStarted'),
    );
    expect(events.map((e) => `${e.type} ${e.reason}`)).to.include('Normal RunStarted');
  });

  it('a 1-minute schedule runs on its own, and kubectl get bp shows LAST, NEXT and READY', async function () {
    await client.create(
      BackupPolicies,
      policyManifest('minutely', { schedule: '* * * * *', pvcNames: ['data'] }),
    );
    try {
      await waitForPolicy(
        'minutely',
        'a scheduled run with a ready snapshot',
        (p) => p.status?.lastScheduleTime !== undefined && (p.status?.readySnapshots ?? 0) >= 1,
      );
      const table = await kubectl(controlPlane, ['get', 'bp', 'minutely', '-n', namespace]);
      const [header, row] = table.trim().split('\n');
      expect(header).to.match(
        /^NAME\s+SCHEDULE\s+SUSPENDED\s+LAST\s+NEXT\s+READY\/TOTAL\s+GROUPS\s+AGE$/,
      );
      const columns = row!.trim().split(/\s{2,}/);
      expect(columns.slice(0, 3)).to.deep.equal(['minutely', '* * * * *', 'false']);
      expect(columns[3], 'LAST').to.match(/^\d+s$/);
      expect(columns[4], 'NEXT').to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$/);
      expect(columns[5], 'READY/TOTAL').to.match(/^[1-9]\d*\/[1-9]\d*$/);
    } finally {
      await client.delete(BackupPolicies, 'minutely', namespace);
    }
  });

  it('keepLast: 2 after 4 runs leaves 2 ready snapshots per PVC', async function () {
    await client.create(
      BackupPolicies,
      policyManifest('kept', {
        selector: { matchLabels: { backup: 'yes' } },
        retention: { keepLast: 2 },
      }),
    );
    for (const token of ['r1', 'r2', 'r3', 'r4']) {
      await runNow('kept', token);
      await waitFor(
        async () => {
          const s = await snapshotsOf('kept');
          const mine = s.filter(
            (x) => x.metadata.annotations?.['snapback.dev/run-now-token'] === token,
          );
          return mine.length === 2 && allReady(mine);
        },
        180_000,
        `run ${token} ready`,
      );
    }
    const remaining = await waitFor(
      async () => {
        const s = (await snapshotsOf('kept')).filter((x) => !x.metadata.deletionTimestamp);
        return s.length === 4 ? s : undefined;
      },
      180_000,
      'pruning to 2 per PVC',
      async () => JSON.stringify((await snapshotsOf('kept')).map((s) => s.metadata.name)),
    );
    expect(allReady(remaining)).to.equal(true);
    const byPvc = (pvc: string) =>
      remaining
        .filter((s) => s.spec.source.persistentVolumeClaimName === pvc)
        .map((s) => s.metadata.annotations?.['snapback.dev/run-now-token'])
        .sort();
    expect(byPvc('data')).to.deep.equal(['r3', 'r4']);
    expect(byPvc('logs')).to.deep.equal(['r3', 'r4']);
    const events = await eventsWhen(
      client,
      namespace,
      'BackupPolicy',
      'kept',
      (es) => es.filter((e) => e.reason === 'Pruned').length >= 2,
    );
    expect(events.filter((e) => e.reason === 'Pruned')).to.have.length.of.at.least(2);
  });

  it('run-now A, then B, then A again takes three runs', async function () {
    await client.create(BackupPolicies, policyManifest('tokens', { pvcNames: ['data'] }));
    try {
      for (const [i, token] of ['A', 'B', 'A'].entries()) {
        await runNow('tokens', token);
        await waitFor(
          async () => (await snapshotsOf('tokens')).length === i + 1,
          180_000,
          `run-now run ${i + 1} (${token}) to make a snapshot`,
          async () => JSON.stringify((await getPolicy('tokens'))?.status),
        );
        await waitForPolicy(
          'tokens',
          `run-now run ${i + 1} (${token}) recorded`,
          (p) => p.status?.lastRunNowToken === token,
        );
      }
      expect((await getPolicy('tokens'))?.status?.runNowCount).to.equal(3);
      const snaps = await snapshotsOf('tokens');
      expect(
        snaps.map((s) => s.metadata.annotations?.['snapback.dev/run-now-token']).sort(),
      ).to.deep.equal(['A', 'A', 'B']);
      expect(new Set(snaps.map((s) => s.metadata.name)).size).to.equal(3);
    } finally {
      await client.delete(BackupPolicies, 'tokens', namespace);
    }
  });

  it('an over-long run-now value is not run: Degraded and a Warning Event name the limit', async function () {
    const token = 'x'.repeat(2000);
    await client.create(
      BackupPolicies,
      policyManifest('long-token', { pvcNames: ['data'] }, { 'snapback.dev/run-now': token }),
    );
    try {
      const policy = await waitForPolicy('long-token', 'Degraded InvalidRunNowToken', (p) =>
        (p.status?.conditions ?? []).some(
          (c) => c.type === 'Degraded' && c.status === 'True' && c.reason === 'InvalidRunNowToken',
        ),
      );
      const degraded = policy.status!.conditions!.find((c) => c.type === 'Degraded')!;
      expect(degraded.message).to.contain('is 2000 characters long, at most 253');
      expect(policy.status?.lastRunNowToken).to.equal(undefined);
      expect(await snapshotsOf('long-token')).to.deep.equal([]);
      const events = await eventsWhen(client, namespace, 'BackupPolicy', 'long-token', (es) =>
        es.some((e) => e.reason === 'InvalidRunNowToken'),
      );
      expect(events.map((e) => `${e.type} ${e.reason}`)).to.include('Warning InvalidRunNowToken');
    } finally {
      await client.delete(BackupPolicies, 'long-token', namespace);
    }
  });

  it('a RestoreJob holds its snapshot with a finalizer while it restores, and lets go when deleted', async function () {
    // A StorageClass that binds only for a pod: the restore stays Restoring as long as needed.
    const waiting = `${namespace}-wait`;
    await client.create(StorageClasses, {
      metadata: { name: waiting },
      provisioner: 'local.snapback.dev',
      volumeBindingMode: 'WaitForFirstConsumer',
    } as KubeObject);
    await client.create(
      BackupPolicies,
      policyManifest('held', { pvcNames: ['logs'] }, { 'snapback.dev/run-now': 'h1' }),
    );
    try {
      const [snapshot] = await waitFor(
        async () => {
          const s = await snapshotsOf('held');
          return s.length === 1 && allReady(s) ? s : undefined;
        },
        180_000,
        'a ready snapshot',
      );
      const name = snapshot!.metadata.name!;
      await client.create(
        RestoreJobs,
        restoreManifest('held-restore', {
          source: { volumeSnapshotName: name },
          target: { pvcName: 'logs-held', storageClassName: waiting },
        }),
      );
      const job = await waitForJob('held-restore', 'Restoring');
      const hold = `restorejob.snapback.dev/${job.metadata.uid}`;
      const finalizers = async () =>
        (await client.get<VolumeSnapshot>(VolumeSnapshots, name, namespace))?.metadata.finalizers ??
        [];
      expect(await finalizers()).to.include(hold);

      await client.delete(RestoreJobs, 'held-restore', namespace);
      await waitFor(
        async () => !(await finalizers()).includes(hold),
        60_000,
        'the hold released',
        async () => JSON.stringify(await finalizers()),
      );
      // Letting go deletes nothing: the snapshot and the restored PVC stay.
      const after = await client.get<VolumeSnapshot>(VolumeSnapshots, name, namespace);
      expect(after?.metadata.deletionTimestamp).to.equal(undefined);
      expect(await pvcNames()).to.include('logs-held');
    } finally {
      await client.delete(BackupPolicies, 'held', namespace).catch(() => undefined);
      await client.delete(PersistentVolumeClaims, 'logs-held', namespace).catch(() => undefined);
      await client.delete(StorageClasses, waiting).catch(() => undefined);
    }
  });

  it('a RestoreJob from at: latest restores the data, and kubectl get restorejobs shows Succeeded', async function () {
    const { pv } = await boundClaim(client, namespace, 'data');
    const mounted = await kubelet!.mount(pv);
    const text = `written before the backup at ${new Date().toISOString()}\n`;
    writeDurably(path.join(mounted, 'test'), text);
    await kubelet!.unmount(pv.spec!.csi!.volumeHandle);

    await client.create(
      BackupPolicies,
      policyManifest('restorable', { pvcNames: ['data'] }, { 'snapback.dev/run-now': 'backup' }),
    );
    await waitForPolicy(
      'restorable',
      'a ready snapshot',
      (p) => p.status?.readyOverTotal === '1/1',
    );
    await client.create(
      RestoreJobs,
      restoreManifest('restore-latest', {
        source: { backupPolicy: { name: 'restorable', pvcName: 'data', at: 'latest' } },
        target: { pvcName: 'data-restored' },
      }),
    );
    const job = await waitForJob('restore-latest', 'Succeeded');
    expect(job.status?.pvcName).to.equal('data-restored');
    const restored = await boundClaim(client, namespace, 'data-restored');
    expect(restored.pvc.metadata?.ownerReferences).to.equal(undefined);
    expect(restored.pvc.metadata?.labels?.['snapback.dev/restore-job']).to.equal('restore-latest');
    const restoredDir = await kubelet!.mount(restored.pv);
    expect(readdirSync(restoredDir).sort()).to.deep.equal(['lost+found', 'test']);
    expect(readFileSync(path.join(restoredDir, 'test'), 'utf8')).to.equal(text);

    const out = await kubectl(controlPlane, [
      'get',
      'restorejobs',
      '-n',
      namespace,
      'restore-latest',
    ]);
    expect(out.split('\n')[0]).to.match(/NAME\s+SOURCE\s+TARGET\s+PHASE\s+STEP\s+AGE/);
    expect(out.split('\n')[1]).to.match(
      /restore-latest\s+policy\/restorable pvc\/data at latest\s+data-restored\s+Succeeded/,
    );

    // Deleting the job never deletes the data.
    await client.delete(RestoreJobs, 'restore-latest', namespace);
    await waitFor(
      async () => (await getJob('restore-latest')) === undefined,
      60_000,
      'the job to go',
    );
    expect(
      (await client.get<KubeObject>(PersistentVolumeClaims, 'data-restored', namespace))?.metadata
        ?.deletionTimestamp,
    ).to.equal(undefined);
  });

  it('a RestoreJob whose target PVC exists fails with a clear reason and leaves the PVC untouched', async function () {
    const before = await client.get<KubeObject>(PersistentVolumeClaims, 'logs', namespace);
    await client.create(
      RestoreJobs,
      restoreManifest('clobber', {
        source: { backupPolicy: { name: 'selected', pvcName: 'data', at: 'latest' } },
        target: { pvcName: 'logs' },
      }),
    );
    const job = await waitForJob('clobber', 'Failed');
    expect(job.status?.message).to.contain('PVC logs already exists');
    expect(job.status?.conditions?.find((c) => c.type === 'Ready')?.reason).to.equal(
      'TargetExists',
    );
    const after = await client.get<KubeObject>(PersistentVolumeClaims, 'logs', namespace);
    expect(after?.metadata?.resourceVersion).to.equal(before?.metadata?.resourceVersion);
    const events = await eventsWhen(client, namespace, 'RestoreJob', 'clobber', (es) =>
      es.some((e) => e.reason === 'TargetExists'),
    );
    expect(events.map((e) => `${e.type} ${e.reason}`)).to.include('Warning TargetExists');
  });

  describe('bad but schema-valid specs end with a clear condition and an Event, and nothing is deleted', function () {
    let inventory: { snapshots: string[]; pvcs: string[] };

    before(async function () {
      // Two snapshots labelled for a policy named "bad", made by a policy of that name without
      // retention; each misconfigured "bad" below has keepLast: 1 and must not prune them.
      await client.create(BackupPolicies, policyManifest('bad', { pvcNames: ['data'] }));
      for (const token of ['b1', 'b2']) {
        await runNow('bad', token);
        await waitFor(
          async () => {
            const s = (await snapshotsOf('bad')).filter(
              (x) => x.metadata.annotations?.['snapback.dev/run-now-token'] === token,
            );
            return s.length === 1 && allReady(s);
          },
          180_000,
          `bad run ${token}`,
        );
      }
      await client.delete(BackupPolicies, 'bad', namespace);
      await waitFor(async () => (await getPolicy('bad')) === undefined, 60_000, 'policy bad to go');
      expect((await snapshotsOf('bad')).filter(isLive)).to.have.length(2);
      // A PVC of another namespace, a Pending PVC, a non-CSI volume, a class and a StorageClass
      // of another driver, and a class squatting on the owned-class name.
      await client.create(PersistentVolumeClaims, {
        ...claim('elsewhere', namespace),
        metadata: { name: 'elsewhere', namespace: otherNamespace },
      });
      await client.create(PersistentVolumeClaims, {
        ...claim('stuck', 'no-such-storage-class'),
        metadata: { name: 'stuck', namespace },
      });
      await client.create(PersistentVolumes, {
        metadata: { name: `${namespace}-hostpath` },
        spec: {
          capacity: { storage: '64Mi' },
          accessModes: ['ReadWriteOnce'],
          storageClassName: 'manual-hostpath',
          persistentVolumeReclaimPolicy: 'Retain',
          hostPath: { path: '/tmp/snapback-policy-hostpath' },
          claimRef: { namespace, name: 'hostpath' },
        },
      } as KubeObject);
      await client.create(PersistentVolumeClaims, {
        ...claim('hostpath', 'manual-hostpath'),
        metadata: { name: 'hostpath', namespace },
      });
      await boundClaim(client, namespace, 'hostpath');
      await client.create(VolumeSnapshotClasses, {
        metadata: { name: `${namespace}-other` },
        driver: 'ebs.csi.aws.com',
        deletionPolicy: 'Delete',
      } as KubeObject);
      await client.create(StorageClasses, {
        metadata: { name: `${namespace}-other` },
        provisioner: 'ebs.csi.aws.com',
      } as KubeObject);
      await client.create(VolumeSnapshotClasses, {
        metadata: { name: ownedSnapshotClassName(namespace, 'bad') },
        driver: 'local.snapback.dev',
        deletionPolicy: 'Delete',
      } as KubeObject);
      inventory = {
        snapshots: (await client.list<KubeObject>(VolumeSnapshots, { namespace })).items
          .filter(isLive)
          .map((s) => s.metadata!.name!)
          .sort(),
        pvcs: await pvcNames(),
      };
    });

    after(async function () {
      await client.delete(PersistentVolumes, `${namespace}-hostpath`).catch(() => undefined);
    });

    const policyCases: Array<{
      title: string;
      spec: Record<string, unknown>;
      condition: 'Ready' | 'Degraded';
      reason: string;
      message: RegExp;
    }> = [
      {
        title: 'an unknown time zone',
        spec: { timeZone: 'Mars/Olympus_Mons' },
        condition: 'Ready',
        reason: 'InvalidTimeZone',
        message: /unknown time zone "Mars\/Olympus_Mons"/,
      },
      {
        title: 'a schedule that never fires',
        spec: { schedule: '0 0 30 2 *' },
        condition: 'Ready',
        reason: 'InvalidSchedule',
        message: /never fires/,
      },
      {
        title: 'a backwards hour range',
        spec: { schedule: '0 5-1 * * *' },
        condition: 'Ready',
        reason: 'InvalidSchedule',
        message: /runs backwards/,
      },
      {
        title: 'an unknown snapshot class',
        spec: { snapshotClass: { name: 'no-such-class' } },
        condition: 'Ready',
        reason: 'SnapshotClassNotFound',
        message: /VolumeSnapshotClass no-such-class not found/,
      },
      {
        title: 'an owned class name taken by a class it did not create',
        spec: { snapshotClass: { template: { driver: 'local.snapback.dev' } } },
        condition: 'Ready',
        reason: 'SnapshotClassConflict',
        message: /was not created for this policy/,
      },
      {
        title: 'a selector matching no PVC',
        spec: { selector: { matchLabels: { nothing: 'here' } } },
        condition: 'Ready',
        reason: 'NoPVCsSelected',
        message: /matches no PVC/,
      },
      {
        title: 'a missing PVC',
        spec: { pvcNames: ['nope'] },
        condition: 'Degraded',
        reason: 'PVCNotFound',
        message: /PVC nope not found/,
      },
      {
        title: 'a PVC of another namespace',
        spec: { pvcNames: ['elsewhere'] },
        condition: 'Degraded',
        reason: 'PVCNotFound',
        message: /exists in namespace .*policy-other/,
      },
      {
        title: 'a PVC that is not Bound',
        spec: { pvcNames: ['stuck'] },
        condition: 'Degraded',
        reason: 'PVCNotBound',
        message: /PVC stuck is Pending, not Bound/,
      },
      {
        title: 'a volume that is not CSI',
        spec: { pvcNames: ['hostpath'] },
        condition: 'Degraded',
        reason: 'VolumeNotCSI',
        message: /not a CSI volume/,
      },
      {
        title: 'a class of another driver',
        spec: { snapshotClass: { name: 'OTHER' } },
        condition: 'Degraded',
        reason: 'DriverMismatch',
        message: /ebs\.csi\.aws\.com/,
      },
    ];
    for (const c of policyCases) {
      it(`BackupPolicy with ${c.title}`, async function () {
        const spec = JSON.parse(
          JSON.stringify(c.spec).replace('"OTHER"', JSON.stringify(`${namespace}-other`)),
        ) as Record<string, unknown>;
        const pvcs = spec.selector ? {} : { pvcNames: ['data'] };
        const manifest = policyManifest(
          'bad',
          { ...pvcs, retention: { keepLast: 1 }, ...spec },
          { 'snapback.dev/run-now': 'go' },
        );
        await client.create(BackupPolicies, manifest);
        try {
          const policy = await waitForPolicy(
            'bad',
            `${c.condition} ${c.reason}`,
            (p) =>
              p.status?.conditions?.some(
                (x) =>
                  x.type === c.condition &&
                  x.status === (c.condition === 'Ready' ? 'False' : 'True') &&
                  x.reason === c.reason,
              ) ?? false,
          );
          const condition = policy.status!.conditions!.find((x) => x.type === c.condition)!;
          expect(condition.message).to.match(c.message);
          await waitFor(
            async () =>
              (await eventsFor(client, namespace, 'BackupPolicy', 'bad')).some(
                (e) => e.type === 'Warning' && e.reason === c.reason && c.message.test(e.message),
              ),
            60_000,
            `a Warning ${c.reason} Event`,
          );
          const snapshots = (
            await client.list<KubeObject>(VolumeSnapshots, { namespace })
          ).items.map((s) => s.metadata!.name!);
          for (const name of inventory.snapshots)
            expect(snapshots, `snapshot ${name}`).to.include(name);
          expect(await pvcNames()).to.include.members(inventory.pvcs);
        } finally {
          await client.delete(BackupPolicies, 'bad', namespace);
          await waitFor(
            async () => (await getPolicy('bad')) === undefined,
            60_000,
            'policy bad to go',
          );
        }
      });
    }

    const jobCases: Array<{
      title: string;
      spec: Record<string, unknown>;
      reason: string;
      message: RegExp;
    }> = [
      {
        title: 'a size below restoreSize',
        spec: {
          source: { backupPolicy: { name: 'selected', pvcName: 'data' } },
          target: { pvcName: 'r-size', size: '1Mi' },
        },
        reason: 'SizeTooSmall',
        message: /smaller than the restore size/,
      },
      {
        title: '`at` before any snapshot',
        spec: {
          source: {
            backupPolicy: { name: 'selected', pvcName: 'data', at: '2001-01-01T00:00:00Z' },
          },
          target: { pvcName: 'r-at' },
        },
        reason: 'NoSnapshotBefore',
        message: /at or before 2001-01-01T00:00:00Z; the oldest ready one is from/,
      },
      {
        title: 'a policy with no snapshot of that PVC',
        spec: {
          source: { backupPolicy: { name: 'selected', pvcName: 'unselected' } },
          target: { pvcName: 'r-none' },
        },
        reason: 'NoSnapshots',
        message: /has no snapshot of PVC unselected/,
      },
      {
        title: 'an unknown StorageClass',
        spec: {
          source: { backupPolicy: { name: 'selected', pvcName: 'data' } },
          target: { pvcName: 'r-sc', storageClassName: 'no-such-sc' },
        },
        reason: 'StorageClassNotFound',
        message: /StorageClass no-such-sc not found/,
      },
      {
        title: 'a StorageClass of another driver',
        spec: {
          source: { backupPolicy: { name: 'selected', pvcName: 'data' } },
          target: { pvcName: 'r-drv', storageClassName: 'OTHER' },
        },
        reason: 'DriverMismatch',
        message: /provisions with ebs\.csi\.aws\.com/,
      },
    ];
    for (const c of jobCases) {
      it(`RestoreJob with ${c.title}`, async function () {
        const spec = JSON.parse(
          JSON.stringify(c.spec).replace('"OTHER"', JSON.stringify(`${namespace}-other`)),
        ) as Record<string, unknown>;
        const name = `bad-${c.reason.toLowerCase()}`;
        await client.create(RestoreJobs, restoreManifest(name, spec));
        const job = await waitForJob(name, 'Failed');
        const condition = job.status!.conditions!.find((x) => x.type === 'Ready')!;
        expect(condition).to.include({ status: 'False', reason: c.reason });
        expect(job.status?.message).to.match(c.message);
        await waitFor(
          async () =>
            (await eventsFor(client, namespace, 'RestoreJob', name)).some(
              (e) => e.type === 'Warning' && e.reason === c.reason,
            ),
          60_000,
          `a Warning ${c.reason} Event`,
        );
        expect(await pvcNames()).to.deep.equal(inventory.pvcs);
      });
    }

    it('RestoreJob with a snapshot of another namespace', async function () {
      const [snapshot] = await snapshotsOf('selected');
      await client.create(
        RestoreJobs,
        restoreManifest(
          'bad-elsewhere',
          { source: { volumeSnapshotName: snapshot!.metadata.name }, target: { pvcName: 'r' } },
          otherNamespace,
        ),
      );
      const job = await waitForJob('bad-elsewhere', 'Failed', otherNamespace);
      expect(job.status?.conditions?.find((x) => x.type === 'Ready')?.reason).to.equal(
        'SourceInOtherNamespace',
      );
      expect(job.status?.message).to.contain(`is in namespace ${namespace}, not ${otherNamespace}`);
      await waitFor(
        async () =>
          (await eventsFor(client, otherNamespace, 'RestoreJob', 'bad-elsewhere')).some(
            (e) => e.reason === 'SourceInOtherNamespace',
          ),
        60_000,
        'a SourceInOtherNamespace Event',
      );
    });
  });
});

import { expect } from 'chai';
import type {
  BackupPolicy,
  RestoreJob,
  VolumeSnapshot,
  VolumeSnapshotClass,
} from '../../../src/api/index.js';
import type {
  KubeClient,
  KubeObject,
  ResourceType,
  WatchEvent,
  WatchOptions,
} from '../../../src/kube/index.js';
import {
  Manager,
  PersistentVolumeClaims,
  PersistentVolumes,
  StorageClasses,
} from '../../../src/kube/index.js';
import { addPolicyControllers, type PolicyControllers } from '../../../src/policy/controllers.js';
import { ownedSnapshotClassName } from '../../../src/policy/naming.js';
import type { Pvc } from '../../../src/policy/objects.js';
import { BackupPolicies, RestoreJobs } from '../../../src/policy/objects.js';
import { VolumeSnapshotClasses, VolumeSnapshots } from '../../../src/kube/resource.js';
import { createMetrics, type SnapbackMetrics } from '../../../src/observability/metrics.js';
import { waitFor } from '../../support/processes.js';
import { NS, pv, pvc, snapshotClass, storageClass } from './fixtures.js';
import { FakeClock } from '../../support/fakes/clock.js';
import { FakeEventRecorder } from '../../support/fakes/event-recorder.js';
import { FakeKubeClient } from '../../support/fakes/kube-client.js';

/**
 * The API server as the controllers see it, with a switch that holds back watch events of one
 * resource: the informer cache of that resource then lags behind, as a real one can.
 */
class LaggingWatches {
  private held: Array<() => void> | undefined;
  constructor(
    readonly inner: FakeKubeClient,
    private readonly plural: string,
  ) {}

  hold(): void {
    this.held = [];
  }

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const deliver of held) deliver();
  }

  readonly client: KubeClient = {
    get: (type, name, namespace) => this.inner.get(type, name, namespace),
    list: (type, options) => this.inner.list(type, options),
    create: (type, obj, options) => this.inner.create(type, obj, options),
    replace: (type, obj, options) => this.inner.replace(type, obj, options),
    patch: (type, name, namespace, patchType, patch, options) =>
      this.inner.patch(type, name, namespace, patchType, patch, options),
    delete: (type, name, namespace, options) => this.inner.delete(type, name, namespace, options),
    watch: <T extends KubeObject>(
      type: ResourceType,
      options: WatchOptions,
      onEvent: (event: WatchEvent<T>) => void,
      onDone: (error?: unknown) => void,
    ) =>
      this.inner.watch<T>(
        type,
        options,
        (event) => {
          if (this.held && type.plural === this.plural) this.held.push(() => onEvent(event));
          else onEvent(event);
        },
        onDone,
      ),
  };
}

/**
 * The reconcilers against the in-memory API server: the snapshot stack and the provisioner are
 * played by the test (readyToUse, Bound), everything else is the real glue.
 */
describe('policy controllers (glue, in-memory API server)', function () {
  this.timeout(30_000);
  let client: FakeKubeClient;
  let policyWatch: LaggingWatches;
  let manager: Manager;
  let recorder: FakeEventRecorder;
  let clock: FakeClock;
  let controllers: PolicyControllers;
  let metrics: SnapbackMetrics;

  beforeEach(async function () {
    client = new FakeKubeClient();
    client.seed(
      PersistentVolumeClaims,
      pvc('data', { labels: { backup: 'yes' } }),
      pvc('logs', { labels: { backup: 'yes' } }),
      pvc('other'),
    );
    client.seed(PersistentVolumes, pv('pv-data'), pv('pv-logs'), pv('pv-other'));
    client.seed(VolumeSnapshotClasses, snapshotClass('default', { isDefault: true }));
    client.seed(StorageClasses, storageClass('local', { isDefault: true }));
    clock = new FakeClock('2026-01-01T00:30:00Z');
    recorder = new FakeEventRecorder();
    policyWatch = new LaggingWatches(client, BackupPolicies.plural);
    manager = new Manager({ client: policyWatch.client });
    metrics = createMetrics({ processMetrics: false });
    controllers = addPolicyControllers(manager, { clock, events: recorder, workers: 2, metrics });
    void manager.run();
    await manager.informers.waitForSync();
  });

  afterEach(async function () {
    await manager.stop();
  });

  const snapshotsOf = () => client.all<VolumeSnapshot>(VolumeSnapshots);
  const policyNow = () => client.peek<BackupPolicy>(BackupPolicies, 'nightly', NS)!;
  const markAllReady = async () => {
    for (const s of snapshotsOf()) {
      if (s.status?.readyToUse) continue;
      await client.patch(
        VolumeSnapshots,
        s.metadata.name!,
        NS,
        'merge',
        {
          status: { readyToUse: true, restoreSize: '1Gi', creationTime: '2026-01-01T00:30:00Z' },
        },
        { subresource: 'status' },
      );
    }
  };
  const createPolicy = (spec: Record<string, unknown>, annotations: Record<string, string> = {}) =>
    client.create<BackupPolicy>(BackupPolicies, {
      apiVersion: 'snapback.dev/v1alpha1',
      kind: 'BackupPolicy',
      metadata: { name: 'nightly', namespace: NS, annotations },
      spec: {
        schedule: '@hourly',
        selector: { matchLabels: { backup: 'yes' } },
        ...spec,
      } as unknown as BackupPolicy['spec'],
    });
  const runNow = (token: string) =>
    client.patch(BackupPolicies, 'nightly', NS, 'merge', {
      metadata: { annotations: { 'snapback.dev/run-now': token } },
    });

  it('run-now snapshots the selected PVCs only, then reports READY/TOTAL and an Event', async function () {
    await createPolicy({}, { 'snapback.dev/run-now': 'first' });
    await waitFor(
      () => snapshotsOf().length === 2,
      10_000,
      'two snapshots',
      () => JSON.stringify(snapshotsOf().map((s) => s.metadata.name)),
    );
    expect(
      snapshotsOf()
        .map((s) => s.spec.source.persistentVolumeClaimName)
        .sort(),
    ).to.deep.equal(['data', 'logs']);
    await markAllReady();
    await waitFor(
      () => policyNow().status?.readyOverTotal === '2/2',
      10_000,
      'status 2/2',
      () => JSON.stringify(policyNow().status),
    );
    const status = policyNow().status!;
    expect(status.lastRunNowToken).to.equal('first');
    expect(status.nextScheduleTime).to.equal('2026-01-01T01:00:00Z');
    expect(recorder.lines.some((l) => l.startsWith('Normal RunStarted run-now "first"'))).to.equal(
      true,
    );
  });

  it('keepLast 2 after 4 runs leaves the 2 newest ready snapshots per PVC and records prunes', async function () {
    await createPolicy({ retention: { keepLast: 2 } });
    for (const [i, token] of ['r1', 'r2', 'r3', 'r4'].entries()) {
      clock.set(`2026-01-01T00:3${i}:00Z`);
      await runNow(token);
      await waitFor(() => policyNow().status?.lastRunNowToken === token, 10_000, `run ${token}`);
      await markAllReady();
    }
    await waitFor(
      () => snapshotsOf().length === 4,
      10_000,
      'pruning down to 2 per PVC',
      () => JSON.stringify(snapshotsOf().map((s) => s.metadata.name)),
    );
    const tokens = snapshotsOf().map((s) => s.metadata.annotations?.['snapback.dev/run-now-token']);
    expect(tokens.sort()).to.deep.equal(['r3', 'r3', 'r4', 'r4']);
    expect(recorder.lines.filter((l) => l.startsWith('Normal Pruned'))).to.have.length(4);
    const value = async (name: string) =>
      (await metrics.registry.getSingleMetric(name)!.get()).values.find(
        (v) => v.labels.namespace === NS && v.labels.policy === 'nightly',
      )?.value;
    expect(await value('snapback_snapshots_created_total')).to.equal(8);
    expect(await value('snapback_snapshots_pruned_total')).to.equal(4);
  });

  it('pruning re-reads the policy live and stops when it changed or was suspended since the cache saw it', async function () {
    await createPolicy({ retention: { keepLast: 1 } });
    for (const [i, token] of ['r1', 'r2'].entries()) {
      clock.set(`2026-01-01T00:3${i}:00Z`);
      await runNow(token);
      await waitFor(() => policyNow().status?.lastRunNowToken === token, 10_000, `run ${token}`);
      if (i === 0) await markAllReady();
    }
    // r1 ready, r2 not: nothing to prune yet.
    expect(snapshotsOf()).to.have.length(4);

    // The policy is suspended, but the controller's cache does not see it yet.
    policyWatch.hold();
    await client.patch(BackupPolicies, 'nightly', NS, 'merge', { spec: { suspend: true } });
    client.clearActions();
    // r2 becomes ready: from its cache, the controller would now prune r1.
    await markAllReady();
    await waitFor(
      () => client.actions.some((a) => a.verb === 'get' && a.resource === 'backuppolicies'),
      10_000,
      'a live read of the policy before pruning',
      () => JSON.stringify(client.actions.map((a) => `${a.verb} ${a.resource}`)),
    );
    expect(client.actions.filter((a) => a.verb === 'delete')).to.deep.equal([]);
    expect(snapshotsOf()).to.have.length(4);

    // Once the cache catches up, the suspended policy prunes nothing either.
    policyWatch.release();
    await waitFor(
      () =>
        policyNow().status?.conditions?.some((c) => c.type === 'Suspended' && c.status === 'True'),
      10_000,
      'the policy reported suspended',
      () => JSON.stringify(policyNow().status?.conditions),
    );
    expect(client.actions.filter((a) => a.verb === 'delete')).to.deep.equal([]);
    expect(snapshotsOf()).to.have.length(4);
    expect(recorder.lines.filter((l) => l.includes(' Pruned '))).to.deep.equal([]);
  });

  it('creates the owned class from a template and removes it when the policy is gone and no snapshot uses it', async function () {
    await createPolicy(
      { snapshotClass: { template: { driver: 'local.snapback.dev', forceDelete: true } } },
      { 'snapback.dev/run-now': 'x' },
    );
    const className = ownedSnapshotClassName(NS, 'nightly');
    const cls = await waitFor(
      () => client.peek<VolumeSnapshotClass>(VolumeSnapshotClasses, className),
      10_000,
      'the owned class',
    );
    expect(cls.parameters).to.deep.equal({ forceDelete: 'true' });
    await waitFor(() => snapshotsOf().length === 2, 10_000, 'two snapshots');

    await client.delete(BackupPolicies, 'nightly', NS);
    // Once the deletion has been seen and handled, the class is still there: snapshots use it.
    const policies = manager.informers.informer<BackupPolicy>(BackupPolicies);
    await waitFor(
      () =>
        policies.get('nightly', NS) === undefined &&
        controllers.backupPolicies.queueDepth === 0 &&
        controllers.backupPolicies.inFlight === 0,
      10_000,
      'the deletion to be handled',
    );
    expect(client.peek(VolumeSnapshotClasses, className)).not.to.equal(undefined);
    for (const s of snapshotsOf()) await client.delete(VolumeSnapshots, s.metadata.name!, NS);
    await waitFor(
      () => client.peek(VolumeSnapshotClasses, className) === undefined,
      10_000,
      'the owned class to be deleted',
    );
  });

  it('a spec broken after the fact deletes nothing, not even its unused owned class', async function () {
    await createPolicy({ snapshotClass: { template: { driver: 'local.snapback.dev' } } });
    const className = ownedSnapshotClassName(NS, 'nightly');
    await waitFor(() => client.peek(VolumeSnapshotClasses, className), 10_000, 'the owned class');
    await client.patch(BackupPolicies, 'nightly', NS, 'merge', {
      spec: { timeZone: 'Mars/Olympus_Mons' },
    });
    await waitFor(
      () =>
        policyNow().status?.conditions?.some(
          (c) => c.type === 'Ready' && c.reason === 'InvalidTimeZone',
        ) &&
        controllers.backupPolicies.queueDepth === 0 &&
        controllers.backupPolicies.inFlight === 0,
      10_000,
      'the InvalidTimeZone condition',
    );
    expect(client.peek(VolumeSnapshotClasses, className)).not.to.equal(undefined);
    expect(recorder.lines.some((l) => l.startsWith('Warning InvalidTimeZone'))).to.equal(true);
  });

  it('restores from at: latest into a new PVC and succeeds once it is Bound', async function () {
    await createPolicy({}, { 'snapback.dev/run-now': 'first' });
    await waitFor(() => snapshotsOf().length === 2, 10_000, 'two snapshots');
    await markAllReady();
    await client.create<RestoreJob>(RestoreJobs, {
      apiVersion: 'snapback.dev/v1alpha1',
      kind: 'RestoreJob',
      metadata: { name: 'restore-data', namespace: NS },
      spec: {
        source: { backupPolicy: { name: 'nightly', pvcName: 'data', at: 'latest' } },
        target: { pvcName: 'data-restored' },
      } as RestoreJob['spec'],
    });
    const target = await waitFor(
      () => client.peek<Pvc>(PersistentVolumeClaims, 'data-restored', NS),
      10_000,
      'the target PVC',
    );
    expect(target.spec?.dataSource?.kind).to.equal('VolumeSnapshot');
    expect(target.metadata.ownerReferences).to.equal(undefined);
    await client.patch(
      PersistentVolumeClaims,
      'data-restored',
      NS,
      'merge',
      { status: { phase: 'Bound' } },
      { subresource: 'status' },
    );
    const job = await waitFor(
      () => {
        const j = client.peek<RestoreJob>(RestoreJobs, 'restore-data', NS);
        return j?.status?.phase === 'Succeeded' ? j : undefined;
      },
      10_000,
      'Succeeded',
      () => JSON.stringify(client.peek<RestoreJob>(RestoreJobs, 'restore-data', NS)?.status),
    );
    expect(job.status?.snapshotName).to.equal(target.spec?.dataSource?.name);
    expect(recorder.lines.some((l) => l.startsWith('Normal RestoreSucceeded'))).to.equal(true);
  });

  it('a RestoreJob holds its snapshot against pruning until it finishes or is deleted', async function () {
    await createPolicy({ retention: { keepLast: 1 } }, { 'snapback.dev/run-now': 'first' });
    await waitFor(() => snapshotsOf().length === 2, 10_000, 'two snapshots');
    await markAllReady();
    const [firstData] = snapshotsOf().filter(
      (s) => s.spec.source.persistentVolumeClaimName === 'data',
    );
    const createRestore = (name: string, target: string) =>
      client.create<RestoreJob>(RestoreJobs, {
        apiVersion: 'snapback.dev/v1alpha1',
        kind: 'RestoreJob',
        metadata: { name, namespace: NS },
        spec: {
          source: { backupPolicy: { name: 'nightly', pvcName: 'data', at: 'latest' } },
          target: { pvcName: target },
        } as RestoreJob['spec'],
      });
    const job = await createRestore('restore-data', 'data-restored');
    const hold = `restorejob.snapback.dev/${job.metadata.uid}`;
    const finalizersOf = (name: string) =>
      client.peek<VolumeSnapshot>(VolumeSnapshots, name, NS)?.metadata.finalizers ?? [];
    await waitFor(
      () => finalizersOf(firstData!.metadata.name!).includes(hold),
      10_000,
      'the hold on the chosen snapshot',
      () => JSON.stringify(finalizersOf(firstData!.metadata.name!)),
    );

    // A second run: keepLast 1 prunes the first logs snapshot, but not the held data one.
    clock.set('2026-01-01T00:40:00Z');
    await runNow('second');
    await waitFor(() => snapshotsOf().length === 4, 10_000, 'four snapshots');
    await markAllReady();
    await waitFor(
      () => snapshotsOf().length === 3,
      10_000,
      'the first logs snapshot pruned',
      () => JSON.stringify(snapshotsOf().map((s) => s.metadata.name)),
    );
    expect(client.peek(VolumeSnapshots, firstData!.metadata.name!, NS)).not.to.equal(undefined);

    // The restore succeeds: the hold goes, and retention prunes the snapshot after all.
    await client.patch(
      PersistentVolumeClaims,
      'data-restored',
      NS,
      'merge',
      { status: { phase: 'Bound' } },
      { subresource: 'status' },
    );
    await waitFor(
      () => client.peek(VolumeSnapshots, firstData!.metadata.name!, NS) === undefined,
      10_000,
      'the released snapshot pruned',
      () => JSON.stringify(client.peek(VolumeSnapshots, firstData!.metadata.name!, NS)?.metadata),
    );

    // A RestoreJob deleted before it finishes lets go of its snapshot too.
    const [latestData] = snapshotsOf().filter(
      (s) => s.spec.source.persistentVolumeClaimName === 'data',
    );
    const second = await createRestore('restore-again', 'data-restored-2');
    const secondHold = `restorejob.snapback.dev/${second.metadata.uid}`;
    await waitFor(
      () => finalizersOf(latestData!.metadata.name!).includes(secondHold),
      10_000,
      'the second hold',
    );
    await client.delete(RestoreJobs, 'restore-again', NS);
    await waitFor(
      () => !finalizersOf(latestData!.metadata.name!).includes(secondHold),
      10_000,
      'the second hold released',
      () => JSON.stringify(finalizersOf(latestData!.metadata.name!)),
    );
  });

  it('a RestoreJob onto an existing PVC fails and leaves the PVC untouched', async function () {
    await createPolicy({}, { 'snapback.dev/run-now': 'first' });
    await waitFor(() => snapshotsOf().length === 2, 10_000, 'two snapshots');
    await markAllReady();
    const before = client.peek<Pvc>(PersistentVolumeClaims, 'other', NS);
    client.clearActions();
    await client.create<RestoreJob>(RestoreJobs, {
      apiVersion: 'snapback.dev/v1alpha1',
      kind: 'RestoreJob',
      metadata: { name: 'clobber', namespace: NS },
      spec: {
        source: { backupPolicy: { name: 'nightly', pvcName: 'data', at: 'latest' } },
        target: { pvcName: 'other' },
      } as RestoreJob['spec'],
    });
    const job = await waitFor(
      () => {
        const j = client.peek<RestoreJob>(RestoreJobs, 'clobber', NS);
        return j?.status?.phase === 'Failed' ? j : undefined;
      },
      10_000,
      'Failed',
    );
    expect(job.status?.message).to.contain('PVC other already exists');
    expect(client.peek<Pvc>(PersistentVolumeClaims, 'other', NS)).to.deep.equal(before);
    expect(
      client.writes.filter((a) => a.resource.startsWith('persistentvolumeclaims')),
    ).to.deep.equal([]);
    expect(recorder.lines.some((l) => l.startsWith('Warning TargetExists'))).to.equal(true);
  });
});

import { expect } from 'chai';
import type { RestoreJob, VolumeSnapshot } from '../../../src/api/index.js';
import { Manager, PersistentVolumeClaims, StorageClasses } from '../../../src/kube/index.js';
import {
  VolumeGroupSnapshotContents,
  VolumeGroupSnapshots,
  VolumeSnapshots,
} from '../../../src/kube/resource.js';
import type { Pvc } from '../../../src/policy/objects.js';
import { BackupPolicies, RestoreJobs } from '../../../src/policy/objects.js';
import { RestoreJobController } from '../../../src/policy/restore-job-controller.js';
import { FakeClock } from '../../support/fakes/clock.js';
import { FakeEventRecorder } from '../../support/fakes/event-recorder.js';
import { FakeKubeClient } from '../../support/fakes/kube-client.js';
import { waitFor } from '../../support/processes.js';
import {
  NS,
  groupPolicy,
  pvc,
  restorableGroup,
  restorableGroupContent,
  restorableMember,
  storageClass,
} from './fixtures.js';

const PVCS = ['db-0', 'db-1', 'db-2'];

/**
 * The RestoreJob controller's group glue against the in-memory API server: the provisioner is
 * played by the test (Bound), the group, its content and members are seeded as the snapshot
 * controller leaves them.
 */
describe('RestoreJob controller: restoring a group (glue, in-memory API server)', function () {
  this.timeout(30_000);
  let client: FakeKubeClient;
  let manager: Manager;
  let recorder: FakeEventRecorder;

  async function start(groupSnapshots: boolean): Promise<void> {
    client = new FakeKubeClient();
    client.seed(
      PersistentVolumeClaims,
      ...PVCS.map((name) => pvc(name, { labels: { app: 'db' } })),
    );
    client.seed(StorageClasses, storageClass('local', { isDefault: true }));
    client.seed(BackupPolicies, groupPolicy());
    const group = restorableGroup('g1');
    client.seed(VolumeGroupSnapshots, group);
    client.seed(VolumeGroupSnapshotContents, restorableGroupContent(group, PVCS.length));
    client.seed(VolumeSnapshots, ...PVCS.map((name) => restorableMember(group, name)));
    recorder = new FakeEventRecorder();
    manager = new Manager({ client });
    const controller = new RestoreJobController({
      client,
      informers: manager.informers,
      recorder,
      clock: new FakeClock('2026-01-01T12:00:10Z'),
      workers: 2,
      groupSnapshots,
    });
    manager.add(controller.controller);
    void manager.run();
    await manager.informers.waitForSync();
  }

  afterEach(async function () {
    await manager.stop();
  });

  const createJob = () =>
    client.create<RestoreJob>(RestoreJobs, {
      apiVersion: 'snapback.dev/v1alpha1',
      kind: 'RestoreJob',
      metadata: { name: 'restore-db', namespace: NS },
      spec: {
        source: { backupPolicy: { name: 'nightly', at: 'latest' } },
        target: { pvcNameSuffix: '-restored' },
      } as RestoreJob['spec'],
    });
  const jobNow = () => client.peek<RestoreJob>(RestoreJobs, 'restore-db', NS);
  /** The finalizers of every member of the group, in PVCS order. */
  const memberFinalizers = () =>
    PVCS.map(
      (name) => client.peek<VolumeSnapshot>(VolumeSnapshots, `g1-${name}`, NS)?.metadata.finalizers,
    );
  const heldBy = (hold: string) => memberFinalizers().every((f) => (f ?? []).includes(hold));
  const heldByNone = () => memberFinalizers().every((f) => (f ?? []).length === 0);

  it('creates every target, holds the members, succeeds once all are Bound, then lets go', async function () {
    await start(true);
    const job = await createJob();
    const hold = `restorejob.snapback.dev/${job.metadata.uid}`;
    const targets = await waitFor(
      () => {
        const made = PVCS.map((name) =>
          client.peek<Pvc>(PersistentVolumeClaims, `${name}-restored`, NS),
        );
        return made.every(Boolean) ? (made as Pvc[]) : undefined;
      },
      10_000,
      'the three target PVCs',
      () => JSON.stringify(jobNow()?.status),
    );
    expect(targets.map((t) => t.spec?.dataSource?.name)).to.deep.equal(
      PVCS.map((name) => `g1-${name}`),
    );
    await waitFor(
      () => heldBy(hold),
      10_000,
      'the hold on every member',
      () => JSON.stringify(memberFinalizers()),
    );
    await waitFor(() => jobNow()?.status?.phase === 'Restoring', 10_000, 'Restoring');

    // Two of three Bound: still Restoring.
    for (const name of PVCS.slice(0, 2)) {
      await client.patch(
        PersistentVolumeClaims,
        `${name}-restored`,
        NS,
        'merge',
        { status: { phase: 'Bound' } },
        { subresource: 'status' },
      );
    }
    await waitFor(
      () => jobNow()?.status?.message?.includes('2 of 3 Bound'),
      10_000,
      'two of three Bound',
      () => JSON.stringify(jobNow()?.status),
    );
    expect(jobNow()?.status?.phase).to.equal('Restoring');

    await client.patch(
      PersistentVolumeClaims,
      'db-2-restored',
      NS,
      'merge',
      { status: { phase: 'Bound' } },
      { subresource: 'status' },
    );
    await waitFor(
      () => jobNow()?.status?.phase === 'Succeeded',
      10_000,
      'Succeeded',
      () => JSON.stringify(jobNow()?.status),
    );
    expect(jobNow()?.status?.pvcs?.map((p) => p.phase)).to.deep.equal(['Bound', 'Bound', 'Bound']);
    await waitFor(heldByNone, 10_000, 'the holds released', () =>
      JSON.stringify(memberFinalizers()),
    );
    expect(recorder.lines.some((l) => l.startsWith('Normal RestoreSucceeded'))).to.equal(true);
  });

  it('without the group snapshot API, fails the job saying so and creates nothing', async function () {
    await start(false);
    await createJob();
    const job = await waitFor(
      () => (jobNow()?.status?.phase === 'Failed' ? jobNow() : undefined),
      10_000,
      'Failed',
      () => JSON.stringify(jobNow()?.status),
    );
    expect(job.status?.conditions?.[0]?.reason).to.equal('GroupSnapshotsUnavailable');
    expect(client.all<Pvc>(PersistentVolumeClaims).map((p) => p.metadata.name)).to.deep.equal(PVCS);
    expect(heldByNone()).to.equal(true);
  });
});

import {
  ANNOTATION_RESTORED_FROM,
  ANNOTATION_RESTORE_JOB_UID,
  LABEL_RESTORE_JOB,
} from '../../../src/api/v1alpha1.js';
import { expect } from 'chai';
import type { RestoreJobStatus } from '../../../src/api/index.js';
import { MAX_MESSAGE_LENGTH, RestoreJobStatusSchema } from '../../../src/api/index.js';
import { planRestoreJob, staleRestoreHolds } from '../../../src/policy/restore-job.js';
import type { Pvc } from '../../../src/policy/objects.js';
import {
  content,
  pvc,
  restoreJob,
  restoreObservation,
  storageClass,
  volumeSnapshot,
} from './fixtures.js';

const ready = (status: RestoreJobStatus | undefined) =>
  status?.conditions?.find((c) => c.type === 'Ready');

const byPolicy = (at = 'latest', target: Record<string, unknown> = {}) =>
  restoreJob({
    source: { backupPolicy: { name: 'nightly', pvcName: 'data', at } },
    target: { pvcName: 'restored', ...target },
  });

const policySnapshots = () => [
  volumeSnapshot('s1', { runTime: '2026-01-01T01:00:00Z' }),
  volumeSnapshot('s2', { runTime: '2026-01-01T02:00:00Z' }),
  volumeSnapshot('s3', { runTime: '2026-01-01T03:00:00Z' }),
  volumeSnapshot('s4', { runTime: '2026-01-01T04:00:00Z', ready: false }),
];

/** The PVC as the API server would hold it after the planner created it. */
function asCreated(created: Pvc, phase: string): Pvc {
  return { ...created, status: { phase } };
}

describe('RestoreJob planning: resolving the source', function () {
  it('at: latest takes the newest ready snapshot of the policy and PVC', function () {
    const plan = planRestoreJob(
      restoreObservation(byPolicy(), { snapshots: policySnapshots(), pvcs: [pvc('data')] }),
    );
    expect(plan.status?.phase).to.equal('Restoring');
    expect(plan.status?.snapshotName).to.equal('s3');
    expect(plan.createPvcs?.[0]?.spec?.dataSource).to.deep.equal({
      apiGroup: 'snapshot.storage.k8s.io',
      kind: 'VolumeSnapshot',
      name: 's3',
    });
  });

  it('at: a time takes the newest ready one taken at or before it', function () {
    const plan = planRestoreJob(
      restoreObservation(byPolicy('2026-01-01T02:30:00+00:00'), { snapshots: policySnapshots() }),
    );
    expect(plan.status?.snapshotName).to.equal('s2');
    const exact = planRestoreJob(
      restoreObservation(byPolicy('2026-01-01T02:00:00Z'), { snapshots: policySnapshots() }),
    );
    expect(exact.status?.snapshotName).to.equal('s2');
  });

  it('ignores snapshots of other PVCs and policies', function () {
    const plan = planRestoreJob(
      restoreObservation(byPolicy(), {
        snapshots: [
          volumeSnapshot('mine', { runTime: '2026-01-01T01:00:00Z' }),
          volumeSnapshot('other-pvc', { runTime: '2026-01-01T05:00:00Z', pvc: 'logs' }),
          volumeSnapshot('other-policy', { runTime: '2026-01-01T05:00:00Z', policy: 'weekly' }),
        ],
      }),
    );
    expect(plan.status?.snapshotName).to.equal('mine');
  });

  it('keeps the snapshot first resolved even when a newer one appears', function () {
    const plan = planRestoreJob(
      restoreObservation(
        restoreJob(
          {
            source: { backupPolicy: { name: 'nightly', pvcName: 'data', at: 'latest' } },
            target: { pvcName: 'restored' },
          },
          { status: { phase: 'Pending', snapshotName: 's1' } },
        ),
        { snapshots: policySnapshots() },
      ),
    );
    expect(plan.createPvcs?.[0]?.spec?.dataSource?.name).to.equal('s1');
  });

  it('waits (Pending) while the only candidate is not ready yet', function () {
    const plan = planRestoreJob(
      restoreObservation(byPolicy(), {
        snapshots: [volumeSnapshot('s1', { ready: false })],
      }),
    );
    expect(plan.status?.phase).to.equal('Pending');
    expect(plan.createPvcs).to.equal(undefined);
    expect(ready(plan.status)).to.include({ status: 'False', reason: 'SnapshotNotReady' });
  });

  it('waits for a named snapshot to appear, then fails after the grace period', function () {
    const job = restoreJob({ source: { volumeSnapshotName: 'later' }, target: { pvcName: 'r' } });
    const waiting = planRestoreJob(
      restoreObservation(job, { now: new Date('2026-01-01T12:00:10Z') }),
    );
    expect(waiting.status?.phase).to.equal('Pending');
    expect(waiting.requeueAfterMs).to.be.a('number');
    const failed = planRestoreJob(
      restoreObservation(job, { now: new Date('2026-01-01T12:01:01Z') }),
    );
    expect(failed.status?.phase).to.equal('Failed');
    expect(failed.status?.message).to.equal('VolumeSnapshot later not found in namespace team-a');
  });
});

describe('RestoreJob planning: the target PVC', function () {
  it('builds the PVC with dataSource, links to the job, no ownerReference', function () {
    const job = byPolicy('latest', { labels: { app: 'web' }, annotations: { note: 'x' } });
    const plan = planRestoreJob(
      restoreObservation(job, { snapshots: policySnapshots(), pvcs: [pvc('data')] }),
    );
    const created = plan.createPvcs![0]!;
    expect(created.metadata.name).to.equal('restored');
    expect(created.metadata.ownerReferences).to.equal(undefined);
    expect(created.metadata.labels).to.deep.equal({ app: 'web', [LABEL_RESTORE_JOB]: 'restore-1' });
    expect(created.metadata.annotations).to.deep.equal({
      note: 'x',
      [ANNOTATION_RESTORE_JOB_UID]: 'job-uid',
      [ANNOTATION_RESTORED_FROM]: 's3',
    });
    expect(created.spec).to.deep.include({
      accessModes: ['ReadWriteOnce'],
      storageClassName: 'local',
      resources: { requests: { storage: '1Gi' } },
    });
    expect(plan.status).to.include({ phase: 'Restoring', pvcName: 'restored' });
    expect(plan.status?.startTime).to.equal('2026-01-01T12:00:10Z');
    expect(plan.events.map((e) => e.reason)).to.deep.equal(['RestoreStarted']);
  });

  it('defaults the size to the larger of restoreSize and the source PVC', function () {
    const plan = planRestoreJob(
      restoreObservation(byPolicy(), {
        snapshots: policySnapshots(),
        pvcs: [pvc('data', { size: '5Gi' })],
      }),
    );
    expect(plan.createPvcs?.[0]?.spec?.resources?.requests?.storage).to.equal('5Gi');
  });

  it('accepts a size at or above restoreSize', function () {
    const plan = planRestoreJob(
      restoreObservation(byPolicy('latest', { size: '2Gi' }), { snapshots: policySnapshots() }),
    );
    expect(plan.createPvcs?.[0]?.spec?.resources?.requests?.storage).to.equal('2Gi');
  });

  it('goes Restoring -> Succeeded when its PVC is Bound', function () {
    const job = byPolicy();
    const first = planRestoreJob(restoreObservation(job, { snapshots: policySnapshots() }));
    const running = { ...job, status: first.status! };
    const pending = planRestoreJob(
      restoreObservation(running, {
        snapshots: policySnapshots(),
        pvcs: [asCreated(first.createPvcs![0]!, 'Pending')],
      }),
    );
    expect(pending.createPvcs).to.equal(undefined);
    expect(pending.status?.phase).to.equal('Restoring');
    const done = planRestoreJob(
      restoreObservation(
        { ...job, status: pending.status! },
        {
          snapshots: policySnapshots(),
          pvcs: [asCreated(first.createPvcs![0]!, 'Bound')],
          now: new Date('2026-01-01T12:05:00Z'),
        },
      ),
    );
    expect(done.status).to.include({ phase: 'Succeeded', completionTime: '2026-01-01T12:05:00Z' });
    expect(ready(done.status)).to.include({ status: 'True', reason: 'Restored' });
    expect(done.events.map((e) => e.reason)).to.deep.equal(['RestoreSucceeded']);
    // A finished job is left alone.
    const after = planRestoreJob(
      restoreObservation({ ...job, status: done.status! }, { pvcs: [] }),
    );
    expect(after).to.deep.equal({ events: [] });
  });

  it('never touches an existing PVC it did not create: Failed with a clear reason', function () {
    const plan = planRestoreJob(
      restoreObservation(byPolicy('latest', { pvcName: 'data' }), {
        snapshots: policySnapshots(),
        pvcs: [pvc('data')],
      }),
    );
    expect(plan.createPvcs).to.equal(undefined);
    expect(plan.status?.phase).to.equal('Failed');
    expect(ready(plan.status)).to.include({ reason: 'TargetExists' });
    expect(plan.status?.message).to.contain('PVC data already exists');
    expect(plan.status?.message).to.contain('never overwrites');
  });

  it('fails when its PVC is deleted before it is Bound', function () {
    const plan = planRestoreJob(
      restoreObservation(
        restoreJob(
          { source: { volumeSnapshotName: 's1' }, target: { pvcName: 'r' } },
          { status: { phase: 'Restoring', snapshotName: 's1', pvcName: 'r' } },
        ),
        { snapshots: policySnapshots() },
      ),
    );
    expect(plan.status?.phase).to.equal('Failed');
    expect(ready(plan.status)).to.include({ reason: 'TargetDeleted' });
    expect(plan.createPvcs).to.equal(undefined);
  });
});

describe('RestoreJob planning: bad input fails with a clear condition and an Event', function () {
  const cases: Array<{
    title: string;
    job: ReturnType<typeof restoreJob>;
    parts?: Parameters<typeof restoreObservation>[1];
    reason: string;
    message: RegExp;
  }> = [
    {
      title: 'size below restoreSize',
      job: byPolicy('latest', { size: '512Mi' }),
      reason: 'SizeTooSmall',
      message: /target\.size 512Mi is smaller than the restore size 1Gi of VolumeSnapshot s3/,
    },
    {
      title: '`at` before any snapshot',
      job: byPolicy('2025-12-31T00:00:00Z'),
      reason: 'NoSnapshotBefore',
      message:
        /taken at or before 2025-12-31T00:00:00Z; the oldest ready one is from 2026-01-01T01:00:00Z/,
    },
    {
      title: 'a policy without snapshots of that PVC',
      job: restoreJob({
        source: { backupPolicy: { name: 'nightly', pvcName: 'nope' } },
        target: { pvcName: 'r' },
      }),
      reason: 'NoSnapshots',
      message: /BackupPolicy nightly has no snapshot of PVC nope/,
    },
    {
      title: 'a snapshot in another namespace',
      job: restoreJob({ source: { volumeSnapshotName: 'theirs' }, target: { pvcName: 'r' } }),
      parts: { namespacesWithSnapshot: (name) => (name === 'theirs' ? ['team-b'] : []) },
      reason: 'SourceInOtherNamespace',
      message: /VolumeSnapshot theirs is in namespace team-b, not team-a/,
    },
    {
      title: 'an unknown StorageClass',
      job: byPolicy('latest', { storageClassName: 'gold' }),
      reason: 'StorageClassNotFound',
      message: /StorageClass gold not found/,
    },
    {
      title: 'a StorageClass of another driver',
      job: byPolicy('latest', { storageClassName: 'ebs' }),
      parts: {
        storageClasses: [storageClass('ebs', { provisioner: 'ebs.csi.aws.com' })],
        snapshotClasses: [],
        contents: [content('content-s3')],
      },
      reason: 'DriverMismatch',
      message:
        /provisions with ebs\.csi\.aws\.com, but VolumeSnapshot s3 was taken by local\.snapback\.dev/,
    },
    {
      title: 'no StorageClass at all',
      job: byPolicy(),
      parts: { storageClasses: [] },
      reason: 'NoStorageClass',
      message: /no default StorageClass/,
    },
    {
      title: 'a snapshot still in error past spec.pendingDeadlineSeconds',
      job: restoreJob({ source: { volumeSnapshotName: 'bad' }, target: { pvcName: 'r' } }),
      parts: {
        snapshots: [volumeSnapshot('bad', { ready: false, error: 'backend exploded' })],
        now: new Date('2026-01-01T13:00:00Z'),
      },
      reason: 'SnapshotFailed',
      message:
        /VolumeSnapshot bad still reports an error: backend exploded, 3600s after the RestoreJob was created \(spec.pendingDeadlineSeconds\)/,
    },
    {
      title: 'a snapshot being deleted',
      job: restoreJob({ source: { volumeSnapshotName: 'going' }, target: { pvcName: 'r' } }),
      parts: { snapshots: [volumeSnapshot('going', { deleting: true })] },
      reason: 'SnapshotDeleting',
      message: /being deleted/,
    },
    {
      title: 'an existing target PVC',
      job: byPolicy('latest', { pvcName: 'taken' }),
      parts: { pvcs: [pvc('taken')] },
      reason: 'TargetExists',
      message: /PVC taken already exists/,
    },
  ];
  for (const c of cases) {
    it(c.title, function () {
      const snapshots = policySnapshots();
      snapshots[2]!.status!.boundVolumeSnapshotContentName = 'content-s3';
      const plan = planRestoreJob(restoreObservation(c.job, { snapshots, ...c.parts }));
      expect(plan.createPvcs).to.equal(undefined);
      expect(plan.status?.phase).to.equal('Failed');
      expect(plan.status?.completionTime).to.be.a('string');
      expect(ready(plan.status)).to.include({ status: 'False', reason: c.reason });
      expect(plan.status?.message).to.match(c.message);
      expect(plan.events).to.deep.equal([
        { type: 'Warning', reason: c.reason, message: plan.status!.message },
      ]);
    });
  }
});

describe('RestoreJob planning: status stays writable', function () {
  it('caps a long snapshot error in the message, the condition and the Event', function () {
    const job = restoreJob({ source: { volumeSnapshotName: 'bad' }, target: { pvcName: 'r' } });
    const plan = planRestoreJob(
      restoreObservation(job, {
        snapshots: [volumeSnapshot('bad', { ready: false, error: 'y'.repeat(40_000) })],
      }),
    );
    const parsed = RestoreJobStatusSchema.safeParse(plan.status);
    expect(parsed.success, parsed.success ? '' : parsed.error.message).to.equal(true);
    expect(plan.status?.message).to.have.length(MAX_MESSAGE_LENGTH);
    expect(plan.status?.message).to.match(/^VolumeSnapshot bad .*y+…$/);
    expect(ready(plan.status)?.message).to.equal(plan.status?.message);
    expect(plan.events[0]?.message).to.equal(plan.status?.message);
  });
});

describe('RestoreJob planning: transient snapshot errors and holding the source', function () {
  const named = (extra: Record<string, unknown> = {}) =>
    restoreJob({ source: { volumeSnapshotName: 'flaky' }, target: { pvcName: 'r' }, ...extra });

  it('waits (Pending, with a deadline and a condition saying why) on a snapshot error, then fails', function () {
    const flaky = volumeSnapshot('flaky', { ready: false, error: 'rate limited, retrying' });
    const waiting = planRestoreJob(restoreObservation(named(), { snapshots: [flaky] }));
    expect(waiting.status?.phase).to.equal('Pending');
    expect(waiting.status?.completionTime).to.equal(undefined);
    expect(ready(waiting.status)).to.include({ status: 'False', reason: 'SnapshotError' });
    expect(waiting.status?.message).to.equal(
      'VolumeSnapshot flaky reports an error: rate limited, retrying; waiting until 2026-01-01T13:00:00Z (spec.pendingDeadlineSeconds)',
    );
    expect(waiting.events).to.deep.equal([
      { type: 'Normal', reason: 'SnapshotError', message: waiting.status!.message },
    ]);
    // It looks again at the deadline (created 12:00:00, now 12:00:10, deadline 13:00:00).
    expect(waiting.requeueAfterMs).to.equal(3590_000 + 1000);

    // The error clears: the restore goes on.
    const recovered = planRestoreJob(
      restoreObservation(named({}), {
        snapshots: [volumeSnapshot('flaky')],
        now: new Date('2026-01-01T12:30:00Z'),
      }),
    );
    expect(recovered.status?.phase).to.equal('Restoring');

    // A shorter deadline of its own.
    const short = named({ pendingDeadlineSeconds: 60 });
    const failed = planRestoreJob(
      restoreObservation(short, { snapshots: [flaky], now: new Date('2026-01-01T12:01:00Z') }),
    );
    expect(failed.status?.phase).to.equal('Failed');
    expect(ready(failed.status)).to.include({ reason: 'SnapshotFailed' });
    expect(failed.status?.message).to.contain('rate limited, retrying, 60s after the RestoreJob');
  });

  it('from a policy: waits while every candidate reports an error, then fails', function () {
    const snapshots = [
      volumeSnapshot('s1', { runTime: '2026-01-01T01:00:00Z', ready: false, error: 'quota' }),
      volumeSnapshot('s2', { runTime: '2026-01-01T02:00:00Z', ready: false, error: 'timeout' }),
    ];
    const waiting = planRestoreJob(restoreObservation(byPolicy(), { snapshots }));
    expect(waiting.status?.phase).to.equal('Pending');
    expect(ready(waiting.status)).to.include({ reason: 'SnapshotError' });
    expect(waiting.status?.message).to.contain('(the newest, s2: timeout)');
    const failed = planRestoreJob(
      restoreObservation(byPolicy(), { snapshots, now: new Date('2026-01-01T13:00:01Z') }),
    );
    expect(failed.status?.phase).to.equal('Failed');
    expect(ready(failed.status)).to.include({ reason: 'SnapshotFailed' });
  });

  it('holds the snapshot it chooses with its own finalizer, from the moment it is chosen', function () {
    const pending = planRestoreJob(
      restoreObservation(named(), { snapshots: [volumeSnapshot('flaky', { ready: false })] }),
    );
    expect(pending.hold?.metadata.name).to.equal('flaky');
    expect(pending.holdFinalizer).to.equal('restorejob.snapback.dev/job-uid');

    const chosen = planRestoreJob(restoreObservation(byPolicy(), { snapshots: policySnapshots() }));
    expect(chosen.hold?.metadata.name).to.equal('s3');
    expect(chosen.createPvcs).not.to.equal(undefined);

    const held = policySnapshots();
    held[2]!.metadata.finalizers = ['restorejob.snapback.dev/job-uid'];
    const again = planRestoreJob(restoreObservation(byPolicy(), { snapshots: held }));
    expect(again.hold).to.equal(undefined);
    expect(again.createPvcs).not.to.equal(undefined);

    // Nothing to hold while no snapshot is chosen yet, or once the job has failed.
    const none = planRestoreJob(
      restoreObservation(byPolicy(), { snapshots: [volumeSnapshot('s9', { ready: false })] }),
    );
    expect(none.hold).to.equal(undefined);
    const gone = planRestoreJob(
      restoreObservation(byPolicy('latest', { pvcName: 'taken' }), {
        snapshots: policySnapshots(),
        pvcs: [pvc('taken')],
      }),
    );
    expect(gone.status?.phase).to.equal('Failed');
    expect(gone.hold).to.equal(undefined);
  });

  it('lets go of the holds of jobs that finished, are being deleted or are gone', function () {
    const job = (uid: string, phase?: 'Pending' | 'Succeeded' | 'Failed', deleting = false) => {
      const j = named({});
      j.metadata.uid = uid;
      if (phase) j.status = { phase };
      if (deleting) j.metadata.deletionTimestamp = '2026-01-01T12:00:00Z';
      return j;
    };
    const hold = (uid: string) => `restorejob.snapback.dev/${uid}`;
    const other = 'snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection';
    const snap = (name: string, finalizers: string[]) => {
      const s = volumeSnapshot(name);
      s.metadata.finalizers = finalizers;
      return s;
    };
    const stale = staleRestoreHolds(
      [
        snap('active', [other, hold('a')]),
        snap('mixed', [hold('a'), hold('done'), other]),
        snap('deleted-job', [hold('gone')]),
        snap('deleting-job', [hold('d')]),
        snap('unheld', [other]),
      ],
      [job('a', 'Pending'), job('done', 'Succeeded'), job('d', 'Pending', true)],
    );
    expect(stale.map((x) => [x.snapshot.metadata.name, x.finalizers])).to.deep.equal([
      ['mixed', [hold('a'), other]],
      ['deleted-job', []],
      ['deleting-job', []],
    ]);
  });
});

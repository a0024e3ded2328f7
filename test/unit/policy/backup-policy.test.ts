import { LABEL_POLICY, LABEL_PVC } from '../../../src/api/v1alpha1.js';
import { expect } from 'chai';
import type { BackupPolicyStatus, VolumeSnapshot } from '../../../src/api/index.js';
import {
  BackupPolicyStatusSchema,
  MAX_MESSAGE_LENGTH,
  MAX_RUN_NOW_TOKEN_LENGTH,
  MAX_STATUS_PVCS,
} from '../../../src/api/index.js';
import {
  CONDITION_SUSPENDED,
  classesToDelete,
  planBackupPolicy,
} from '../../../src/policy/backup-policy.js';
import { ownedSnapshotClassName, snapshotName } from '../../../src/policy/naming.js';
import {
  NS,
  policy,
  policyObservation,
  pv,
  pvc,
  restoreJob,
  snapshotClass,
  volumeSnapshot,
} from './fixtures.js';

const ALICLOUD = 'diskplugin.csi.alibabacloud.com';
const at = (s: string) => new Date(s);
const cond = (status: BackupPolicyStatus, type: string) =>
  status.conditions?.find((c) => c.type === type);
const scheduledName = (pvcName: string, t: string, policyName = 'nightly') =>
  snapshotName(policyName, pvcName, { kind: 'scheduled', scheduledTime: at(t) });

describe('BackupPolicy planning: runs', function () {
  it('before the first scheduled time creates nothing and reports the next time', function () {
    const plan = planBackupPolicy(policyObservation(policy({})));
    expect(plan.create).to.deep.equal([]);
    expect(plan.status.nextScheduleTime).to.equal('2026-01-01T01:00:00Z');
    expect(plan.status.lastScheduleTime).to.equal(undefined);
    expect(plan.status.readyOverTotal).to.equal('0/0');
    expect(cond(plan.status, 'Ready')).to.include({ status: 'True', reason: 'Scheduled' });
    expect(plan.requeueAfterMs).to.equal(30 * 60_000);
  });

  it('at the scheduled time snapshots each selected Bound PVC, labelled and annotated', function () {
    const p = policy({ pvcNames: ['data', 'logs'] });
    const plan = planBackupPolicy(
      policyObservation(p, {
        pvcs: [pvc('data'), pvc('logs'), pvc('other')],
        now: at('2026-01-01T01:00:07Z'),
      }),
    );
    expect(plan.create.map((s) => s.metadata.name)).to.deep.equal([
      scheduledName('data', '2026-01-01T01:00:00Z'),
      scheduledName('logs', '2026-01-01T01:00:00Z'),
    ]);
    const [first] = plan.create;
    expect(first!.metadata.namespace).to.equal(NS);
    expect(first!.metadata.labels).to.deep.equal({
      [LABEL_POLICY]: 'nightly',
      [LABEL_PVC]: 'data',
    });
    expect(first!.metadata.annotations?.['snapback.dev/run-time']).to.equal('2026-01-01T01:00:00Z');
    expect(first!.metadata.ownerReferences).to.equal(undefined);
    expect(first!.spec).to.deep.equal({ source: { persistentVolumeClaimName: 'data' } });
    expect(plan.status.lastScheduleTime).to.equal('2026-01-01T01:00:00Z');
    expect(plan.status.nextScheduleTime).to.equal('2026-01-01T02:00:00Z');
    expect(plan.events.map((e) => e.reason)).to.deep.equal(['RunStarted']);
    expect(plan.events[0]!.message).to.contain('scheduled run 2026-01-01T01:00:00Z');
  });

  it('a retried run creates no second snapshot', function () {
    const name = scheduledName('data', '2026-01-01T01:00:00Z');
    const plan = planBackupPolicy(
      policyObservation(policy({}), {
        snapshots: [volumeSnapshot(name, { runTime: '2026-01-01T01:00:00Z', ready: false })],
        now: at('2026-01-01T01:00:30Z'),
      }),
    );
    expect(plan.create).to.deep.equal([]);
    expect(plan.status.lastScheduleTime).to.equal('2026-01-01T01:00:00Z');
  });

  it('a handled time does not run again', function () {
    const plan = planBackupPolicy(
      policyObservation(policy({}, { status: { lastScheduleTime: '2026-01-01T01:00:00Z' } }), {
        now: at('2026-01-01T01:30:00Z'),
      }),
    );
    expect(plan.create).to.deep.equal([]);
    expect(plan.events).to.deep.equal([]);
  });

  it('selects by label, only Bound PVCs, and picks up a PVC that appears later', function () {
    const p = policy({ pvcNames: undefined, selector: { matchLabels: { backup: 'yes' } } });
    const labels = { backup: 'yes' };
    const now = at('2026-01-01T01:00:05Z');
    const plan = planBackupPolicy(
      policyObservation(p, {
        pvcs: [
          pvc('a', { labels }),
          pvc('b', { labels, phase: 'Pending' }),
          pvc('c', { labels: { backup: 'no' } }),
        ],
        now,
      }),
    );
    expect(plan.create.map((s) => s.spec.source.persistentVolumeClaimName)).to.deep.equal(['a']);
    expect(plan.status.pvcs?.map((x) => x.pvcName)).to.deep.equal(['a', 'b']);
    expect(plan.status.pvcs?.[1]?.message).to.match(/PVC b is Pending, not Bound/);
    expect(cond(plan.status, 'Degraded')).to.include({ status: 'True', reason: 'PVCNotBound' });

    const later = planBackupPolicy(
      policyObservation(policy(p.spec, { status: plan.status }), {
        pvcs: [pvc('a', { labels }), pvc('b', { labels }), pvc('d', { labels })],
        now: at('2026-01-01T02:00:05Z'),
      }),
    );
    expect(later.create.map((s) => s.spec.source.persistentVolumeClaimName)).to.deep.equal([
      'a',
      'b',
      'd',
    ]);
  });

  it('a missing named PVC is a condition and an Event, and the others still run', function () {
    const plan = planBackupPolicy(
      policyObservation(policy({ pvcNames: ['data', 'gone'] }), {
        now: at('2026-01-01T01:00:05Z'),
        namespacesWithPvc: (name) => (name === 'gone' ? ['team-b'] : []),
      }),
    );
    expect(plan.create).to.have.length(1);
    const degraded = cond(plan.status, 'Degraded');
    expect(degraded).to.include({ status: 'True', reason: 'PVCNotFound' });
    expect(degraded!.message).to.contain('PVC gone not found in namespace team-a');
    expect(degraded!.message).to.contain('exists in namespace team-b');
    expect(plan.events.map((e) => `${e.type} ${e.reason}`)).to.include('Warning PVCNotFound');
  });

  it('does not repeat a PVC problem Event on every reconcile', function () {
    const observe = (status?: BackupPolicyStatus) =>
      planBackupPolicy(
        policyObservation(policy({ pvcNames: ['gone'] }, status ? { status } : {}), {
          pvcs: [],
        }),
      );
    const first = observe();
    expect(first.events.map((e) => e.reason)).to.include('PVCNotFound');
    const second = observe(first.status);
    expect(second.events.map((e) => e.reason)).not.to.include('PVCNotFound');
  });

  it('run-now runs once per new token, named after the token', function () {
    const p = policy({}, { annotations: { 'snapback.dev/run-now': 'before-upgrade' } });
    const plan = planBackupPolicy(policyObservation(p));
    expect(plan.create.map((s) => s.metadata.name)).to.deep.equal([
      snapshotName('nightly', 'data', { kind: 'run-now', token: 'before-upgrade', sequence: 1 }),
    ]);
    expect(plan.create[0]!.metadata.annotations?.['snapback.dev/run-now-token']).to.equal(
      'before-upgrade',
    );
    expect(plan.status.lastRunNowToken).to.equal('before-upgrade');
    const again = planBackupPolicy(
      policyObservation(
        policy(
          {},
          { annotations: { 'snapback.dev/run-now': 'before-upgrade' }, status: plan.status },
        ),
      ),
    );
    expect(again.create).to.deep.equal([]);
  });

  it('run-now takes a new run for every value other than the last acted on: A, B, A is three runs', function () {
    let status: BackupPolicyStatus | undefined;
    const snapshots: VolumeSnapshot[] = [];
    const created: string[] = [];
    for (const [i, token] of ['A', 'B', 'A'].entries()) {
      const plan = planBackupPolicy(
        policyObservation(
          policy(
            {},
            { annotations: { 'snapback.dev/run-now': token }, ...(status ? { status } : {}) },
          ),
          { snapshots, now: at(`2026-01-01T00:3${i}:00Z`) },
        ),
      );
      expect(plan.create, `run ${i + 1} (${token})`).to.have.length(1);
      created.push(plan.create[0]!.metadata.name!);
      snapshots.push(...plan.create);
      status = plan.status;
    }
    expect(new Set(created).size).to.equal(3);
    expect(status?.lastRunNowToken).to.equal('A');
    expect(status?.runNowCount).to.equal(3);
  });

  it('a retried run-now (its run not yet recorded in status) creates no second snapshot', function () {
    const p = policy({}, { annotations: { 'snapback.dev/run-now': 'A' } });
    const first = planBackupPolicy(policyObservation(p));
    const retry = planBackupPolicy(
      policyObservation(p, { snapshots: first.create, now: at('2026-01-01T00:31:00Z') }),
    );
    expect(retry.create).to.deep.equal([]);
    expect(retry.status.runNowCount).to.equal(1);
  });

  it('counts missed runs past the deadline, reports them, and takes one catch-up at most', function () {
    const plan = planBackupPolicy(
      policyObservation(
        policy(
          { startingDeadlineSeconds: 60 },
          { status: { lastScheduleTime: '2026-01-01T01:00:00Z', missedRuns: 2 } },
        ),
        { now: at('2026-01-01T05:30:00Z') },
      ),
    );
    expect(plan.create).to.deep.equal([]);
    expect(plan.status.missedRuns).to.equal(6); // 2 before + 02:00, 03:00, 04:00, 05:00
    expect(plan.status.lastScheduleTime).to.equal('2026-01-01T05:00:00Z');
    const event = plan.events.find((e) => e.reason === 'MissedRuns');
    expect(event?.type).to.equal('Warning');
    expect(event?.message).to.contain(
      '4 scheduled run(s) missed, the latest at 2026-01-01T05:00:00Z',
    );
  });

  it('records lastSuccessfulTime once every snapshot of a run is ready', function () {
    const t1 = '2026-01-01T01:00:00Z';
    const t2 = '2026-01-01T02:00:00Z';
    const p = policy({ pvcNames: ['data', 'logs'] }, { status: { lastScheduleTime: t2 } });
    const plan = planBackupPolicy(
      policyObservation(p, {
        pvcs: [pvc('data'), pvc('logs')],
        snapshots: [
          volumeSnapshot('d1', { runTime: t1 }),
          volumeSnapshot('l1', { runTime: t1, pvc: 'logs' }),
          volumeSnapshot('d2', { runTime: t2 }),
          volumeSnapshot('l2', { runTime: t2, pvc: 'logs', ready: false }),
        ],
        now: at('2026-01-01T02:10:00Z'),
      }),
    );
    expect(plan.status.lastSuccessfulTime).to.equal(t1);
    expect(plan.status.readyOverTotal).to.equal('3/4');
    expect(plan.status.pvcs).to.deep.equal([
      {
        pvcName: 'data',
        readySnapshots: 2,
        totalSnapshots: 2,
        lastSnapshotName: 'd2',
        lastReadyTime: t2,
      },
      {
        pvcName: 'logs',
        readySnapshots: 1,
        totalSnapshots: 2,
        lastSnapshotName: 'l2',
        lastReadyTime: t1,
      },
    ]);
  });
});

describe('BackupPolicy planning: snapshot class', function () {
  it('uses a named class as is', function () {
    const plan = planBackupPolicy(
      policyObservation(policy({ snapshotClass: { name: 'fast' } }), {
        snapshotClasses: [snapshotClass('fast')],
        now: at('2026-01-01T01:00:05Z'),
      }),
    );
    expect(plan.create[0]!.spec.volumeSnapshotClassName).to.equal('fast');
    expect(plan.ownedClass).to.equal(undefined);
  });

  it('builds an owned class from the template, forceDelete as a parameter', function () {
    const p = policy({
      snapshotClass: {
        template: {
          driver: ALICLOUD,
          forceDelete: true,
          parameters: { resourceGroupId: 'rg-gold' },
        },
      },
    });
    const plan = planBackupPolicy(
      policyObservation(p, { pvs: [pv('pv-data', ALICLOUD)], now: at('2026-01-01T01:00:05Z') }),
    );
    const name = ownedSnapshotClassName(NS, 'nightly');
    expect(plan.ownedClass).to.deep.include({
      driver: ALICLOUD,
      deletionPolicy: 'Delete',
      parameters: { resourceGroupId: 'rg-gold', forceDelete: 'true' },
    });
    expect(plan.ownedClass!.metadata.name).to.equal(name);
    expect(plan.ownedClass!.metadata.labels).to.deep.equal({
      [LABEL_POLICY]: 'nightly',
      'snapback.dev/policy-namespace': NS,
    });
    expect(plan.create[0]!.spec.volumeSnapshotClassName).to.equal(name);
  });

  // What the API server refuses, met in a policy stored before the rule existed: no class is
  // made or changed from it, no snapshot is taken, and nothing is deleted.
  const forbiddenTemplates: Array<{
    title: string;
    parameters: Record<string, string>;
    message: RegExp;
  }> = [
    {
      title: 'a snapshotter secret of another namespace',
      parameters: {
        'csi.storage.k8s.io/snapshotter-secret-name': 'ecs-key',
        'csi.storage.k8s.io/snapshotter-secret-namespace': 'kube-system',
      },
      message: /parameters must not contain csi\.storage\.k8s\.io\/ keys/,
    },
    {
      title: 'retentionDays, which ECS would enforce unknown to retention',
      parameters: { retentionDays: '3' },
      message: /parameters must not contain retentionDays.*spec\.retention\.maxAge/,
    },
    {
      title: 'a parameter outside the allow-list',
      parameters: { category: 'cloud_essd' },
      message: /may contain only resourceGroupId, snapshotTags\/<key>/,
    },
  ];
  for (const c of forbiddenTemplates) {
    it(`refuses a stored template with ${c.title}, with a condition and an Event`, function () {
      const p = policy({
        snapshotClass: { template: { driver: ALICLOUD, parameters: c.parameters } },
        retention: { keepLast: 1 },
      });
      const owned = { [LABEL_POLICY]: 'nightly', 'snapback.dev/policy-namespace': NS };
      const plan = planBackupPolicy(
        policyObservation(p, {
          pvs: [pv('pv-data', ALICLOUD)],
          snapshotClasses: [
            snapshotClass(ownedSnapshotClassName(NS, 'nightly'), {
              driver: ALICLOUD,
              labels: owned,
            }),
          ],
          snapshots: ['01', '02'].map((h, i) =>
            volumeSnapshot(`s${i}`, { runTime: `2026-01-01T${h}:00:00Z` }),
          ),
          now: at('2026-01-01T04:00:05Z'),
        }),
      );
      expect(plan.ownedClass).to.equal(undefined);
      expect(plan.create).to.deep.equal([]);
      expect(plan.prune).to.deep.equal([]);
      // blocked: the reconciler then deletes no owned class either
      expect(plan.blockedBy).to.equal('InvalidSpec');
      const ready = cond(plan.status, 'Ready');
      expect(ready).to.include({ status: 'False', reason: 'InvalidSpec' });
      expect(ready!.message).to.match(c.message);
      expect(ready!.message).to.contain('at snapshotClass.template.parameters');
      expect(plan.events).to.deep.include({
        type: 'Warning',
        reason: 'InvalidSpec',
        message: ready!.message,
      });
    });
  }

  it('passes a named class through whatever its parameters: it is the administrator’s', function () {
    const adminClass = {
      ...snapshotClass('admin', { driver: ALICLOUD }),
      parameters: {
        'csi.storage.k8s.io/snapshotter-secret-name': 'ecs-key',
        'csi.storage.k8s.io/snapshotter-secret-namespace': 'kube-system',
        retentionDays: '30',
      },
    };
    const plan = planBackupPolicy(
      policyObservation(policy({ snapshotClass: { name: 'admin' } }), {
        pvs: [pv('pv-data', ALICLOUD)],
        snapshotClasses: [adminClass],
        now: at('2026-01-01T01:00:05Z'),
      }),
    );
    expect(plan.blockedBy).to.equal(undefined);
    expect(plan.create.map((s) => s.spec.volumeSnapshotClassName)).to.deep.equal(['admin']);
  });

  it('refuses to take over a class of the same name it did not create', function () {
    const p = policy({ snapshotClass: { template: { driver: 'local.snapback.dev' } } });
    const plan = planBackupPolicy(
      policyObservation(p, {
        snapshotClasses: [snapshotClass(ownedSnapshotClassName(NS, 'nightly'))],
        now: at('2026-01-01T01:00:05Z'),
      }),
    );
    expect(plan.create).to.deep.equal([]);
    expect(plan.ownedClass).to.equal(undefined);
    expect(cond(plan.status, 'Ready')).to.include({
      status: 'False',
      reason: 'SnapshotClassConflict',
    });
  });

  it('deletes owned classes the policy no longer wants once no snapshot uses them', function () {
    const owned = { [LABEL_POLICY]: 'nightly', 'snapback.dev/policy-namespace': NS };
    const classes = [
      snapshotClass('old-unused', { labels: owned }),
      snapshotClass('old-used', { labels: owned }),
      snapshotClass('current', { labels: owned }),
      snapshotClass('someone-elses', {
        labels: { [LABEL_POLICY]: 'nightly', 'snapback.dev/policy-namespace': 'team-b' },
      }),
    ];
    const used = (name: string) => (name === 'old-used' ? 3 : 0);
    expect(classesToDelete(NS, 'nightly', 'current', classes, used)).to.deep.equal(['old-unused']);
    expect(classesToDelete(NS, 'nightly', undefined, classes, used)).to.deep.equal([
      'old-unused',
      'current',
    ]);
  });
});

describe('BackupPolicy planning: retention', function () {
  const hours = ['01', '02', '03', '04'].map((h) => `2026-01-01T${h}:00:00Z`);
  const fourReady = () => hours.map((t, i) => volumeSnapshot(`s${i + 1}`, { runTime: t }));

  it('keepLast 2 after 4 runs prunes the 2 oldest, with a message', function () {
    const plan = planBackupPolicy(
      policyObservation(policy({ retention: { keepLast: 2 } }), {
        snapshots: fourReady(),
        now: at('2026-01-01T04:10:00Z'),
      }),
    );
    expect(plan.prune.map((p) => p.name)).to.deep.equal(['s1', 's2']);
    expect(plan.prune[0]!.message).to.contain('keepLast 2');
  });

  it('never prunes a snapshot a RestoreJob or a Pending PVC is restoring from', function () {
    const plan = planBackupPolicy(
      policyObservation(policy({ retention: { keepLast: 1 } }), {
        snapshots: fourReady(),
        pvcs: [pvc('data'), pvc('restored', { phase: 'Pending', dataSource: 's2' })],
        restoreJobs: [
          restoreJob(
            { source: { volumeSnapshotName: 's1' }, target: { pvcName: 'r' } },
            { status: { phase: 'Pending' } },
          ),
          restoreJob(
            { source: { volumeSnapshotName: 's3' }, target: { pvcName: 'r2' } },
            { status: { phase: 'Succeeded' } },
          ),
        ],
        now: at('2026-01-01T04:10:00Z'),
      }),
    );
    expect(plan.prune.map((p) => p.name)).to.deep.equal(['s3']);
  });

  it('never prunes a snapshot a RestoreJob holds with its finalizer, even one not in the cache yet', function () {
    const snapshots = ['01', '02', '03', '04'].map((h, i) =>
      volumeSnapshot(`s${i}`, { runTime: `2026-01-01T${h}:00:00Z` }),
    );
    snapshots[0]!.metadata.finalizers = ['restorejob.snapback.dev/some-job-uid'];
    const plan = planBackupPolicy(
      policyObservation(policy({ retention: { keepLast: 1 } }), {
        snapshots,
        now: at('2026-01-01T04:10:00Z'),
      }),
    );
    expect(plan.prune.map((p) => p.name)).to.deep.equal(['s1', 's2']);
  });

  it('pauses pruning while the latest run failed, and says so once', function () {
    const snapshots = [
      ...fourReady(),
      volumeSnapshot('s5', { runTime: '2026-01-01T05:00:00Z', ready: false, error: 'disk full' }),
    ];
    const observe = (status?: BackupPolicyStatus) =>
      planBackupPolicy(
        policyObservation(policy({ retention: { keepLast: 1 } }, status ? { status } : {}), {
          snapshots,
          now: at('2026-01-01T05:10:00Z'),
        }),
      );
    const plan = observe();
    expect(plan.prune).to.deep.equal([]);
    const degraded = cond(plan.status, 'Degraded');
    expect(degraded).to.include({ status: 'True', reason: 'SnapshotFailed' });
    expect(degraded!.message).to.contain('snapshot s5 of PVC data failed: disk full');
    expect(degraded!.message).to.contain('pruning of PVC data is paused');
    expect(plan.events.filter((e) => e.reason === 'SnapshotFailed')).to.have.length(1);
    expect(observe(plan.status).events.filter((e) => e.reason === 'SnapshotFailed')).to.deep.equal(
      [],
    );
  });

  it('counts the snapshots it reports newly failed, once each, and none for a blocked policy', function () {
    const failedAt = (name: string, pvcName: string, error: string) =>
      volumeSnapshot(name, { pvc: pvcName, runTime: '2026-01-01T05:00:00Z', ready: false, error });
    const observe = (spec: Parameters<typeof policy>[0], status?: BackupPolicyStatus) =>
      planBackupPolicy(
        policyObservation(policy(spec, status ? { status } : {}), {
          pvcs: [pvc('data'), pvc('logs'), pvc('web')],
          snapshots: [
            failedAt('d1', 'data', 'disk full'),
            failedAt('l1', 'logs', 'quota'),
            volumeSnapshot('w1', { pvc: 'web', runTime: '2026-01-01T05:00:00Z' }),
          ],
          now: at('2026-01-01T05:10:00Z'),
        }),
      );
    const spec = { pvcNames: ['data', 'logs', 'web'] };
    const plan = observe(spec);
    expect(plan.newlyFailedSnapshots).to.equal(2);
    expect(plan.newlyFailedSnapshots).to.equal(
      plan.events.filter((e) => e.reason === 'SnapshotFailed').length,
    );
    expect(observe(spec, plan.status).newlyFailedSnapshots).to.equal(0);
    const blocked = observe({ ...spec, schedule: 'not a schedule' });
    expect(blocked.blockedBy).to.equal('InvalidSpec');
    expect(blocked.newlyFailedSnapshots).to.equal(0);
  });

  it('pauses pruning of a PVC that cannot be snapshotted', function () {
    const plan = planBackupPolicy(
      policyObservation(policy({ retention: { keepLast: 1 }, snapshotClass: { name: 'other' } }), {
        snapshots: fourReady(),
        snapshotClasses: [snapshotClass('other', { driver: 'ebs.csi.aws.com' })],
        now: at('2026-01-01T04:10:00Z'),
      }),
    );
    expect(plan.prune).to.deep.equal([]);
    expect(cond(plan.status, 'Degraded')!.message).to.contain(
      'pruning of PVC data is paused until it can be snapshotted again',
    );
  });

  it('never prunes snapshots of a PVC the policy no longer selects', function () {
    const plan = planBackupPolicy(
      policyObservation(policy({ pvcNames: ['data'], retention: { keepLast: 1 } }), {
        snapshots: hours.map((t, i) => volumeSnapshot(`old${i}`, { runTime: t, pvc: 'retired' })),
        now: at('2026-01-01T04:10:00Z'),
      }),
    );
    expect(plan.prune).to.deep.equal([]);
  });

  it('while suspended: no run, no pruning, no next time, a Suspended condition', function () {
    const plan = planBackupPolicy(
      policyObservation(policy({ suspend: true, retention: { keepLast: 1 } }), {
        snapshots: fourReady(),
        now: at('2026-01-01T05:00:05Z'),
      }),
    );
    expect(plan.create).to.deep.equal([]);
    expect(plan.prune).to.deep.equal([]);
    expect(plan.status.nextScheduleTime).to.equal(undefined);
    expect(plan.requeueAfterMs).to.equal(undefined);
    expect(cond(plan.status, CONDITION_SUSPENDED)).to.include({ status: 'True' });
    expect(cond(plan.status, 'Ready')).to.include({ reason: 'Suspended' });
  });

  it('on resume neither catches up nor counts the suspended period as missed', function () {
    const suspended = planBackupPolicy(
      policyObservation(
        policy(
          { suspend: true, startingDeadlineSeconds: 60 },
          { status: { lastScheduleTime: '2026-01-01T01:00:00Z' } },
        ),
        { now: at('2026-01-01T02:00:00Z') },
      ),
    );
    const resumed = planBackupPolicy(
      policyObservation(policy({ suspend: false }, { status: suspended.status }), {
        now: at('2026-01-01T06:30:00Z'),
      }),
    );
    expect(resumed.create).to.deep.equal([]);
    expect(resumed.status.missedRuns).to.equal(undefined);
    expect(cond(resumed.status, CONDITION_SUSPENDED)).to.include({
      status: 'False',
      reason: 'Resumed',
    });
    // The next hour runs normally.
    const next = planBackupPolicy(
      policyObservation(policy({ suspend: false }, { status: resumed.status }), {
        now: at('2026-01-01T07:00:03Z'),
      }),
    );
    expect(next.create).to.have.length(1);
    expect(next.status.missedRuns).to.equal(undefined);
  });
});

describe('BackupPolicy planning: bad input ends as a condition and an Event, nothing created or deleted', function () {
  const snapshots = ['01', '02', '03'].map((h, i) =>
    volumeSnapshot(`s${i}`, { runTime: `2026-01-01T${h}:00:00Z` }),
  );
  const cases: Array<{
    title: string;
    spec: Parameters<typeof policy>[0];
    reason: string;
    message: RegExp;
    parts?: Parameters<typeof policyObservation>[1];
  }> = [
    {
      title: 'a schedule that never fires',
      spec: { schedule: '0 0 30 2 *' },
      reason: 'InvalidSchedule',
      message: /never fires/,
    },
    {
      title: 'a backwards range',
      spec: { schedule: '0 5-1 * * *' },
      reason: 'InvalidSchedule',
      message: /runs backwards/,
    },
    {
      title: 'an unknown time zone',
      spec: { timeZone: 'Mars/Olympus_Mons' },
      reason: 'InvalidTimeZone',
      message: /unknown time zone "Mars\/Olympus_Mons"/,
    },
    {
      title: 'an unknown snapshot class',
      spec: { snapshotClass: { name: 'nope' } },
      reason: 'SnapshotClassNotFound',
      message: /VolumeSnapshotClass nope not found/,
    },
  ];
  for (const c of cases) {
    it(c.title, function () {
      const plan = planBackupPolicy(
        policyObservation(policy({ ...c.spec, retention: { keepLast: 1 } }), {
          snapshots,
          now: at('2026-01-01T04:00:05Z'),
          ...c.parts,
        }),
      );
      expect(plan.create).to.deep.equal([]);
      expect(plan.prune).to.deep.equal([]);
      expect(plan.ownedClass).to.equal(undefined);
      expect(plan.blockedBy).to.equal(c.reason);
      const ready = cond(plan.status, 'Ready');
      expect(ready).to.include({ status: 'False', reason: c.reason });
      expect(ready!.message).to.match(c.message);
      expect(plan.events).to.deep.include({
        type: 'Warning',
        reason: c.reason,
        message: ready!.message,
      });
    });
  }

  const pvcCases: Array<{
    title: string;
    spec?: Parameters<typeof policy>[0];
    parts: Parameters<typeof policyObservation>[1];
    reason: string;
    message: RegExp;
  }> = [
    {
      title: 'a class for another driver',
      spec: { snapshotClass: { name: 'other' } },
      parts: { snapshotClasses: [snapshotClass('other', { driver: 'ebs.csi.aws.com' })] },
      reason: 'DriverMismatch',
      message: /is for driver ebs\.csi\.aws\.com, but PVC data uses local\.snapback\.dev/,
    },
    {
      title: 'a template for another driver',
      spec: { snapshotClass: { template: { driver: 'ebs.csi.aws.com' } } },
      parts: {},
      reason: 'DriverMismatch',
      message: /template\.driver is ebs\.csi\.aws\.com/,
    },
    {
      title: 'no default class for the driver',
      parts: { snapshotClasses: [] },
      reason: 'NoDefaultSnapshotClass',
      message: /no VolumeSnapshotClass for driver local\.snapback\.dev is marked default/,
    },
    {
      title: 'two default classes for the driver',
      parts: {
        snapshotClasses: [
          snapshotClass('a', { isDefault: true }),
          snapshotClass('b', { isDefault: true }),
        ],
      },
      reason: 'NoDefaultSnapshotClass',
      message: /2 VolumeSnapshotClasses .* are marked default \(a, b\)/,
    },
    {
      title: 'a volume that is not CSI',
      parts: { pvs: [pv('pv-data', null)] },
      reason: 'VolumeNotCSI',
      message: /not a CSI volume/,
    },
  ];
  for (const c of pvcCases) {
    it(c.title, function () {
      const plan = planBackupPolicy(
        policyObservation(policy({ ...c.spec, retention: { keepLast: 1 } }), {
          snapshots,
          now: at('2026-01-01T04:00:05Z'),
          ...c.parts,
        }),
      );
      expect(plan.create).to.deep.equal([]);
      const degraded = cond(plan.status, 'Degraded');
      expect(degraded).to.include({ status: 'True', reason: c.reason });
      expect(degraded!.message).to.match(c.message);
      expect(plan.events.map((e) => `${e.type} ${e.reason}`)).to.include(`Warning ${c.reason}`);
    });
  }

  it('a selector that matches nothing', function () {
    const plan = planBackupPolicy(
      policyObservation(policy({ pvcNames: undefined, selector: { matchLabels: { x: 'y' } } })),
    );
    expect(cond(plan.status, 'Ready')).to.include({ status: 'False', reason: 'NoPVCsSelected' });
    expect(plan.events.map((e) => e.reason)).to.include('NoPVCsSelected');
  });

  it('a spec the schema rejects (as a controller meeting an old object would)', function () {
    const plan = planBackupPolicy(
      policyObservation(policy({ retention: { keepLast: -1 } } as never), { snapshots }),
    );
    expect(plan.prune).to.deep.equal([]);
    expect(cond(plan.status, 'Ready')).to.include({ status: 'False', reason: 'InvalidSpec' });
  });
});

describe('BackupPolicy planning: status stays writable at scale', function () {
  const writable = (status: BackupPolicyStatus) => {
    const parsed = BackupPolicyStatusSchema.safeParse(status);
    expect(parsed.success, parsed.success ? '' : parsed.error.message).to.equal(true);
  };

  it('summarises and caps the Degraded message and bounds status.pvcs, problems first', function () {
    const names = Array.from({ length: 500 }, (_, i) => `pvc-${String(i).padStart(3, '0')}`);
    const labels = { backup: 'yes' };
    const p = policy({ pvcNames: undefined, selector: { matchLabels: labels } });
    // 400 healthy PVCs and 100 that are not Bound, the unbound ones last by name.
    const pvcs = names.map((name, i) =>
      pvc(name, { labels, ...(i >= 400 ? { phase: 'Pending' } : {}) }),
    );
    const plan = planBackupPolicy(policyObservation(p, { pvcs }));
    writable(plan.status);
    const degraded = cond(plan.status, 'Degraded')!;
    expect(degraded).to.include({ status: 'True', reason: 'PVCNotBound' });
    expect(degraded.message.length).to.be.at.most(MAX_MESSAGE_LENGTH);
    expect(degraded.message).to.match(/^100 problems: PVC pvc-400 is Pending/);
    expect(degraded.message).to.contain('and 97 more (see status.pvcs');
    expect(plan.status.selectedPvcs).to.equal(500);
    expect(plan.status.pvcs).to.have.length(MAX_STATUS_PVCS);
    expect(plan.status.pvcs!.every((e) => e.message !== undefined)).to.equal(true);
    expect(plan.events.filter((e) => e.reason === 'PVCNotBound')).to.have.length(100);
  });

  it('caps a long snapshot error in status.pvcs, the condition and the Event', function () {
    const plan = planBackupPolicy(
      policyObservation(policy({}, { status: { lastScheduleTime: '2026-01-01T00:00:00Z' } }), {
        snapshots: [
          volumeSnapshot('s1', { ready: false, error: 'backend says: ' + 'x'.repeat(50_000) }),
        ],
      }),
    );
    writable(plan.status);
    expect(plan.status.pvcs![0]!.message!.length).to.equal(MAX_MESSAGE_LENGTH);
    expect(plan.status.pvcs![0]!.message).to.match(
      /^snapshot s1 of PVC data failed: backend says: x+…$/,
    );
    expect(cond(plan.status, 'Degraded')!.message.length).to.be.at.most(MAX_MESSAGE_LENGTH);
    const event = plan.events.find((e) => e.reason === 'SnapshotFailed');
    expect(event?.message.length).to.equal(MAX_MESSAGE_LENGTH);
  });

  it('does not run an over-long run-now token: Degraded and one Event name the limit', function () {
    const token = 't'.repeat(MAX_RUN_NOW_TOKEN_LENGTH + 1);
    const observe = (status?: BackupPolicyStatus) =>
      planBackupPolicy(
        policyObservation(
          policy(
            {},
            { annotations: { 'snapback.dev/run-now': token }, ...(status ? { status } : {}) },
          ),
        ),
      );
    const first = observe();
    expect(first.create).to.deep.equal([]);
    expect(first.prune).to.deep.equal([]);
    writable(first.status);
    expect(first.status.lastRunNowToken).to.equal(undefined);
    const degraded = cond(first.status, 'Degraded')!;
    expect(degraded).to.include({ status: 'True', reason: 'InvalidRunNowToken' });
    expect(degraded.message).to.contain(
      `annotation snapback.dev/run-now is ${MAX_RUN_NOW_TOKEN_LENGTH + 1} characters long, at most ${MAX_RUN_NOW_TOKEN_LENGTH}`,
    );
    expect(first.events.filter((e) => e.reason === 'InvalidRunNowToken')).to.have.length(1);
    expect(first.events[0]).to.include({ type: 'Warning' });
    // Reported once, not on every reconcile; the schedule still runs.
    const second = observe(first.status);
    expect(second.events.map((e) => e.reason)).not.to.include('InvalidRunNowToken');
    expect(cond(second.status, 'Degraded')).to.include({ reason: 'InvalidRunNowToken' });
    // A token at the limit runs.
    const ok = planBackupPolicy(
      policyObservation(
        policy(
          {},
          {
            annotations: { 'snapback.dev/run-now': token.slice(1) },
            status: second.status,
          },
        ),
      ),
    );
    expect(ok.create).to.have.length(1);
    expect(cond(ok.status, 'Degraded')).to.include({ status: 'False' });
    writable(ok.status);
  });
});

describe('BackupPolicy planning: runs cannot pile up', function () {
  const t1 = '2026-01-01T01:00:00Z';
  const previousRun = (ready: boolean, extra: Parameters<typeof volumeSnapshot>[1] = {}) =>
    volumeSnapshot(scheduledName('data', t1), { runTime: t1, ready, ...extra });
  const atTwo = (spec: Parameters<typeof policy>[0], snapshots = [previousRun(false)]) =>
    planBackupPolicy(
      policyObservation(policy(spec, { status: { lastScheduleTime: t1 } }), {
        snapshots,
        now: at('2026-01-01T02:00:05Z'),
      }),
    );

  it('Forbid (the default) skips a scheduled run while the previous one is not ready, counted and reported', function () {
    const plan = atTwo({ readyDeadlineSeconds: 7200 });
    expect(plan.create).to.deep.equal([]);
    expect(plan.status.skippedRuns).to.equal(1);
    expect(plan.status.lastScheduleTime).to.equal('2026-01-01T02:00:00Z');
    const event = plan.events.find((e) => e.reason === 'RunSkipped');
    expect(event?.type).to.equal('Warning');
    expect(event?.message).to.contain(
      `scheduled run 2026-01-01T02:00:00Z skipped (concurrencyPolicy Forbid): 1 snapshot(s) of an earlier run are not ready yet: ${scheduledName('data', t1)}`,
    );
    // The skipped time is handled: the next reconcile neither runs it nor counts it again.
    const again = planBackupPolicy(
      policyObservation(policy({ readyDeadlineSeconds: 7200 }, { status: plan.status }), {
        snapshots: [previousRun(false)],
        now: at('2026-01-01T02:00:30Z'),
      }),
    );
    expect(again.create).to.deep.equal([]);
    expect(again.status.skippedRuns).to.equal(1);
    expect(again.events.map((e) => e.reason)).not.to.include('RunSkipped');
  });

  it('Forbid runs once the previous run is ready, and Allow runs regardless', function () {
    expect(atTwo({}, [previousRun(true)]).create).to.have.length(1);
    const allowed = atTwo({ concurrencyPolicy: 'Allow', readyDeadlineSeconds: 7200 });
    expect(allowed.create.map((s) => s.metadata.name)).to.deep.equal([
      scheduledName('data', '2026-01-01T02:00:00Z'),
    ]);
    expect(allowed.status.skippedRuns).to.equal(undefined);
  });

  it('Forbid does not skip a retry of the same run, nor a run-now run', function () {
    const t2 = '2026-01-01T02:00:00Z';
    const retry = planBackupPolicy(
      policyObservation(policy({}, { status: { lastScheduleTime: t1 } }), {
        snapshots: [volumeSnapshot(scheduledName('data', t2), { runTime: t2, ready: false })],
        now: at('2026-01-01T02:00:30Z'),
      }),
    );
    expect(retry.status.skippedRuns).to.equal(undefined);
    expect(retry.status.lastScheduleTime).to.equal(t2);
    const runNow = planBackupPolicy(
      policyObservation(
        policy(
          {},
          { annotations: { 'snapback.dev/run-now': 'x' }, status: { lastScheduleTime: t1 } },
        ),
        { snapshots: [previousRun(false)], now: at('2026-01-01T01:20:00Z') },
      ),
    );
    expect(runNow.create).to.have.length(1);
  });

  it('a snapshot not ready within readyDeadlineSeconds is reported failed and no longer holds runs back', function () {
    const spec = { readyDeadlineSeconds: 600, retention: { keepLast: 1 } };
    const older = volumeSnapshot('older', { runTime: '2026-01-01T00:00:00Z' });
    const waiting = planBackupPolicy(
      policyObservation(policy(spec, { status: { lastScheduleTime: t1 } }), {
        snapshots: [older, previousRun(false)],
        now: at('2026-01-01T01:05:00Z'),
      }),
    );
    expect(cond(waiting.status, 'Degraded')).to.include({ status: 'False' });
    // It looks again when the deadline passes, well before the next scheduled time.
    expect(waiting.requeueAfterMs).to.equal(5 * 60_000 + 1000);

    const late = planBackupPolicy(
      policyObservation(policy(spec, { status: waiting.status }), {
        snapshots: [older, previousRun(false)],
        now: at('2026-01-01T01:10:02Z'),
      }),
    );
    const degraded = cond(late.status, 'Degraded')!;
    expect(degraded).to.include({ status: 'True', reason: 'SnapshotTimedOut' });
    expect(degraded.message).to.contain(
      `snapshot ${scheduledName('data', t1)} of PVC data is not ready 600s after it was created (spec.readyDeadlineSeconds)`,
    );
    expect(degraded.message).to.contain(late.status.pvcs![0]!.message!);
    expect(degraded.message).to.contain('pruning of PVC data is paused');
    expect(late.events.map((e) => `${e.type} ${e.reason}`)).to.include('Warning SnapshotTimedOut');
    // Nothing is deleted: not the late snapshot, and not the older ready one either.
    expect(late.prune).to.deep.equal([]);
    // The next scheduled run goes ahead under Forbid.
    const next = planBackupPolicy(
      policyObservation(policy(spec, { status: late.status }), {
        snapshots: [older, previousRun(false)],
        now: at('2026-01-01T02:00:05Z'),
      }),
    );
    expect(next.create).to.have.length(1);
    expect(next.status.skippedRuns).to.equal(undefined);
  });
});

describe('BackupPolicy planning: consistency Group', function () {
  it('on a cluster without the group snapshot API takes and prunes nothing: Ready=False GroupSnapshotAPIUnavailable with an Event', function () {
    const p = policy({
      pvcNames: undefined,
      selector: { matchLabels: { app: 'db' } },
      consistency: 'Group',
      retention: { keepLast: 1 },
    });
    const plan = planBackupPolicy(
      policyObservation(p, {
        pvcs: [pvc('data', { labels: { app: 'db' } })],
        snapshots: ['01', '02'].map((h, i) =>
          volumeSnapshot(`s${i}`, { runTime: `2026-01-01T${h}:00:00Z` }),
        ),
        now: at('2026-01-01T04:00:05Z'),
      }),
    );
    expect(plan.create).to.deep.equal([]);
    expect(plan.prune).to.deep.equal([]);
    expect(plan.createGroups).to.deep.equal([]);
    expect(plan.pruneGroups).to.deep.equal([]);
    expect(plan.blockedBy).to.equal('GroupSnapshotAPIUnavailable');
    const ready = cond(plan.status, 'Ready');
    expect(ready).to.include({ status: 'False', reason: 'GroupSnapshotAPIUnavailable' });
    expect(ready!.message).to.contain('groupsnapshot.storage.k8s.io/v1');
    expect(plan.events.map((e) => `${e.type} ${e.reason}`)).to.deep.equal([
      'Warning GroupSnapshotAPIUnavailable',
    ]);
  });

  it('consistency Volume (the default) plans as before', function () {
    const plan = planBackupPolicy(
      policyObservation(policy({ consistency: 'Volume' }), { now: at('2026-01-01T01:00:07Z') }),
    );
    expect(plan.blockedBy).to.equal(undefined);
    expect(plan.create).to.have.length(1);
  });
});

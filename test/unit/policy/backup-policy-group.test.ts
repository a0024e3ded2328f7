import { expect } from 'chai';
import type {
  BackupPolicyStatus,
  VolumeGroupSnapshot,
  VolumeSnapshot,
} from '../../../src/api/index.js';
import { BackupPolicyStatusSchema, LABEL_POLICY } from '../../../src/api/index.js';
import { planBackupPolicy } from '../../../src/policy/backup-policy.js';
import { groupSnapshotName, ownedSnapshotClassName } from '../../../src/policy/naming.js';
import {
  NS,
  groupMember,
  groupObservation,
  groupSnapshotClass,
  policy,
  policyObservation,
  pv,
  pvc,
  restoreJob,
  volumeGroupSnapshot,
} from './fixtures.js';

const at = (s: string) => new Date(s);
const cond = (status: BackupPolicyStatus, type: string) =>
  status.conditions?.find((c) => c.type === type);
const scheduledGroup = (t: string) =>
  groupSnapshotName('nightly', { kind: 'scheduled', scheduledTime: at(t) });
const db = { labels: { app: 'db' } };
const PVCS = ['db-0', 'db-1', 'db-2'];

function groupPolicy(spec: Record<string, unknown> = {}, extra: Parameters<typeof policy>[1] = {}) {
  return policy(
    {
      pvcNames: undefined,
      selector: { matchLabels: { app: 'db' } },
      consistency: 'Group',
      ...spec,
    },
    extra,
  );
}

/** A group of the policy with one ready member per PVC. */
function groupWithMembers(
  name: string,
  runTime: string,
  opts: { ready?: boolean; error?: string; pvcs?: string[] } = {},
): { group: VolumeGroupSnapshot; members: VolumeSnapshot[] } {
  const group = volumeGroupSnapshot(name, {
    runTime,
    ready: opts.ready ?? true,
    ...(opts.error ? { error: opts.error } : {}),
  });
  const members = (opts.pvcs ?? PVCS).map((p) =>
    groupMember(name, p, { ready: opts.ready ?? true }),
  );
  return { group, members };
}

function observe(
  p: ReturnType<typeof groupPolicy>,
  parts: {
    pvcs?: ReturnType<typeof pvc>[];
    groups?: Array<{ group: VolumeGroupSnapshot; members: VolumeSnapshot[] }>;
    classes?: ReturnType<typeof groupSnapshotClass>[];
    now?: string;
    pvs?: ReturnType<typeof pv>[];
    restoreJobs?: ReturnType<typeof restoreJob>[];
  } = {},
) {
  const groups = parts.groups ?? [];
  return policyObservation(p, {
    pvcs: parts.pvcs ?? PVCS.map((n) => pvc(n, db)),
    now: at(parts.now ?? '2026-01-01T01:00:07Z'),
    ...(parts.pvs ? { pvs: parts.pvs } : {}),
    ...(parts.restoreJobs ? { restoreJobs: parts.restoreJobs } : {}),
    groupSnapshots: groupObservation({
      groups: groups.map((g) => g.group),
      members: groups.flatMap((g) => g.members),
      ...(parts.classes ? { classes: parts.classes } : {}),
    }),
  });
}

describe('BackupPolicy planning: consistency Group runs', function () {
  it('at the scheduled time creates one VolumeGroupSnapshot over the selector, labelled for the policy', function () {
    const plan = planBackupPolicy(observe(groupPolicy()));
    expect(plan.create).to.deep.equal([]);
    expect(plan.createGroups).to.have.length(1);
    const [group] = plan.createGroups;
    expect(group!.apiVersion).to.equal('groupsnapshot.storage.k8s.io/v1');
    expect(group!.kind).to.equal('VolumeGroupSnapshot');
    expect(group!.metadata.name).to.equal(scheduledGroup('2026-01-01T01:00:00Z'));
    expect(group!.metadata.namespace).to.equal(NS);
    expect(group!.metadata.labels).to.deep.equal({ [LABEL_POLICY]: 'nightly' });
    expect(group!.metadata.annotations).to.include({
      'snapback.dev/run-time': '2026-01-01T01:00:00Z',
      'snapback.dev/policy-name': 'nightly',
    });
    // No class named: the driver's default group class (the fixture has one).
    expect(group!.spec).to.deep.equal({ source: { selector: { matchLabels: { app: 'db' } } } });
    expect(plan.status.lastScheduleTime).to.equal('2026-01-01T01:00:00Z');
    expect(plan.events.map((e) => `${e.type} ${e.reason}`)).to.deep.equal(['Normal GroupCreated']);
    expect(plan.events[0]!.message).to.contain('db-0, db-1, db-2');
    expect(cond(plan.status, 'Ready')).to.include({ status: 'True', reason: 'Scheduled' });
    expect(cond(plan.status, 'Degraded')).to.include({ status: 'False' });
    expect(BackupPolicyStatusSchema.safeParse(plan.status).success).to.equal(true);
  });

  it('a run-now run names its group by the token and annotates it', function () {
    const p = groupPolicy({}, { annotations: { 'snapback.dev/run-now': 'first' } });
    const plan = planBackupPolicy(observe(p, { now: '2026-01-01T00:40:00Z' }));
    expect(plan.createGroups.map((g) => g.metadata.name)).to.deep.equal([
      groupSnapshotName('nightly', { kind: 'run-now', token: 'first', sequence: 1 }),
    ]);
    expect(plan.createGroups[0]!.metadata.annotations).to.include({
      'snapback.dev/run-now-token': 'first',
    });
    expect(plan.status.lastRunNowToken).to.equal('first');
  });

  it('names the class it was given, or the owned class made from the template', function () {
    const named = planBackupPolicy(
      observe(groupPolicy({ groupSnapshotClass: { name: 'fast-group' } }), {
        classes: [groupSnapshotClass('fast-group')],
      }),
    );
    expect(named.createGroups[0]!.spec.volumeGroupSnapshotClassName).to.equal('fast-group');
    expect(named.ownedGroupClass).to.equal(undefined);

    const templated = planBackupPolicy(
      observe(
        groupPolicy({
          groupSnapshotClass: {
            template: { driver: 'local.snapback.dev', parameters: { tier: 'fast' } },
          },
        }),
        { classes: [] },
      ),
    );
    const owned = templated.ownedGroupClass!;
    expect(owned.kind).to.equal('VolumeGroupSnapshotClass');
    expect(owned.metadata.name).to.equal(ownedSnapshotClassName(NS, 'nightly'));
    expect(owned.metadata.labels).to.deep.equal({
      [LABEL_POLICY]: 'nightly',
      'snapback.dev/policy-namespace': NS,
    });
    expect(owned.metadata.annotations).to.deep.equal({
      'snapback.dev/policy-name': `${NS}/nightly`,
    });
    expect(owned).to.include({ driver: 'local.snapback.dev', deletionPolicy: 'Delete' });
    expect(owned.parameters).to.deep.equal({ tier: 'fast' });
    expect(templated.createGroups[0]!.spec.volumeGroupSnapshotClassName).to.equal(
      owned.metadata.name,
    );
  });

  it('a retried run creates no second group', function () {
    const name = scheduledGroup('2026-01-01T01:00:00Z');
    const plan = planBackupPolicy(
      observe(groupPolicy(), {
        groups: [groupWithMembers(name, '2026-01-01T01:00:00Z', { ready: false })],
        now: '2026-01-01T01:00:30Z',
      }),
    );
    expect(plan.createGroups).to.deep.equal([]);
    expect(plan.status.lastScheduleTime).to.equal('2026-01-01T01:00:00Z');
  });

  it('takes no group while a selected PVC is not Bound, naming it (Degraded, an Event, pruning paused)', function () {
    const plan = planBackupPolicy(
      observe(groupPolicy({ retention: { keepLast: 1 } }), {
        pvcs: [pvc('db-0', db), pvc('db-1', { ...db, phase: 'Pending' }), pvc('db-2', db)],
        groups: [
          groupWithMembers('old-1', '2025-12-31T22:00:00Z'),
          groupWithMembers('old-2', '2025-12-31T23:00:00Z'),
        ],
      }),
    );
    expect(plan.createGroups).to.deep.equal([]);
    expect(plan.pruneGroups).to.deep.equal([]);
    const degraded = cond(plan.status, 'Degraded')!;
    expect(degraded).to.include({ status: 'True', reason: 'PVCNotBound' });
    expect(degraded.message).to.contain('PVC db-1 is Pending');
    expect(degraded.message).to.contain('pruning of the policy');
    const notTaken = plan.events.find((e) => e.reason === 'GroupNotTaken')!;
    expect(notTaken.type).to.equal('Warning');
    expect(notTaken.message).to.contain('no VolumeGroupSnapshot taken');
    expect(notTaken.message).to.contain('db-1');
    expect(cond(plan.status, 'Ready')!.message).to.contain('no group can be taken now');
    expect(plan.status.pvcs!.find((p) => p.pvcName === 'db-1')!.message).to.contain('Pending');
  });

  it('takes no group when the selector matches no PVC', function () {
    const plan = planBackupPolicy(observe(groupPolicy(), { pvcs: [pvc('web-0')] }));
    expect(plan.createGroups).to.deep.equal([]);
    expect(cond(plan.status, 'Ready')).to.include({ status: 'False', reason: 'NoPVCsSelected' });
    expect(plan.events.map((e) => e.reason)).to.include('GroupNotTaken');
  });

  it('a named group class that does not exist stops the policy: Ready=False GroupSnapshotClassNotFound', function () {
    const plan = planBackupPolicy(
      observe(
        groupPolicy({ groupSnapshotClass: { name: 'missing' }, retention: { keepLast: 1 } }),
        {
          groups: [
            groupWithMembers('old-1', '2025-12-31T22:00:00Z'),
            groupWithMembers('old-2', '2025-12-31T23:00:00Z'),
          ],
        },
      ),
    );
    expect(plan.blockedBy).to.equal('GroupSnapshotClassNotFound');
    expect(plan.createGroups).to.deep.equal([]);
    expect(plan.pruneGroups).to.deep.equal([]);
    const ready = cond(plan.status, 'Ready')!;
    expect(ready).to.include({ status: 'False', reason: 'GroupSnapshotClassNotFound' });
    expect(ready.message).to.contain('VolumeGroupSnapshotClass missing not found');
    expect(plan.events.map((e) => e.reason)).to.deep.equal(['GroupSnapshotClassNotFound']);
  });

  it('an owned class name taken by a class of someone else stops the policy', function () {
    const plan = planBackupPolicy(
      observe(groupPolicy({ groupSnapshotClass: { template: { driver: 'local.snapback.dev' } } }), {
        classes: [groupSnapshotClass(ownedSnapshotClassName(NS, 'nightly'))],
      }),
    );
    expect(plan.blockedBy).to.equal('GroupSnapshotClassConflict');
    expect(plan.ownedGroupClass).to.equal(undefined);
  });

  it('without a class and without a default group class for the driver, says so and takes nothing', function () {
    const plan = planBackupPolicy(
      observe(groupPolicy(), { classes: [groupSnapshotClass('plain')] }),
    );
    expect(plan.createGroups).to.deep.equal([]);
    const degraded = cond(plan.status, 'Degraded')!;
    expect(degraded).to.include({ status: 'True', reason: 'NoDefaultGroupSnapshotClass' });
    expect(degraded.message).to.contain(
      'no VolumeGroupSnapshotClass for driver local.snapback.dev is marked default',
    );
    expect(plan.events.find((e) => e.reason === 'GroupNotTaken')!.message).to.contain(
      'marked default',
    );
  });

  it('a template class of another driver than the PVCs: DriverMismatch, no group', function () {
    const plan = planBackupPolicy(
      observe(groupPolicy({ groupSnapshotClass: { template: { driver: 'other.csi.example' } } }), {
        classes: [],
      }),
    );
    expect(plan.createGroups).to.deep.equal([]);
    expect(cond(plan.status, 'Degraded')).to.include({ reason: 'DriverMismatch' });
  });

  it('PVCs of two drivers cannot be one group: MixedDrivers', function () {
    const plan = planBackupPolicy(
      observe(groupPolicy(), {
        pvs: [pv('pv-db-0'), pv('pv-db-1'), pv('pv-db-2', 'other.csi.example')],
      }),
    );
    expect(plan.createGroups).to.deep.equal([]);
    const degraded = cond(plan.status, 'Degraded')!;
    expect(degraded.reason).to.equal('MixedDrivers');
    expect(degraded.message).to.contain('other.csi.example (db-2)');
  });

  it('hooks with consistency Group are refused with a clear condition', function () {
    const p = groupPolicy({
      hooks: { pre: [{ container: 'db', command: ['sync'] }] },
    });
    const plan = planBackupPolicy({ ...observe(p), hooksEnabled: true });
    expect(plan.blockedBy).to.equal('HooksWithGroup');
    expect(plan.createGroups).to.deep.equal([]);
  });

  it('Forbid skips a scheduled run while a group of an earlier run is not ready, and counts it', function () {
    const plan = planBackupPolicy(
      observe(groupPolicy(), {
        groups: [groupWithMembers('earlier', '2026-01-01T00:59:00Z', { ready: false })],
        now: '2026-01-01T01:00:07Z',
      }),
    );
    expect(plan.createGroups).to.deep.equal([]);
    expect(plan.status.skippedRuns).to.equal(1);
    const skipped = plan.events.find((e) => e.reason === 'RunSkipped')!;
    expect(skipped.message).to.contain('VolumeGroupSnapshot earlier');
  });
});

describe('BackupPolicy planning: consistency Group status and Events', function () {
  it('counts ready groups and the members of the newest, with a GroupReady Event once', function () {
    const groups = [
      groupWithMembers('g1', '2026-01-01T00:00:00Z'),
      groupWithMembers('g2', '2026-01-01T00:20:00Z'),
    ];
    const p = groupPolicy();
    const plan = planBackupPolicy(observe(p, { groups, now: '2026-01-01T00:30:00Z' }));
    expect(plan.status).to.include({
      readyGroups: 2,
      totalGroups: 2,
      readyOverTotalGroups: '2/2',
      readySnapshots: 6,
      totalSnapshots: 6,
      readyOverTotal: '6/6',
      lastSuccessfulTime: '2026-01-01T00:20:00Z',
    });
    expect(plan.status.lastGroup).to.deep.equal({
      name: 'g2',
      runTime: '2026-01-01T00:20:00Z',
      readyToUse: true,
      members: 3,
      readyMembers: 3,
      readyOverTotal: '3/3',
    });
    expect(
      plan.status.pvcs!.map((x) => [x.pvcName, x.readySnapshots, x.lastSnapshotName]),
    ).to.deep.equal([
      ['db-0', 2, 'snapshot-g2-db-0'],
      ['db-1', 2, 'snapshot-g2-db-1'],
      ['db-2', 2, 'snapshot-g2-db-2'],
    ]);
    const ready = plan.events.filter((e) => e.reason === 'GroupReady');
    expect(ready).to.have.length(1);
    expect(ready[0]!.message).to.contain('VolumeGroupSnapshot g2 is ready: 3 member snapshot(s)');
    expect(BackupPolicyStatusSchema.safeParse(plan.status).success).to.equal(true);

    // Written, then planned again: no second GroupReady.
    const again = planBackupPolicy(
      observe(groupPolicy({}, { status: plan.status }), { groups, now: '2026-01-01T00:31:00Z' }),
    );
    expect(again.events.map((e) => e.reason)).to.not.include('GroupReady');
  });

  it('a group that reports an error surfaces its message: Degraded GroupFailed, one Event', function () {
    const groups = [
      groupWithMembers('g1', '2026-01-01T00:20:00Z', {
        ready: false,
        error: 'driver local.snapback.dev does not support group snapshots',
        pvcs: [],
      }),
    ];
    const plan = planBackupPolicy(observe(groupPolicy(), { groups, now: '2026-01-01T00:30:00Z' }));
    const degraded = cond(plan.status, 'Degraded')!;
    expect(degraded).to.include({ status: 'True', reason: 'GroupFailed' });
    expect(degraded.message).to.contain('does not support group snapshots');
    expect(plan.status.lastGroup).to.include({ name: 'g1', readyToUse: false, members: 0 });
    expect(plan.events.filter((e) => e.reason === 'GroupFailed')).to.have.length(1);
    expect(plan.newlyFailedSnapshots).to.equal(1);
    const again = planBackupPolicy(
      observe(groupPolicy({}, { status: plan.status }), { groups, now: '2026-01-01T00:31:00Z' }),
    );
    expect(again.events.map((e) => e.reason)).to.not.include('GroupFailed');
    expect(cond(again.status, 'Degraded')).to.include({ reason: 'GroupFailed' });
  });

  it('a group not ready within readyDeadlineSeconds is reported timed out', function () {
    const groups = [groupWithMembers('slow', '2026-01-01T00:00:00Z', { ready: false })];
    const plan = planBackupPolicy(
      observe(groupPolicy({ readyDeadlineSeconds: 600 }), { groups, now: '2026-01-01T00:30:00Z' }),
    );
    expect(cond(plan.status, 'Degraded')).to.include({ reason: 'GroupTimedOut' });
    expect(plan.status.lastGroup!.message).to.contain('0 of 3 member(s) ready');
  });
});

describe('BackupPolicy planning: consistency Group retention', function () {
  const hourly = (n: number) =>
    Array.from({ length: n }, (_, i) => groupWithMembers(`g${i}`, `2026-01-01T0${i}:00:00Z`));

  it('keepLast counts groups and prunes whole groups, naming their members', function () {
    const plan = planBackupPolicy(
      observe(groupPolicy({ retention: { keepLast: 1 } }), {
        groups: hourly(3),
        now: '2026-01-01T02:30:00Z',
      }),
    );
    expect(plan.prune).to.deep.equal([]);
    expect(plan.pruneGroups.map((g) => g.name)).to.deep.equal(['g0', 'g1']);
    expect(plan.pruneGroups[0]!.members).to.deep.equal([
      'snapshot-g0-db-0',
      'snapshot-g0-db-1',
      'snapshot-g0-db-2',
    ]);
    expect(plan.pruneGroups[0]!.message).to.contain('keepLast 1');
  });

  it('never prunes a group that is not ready, and pauses while the newest group failed', function () {
    const groups = [
      ...hourly(2),
      groupWithMembers('broken', '2026-01-01T02:00:00Z', { ready: false, error: 'boom' }),
    ];
    const plan = planBackupPolicy(
      observe(groupPolicy({ retention: { keepLast: 1 } }), { groups, now: '2026-01-01T02:30:00Z' }),
    );
    expect(plan.pruneGroups).to.deep.equal([]);
    expect(cond(plan.status, 'Degraded')!.message).to.contain('pruning of the policy');
  });

  it('keeps minReady ready groups and the groups a restore uses a member of', function () {
    const inUse = hourly(3);
    const job = restoreJob({ source: { volumeSnapshotName: 'snapshot-g0-db-1' } } as never);
    const plan = planBackupPolicy(
      observe(groupPolicy({ retention: { keepLast: 1, minReady: 2 } }), {
        groups: inUse,
        restoreJobs: [job],
        now: '2026-01-01T02:30:00Z',
      }),
    );
    expect(plan.pruneGroups).to.deep.equal([]);
  });

  it('maxAge and GFS count groups by their run time', function () {
    const plan = planBackupPolicy(
      observe(groupPolicy({ retention: { maxAge: '90m' } }), {
        groups: hourly(3),
        now: '2026-01-01T02:30:00Z',
      }),
    );
    expect(plan.pruneGroups.map((g) => g.name)).to.deep.equal(['g0']);
  });

  it('a member PVC deleted from the cluster: a condition naming it, the newest ready group holding it is kept whole', function () {
    const groups = [
      groupWithMembers('g0', '2026-01-01T00:00:00Z'),
      groupWithMembers('g1', '2026-01-01T01:00:00Z'),
      groupWithMembers('g2', '2026-01-01T02:00:00Z', { pvcs: ['db-0', 'db-1'] }),
    ];
    const plan = planBackupPolicy(
      observe(groupPolicy({ retention: { keepLast: 1 } }), {
        pvcs: [pvc('db-0', db), pvc('db-1', db)],
        groups,
        now: '2026-01-01T02:30:00Z',
      }),
    );
    // g2 is the newest; g1 is the newest ready group holding db-2; g0 goes.
    expect(plan.pruneGroups.map((g) => g.name)).to.deep.equal(['g0']);
    const degraded = cond(plan.status, 'Degraded')!;
    expect(degraded).to.include({ status: 'True', reason: 'MemberPVCDeleted' });
    expect(degraded.message).to.contain('PVC db-2 (held by VolumeGroupSnapshot g1, kept whole)');
    // The next run takes the two PVCs the selector still selects.
    expect(cond(plan.status, 'Ready')).to.include({ status: 'True' });
  });

  it('with no rules prunes nothing', function () {
    const plan = planBackupPolicy(
      observe(groupPolicy(), { groups: hourly(3), now: '2026-01-01T02:30:00Z' }),
    );
    expect(plan.pruneGroups).to.deep.equal([]);
  });
});

import { expect } from 'chai';
import type {
  RestoreJobStatus,
  VolumeGroupSnapshot,
  VolumeGroupSnapshotContent,
  VolumeSnapshot,
} from '../../../src/api/index.js';
import {
  ANNOTATION_RESTORED_FROM,
  LABEL_RESTORE_JOB,
  RestoreJobStatusSchema,
  restoreSourceSummary,
} from '../../../src/api/index.js';
import type { Pvc } from '../../../src/policy/objects.js';
import type { RestoreJobObservation } from '../../../src/policy/restore-job.js';
import { planRestoreJob, staleRestoreHolds } from '../../../src/policy/restore-job.js';
import {
  groupPolicy,
  policy,
  pvc,
  restorableGroup,
  restorableGroupContent,
  restorableMember,
  restoreJob,
  restoreObservation,
  volumeSnapshot,
} from './fixtures.js';

const PVCS = ['db-0', 'db-1', 'db-2'];

const ready = (status: RestoreJobStatus | undefined) =>
  status?.conditions?.find((c) => c.type === 'Ready');

/** A RestoreJob of every member (no pvcName) or of one, with the given target. */
function groupJob(
  target: Record<string, unknown> = { pvcNameSuffix: '-restored' },
  source: Record<string, unknown> = {},
  extra: Parameters<typeof restoreJob>[1] = {},
) {
  return restoreJob(
    { source: { backupPolicy: { name: 'nightly', at: 'latest', ...source } }, target } as never,
    extra,
  );
}

interface Stored {
  groups: VolumeGroupSnapshot[];
  contents: VolumeGroupSnapshotContent[];
  members: VolumeSnapshot[];
}

/** Groups of the policy, each with a member per PVC of PVCS and its content. */
function stored(...groups: VolumeGroupSnapshot[]): Stored {
  return {
    groups,
    contents: groups.map((g) => restorableGroupContent(g, PVCS.length)),
    members: groups.flatMap((g) => PVCS.map((name) => restorableMember(g, name))),
  };
}

function observe(
  job: ReturnType<typeof groupJob>,
  { groups, contents, members }: Stored,
  parts: Partial<Omit<RestoreJobObservation, 'job' | 'content' | 'groups'>> = {},
): RestoreJobObservation {
  return restoreObservation(job, {
    policies: [groupPolicy()],
    pvcs: PVCS.map((name) => pvc(name, { size: '2Gi', labels: { app: 'db' } })),
    ...parts,
    snapshots: [...members, ...(parts.snapshots ?? [])],
    groups: {
      snapshots: groups,
      content: (name) => contents.find((c) => c.metadata.name === name),
    },
  });
}

/** The PVC as the API server holds it once the planner created it, in a given phase. */
const asCreated = (created: Pvc, phase: string): Pvc => ({ ...created, status: { phase } });

describe('RestoreJob from a Group policy: every member of the chosen group', function () {
  it('creates one PVC per member, <source pvc><suffix>, from its member, in one reconcile', function () {
    const plan = planRestoreJob(observe(groupJob(), stored(restorableGroup('g1'))));

    expect(plan.status?.phase).to.equal('Restoring');
    expect(plan.createPvcs?.map((p) => p.metadata.name)).to.deep.equal([
      'db-0-restored',
      'db-1-restored',
      'db-2-restored',
    ]);
    for (const [i, created] of (plan.createPvcs ?? []).entries()) {
      expect(created.spec?.dataSource).to.deep.equal({
        apiGroup: 'snapshot.storage.k8s.io',
        kind: 'VolumeSnapshot',
        name: `g1-db-${i}`,
      });
      // sized, classed and linked as the single path does: the source PVC's 2Gi over 1Gi
      expect(created.spec?.resources?.requests?.storage).to.equal('2Gi');
      expect(created.spec?.storageClassName).to.equal('local');
      expect(created.metadata.labels?.[LABEL_RESTORE_JOB]).to.equal('restore-1');
      expect(created.metadata.annotations?.[ANNOTATION_RESTORED_FROM]).to.equal(`g1-db-${i}`);
      expect(created.metadata.ownerReferences).to.equal(undefined);
    }
    expect(plan.status?.volumeGroupSnapshotName).to.equal('g1');
    expect(plan.status?.pvcs).to.deep.equal(
      PVCS.map((name) => ({
        name: `${name}-restored`,
        sourcePvc: name,
        snapshotName: `g1-${name}`,
        phase: 'Provisioning',
      })),
    );
    expect(plan.status?.pvcName).to.equal(undefined);
    expect(plan.status?.snapshotName).to.equal(undefined);
    expect(plan.status?.source).to.equal('policy/nightly group at latest');
    expect(plan.status?.target, 'the TARGET column').to.equal('<pvc>-restored');
    expect(plan.events.map((e) => e.reason)).to.deep.equal(['RestoreStarted']);
    expect(RestoreJobStatusSchema.safeParse(plan.status).success).to.equal(true);
  });

  it('holds the members it restores from until the job ends (retention keeps their group)', function () {
    const groups = stored(restorableGroup('g1'));
    const plan = planRestoreJob(observe(groupJob(), groups));
    expect(plan.holdMembers?.map((m) => m.metadata.name)).to.deep.equal(
      PVCS.map((name) => `g1-${name}`),
    );
    expect(plan.holdFinalizer).to.equal('restorejob.snapback.dev/job-uid');
    expect(plan.hold).to.equal(undefined);

    const held = groups.members.map((m) => ({
      ...m,
      metadata: { ...m.metadata, finalizers: [plan.holdFinalizer!] },
    }));
    expect(planRestoreJob(observe(groupJob(), { ...groups, members: held })).holdMembers).to.equal(
      undefined,
    );
    const finished = groupJob(undefined, undefined, { status: { phase: 'Succeeded' } });
    expect(staleRestoreHolds(held, [finished]).map((h) => h.finalizers)).to.deep.equal([
      [],
      [],
      [],
    ]);
  });

  it('at: latest takes the newest ready group; at: a time the newest ready at or before it', function () {
    const groups = stored(
      restorableGroup('g1', { time: '2026-01-01T01:00:00Z' }),
      restorableGroup('g2', { time: '2026-01-01T02:00:00Z' }),
      restorableGroup('g3', { time: '2026-01-01T03:00:00Z', ready: false }),
    );
    expect(planRestoreJob(observe(groupJob(), groups)).status?.volumeGroupSnapshotName).to.equal(
      'g2',
    );
    const at = groupJob(undefined, { at: '2026-01-01T01:30:00Z' });
    expect(planRestoreJob(observe(at, groups)).status?.volumeGroupSnapshotName).to.equal('g1');
    const before = groupJob(undefined, { at: '2026-01-01T00:30:00Z' });
    const none = planRestoreJob(observe(before, groups));
    expect(none.status?.phase).to.equal('Failed');
    expect(ready(none.status)?.reason).to.equal('NoSnapshotBefore');
    expect(none.status?.message).to.include('the oldest ready one is from 2026-01-01T01:00:00Z');
  });

  it('ignores groups of other policies and keeps the group first chosen', function () {
    const groups = stored(
      restorableGroup('g1', { time: '2026-01-01T01:00:00Z' }),
      restorableGroup('other', { time: '2026-01-01T05:00:00Z', policy: 'weekly' }),
      restorableGroup('g9', { time: '2026-01-01T09:00:00Z' }),
    );
    const chosen = groupJob(undefined, undefined, {
      status: { phase: 'Pending', volumeGroupSnapshotName: 'g1' },
    });
    expect(planRestoreJob(observe(chosen, groups)).status?.volumeGroupSnapshotName).to.equal('g1');
    expect(planRestoreJob(observe(groupJob(), groups)).status?.volumeGroupSnapshotName).to.equal(
      'g9',
    );
  });

  it('waits (Pending) while the only group is not ready, then fails at the pending deadline', function () {
    const groups = stored(restorableGroup('g1', { ready: false }));
    const waiting = planRestoreJob(observe(groupJob(), groups));
    expect(waiting.status?.phase).to.equal('Pending');
    expect(ready(waiting.status)?.reason).to.equal('SnapshotNotReady');
    expect(waiting.createPvcs).to.equal(undefined);
    expect(waiting.requeueAfterMs).to.be.a('number');

    const late = planRestoreJob(
      observe(groupJob(), groups, { now: new Date('2026-01-01T13:00:01Z') }),
    );
    expect(late.status?.phase).to.equal('Failed');
    expect(late.status?.message).to.include('spec.pendingDeadlineSeconds');
  });

  it('waits until every member the group content reports is seen, creating none before', function () {
    const groups = stored(restorableGroup('g1'));
    const plan = planRestoreJob(
      observe(groupJob(), { ...groups, members: groups.members.slice(1) }),
    );
    expect(plan.status?.phase).to.equal('Pending');
    expect(ready(plan.status)?.reason).to.equal('MembersNotFound');
    expect(plan.status?.message).to.include('2 of 3 seen');
    expect(plan.createPvcs).to.equal(undefined);
    expect(plan.requeueAfterMs).to.be.a('number');
  });

  it('is Restoring while some targets are not Bound, and Succeeded once all are', function () {
    const groups = stored(restorableGroup('g1'));
    const first = planRestoreJob(observe(groupJob(), groups));
    const created = first.createPvcs!;
    const restoring = groupJob(undefined, undefined, { status: first.status! });

    const partly = planRestoreJob(
      observe(restoring, groups, {
        pvcs: [
          asCreated(created[0]!, 'Bound'),
          asCreated(created[1]!, 'Pending'),
          asCreated(created[2]!, 'Bound'),
        ],
      }),
    );
    expect(partly.status?.phase).to.equal('Restoring');
    expect(partly.createPvcs).to.equal(undefined);
    expect(partly.status?.message).to.include('db-1-restored').and.include('2 of 3 Bound');
    expect(partly.status?.pvcs?.map((p) => p.phase)).to.deep.equal([
      'Bound',
      'Provisioning',
      'Bound',
    ]);
    expect(partly.events).to.deep.equal([]);

    const done = planRestoreJob(
      observe(groupJob(undefined, undefined, { status: partly.status! }), groups, {
        pvcs: created.map((c) => asCreated(c, 'Bound')),
      }),
    );
    expect(done.status?.phase).to.equal('Succeeded');
    expect(ready(done.status)?.status).to.equal('True');
    expect(done.status?.pvcs?.every((p) => p.phase === 'Bound')).to.equal(true);
    expect(done.events.map((e) => e.reason)).to.deep.equal(['RestoreSucceeded']);
  });

  it('creates the targets still missing when an earlier reconcile created only some', function () {
    const groups = stored(restorableGroup('g1'));
    const created = planRestoreJob(observe(groupJob(), groups)).createPvcs!;
    const plan = planRestoreJob(
      observe(groupJob(), groups, { pvcs: [asCreated(created[0]!, 'Pending')] }),
    );
    expect(plan.createPvcs?.map((p) => p.metadata.name)).to.deep.equal([
      'db-1-restored',
      'db-2-restored',
    ]);
  });

  it('fails when a target is deleted before it is Bound', function () {
    const groups = stored(restorableGroup('g1'));
    const first = planRestoreJob(observe(groupJob(), groups));
    const created = first.createPvcs!;
    const plan = planRestoreJob(
      observe(groupJob(undefined, undefined, { status: first.status! }), groups, {
        pvcs: [asCreated(created[0]!, 'Bound'), asCreated(created[2]!, 'Bound')],
      }),
    );
    expect(plan.status?.phase).to.equal('Failed');
    expect(ready(plan.status)?.reason).to.equal('TargetDeleted');
    expect(plan.status?.message).to.include('db-1-restored');
  });

  it('fails when a target PVC is lost', function () {
    const groups = stored(restorableGroup('g1'));
    const first = planRestoreJob(observe(groupJob(), groups));
    const created = first.createPvcs!;
    const plan = planRestoreJob(
      observe(groupJob(undefined, undefined, { status: first.status! }), groups, {
        pvcs: [
          asCreated(created[0]!, 'Bound'),
          asCreated(created[1]!, 'Lost'),
          asCreated(created[2]!, 'Bound'),
        ],
      }),
    );
    expect(plan.status?.phase).to.equal('Failed');
    expect(ready(plan.status)?.reason).to.equal('VolumeLost');
  });
});

describe('RestoreJob from a Group policy: one member', function () {
  it('restores the member of source.backupPolicy.pvcName into target.pvcName', function () {
    const job = groupJob({ pvcName: 'only-db-1' }, { pvcName: 'db-1' });
    const plan = planRestoreJob(observe(job, stored(restorableGroup('g1'))));
    expect(plan.createPvcs?.map((p) => [p.metadata.name, p.spec?.dataSource?.name])).to.deep.equal([
      ['only-db-1', 'g1-db-1'],
    ]);
    expect(plan.status?.pvcName).to.equal('only-db-1');
    expect(plan.status?.snapshotName).to.equal('g1-db-1');
    expect(plan.status?.volumeGroupSnapshotName).to.equal('g1');
    expect(plan.status?.source).to.equal('policy/nightly pvc/db-1 at latest');
    expect(plan.status?.target, 'the TARGET column').to.equal('only-db-1');
    expect(plan.holdMembers?.map((m) => m.metadata.name)).to.deep.equal(['g1-db-1']);
  });

  it('restores it into <pvcName><suffix> with target.pvcNameSuffix', function () {
    const job = groupJob({ pvcNameSuffix: '-copy' }, { pvcName: 'db-2' });
    const plan = planRestoreJob(observe(job, stored(restorableGroup('g1'))));
    expect(plan.createPvcs?.map((p) => p.metadata.name)).to.deep.equal(['db-2-copy']);
    expect(plan.status?.pvcs?.map((p) => p.name)).to.deep.equal(['db-2-copy']);
  });

  it('succeeds once that one PVC is Bound', function () {
    const job = groupJob({ pvcName: 'only-db-1' }, { pvcName: 'db-1' });
    const groups = stored(restorableGroup('g1'));
    const first = planRestoreJob(observe(job, groups));
    const done = planRestoreJob(
      observe(
        groupJob({ pvcName: 'only-db-1' }, { pvcName: 'db-1' }, { status: first.status! }),
        groups,
        {
          pvcs: [asCreated(first.createPvcs![0]!, 'Bound')],
        },
      ),
    );
    expect(done.status?.phase).to.equal('Succeeded');
    expect(done.status?.pvcName).to.equal('only-db-1');
  });

  it('names its one PVC and snapshot in status when the whole group is one member', function () {
    const group = restorableGroup('g1');
    const plan = planRestoreJob(
      observe(groupJob(), {
        groups: [group],
        contents: [restorableGroupContent(group, 1)],
        members: [restorableMember(group, 'db-0')],
      }),
    );
    expect(plan.createPvcs?.map((p) => p.metadata.name)).to.deep.equal(['db-0-restored']);
    expect(plan.status?.pvcName).to.equal('db-0-restored');
    expect(plan.status?.snapshotName).to.equal('g1-db-0');
  });

  it('fails naming the members when the group has none of that PVC', function () {
    const job = groupJob({ pvcName: 'x' }, { pvcName: 'web' });
    const plan = planRestoreJob(observe(job, stored(restorableGroup('g1'))));
    expect(plan.status?.phase).to.equal('Failed');
    expect(ready(plan.status)?.reason).to.equal('MemberNotFound');
    expect(plan.status?.message).to.include('no member of PVC web').and.include('db-0, db-1, db-2');
    expect(plan.createPvcs).to.equal(undefined);
  });
});

describe('RestoreJob from a Group policy: nothing is overwritten, bad input fails clearly', function () {
  it('fails when one target exists and is not its own, creating none of the others', function () {
    const groups = stored(restorableGroup('g1'));
    const foreign = pvc('db-1-restored');
    const plan = planRestoreJob(
      observe(groupJob(), groups, {
        pvcs: [...PVCS.map((name) => pvc(name, { labels: { app: 'db' } })), foreign],
      }),
    );
    expect(plan.status?.phase).to.equal('Failed');
    expect(ready(plan.status)?.reason).to.equal('TargetExists');
    expect(plan.status?.message)
      .to.include('PVC db-1-restored already exists')
      .and.include('none of the 3 target PVCs is created');
    expect(plan.createPvcs).to.equal(undefined);
    expect(plan.events.map((e) => [e.type, e.reason])).to.deep.equal([['Warning', 'TargetExists']]);
  });

  const cases: Array<{
    title: string;
    observed: () => RestoreJobObservation;
    reason: string;
    message: string;
  }> = [
    {
      title: 'a Volume policy without pvcName',
      observed: () =>
        observe(groupJob(), stored(restorableGroup('g1')), { policies: [policy({})] }),
      reason: 'PvcNameRequired',
      message: 'has consistency Volume',
    },
    {
      title: 'target.pvcName without source pvcName (past the API)',
      observed: () => observe(groupJob({ pvcName: 'all' }), stored(restorableGroup('g1'))),
      reason: 'InvalidSpec',
      message: 'set target.pvcNameSuffix',
    },
    {
      title: 'a policy with no group',
      observed: () => observe(groupJob(), stored()),
      reason: 'NoSnapshots',
      message: 'BackupPolicy nightly has no VolumeGroupSnapshot',
    },
    {
      title: 'a cluster without the group snapshot API',
      observed: () =>
        restoreObservation(groupJob(), { policies: [groupPolicy()], pvcs: [pvc('db-0')] }),
      reason: 'GroupSnapshotsUnavailable',
      message: 'groupsnapshot.storage.k8s.io/v1',
    },
    {
      title: 'a chosen group that is gone',
      observed: () =>
        observe(
          groupJob(undefined, undefined, {
            status: { phase: 'Pending', volumeGroupSnapshotName: 'gone' },
          }),
          stored(restorableGroup('g1')),
        ),
      reason: 'GroupNotFound',
      message: 'VolumeGroupSnapshot gone',
    },
    {
      title: 'a chosen group being deleted',
      observed: () =>
        observe(
          groupJob(undefined, undefined, {
            status: { phase: 'Pending', volumeGroupSnapshotName: 'g1' },
          }),
          stored(restorableGroup('g1', { deleting: true })),
        ),
      reason: 'SnapshotDeleting',
      message: 'VolumeGroupSnapshot g1 is being deleted',
    },
    {
      title: 'a target name longer than a PVC name may be',
      observed: () =>
        observe(groupJob({ pvcNameSuffix: `-${'r'.repeat(62)}` }), {
          ...stored(restorableGroup('g1')),
          members: PVCS.map((name) =>
            restorableMember(restorableGroup('g1'), `${name}-${'x'.repeat(200)}`),
          ),
        }),
      reason: 'TargetNameTooLong',
      message: 'choose a shorter suffix',
    },
  ];
  for (const c of cases) {
    it(`fails on ${c.title}`, function () {
      const plan = planRestoreJob(c.observed());
      expect(plan.status?.phase).to.equal('Failed');
      expect(ready(plan.status)?.reason).to.equal(c.reason);
      expect(plan.status?.message).to.include(c.message);
      expect(plan.createPvcs).to.equal(undefined);
      expect(plan.events.map((e) => e.type)).to.deep.equal(['Warning']);
    });
  }
});

describe('RestoreJob from a Volume policy keeps its one-PVC path', function () {
  it('restores <pvcName><suffix> from the newest snapshot of that PVC', function () {
    const job = restoreJob({
      source: { backupPolicy: { name: 'nightly', pvcName: 'data' } },
      target: { pvcNameSuffix: '-restored' },
    });
    const plan = planRestoreJob(
      restoreObservation(job, {
        policies: [policy({})],
        snapshots: [volumeSnapshot('s1')],
        pvcs: [pvc('data')],
      }),
    );
    expect(plan.createPvcs?.map((p) => [p.metadata.name, p.spec?.dataSource?.name])).to.deep.equal([
      ['data-restored', 's1'],
    ]);
    expect(plan.status?.pvcName).to.equal('data-restored');
    expect(plan.status?.volumeGroupSnapshotName).to.equal(undefined);
  });

  it('sums up a group source in one line for the SOURCE column', function () {
    expect(
      restoreSourceSummary({ backupPolicy: { name: 'db', at: '2026-01-01T00:00:00Z' } }),
    ).to.equal('policy/db group at 2026-01-01T00:00:00Z');
  });
});

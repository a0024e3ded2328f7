import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type {
  BackupPolicy,
  BackupPolicySpecInput,
  Verification,
  VolumeSnapshot,
} from '../../../src/api/index.js';
import { BackupPolicySpecSchema, LABEL_VERIFY } from '../../../src/api/index.js';
import { planVerify, withVerifyStatus, type VerifyPlan } from '../../../src/policy/verify.js';
import { BUILT_IN_CHECK, checkScript } from '../../../src/policy/verify-objects.js';
import type { DrillObjects, Job, PodEvent } from '../../../src/policy/verify-objects.js';
import type { Pod } from '../../../src/policy/hooks.js';
import {
  groupMember,
  groupObservation,
  policy,
  pvc,
  volumeGroupSnapshot,
  volumeSnapshot,
} from './fixtures.js';

const IMAGE = 'registry.local/snapback:test';
const VERIFY = { schedule: '0 4 * * *', timeoutSeconds: 600 };
const NOW = new Date('2026-01-02T12:00:00Z');

function verifyPolicy(
  spec: Partial<BackupPolicySpecInput> = {},
  extra: Parameters<typeof policy>[1] = {},
): BackupPolicy {
  return policy({ verify: VERIFY, ...spec } as Partial<BackupPolicySpecInput>, extra);
}

function plan(
  p: BackupPolicy,
  opts: {
    snapshots?: VolumeSnapshot[];
    now?: Date;
    image?: string | null;
    drill?: DrillObjects;
    groups?: ReturnType<typeof groupObservation>;
  } = {},
): VerifyPlan {
  return planVerify({
    policy: p,
    spec: BackupPolicySpecSchema.parse(p.spec),
    snapshots: opts.snapshots ?? [
      volumeSnapshot('old', { runTime: '2026-01-01T10:00:00Z' }),
      volumeSnapshot('new', { runTime: '2026-01-02T10:00:00Z' }),
      volumeSnapshot('newest-not-ready', { runTime: '2026-01-02T11:00:00Z', ready: false }),
    ],
    groupSnapshots: opts.groups,
    pvcs: [pvc('data', { storageClassName: 'fast', size: '2Gi' })],
    now: opts.now ?? NOW,
    image: opts.image === null ? undefined : (opts.image ?? IMAGE),
    drill: opts.drill,
  });
}

const verifyNow = (token: string, status?: BackupPolicy['status']) =>
  verifyPolicy(
    {},
    { annotations: { 'snapback.dev/verify-now': token }, ...(status ? { status } : {}) },
  );

/** The policy after the plan's status was written. */
function written(p: BackupPolicy, result: VerifyPlan): BackupPolicy {
  return { ...p, status: withVerifyStatus(p.status ?? {}, result.status) };
}

function job(conditions: Array<{ type: string; reason?: string }>): Job {
  return {
    metadata: { name: 'j', labels: { [LABEL_VERIFY]: 'nightly' } },
    status: { conditions: conditions.map((c) => ({ ...c, status: 'True' })) },
  } as Job;
}

function terminatedPod(exitCode: number, message: string): Pod {
  return {
    metadata: { name: 'p' },
    status: {
      containerStatuses: [
        {
          name: 'verify',
          image: IMAGE,
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode, message } },
        },
      ],
    },
  } as Pod;
}

function running(v: Verification, objects: Partial<DrillObjects>): DrillObjects {
  return { pods: [], events: [], pvcs: [...v.pvcs], job: job([]), ...objects };
}

describe('restore drills (planVerify)', () => {
  describe('when a drill is due', () => {
    it('starts one on a new verify-now token, from the newest ready snapshot', () => {
      const result = plan(verifyNow('t1'));
      const v = result.status.verification!;
      expect(v.trigger).to.equal('verify-now t1');
      expect(v.snapshotName).to.equal('new');
      expect(v.snapshots).to.deep.equal(['new']);
      expect(v.sourcePvcs).to.deep.equal(['data']);
      expect(v.pvcs[0]).to.match(/^nightly-verify-[0-9a-f]+-0$/);
      expect(result.status.lastVerifyNowToken).to.equal('t1');
      expect(result.recordFirst).to.equal(true);
      const [scratch] = result.create.pvcs;
      expect(scratch!.metadata.name).to.equal(v.pvcs[0]);
      expect(scratch!.spec!.dataSource!.name).to.equal('new');
      expect(scratch!.spec!.storageClassName).to.equal('fast');
      expect(scratch!.spec!.resources!.requests!['storage']).to.equal('1Gi');
      expect(scratch!.metadata.labels).to.include({ 'snapback.dev/policy': 'nightly' });
      expect(result.events.map((e) => e.reason)).to.deep.equal(['VerificationStarted']);
    });

    it('mounts the scratch volume read-only in a Job with no retries and the timeout as its deadline', () => {
      const result = plan(
        verifyPolicy(
          { verify: { ...VERIFY, command: ['sh', '-c', 'test -f /data/data/x'] } },
          { annotations: { 'snapback.dev/verify-now': 't1' } },
        ),
      );
      const j = result.create.job!;
      const podSpec = j.spec!.template.spec!;
      expect(j.spec!.backoffLimit).to.equal(0);
      expect(j.spec!.activeDeadlineSeconds).to.equal(600);
      expect(podSpec.volumes![0]!.persistentVolumeClaim).to.deep.equal({
        claimName: result.status.verification!.pvcs[0],
        readOnly: true,
      });
      const container = podSpec.containers[0]!;
      expect(container.image).to.equal(IMAGE);
      expect(container.volumeMounts![0]).to.include({ mountPath: '/data/data', readOnly: true });
      expect(container.command!.slice(-3)).to.deep.equal(['sh', '-c', 'test -f /data/data/x']);
      expect(container.command![2]).to.equal(BUILT_IN_CHECK);
      // every file is read whatever its owner (lost+found is root's, 0700), nothing else allowed
      expect(container.securityContext).to.deep.include({
        runAsUser: 0,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'], add: ['DAC_READ_SEARCH'] },
      });
    });

    it('the built-in check walks each volume under /data, not the directory holding them', () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-check-'));
      try {
        mkdirSync(path.join(dir, 'data', 'sub'), { recursive: true });
        writeFileSync(path.join(dir, 'data', 'sub', 'x'), 'x');
        // a writable volume is refused: the drill must never be able to change a backup
        const run = spawnSync('bash', ['-c', checkScript(dir), 'verify'], { encoding: 'utf8' });
        expect(run.status, run.stderr).to.equal(3);
        expect(run.stderr).to.contain(`${dir}/data is writable`);
        expect(checkScript(dir)).to.contain(`for d in ${dir}/*; do`);
        expect(checkScript(dir)).to.contain('find "$d" -xdev -type f -exec cat {} +');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('the built-in check reads a read-only volume in full and leaves its summary as the termination message', () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-check-'));
      const volume = path.join(dir, 'data', 'web');
      const content = path.join(dir, 'content');
      try {
        mkdirSync(path.join(content, 'sub'), { recursive: true });
        writeFileSync(path.join(content, 'test'), 'hello');
        writeFileSync(path.join(content, 'sub', 'x'), 'x');
        mkdirSync(volume, { recursive: true });
        // a read-only bind mount, as the drill's volumeMount with readOnly: true
        const mount = (args: string[]) => {
          const run = spawnSync('mount', args, { encoding: 'utf8' });
          expect(run.status, `mount ${args.join(' ')}: ${run.stderr}`).to.equal(0);
        };
        mount(['--bind', content, volume]);
        try {
          mount(['-o', 'remount,ro,bind', volume]);
          const message = path.join(dir, 'termination-log');
          const run = spawnSync(
            'bash',
            [
              '-c',
              checkScript(path.join(dir, 'data'), message),
              'verify',
              'grep',
              '-qx',
              'hello',
              `${volume}/test`,
            ],
            { encoding: 'utf8' },
          );
          expect(run.status, run.stderr).to.equal(0);
          expect(run.stdout).to.equal('read 2 file(s) in 2 directories\n');
          expect(readFileSync(message, 'utf8')).to.equal('read 2 file(s) in 2 directories\n');
          // a failing command leaves no summary: its log is the message
          rmSync(message);
          const failing = spawnSync(
            'bash',
            ['-c', checkScript(path.join(dir, 'data'), message), 'verify', 'false'],
            { encoding: 'utf8' },
          );
          expect(failing.status).to.equal(1);
          expect(failing.stderr).to.contain('verify command exited with code 1');
          expect(existsSync(message)).to.equal(false);
        } finally {
          spawnSync('umount', [volume]);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('uses verify.storageClassName over the source PVC class', () => {
      const p = verifyPolicy(
        { verify: { ...VERIFY, storageClassName: 'scratch' } },
        { annotations: { 'snapback.dev/verify-now': 'x' } },
      );
      expect(plan(p).create.pvcs[0]!.spec!.storageClassName).to.equal('scratch');
    });

    it('does not start again for a token already acted on', () => {
      const result = plan(
        verifyNow('t1', { lastVerifyNowToken: 't1', verifySince: '2026-01-02T11:00:00Z' }),
      );
      expect(result.status.verification).to.equal(undefined);
      expect(result.create.pvcs).to.deep.equal([]);
    });

    it('starts on the schedule, says when the next is due, and resumes the same drill after a restart', () => {
      const p = verifyPolicy({}, { status: { verifySince: '2026-01-01T00:00:00Z' } });
      const result = plan(p, { now: new Date('2026-01-02T04:00:30Z') });
      expect(result.status.verification!.trigger).to.equal('scheduled 2026-01-02T04:00:00Z');
      expect(result.status.nextVerificationTime).to.equal('2026-01-03T04:00:00Z');
      const again = planVerify({
        ...observationOf(written(p, result)),
        drill: undefined,
      });
      expect(again.status.verification!.trigger).to.equal('scheduled 2026-01-02T04:00:00Z');
      expect(again.create.pvcs).to.have.length(1);
    });

    it('waits for the first scheduled time after the policy got spec.verify', () => {
      const p = verifyPolicy();
      p.metadata.generation = 3;
      const result = plan(p, { now: new Date('2026-01-02T03:00:00Z') });
      expect(result.status.verifySince).to.equal('2026-01-02T03:00:00Z');
      expect(result.status.verification).to.equal(undefined);
      expect(result.requeueAfterMs).to.equal(3600_000);
    });

    it('records a Failed drill with NoSnapshotToVerify when no snapshot is ready', () => {
      const result = plan(verifyNow('t1'), {
        snapshots: [volumeSnapshot('pending', { ready: false })],
      });
      expect(result.status.verification).to.equal(undefined);
      expect(result.status.lastVerification).to.include({
        result: 'Failed',
        reason: 'NoSnapshotToVerify',
      });
      expect(result.finished!.result).to.equal('Failed');
      expect(result.events[0]).to.include({ type: 'Warning', reason: 'VerificationFailed' });
      expect(result.create.pvcs).to.deep.equal([]);
    });

    it('restores every member of the newest ready group, one scratch PVC each', () => {
      const groups = groupObservation({
        groups: [
          volumeGroupSnapshot('g-old', { runTime: '2026-01-01T10:00:00Z' }),
          volumeGroupSnapshot('g-new', { runTime: '2026-01-02T10:00:00Z' }),
        ],
        members: [
          groupMember('g-old', 'db'),
          groupMember('g-new', 'db'),
          groupMember('g-new', 'logs'),
        ].map((m) => ({ ...m, status: { ...m.status, restoreSize: '1Gi' } })),
      });
      const p = policy(
        {
          consistency: 'Group',
          selector: { matchLabels: { app: 'db' } },
          pvcNames: undefined,
          verify: VERIFY,
        },
        { annotations: { 'snapback.dev/verify-now': 'g' } },
      );
      const result = plan(p, { groups, snapshots: [] });
      const v = result.status.verification!;
      expect(v.volumeGroupSnapshotName).to.equal('g-new');
      expect(v.sourcePvcs).to.deep.equal(['db', 'logs']);
      expect(result.create.pvcs).to.have.length(2);
      expect(
        result.create.job!.spec!.template.spec!.containers[0]!.volumeMounts!.map(
          (m) => m.mountPath,
        ),
      ).to.deep.equal(['/data/db', '/data/logs']);
    });
  });

  describe('bad input and disabled drills', () => {
    it('reports VerifyDisabled without an image, and runs no drill', () => {
      const result = plan(verifyNow('t1'), { image: null });
      expect(result.problem!.reason).to.equal('VerifyDisabled');
      expect(result.problem!.message).to.contain('verify.enabled=true');
      expect(result.status.verification).to.equal(undefined);
      expect(result.create.pvcs).to.deep.equal([]);
      expect(result.events[0]!.reason).to.equal('VerifyDisabled');
    });

    it('reports a verify time zone that does not exist as InvalidVerifySchedule', () => {
      const p = verifyPolicy({ verify: { schedule: '@daily', timeZone: 'Mars/Olympus_Mons' } });
      const result = plan(p);
      expect(result.problem!.reason).to.equal('InvalidVerifySchedule');
      expect(result.create.pvcs).to.deep.equal([]);
    });

    it('rejects a verify schedule that is not cron through the schema', () => {
      const parsed = BackupPolicySpecSchema.safeParse({
        schedule: '@daily',
        pvcNames: ['data'],
        verify: { schedule: 'sometimes' },
      });
      expect(parsed.success).to.equal(false);
    });

    it('keeps only the results once spec.verify is removed', () => {
      const p = policy(
        {},
        {
          status: {
            nextVerificationTime: '2026-01-03T04:00:00Z',
            lastVerification: {
              time: '2026-01-02T04:01:00Z',
              result: 'Succeeded',
              reason: 'VerificationSucceeded',
              message: 'ok',
            },
          },
        },
      );
      const result = plan(p);
      expect(result.status).to.have.keys(['lastVerification']);
    });
  });

  describe('a drill in progress', () => {
    const started = () => {
      const p = verifyNow('t1');
      const first = plan(p);
      return { p: written(p, first), v: first.status.verification! };
    };

    it('re-creates what a restart left missing, and nothing else', () => {
      const { p, v } = started();
      const result = plan(p, { drill: { pods: [], events: [], pvcs: [...v.pvcs] } });
      expect(result.create.pvcs).to.deep.equal([]);
      expect(result.create.job!.metadata.name).to.equal(v.job);
      expect(result.delete).to.deep.equal({ pvcs: [] });
      expect(result.recordFirst).to.equal(false);
      const none = plan(p, { drill: { pods: [], events: [], pvcs: [] } });
      expect(none.create.pvcs.map((c) => c.metadata.name)).to.deep.equal(v.pvcs);
    });

    it('shortens the Job deadline by the time already spent', () => {
      const { p } = started();
      const result = plan(p, {
        now: new Date(NOW.getTime() + 100_000),
        drill: { pods: [], events: [], pvcs: [] },
      });
      expect(result.create.job!.spec!.activeDeadlineSeconds).to.equal(500);
    });

    it('records Succeeded from a Complete Job and deletes the scratch objects', () => {
      const { p, v } = started();
      const result = plan(p, { drill: running(v, { job: job([{ type: 'Complete' }]) }) });
      expect(result.status.verification).to.include({ result: 'Succeeded' });
      expect(result.recordFirst).to.equal(true);
      expect(result.delete).to.deep.equal({ pvcs: v.pvcs, job: v.job });
      expect(result.finished).to.equal(undefined);
    });

    it('records Failed with the exit code and termination message of the pod', () => {
      const { p, v } = started();
      const result = plan(p, {
        drill: running(v, {
          job: job([{ type: 'Failed', reason: 'BackoffLimitExceeded' }]),
          pods: [terminatedPod(4, 'cat: /data/data/x: Input/output error')],
        }),
      });
      expect(result.status.verification!.result).to.equal('Failed');
      expect(result.status.verification!.message).to.contain('exit code 4');
      expect(result.status.verification!.message).to.contain('Input/output error');
    });

    it('says timed out when the Job passed its deadline', () => {
      const { p, v } = started();
      const result = plan(p, {
        drill: running(v, { job: job([{ type: 'Failed', reason: 'DeadlineExceeded' }]) }),
      });
      expect(result.status.verification).to.include({ reason: 'VerificationTimedOut' });
      expect(result.status.verification!.message).to.contain('timed out after 600 s');
    });

    it('times out by itself when the Job never says (the volume never bound)', () => {
      const { p, v } = started();
      const drill = running(v, {});
      expect(
        plan(p, { drill, now: new Date(NOW.getTime() + 620_000) }).status.verification!.result,
      ).to.equal(undefined);
      const late = plan(p, { drill, now: new Date(NOW.getTime() + 631_000) });
      expect(late.status.verification!.message).to.contain('timed out after 600 s');
      expect(late.delete.pvcs).to.deep.equal(v.pvcs);
    });

    it('fails early when mounting the restored volume fails repeatedly', () => {
      const { p, v } = started();
      const event = (count: number): PodEvent =>
        ({
          metadata: {},
          involvedObject: {},
          reason: 'FailedMount',
          count,
          message: 'mount failed: wrong fs type, bad superblock',
        }) as PodEvent;
      expect(
        plan(p, { drill: running(v, { events: [event(1)] }) }).status.verification!.result,
      ).to.equal(undefined);
      const failed = plan(p, { drill: running(v, { events: [event(2)] }) });
      expect(failed.status.verification).to.include({
        result: 'Failed',
        reason: 'VolumeMountFailed',
      });
      expect(failed.status.verification!.message).to.contain('bad superblock');
    });

    it('fails early, naming the scratch PVC and the cause, when the snapshot cannot be restored', () => {
      const { p, v } = started();
      const event = (reason: string, count: number): PodEvent =>
        ({
          metadata: {},
          involvedObject: { kind: 'PersistentVolumeClaim', name: v.pvcs[0] },
          reason,
          count,
          message:
            'failed to provision volume: snapshot image is corrupt: its content checksum differs',
        }) as PodEvent;
      const once = plan(p, { drill: running(v, { pvcEvents: [event('ProvisioningFailed', 1)] }) });
      expect(once.status.verification!.result, 'one failed try may be transient').to.equal(
        undefined,
      );
      const other = plan(p, { drill: running(v, { pvcEvents: [event('Provisioning', 5)] }) });
      expect(other.status.verification!.result).to.equal(undefined);
      const failed = plan(p, {
        drill: running(v, {
          pvcEvents: [event('ProvisioningFailed', 1), event('ProvisioningFailed', 1)],
        }),
      });
      expect(failed.status.verification).to.include({
        result: 'Failed',
        reason: 'ScratchRestoreFailed',
      });
      expect(failed.status.verification!.message).to.contain(`scratch PVC ${v.pvcs[0]}`);
      expect(failed.status.verification!.message).to.contain('content checksum differs');
      expect(failed.delete.pvcs, 'the scratch objects go').to.deep.equal(v.pvcs);
    });

    it('after its result: deletes what is left, then records lastVerification once nothing is', () => {
      const { p, v } = started();
      const withResult = written(
        p,
        plan(p, { drill: running(v, { job: job([{ type: 'Complete' }]) }) }),
      );
      const cleaning = plan(withResult, { drill: { pods: [], events: [], pvcs: [v.pvcs[0]!] } });
      expect(cleaning.delete).to.deep.equal({ pvcs: v.pvcs });
      expect(cleaning.status.lastVerification).to.equal(undefined);
      const done = plan(withResult, { drill: { pods: [], events: [], pvcs: [] } });
      expect(done.status.verification).to.equal(undefined);
      expect(done.status.lastVerification).to.include({ result: 'Succeeded', snapshotName: 'new' });
      expect(done.status.lastSuccessfulVerificationTime).to.equal(
        done.status.lastVerification!.time,
      );
      expect(done.events.map((e) => e.reason)).to.deep.equal(['VerificationSucceeded']);
      expect(done.create).to.deep.equal({ pvcs: [] });
    });

    it('never re-creates objects of a drill that has its result (a restart while cleaning)', () => {
      const { p, v } = started();
      const withResult = written(
        p,
        plan(p, { drill: running(v, { job: job([{ type: 'Failed' }]) }) }),
      );
      const result = plan(withResult, { drill: { pods: [], events: [], pvcs: [v.pvcs[0]!] } });
      expect(result.create).to.deep.equal({ pvcs: [] });
    });

    it('ends the drill as Failed when drills were disabled meanwhile, cleaning up', () => {
      const { p, v } = started();
      const result = plan(p, { image: null, drill: running(v, {}) });
      expect(result.status.verification).to.include({ result: 'Failed', reason: 'VerifyDisabled' });
      expect(result.delete.job).to.equal(v.job);
    });
  });
});

function observationOf(p: BackupPolicy) {
  return {
    policy: p,
    spec: BackupPolicySpecSchema.parse(p.spec),
    snapshots: [volumeSnapshot('new', { runTime: '2026-01-02T10:00:00Z' })],
    pvcs: [pvc('data')],
    now: new Date('2026-01-02T04:00:40Z'),
    image: IMAGE,
  };
}

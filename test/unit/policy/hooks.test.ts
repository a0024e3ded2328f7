import { expect } from 'chai';
import type {
  BackupPolicyStatus,
  Hook,
  HookRun,
  Hooks,
  VolumeSnapshot,
} from '../../../src/api/index.js';
import type { ExecRequest, ExecResult, PodExecutor } from '../../../src/kube/exec.js';
import { planBackupPolicy } from '../../../src/policy/backup-policy.js';
import {
  hookTargets,
  runHooks,
  skippingFailure,
  type HookTarget,
  type Pod,
} from '../../../src/policy/hooks.js';
import { snapshotName } from '../../../src/policy/naming.js';
import { NS, policy, policyObservation, pvc, volumeSnapshot } from './fixtures.js';

const HOOKS: Hooks & { pre: [Hook] } = {
  pre: [{ container: 'db', command: ['sh', '-c', 'sync'], timeoutSeconds: 30, onError: 'Fail' }],
  post: [{ container: 'db', command: ['true'], timeoutSeconds: 30, onError: 'Fail' }],
};
const RUN_NOW = 'snapback.dev/run-now';
const runNowName = (pvcName: string, token: string, sequence = 1) =>
  snapshotName('nightly', pvcName, { kind: 'run-now', token, sequence });
const cond = (status: BackupPolicyStatus, type: string) =>
  status.conditions?.find((c) => c.type === type);

/** A snapshot of the recorded run in one of the states the post hooks look at. */
function snapshotIn(
  name: string,
  state: 'pending' | 'cut' | 'ready' | 'failed',
  pvcName = 'data',
): VolumeSnapshot {
  const s = volumeSnapshot(name, {
    pvc: pvcName,
    ready: state === 'ready',
    ...(state === 'failed' ? { error: 'backend said no' } : {}),
  });
  if (state === 'cut') s.status!.creationTime = '2026-01-01T00:29:00Z';
  // Created a minute ago: well inside readyDeadlineSeconds.
  s.metadata.creationTimestamp = '2026-01-01T00:29:00Z';
  return s;
}

const recorded = (fields: Partial<HookRun>): HookRun => ({
  run: 'run-now "a"',
  state: 'PreHooksDone',
  pvcs: ['data'],
  snapshots: [runNowName('data', 'a')],
  time: '2026-01-01T00:29:00Z',
  ...fields,
});

interface OrderingCase {
  name: string;
  /** The run-now token on the policy (a run is due when it differs from lastRunNowToken). */
  token?: string;
  status?: BackupPolicyStatus;
  pvcNames?: string[];
  snapshots?: VolumeSnapshot[];
  hooks?: object;
  hooksEnabled?: boolean;
  expect: {
    create: string[];
    preHooks?: { pvcs: string[]; snapshots: string[] };
    postHooks?: boolean;
    lastRunNowToken?: string;
    ready?: { status: string; reason: string };
    degradedReason?: string;
  };
}

const cases: OrderingCase[] = [
  {
    name: 'no hooks: snapshots are created with no hook step',
    token: 'a',
    hooks: undefined,
    expect: { create: [runNowName('data', 'a')], lastRunNowToken: 'a' },
  },
  {
    name: 'a due run: pre hooks first, over the PVCs and snapshots of the run',
    token: 'a',
    pvcNames: ['data', 'logs'],
    expect: {
      create: [runNowName('data', 'a'), runNowName('logs', 'a')],
      preHooks: {
        pvcs: ['data', 'logs'],
        snapshots: [runNowName('data', 'a'), runNowName('logs', 'a')],
      },
      lastRunNowToken: 'a',
    },
  },
  {
    name: 'a restart after part of the run was created: pre hooks run again before the rest',
    token: 'a',
    pvcNames: ['data', 'logs'],
    status: {
      hookRun: recorded({ snapshots: [runNowName('data', 'a'), runNowName('logs', 'a')] }),
    },
    snapshots: [snapshotIn(runNowName('data', 'a'), 'pending')],
    expect: {
      create: [runNowName('logs', 'a')],
      preHooks: {
        pvcs: ['data', 'logs'],
        snapshots: [runNowName('data', 'a'), runNowName('logs', 'a')],
      },
      // its post hooks wait for the cut of both
      postHooks: false,
      lastRunNowToken: 'a',
    },
  },
  {
    name: 'a restart after every snapshot was created: no pre hook, post hooks wait for the cut',
    token: 'a',
    status: { hookRun: recorded({}) },
    snapshots: [snapshotIn(runNowName('data', 'a'), 'pending')],
    expect: { create: [], postHooks: false, lastRunNowToken: 'a' },
  },
  {
    name: 'a snapshot with a creation time (cut, not ready): post hooks are due',
    status: { lastRunNowToken: 'a', runNowCount: 1, hookRun: recorded({}) },
    snapshots: [snapshotIn(runNowName('data', 'a'), 'cut')],
    expect: { create: [], postHooks: true },
  },
  {
    name: 'a ready snapshot: post hooks are due',
    status: { lastRunNowToken: 'a', runNowCount: 1, hookRun: recorded({}) },
    snapshots: [snapshotIn(runNowName('data', 'a'), 'ready')],
    expect: { create: [], postHooks: true },
  },
  {
    name: 'a failed snapshot: post hooks are due all the same',
    status: { lastRunNowToken: 'a', runNowCount: 1, hookRun: recorded({}) },
    snapshots: [snapshotIn(runNowName('data', 'a'), 'failed')],
    expect: { create: [], postHooks: true },
  },
  {
    name: 'one of two snapshots still being cut: post hooks wait',
    status: {
      lastRunNowToken: 'a',
      runNowCount: 1,
      hookRun: recorded({ snapshots: [runNowName('data', 'a'), runNowName('logs', 'a')] }),
    },
    pvcNames: ['data', 'logs'],
    snapshots: [
      snapshotIn(runNowName('data', 'a'), 'cut'),
      snapshotIn(runNowName('logs', 'a'), 'pending', 'logs'),
    ],
    expect: { create: [], postHooks: false },
  },
  {
    name: 'post hooks already run (Done): nothing more',
    status: { lastRunNowToken: 'a', runNowCount: 1, hookRun: recorded({ state: 'Done' }) },
    snapshots: [snapshotIn(runNowName('data', 'a'), 'ready')],
    expect: { create: [], postHooks: false },
  },
  {
    name: 'a new run while the last one is being cut: held, not recorded, until its post hooks ran',
    token: 'b',
    status: { lastRunNowToken: 'a', runNowCount: 1, hookRun: recorded({}) },
    snapshots: [snapshotIn(runNowName('data', 'a'), 'pending')],
    expect: { create: [], postHooks: false, lastRunNowToken: 'a' },
  },
  {
    name: 'a new run once the last one is cut: post hooks of the last, then pre hooks of the new',
    token: 'b',
    status: { lastRunNowToken: 'a', runNowCount: 1, hookRun: recorded({}) },
    snapshots: [snapshotIn(runNowName('data', 'a'), 'cut')],
    expect: {
      create: [runNowName('data', 'b', 2)],
      postHooks: true,
      preHooks: { pvcs: ['data'], snapshots: [runNowName('data', 'b', 2)] },
      lastRunNowToken: 'b',
    },
  },
  {
    name: 'hooks set but disabled in this installation: Ready=False HooksDisabled, no snapshot',
    token: 'a',
    hooksEnabled: false,
    expect: { create: [], ready: { status: 'False', reason: 'HooksDisabled' } },
  },
  {
    name: 'the last run was skipped by a pre hook: Degraded HookFailed until a run passes',
    status: {
      lastRunNowToken: 'a',
      runNowCount: 1,
      hookRun: recorded({ state: 'Skipped', message: 'run-now "a" skipped, no snapshot taken' }),
    },
    expect: { create: [], degradedReason: 'HookFailed' },
  },
];

describe('BackupPolicy hooks: the order of a run', function () {
  for (const c of cases) {
    it(c.name, function () {
      const p = policy(
        {
          pvcNames: c.pvcNames ?? ['data'],
          ...('hooks' in c ? (c.hooks ? { hooks: c.hooks } : {}) : { hooks: HOOKS }),
        } as never,
        {
          ...(c.token ? { annotations: { [RUN_NOW]: c.token } } : {}),
          ...(c.status ? { status: c.status } : {}),
        },
      );
      const plan = planBackupPolicy({
        ...policyObservation(p, {
          pvcs: (c.pvcNames ?? ['data']).map((n) => pvc(n)),
          snapshots: c.snapshots ?? [],
        }),
        hooksEnabled: c.hooksEnabled ?? true,
      });
      expect(
        plan.create.map((s) => s.metadata.name),
        'create',
      ).to.deep.equal(c.expect.create);
      if (c.expect.preHooks) {
        expect(plan.preHooks, 'preHooks').to.include.keys('run');
        expect({ pvcs: plan.preHooks!.pvcs, snapshots: plan.preHooks!.snapshots }).to.deep.equal(
          c.expect.preHooks,
        );
      } else {
        expect(plan.preHooks, 'preHooks').to.equal(undefined);
      }
      expect(plan.postHooks !== undefined, 'postHooks due').to.equal(c.expect.postHooks ?? false);
      if ('lastRunNowToken' in c.expect) {
        expect(plan.status.lastRunNowToken, 'lastRunNowToken').to.equal(c.expect.lastRunNowToken);
      }
      if (c.expect.ready) expect(cond(plan.status, 'Ready')).to.include(c.expect.ready);
      if (c.expect.degradedReason) {
        expect(cond(plan.status, 'Degraded')).to.include({
          status: 'True',
          reason: c.expect.degradedReason,
        });
      }
    });
  }

  it('a held run looks again soon, and records no RunStarted Event', function () {
    const p = policy({ hooks: HOOKS } as never, {
      annotations: { [RUN_NOW]: 'b' },
      status: { lastRunNowToken: 'a', runNowCount: 1, hookRun: recorded({}) },
    });
    const plan = planBackupPolicy({
      ...policyObservation(p, { snapshots: [snapshotIn(runNowName('data', 'a'), 'pending')] }),
      hooksEnabled: true,
    });
    expect(plan.requeueAfterMs).to.be.at.most(10_000);
    expect(plan.events.map((e) => e.reason)).not.to.include('RunStarted');
  });

  it('says how to enable hooks when they are disabled, in the condition and an Event', function () {
    const plan = planBackupPolicy({
      ...policyObservation(policy({ hooks: HOOKS } as never)),
      hooksEnabled: false,
    });
    expect(cond(plan.status, 'Ready')?.message).to.match(/hooks are disabled.*hooks\.enabled=true/);
    expect(plan.events).to.deep.include.members([
      { type: 'Warning', reason: 'HooksDisabled', message: cond(plan.status, 'Ready')!.message },
    ]);
    expect(plan.blockedBy).to.equal('HooksDisabled');
  });
});

function pod(
  name: string,
  opts: {
    claims?: string[];
    containers?: string[];
    phase?: string;
    deleting?: boolean;
  } = {},
): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: NS,
      ...(opts.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    spec: {
      containers: (opts.containers ?? ['db']).map((c) => ({ name: c })),
      volumes: (opts.claims ?? ['data']).map((c, i) => ({
        name: `v${i}`,
        persistentVolumeClaim: { claimName: c },
      })),
    },
    status: { phase: opts.phase ?? 'Running' },
  };
}

describe('BackupPolicy hooks: where they run', function () {
  const table: Array<{ name: string; pods: Pod[]; expect: Array<[string, string | undefined]> }> = [
    { name: 'a Running pod mounting the PVC', pods: [pod('a')], expect: [['a', undefined]] },
    {
      name: 'pods by name; those not Running, being deleted or not mounting it left out',
      pods: [
        pod('c'),
        pod('b', { phase: 'Pending' }),
        pod('d', { deleting: true }),
        pod('e', { claims: ['other'] }),
        pod('a', { claims: ['other', 'data'] }),
      ],
      expect: [
        ['a', undefined],
        ['c', undefined],
      ],
    },
    {
      name: 'a pod without the container: named with the containers it has',
      pods: [pod('a', { containers: ['nginx', 'sidecar'] })],
      expect: [['a', 'nginx,sidecar']],
    },
  ];
  for (const row of table) {
    it(row.name, function () {
      const targets = hookTargets('pre', [HOOKS.pre[0]], ['data'], row.pods);
      expect(
        targets.map((t) => [t.pod, t.missingContainer?.containers.join(',')] as const),
      ).to.deep.equal(row.expect);
    });
  }
});

class ScriptedExecutor implements PodExecutor {
  readonly calls: ExecRequest[] = [];
  constructor(private readonly answers: Record<string, ExecResult>) {}
  exec(request: ExecRequest): Promise<ExecResult> {
    this.calls.push(request);
    return Promise.resolve(this.answers[request.command.join(' ')] ?? { exitCode: 0, output: '' });
  }
}

const target = (
  phase: 'pre' | 'post',
  command: string,
  onError: 'Fail' | 'Continue',
  extra: Partial<HookTarget> = {},
): HookTarget => ({
  phase,
  pod: 'web-0',
  hook: { container: 'db', command: command.split(' '), timeoutSeconds: 5, onError },
  ...extra,
});

describe('BackupPolicy hooks: running them', function () {
  const now = () => new Date('2026-01-01T00:30:00Z');

  it('a pre hook failing with onError Fail stops the phase and skips the run', async function () {
    const executor = new ScriptedExecutor({ 'exit 3': { exitCode: 3, output: 'disk busy\n' } });
    const outcomes = await runHooks(
      executor,
      NS,
      [target('pre', 'exit 3', 'Fail'), target('pre', 'echo later', 'Fail')],
      now,
    );
    expect(executor.calls.map((c) => c.command.join(' '))).to.deep.equal(['exit 3']);
    expect(executor.calls[0]).to.include({ namespace: NS, pod: 'web-0', timeoutMs: 5000 });
    const skip = skippingFailure(outcomes);
    expect(skip?.result).to.deep.equal({
      phase: 'pre',
      pod: 'web-0',
      container: 'db',
      command: 'exit 3',
      exitCode: 3,
      message: 'exited 3; output: disk busy',
      time: '2026-01-01T00:30:00Z',
    });
    expect(skip?.description).to.equal(
      'pre hook in pod web-0 container db: "exit 3" exited 3; output: disk busy',
    );
  });

  it('a failure with onError Continue is recorded and the next hook runs', async function () {
    const executor = new ScriptedExecutor({ 'exit 1': { exitCode: 1, output: '' } });
    const outcomes = await runHooks(
      executor,
      NS,
      [target('pre', 'exit 1', 'Continue'), target('pre', 'echo ok', 'Fail')],
      now,
    );
    expect(outcomes.map((o) => [o.result.exitCode, o.failed])).to.deep.equal([
      [1, true],
      [0, false],
    ]);
    expect(skippingFailure(outcomes)).to.equal(undefined);
  });

  it('post hooks all run, whatever fails', async function () {
    const executor = new ScriptedExecutor({ 'exit 2': { exitCode: 2, output: '' } });
    await runHooks(
      executor,
      NS,
      [target('post', 'exit 2', 'Fail'), target('post', 'echo resume', 'Fail')],
      now,
    );
    expect(executor.calls).to.have.length(2);
  });

  it('a timeout and a missing container fail without an exit code; the missing one never execs', async function () {
    const executor = new ScriptedExecutor({
      'sleep 60': { output: 'zzz', timedOut: true, error: 'did not finish within 5 s' },
    });
    const outcomes = await runHooks(
      executor,
      NS,
      [
        target('pre', 'sleep 60', 'Continue'),
        target('pre', 'sync', 'Fail', { missingContainer: { containers: ['nginx'] } }),
      ],
      now,
    );
    expect(executor.calls).to.have.length(1);
    expect(outcomes[0]!.result).to.not.have.property('exitCode');
    expect(outcomes[0]!.result.message).to.equal('did not finish within 5 s; output: zzz');
    expect(outcomes[1]!.failed).to.equal(true);
    expect(outcomes[1]!.description).to.equal(
      'pre hook in pod web-0 container db: "sync" pod web-0 has no container db (it has nginx); fix spec.hooks.pre[].container',
    );
  });
});

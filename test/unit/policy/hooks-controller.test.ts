import { expect } from 'chai';
import type { BackupPolicy, VolumeSnapshot } from '../../../src/api/index.js';
import type { ExecRequest, ExecResult, PodExecutor } from '../../../src/kube/exec.js';
import {
  Manager,
  PersistentVolumeClaims,
  PersistentVolumes,
  StorageClasses,
} from '../../../src/kube/index.js';
import { addPolicyControllers } from '../../../src/policy/controllers.js';
import { Pods, type Pod } from '../../../src/policy/hooks.js';
import { BackupPolicies } from '../../../src/policy/objects.js';
import { VolumeSnapshotClasses, VolumeSnapshots } from '../../../src/kube/resource.js';
import { waitFor } from '../../support/processes.js';
import { NS, pv, pvc, snapshotClass, storageClass } from './fixtures.js';
import { FakeClock } from '../../support/fakes/clock.js';
import { FakeEventRecorder } from '../../support/fakes/event-recorder.js';
import { FakeKubeClient } from '../../support/fakes/kube-client.js';

/** Records each exec with what the API server held at that moment. */
class ObservingExecutor implements PodExecutor {
  readonly calls: Array<{
    command: string;
    snapshots: number;
    hookRunState: string | undefined;
  }> = [];
  constructor(
    private readonly client: FakeKubeClient,
    private readonly answer: (command: string) => ExecResult = () => ({ exitCode: 0, output: '' }),
  ) {}
  exec(request: ExecRequest): Promise<ExecResult> {
    const command = request.command.join(' ');
    this.calls.push({
      command,
      snapshots: this.client.all(VolumeSnapshots).length,
      hookRunState: this.client.peek<BackupPolicy>(BackupPolicies, 'nightly', NS)?.status?.hookRun
        ?.state,
    });
    return Promise.resolve(this.answer(command));
  }
}

const webPod: Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web-0', namespace: NS },
  spec: {
    containers: [{ name: 'nginx' }],
    volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'data' } }],
  },
  status: { phase: 'Running' },
};

const HOOKS = {
  pre: [{ container: 'nginx', command: ['pre'] }],
  post: [{ container: 'nginx', command: ['post'] }],
};

/** The reconciler with a scripted pods/exec, against the in-memory API server. */
describe('policy controllers: hooks around a run (in-memory API server)', function () {
  this.timeout(30_000);
  let client: FakeKubeClient;
  let managers: Manager[];
  let recorder: FakeEventRecorder;

  const start = async (executor: PodExecutor | undefined) => {
    const manager = new Manager({ client });
    addPolicyControllers(manager, {
      clock: new FakeClock('2026-01-01T00:30:00Z'),
      events: recorder,
      workers: 1,
      ...(executor ? { hookExecutor: executor } : {}),
    });
    void manager.run();
    await manager.informers.waitForSync();
    managers.push(manager);
    return manager;
  };
  const policyNow = () => client.peek<BackupPolicy>(BackupPolicies, 'nightly', NS)!;
  const snapshots = () => client.all<VolumeSnapshot>(VolumeSnapshots);
  const cut = async (ready = false) => {
    for (const s of snapshots()) {
      await client.patch(
        VolumeSnapshots,
        s.metadata.name!,
        NS,
        'merge',
        { status: { readyToUse: ready, creationTime: '2026-01-01T00:30:01Z' } },
        { subresource: 'status' },
      );
    }
  };
  const createPolicy = (hooks: object, token = 'first') =>
    client.create<BackupPolicy>(BackupPolicies, {
      apiVersion: 'snapback.dev/v1alpha1',
      kind: 'BackupPolicy',
      metadata: { name: 'nightly', namespace: NS, annotations: { 'snapback.dev/run-now': token } },
      spec: { schedule: '@hourly', pvcNames: ['data'], hooks } as unknown as BackupPolicy['spec'],
    });

  beforeEach(function () {
    client = new FakeKubeClient();
    client.seed(PersistentVolumeClaims, pvc('data'));
    client.seed(PersistentVolumes, pv('pv-data'));
    client.seed(VolumeSnapshotClasses, snapshotClass('default', { isDefault: true }));
    client.seed(StorageClasses, storageClass('local', { isDefault: true }));
    client.seed(Pods, webPod);
    recorder = new FakeEventRecorder();
    managers = [];
  });

  afterEach(async function () {
    for (const m of managers) await m.stop();
  });

  it('runs pre hooks with no snapshot yet, records the run before creating it, post hooks once it is cut', async function () {
    const executor = new ObservingExecutor(client);
    // What status.hookRun said when each VolumeSnapshot was created.
    const recordedAtCreate: Array<string | undefined> = [];
    const create = client.create.bind(client);
    client.create = ((type, obj, options) => {
      if (type.plural === VolumeSnapshots.plural)
        recordedAtCreate.push(policyNow().status?.hookRun?.state);
      return create(type, obj, options);
    }) as FakeKubeClient['create'];
    await start(executor);
    await createPolicy(HOOKS);
    await waitFor(
      () => snapshots().length === 1 && policyNow().status?.lastRunNowToken === 'first',
      10_000,
      'the run’s snapshot',
      () => JSON.stringify(policyNow().status),
    );
    expect(recordedAtCreate).to.deep.equal(['PreHooksDone']);
    expect(executor.calls).to.deep.equal([
      { command: 'pre', snapshots: 0, hookRunState: undefined },
    ]);
    expect(policyNow().status!.hookRun).to.include({
      state: 'PreHooksDone',
      run: 'run-now "first"',
    });
    await cut();
    await waitFor(
      () => policyNow().status?.hookRun?.state === 'Done',
      10_000,
      'the post hooks',
      () => JSON.stringify(policyNow().status),
    );
    expect(executor.calls[1]).to.deep.equal({
      command: 'post',
      snapshots: 1,
      hookRunState: 'PreHooksDone',
    });
    expect(policyNow().status!.lastHooks!.map((h) => [h.phase, h.pod, h.exitCode])).to.deep.equal([
      ['pre', 'web-0', 0],
      ['post', 'web-0', 0],
    ]);
  });

  it('a controller restarted after the snapshot was created runs no pre hook again, and the post hooks once it is cut', async function () {
    const first = await start(new ObservingExecutor(client));
    await createPolicy(HOOKS);
    await waitFor(
      () => snapshots().length === 1 && policyNow().status?.lastRunNowToken === 'first',
      10_000,
      'the run’s snapshot',
    );
    await first.stop();
    const executor = new ObservingExecutor(client);
    await start(executor);
    await cut(true);
    await waitFor(
      () => policyNow().status?.hookRun?.state === 'Done',
      10_000,
      'the post hooks after the restart',
      () => JSON.stringify(policyNow().status),
    );
    expect(executor.calls.map((c) => c.command)).to.deep.equal(['post']);
  });

  it('a pre hook failing with onError Fail: no snapshot, post hooks run, Degraded HookFailed and a Warning Event', async function () {
    const executor = new ObservingExecutor(client, (command) =>
      command === 'pre' ? { exitCode: 3, output: 'disk busy' } : { exitCode: 0, output: '' },
    );
    await start(executor);
    await createPolicy(HOOKS);
    await waitFor(
      () => policyNow().status?.hookRun?.state === 'Skipped',
      10_000,
      'the skipped run',
      () => JSON.stringify(policyNow().status),
    );
    expect(snapshots()).to.deep.equal([]);
    expect(executor.calls.map((c) => c.command)).to.deep.equal(['pre', 'post']);
    const degraded = policyNow().status!.conditions!.find((c) => c.type === 'Degraded')!;
    expect(degraded).to.include({ status: 'True', reason: 'HookFailed' });
    expect(degraded.message).to.include(
      'pre hook in pod web-0 container nginx: "pre" exited 3; output: disk busy',
    );
    expect(recorder.lines.filter((l) => l.startsWith('Warning HookFailed'))).to.have.length(1);
    expect(recorder.lines.some((l) => l.startsWith('Normal RunStarted'))).to.equal(false);
    expect(policyNow().status!.lastRunNowToken, 'the run is not retried').to.equal('first');
  });

  it('without an exec runner a policy with hooks reports HooksDisabled and takes no snapshot', async function () {
    await start(undefined);
    await createPolicy(HOOKS);
    await waitFor(
      () => policyNow().status?.conditions?.some((c) => c.reason === 'HooksDisabled'),
      10_000,
      'HooksDisabled',
      () => JSON.stringify(policyNow().status),
    );
    expect(snapshots()).to.deep.equal([]);
  });
});

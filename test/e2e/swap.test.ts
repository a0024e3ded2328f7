import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RestoreJob, VolumeSnapshot } from '../../src/api/index.js';
import type { HttpKubeClient } from '../../src/kube/index.js';
import { PersistentVolumeClaims, PersistentVolumes } from '../../src/kube/index.js';
import { StatefulSets, VolumeSnapshots } from '../../src/kube/resource.js';
import type { Pv, Pvc } from '../../src/policy/objects.js';
import { RestoreJobs } from '../../src/policy/objects.js';
import type { StatefulSet } from '../../src/policy/restore-swap.js';
import { type NodeCluster } from '../support/node.js';
import { waitFor } from '../support/processes.js';
import { boundClaim } from '../integration/stack/support.js';
import {
  WEB_PVC,
  WEB_PVC_SIZE,
  apply,
  chartWithNamespace,
  examples,
  exec,
  rolledOut,
  show,
  RecordingNarrator,
  type RecipeContext,
} from './recipe.js';
import { CLASS, RELEASE_NAMESPACE } from './support.js';

const NAMESPACE = 'swap';
const TIMEOUT_MS = 300_000;
const POLICY = 'web-swap';

interface WorkloadManifest {
  metadata: { name: string };
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: { containers: Array<Record<string, unknown>> };
    };
    volumeClaimTemplates: Array<{
      metadata: { labels?: Record<string, string> };
      spec: { storageClassName?: string; resources: { requests: { storage: string } } };
    }>;
  };
}

/**
 * RestoreJob mode Swap on a real node: the chart installed with restore.swap.enabled=true,
 * StatefulSet web (nginx) on a disk of the chart's StorageClass; a Swap restore puts the
 * snapshot back under web-0's own PVC name, with the controller killed (SIGKILL) at each step
 * it is seen in; and a swap whose pods do not get Ready is rolled back.
 */
describe('node: RestoreJob mode Swap restores a StatefulSet in place', function () {
  this.timeout(1_200_000);
  const narrator = new RecordingNarrator();
  let dir = '';
  let cluster: NodeCluster | undefined;
  let client: HttpKubeClient;
  let context: RecipeContext;

  const getJob = (name: string) => client.get<RestoreJob>(RestoreJobs, name, NAMESPACE);
  const getSet = (name: string) => client.get<StatefulSet>(StatefulSets, name, NAMESPACE);
  const getPvc = (name: string) => client.get<Pvc>(PersistentVolumeClaims, name, NAMESPACE);

  /** StatefulSet `name` from the recipe's web, on the chart's class, with these changes. */
  function workload(name: string, container: Record<string, unknown> = {}): object[] {
    const docs = examples('recipe-2-statefulset-web.yaml');
    const service = structuredClone(docs.find((d) => d.kind === 'Service')!) as unknown as {
      metadata: { name: string; labels: Record<string, string> };
      spec: { selector: Record<string, string> };
    };
    const set = structuredClone(
      docs.find((d) => d.kind === 'StatefulSet')!,
    ) as unknown as WorkloadManifest & { spec: { serviceName: string } };
    const template = set.spec.volumeClaimTemplates[0]!;
    template.spec.storageClassName = CLASS;
    template.spec.resources.requests.storage = WEB_PVC_SIZE;
    if (name !== 'web') {
      service.metadata = { name, labels: { app: name } };
      service.spec.selector = { app: name };
      set.metadata.name = name;
      set.spec.serviceName = name;
      set.spec.selector.matchLabels = { app: name };
      set.spec.template.metadata.labels = { app: name };
      template.metadata.labels = { app: name };
    }
    Object.assign(set.spec.template.spec.containers[0]!, container);
    return [service, set];
  }

  /** A BackupPolicy of these PVCs with a snapshot taken now; returns the ready snapshot. */
  async function snapshotOf(policy: string, pvcs: string[]): Promise<VolumeSnapshot> {
    await apply(context, [
      {
        apiVersion: 'snapback.dev/v1alpha1',
        kind: 'BackupPolicy',
        metadata: {
          name: policy,
          namespace: NAMESPACE,
          annotations: { 'snapback.dev/run-now': 'now' },
        },
        spec: { pvcNames: pvcs, schedule: '0 2 * * *', snapshotClass: { name: CLASS } },
      },
    ]);
    return waitFor(
      async () =>
        (
          await client.list<VolumeSnapshot>(VolumeSnapshots, {
            namespace: NAMESPACE,
            labelSelector: `snapback.dev/policy=${policy}`,
          })
        ).items.find((s) => s.status?.readyToUse === true),
      TIMEOUT_MS,
      `a ready snapshot of BackupPolicy ${policy}`,
    );
  }

  async function swap(name: string, workloadName: string, policy: string, extra: object = {}) {
    await apply(context, [
      {
        apiVersion: 'snapback.dev/v1alpha1',
        kind: 'RestoreJob',
        metadata: { name, namespace: NAMESPACE },
        spec: {
          mode: 'Swap',
          source: { backupPolicy: { name: policy } },
          target: { workload: { kind: 'StatefulSet', name: workloadName } },
          ...extra,
        },
      },
    ]);
  }

  /** Waits for the job to end (and to let go of its finalizer), calling `onStep` on each new step. */
  async function ended(name: string, onStep: (step: string) => Promise<void> = async () => {}) {
    const seen = new Set<string>();
    return waitFor(
      async () => {
        const job = await getJob(name);
        const step = job?.status?.swap?.step;
        if (step && !seen.has(step)) {
          seen.add(step);
          await onStep(step);
        }
        const phase = job?.status?.phase;
        const done =
          (phase === 'Succeeded' || phase === 'Failed') && !job?.metadata.finalizers?.length;
        return done ? job : undefined;
      },
      TIMEOUT_MS,
      `RestoreJob ${name} to end`,
      async () => JSON.stringify((await getJob(name))?.status),
    );
  }

  /**
   * SIGKILL to the controller's process, as an OOM kill would; its pod is then replaced at
   * once, so that the kubelet's crash-loop back-off does not pace the test.
   */
  async function killController(): Promise<number> {
    const found = spawnSync('pgrep', ['-f', '--', '--restore-swap=true'], { encoding: 'utf8' });
    const pids = found.stdout.split('\n').filter(Boolean).map(Number);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    if (pids.length > 0) {
      await context.kubectl([
        '-n',
        RELEASE_NAMESPACE,
        'delete',
        'pod',
        '-l',
        'app.kubernetes.io/component=controller',
        '--grace-period=0',
        '--force',
        '--wait=false',
      ]);
    }
    return pids.length;
  }

  before(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-swap-e2e-'));
    ({ cluster, client, context } = await chartWithNamespace(dir, NAMESPACE, narrator, TIMEOUT_MS, [
      '--set',
      'restore.swap.enabled=true',
      // a restarted controller acts at once, with no Lease of the killed one to wait out
      '--set',
      'controller.leaderElection.enabled=false',
    ]));
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && context) {
      console.log(narrator.lines.join('\n'));
      const output = (args: string[]) => context.kubectl(args).catch((e: Error) => e.message);
      console.log(await output(['-n', NAMESPACE, 'get', 'events', '--sort-by=.lastTimestamp']));
      console.log(
        await output([
          '-n',
          RELEASE_NAMESPACE,
          'logs',
          '-l',
          'app.kubernetes.io/component=controller',
          '--tail=200',
        ]),
      );
    }
    narrator.lines.length = 0;
  });

  after(async function () {
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('web-0 comes back on the snapshot under its own PVC, replicas as before, the old PV retained, with the controller killed at each step', async function () {
    narrator.step(`StatefulSet web with a ${WEB_PVC_SIZE} disk of StorageClass ${CLASS}`);
    await apply(context, workload('web'));
    await rolledOut(context, 'web');
    const before = await boundClaim(client, NAMESPACE, WEB_PVC, TIMEOUT_MS);
    await exec(context, 'web-0', ['sh', '-c', 'echo hello > /data/test && sync']);
    await snapshotOf(POLICY, [WEB_PVC]);
    narrator.step('After the backup: /data/test removed, /data/bad written');
    await exec(context, 'web-0', ['sh', '-c', 'rm /data/test && echo bad > /data/bad && sync']);

    await swap('web-swap', 'web', POLICY);
    const killedAt: string[] = [];
    const job = await ended('web-swap', async (step) => {
      if (step === 'Done' || step === 'RolledBack') return;
      if ((await killController()) > 0) killedAt.push(step);
    });
    console.log(`      controller killed (SIGKILL) in steps ${killedAt.join(', ')}`);
    await show(context, ['get', 'restorejob', 'web-swap']);
    expect(job.status?.phase, job.status?.message).to.equal('Succeeded');
    expect(job.status?.swap?.step).to.equal('Done');
    // the steps that last long enough to be seen were each killed in at least once
    expect(killedAt).to.include.members(['RestoringVolumes', 'WaitingForReady']);
    expect(killedAt.length).to.be.greaterThanOrEqual(3);

    await rolledOut(context, 'web');
    expect(await exec(context, 'web-0', ['ls', '/data'])).to.equal('lost+found\ntest\n');
    expect(await exec(context, 'web-0', ['cat', '/data/test'])).to.equal('hello\n');
    const set = await getSet('web');
    expect(set?.spec?.replicas).to.equal(1);
    expect(set?.status?.readyReplicas).to.equal(1);
    expect(set?.metadata.annotations ?? {}).to.not.have.any.keys(
      'snapback.dev/swap-job',
      'snapback.dev/swap-replicas',
    );
    const volume = job.status!.swap!.volumes[0]!;
    expect(volume).to.include({ claim: WEB_PVC, retainedVolume: before.pv.metadata!.name });
    const after = await getPvc(WEB_PVC);
    expect(after?.spec?.volumeName).to.equal(volume.restoredVolume);
    expect(after?.metadata.labels).to.include({ app: 'web' });
    // the old disk is kept, with /data/bad on it, until someone deletes it
    const old = await client.get<Pv>(PersistentVolumes, volume.retainedVolume!);
    expect(old?.spec?.persistentVolumeReclaimPolicy).to.equal('Retain');
    expect(old?.status?.phase).to.equal('Released');
    // the restored one is the workload's now, with its class's reclaim policy
    const restored = await client.get<Pv>(PersistentVolumes, volume.restoredVolume!);
    expect(restored?.spec?.persistentVolumeReclaimPolicy).to.equal('Delete');
    expect(await getPvc(volume.restoredClaim)).to.equal(undefined);
  });

  it('a swap whose pods do not get Ready in time is rolled back to the old volume, Ready again', async function () {
    // db is Ready only with /data/ready, written after the backup: the restored volume lacks it
    narrator.step('StatefulSet db, Ready only while /data/ready exists');
    await apply(
      context,
      workload('db', {
        readinessProbe: { exec: { command: ['test', '-f', '/data/ready'] }, periodSeconds: 1 },
      }),
    );
    const claim = 'disk-ssd-db-0';
    const before = await boundClaim(client, NAMESPACE, claim, TIMEOUT_MS);
    await waitFor(
      async () =>
        (await exec(context, 'db-0', ['ls', '/data']).catch(() => undefined)) !== undefined,
      TIMEOUT_MS,
      'db-0 to run',
    );
    await snapshotOf('db-swap', [claim]);
    await exec(context, 'db-0', ['sh', '-c', 'touch /data/ready && sync']);
    await rolledOut(context, 'db');

    await swap('db-swap', 'db', 'db-swap', { readyTimeoutSeconds: 15 });
    const job = await ended('db-swap');
    await show(context, ['get', 'restorejob', 'db-swap', '-o', 'jsonpath={.status.message}']);
    expect(job.status?.phase).to.equal('Failed');
    expect(job.status?.swap?.step).to.equal('RolledBack');
    expect(job.status?.conditions?.[0]?.reason).to.equal('RolledBack');
    expect(job.status?.message).to.contain('was not Ready within 15s');
    await rolledOut(context, 'db');
    expect((await getPvc(claim))?.spec?.volumeName).to.equal(before.pv.metadata!.name);
    expect(await exec(context, 'db-0', ['ls', '/data'])).to.contain('ready');
    const set = await getSet('db');
    expect(set?.spec?.replicas).to.equal(1);
    expect(set?.metadata.annotations ?? {}).to.not.have.any.keys(
      'snapback.dev/swap-job',
      'snapback.dev/swap-replicas',
    );
    // the restored volume is kept to look into
    const restored = job.status!.swap!.volumes[0]!.restoredVolume!;
    expect(
      (await client.get<Pv>(PersistentVolumes, restored))?.spec?.persistentVolumeReclaimPolicy,
    ).to.equal('Retain');
  });

  it('a Swap of a workload whose PVCs the policy does not snapshot fails WorkloadNotCovered, touching nothing', async function () {
    const claim = 'disk-ssd-db-0';
    const before = await getPvc(claim);
    await swap('db-wrong', 'db', POLICY);
    const job = await ended('db-wrong');
    expect(job.status?.phase).to.equal('Failed');
    expect(job.status?.conditions?.[0]?.reason).to.equal('WorkloadNotCovered');
    expect(job.status?.message).to.contain(
      `StatefulSet db mounts PVC ${claim}, which BackupPolicy ${POLICY} has no snapshot of`,
    );
    const after = await getPvc(claim);
    expect(after?.metadata.uid).to.equal(before?.metadata.uid);
    expect(after?.spec?.volumeName).to.equal(before?.spec?.volumeName);
    expect((await getSet('db'))?.spec?.replicas).to.equal(1);
  });
});

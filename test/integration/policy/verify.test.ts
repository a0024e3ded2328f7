import { expect } from 'chai';
import { closeSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { BackupPolicy, VolumeSnapshot } from '../../../src/api/index.js';
import {
  PersistentVolumeClaims,
  type HttpKubeClient,
  type KubeObject,
} from '../../../src/kube/index.js';
import { VolumeSnapshotContents, VolumeSnapshots } from '../../../src/kube/resource.js';
import { Pods, type Pod } from '../../../src/policy/hooks.js';
import { BackupPolicies } from '../../../src/policy/objects.js';
import { Jobs, LABEL_JOB_NAME, type Job } from '../../../src/policy/verify-objects.js';
import { sharedControlPlane } from '../../support/cluster.js';
import type { ControlPlane } from '../../support/control-plane.js';
import { startProcess, stopProcess, waitFor } from '../../support/processes.js';
import { tool } from '../../support/tools.js';
import { claim } from '../stack/recipe.js';
import { Rig } from '../stack/rig.js';
import { apiClient, boundClaim, eventsWhen, installCrds } from '../stack/support.js';

const GROUP_VERSION = 'snapback.dev/v1alpha1';
const IMAGE = 'registry.invalid/snapback:drill';

/**
 * Restore drills on a real control plane with snapback all-in-one (local backend): the
 * scratch PVC is really restored from the snapshot. The shared control plane has no Job
 * controller and no kubelet, so this suite starts kube-controller-manager's job-controller
 * itself, and acts as the kubelet by writing the drill pod's status.
 */
describe('restore drills (spec.verify) on snapback all-in-one (real control plane)', function () {
  this.timeout(600_000);
  let controlPlane: ControlPlane;
  let client: HttpKubeClient;
  let namespace: string;
  let rig: Rig | undefined;
  let jobController: number | undefined;

  const policyManifest = (name: string, annotations: Record<string, string> = {}) =>
    ({
      apiVersion: GROUP_VERSION,
      kind: 'BackupPolicy',
      metadata: { name, namespace, annotations },
      spec: {
        schedule: '@daily',
        snapshotClass: { name: namespace },
        pvcNames: ['data'],
        verify: { schedule: '@weekly', timeoutSeconds: 120 },
      },
    }) as unknown as BackupPolicy;
  const getPolicy = (name: string) => client.get<BackupPolicy>(BackupPolicies, name, namespace);
  const annotate = (name: string, annotations: Record<string, string>) =>
    client.patch(BackupPolicies, name, namespace, 'merge', { metadata: { annotations } });

  async function waitForPolicy(name: string, what: string, check: (p: BackupPolicy) => boolean) {
    return waitFor(
      async () => {
        const p = await getPolicy(name);
        return p && check(p) ? p : undefined;
      },
      180_000,
      `BackupPolicy ${name}: ${what}`,
      async () =>
        JSON.stringify((await getPolicy(name))?.status) + `\n${rig?.aio?.log().slice(-3000)}`,
    );
  }

  /** Acts as the kubelet: the drill pod's container ends with this exit code. */
  async function endPod(job: string, exitCode: number, message: string): Promise<void> {
    const pod = await waitFor(
      async () =>
        (await client.list<Pod>(Pods, { namespace, labelSelector: `${LABEL_JOB_NAME}=${job}` }))
          .items[0],
      60_000,
      `the pod of Job ${job}`,
    );
    const now = new Date().toISOString();
    await client.patch(
      Pods,
      pod.metadata.name!,
      namespace,
      'merge',
      {
        status: {
          phase: exitCode === 0 ? 'Succeeded' : 'Failed',
          containerStatuses: [
            {
              name: 'verify',
              image: IMAGE,
              imageID: '',
              ready: false,
              restartCount: 0,
              state: { terminated: { exitCode, message, startedAt: now, finishedAt: now } },
            },
          ],
        },
      },
      { subresource: 'status' },
    );
  }

  const scratchLeft = async (policy: string) => {
    const selector = { namespace, labelSelector: `snapback.dev/verify=${policy}` };
    const pvcs = (await client.list<KubeObject>(PersistentVolumeClaims, selector)).items;
    const jobs = (await client.list<KubeObject>(Jobs, selector)).items;
    return [...pvcs, ...jobs].map((o) => `${o.kind ?? ''} ${o.metadata?.name}`);
  };

  async function snapshotReady(policy: string, token: string): Promise<void> {
    await annotate(policy, { 'snapback.dev/run-now': token });
    await waitFor(
      async () =>
        (
          await client.list<VolumeSnapshot>(VolumeSnapshots, {
            namespace,
            labelSelector: `snapback.dev/policy=${policy}`,
          })
        ).items.some((s) => s.status?.readyToUse === true),
      180_000,
      `a ready snapshot of ${policy}`,
    );
  }

  async function drillJob(policy: string): Promise<string> {
    const p = await waitForPolicy(policy, 'a drill in progress', (x) => !!x.status?.verification);
    const job = p.status!.verification!.job;
    await waitFor(
      async () => !!(await client.get<Job>(Jobs, job, namespace)),
      60_000,
      `Job ${job}`,
    );
    return job;
  }

  before(async function () {
    controlPlane = await sharedControlPlane();
    await installCrds(controlPlane);
    rig = new Rig(controlPlane, apiClient(controlPlane));
    await rig.setUp('verify', ['--verify=true', `--verify-image=${IMAGE}`]);
    ({ client, namespace } = rig);
    jobController = startProcess(
      tool('KUBE_CONTROLLER_MANAGER'),
      [
        '--kubeconfig',
        controlPlane.kubeconfig,
        '--leader-elect=false',
        '--secure-port=0',
        '--controllers',
        'job-controller',
      ],
      { logFile: path.join(rig.dir, 'job-controller.log'), owned: true },
    ).pid;
    await client.create(PersistentVolumeClaims, {
      ...claim('data', namespace),
      metadata: { name: 'data', namespace },
    });
    await boundClaim(client, namespace, 'data');
  });

  after(async function () {
    if (this.currentTest?.state === 'failed') console.log(rig?.aio?.log().slice(-6000));
    if (jobController) await stopProcess(jobController);
    await rig?.tearDown();
  });

  it('a drill on demand restores the newest snapshot, ends Succeeded, and removes the scratch PVC and Job', async function () {
    await client.create(BackupPolicies, policyManifest('ok'));
    await snapshotReady('ok', 'one');
    await annotate('ok', { 'snapback.dev/verify-now': 'd1' });
    const job = await drillJob('ok');
    const scratch = (await getPolicy('ok'))!.status!.verification!.pvcs[0]!;
    const pvc = await client.get<KubeObject & { spec?: { dataSource?: { name: string } } }>(
      PersistentVolumeClaims,
      scratch,
      namespace,
    );
    expect(pvc?.spec?.dataSource?.name).to.equal(
      (await getPolicy('ok'))!.status!.verification!.snapshotName,
    );
    await endPod(job, 0, 'read 1 file(s) in 2 directories');
    const done = await waitForPolicy('ok', 'lastVerification', (p) => !!p.status?.lastVerification);
    expect(done.status!.lastVerification).to.include({ result: 'Succeeded' });
    expect(done.status!.lastVerification!.message).to.contain('read 1 file(s)');
    expect(done.status!.lastVerifyNowToken).to.equal('d1');
    expect(done.status!.verification).to.equal(undefined);
    await waitFor(async () => (await scratchLeft('ok')).length === 0, 60_000, 'no scratch left');
    await eventsWhen(client, namespace, 'BackupPolicy', 'ok', (es) =>
      es.some((e) => e.reason === 'VerificationSucceeded'),
    );
  });

  it('a failing check ends Failed with the exit code and message, nothing left behind', async function () {
    await client.create(BackupPolicies, policyManifest('bad'));
    await snapshotReady('bad', 'one');
    await annotate('bad', { 'snapback.dev/verify-now': 'd1' });
    const job = await drillJob('bad');
    await endPod(job, 4, 'cat: /data/data/x: Input/output error');
    const done = await waitForPolicy(
      'bad',
      'lastVerification',
      (p) => !!p.status?.lastVerification,
    );
    expect(done.status!.lastVerification).to.include({ result: 'Failed' });
    expect(done.status!.lastVerification!.message).to.contain('exit code 4');
    expect(done.status!.lastVerification!.message).to.contain('Input/output error');
    await waitFor(async () => (await scratchLeft('bad')).length === 0, 60_000, 'no scratch left');
    // The snapshot the drill restored is still there: a drill deletes its own objects only.
    const snapshot = done.status!.lastVerification!.snapshotName!;
    expect(await client.get(VolumeSnapshots, snapshot, namespace)).to.not.equal(undefined);
  });

  it('a drill of a corrupted snapshot image ends Failed with ScratchRestoreFailed; the snapshot is kept, no scratch left', async function () {
    await client.create(BackupPolicies, policyManifest('corrupt'));
    await snapshotReady('corrupt', 'one');
    const [snapshot] = (
      await client.list<VolumeSnapshot>(VolumeSnapshots, {
        namespace,
        labelSelector: 'snapback.dev/policy=corrupt',
      })
    ).items;
    const content = await client.get<KubeObject & { status?: { snapshotHandle?: string } }>(
      VolumeSnapshotContents,
      snapshot!.status!.boundVolumeSnapshotContentName!,
    );
    // The local driver of the rig keeps its snapshots under <root>/snapshots/<name>.img.
    const image = path.join(
      rig!.dir,
      'disks',
      'snapshots',
      `${content!.status!.snapshotHandle!.split('@')[0]}.img`,
    );
    const fd = openSync(image, 'r+');
    try {
      writeSync(fd, Buffer.from('snapback-corruption'), 0, 19, 1024 + 120);
    } finally {
      closeSync(fd);
    }
    await annotate('corrupt', { 'snapback.dev/verify-now': 'd1' });
    const done = await waitForPolicy(
      'corrupt',
      'lastVerification',
      (p) => !!p.status?.lastVerification,
    );
    expect(done.status!.lastVerification, JSON.stringify(done.status)).to.include({
      result: 'Failed',
      reason: 'ScratchRestoreFailed',
      snapshotName: snapshot!.metadata!.name,
    });
    expect(done.status!.lastVerification!.message).to.contain('corrupt');
    await waitFor(
      async () => (await scratchLeft('corrupt')).length === 0,
      60_000,
      'no scratch left',
      async () => (await scratchLeft('corrupt')).join(', '),
    );
    expect(await client.get(VolumeSnapshots, snapshot!.metadata!.name!, namespace)).to.not.equal(
      undefined,
    );
  });

  it('without a ready snapshot the drill is Failed with NoSnapshotToVerify', async function () {
    await client.create(
      BackupPolicies,
      policyManifest('empty', { 'snapback.dev/verify-now': 'x' }),
    );
    const done = await waitForPolicy(
      'empty',
      'lastVerification',
      (p) => !!p.status?.lastVerification,
    );
    expect(done.status!.lastVerification).to.include({
      result: 'Failed',
      reason: 'NoSnapshotToVerify',
    });
    expect(await scratchLeft('empty')).to.deep.equal([]);
  });

  it('a controller restarted mid-drill finishes the same drill', async function () {
    await client.create(BackupPolicies, policyManifest('restart'));
    await snapshotReady('restart', 'one');
    await annotate('restart', { 'snapback.dev/verify-now': 'd1' });
    const job = await drillJob('restart');
    const before = (await getPolicy('restart'))!.status!.verification!;
    await rig!.restartAllInOne({ kill: true });
    await endPod(job, 0, 'ok');
    const done = await waitForPolicy(
      'restart',
      'lastVerification',
      (p) => !!p.status?.lastVerification,
    );
    expect(done.status!.lastVerification).to.include({ result: 'Succeeded' });
    expect(done.status!.lastVerification!.snapshotName).to.equal(before.snapshotName);
    await waitFor(
      async () => (await scratchLeft('restart')).length === 0,
      60_000,
      'no scratch left',
    );
  });
});

import { expect } from 'chai';
import { mkdtempSync, openSync, closeSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BackupPolicy, VolumeSnapshot } from '../../src/api/index.js';
import type { HttpKubeClient, KubeObject } from '../../src/kube/index.js';
import { PersistentVolumeClaims } from '../../src/kube/index.js';
import { VolumeSnapshotContents, VolumeSnapshots } from '../../src/kube/resource.js';
import { BackupPolicies } from '../../src/policy/objects.js';
import { Jobs } from '../../src/policy/verify-objects.js';
import { LOCAL_DRIVER_DIR, type NodeCluster } from '../support/node.js';
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
import { CLASS, RELEASE, RELEASE_NAMESPACE } from './support.js';

const NAMESPACE = 'drills';
const TIMEOUT_MS = 240_000;

interface EventList {
  items: Array<{ type: string; reason: string; message: string; involvedObject: { name: string } }>;
}

/**
 * Restore drills on a real node: the chart installed with verify.enabled=true, StatefulSet web
 * (nginx) with its disk from the chart's StorageClass; a drill restores the newest snapshot into
 * a scratch PVC that a Job of the snapback image mounts read-only and reads in full.
 */
describe('node: restore drills (spec.verify) restore a snapshot and read it in a Job', function () {
  this.timeout(900_000);
  const narrator = new RecordingNarrator();
  let dir = '';
  let cluster: NodeCluster | undefined;
  let client: HttpKubeClient;
  let context: RecipeContext;

  const getPolicy = (name: string) => client.get<BackupPolicy>(BackupPolicies, name, NAMESPACE);
  const statusOf = async (name: string) => JSON.stringify((await getPolicy(name))?.status);
  const scratchLeft = async (policy: string) => {
    const selector = { namespace: NAMESPACE, labelSelector: `snapback.dev/verify=${policy}` };
    const pvcs = (await client.list<KubeObject>(PersistentVolumeClaims, selector)).items;
    const jobs = (await client.list<KubeObject>(Jobs, selector)).items;
    return [
      ...pvcs.map((p) => `pvc/${p.metadata?.name}`),
      ...jobs.map((j) => `job/${j.metadata?.name}`),
    ];
  };
  const noScratchLeft = (policy: string) =>
    waitFor(
      async () => (await scratchLeft(policy)).length === 0,
      TIMEOUT_MS,
      `the scratch objects of ${policy} to be removed`,
      async () => (await scratchLeft(policy)).join(', '),
    );
  const eventsOf = async (policy: string, reason: string) =>
    (
      JSON.parse(
        await context.kubectl(['-n', NAMESPACE, 'get', 'events', '-o', 'json']),
      ) as EventList
    ).items.filter((e) => e.involvedObject.name === policy && e.reason === reason);

  /** A policy on web-0's PVC with this spec.verify, and a ready snapshot taken on demand. */
  async function policyWithSnapshot(name: string, verify: object, token: string) {
    await apply(context, [
      {
        apiVersion: 'snapback.dev/v1alpha1',
        kind: 'BackupPolicy',
        metadata: { name, namespace: NAMESPACE, annotations: { 'snapback.dev/run-now': token } },
        spec: {
          pvcNames: [WEB_PVC],
          schedule: '0 2 * * *',
          snapshotClass: { name: CLASS },
          verify: { schedule: '0 3 * * 0', ...verify },
        },
      },
    ]);
    return readySnapshotOf(name, token);
  }

  async function readySnapshotOf(policy: string, token: string): Promise<VolumeSnapshot> {
    return waitFor(
      async () => {
        const p = await getPolicy(policy);
        if (p?.status?.lastRunNowToken !== token) return undefined;
        const snapshots = await client.list<VolumeSnapshot>(VolumeSnapshots, {
          namespace: NAMESPACE,
          labelSelector: `snapback.dev/policy=${policy}`,
        });
        return snapshots.items
          .filter((s) => s.status?.readyToUse === true)
          .sort(
            (a, b) => Date.parse(b.status!.creationTime!) - Date.parse(a.status!.creationTime!),
          )[0];
      },
      TIMEOUT_MS,
      `a ready snapshot of ${policy} (run-now ${token})`,
      () => statusOf(policy),
    );
  }

  /** Sets verify-now and waits for the drill's result. */
  async function drill(policy: string, token: string): Promise<BackupPolicy> {
    narrator.step(`kubectl annotate backuppolicy ${policy} snapback.dev/verify-now=${token}`);
    await context.kubectl([
      '-n',
      NAMESPACE,
      'annotate',
      '--overwrite',
      'backuppolicy',
      policy,
      `snapback.dev/verify-now=${token}`,
    ]);
    return waitFor(
      async () => {
        const p = await getPolicy(policy);
        return p?.status?.lastVerifyNowToken === token &&
          !p.status.verification &&
          p.status.lastVerification
          ? p
          : undefined;
      },
      TIMEOUT_MS,
      `the drill ${token} of ${policy} to end`,
      () => statusOf(policy),
    );
  }

  before(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-verify-e2e-'));
    ({ cluster, client, context } = await chartWithNamespace(dir, NAMESPACE, narrator, TIMEOUT_MS, [
      '--set',
      'verify.enabled=true',
    ]));
    narrator.step(`StatefulSet web with a ${WEB_PVC_SIZE} disk of StorageClass ${CLASS}`);
    const docs = examples('recipe-2-statefulset-web.yaml');
    const service = docs.find((d) => d.kind === 'Service')!;
    const web = docs.find((d) => d.kind === 'StatefulSet')! as unknown as {
      spec: {
        volumeClaimTemplates: Array<{
          spec: { storageClassName?: string; resources: { requests: { storage: string } } };
        }>;
      };
    };
    const template = web.spec.volumeClaimTemplates[0]!;
    template.spec.storageClassName = CLASS;
    template.spec.resources.requests.storage = WEB_PVC_SIZE;
    await apply(context, [service, web]);
    await rolledOut(context, 'web');
    await boundClaim(client, NAMESPACE, WEB_PVC, TIMEOUT_MS);
    await exec(context, 'web-0', ['sh', '-c', 'echo hello > /data/test && sync']);
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && context) {
      console.log(narrator.lines.join('\n'));
      const output = (args: string[]) =>
        context.kubectl(args).catch((error: Error) => error.message);
      console.log(await output(['-n', NAMESPACE, 'get', 'events', '--sort-by=.lastTimestamp']));
      console.log(
        await output([
          '-n',
          RELEASE_NAMESPACE,
          'logs',
          '-l',
          `app.kubernetes.io/instance=${RELEASE}`,
          '--all-containers',
          '--prefix',
          '--tail=80',
        ]),
      );
    }
    narrator.lines.length = 0;
  });

  after(async function () {
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a drill on demand reads the restored volume, runs the command, ends Succeeded and leaves no scratch PVC', async function () {
    const policy = 'web-drill';
    const snapshot = await policyWithSnapshot(
      policy,
      { command: ['grep', '-qx', 'hello', `/data/${WEB_PVC}/test`], timeoutSeconds: 180 },
      'first',
    );
    const done = await drill(policy, 'd1');
    await show(context, [
      'get',
      'backuppolicy',
      policy,
      '-o',
      'jsonpath={.status.lastVerification}',
    ]);
    expect(done.status!.lastVerification, JSON.stringify(done.status)).to.include({
      result: 'Succeeded',
      reason: 'VerificationSucceeded',
      snapshotName: snapshot.metadata.name,
    });
    // the built-in check read web-0's disk: lost+found (root's, 0700) and test
    expect(done.status!.lastVerification!.message).to.match(/read 1 file\(s\) in 2 directories/);
    expect(done.status!.lastSuccessfulVerificationTime).to.equal(
      done.status!.lastVerification!.time,
    );
    await noScratchLeft(policy);
    const events = await eventsOf(policy, 'VerificationSucceeded');
    expect(events.map((e) => e.type)).to.deep.equal(['Normal']);
  });

  it('a drill of a corrupted snapshot image ends Failed with the reason; the snapshot is kept', async function () {
    const policy = 'web-corrupt';
    const snapshot = await policyWithSnapshot(policy, { timeoutSeconds: 180 }, 'first');
    const content = await client.get<KubeObject & { status?: { snapshotHandle?: string } }>(
      VolumeSnapshotContents,
      snapshot.status!.boundVolumeSnapshotContentName!,
    );
    const image = path.join(
      LOCAL_DRIVER_DIR,
      'snapshots',
      `${content!.status!.snapshotHandle!.split('@')[0]}.img`,
    );
    narrator.step(`Corrupt the backend snapshot image ${image} (bytes in its ext4 superblock)`);
    const fd = openSync(image, 'r+');
    try {
      writeSync(fd, Buffer.from('snapback-corruption'), 0, 19, 1024 + 120);
    } finally {
      closeSync(fd);
    }
    const done = await drill(policy, 'd1');
    await show(context, ['describe', 'backuppolicy', policy]);
    expect(done.status!.lastVerification, JSON.stringify(done.status)).to.include({
      result: 'Failed',
      reason: 'ScratchRestoreFailed',
      snapshotName: snapshot.metadata.name,
    });
    expect(done.status!.lastVerification!.message).to.contain('corrupt');
    expect(done.status!.lastSuccessfulVerificationTime).to.equal(undefined);
    await noScratchLeft(policy);
    const events = await eventsOf(policy, 'VerificationFailed');
    expect(events.map((e) => e.type)).to.deep.equal(['Warning']);
    expect(events[0]!.message).to.contain('ScratchRestoreFailed');
    // a drill deletes its own objects only
    expect(await client.get(VolumeSnapshots, snapshot.metadata.name!, NAMESPACE)).to.not.equal(
      undefined,
    );
  });

  it('a verify command that hangs ends the drill Failed at timeoutSeconds, its Job and PVC removed', async function () {
    const policy = 'web-hang';
    await policyWithSnapshot(policy, { command: ['sleep', '3600'], timeoutSeconds: 30 }, 'first');
    const done = await drill(policy, 'd1');
    expect(done.status!.lastVerification, JSON.stringify(done.status)).to.include({
      result: 'Failed',
      reason: 'VerificationTimedOut',
    });
    expect(done.status!.lastVerification!.message).to.contain('timed out after 30 s');
    await noScratchLeft(policy);
    // the workload's own disk is untouched
    expect(await exec(context, 'web-0', ['cat', '/data/test'])).to.equal('hello\n');
  });
});

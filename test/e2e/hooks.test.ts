import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BackupPolicy, RestoreJob, VolumeSnapshot } from '../../src/api/index.js';
import type { HttpKubeClient, KubeObject, ResourceType } from '../../src/kube/index.js';
import { BackupPolicies, RestoreJobs } from '../../src/policy/objects.js';
import { VolumeSnapshots } from '../../src/kube/resource.js';
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
import {
  chartController,
  chartDir,
  helmIn,
  type Kubectl,
  RELEASE,
  RELEASE_NAMESPACE,
  CLASS,
} from './support.js';

const SubjectAccessReviews: ResourceType = {
  group: 'authorization.k8s.io',
  version: 'v1',
  plural: 'subjectaccessreviews',
  kind: 'SubjectAccessReview',
  namespaced: false,
};

interface SubjectAccessReview extends KubeObject {
  spec: {
    user: string;
    groups: string[];
    resourceAttributes: Record<string, string>;
  };
  status?: { allowed?: boolean };
}

const NAMESPACE = 'hooks';
const TIMEOUT_MS = 180_000;

interface EventList {
  items: Array<{
    type: string;
    reason: string;
    message: string;
    involvedObject: { kind: string; name: string };
  }>;
}

/**
 * BackupPolicy hooks on a real node: the chart installed with hooks.enabled=true, StatefulSet
 * web (nginx) with its disk from the chart's StorageClass, hooks exec'd in web-0 through the
 * API server, and what they wrote checked on a restored copy of the snapshot.
 */
describe('node: BackupPolicy hooks exec in the pods of the snapshotted PVCs', function () {
  this.timeout(900_000);
  const narrator = new RecordingNarrator();
  let dir = '';
  let cluster: NodeCluster | undefined;
  let kubectl: Kubectl;
  let client: HttpKubeClient;
  let context: RecipeContext;

  const getPolicy = (name: string) => client.get<BackupPolicy>(BackupPolicies, name, NAMESPACE);
  const snapshotsOf = async (policy: string) =>
    (
      await client.list<VolumeSnapshot>(VolumeSnapshots, {
        namespace: NAMESPACE,
        labelSelector: `snapback.dev/policy=${policy}`,
      })
    ).items;
  const eventsOf = async (policy: string, reason: string) =>
    (
      JSON.parse(await kubectl(['-n', NAMESPACE, 'get', 'events', '-o', 'json'])) as EventList
    ).items.filter(
      (e) =>
        e.involvedObject.kind === 'BackupPolicy' &&
        e.involvedObject.name === policy &&
        e.reason === reason,
    );
  const condition = (policy: BackupPolicy | undefined, type: string) =>
    policy?.status?.conditions?.find((c) => c.type === type);
  const statusOf = async (name: string) => JSON.stringify((await getPolicy(name))?.status);

  /** A policy on web-0's PVC with these hooks, run now. */
  async function hookedPolicy(name: string, hooks: object, token: string): Promise<void> {
    await apply(context, [
      {
        apiVersion: 'snapback.dev/v1alpha1',
        kind: 'BackupPolicy',
        metadata: { name, namespace: NAMESPACE, annotations: { 'snapback.dev/run-now': token } },
        spec: {
          pvcNames: [WEB_PVC],
          schedule: '0 2 * * *',
          snapshotClass: { name: CLASS },
          hooks,
        },
      },
    ]);
  }

  before(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-hooks-e2e-'));
    ({ cluster, kubectl, client, context } = await chartWithNamespace(
      dir,
      NAMESPACE,
      narrator,
      TIMEOUT_MS,
      ['--set', 'hooks.enabled=true'],
    ));

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
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(narrator.lines.join('\n'));
    narrator.lines.length = 0;
  });

  after(async function () {
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a pre hook’s file is in the snapshot and a post hook’s is not; the live pod has both', async function () {
    const policy = 'web-hooks';
    narrator.step(
      `BackupPolicy ${policy}: pre hook writes /data/pre and syncs, post writes /data/post`,
    );
    await hookedPolicy(
      policy,
      {
        pre: [{ container: 'nginx', command: ['sh', '-c', 'echo pre > /data/pre && sync'] }],
        post: [{ container: 'nginx', command: ['sh', '-c', 'echo post > /data/post'] }],
      },
      'first',
    );
    const done = await waitFor(
      async () => {
        const p = await getPolicy(policy);
        return p?.status?.hookRun?.state === 'Done' && p.status.lastHooks?.length === 2
          ? p
          : undefined;
      },
      TIMEOUT_MS,
      `BackupPolicy ${policy} to run its pre and post hooks`,
      () => statusOf(policy),
    );
    await show(context, ['get', 'backuppolicy', policy, '-o', 'jsonpath={.status.lastHooks}']);
    expect(
      done.status!.lastHooks!.map(({ phase, pod, container, command, exitCode }) => ({
        phase,
        pod,
        container,
        command,
        exitCode,
      })),
    ).to.deep.equal([
      {
        phase: 'pre',
        pod: 'web-0',
        container: 'nginx',
        command: 'sh -c echo pre > /data/pre && sync',
        exitCode: 0,
      },
      {
        phase: 'post',
        pod: 'web-0',
        container: 'nginx',
        command: 'sh -c echo post > /data/post',
        exitCode: 0,
      },
    ]);
    const [snapshot] = await snapshotsOf(policy);
    expect(snapshot, 'the run’s VolumeSnapshot').to.not.equal(undefined);
    // the post hook ran after the snapshot was cut
    const cutAt = Date.parse(snapshot!.status!.creationTime!);
    const postAt = Date.parse(done.status!.lastHooks![1]!.time);
    expect(postAt, 'post hook time vs snapshot creationTime').to.be.at.least(cutAt);
    await waitFor(
      async () =>
        (await client.get<VolumeSnapshot>(VolumeSnapshots, snapshot!.metadata.name!, NAMESPACE))
          ?.status?.readyToUse === true,
      TIMEOUT_MS,
      `VolumeSnapshot ${snapshot!.metadata.name} to be ready`,
    );

    narrator.step('Restore the snapshot and mount it in pod reader');
    await apply(context, [
      {
        apiVersion: 'snapback.dev/v1alpha1',
        kind: 'RestoreJob',
        metadata: { name: 'hooks-restore', namespace: NAMESPACE },
        spec: {
          source: { volumeSnapshotName: snapshot!.metadata.name },
          target: { pvcName: 'hooks-restored' },
        },
      },
    ]);
    const job = await waitFor(
      async () => {
        const j = await client.get<RestoreJob>(RestoreJobs, 'hooks-restore', NAMESPACE);
        return j?.status?.phase === 'Succeeded' || j?.status?.phase === 'Failed' ? j : undefined;
      },
      TIMEOUT_MS,
      'RestoreJob hooks-restore to finish',
    );
    expect(job.status?.phase, job.status?.message).to.equal('Succeeded');
    await apply(context, [
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'reader', namespace: NAMESPACE },
        spec: {
          containers: [
            {
              name: 'nginx',
              image: 'nginx',
              volumeMounts: [{ name: 'restored', mountPath: '/data' }],
            },
          ],
          volumes: [{ name: 'restored', persistentVolumeClaim: { claimName: 'hooks-restored' } }],
        },
      },
    ]);
    await show(context, [
      'wait',
      '--for=condition=Ready',
      'pod/reader',
      `--timeout=${TIMEOUT_MS / 1000}s`,
    ]);
    const restored = (await exec(context, 'reader', ['ls', '/data'])).split('\n').filter(Boolean);
    expect(restored, 'ls /data of the restored volume').to.include('pre');
    expect(restored, 'ls /data of the restored volume').to.not.include('post');
    expect(await exec(context, 'reader', ['cat', '/data/pre'])).to.equal('pre\n');
    const live = (await exec(context, 'web-0', ['ls', '/data'])).split('\n').filter(Boolean);
    expect(live, 'ls /data in web-0').to.include.members(['pre', 'post']);
  });

  it('a pre hook failing with onError Fail takes no snapshot and says why; with Continue the snapshot is taken and the failure recorded', async function () {
    const policy = 'web-failing';
    const failing = { container: 'nginx', command: ['sh', '-c', 'echo cannot flush >&2; exit 3'] };
    const post = { container: 'nginx', command: ['sh', '-c', 'echo resumed > /data/resumed'] };
    narrator.step(`BackupPolicy ${policy}: a pre hook that exits 3, onError Fail`);
    await hookedPolicy(policy, { pre: [{ ...failing, onError: 'Fail' }], post: [post] }, 'fail');
    const skipped = await waitFor(
      async () => {
        const p = await getPolicy(policy);
        return p?.status?.hookRun?.state === 'Skipped' &&
          condition(p, 'Degraded')?.reason === 'HookFailed'
          ? p
          : undefined;
      },
      TIMEOUT_MS,
      `BackupPolicy ${policy} to skip its run`,
      () => statusOf(policy),
    );
    await show(context, ['describe', 'backuppolicy', policy]);
    const degraded = condition(skipped, 'Degraded')!;
    for (const part of ['pod web-0', 'container nginx', 'exit 3', 'exited 3', 'cannot flush']) {
      expect(degraded.message, 'Degraded message').to.include(part);
    }
    expect(await snapshotsOf(policy), 'snapshots of a skipped run').to.deep.equal([]);
    const events = await waitFor(
      async () => {
        const found = await eventsOf(policy, 'HookFailed');
        return found.length > 0 ? found : undefined;
      },
      60_000,
      `a HookFailed Event of ${policy}`,
    );
    expect(events[0]!.type).to.equal('Warning');
    for (const part of ['web-0', 'nginx', 'exit 3', 'exited 3', 'cannot flush']) {
      expect(events[0]!.message, 'HookFailed Event').to.include(part);
    }
    // the post hooks ran all the same
    expect(skipped.status!.lastHooks!.map((h) => [h.phase, h.exitCode])).to.deep.equal([
      ['pre', 3],
      ['post', 0],
    ]);
    expect(await exec(context, 'web-0', ['cat', '/data/resumed'])).to.equal('resumed\n');

    narrator.step(`The same hook with onError Continue, run again`);
    await hookedPolicy(policy, { pre: [{ ...failing, onError: 'Continue' }], post: [post] }, 'go');
    const taken = await waitFor(
      async () => {
        const p = await getPolicy(policy);
        const ready = (await snapshotsOf(policy)).some((s) => s.status?.readyToUse === true);
        return ready && p?.status?.hookRun?.state === 'Done' && p.status.lastRunNowToken === 'go'
          ? p
          : undefined;
      },
      TIMEOUT_MS,
      `BackupPolicy ${policy} to take its snapshot despite the failing hook`,
      () => statusOf(policy),
    );
    expect(taken.status!.lastHooks!.map((h) => [h.phase, h.exitCode])).to.deep.equal([
      ['pre', 3],
      ['post', 0],
    ]);
    expect(taken.status!.lastHooks![0]!.message).to.include('cannot flush');
    expect(taken.status!.hookRun!.message, 'no failure counts against the run').to.equal(undefined);
  });

  it('a hook naming a container the pod lacks: the condition and an Event name the pod and the container', async function () {
    const policy = 'web-no-container';
    narrator.step(`BackupPolicy ${policy}: a pre hook for container postgres`);
    await hookedPolicy(policy, { pre: [{ container: 'postgres', command: ['true'] }] }, 'run-1');
    const p = await waitFor(
      async () => {
        const found = await getPolicy(policy);
        return condition(found, 'Degraded')?.reason === 'HookFailed' ? found : undefined;
      },
      TIMEOUT_MS,
      `BackupPolicy ${policy} to report the missing container`,
      () => statusOf(policy),
    );
    expect(condition(p, 'Degraded')!.message).to.include(
      'pod web-0 has no container postgres (it has nginx)',
    );
    const events = await waitFor(
      async () => {
        const found = await eventsOf(policy, 'HookFailed');
        return found.length > 0 ? found : undefined;
      },
      60_000,
      `a HookFailed Event of ${policy}`,
    );
    expect(events[0]!.message).to.include('pod web-0 has no container postgres');
    expect(await snapshotsOf(policy)).to.deep.equal([]);
  });

  it('with hooks.enabled=false the controller may not exec, and a policy with hooks says hooks are disabled', async function () {
    const { serviceAccount } = await chartController(kubectl, RELEASE_NAMESPACE, RELEASE);
    // what `kubectl auth can-i create pods --subresource=exec --as=<the controller>` asks
    const canExec = async () =>
      (
        await client.create<SubjectAccessReview>(SubjectAccessReviews, {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          metadata: {},
          spec: {
            user: `system:serviceaccount:${RELEASE_NAMESPACE}:${serviceAccount}`,
            groups: ['system:serviceaccounts', `system:serviceaccounts:${RELEASE_NAMESPACE}`],
            resourceAttributes: {
              namespace: NAMESPACE,
              verb: 'create',
              resource: 'pods',
              subresource: 'exec',
            },
          },
        })
      ).status?.allowed === true;
    expect(await canExec(), 'pods/exec with hooks.enabled=true').to.equal(true);

    narrator.step('helm upgrade --set hooks.enabled=false');
    await helmIn(path.join(dir, 'helm'))([
      'upgrade',
      RELEASE,
      chartDir,
      '--namespace',
      RELEASE_NAMESPACE,
      '--reuse-values',
      '--set',
      'hooks.enabled=false',
      '--wait',
      '--timeout=240s',
      '--kubeconfig',
      cluster!.kubeconfig,
    ]);
    expect(await canExec(), 'pods/exec with hooks.enabled=false').to.equal(false);
    await kubectl([
      '-n',
      RELEASE_NAMESPACE,
      'rollout',
      'status',
      `deployment/${RELEASE}-controller`,
      `--timeout=${TIMEOUT_MS / 1000}s`,
    ]);

    const policy = 'web-disabled';
    await hookedPolicy(policy, { pre: [{ container: 'nginx', command: ['sync'] }] }, 'run-1');
    const p = await waitFor(
      async () => {
        const found = await getPolicy(policy);
        return condition(found, 'Ready')?.reason === 'HooksDisabled' ? found : undefined;
      },
      TIMEOUT_MS,
      `BackupPolicy ${policy} to report that hooks are disabled`,
      () => statusOf(policy),
    );
    expect(condition(p, 'Ready')).to.include({ status: 'False' });
    expect(condition(p, 'Ready')!.message).to.include('hooks.enabled=true');
    expect(await snapshotsOf(policy)).to.deep.equal([]);
  });
});

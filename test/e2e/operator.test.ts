import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import {
  HttpKubeClient,
  PersistentVolumes,
  Secrets,
  type KubeObject,
} from '../../src/kube/index.js';
import { VolumeSnapshotContents } from '../../src/snapshot/sidecar/resources.js';
import { freePort, type ControlPlane } from '../support/control-plane.js';
import {
  createTestNamespace,
  deleteTestNamespace,
  httpStatusOf,
  kubeConfigFor,
  sharedControlPlane,
} from '../support/cluster.js';
import { waitFor } from '../support/processes.js';
import { Kubelet, waitForSocket, type Volume } from '../integration/stack/support.js';
import {
  POLICY,
  RESTORED_PVC,
  WEB_PVC,
  checkOutcome,
  playRecipe,
  type Narrator,
  type RecipeOutcome,
} from './recipe.js';
import {
  chartController,
  chartDir,
  helmIn,
  kubectlWith,
  parseExposition,
  serviceAccountKubeconfig,
  startOperator,
  waitForHealthz,
  type ChartController,
  type Operator,
} from './support.js';

/** The story of the run, printed only when a test fails. */
class RecordingNarrator implements Narrator {
  readonly lines: string[] = [];
  step(title: string): void {
    this.lines.push(`==> ${title}`);
  }
  note(text: string): void {
    this.lines.push(`    ${text}`);
  }
  shell(command: string, output: string): void {
    this.lines.push(`$ ${command}`, output.trimEnd());
  }
}

/**
 * The chart installed into the test control plane, and the operator run in place of its
 * Deployment (the control plane has no kubelet) with the token of the chart's ServiceAccount:
 * the recipe passing proves the chart's RBAC is enough, and the same token is refused outside it.
 */
describe('e2e: helm install, the operator as the chart’s ServiceAccount, the recipe through BackupPolicy and RestoreJob', function () {
  this.timeout(600_000);
  let dir = '';
  const release = `snapback-e2e-${process.pid}`;
  const className = `${release}-local`;
  const narrator = new RecordingNarrator();
  let controlPlane: ControlPlane;
  let admin: KubeConfig;
  let client: HttpKubeClient;
  let releaseNamespace = '';
  let appNamespace = '';
  let identity: ChartController;
  let operatorKubeconfig: string;
  let operator: Operator | undefined;
  let kubelet: Kubelet | undefined;
  let outcome: RecipeOutcome | undefined;
  let helm: (args: string[]) => Promise<string>;

  before(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-e2e-'));
    helm = helmIn(path.join(dir, 'helm'));
    controlPlane = await sharedControlPlane();
    admin = kubeConfigFor(controlPlane);
    client = new HttpKubeClient(admin, { qps: 100, burst: 200 });
    releaseNamespace = await createTestNamespace(admin, 'e2e');
    appNamespace = await createTestNamespace(admin, 'e2e-app');
    await helm([
      'install',
      release,
      chartDir,
      // earlier suites may have applied crds/ with kubectl: take ours over, as a user who
      // did the same would
      '--take-ownership',
      '--kubeconfig',
      controlPlane.kubeconfig,
      '--namespace',
      releaseNamespace,
      '--set',
      'driver.backend=local',
      // class names are cluster-wide: keep them apart from other suites' objects
      '--set',
      `storageClass.name=${className}`,
      '--set',
      `volumeSnapshotClass.name=${className}`,
    ]);
    const kubectl = kubectlWith(controlPlane.kubeconfig);
    await kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/backuppolicies.snapback.dev',
      'crd/restorejobs.snapback.dev',
      'crd/volumesnapshots.snapshot.storage.k8s.io',
      'crd/volumesnapshotcontents.snapshot.storage.k8s.io',
      'crd/volumesnapshotclasses.snapshot.storage.k8s.io',
    ]);
    identity = await chartController(kubectl, releaseNamespace, release);
    operatorKubeconfig = path.join(dir, 'operator.kubeconfig');
    await serviceAccountKubeconfig(
      admin,
      identity.namespace,
      identity.serviceAccount,
      operatorKubeconfig,
    );
    operator = startOperator({
      kubeconfig: operatorKubeconfig,
      dir,
      nodeId: 'node-e2e',
      lease: { namespace: identity.leaseNamespace, name: identity.leaseName },
      httpPort: await freePort(),
      owned: true,
      logLevel: 'debug',
    });
    await waitForSocket(operator.socket, operator);
    await waitForHealthz(operator);
    kubelet = new Kubelet(operator.socket, path.join(dir, 'kubelet'));
  });

  after(async function () {
    if (this.currentTest?.state === 'failed') {
      console.log(narrator.lines.join('\n'));
      console.log(operator?.log().slice(-6000));
    }
    await kubelet?.cleanup().catch(() => undefined);
    if (appNamespace) {
      // the operator deletes the disks and snapshots while it still runs
      await deleteTestNamespace(admin, appNamespace);
      const leftovers = async () => ({
        pvs: (await client.list<Volume>(PersistentVolumes)).items
          .filter((pv) => pv.spec?.storageClassName === className)
          .map((pv) => pv.metadata?.name),
        contents: (
          await client.list<KubeObject & { spec: { volumeSnapshotClassName?: string } }>(
            VolumeSnapshotContents,
          )
        ).items
          .filter((c) => c.spec.volumeSnapshotClassName === className)
          .map((c) => c.metadata?.name),
      });
      await waitFor(
        async () => {
          const left = await leftovers();
          return left.pvs.length === 0 && left.contents.length === 0;
        },
        180_000,
        'the e2e disks and snapshots to be deleted',
        async () => JSON.stringify(await leftovers()),
      ).catch((error: Error) => console.log(error.message));
    }
    await operator?.stop();
    if (releaseNamespace) {
      await helm([
        'uninstall',
        release,
        '--kubeconfig',
        controlPlane.kubeconfig,
        '--namespace',
        releaseNamespace,
      ]).catch((error: Error) => console.log(error.message));
      await deleteTestNamespace(admin, releaseNamespace);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('plays the recipe with the operator authenticated only by the ServiceAccount token', async function () {
    outcome = await playRecipe({
      client,
      kubectl: kubectlWith(controlPlane.kubeconfig),
      kubelet: kubelet!,
      namespace: appNamespace,
      storageClass: className,
      snapshotClass: className,
      narrator,
      timeoutMs: 240_000,
    });
    checkOutcome(outcome);
    expect(outcome.restoredEntries).to.deep.equal(['lost+found', 'test']);
    expect(outcome.restoredText).to.equal(outcome.written);

    // the snapshot is the policy's, and the restore came from it
    expect(outcome.snapshot.metadata.labels).to.include({
      'snapback.dev/policy': POLICY,
      'snapback.dev/pvc': WEB_PVC,
    });
    expect(outcome.restoreJob.status?.snapshotName).to.equal(outcome.snapshot.metadata.name);
    expect(outcome.restored.pvc.spec?.dataSource).to.deep.include({
      kind: 'VolumeSnapshot',
      name: outcome.snapshot.metadata.name,
    });
    expect(outcome.restored.pvc.metadata?.name).to.equal(RESTORED_PVC);
    expect(outcome.restored.pv.spec?.csi?.volumeHandle).to.not.equal(
      outcome.source.pv.spec?.csi?.volumeHandle,
    );

    // the operator really acted as the ServiceAccount: it holds the chart's Lease, and the API
    // server never refused it anything along the way
    const lease = await kubectlWith(operatorKubeconfig)([
      '-n',
      identity.leaseNamespace,
      'get',
      'lease',
      identity.leaseName,
      '-o',
      'jsonpath={.spec.holderIdentity}',
    ]);
    expect(lease).to.not.equal('');
    const whoAmI = await kubectlWith(operatorKubeconfig)(['auth', 'whoami', '-o', 'json']);
    expect(
      (JSON.parse(whoAmI) as { status: { userInfo: { username: string } } }).status.userInfo
        .username,
    ).to.equal(`system:serviceaccount:${identity.namespace}:${identity.serviceAccount}`);
    // A write into a namespace another suite is deleting is refused too (403, "being
    // terminated"); that is not a missing permission.
    const refused = operator!
      .log()
      .split('\n')
      .filter((line) => /forbidden|HTTP 403/i.test(line) && !/being terminated/.test(line));
    expect(refused, 'requests the API server refused the operator').to.deep.equal([]);
  });

  it('refuses the same token outside the chart’s rules: Secrets of another namespace (403)', async function () {
    await client.create(Secrets, {
      metadata: { name: 'not-for-snapback', namespace: appNamespace },
      stringData: { password: 'x' },
    } as KubeObject);
    const operatorConfig = new KubeConfig();
    operatorConfig.loadFromFile(operatorKubeconfig);
    const asOperator = new HttpKubeClient(operatorConfig, { qps: 20, burst: 40 });
    expect(
      await httpStatusOf(() => asOperator.get(Secrets, 'not-for-snapback', appNamespace)),
    ).to.equal(403);
    expect(
      await httpStatusOf(() => asOperator.list(Secrets, { namespace: 'kube-system' })),
    ).to.equal(403);
    expect(
      await httpStatusOf(() => asOperator.list(Secrets, { namespace: releaseNamespace })),
    ).to.equal(403);
    // a control: the token itself is good, and what the rules allow is allowed
    expect(
      await httpStatusOf(() => asOperator.list(PersistentVolumes).then((l) => l.items)),
    ).to.equal(200);
    // and the admin can read the secret, so the 403 is about the operator, not the object
    const secret = await client.get(Secrets, 'not-for-snapback', appNamespace);
    expect(secret?.metadata?.name).to.equal('not-for-snapback');
  });

  it('exposes on /metrics the snapshot, restore, CSI, reconcile, queue and last-success metrics after the recipe', async function () {
    if (!outcome) this.skip();
    const response = await fetch(`${operator!.baseUrl}/metrics`);
    const body = await response.text();
    expect(response.status, body).to.equal(200);
    const { types, samples } = parseExposition(body);
    const declared = Object.fromEntries(
      [...types].filter(([name]) => name.startsWith('snapback_')),
    );
    expect(declared).to.include({
      snapback_snapshots_created_total: 'counter',
      snapback_snapshots_failed_total: 'counter',
      snapback_snapshots_pruned_total: 'counter',
      snapback_restores_total: 'counter',
      snapback_csi_operation_duration_seconds: 'histogram',
      snapback_reconcile_duration_seconds: 'histogram',
      snapback_ecs_api_requests_total: 'counter',
      snapback_workqueue_depth: 'gauge',
      snapback_policy_last_success_timestamp_seconds: 'gauge',
    });
    const sum = (name: string, match: (labels: Record<string, string>) => boolean = () => true) =>
      samples.filter((s) => s.name === name && match(s.labels)).reduce((n, s) => n + s.value, 0);
    const ofPolicy = (labels: Record<string, string>) =>
      labels.namespace === appNamespace && labels.policy === POLICY;

    expect(sum('snapback_snapshots_created_total', ofPolicy), 'snapshots created').to.equal(1);
    expect(sum('snapback_snapshots_failed_total', ofPolicy), 'snapshots failed').to.equal(0);
    expect(sum('snapback_snapshots_pruned_total', ofPolicy), 'snapshots pruned').to.equal(0);
    expect(
      sum(
        'snapback_restores_total',
        (l) => l.namespace === appNamespace && l.result === 'succeeded',
      ),
      'restores succeeded',
    ).to.equal(1);
    const lastSuccess = samples.filter(
      (s) => s.name === 'snapback_policy_last_success_timestamp_seconds' && ofPolicy(s.labels),
    );
    expect(
      lastSuccess.map((s) => s.value),
      'last success of the policy',
    ).to.deep.equal([Date.parse(outcome!.policy.status!.lastSuccessfulTime!) / 1000]);
    // what the embedded snapshotter and provisioner asked the driver, as they saw it (the
    // method label may be the RPC's name or the client's camelCase one)
    for (const method of ['CreateVolume', 'CreateSnapshot']) {
      expect(
        sum(
          'snapback_csi_operation_duration_seconds_count',
          (l) =>
            l.driver === 'local.snapback.dev' &&
            (l.method ?? '').toLowerCase().endsWith(method.toLowerCase()) &&
            l.code === 'OK',
        ),
        `CSI ${method} calls`,
      ).to.be.at.least(1);
    }
    for (const controller of ['backuppolicy', 'restorejob']) {
      expect(
        sum('snapback_reconcile_duration_seconds_count', (l) => l.controller === controller),
        `${controller} reconciles`,
      ).to.be.at.least(1);
    }
    const queues = samples.filter((s) => s.name === 'snapback_workqueue_depth');
    expect(queues.map((q) => q.labels.controller).sort(), 'work queue depth series').to.deep.equal([
      'backuppolicy',
      'csi-provisioner',
      'csi-snapshotter',
      'restorejob',
      'snapshot-controller',
    ]);
    for (const queue of queues) expect(queue.value, JSON.stringify(queue.labels)).to.be.at.least(0);
    // the local backend makes no ECS calls: the family is declared, no call is counted
    expect(sum('snapback_ecs_api_requests_total')).to.equal(0);
  });
});

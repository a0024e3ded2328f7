import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { VolumeSnapshot } from '../../src/api/index.js';
import {
  HttpKubeClient,
  PersistentVolumes,
  Secrets,
  type KubeObject,
} from '../../src/kube/index.js';
import { VolumeSnapshotContents, VolumeSnapshots } from '../../src/kube/resource.js';
import { parseMountinfo } from '../../src/driver/backends/local/mounts.js';
import { httpStatusOf } from '../support/cluster.js';
import { KUBELET_DIR, LOCAL_DRIVER_DIR, NODE_NETWORK, type NodeCluster } from '../support/node.js';
import { waitFor } from '../support/processes.js';
import { boundClaim, type Volume } from '../integration/stack/support.js';
import {
  POLICY,
  RESTORED_PVC,
  WEB_PVC,
  apply,
  checkOutcome,
  exec,
  playRecipe,
  RecordingNarrator,
  type RecipeContext,
  type RecipeOutcome,
} from './recipe.js';
import {
  chartController,
  leaderPod,
  parseExposition,
  podMetrics,
  podsOf,
  serviceAccountKubeconfig,
  type ChartController,
  type Kubectl,
  type PodList,
  whyNotReady,
  RELEASE,
  RELEASE_NAMESPACE,
  CLASS,
  CONTROLLER_HTTP_PORT,
  chartOnNode,
} from './support.js';

const DRIVER = 'local.snapback.dev';

/**
 * Where the node uses a PV: kubelet's publish mount in a pod's directory, the staging mount
 * NodeStageVolume made (under plugins/kubernetes.io/csi/<driver>/<sha256 of the handle>), and
 * the loop device of the local driver's disk image.
 */
function volumeUseOnNode(pv: Volume): { published: string[]; staged: string[]; loops: string[] } {
  const name = pv.metadata!.name!;
  const handle = pv.spec!.csi!.volumeHandle;
  const hash = createHash('sha256').update(handle).digest('hex');
  const mounts = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).map(
    (m) => m.mountPoint,
  );
  const image = path.join(LOCAL_DRIVER_DIR, 'disks', `${handle.split('@')[0]}.img`);
  const loops = existsSync(image)
    ? execFileSync('losetup', ['--associated', image], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l !== '')
    : [];
  return {
    published: mounts.filter(
      (m) => m.startsWith(`${KUBELET_DIR}/pods/`) && m.includes(`/kubernetes.io~csi/${name}/`),
    ),
    staged: mounts.filter(
      (m) => m === `${KUBELET_DIR}/plugins/kubernetes.io/csi/${DRIVER}/${hash}/globalmount`,
    ),
    loops,
  };
}

const notReady = (pods: PodList) =>
  pods.items.filter((p) => !(p.status.containerStatuses ?? []).every((c) => c.ready));

/**
 * The chart installed with its default values on a real node (kubelet, containerd,
 * kube-proxy): its pods run from the images `make image` built, pulled by their published
 * names through the local registry; kubelet registers the node plugin and stages and publishes
 * the pods' volumes through it; the controllers act as the chart's ServiceAccount.
 */
describe('node: the chart on a kubelet, and the recipe with real pods', function () {
  this.timeout(600_000);
  const narrator = new RecordingNarrator();
  let dir = '';
  let cluster: NodeCluster | undefined;
  let kubectl: Kubectl;
  let client: HttpKubeClient;
  let identity: ChartController;

  before(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-node-e2e-'));
    ({ cluster, kubectl, client } = await chartOnNode(dir));
    identity = await chartController(kubectl, RELEASE_NAMESPACE, RELEASE);
  });

  afterEach(async function () {
    if (this.currentTest?.state !== 'failed' || !cluster) return;
    console.log(narrator.lines.join('\n'));
    console.log(
      await kubectl([
        '-n',
        RELEASE_NAMESPACE,
        'logs',
        '-l',
        'app.kubernetes.io/instance=snapback',
        '--all-containers',
        '--prefix',
        '--tail=60',
      ]).catch((error: Error) => error.message),
    );
  });

  after(async function () {
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('brings the controller replicas (one leader) and the node plugin (driver + registrar) to Ready, and kubelet lists the driver in CSINode', async function () {
    let pods: PodList = { items: [] };
    await waitFor(
      async () => {
        pods = await podsOf(kubectl, RELEASE_NAMESPACE);
        return pods.items.length === 3 && notReady(pods).length === 0;
      },
      180_000,
      'the chart’s three pods to be Ready',
      () => JSON.stringify(pods.items.map((p) => ({ name: p.metadata.name, status: p.status }))),
    );
    expect(pods.items.map((p) => p.spec.nodeName)).to.deep.equal(
      Array(3).fill(NODE_NETWORK.nodeName),
    );
    const node = pods.items.find(
      (p) => p.metadata.labels?.['app.kubernetes.io/component'] === 'node',
    );
    expect(node?.status.containerStatuses?.map((c) => c.name).sort()).to.deep.equal([
      'driver',
      'node-driver-registrar',
    ]);
    const controllers = pods.items.filter(
      (p) => p.metadata.labels?.['app.kubernetes.io/component'] === 'controller',
    );
    expect(controllers).to.have.length(2);
    for (const pod of controllers)
      expect(pod.spec.serviceAccountName).to.equal(identity.serviceAccount);
    const leader = await waitFor(() => leaderPod(kubectl, identity), 60_000, 'a Lease holder');
    expect(controllers.map((p) => p.metadata.name)).to.include(leader);

    const drivers = await waitFor(
      async () => {
        const out = await kubectl([
          'get',
          'csinode',
          NODE_NETWORK.nodeName,
          '-o',
          'jsonpath={.spec.drivers[*].name}',
        ]);
        return out.split(' ').includes(DRIVER) ? out : '';
      },
      60_000,
      `kubelet to register ${DRIVER} in CSINode`,
    );
    expect(drivers.split(' ')).to.include(DRIVER);
  });

  it('a pod that never gets Ready is explained in one line: its container, the reason, its log', async function () {
    const namespace = 'not-ready';
    await kubectl(['create', 'namespace', namespace]);
    await kubectl([
      '-n',
      namespace,
      'run',
      'stuck',
      '--image=nginx:no-such-tag',
      '--labels=app=stuck',
    ]);
    let why = '';
    await waitFor(
      async () => {
        why = await whyNotReady(kubectl, namespace, 'app=stuck');
        return /ErrImagePull|ImagePullBackOff/.test(why);
      },
      60_000,
      'the pull of nginx:no-such-tag to fail',
      () => why,
    );
    expect(why).to.not.include('\n');
    expect(why).to.match(
      /^pod stuck container stuck: (ErrImagePull|ImagePullBackOff) \(.*nginx:no-such-tag/,
    );
    expect(why).to.include(`log: kubectl -n ${namespace} logs stuck -c stuck`);
    await kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  describe('the recipe, played with kubectl exec', function () {
    const namespace = 'recipe';
    let outcome: RecipeOutcome | undefined;

    before(async function () {
      await kubectl(['create', 'namespace', namespace]);
    });

    it('web-0 writes /data/test, BackupPolicy backs it up, RestoreJob restores it, web-restore-0 lists it; the controllers are refused nothing', async function () {
      outcome = await playRecipe({
        client,
        kubectl,
        namespace,
        storageClass: CLASS,
        snapshotClass: CLASS,
        narrator,
        timeoutMs: 240_000,
      });
      checkOutcome(outcome);
      expect(outcome.restoredEntries).to.deep.equal(['lost+found', 'test']);
      expect(outcome.restoredText).to.equal(outcome.written);
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
      // kubelet staged and published both disks through the node plugin, and they are in use
      for (const pv of [outcome.source.pv, outcome.restored.pv]) {
        const use = volumeUseOnNode(pv);
        expect(use.published, `${pv.metadata!.name} published`).to.have.length(1);
        expect(use.staged, `${pv.metadata!.name} staged`).to.have.length(1);
        expect(use.loops, `${pv.metadata!.name} on a loop device`).to.have.length(1);
      }
      // the controller pods acted as the ServiceAccount and the API server refused them nothing
      const logs = await kubectl([
        '-n',
        RELEASE_NAMESPACE,
        'logs',
        '-l',
        'app.kubernetes.io/component=controller',
        '--all-containers',
        '--tail=-1',
      ]);
      const refused = logs.split('\n').filter((line) => /forbidden|HTTP 403/i.test(line));
      expect(refused, 'requests the API server refused the controllers').to.deep.equal([]);
    });

    it('refuses the ServiceAccount’s token outside the chart’s rules: Secrets (403)', async function () {
      await client.create(Secrets, {
        metadata: { name: 'not-for-snapback', namespace },
        stringData: { password: 'x' },
      } as KubeObject);
      const file = path.join(dir, 'operator.kubeconfig');
      const admin = new KubeConfig();
      admin.loadFromFile(cluster!.kubeconfig);
      await serviceAccountKubeconfig(admin, identity.namespace, identity.serviceAccount, file);
      const asOperator = new KubeConfig();
      asOperator.loadFromFile(file);
      const operator = new HttpKubeClient(asOperator, { qps: 20, burst: 40 });
      expect(
        await httpStatusOf(() => operator.get(Secrets, 'not-for-snapback', namespace)),
      ).to.equal(403);
      expect(
        await httpStatusOf(() => operator.list(Secrets, { namespace: 'kube-system' })),
      ).to.equal(403);
      expect(
        await httpStatusOf(() => operator.list(Secrets, { namespace: RELEASE_NAMESPACE })),
      ).to.equal(403);
      // a control: the token itself is good, and what the rules allow is allowed
      expect(
        await httpStatusOf(() => operator.list(PersistentVolumes).then((l) => l.items)),
      ).to.equal(200);
      expect((await client.get(Secrets, 'not-for-snapback', namespace))?.metadata?.name).to.equal(
        'not-for-snapback',
      );
    });

    it('the leader exposes on /metrics the snapshot, restore, CSI, reconcile, queue and last-success metrics of the recipe', async function () {
      if (!outcome) this.skip();
      const leader = await leaderPod(kubectl, identity);
      const { types, samples } = parseExposition(
        await podMetrics(kubectl, RELEASE_NAMESPACE, leader, CONTROLLER_HTTP_PORT),
      );
      expect(
        Object.fromEntries([...types].filter(([name]) => name.startsWith('snapback_'))),
      ).to.include({
        snapback_snapshots_created_total: 'counter',
        snapback_snapshots_failed_total: 'counter',
        snapback_snapshots_pruned_total: 'counter',
        snapback_restores_total: 'counter',
        snapback_csi_operation_duration_seconds: 'histogram',
        snapback_reconcile_duration_seconds: 'histogram',
        snapback_workqueue_depth: 'gauge',
        snapback_policy_last_success_timestamp_seconds: 'gauge',
      });
      const sum = (name: string, match: (labels: Record<string, string>) => boolean = () => true) =>
        samples.filter((s) => s.name === name && match(s.labels)).reduce((n, s) => n + s.value, 0);
      const ofPolicy = (labels: Record<string, string>) =>
        labels.namespace === namespace && labels.policy === POLICY;
      expect(sum('snapback_snapshots_created_total', ofPolicy), 'snapshots created').to.equal(1);
      expect(sum('snapback_snapshots_failed_total', ofPolicy), 'snapshots failed').to.equal(0);
      expect(
        sum(
          'snapback_restores_total',
          (l) => l.namespace === namespace && l.result === 'succeeded',
        ),
        'restores succeeded',
      ).to.equal(1);
      expect(
        samples
          .filter(
            (s) =>
              s.name === 'snapback_policy_last_success_timestamp_seconds' && ofPolicy(s.labels),
          )
          .map((s) => s.value),
      ).to.deep.equal([Date.parse(outcome!.policy.status!.lastSuccessfulTime!) / 1000]);
      for (const method of ['CreateVolume', 'CreateSnapshot']) {
        expect(
          sum(
            'snapback_csi_operation_duration_seconds_count',
            (l) =>
              l.driver === DRIVER &&
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
    });
  });

  /**
   * As the Kubernetes storage e2e suite "snapshottable" does it: data written through a pod,
   * the pod gone and the volume no longer in use on the node, a snapshot, the source changed,
   * a restore that holds the original data; the content deleted or kept by its class's
   * deletion policy.
   */
  describe('snapshottable: provisioned snapshots through pods', function () {
    const namespace = 'snapshottable';
    let context: RecipeContext;

    before(async function () {
      await kubectl(['create', 'namespace', namespace]);
      context = {
        client,
        kubectl,
        namespace,
        storageClass: CLASS,
        snapshotClass: CLASS,
        narrator,
        timeoutMs: 180_000,
      };
      await apply(context, [
        {
          apiVersion: 'snapshot.storage.k8s.io/v1',
          kind: 'VolumeSnapshotClass',
          metadata: { name: 'snapback-local-retain' },
          driver: DRIVER,
          deletionPolicy: 'Retain',
        },
      ]);
    });

    /** A pod that mounts `claim` at /mnt/test and stays up; resolves once it is Ready. */
    async function podWith(name: string, claim: string): Promise<void> {
      await apply(context, [
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name, namespace },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [
              {
                name: 'app',
                image: 'nginx',
                volumeMounts: [{ name: 'data', mountPath: '/mnt/test' }],
              },
            ],
            volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim } }],
          },
        },
      ]);
      await kubectl([
        '-n',
        namespace,
        'wait',
        '--for=condition=Ready',
        `pod/${name}`,
        '--timeout=180s',
      ]);
    }

    /**
     * Deletes a pod and waits until the node no longer uses its volume: not in the Node's
     * volumesInUse (what the suite checks; kubelet lists only attachable volumes there, and
     * this driver's CSIDriver says attachRequired: false), and neither published, staged nor
     * on a loop device on the node.
     */
    async function podGone(name: string, pv: Volume): Promise<void> {
      await kubectl(['-n', namespace, 'delete', 'pod', name, '--wait=true', '--timeout=120s']);
      const unique = `kubernetes.io/csi/${DRIVER}^${pv.spec!.csi!.volumeHandle}`;
      let last = '';
      await waitFor(
        async () => {
          const inUse = await kubectl([
            'get',
            'node',
            NODE_NETWORK.nodeName,
            '-o',
            'jsonpath={.status.volumesInUse}',
          ]);
          const use = volumeUseOnNode(pv);
          last = JSON.stringify({ inUse, ...use });
          return (
            !inUse.includes(unique) &&
            [use.published, use.staged, use.loops].every((l) => l.length === 0)
          );
        },
        120_000,
        `the node to stop using ${pv.metadata!.name}`,
        () => last,
      );
    }

    async function claim(name: string, dataSource?: string): Promise<{ pv: Volume }> {
      await apply(context, [
        {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: { name, namespace },
          spec: {
            accessModes: ['ReadWriteOnce'],
            storageClassName: CLASS,
            resources: { requests: { storage: '1Gi' } },
            ...(dataSource
              ? {
                  dataSource: {
                    apiGroup: 'snapshot.storage.k8s.io',
                    kind: 'VolumeSnapshot',
                    name: dataSource,
                  },
                }
              : {}),
          },
        },
      ]);
      return boundClaim(client, namespace, name, 180_000);
    }

    async function readySnapshot(name: string, pvc: string, className: string) {
      await apply(context, [
        {
          apiVersion: 'snapshot.storage.k8s.io/v1',
          kind: 'VolumeSnapshot',
          metadata: { name, namespace },
          spec: { volumeSnapshotClassName: className, source: { persistentVolumeClaimName: pvc } },
        },
      ]);
      const snapshot = await waitFor(
        async () => {
          const s = await client.get<VolumeSnapshot>(VolumeSnapshots, name, namespace);
          return s?.status?.readyToUse ? s : undefined;
        },
        180_000,
        `VolumeSnapshot ${name} to be ready`,
        async () =>
          JSON.stringify(
            (await client.get<VolumeSnapshot>(VolumeSnapshots, name, namespace))?.status,
          ),
      );
      const content = await client.get<
        KubeObject & { spec: Record<string, unknown>; status?: Record<string, unknown> }
      >(VolumeSnapshotContents, snapshot.status!.boundVolumeSnapshotContentName!);
      return { snapshot, content: content! };
    }

    const snapshotImage = (handle: string) =>
      path.join(LOCAL_DRIVER_DIR, 'snapshots', `${handle.split('@')[0]}.img`);

    it('restores the data written before the snapshot, not the later change; Delete removes the content and the backend snapshot', async function () {
      const source = await claim('source');
      await podWith('writer', 'source');
      await exec(context, 'writer', ['sh', '-c', 'echo original > /mnt/test/data && sync']);
      await podGone('writer', source.pv);

      const { snapshot, content } = await readySnapshot('snap', 'source', CLASS);
      // the fields the suite checks: bound both ways, the driver's handle, the size
      expect(snapshot.status?.creationTime).to.be.a('string');
      expect(snapshot.status?.restoreSize).to.equal('1Gi');
      expect(content.spec).to.deep.include({ driver: DRIVER, deletionPolicy: 'Delete' });
      expect(content.spec.volumeSnapshotRef).to.deep.include({ name: 'snap', namespace });
      const handle = (content.status as { snapshotHandle?: string } | undefined)?.snapshotHandle;
      expect(handle).to.be.a('string');
      expect(existsSync(snapshotImage(handle!)), 'the backend snapshot').to.equal(true);

      await podWith('changer', 'source');
      await exec(context, 'changer', ['sh', '-c', 'echo modified > /mnt/test/data && sync']);
      await podGone('changer', source.pv);

      const restored = await claim('restored', 'snap');
      expect(restored.pv.spec?.csi?.volumeHandle).to.not.equal(source.pv.spec?.csi?.volumeHandle);
      await podWith('reader', 'restored');
      expect(await exec(context, 'reader', ['cat', '/mnt/test/data'])).to.equal('original\n');
      await podGone('reader', restored.pv);
      // forceDelete is false in the chart's class: the snapshot waits for the disk made from it
      await kubectl([
        '-n',
        namespace,
        'delete',
        'pvc',
        'restored',
        '--wait=true',
        '--timeout=120s',
      ]);

      await kubectl([
        '-n',
        namespace,
        'delete',
        'volumesnapshot',
        'snap',
        '--wait=true',
        '--timeout=120s',
      ]);
      await waitFor(
        async () => !(await client.get(VolumeSnapshotContents, content.metadata!.name!)),
        120_000,
        `VolumeSnapshotContent ${content.metadata!.name} to be deleted (deletionPolicy Delete)`,
      );
      await waitFor(
        () => !existsSync(snapshotImage(handle!)),
        60_000,
        `the backend snapshot ${handle} to be deleted`,
      );
    });

    it('Retain keeps the content and the backend snapshot after the VolumeSnapshot is deleted', async function () {
      const { content } = await readySnapshot('kept', 'source', 'snapback-local-retain');
      const handle = (content.status as { snapshotHandle: string }).snapshotHandle;
      await kubectl([
        '-n',
        namespace,
        'delete',
        'volumesnapshot',
        'kept',
        '--wait=true',
        '--timeout=120s',
      ]);
      const kept = await client.get<KubeObject & { spec: { deletionPolicy: string } }>(
        VolumeSnapshotContents,
        content.metadata!.name!,
      );
      expect(kept?.spec.deletionPolicy).to.equal('Retain');
      expect(existsSync(snapshotImage(handle)), 'the backend snapshot').to.equal(true);
      // the admin deletes a retained content; its backend snapshot stays, as Retain promises
      await kubectl([
        'delete',
        'volumesnapshotcontent',
        content.metadata!.name!,
        '--wait=true',
        '--timeout=60s',
      ]);
      expect(existsSync(snapshotImage(handle))).to.equal(true);
    });
  });
});

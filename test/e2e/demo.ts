/**
 * `make demo`: the original ACK backup-and-restore recipe, automated by snapback, on a cluster
 * of its own with a real node. It starts etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler, containerd, kubelet and kube-proxy, `helm install`s the chart with its
 * default values (the controllers and the node plugin run as pods from the images `make image`
 * built), and plays the recipe with `kubectl exec`: StatefulSet web writes /data/test, a
 * BackupPolicy backs it up, a RestoreJob restores it, StatefulSet web-restore lists it.
 * Everything it starts is stopped by PID and unmounted at the end, on failure and on Ctrl-C
 * too; a run killed outright is cleaned up by the next.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { HttpKubeClient } from '../../src/kube/index.js';
import {
  NODE_NETWORK,
  localNodeImages,
  nodePrerequisiteProblem,
  startNodeCluster,
  stopNode,
  stopNodeOwnedBy,
  type NodeCluster,
} from '../support/node.js';
import { reapOwnedBy } from '../support/control-plane.js';
import { killQuietly } from '../support/processes.js';
import { checkOutcome, playRecipe, type Narrator } from './recipe.js';
import {
  chartController,
  helmIn,
  installChart,
  kubectlWith,
  leaderPod,
  podMetrics,
  podsOf,
  type Kubectl,
  RELEASE,
  RELEASE_NAMESPACE,
  CLASS,
  CONTROLLER_HTTP_PORT,
} from './support.js';

const TIMEOUT_MS = 180_000;

const cache =
  process.env.SNAPBACK_CACHE ??
  path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'snapback');
const home = path.join(cache, 'demo');
/** Everything one run makes: control plane, node, helm's home. Removed at the end. */
const runDir = path.join(home, 'run');
/** The last run's logs, kept for reading after a failure. */
const logDir = path.join(home, 'logs');

const started = Date.now();
const seconds = () => ((Date.now() - started) / 1000).toFixed(1);

let stepNumber = 0;
let stepTitle = 'preparing';
const narrator: Narrator = {
  step(title) {
    stepTitle = title;
    console.log(`\n==> ${++stepNumber}. ${title} (at ${seconds()} s)`);
  },
  note(text) {
    console.log(`    ${text}`);
  },
  shell(command, output) {
    console.log(`$ ${command}`);
    if (output !== '') process.stdout.write(output.endsWith('\n') ? output : `${output}\n`);
  },
};

let cluster: NodeCluster | undefined;

/** Keeps the logs of every component and of the chart's pods in logDir. */
async function keepLogs(kubectl: Kubectl | undefined): Promise<void> {
  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  if (!cluster) return;
  if (kubectl) {
    const pods = await podsOf(kubectl, RELEASE_NAMESPACE).catch(() => ({ items: [] }));
    for (const pod of pods.items) {
      const log = await kubectl([
        '-n',
        RELEASE_NAMESPACE,
        'logs',
        pod.metadata.name,
        '--all-containers',
        '--prefix',
      ]).catch((error: Error) => error.message);
      writeFileSync(path.join(logDir, `pod-${pod.metadata.name}.log`), log);
    }
  }
  for (const dir of [cluster.controlPlane.state.dir, cluster.node.dir]) {
    if (!existsSync(dir)) continue;
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.log'))) {
      copyFileSync(path.join(dir, file), path.join(logDir, file));
    }
  }
}

let kubectl: Kubectl | undefined;

async function stopEverything(): Promise<void> {
  await keepLogs(kubectl).catch(() => undefined);
  if (cluster) {
    await cluster.stop();
  } else {
    // interrupted while the cluster was starting: what it had started is on record
    await stopNodeOwnedBy(process.pid);
    reapOwnedBy(process.pid);
  }
  cluster = undefined;
  rmSync(runDir, { recursive: true, force: true });
}

let stopping: Promise<void> | undefined;
const stop = (): Promise<void> => (stopping ??= stopEverything());

/** Last resort when the process exits without the orderly stop (a second Ctrl-C). */
function killSynchronously(): void {
  if (!cluster) return;
  const { node, controlPlane } = cluster;
  const pids = [...Object.values(node.pids), node.registry.pid, ...controlPlane.pids];
  for (const pid of pids) if (pid) killQuietly(pid, 'SIGKILL');
}

let signalled = false;

function onSignal(signal: NodeJS.Signals, code: number): void {
  process.on(signal, () => {
    if (signalled) {
      console.error(`\n${signal} again: killing what the demo started`);
      const left = cluster;
      killSynchronously();
      // the node's mounts, loop devices, netns, rules and bridge, with its processes dead
      void (left ? stopNode(left.node) : Promise.resolve()).finally(() => process.exit(code));
      return;
    }
    signalled = true;
    console.error(`\n${signal}: stopping what the demo started (PIDs), unmounting its volumes`);
    stop().then(
      () => process.exit(code),
      (error: unknown) => {
        console.error(`clean-up failed: ${(error as Error).message}`);
        killSynchronously();
        process.exit(code);
      },
    );
  });
}

async function demo(): Promise<void> {
  const images = localNodeImages();
  const problem = nodePrerequisiteProblem(images);
  if (problem) throw new Error(problem);
  mkdirSync(home, { recursive: true });
  // a run killed outright: its node is cleaned up by startNodeCluster, its control plane is
  // reaped as an orphan (this process becomes the owner of both)
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  console.log('snapback demo: the ACK backup-and-restore recipe, automated, on a local node');
  console.log(`(state in ${runDir}, logs kept in ${logDir})`);

  narrator.step(
    'Start a cluster with one node: etcd, kube-apiserver, kube-controller-manager, ' +
      'kube-scheduler, containerd, kubelet, kube-proxy',
  );
  cluster = await startNodeCluster({
    owned: false,
    owner: process.pid,
    baseDir: runDir,
    images,
    readyTimeoutMs: TIMEOUT_MS,
  });
  const { controlPlane, node } = cluster;
  narrator.note(
    `${controlPlane.state.server}; images from the registry on 127.0.0.1:${node.registry.port}`,
  );
  narrator.note(`While the demo runs: export KUBECONFIG=${cluster.kubeconfig}`);
  kubectl = kubectlWith(cluster.kubeconfig);
  narrator.shell('kubectl get nodes -o wide', await kubectl(['get', 'nodes', '-o', 'wide']));
  const admin = new k8s.KubeConfig();
  admin.loadFromFile(cluster.kubeconfig);
  const client = new HttpKubeClient(admin, { qps: 50, burst: 100 });

  narrator.step('Install the Helm chart with its default values (the local disk backend)');
  const { args, output } = await installChart({
    helm: helmIn(path.join(runDir, 'helm')),
    kubectl,
    kubeconfig: cluster.kubeconfig,
    release: RELEASE,
    namespace: RELEASE_NAMESPACE,
    timeoutSeconds: TIMEOUT_MS / 1000,
  });
  narrator.shell(`helm ${args.join(' ')}`, output);
  narrator.shell(
    `kubectl -n ${RELEASE_NAMESPACE} get pods -o wide`,
    await kubectl(['-n', RELEASE_NAMESPACE, 'get', 'pods', '-o', 'wide']),
  );
  narrator.shell(
    `kubectl get csinode ${NODE_NETWORK.nodeName}`,
    await kubectl(['get', 'csinode', NODE_NETWORK.nodeName]),
  );
  const identity = await chartController(kubectl, RELEASE_NAMESPACE, RELEASE);
  narrator.note(
    `The controllers run as ServiceAccount ${identity.namespace}/${identity.serviceAccount}; ` +
      'one replica holds the Lease and leads:',
  );
  narrator.shell(
    `kubectl -n ${identity.leaseNamespace} get lease ${identity.leaseName}`,
    await kubectl(['-n', identity.leaseNamespace, 'get', 'lease', identity.leaseName]),
  );
  narrator.shell(
    `kubectl get storageclass,volumesnapshotclass ${CLASS}`,
    await kubectl(['get', `storageclass/${CLASS}`, `volumesnapshotclass/${CLASS}`]),
  );

  const outcome = await playRecipe({
    client,
    kubectl,
    namespace: 'default',
    storageClass: CLASS,
    snapshotClass: CLASS,
    narrator,
    timeoutMs: TIMEOUT_MS,
  });
  checkOutcome(outcome);

  narrator.step('What the leading controller reports on /metrics');
  const leader = await leaderPod(kubectl, identity);
  const metrics = await podMetrics(kubectl, RELEASE_NAMESPACE, leader, CONTROLLER_HTTP_PORT);
  narrator.shell(
    `kubectl get --raw /api/v1/namespaces/${RELEASE_NAMESPACE}/pods/${leader}:${CONTROLLER_HTTP_PORT}/proxy/metrics | grep -E '^snapback_(snapshots|restores|policy)'`,
    metrics
      .split('\n')
      .filter((l) => /^snapback_(snapshots|restores|policy)/.test(l))
      .join('\n'),
  );
}

onSignal('SIGINT', 130);
onSignal('SIGTERM', 143);
onSignal('SIGHUP', 129);

async function main(): Promise<void> {
  try {
    await demo();
    await stop();
    console.log(
      `\nmake demo passed in ${seconds()} s: web-restore-0, on the disk RestoreJob web-restore ` +
        'restored, lists "lost+found  test", and /data/test holds the text written before the backup.',
    );
  } catch (error) {
    const message = (error as Error).message;
    await stop().catch((cleanupError: unknown) =>
      console.error(`clean-up failed: ${(cleanupError as Error).message}`),
    );
    // a step that failed because it was interrupted: the signal handler exits
    if (signalled) return;
    console.error(
      `\nmake demo failed at step ${stepNumber} (${stepTitle}) after ${seconds()} s:\n${message}\n` +
        `logs: ${logDir}`,
    );
    process.exitCode = 1;
  }
}

await main();

/**
 * `make demo`: the original ACK backup-and-restore recipe, automated by snapback, on a
 * control plane of its own. It starts etcd, kube-apiserver and kube-controller-manager, installs
 * the Helm chart, runs `snapback all-in-one --backend=local` as the chart's ServiceAccount,
 * writes /data/test into the `web` disk, backs it up with a BackupPolicy, restores it with a
 * RestoreJob and lists the restored disk. Everything it starts is stopped by PID and unmounted
 * at the end, on failure and on Ctrl-C too; a run killed outright is cleaned up by the next.
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { HttpKubeClient, Leases, type KubeObject } from '../../src/kube/index.js';
import { detachLoopsUnder, unmountUnder } from '../support/mounts.js';
import {
  freePort,
  runRegistryDir,
  startControlPlane,
  type ControlPlane,
  type ControlPlaneState,
} from '../support/control-plane.js';
import { commandLine, isAlive, killQuietly, waitFor } from '../support/processes.js';
import { Kubelet, waitForSocket } from '../integration/stack/support.js';
import { checkOutcome, playRecipe, type Narrator } from './recipe.js';
import {
  chartController,
  chartDir,
  helmIn,
  kubectlWith,
  serviceAccountKubeconfig,
  startOperator,
  waitForHealthz,
  type Operator,
} from './support.js';

const RELEASE = 'snapback';
const RELEASE_NAMESPACE = 'snapback-system';
/** The chart's classes for the local backend (snapback-<backend>). */
const CLASS = 'snapback-local';
const NODE_ID = 'demo-node';
const TIMEOUT_MS = 180_000;

const cache =
  process.env.SNAPBACK_CACHE ??
  path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'snapback');
const home = path.join(cache, 'demo');
/** Everything one run makes: control plane, disk images, mounts. Removed at the end. */
const runDir = path.join(home, 'run');
/** The last run's logs, kept for reading after a failure. */
const logDir = path.join(home, 'logs');
const stateFile = path.join(home, 'state.json');

interface DemoState {
  owner: number;
  controlPlane?: ControlPlaneState;
  operator?: number;
}

const belongsToRun = (pid: number): boolean =>
  isAlive(pid) && (commandLine(pid) ?? '').includes(runDir);

function saveState(state: DemoState): void {
  writeFileSync(stateFile, JSON.stringify(state, null, 2));
}

/**
 * Unmounts whatever is still mounted under the run directory and detaches the loop devices of
 * its disk images: what a driver stopped mid-way, or killed, leaves behind.
 */
function scrubMounts(): void {
  unmountUnder(runDir);
  detachLoopsUnder([runDir]);
}

/** A previous run killed outright (SIGKILL, a closed terminal) left processes and mounts. */
async function cleanUpPreviousRun(): Promise<void> {
  if (existsSync(stateFile)) {
    const previous = JSON.parse(readFileSync(stateFile, 'utf8')) as DemoState;
    if (previous.owner !== process.pid && isAlive(previous.owner)) {
      const cmd = commandLine(previous.owner) ?? '';
      if (cmd.includes('demo.ts')) {
        throw new Error(`another make demo is running (pid ${previous.owner}); wait for it`);
      }
    }
    const pids = [previous.operator, ...Object.values(previous.controlPlane?.pids ?? {})].filter(
      (pid): pid is number => pid !== undefined && belongsToRun(pid),
    );
    for (const pid of pids) killQuietly(pid, 'SIGKILL');
    await waitFor(
      () => pids.every((pid) => !isAlive(pid)),
      10_000,
      `the previous run's processes (${pids.join(' ')}) to exit`,
    );
    if (pids.length > 0) console.log(`stopped processes a previous run left: ${pids.join(' ')}`);
    if (previous.controlPlane) {
      rmSync(path.join(runRegistryDir(), `${path.basename(previous.controlPlane.dir)}.json`), {
        force: true,
      });
    }
  }
  if (existsSync(runDir)) {
    scrubMounts();
    rmSync(runDir, { recursive: true, force: true });
  }
  rmSync(stateFile, { force: true });
}

function preflight(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'make demo needs root: the local disk backend attaches loop devices, makes ext4 file ' +
        'systems and mounts them (see Prerequisites in README.md)',
    );
  }
  const dirs = (process.env.PATH ?? '').split(':');
  const missing = ['losetup', 'mkfs.ext4', 'blkid', 'mount', 'umount', 'resize2fs'].filter(
    (command) => !dirs.some((dir) => existsSync(path.join(dir, command))),
  );
  if (missing.length > 0) {
    throw new Error(`make demo needs ${missing.join(', ')} (util-linux, e2fsprogs) on the PATH`);
  }
}

let stepNumber = 0;
let stepTitle = 'preparing';
const narrator: Narrator = {
  step(title) {
    stepTitle = title;
    console.log(`\n==> ${++stepNumber}. ${title}`);
  },
  note(text) {
    console.log(`    ${text}`);
  },
  shell(command, output) {
    console.log(`$ ${command}`);
    if (output !== '') process.stdout.write(output.endsWith('\n') ? output : `${output}\n`);
  },
};

/** Set once this process has taken the run directory over from any previous run. */
let ownsRun = false;

/** What the run started, for the clean-up whatever way the run ends. */
const running: {
  controlPlane?: ControlPlane;
  operator?: Operator;
  kubelet?: Kubelet;
} = {};

function keepLogs(): void {
  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  const files = [running.operator?.logFile];
  const cpDir = running.controlPlane?.state.dir;
  if (cpDir && existsSync(cpDir)) {
    files.push(
      ...readdirSync(cpDir)
        .filter((f) => f.endsWith('.log'))
        .map((f) => path.join(cpDir, f)),
    );
  }
  for (const file of files) {
    if (file && existsSync(file)) copyFileSync(file, path.join(logDir, path.basename(file)));
  }
}

async function stopEverything(): Promise<void> {
  if (!ownsRun) return;
  keepLogs();
  await running.kubelet?.cleanup().catch(() => undefined);
  await running.operator?.stop();
  await running.controlPlane?.stop();
  scrubMounts();
  rmSync(runDir, { recursive: true, force: true });
  rmSync(stateFile, { force: true });
}

let stopping: Promise<void> | undefined;
const stop = (): Promise<void> => (stopping ??= stopEverything());

/** Last resort when the process exits without the orderly stop (a second Ctrl-C). */
function killSynchronously(): void {
  const pids = [running.operator?.pid, ...(running.controlPlane?.pids ?? [])];
  for (const pid of pids) if (pid !== undefined && belongsToRun(pid)) killQuietly(pid, 'SIGKILL');
}

let signalled = false;

function onSignal(signal: NodeJS.Signals, code: number): void {
  process.on(signal, () => {
    if (signalled) {
      console.error(`\n${signal} again: killing what the demo started`);
      killSynchronously();
      if (ownsRun) scrubMounts();
      process.exit(code);
    }
    signalled = true;
    console.error(`\n${signal}: stopping what the demo started (PIDs), unmounting its volumes`);
    // the same stop as a failed step's, if one already began (a step's child got the signal too)
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
  preflight();
  mkdirSync(home, { recursive: true });
  await cleanUpPreviousRun();
  ownsRun = true;
  mkdirSync(runDir, { recursive: true });
  saveState({ owner: process.pid });
  console.log(
    'snapback demo: the ACK backup-and-restore recipe, automated, on a local control plane',
  );
  console.log(`(state in ${runDir}, logs kept in ${logDir})`);

  narrator.step('Start a control plane: etcd, kube-apiserver, kube-controller-manager');
  running.controlPlane = await startControlPlane({ owned: false, baseDir: runDir });
  const controlPlane = running.controlPlane;
  saveState({ owner: process.pid, controlPlane: controlPlane.state });
  narrator.note(
    `${controlPlane.state.server}, PIDs ${controlPlane.pids.join(' ')}; no scheduler and no kubelet.`,
  );
  narrator.note(`While the demo runs: export KUBECONFIG=${controlPlane.kubeconfig}`);
  const kubectl = kubectlWith(controlPlane.kubeconfig);
  const admin = new k8s.KubeConfig();
  admin.loadFromFile(controlPlane.kubeconfig);
  const client = new HttpKubeClient(admin, { qps: 50, burst: 100 });

  narrator.step('Install the Helm chart with the local disk backend');
  const helm = helmIn(path.join(runDir, 'helm'));
  const install = ['install', RELEASE, 'charts/snapback', '--namespace', RELEASE_NAMESPACE];
  const installArgs = [...install, '--create-namespace', '--set', 'driver.backend=local'];
  const helmOutput = await helm([
    ...installArgs.map((a) => (a === 'charts/snapback' ? chartDir : a)),
    '--kubeconfig',
    controlPlane.kubeconfig,
  ]);
  narrator.shell(`helm ${installArgs.join(' ')}`, helmOutput);
  const crds = (await kubectl(['get', 'crd', '-o', 'name'])).trim().split('\n');
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...crds]);
  narrator.shell('kubectl get crd', await kubectl(['get', 'crd']));
  narrator.shell(
    `kubectl get storageclass,volumesnapshotclass ${CLASS}`,
    await kubectl(['get', `storageclass/${CLASS}`, `volumesnapshotclass/${CLASS}`]),
  );
  narrator.shell(
    `kubectl -n ${RELEASE_NAMESPACE} get deployment,daemonset,serviceaccount`,
    await kubectl(['-n', RELEASE_NAMESPACE, 'get', 'deployment,daemonset,serviceaccount']),
  );
  narrator.note(
    'Without a kubelet these workloads get no pods; the next step runs the same snapback ' +
      "binary as a local process, with the Deployment's ServiceAccount and Lease.",
  );

  narrator.step("Run snapback all-in-one as the chart's ServiceAccount");
  const identity = await chartController(kubectl, RELEASE_NAMESPACE, RELEASE);
  const operatorDir = path.join(runDir, 'operator');
  mkdirSync(operatorDir, { recursive: true });
  const operatorKubeconfig = path.join(operatorDir, 'kubeconfig');
  await serviceAccountKubeconfig(
    admin,
    identity.namespace,
    identity.serviceAccount,
    operatorKubeconfig,
  );
  narrator.note(
    `TokenRequest for ServiceAccount ${identity.namespace}/${identity.serviceAccount} -> ${operatorKubeconfig}`,
  );
  running.operator = startOperator({
    kubeconfig: operatorKubeconfig,
    dir: operatorDir,
    nodeId: NODE_ID,
    lease: { namespace: identity.leaseNamespace, name: identity.leaseName },
    httpPort: await freePort(),
    owned: false,
  });
  const operator = running.operator;
  saveState({ owner: process.pid, controlPlane: controlPlane.state, operator: operator.pid });
  narrator.shell(`snapback ${operator.args.join(' ')} &`, `[pid ${operator.pid}]\n`);
  await waitForSocket(operator.socket, operator, TIMEOUT_MS);
  await waitForHealthz(operator, TIMEOUT_MS);
  await waitFor(
    async () =>
      (
        await client.get<KubeObject & { spec?: { holderIdentity?: string } }>(
          Leases,
          identity.leaseName,
          identity.leaseNamespace,
        )
      )?.spec?.holderIdentity,
    TIMEOUT_MS,
    `the operator to hold Lease ${identity.leaseNamespace}/${identity.leaseName}`,
    () => operator.log().slice(-3000),
  );
  narrator.shell(
    `kubectl -n ${identity.leaseNamespace} get lease ${identity.leaseName}`,
    await kubectl(['-n', identity.leaseNamespace, 'get', 'lease', identity.leaseName]),
  );
  running.kubelet = new Kubelet(operator.socket, path.join(runDir, 'kubelet'));

  const outcome = await playRecipe({
    client,
    kubectl,
    kubelet: running.kubelet,
    namespace: 'default',
    storageClass: CLASS,
    snapshotClass: CLASS,
    narrator,
    timeoutMs: TIMEOUT_MS,
  });
  checkOutcome(outcome);

  narrator.step('What the operator reports on /metrics');
  const response = await fetch(`${operator.baseUrl}/metrics`);
  const body = await response.text();
  const lines = response.ok
    ? body
        .split('\n')
        .filter((l) => l.startsWith('snapback_') && !/_bucket\{/.test(l))
        .join('\n')
    : `HTTP ${response.status}: ${body}`;
  narrator.shell(`curl -s ${operator.baseUrl}/metrics | grep ^snapback_ | grep -v _bucket`, lines);
}

onSignal('SIGINT', 130);
onSignal('SIGTERM', 143);
onSignal('SIGHUP', 129);
process.on('exit', killSynchronously);

const started = Date.now();
const seconds = () => ((Date.now() - started) / 1000).toFixed(1);

async function main(): Promise<void> {
  try {
    await demo();
    await stop();
    console.log(
      `\nmake demo passed in ${seconds()} s: the disk restored by RestoreJob web-restore lists ` +
        '"lost+found  test", and /data/test holds the text written before the backup.',
    );
  } catch (error) {
    const message = (error as Error).message;
    const operatorLog = running.operator?.log().trimEnd().split('\n').slice(-30).join('\n');
    await stop().catch((cleanupError: unknown) =>
      console.error(`clean-up failed: ${(cleanupError as Error).message}`),
    );
    // a step that failed because it was interrupted: the signal handler exits
    if (signalled) return;
    if (operatorLog) console.error(`\n--- last lines of the operator's log ---\n${operatorLog}`);
    console.error(
      `\nmake demo failed at step ${stepNumber} (${stepTitle}) after ${seconds()} s:\n${message}\n` +
        `logs: ${logDir}`,
    );
    process.exitCode = 1;
  }
}

await main();

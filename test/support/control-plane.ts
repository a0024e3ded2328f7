import { generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  commandLine,
  isAlive,
  killQuietly,
  startProcess,
  stopProcess,
  waitFor,
} from './processes.js';
import { tool } from './tools.js';

/** kube-controller-manager loops the tests rely on (PV binding, protection, GC, namespaces). */
export const CONTROLLERS = [
  'persistentvolume-binder-controller',
  'persistentvolumeclaim-protection-controller',
  'persistentvolume-protection-controller',
  'garbage-collector-controller',
  'namespace-controller',
  'serviceaccount-controller',
  'clusterrole-aggregation-controller',
];

export interface ControlPlaneState {
  dir: string;
  kubeconfig: string;
  server: string;
  token: string;
  /** Credentials of the node's kubelet, when the control plane serves a node. */
  nodeToken?: string;
  /** PIDs by component. */
  pids: { etcd: number; apiserver: number; controllerManager: number };
  /** The process that owns the control plane, or null when it outlives its starter (`make up`). */
  owner: number | null;
}

export interface StartControlPlaneOptions {
  /** Fixed ports instead of free ones chosen by the kernel. */
  apiserverPort?: number;
  etcdPort?: number;
  /** false for `make up`: the processes outlive this process. Default true. */
  owned?: boolean;
  /**
   * The process whose death makes the control plane an orphan, reaped by the next start.
   * Default: this process when owned, else none (`make up`).
   */
  owner?: number | null;
  /** Base directory for the control plane's state (default: the OS temp dir). */
  baseDir?: string;
  readyTimeoutMs?: number;
  /** Serve a node (see NodeNetwork in node.ts) instead of API clients alone. */
  node?: ControlPlaneNodeOptions;
}

/**
 * A control plane for a real node: the API server listens on the node's bridge address (pods
 * reach it there, through the `kubernetes` Service), admits ServiceAccount tokens, authorizes
 * kubelets as nodes and reaches them by InternalIP; kube-controller-manager runs every default
 * controller (Deployments, StatefulSets, DaemonSets, Jobs, EndpointSlices, attach-detach...).
 */
export interface ControlPlaneNodeOptions {
  /** The node's address, on the harness's bridge. */
  address: string;
  nodeName: string;
  serviceCidr: string;
}

export class ControlPlane {
  constructor(readonly state: ControlPlaneState) {}

  get kubeconfig(): string {
    return this.state.kubeconfig;
  }

  get pids(): number[] {
    return Object.values(this.state.pids);
  }

  /** Stops every process this control plane started, by PID, and removes its files. */
  async stop(): Promise<void> {
    const { etcd, apiserver, controllerManager } = this.state.pids;
    await stopProcess(controllerManager);
    await stopProcess(apiserver);
    await stopProcess(etcd);
    forgetRun(this.state);
    rmSync(this.state.dir, { recursive: true, force: true });
  }
}

/** A registry of running control planes, so a run killed with SIGKILL is cleaned up by the next. */
export function runRegistryDir(): string {
  const cache =
    process.env.SNAPBACK_CACHE ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'snapback');
  return path.join(cache, 'runs');
}

function registryFile(state: ControlPlaneState): string {
  return path.join(runRegistryDir(), `${path.basename(state.dir)}.json`);
}

function recordRun(state: ControlPlaneState): void {
  mkdirSync(runRegistryDir(), { recursive: true });
  writeFileSync(registryFile(state), JSON.stringify(state, null, 2));
}

function forgetRun(state: ControlPlaneState): void {
  rmSync(registryFile(state), { force: true });
}

/** True when a PID still runs one of this control plane's components. */
export function belongsTo(state: ControlPlaneState, pid: number): boolean {
  return isAlive(pid) && (commandLine(pid) ?? '').includes(state.dir);
}

/**
 * Kills the components of control planes whose owning process died without stopping them
 * (a test run killed with SIGKILL). Control planes started by `make up` have no owner and are
 * left alone.
 */
export function reapOrphans(): number[] {
  return reap((owner) => owner !== null && !isAlive(owner));
}

/**
 * Kills the control planes `owner` started, by PID (what an interrupted `make demo` started
 * before it had a handle on them).
 */
export function reapOwnedBy(owner: number): number[] {
  return reap((recorded) => recorded === owner);
}

function reap(shouldReap: (owner: number | null) => boolean): number[] {
  const reaped: number[] = [];
  if (!existsSync(runRegistryDir())) return reaped;
  for (const file of readdirSync(runRegistryDir())) {
    if (!file.endsWith('.json')) continue;
    const full = path.join(runRegistryDir(), file);
    let state: ControlPlaneState;
    try {
      state = JSON.parse(readFileSync(full, 'utf8')) as ControlPlaneState;
    } catch {
      rmSync(full, { force: true });
      continue;
    }
    // the registry also holds the test node's record (node.ts), which is not a control plane
    if (!state.pids || !state.dir) continue;
    if (!shouldReap(state.owner)) continue;
    for (const pid of Object.values(state.pids)) {
      if (belongsTo(state, pid)) {
        killQuietly(pid, 'SIGKILL');
        reaped.push(pid);
      }
    }
    rmSync(state.dir, { recursive: true, force: true });
    rmSync(full, { force: true });
  }
  return reaped;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function ensurePortFree(port: number, what: string, host = '127.0.0.1'): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          error.code === 'EADDRINUSE'
            ? `port ${port} on ${host} (${what}) is in use`
            : `port ${port} on ${host} (${what}) cannot be used: ${error.message}`,
        ),
      ),
    );
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function httpGet(
  url: string,
  options: https.RequestOptions,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = https.get(url, { ...options, timeout: 5_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
    request.on('timeout', () => request.destroy(new Error('request timed out')));
  });
}

async function etcdHealthy(port: number): Promise<boolean> {
  const response = await fetch(`http://127.0.0.1:${port}/health`);
  return response.ok;
}

/**
 * Starts etcd, kube-apiserver (RBAC, token admin, service-account keys) and
 * kube-controller-manager on 127.0.0.1, waits until they serve, and writes a kubeconfig.
 * On any failure every process already started is stopped and the error carries the
 * components' log tails.
 */
export async function startControlPlane(
  options: StartControlPlaneOptions = {},
): Promise<ControlPlane> {
  const owned = options.owned ?? true;
  const binaries = {
    etcd: tool('ETCD'),
    apiserver: tool('KUBE_APISERVER'),
    controllerManager: tool('KUBE_CONTROLLER_MANAGER'),
  };
  reapOrphans();
  if (options.apiserverPort) {
    await ensurePortFree(options.apiserverPort, 'kube-apiserver', options.node?.address);
  }
  if (options.etcdPort) await ensurePortFree(options.etcdPort, 'etcd');

  const base = options.baseDir ?? os.tmpdir();
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(path.join(base, 'snapback-cp-'));
  mkdirSync(path.join(dir, 'certs'));
  const etcdPort = options.etcdPort ?? (await freePort());
  const peerPort = await freePort();
  const apiserverPort = options.apiserverPort ?? (await freePort());
  const token = randomBytes(24).toString('hex');
  const node = options.node;
  const nodeToken = node ? randomBytes(24).toString('hex') : undefined;
  const host = node?.address ?? '127.0.0.1';
  const server = `https://${host}:${apiserverPort}`;
  const logs = {
    etcd: path.join(dir, 'etcd.log'),
    apiserver: path.join(dir, 'kube-apiserver.log'),
    controllerManager: path.join(dir, 'kube-controller-manager.log'),
  };

  const tokens = [`${token},admin,admin,system:masters`];
  if (node && nodeToken) {
    tokens.push(`${nodeToken},system:node:${node.nodeName},kubelet,system:nodes`);
  }
  writeFileSync(path.join(dir, 'tokens.csv'), `${tokens.join('\n')}\n`, { mode: 0o600 });
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const saKey = path.join(dir, 'sa.key');
  writeFileSync(saKey, privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });

  const started: Partial<ControlPlaneState['pids']> = {};
  const state = (): ControlPlaneState => ({
    dir,
    kubeconfig: path.join(dir, 'kubeconfig'),
    server,
    token,
    ...(nodeToken ? { nodeToken } : {}),
    pids: started as ControlPlaneState['pids'],
    owner: options.owner !== undefined ? options.owner : owned ? process.pid : null,
  });
  const failure = async (reason: string): Promise<never> => {
    for (const pid of [started.controllerManager, started.apiserver, started.etcd]) {
      if (pid) await stopProcess(pid, 3_000);
    }
    forgetRun(state());
    const tails = Object.entries(logs)
      .filter(([component]) => component in started)
      .map(([component, file]) => `--- ${component} (${file}) ---\n${tail(file)}`)
      .join('\n');
    const kept = owned ? '' : ` (logs in ${dir})`;
    const message = `control plane failed to start: ${reason}${kept}`;
    if (owned) rmSync(dir, { recursive: true, force: true });
    throw new Error(tails ? `${message}\n${tails}` : message);
  };
  const timeout = options.readyTimeoutMs ?? 120_000;

  const etcd = startProcess(
    binaries.etcd,
    [
      '--data-dir',
      path.join(dir, 'etcd'),
      '--listen-client-urls',
      `http://127.0.0.1:${etcdPort}`,
      '--advertise-client-urls',
      `http://127.0.0.1:${etcdPort}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-cluster',
      `default=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync',
      '--quota-backend-bytes',
      String(4 * 1024 ** 3),
    ],
    { logFile: logs.etcd, owned },
  );
  started.etcd = etcd.pid!;
  recordRun(state());
  try {
    await waitFor(
      async () => {
        if (!isAlive(etcd.pid!)) throw new Error('etcd exited');
        return etcdHealthy(etcdPort);
      },
      timeout,
      'etcd /health',
    );
  } catch (error) {
    return failure((error as Error).message);
  }

  const apiserver = startProcess(
    binaries.apiserver,
    [
      '--etcd-servers',
      `http://127.0.0.1:${etcdPort}`,
      '--bind-address',
      host,
      '--advertise-address',
      host,
      '--secure-port',
      String(apiserverPort),
      '--cert-dir',
      path.join(dir, 'certs'),
      '--token-auth-file',
      path.join(dir, 'tokens.csv'),
      '--allow-privileged=true',
      ...(node
        ? [
            '--authorization-mode=Node,RBAC',
            `--service-cluster-ip-range=${node.serviceCidr}`,
            '--kubelet-preferred-address-types=InternalIP',
          ]
        : [
            '--authorization-mode=RBAC',
            '--service-cluster-ip-range=10.0.0.0/24',
            // no kubelet mounts tokens into pods here; pods are API objects only
            '--disable-admission-plugins=ServiceAccount',
          ]),
      '--service-account-issuer',
      server,
      '--service-account-key-file',
      saKey,
      '--service-account-signing-key-file',
      saKey,
    ],
    { logFile: logs.apiserver, owned },
  );
  started.apiserver = apiserver.pid!;
  recordRun(state());
  const caFile = path.join(dir, 'certs', 'apiserver.crt');
  try {
    await waitFor(
      async () => {
        if (!isAlive(apiserver.pid!)) throw new Error('kube-apiserver exited');
        if (!existsSync(caFile)) return false;
        const response = await httpGet(`${server}/readyz`, {
          ca: readFileSync(caFile),
          headers: { Authorization: `Bearer ${token}` },
        });
        return response.status === 200;
      },
      timeout,
      'kube-apiserver /readyz',
    );
  } catch (error) {
    return failure((error as Error).message);
  }

  const kubeconfig = path.join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigYaml(server, readFileSync(caFile), token), { mode: 0o600 });

  const controllerManager = startProcess(
    binaries.controllerManager,
    [
      '--kubeconfig',
      kubeconfig,
      '--leader-elect=false',
      '--secure-port=0',
      '--controllers',
      node ? '*' : CONTROLLERS.join(','),
      ...(node
        ? [
            // publishes kube-root-ca.crt, which pods' ServiceAccount volumes carry
            `--root-ca-file=${caFile}`,
            `--service-account-private-key-file=${saKey}`,
            `--service-cluster-ip-range=${node.serviceCidr}`,
          ]
        : []),
      '--pvclaimbinder-sync-period',
      '2s',
    ],
    { logFile: logs.controllerManager, owned },
  );
  started.controllerManager = controllerManager.pid!;
  recordRun(state());
  try {
    // the serviceaccount controller creating `default` in `default` shows the manager is up
    await waitFor(
      async () => {
        if (!isAlive(controllerManager.pid!)) throw new Error('kube-controller-manager exited');
        const response = await httpGet(
          `${server}/api/v1/namespaces/default/serviceaccounts/default`,
          {
            ca: readFileSync(caFile),
            headers: { Authorization: `Bearer ${token}` },
          },
        );
        return response.status === 200;
      },
      timeout,
      'kube-controller-manager to create the default ServiceAccount',
    );
  } catch (error) {
    return failure((error as Error).message);
  }
  return new ControlPlane(state());
}

export function kubeconfigYaml(server: string, ca: Buffer, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: snapback-test',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${ca.toString('base64')}`,
    'users:',
    '- name: admin',
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: snapback-test',
    '  context:',
    '    cluster: snapback-test',
    '    user: admin',
    'current-context: snapback-test',
    '',
  ].join('\n');
}

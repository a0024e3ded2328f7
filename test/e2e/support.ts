/**
 * What `make demo` and the e2e test share: helm in a private home, the operator's identity
 * taken from the chart (its ServiceAccount and Lease), a kubeconfig holding that
 * ServiceAccount's token, `snapback all-in-one` started by PID, and reading /metrics.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { startProcess, stopProcess, waitFor } from '../support/processes.js';
import { repoRoot, tool } from '../support/tools.js';
import type { Started } from '../integration/stack/support.js';

const execFileAsync = promisify(execFile);

export const chartDir = path.join(repoRoot, 'charts/snapback');

/** Runs the helm that tools/ built with its cache, config and data under `home`. */
export function helmIn(home: string): (args: string[]) => Promise<string> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_DATA_HOME: path.join(home, 'data'),
  };
  return async (args) => {
    try {
      const { stdout } = await execFileAsync(tool('HELM'), args, {
        env,
        maxBuffer: 32 * 1024 * 1024,
      });
      return stdout;
    } catch (error) {
      const { stdout, stderr, message } = error as {
        stdout?: string;
        stderr?: string;
        message: string;
      };
      throw new Error(
        `helm ${args.join(' ')} failed: ${(stderr ?? '') + (stdout ?? '') || message}`,
        {
          cause: error,
        },
      );
    }
  };
}

/** Runs the kubectl that tools/ built with a kubeconfig; rejects with its stderr. */
export function kubectlWith(
  kubeconfig: string,
): (args: string[], input?: string) => Promise<string> {
  return async (args, input) => {
    const child = execFileAsync(tool('KUBECTL'), ['--kubeconfig', kubeconfig, ...args], {
      maxBuffer: 16 * 1024 * 1024,
    });
    if (input !== undefined) child.child.stdin?.end(input);
    try {
      return (await child).stdout;
    } catch (error) {
      const { stderr, message } = error as { stderr?: string; message: string };
      throw new Error(`kubectl ${args.join(' ')} failed: ${stderr?.trim() || message}`, {
        cause: error,
      });
    }
  };
}

/** Who the chart's controller Deployment runs as, and the Lease its replicas elect through. */
export interface ChartController {
  namespace: string;
  serviceAccount: string;
  leaseNamespace: string;
  leaseName: string;
}

interface DeploymentList {
  items: Array<{
    metadata: { name: string; namespace: string };
    spec: {
      template: {
        spec: {
          serviceAccountName?: string;
          containers: Array<{ name: string; args?: string[] }>;
        };
      };
    };
  }>;
}

/**
 * Reads the identity from the Deployment the release created, so the process run in its place
 * uses exactly the ServiceAccount and Lease the chart wires up.
 */
export async function chartController(
  kubectl: (args: string[]) => Promise<string>,
  namespace: string,
  release: string,
): Promise<ChartController> {
  const list = JSON.parse(
    await kubectl([
      'get',
      'deployments',
      '-n',
      namespace,
      '-l',
      `app.kubernetes.io/instance=${release},app.kubernetes.io/component=controller`,
      '-o',
      'json',
    ]),
  ) as DeploymentList;
  const deployment = list.items[0];
  if (list.items.length !== 1 || !deployment) {
    throw new Error(
      `release ${release} should have one controller Deployment in ${namespace}, found ${list.items.length}`,
    );
  }
  const pod = deployment.spec.template.spec;
  const container = pod.containers.find((c) => c.args?.[0] === 'controller');
  if (!pod.serviceAccountName || !container) {
    throw new Error(
      `Deployment ${deployment.metadata.name} has no ServiceAccount or no controller container`,
    );
  }
  const flag = (name: string) =>
    container.args?.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const leaseName = flag('leader-election-name');
  if (!leaseName) throw new Error(`Deployment ${deployment.metadata.name} sets no Lease name`);
  // the chart passes $(POD_NAMESPACE): the pod's, i.e. the release's namespace
  const leaseNamespace = flag('leader-election-namespace')?.replace('$(POD_NAMESPACE)', namespace);
  return {
    namespace,
    serviceAccount: pod.serviceAccountName,
    leaseNamespace: leaseNamespace ?? namespace,
    leaseName,
  };
}

/**
 * Asks the API server for a token of the ServiceAccount (TokenRequest, what kubelet mounts
 * into a pod) and writes a kubeconfig that authenticates with it and nothing else.
 */
export async function serviceAccountKubeconfig(
  admin: k8s.KubeConfig,
  namespace: string,
  serviceAccount: string,
  file: string,
  expirationSeconds = 3600,
): Promise<string> {
  const response = await admin.makeApiClient(k8s.CoreV1Api).createNamespacedServiceAccountToken({
    name: serviceAccount,
    namespace,
    body: { spec: { audiences: [], expirationSeconds } },
  });
  const token = response.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${serviceAccount} returned no token`);
  const cluster = admin.getCurrentCluster();
  if (!cluster?.caData) throw new Error('the admin kubeconfig has no inline CA for the API server');
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: cluster',
      '  cluster:',
      `    server: ${cluster.server}`,
      `    certificate-authority-data: ${cluster.caData}`,
      'users:',
      `- name: ${serviceAccount}`,
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: operator',
      '  context:',
      '    cluster: cluster',
      `    user: ${serviceAccount}`,
      'current-context: operator',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return token;
}

export interface OperatorOptions {
  /** The kubeconfig the operator acts with. */
  kubeconfig: string;
  /** Holds the disk images, the CSI socket and the log. */
  dir: string;
  nodeId: string;
  lease: { namespace: string; name: string };
  /** 127.0.0.1 port of /healthz, /readyz and /metrics. */
  httpPort: number;
  /**
   * Owned processes die with this one (tests); `make demo` starts its own in a session of its
   * own, so Ctrl-C reaches only the demo, which then unmounts and stops them in order.
   */
  owned: boolean;
  logLevel?: string;
}

export interface Operator extends Started {
  socket: string;
  root: string;
  baseUrl: string;
  args: string[];
}

/** `snapback all-in-one --backend=local`, started by PID under tsx. */
export function startOperator(options: OperatorOptions): Operator {
  const socket = path.join(options.dir, 'csi.sock');
  const root = path.join(options.dir, 'disks');
  const logFile = path.join(options.dir, 'all-in-one.log');
  const args = [
    'all-in-one',
    '--backend=local',
    `--root=${root}`,
    `--node-id=${options.nodeId}`,
    `--endpoint=unix://${socket}`,
    `--kubeconfig=${options.kubeconfig}`,
    `--leader-election-namespace=${options.lease.namespace}`,
    `--leader-election-name=${options.lease.name}`,
    `--http-endpoint=127.0.0.1:${options.httpPort}`,
  ];
  const child = startProcess(
    process.execPath,
    ['--import', 'tsx/esm', path.join(repoRoot, 'src/cli/main.ts'), ...args],
    {
      logFile,
      owned: options.owned,
      env: {
        ...process.env,
        SNAPBACK_CSI_PROTO: tool('CSI_PROTO'),
        SNAPBACK_LOG_LEVEL: options.logLevel ?? 'info',
      },
    },
  );
  return {
    pid: child.pid!,
    child,
    logFile,
    socket,
    root,
    baseUrl: `http://127.0.0.1:${options.httpPort}`,
    args,
    stop: () => stopProcess(child.pid!, 20_000),
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
  };
}

/** Waits until the operator answers /healthz (and has not exited). */
export async function waitForHealthz(operator: Operator, timeoutMs = 120_000): Promise<void> {
  await waitFor(
    async () => {
      if (operator.child.exitCode !== null) {
        throw new Error(
          `snapback all-in-one (pid ${operator.pid}) exited with ${operator.child.exitCode}:\n${operator.log().slice(-3000)}`,
        );
      }
      return (await fetch(`${operator.baseUrl}/healthz`)).ok;
    },
    timeoutMs,
    `${operator.baseUrl}/healthz`,
    () => operator.log().slice(-3000),
  );
}

/** One sample of the Prometheus text format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  /** Metric family name -> TYPE, for every family the endpoint declares. */
  types: Map<string, string>;
  samples: Sample[];
}

/** Parses the Prometheus text exposition format (as prom-client writes it). */
export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice('# TYPE '.length).split(' ');
      if (name && type) types.set(name, type);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of match[2]?.matchAll(
      /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g,
    ) ?? []) {
      labels[key!] = value!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return { types, samples };
}

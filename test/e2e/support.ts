/**
 * What `make demo` and the node e2e tests share: helm in a private home, the operator's
 * identity taken from the chart (its ServiceAccount and Lease), a kubeconfig holding that
 * ServiceAccount's token, the release's pods and their /metrics.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { HttpKubeClient } from '../../src/kube/index.js';
import { localNodeImages, startNodeCluster, type NodeCluster } from '../support/node.js';
import { repoRoot, tool } from '../support/tools.js';

const execFileAsync = promisify(execFile);

/** The release name, namespace and class names the README's `helm install` gives. */
export const RELEASE = 'snapback';
export const RELEASE_NAMESPACE = 'snapback-system';
/** The chart's StorageClass and VolumeSnapshotClass for its default backend, local. */
export const CLASS = 'snapback-local';
/** The chart's controller.healthPort: /healthz, /readyz and /metrics. */
export const CONTROLLER_HTTP_PORT = 8080;

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
export type Kubectl = (args: string[], input?: string) => Promise<string>;

export function kubectlWith(kubeconfig: string): Kubectl {
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

interface ContainerState {
  waiting?: { reason?: string; message?: string };
  terminated?: { reason?: string; exitCode?: number; message?: string };
}

/** Pods as `kubectl get pods -o json` lists them (the fields the tests read). */
export interface PodList {
  items: {
    metadata: { name: string; labels?: Record<string, string> };
    spec: { nodeName?: string; serviceAccountName?: string };
    status: {
      phase?: string;
      conditions?: { type: string; status: string; reason?: string; message?: string }[];
      containerStatuses?: {
        name: string;
        ready: boolean;
        restartCount?: number;
        state?: ContainerState;
        lastState?: ContainerState;
      }[];
    };
  }[];
}

/**
 * Why the pods a selector picks are not Ready, in one line: per pod its phase, an unmet
 * scheduling condition, each unready container's waiting or last termination reason, and where
 * its log is (`kubectl logs`). Empty when every pod is Ready.
 */
export async function whyNotReady(
  kubectl: Kubectl,
  namespace: string,
  selector?: string,
): Promise<string> {
  const pods = await podsOf(kubectl, namespace, selector);
  if (pods.items.length === 0)
    return `no pods${selector ? ` match ${selector}` : ''} in ${namespace}`;
  const reasons: string[] = [];
  for (const pod of pods.items) {
    const { name } = pod.metadata;
    const unscheduled = pod.status.conditions?.find(
      (c) => c.type === 'PodScheduled' && c.status !== 'True',
    );
    if (unscheduled) {
      reasons.push(`pod ${name} is not scheduled: ${unscheduled.message ?? unscheduled.reason}`);
      continue;
    }
    const containers = pod.status.containerStatuses ?? [];
    if (containers.length === 0) {
      reasons.push(`pod ${name} is ${pod.status.phase ?? 'Pending'}, no container started yet`);
    }
    for (const c of containers.filter((c) => !c.ready)) {
      const waiting = c.state?.waiting;
      const ended = c.state?.terminated ?? c.lastState?.terminated;
      const why = waiting?.reason
        ? `${waiting.reason}${waiting.message ? ` (${waiting.message})` : ''}`
        : ended
          ? `exited with ${ended.exitCode} (${ended.reason ?? 'no reason'})`
          : 'running, not ready (its readiness probe fails)';
      const restarts = c.restartCount ? `, ${c.restartCount} restarts` : '';
      reasons.push(
        `pod ${name} container ${c.name}: ${why}${restarts}; log: kubectl -n ${namespace} logs ${name} -c ${c.name}`,
      );
    }
  }
  return reasons.join('; ').replace(/\s*\n\s*/g, ' ');
}

export async function podsOf(
  kubectl: Kubectl,
  namespace: string,
  selector?: string,
): Promise<PodList> {
  const args = [
    '-n',
    namespace,
    'get',
    'pods',
    '-o',
    'json',
    ...(selector ? ['-l', selector] : []),
  ];
  return JSON.parse(await kubectl(args)) as PodList;
}

/**
 * `helm install <release> charts/snapback --wait` into `namespace`; when the release's pods do
 * not get Ready, the error says in one line which pod and container, why, and where its log is.
 */
export async function installChart(options: {
  helm: (args: string[]) => Promise<string>;
  kubectl: Kubectl;
  kubeconfig: string;
  release: string;
  namespace: string;
  timeoutSeconds: number;
  /** More `helm install` arguments, e.g. `['--set', 'hooks.enabled=true']`. */
  extraArgs?: string[];
}): Promise<{ args: string[]; output: string }> {
  const args = [
    'install',
    options.release,
    'charts/snapback',
    '--namespace',
    options.namespace,
    '--create-namespace',
    '--wait',
    `--timeout=${options.timeoutSeconds}s`,
    ...(options.extraArgs ?? []),
  ];
  try {
    const output = await options.helm([
      ...args.map((a) => (a === 'charts/snapback' ? chartDir : a)),
      '--kubeconfig',
      options.kubeconfig,
    ]);
    return { args, output };
  } catch (error) {
    const pods = await whyNotReady(
      options.kubectl,
      options.namespace,
      `app.kubernetes.io/instance=${options.release}`,
    ).catch((e: Error) => e.message);
    const helmSaid = (error as Error).message.trim().split('\n').pop();
    throw new Error(`the chart's pods did not get Ready: ${pods} (helm: ${helmSaid})`, {
      cause: error,
    });
  }
}

/**
 * The pod that leads the controllers: the holder of the chart's Lease, whose identity is
 * `<pod name>_<uuid>` (unique per process, as upstream's leader election makes it).
 */
export async function leaderPod(kubectl: Kubectl, identity: ChartController): Promise<string> {
  const holder = await kubectl([
    '-n',
    identity.leaseNamespace,
    'get',
    'lease',
    identity.leaseName,
    '-o',
    'jsonpath={.spec.holderIdentity}',
  ]);
  return holder.split('_')[0] ?? '';
}

/** A pod's /metrics, fetched through the API server's pod proxy as `kubectl get --raw` does. */
export async function podMetrics(
  kubectl: Kubectl,
  namespace: string,
  pod: string,
  port: number,
): Promise<string> {
  return kubectl([
    'get',
    '--raw',
    `/api/v1/namespaces/${namespace}/pods/${pod}:${port}/proxy/metrics`,
  ]);
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

/** A node cluster with the chart installed, as the node suites start it in their before(). */
export interface ChartOnNode {
  cluster: NodeCluster;
  kubectl: Kubectl;
  /** Acts as the cluster admin. */
  client: HttpKubeClient;
}

/**
 * Starts a node cluster (owned by this test process) under `dir` and `helm install`s the
 * chart with its default values plus `extraArgs`, waiting until its pods are Ready.
 */
export async function chartOnNode(dir: string, extraArgs: string[] = []): Promise<ChartOnNode> {
  const cluster = await startNodeCluster({ owned: true, baseDir: dir, images: localNodeImages() });
  const kubectl = kubectlWith(cluster.kubeconfig);
  const admin = new k8s.KubeConfig();
  admin.loadFromFile(cluster.kubeconfig);
  const client = new HttpKubeClient(admin, { qps: 50, burst: 100 });
  await installChart({
    helm: helmIn(path.join(dir, 'helm')),
    kubectl,
    kubeconfig: cluster.kubeconfig,
    release: RELEASE,
    namespace: RELEASE_NAMESPACE,
    timeoutSeconds: 240,
    extraArgs,
  }).catch(async (error: unknown) => {
    await cluster.stop();
    throw error;
  });
  return { cluster, kubectl, client };
}

/**
 * A real node for the test control plane: containerd + runc with the CNI bridge plugin,
 * kubelet, kube-scheduler and kube-proxy, and a local OCI registry serving the images `make
 * image` built. Everything runs on this machine: the node's address is on a bridge the harness
 * creates, pods get addresses on that bridge and routes to it alone (no default route, IP
 * forwarding stays off), and containerd pulls every registry name the tests use from the local
 * registry on 127.0.0.1.
 *
 * Three facts of this sandbox shape the settings: cgroups are v1 (kubelet's failCgroupV1 off,
 * the cgroupfs driver), lowering oom_score_adj is not allowed (containerd's
 * restrict_oom_score_adj), and `/` has private mount propagation (the kubelet directory is made
 * a shared mount, so the node plugin's Bidirectional mounts reach the pods).
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseMountinfo } from '../../src/driver/backends/local/mounts.js';
import { detachLoopsUnder, unmountUnder } from './mounts.js';
import {
  freePort,
  kubeconfigYaml,
  runRegistryDir,
  startControlPlane,
  type ControlPlane,
  type StartControlPlaneOptions,
} from './control-plane.js';
import {
  commandLine,
  isAlive,
  killQuietly,
  startProcess,
  stopProcess,
  waitFor,
} from './processes.js';
import { startRegistryProcess } from './registry.js';
import { tool } from './tools.js';
import { imageLayoutDir, imageRefs, snapbackCache } from '../../tools/image/layout.js';

const execFileAsync = promisify(execFile);

/** The node's network: a bridge of the harness's own, and the ranges routed to it. */
export const NODE_NETWORK = {
  bridge: 'snapback0',
  nodeName: 'snapback-node',
  address: '10.88.0.1',
  podCidr: '10.88.0.0/16',
  /** Pods get addresses from here on; below it stays free for the node. */
  podRangeStart: '10.88.1.1',
  serviceCidr: '10.96.0.0/24',
} as const;

/** Kubelet's directory: the chart's default `driver.local.kubeletDir`. */
export const KUBELET_DIR = '/var/lib/kubelet';
/** Where the chart's local driver keeps disk images (`driver.local.root`). */
export const LOCAL_DRIVER_DIR = '/var/lib/snapback/local';

/** Debian's packages that provide the runtime (installed by `make node-deps`). */
export const RUNTIME = {
  containerd: '/usr/bin/containerd',
  ctr: '/usr/bin/ctr',
  runc: '/usr/sbin/runc',
  cniBin: '/usr/lib/cni',
};

export interface NodeState {
  dir: string;
  registry: { pid: number; port: number };
  pids: { containerd?: number; kubelet?: number; scheduler?: number; proxy?: number };
  /** Network namespaces, iptables rules and directories present before the node started. */
  before: {
    netns: string[];
    iptables: string;
    ip6tables: string;
    kubeletDir: boolean;
    localDriverDir: boolean;
    /** Loop devices attached before the node started. */
    loops: string[];
  };
  containerdSocket: string;
}

/** The images the node runs, and the registry that serves them to containerd. */
export interface NodeImages {
  /** The OCI image layout `make image` wrote. */
  layoutDir: string;
  /** `repository:tag` of the pod sandbox image in that layout. */
  pause: string;
  /** Starts a registry process serving `layoutDir` on 127.0.0.1:`port`. */
  startRegistry(options: {
    layoutDir: string;
    port: number;
    logFile: string;
    owned: boolean;
  }): Promise<{ pid: number; port: number }>;
}

/** The images `make image` built, served by the registry process of test/support/registry.ts. */
export function localNodeImages(): NodeImages {
  return {
    layoutDir: imageLayoutDir(),
    pause: imageRefs().pause,
    startRegistry: startRegistryProcess,
  };
}

export interface StartNodeClusterOptions {
  images: NodeImages;
  /** false for `make up` and `make demo`: the processes outlive their starter. */
  owned: boolean;
  /**
   * The process answerable for the node: while it lives, no other run may start a node; once
   * it is gone, the next run cleans up what it left. Default: this process when `owned`, else
   * none (`make up`: the node lives until `make down`).
   */
  owner?: number | null;
  baseDir: string;
  readyTimeoutMs?: number;
  /** Fixed control-plane ports (`make up APISERVER_PORT=...`). */
  ports?: Pick<StartControlPlaneOptions, 'apiserverPort' | 'etcdPort'>;
}

/**
 * One node runs on a machine at a time (its bridge and kubelet directory are fixed), so its
 * state is recorded in one file: a run killed outright leaves it behind for the next run.
 */
interface NodeRecord {
  owner: number | null;
  node: NodeState;
}

const nodeRecordFile = (): string => path.join(runRegistryDir(), 'node.json');

function readNodeRecord(): NodeRecord | undefined {
  try {
    return JSON.parse(readFileSync(nodeRecordFile(), 'utf8')) as NodeRecord;
  } catch {
    return undefined;
  }
}

function writeNodeRecord(record: NodeRecord): void {
  mkdirSync(runRegistryDir(), { recursive: true });
  writeFileSync(nodeRecordFile(), JSON.stringify(record, null, 2));
}

/** A PID that still runs one of the node's processes (not a recycled PID). */
function runsForNode(node: NodeState, pid: number | undefined): boolean {
  if (!pid || !isAlive(pid)) return false;
  const cmd = commandLine(pid) ?? '';
  return pid === node.registry.pid
    ? cmd.includes(`--port ${node.registry.port}`)
    : cmd.includes(node.dir);
}

/**
 * Stops the node `owner` started, if the record names it: what an interrupted `make demo`
 * started before startNodeCluster returned. Returns whether there was one.
 */
export async function stopNodeOwnedBy(owner: number): Promise<boolean> {
  const record = readNodeRecord();
  if (record?.owner !== owner) return false;
  await stopNode(record.node);
  return true;
}

/**
 * Refuses to start beside a live node; cleans up a node whose owner died (a test run or demo
 * killed with SIGKILL) or whose processes are all gone. Returns what it cleaned, for a log line.
 */
async function clearStaleNode(): Promise<string | undefined> {
  const record = readNodeRecord();
  if (!record) return undefined;
  const { owner, node } = record;
  if (owner !== null && owner !== process.pid && isAlive(owner)) {
    throw new Error(
      `a test node is already running on this machine for process ${owner} (${(commandLine(owner) ?? '').slice(0, 80)}); wait for it to end`,
    );
  }
  const live = [...Object.values(node.pids), node.registry.pid].filter((pid) =>
    runsForNode(node, pid),
  );
  if (owner === null && live.length > 0) {
    throw new Error(
      `a test node started by \`make up\` is running (PIDs ${live.join(' ')}): run \`make down\` first`,
    );
  }
  await stopNode(node);
  return `cleaned up the test node a killed run left in ${node.dir}`;
}

function sh(command: string, args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function trySh(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function netnsList(): string[] {
  return existsSync('/run/netns') ? readdirSync('/run/netns') : [];
}

/**
 * Why containers cannot run on this machine, in one line, or undefined when they can.
 * Checked before anything starts, so a machine without a runtime fails at once, not by timeout.
 */
export function nodePrerequisiteProblem(
  images: NodeImages,
  runtime: typeof RUNTIME = RUNTIME,
): string | undefined {
  if (process.getuid?.() !== 0) return 'the test node needs root (containerd, kubelet, mounts)';
  for (const [name, file] of Object.entries({
    containerd: runtime.containerd,
    ctr: runtime.ctr,
    runc: runtime.runc,
    'CNI bridge plugin': path.join(runtime.cniBin, 'bridge'),
  })) {
    if (!existsSync(file)) {
      return `${name} is missing (${file}): run \`make node-deps\` (Debian's containerd, runc, containernetworking-plugins)`;
    }
  }
  for (const command of ['ip', 'iptables', 'iptables-save', 'iptables-restore', 'mount']) {
    if (!trySh('sh', ['-c', `command -v ${command}`])) {
      return `${command} is missing: run \`make node-deps\``;
    }
  }
  if (!existsSync('/sys/fs/cgroup/memory') && !existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    return 'no cgroup file system is mounted at /sys/fs/cgroup: containers cannot run here';
  }
  if (!existsSync(images.layoutDir)) {
    return `the node's images are not built (${images.layoutDir} is missing): run \`make image\``;
  }
  return undefined;
}

/** Creates the node's bridge with its address; fails if a node already runs on this machine. */
function createBridge(): void {
  const { bridge, address, podCidr } = NODE_NETWORK;
  if (trySh('ip', ['link', 'show', bridge])) {
    throw new Error(
      `network interface ${bridge} exists: a test node is already running on this machine ` +
        '(`make down` stops the one `make up` started)',
    );
  }
  const prefix = podCidr.split('/')[1];
  sh('ip', ['link', 'add', bridge, 'type', 'bridge']);
  sh('ip', ['addr', 'add', `${address}/${prefix}`, 'dev', bridge]);
  sh('ip', ['link', 'set', bridge, 'up']);
}

/**
 * containerd's root (its content store and image snapshots) outlives the node, in the cache,
 * as a real node's disk does: a warm start pulls nothing it pulled before. Its state (sockets,
 * the running containers' mounts) is the node's own.
 */
export function containerdRoot(): string {
  return path.join(snapbackCache(), 'node', 'containerd');
}

/**
 * What a previous node left in containerd's root and must not carry over: its containers and
 * pod sandboxes (their pods are gone), and image names whose digest is no longer what the
 * registry serves (an image `make image` rebuilt), which kubelet would otherwise run as present
 * (pull policy IfNotPresent). Kubelet pulls those anew, fetching only the layers that changed.
 * Returns the image names it dropped.
 */
function forgetPreviousNode(socket: string, layoutDir: string): string[] {
  const ctr = (args: string[]) =>
    sh(RUNTIME.ctr, ['--address', socket, '--namespace', 'k8s.io', ...args]);
  const containers = ctr(['containers', 'list', '--quiet']).split('\n').filter(Boolean);
  if (containers.length > 0) ctr(['containers', 'delete', ...containers]);
  const served = new Map<string, string>();
  const index = JSON.parse(readFileSync(path.join(layoutDir, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  for (const m of index.manifests) {
    const ref = m.annotations?.['org.opencontainers.image.ref.name'];
    if (ref) served.set(ref, m.digest);
  }
  const stale: string[] = [];
  for (const line of ctr(['images', 'list']).split('\n').slice(1)) {
    const [name, , digest] = line.split(/\s+/);
    if (!name || !digest || name.startsWith('sha256:')) continue;
    // a registry host is the first component that has a dot or a port
    const [first, ...rest] = name.split('/');
    const repoTag = rest.length > 0 && /[.:]/.test(first!) ? rest.join('/') : name;
    const current = served.get(repoTag);
    if (current && current !== digest) stale.push(name);
  }
  if (stale.length > 0) ctr(['images', 'delete', ...stale]);
  return stale;
}

function containerdConfig(dir: string, registry: string, pause: string): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = "${containerdRoot()}"
state = "${dir}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "${dir}/containerd/containerd.sock"

[ttrpc]
  address = "${dir}/containerd/containerd.sock.ttrpc"

[${cri}]
  sandbox_image = "${registry}/${pause}"
  # lowering oom_score_adj needs CAP_SYS_RESOURCE, which this sandbox lacks
  restrict_oom_score_adj = true
  enable_selinux = false
  [${cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.runc.options]
        BinaryName = "${RUNTIME.runc}"
        SystemdCgroup = false
  [${cri}.cni]
    bin_dir = "${RUNTIME.cniBin}"
    conf_dir = "${dir}/cni/net.d"
  [${cri}.registry]
    config_path = "${dir}/containerd/certs.d"
`;
}

/**
 * Every registry name the chart and the recipe use is served by the local registry, and
 * nothing falls through to the real host: `server` replaces the upstream endpoint.
 */
function writeRegistryHosts(dir: string, registry: string): void {
  for (const host of ['docker.io', 'ghcr.io', 'registry.k8s.io', registry]) {
    const hostDir = path.join(dir, 'containerd', 'certs.d', host);
    mkdirSync(hostDir, { recursive: true });
    writeFileSync(
      path.join(hostDir, 'hosts.toml'),
      `server = "http://${registry}"\n\n[host."http://${registry}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
  }
}

function cniConfig(dir: string): string {
  const { bridge, podCidr, podRangeStart, address, serviceCidr } = NODE_NETWORK;
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'snapback',
      plugins: [
        {
          type: 'bridge',
          bridge,
          // the harness gave the bridge its address; the plugin would also turn on forwarding
          isGateway: false,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            dataDir: path.join(dir, 'cni', 'ipam'),
            ranges: [[{ subnet: podCidr, rangeStart: podRangeStart, gateway: address }]],
            // Services are reached through the node (kube-proxy); nothing else is routed
            routes: [{ dst: serviceCidr, gw: address }],
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

function kubeletConfig(port: number, healthzPort: number, containerdSocket: string): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${NODE_NETWORK.address}
port: ${port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${healthzPort}
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://${containerdSocket}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
protectKernelDefaults: false
registerNode: true
rotateCertificates: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
nodeStatusUpdateFrequency: 4s
syncFrequency: 10s
fileCheckFrequency: 10s
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
`;
}

function kubeProxyConfig(kubeconfig: string, healthzPort: number, metricsPort: number): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ${kubeconfig}
mode: iptables
clusterCIDR: ${NODE_NETWORK.podCidr}
hostnameOverride: ${NODE_NETWORK.nodeName}
healthzBindAddress: 127.0.0.1:${healthzPort}
metricsBindAddress: 127.0.0.1:${metricsPort}
nodePortAddresses: ["${NODE_NETWORK.address}/32"]
conntrack:
  # 0: leave the kernel's conntrack settings as they are (sysctls are not writable here)
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`;
}

/** Makes a directory a shared mount point of its own (once), for Bidirectional propagation. */
function makeSharedMount(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const mounted = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).some(
    (m) => m.mountPoint === dir,
  );
  if (!mounted) sh('mount', ['--bind', dir, dir]);
  sh('mount', ['--make-rshared', dir]);
}

/** PIDs whose command line mentions `needle` (containerd's shims name their daemon's socket). */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes(needle)) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** The node's Ready condition, read with kubectl as admin. */
async function nodeReady(kubeconfig: string): Promise<string> {
  const { stdout } = await execFileAsync(tool('KUBECTL'), [
    '--kubeconfig',
    kubeconfig,
    'get',
    'node',
    NODE_NETWORK.nodeName,
    '-o',
    'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].message}',
  ]);
  return stdout;
}

export class NodeCluster {
  constructor(
    readonly controlPlane: ControlPlane,
    readonly node: NodeState,
  ) {}

  get kubeconfig(): string {
    return this.controlPlane.kubeconfig;
  }

  /** Stops the node, then the control plane; see stopNode. */
  async stop(): Promise<void> {
    await stopNode(this.node, this.controlPlane.kubeconfig);
    await this.controlPlane.stop();
  }
}

/** Mounts kubelet made by staging CSI volumes (NodeStageVolume's global mount points). */
function stagedVolumes(): string[] {
  const csiPlugins = path.join(KUBELET_DIR, 'plugins', 'kubernetes.io', 'csi');
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .map((m) => m.mountPoint)
    .filter((m) => m.startsWith(`${csiPlugins}/`));
}

/**
 * Lets the node's pods go before the node stops, in the order a node drain takes: the
 * workloads are deleted first, so their controllers make no new pods; then every pod but the
 * DaemonSets' ones, and kubelet, still running, stops their containers and unpublishes and
 * unstages their volumes through the node plugins, which still run; then the DaemonSets' pods.
 */
async function drain(kubeconfig: string, timeoutMs: number): Promise<void> {
  const kubectl = (args: string[]) =>
    execFileAsync(tool('KUBECTL'), ['--kubeconfig', kubeconfig, ...args], { timeout: timeoutMs });
  const seconds = `--timeout=${Math.round(timeoutMs / 1000)}s`;
  await kubectl([
    'delete',
    'deployments,statefulsets,replicasets,jobs,cronjobs',
    '--all',
    '--all-namespaces',
    '--wait=false',
  ]).catch(() => undefined);
  const { stdout } = await kubectl([
    'get',
    'pods',
    '--all-namespaces',
    '-o',
    'jsonpath={range .items[*]}{.metadata.namespace} {.metadata.name} {.metadata.ownerReferences[0].kind}{"\\n"}{end}',
  ]).catch(() => ({ stdout: '' }));
  const workloadPods = stdout
    .split('\n')
    .map((line) => line.split(' '))
    .filter(([namespace, name, owner]) => namespace && name && owner !== 'DaemonSet');
  await Promise.all(
    workloadPods.map(([namespace, name]) =>
      kubectl(['-n', namespace!, 'delete', 'pod', name!, '--grace-period=1', seconds]).catch(
        () => undefined,
      ),
    ),
  );
  // kubelet unstages a volume shortly after the last pod using it is gone
  await waitFor(() => stagedVolumes().length === 0, 30_000, 'kubelet to unstage the volumes').catch(
    () => undefined,
  );
  await kubectl(['delete', 'daemonsets', '--all', '--all-namespaces', '--wait=false']).catch(
    () => undefined,
  );
  await kubectl(['delete', 'pods', '--all', '--all-namespaces', '--grace-period=1', seconds]).catch(
    () => undefined,
  );
}

/**
 * Detaches the loop devices the node's pods left attached: those whose backing file lies
 * under the node's directories, and those made after the node started whose backing file is
 * no path on this machine. A loop device made in a container names its file relative to the
 * container's mount of it (e.g. /disks/x.img), which the host cannot resolve; the host's own
 * loop devices name host paths.
 */
function detachNodeLoops(node: NodeState): void {
  detachLoopsUnder([LOCAL_DRIVER_DIR, KUBELET_DIR, node.dir]);
  for (const { device, backing } of loopDevices()) {
    if (!node.before.loops.includes(device) && !existsSync(backing)) {
      trySh('losetup', ['--detach', device]);
    }
  }
}

function loopDevices(): { device: string; backing: string }[] {
  let listing: string;
  try {
    listing = sh('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE']);
  } catch {
    return [];
  }
  return listing
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([device]) => device)
    .map(([device, ...file]) => ({
      device: device!,
      backing: file.join(' ').replace(/ \(deleted\)$/, ''),
    }));
}

/**
 * Stops what startNodeCluster started on the node, by PID, and removes what it made: pods'
 * containers and network namespaces, mounts under kubelet's directory, the local driver's loop
 * devices, the iptables rules (restored to what they were before), the bridge and the files.
 * Each step runs even if an earlier one failed; a node whose processes were killed outright
 * is cleaned the same way.
 */
export async function stopNode(node: NodeState, kubeconfig?: string): Promise<void> {
  const { pids } = node;
  if (kubeconfig && pids.kubelet && isAlive(pids.kubelet) && pids.containerd) {
    await drain(kubeconfig, 60_000).catch(() => undefined);
  }
  for (const pid of [pids.scheduler, pids.proxy, pids.kubelet]) {
    if (runsForNode(node, pid)) await stopProcess(pid!, 5_000);
  }
  // containers the drain did not stop: their shims name this node's containerd socket
  for (const pid of processesMentioning(node.containerdSocket)) {
    if (pid !== pids.containerd) killQuietly(pid, 'SIGKILL');
  }
  if (runsForNode(node, pids.containerd)) await stopProcess(pids.containerd!, 5_000);
  await waitFor(
    () => processesMentioning(node.containerdSocket).length === 0,
    10_000,
    "the node's container processes to exit",
  ).catch(() => undefined);
  if (runsForNode(node, node.registry.pid)) await stopProcess(node.registry.pid, 5_000);

  for (const name of netnsList()) {
    if (name.startsWith('cni-') && !node.before.netns.includes(name)) {
      trySh('ip', ['netns', 'delete', name]);
    }
  }
  unmountUnder(KUBELET_DIR);
  unmountUnder(node.dir);
  detachNodeLoops(node);
  // veths left on the bridge go with it
  trySh('ip', ['link', 'delete', NODE_NETWORK.bridge]);
  restoreRules('iptables-restore', node.before.iptables);
  restoreRules('ip6tables-restore', node.before.ip6tables);
  if (!node.before.kubeletDir) rmSync(KUBELET_DIR, { recursive: true, force: true });
  if (!node.before.localDriverDir) rmSync(LOCAL_DRIVER_DIR, { recursive: true, force: true });
  rmSync(node.dir, { recursive: true, force: true });
  if (readNodeRecord()?.node.dir === node.dir) rmSync(nodeRecordFile(), { force: true });
}

function saveRules(command: string): string {
  try {
    return sh(command, []);
  } catch {
    return '';
  }
}

/**
 * Puts a family's rules back as they were saved. A table the saved state lacks is restored
 * empty: iptables-restore flushes the chains of every table it is given and deletes the
 * chains the section does not declare.
 */
function restoreRules(command: string, saved: string): void {
  const sections = ['filter', 'nat', 'mangle', 'raw']
    .filter((table) => !new RegExp(`^\\*${table}$`, 'm').test(saved))
    .map((table) => `*${table}\nCOMMIT\n`);
  try {
    execFileSync(command, [], {
      input: saved + sections.join(''),
      stdio: ['pipe', 'ignore', 'ignore'],
    });
  } catch {
    // a family the machine lacks
  }
}

/**
 * Starts a control plane that serves a node, and the node: registry, containerd, kubelet,
 * kube-scheduler, kube-proxy; returns once the Node is Ready. On failure everything already
 * started is stopped and the error names the component and its log.
 */
export async function startNodeCluster(options: StartNodeClusterOptions): Promise<NodeCluster> {
  const { images } = options;
  const problem = nodePrerequisiteProblem(images);
  if (problem) throw new Error(problem);
  const cleaned = await clearStaleNode();
  if (cleaned) console.error(cleaned);
  const timeout = options.readyTimeoutMs ?? 120_000;
  const owner = options.owner !== undefined ? options.owner : options.owned ? process.pid : null;
  mkdirSync(options.baseDir, { recursive: true });
  const dir = mkdtempSync(path.join(options.baseDir, 'snapback-node-'));
  const node: NodeState = {
    dir,
    registry: { pid: 0, port: 0 },
    pids: {},
    before: {
      netns: netnsList(),
      iptables: saveRules('iptables-save'),
      ip6tables: saveRules('ip6tables-save'),
      kubeletDir: existsSync(KUBELET_DIR),
      localDriverDir: existsSync(LOCAL_DRIVER_DIR),
      loops: loopDevices().map((l) => l.device),
    },
    containerdSocket: path.join(dir, 'containerd', 'containerd.sock'),
  };
  createBridge();
  const record = () => writeNodeRecord({ owner, node });
  record();
  let controlPlane: ControlPlane | undefined;
  const fail = async (component: string, reason: string, log?: string): Promise<never> => {
    const detail = log ? `\n--- ${component} (${log}) ---\n${tail(log)}` : '';
    await stopNode(node).catch(() => undefined);
    await controlPlane?.stop().catch(() => undefined);
    throw new Error(`test node: ${component} ${reason}${log ? ` (log: ${log})` : ''}${detail}`);
  };

  try {
    controlPlane = await startControlPlane({
      owned: options.owned,
      baseDir: options.baseDir,
      readyTimeoutMs: timeout,
      owner,
      ...options.ports,
      node: {
        address: NODE_NETWORK.address,
        nodeName: NODE_NETWORK.nodeName,
        serviceCidr: NODE_NETWORK.serviceCidr,
      },
    });
  } catch (error) {
    return fail('control plane', (error as Error).message);
  }
  const cp = controlPlane.state;
  const log = (name: string) => path.join(dir, `${name}.log`);
  const caFile = path.join(cp.dir, 'certs', 'apiserver.crt');

  try {
    node.registry = await images.startRegistry({
      layoutDir: images.layoutDir,
      port: await freePort(),
      logFile: log('registry'),
      owned: options.owned,
    });
  } catch (error) {
    return fail('registry', (error as Error).message.split('\n')[0] ?? '', log('registry'));
  }
  record();
  const registry = `127.0.0.1:${node.registry.port}`;

  for (const sub of ['containerd', 'cni/net.d', 'kubelet-certs']) {
    mkdirSync(path.join(dir, sub), { recursive: true });
  }
  writeFileSync(
    path.join(dir, 'containerd', 'config.toml'),
    containerdConfig(dir, registry, images.pause),
  );
  writeRegistryHosts(dir, registry);
  writeFileSync(path.join(dir, 'cni', 'net.d', '10-snapback.conflist'), cniConfig(dir));
  const containerd = startProcess(
    RUNTIME.containerd,
    ['--config', path.join(dir, 'containerd', 'config.toml')],
    { logFile: log('containerd'), owned: options.owned },
  );
  node.pids.containerd = containerd.pid!;
  record();
  try {
    await waitFor(
      () => {
        if (!isAlive(containerd.pid!)) throw new Error('exited');
        return existsSync(node.containerdSocket);
      },
      timeout,
      'containerd to serve its socket',
    );
  } catch (error) {
    return fail('containerd', (error as Error).message, log('containerd'));
  }
  try {
    forgetPreviousNode(node.containerdSocket, images.layoutDir);
  } catch (error) {
    return fail(
      'containerd',
      `could not clear a previous node's containers and stale images: ${(error as Error).message.split('\n')[0]}`,
      log('containerd'),
    );
  }

  makeSharedMount(KUBELET_DIR);
  const kubeletKubeconfig = path.join(dir, 'kubelet.kubeconfig');
  writeFileSync(kubeletKubeconfig, kubeconfigYaml(cp.server, readFileSync(caFile), cp.nodeToken!), {
    mode: 0o600,
  });
  const kubeletConfigFile = path.join(dir, 'kubelet-config.yaml');
  writeFileSync(
    kubeletConfigFile,
    kubeletConfig(await freePort(), await freePort(), node.containerdSocket),
  );
  const kubelet = startProcess(
    tool('KUBELET'),
    [
      `--config=${kubeletConfigFile}`,
      `--kubeconfig=${kubeletKubeconfig}`,
      `--root-dir=${KUBELET_DIR}`,
      `--cert-dir=${path.join(dir, 'kubelet-certs')}`,
      `--node-ip=${NODE_NETWORK.address}`,
      `--hostname-override=${NODE_NETWORK.nodeName}`,
      '--v=2',
    ],
    { logFile: log('kubelet'), owned: options.owned },
  );
  node.pids.kubelet = kubelet.pid!;
  record();

  // its own copy of the admin kubeconfig, so its command line names the node's directory
  const schedulerKubeconfig = path.join(dir, 'kube-scheduler.kubeconfig');
  writeFileSync(schedulerKubeconfig, readFileSync(cp.kubeconfig), { mode: 0o600 });
  const scheduler = startProcess(
    tool('KUBE_SCHEDULER'),
    [
      `--kubeconfig=${schedulerKubeconfig}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${await freePort()}`,
    ],
    { logFile: log('kube-scheduler'), owned: options.owned },
  );
  node.pids.scheduler = scheduler.pid!;
  record();

  const proxyConfig = path.join(dir, 'kube-proxy-config.yaml');
  writeFileSync(proxyConfig, kubeProxyConfig(cp.kubeconfig, await freePort(), await freePort()));
  const proxy = startProcess(tool('KUBE_PROXY'), [`--config=${proxyConfig}`], {
    logFile: log('kube-proxy'),
    owned: options.owned,
  });
  node.pids.proxy = proxy.pid!;
  record();

  let lastReady = '';
  try {
    await waitFor(
      async () => {
        for (const [name, pid] of Object.entries(node.pids)) {
          if (pid && !isAlive(pid)) throw new Error(`${name} exited`);
        }
        lastReady = await nodeReady(cp.kubeconfig).catch((error: Error) => error.message);
        return lastReady.startsWith('True');
      },
      timeout,
      `Node ${NODE_NETWORK.nodeName} to be Ready`,
      () => lastReady || 'not registered',
    );
  } catch (error) {
    const message = (error as Error).message;
    const exited = /(\w+) exited/.exec(message)?.[1];
    const component =
      exited === 'scheduler' ? 'kube-scheduler' : exited === 'proxy' ? 'kube-proxy' : 'kubelet';
    return fail(component, message, log(component === 'kubelet' ? 'kubelet' : component));
  }
  return new NodeCluster(controlPlane, node);
}

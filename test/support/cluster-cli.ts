/**
 * `make up` / `make down`: the test cluster for a person. `up` starts the control plane and a
 * Ready node (containerd, kubelet, kube-scheduler, kube-proxy, the local image registry) and
 * prints `export KUBECONFIG=<path>`; `down` stops every process by PID and removes what the
 * node made: mounts, loop devices, network namespaces, iptables rules, the bridge.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  ControlPlane,
  belongsTo,
  runRegistryDir,
  type ControlPlaneState,
} from './control-plane.js';
import { localNodeImages, startNodeCluster, stopNode, type NodeState } from './node.js';

const upDir = process.env.SNAPBACK_UP_DIR ?? path.join(path.dirname(runRegistryDir()), 'up');
const stateFile = path.join(upDir, 'state.json');

interface UpState {
  controlPlane: ControlPlaneState;
  node: NodeState;
}

function readState(): UpState | undefined {
  if (!existsSync(stateFile)) return undefined;
  try {
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as Partial<UpState>;
    return state.controlPlane && state.node ? (state as UpState) : undefined;
  } catch {
    return undefined;
  }
}

function portOption(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`${name}=${value} is not a port number`);
  }
  return port;
}

/** Stops what a state names, node first (it drains its pods through the API server). */
async function stopAll(state: UpState): Promise<void> {
  await stopNode(state.node, state.controlPlane.kubeconfig);
  await new ControlPlane(state.controlPlane).stop();
  rmSync(stateFile, { force: true });
}

async function up(): Promise<void> {
  const previous = readState();
  if (previous) {
    const { controlPlane } = previous;
    if (Object.values(controlPlane.pids).some((pid) => belongsTo(controlPlane, pid))) {
      throw new Error(
        `a cluster is already running (KUBECONFIG=${controlPlane.kubeconfig}); run \`make down\` first`,
      );
    }
    // a previous `make up` whose processes were killed: clean up what they left
    await stopAll(previous);
  }
  mkdirSync(upDir, { recursive: true });
  const cluster = await startNodeCluster({
    owned: false,
    baseDir: upDir,
    images: localNodeImages(),
    ports: { apiserverPort: portOption('APISERVER_PORT'), etcdPort: portOption('ETCD_PORT') },
  }).catch((error: Error) => {
    throw new Error(error.message.split('\n')[0], { cause: error });
  });
  writeFileSync(
    stateFile,
    JSON.stringify({ controlPlane: cluster.controlPlane.state, node: cluster.node }, null, 2),
  );
  const { pids } = cluster.node;
  console.error(
    `control plane ready at ${cluster.controlPlane.state.server} (logs in ${cluster.controlPlane.state.dir})`,
  );
  console.error(
    `node snapback-node Ready: containerd ${pids.containerd}, kubelet ${pids.kubelet}, ` +
      `kube-scheduler ${pids.scheduler}, kube-proxy ${pids.proxy}, registry ` +
      `127.0.0.1:${cluster.node.registry.port} (logs in ${cluster.node.dir})`,
  );
  console.log(`export KUBECONFIG=${cluster.kubeconfig}`);
}

async function down(): Promise<void> {
  const state = readState();
  if (!state) {
    console.error('no cluster is running');
    return;
  }
  await stopAll(state);
  const pids = [
    ...Object.values(state.controlPlane.pids),
    ...Object.values(state.node.pids),
    state.node.registry.pid,
  ];
  console.error(`stopped the cluster (pids ${pids.join(' ')}) and removed what its node made`);
}

const command = process.argv[2];
const commands: Record<string, () => Promise<void>> = { up, down };
const run = command ? commands[command] : undefined;
if (!run) {
  console.error('usage: cluster-cli.ts up|down');
  process.exit(2);
}
run().catch((error: unknown) => {
  console.error(`make ${command}: ${(error as Error).message}`);
  process.exit(1);
});

/**
 * `make up` / `make down`: the test control plane for a person. `up` returns once the API
 * server is ready and prints `export KUBECONFIG=<path>`; `down` stops it by PID.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  ControlPlane,
  belongsTo,
  runRegistryDir,
  startControlPlane,
  type ControlPlaneState,
} from './control-plane.js';

const upDir = process.env.SNAPBACK_UP_DIR ?? path.join(path.dirname(runRegistryDir()), 'up');
const stateFile = path.join(upDir, 'state.json');

function readState(): ControlPlaneState | undefined {
  if (!existsSync(stateFile)) return undefined;
  try {
    return JSON.parse(readFileSync(stateFile, 'utf8')) as ControlPlaneState;
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

async function up(): Promise<void> {
  const previous = readState();
  if (previous) {
    if (Object.values(previous.pids).some((pid) => belongsTo(previous, pid))) {
      throw new Error(
        `a control plane is already running (KUBECONFIG=${previous.kubeconfig}); run \`make down\` first`,
      );
    }
    await new ControlPlane(previous).stop();
    rmSync(stateFile, { force: true });
  }
  mkdirSync(upDir, { recursive: true });
  let controlPlane: ControlPlane;
  try {
    controlPlane = await startControlPlane({
      owned: false,
      baseDir: upDir,
      apiserverPort: portOption('APISERVER_PORT'),
      etcdPort: portOption('ETCD_PORT'),
    });
  } catch (error) {
    throw new Error((error as Error).message.split('\n')[0], { cause: error });
  }
  writeFileSync(stateFile, JSON.stringify(controlPlane.state, null, 2));
  console.error(
    `control plane ready at ${controlPlane.state.server} (logs in ${controlPlane.state.dir})`,
  );
  console.log(`export KUBECONFIG=${controlPlane.kubeconfig}`);
}

async function down(): Promise<void> {
  const state = readState();
  if (!state) {
    console.error('no control plane is running');
    return;
  }
  await new ControlPlane(state).stop();
  rmSync(stateFile, { force: true });
  console.error(`stopped the control plane (pids ${Object.values(state.pids).join(' ')})`);
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

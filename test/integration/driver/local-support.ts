import { status as grpcStatus } from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { connectCsi, type CsiClient } from '../../../src/csi/client.js';
import { LocalBackend } from '../../../src/driver/backends/local/backend.js';
import {
  CAP_SYS_RESOURCE,
  type CommandRunner,
  hasCapability,
  runCommand,
} from '../../../src/driver/backends/local/system.js';
import { startDriver } from '../../../src/driver/driver.js';
import { type Logger, silentLogger } from '../../../src/observability/logger.js';
import { parseMountinfo } from '../../../src/driver/backends/local/mounts.js';
import {
  killQuietly,
  startProcess,
  stopProcess,
  waitFor,
  isAlive,
} from '../../support/processes.js';
import { repoRoot, tool } from '../../support/tools.js';

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

/** The node the tests' drivers serve. */
export const testNode = 'test-node';

/** The CSI id the test driver gives the volume or snapshot `name`. */
export const idOf = (name: string): string => `${name}@${testNode}`;

export const mountCapability = {
  mount: { fs_type: 'ext4', mount_flags: [] },
  access_mode: { mode: 'SINGLE_NODE_WRITER' as const },
};

const scratchPrefix = 'snapback-driver-';
const ownerFile = 'owner.pid';

/**
 * A scratch directory for one test: root for images, sockets, staging and target paths. It
 * records the test process's PID, so that mounts and loop devices left by a test run that was
 * killed (no afterEach ran) are cleaned up by the next run.
 */
export function scratchDir(prefix: string): string {
  sweepOrphans();
  const dir = mkdtempSync(path.join(os.tmpdir(), `${scratchPrefix}${prefix}-`));
  writeFileSync(path.join(dir, ownerFile), String(process.pid));
  return dir;
}

function sweepOrphans(): void {
  for (const name of readdirSync(os.tmpdir())) {
    if (!name.startsWith(scratchPrefix)) continue;
    const dir = path.join(os.tmpdir(), name);
    let owner: number;
    try {
      owner = Number(readFileSync(path.join(dir, ownerFile), 'utf8'));
    } catch {
      continue;
    }
    if (owner !== process.pid && !isAlive(owner)) cleanupScratch(dir);
  }
}

function mountsBelow(dir: string): string[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .map((m) => m.mountPoint)
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

function loopsBelow(dir: string): Array<{ name: string; file: string }> {
  const out = execFileSync('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE'], {
    encoding: 'utf8',
  });
  const loops = (
    JSON.parse(out || '{"loopdevices":[]}') as {
      loopdevices: Array<{ name: string; 'back-file': string | null }>;
    }
  ).loopdevices;
  return loops
    .map((l) => ({ name: l.name, file: l['back-file'] ?? '' }))
    .filter((l) => l.file.startsWith(`${dir}/`));
}

function unmount(mountPoint: string): void {
  try {
    execFileSync('fsfreeze', ['--unfreeze', mountPoint], { stdio: 'ignore' });
  } catch {
    // not frozen
  }
  execFileSync('umount', [mountPoint], { stdio: 'ignore' });
}

/**
 * Unmounts everything mounted below `dir`, detaches the loop devices whose image lives below
 * it, then removes it. Mounts that hold loop images (a test's own root file system) go last,
 * after the loop devices on them. Tests call this even after a failure, so no mount or loop
 * device outlives them.
 */
export function cleanupScratch(dir: string): void {
  const holdsImages = (mountPoint: string) =>
    loopsBelow(dir).some((l) => l.file.startsWith(`${mountPoint}/`));
  for (const mountPoint of mountsBelow(dir)) {
    if (!holdsImages(mountPoint)) unmount(mountPoint);
  }
  for (const loop of loopsBelow(dir)) execFileSync('losetup', ['--detach', loop.name]);
  for (const mountPoint of mountsBelow(dir)) unmount(mountPoint);
  for (const loop of loopsBelow(dir)) execFileSync('losetup', ['--detach', loop.name]);
  rmSync(dir, { recursive: true, force: true });
}

/** Writes `bytes` of random data to `file` and returns its SHA-256. */
export async function writeRandomFile(file: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(file, 'w');
  try {
    for (let written = 0; written < bytes; written += 4 * MiB) {
      const chunk = randomBytes(Math.min(4 * MiB, bytes - written));
      hash.update(chunk);
      await handle.write(chunk);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

export async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(file, 'r');
  try {
    for await (const chunk of handle.createReadStream()) hash.update(chunk as Buffer);
  } finally {
    await handle.close().catch(() => undefined);
  }
  return hash.digest('hex');
}

export interface DriverProcess {
  pid: number;
  client: CsiClient;
  /** SIGTERM, wait for exit. */
  stop(): Promise<void>;
  /** SIGKILL, wait for exit: a crash. */
  kill(): Promise<void>;
}

/**
 * `snapback driver --backend=local` as a separate process (so it can be killed), with a
 * connected client once it answers Probe.
 */
export async function spawnLocalDriver(options: {
  dir: string;
  root: string;
  socket: string;
  nodeId?: string;
  /** Where staging and target paths may lie (default: `dir`). */
  kubeletDir?: string;
  extraFlags?: string[];
}): Promise<DriverProcess> {
  const child = startProcess(
    process.execPath,
    [
      '--import',
      'tsx/esm',
      path.join(repoRoot, 'src/cli/main.ts'),
      'driver',
      '--backend=local',
      `--endpoint=unix://${options.socket}`,
      `--node-id=${options.nodeId ?? testNode}`,
      `--root=${options.root}`,
      `--kubelet-dir=${options.kubeletDir ?? options.dir}`,
      ...(options.extraFlags ?? []),
    ],
    {
      logFile: path.join(options.dir, 'driver.log'),
      owned: true,
      env: { ...process.env, SNAPBACK_CSI_PROTO: tool('CSI_PROTO') },
    },
  );
  const pid = child.pid!;
  const client = connectCsi(`unix://${options.socket}`, { protoPath: tool('CSI_PROTO') });
  await waitFor(
    async () => {
      if (!isAlive(pid)) throw new Error('driver exited');
      const probe = await client.identity.probe({}, { timeoutMs: 1_000 });
      return probe.ready?.value === true;
    },
    60_000,
    'the driver to answer Probe',
    () => readFileSync(path.join(options.dir, 'driver.log'), 'utf8').slice(-2000),
  );
  return {
    pid,
    client,
    async stop() {
      client.close();
      await stopProcess(pid);
    },
    async kill() {
      client.close();
      killQuietly(pid, 'SIGKILL');
      await waitFor(() => !isAlive(pid), 10_000, `driver ${pid} to die`);
    },
  };
}

/** Stage and publish a volume at <dir>/staging/<id> and <dir>/target/<id>; returns the target. */
export async function stageAndPublish(
  client: CsiClient,
  dir: string,
  volumeId: string,
  readonly = false,
): Promise<string> {
  const stagingPath = path.join(dir, 'staging', volumeId);
  const targetPath = path.join(dir, 'target', volumeId);
  await client.node.nodeStageVolume({
    volume_id: volumeId,
    staging_target_path: stagingPath,
    volume_capability: mountCapability,
  });
  await client.node.nodePublishVolume({
    volume_id: volumeId,
    staging_target_path: stagingPath,
    target_path: targetPath,
    volume_capability: mountCapability,
    readonly,
  });
  return targetPath;
}

export async function unpublishAndUnstage(
  client: CsiClient,
  dir: string,
  volumeId: string,
): Promise<void> {
  await client.node.nodeUnpublishVolume({
    volume_id: volumeId,
    target_path: path.join(dir, 'target', volumeId),
  });
  await client.node.nodeUnstageVolume({
    volume_id: volumeId,
    staging_target_path: path.join(dir, 'staging', volumeId),
  });
}

export interface InProcessDriver {
  client: CsiClient;
  backend: LocalBackend;
  stop(): Promise<void>;
}

/** The local backend served by startDriver in this process (faster than a child process). */
export async function startLocalDriver(
  dir: string,
  options: {
    capacityBytes?: number;
    root?: string;
    nodeId?: string;
    /** Where staging and target paths may lie (default: `dir`). */
    kubeletDir?: string;
    onlineResize?: boolean;
    run?: CommandRunner;
    logger?: Logger;
  } = {},
): Promise<InProcessDriver> {
  const backend = await LocalBackend.open({
    root: options.root ?? path.join(dir, 'root'),
    nodeId: options.nodeId ?? testNode,
    capacityBytes: options.capacityBytes,
    kubeletDir: options.kubeletDir ?? dir,
    onlineResize: options.onlineResize ?? hasCapability(CAP_SYS_RESOURCE),
    vendorVersion: 'test',
    run: options.run ?? runCommand,
    logger: options.logger ?? silentLogger(),
  });
  const socket = path.join(dir, 'csi.sock');
  const driver = await startDriver({
    backend,
    endpoint: `unix://${socket}`,
    nodeId: options.nodeId ?? testNode,
    protoPath: tool('CSI_PROTO'),
  });
  const client = connectCsi(`unix://${socket}`, {
    protoPath: tool('CSI_PROTO'),
    timeoutMs: 120_000,
  });
  return {
    client,
    backend,
    async stop() {
      client.close();
      await driver.stop();
    },
  };
}

/** The gRPC status name a call ends with ('OK' when it succeeds). */
export async function codeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'number') return grpcStatus[code] ?? String(code);
    throw error;
  }
  return 'OK';
}

/** The gRPC status name and message a call ends with (code 'OK' and '' when it succeeds). */
export async function outcomeOf(
  call: Promise<unknown>,
): Promise<{ code: string; details: string }> {
  try {
    await call;
  } catch (error) {
    const { code, details } = error as { code?: unknown; details?: string };
    if (typeof code === 'number') {
      return { code: grpcStatus[code] ?? String(code), details: details ?? '' };
    }
    throw error;
  }
  return { code: 'OK', details: '' };
}

/** The message of a failed call. */
export async function detailsOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    return (error as { details?: string }).details ?? String(error);
  }
  return '';
}

/**
 * What the benchmarks share: command-line flags, per-process figures from /proc, the API
 * server's request counter, processes started and stopped by PID, and the cluster set-up of
 * the benches that run the snapshot stack against the local-backend driver.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';

import {
  type HttpKubeClient,
  PersistentVolumeClaims,
  StorageClasses,
  type KubeObject,
} from '../src/kube/index.js';
import { VolumeSnapshotClasses } from '../src/kube/resource.js';
import type { ControlPlane } from '../test/support/control-plane.js';
import { connectCsi, type CsiClient } from '../src/csi/client.js';
import { isAlive, startProcess, stopProcess, waitFor } from '../test/support/processes.js';
import { repoRoot, tool } from '../test/support/tools.js';

/** The local backend's driver name, which the benches' classes name. */
export const LOCAL_DRIVER = 'local.snapback.dev';

/**
 * The compiled CLI, dist/src/cli/main.js, that `make bench` builds first: the benches measure
 * what ships (no tsx loader in the figures).
 */
export function snapbackMain(): string {
  const main = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run the benches with make bench`);
  return main;
}

/** A `snapback driver` process the bench talks to over its CSI socket. */
export interface BenchDriver {
  pid: number;
  client: CsiClient;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * `snapback driver` from dist/ with `args`, serving a socket in `dir` and logging to
 * `dir/driver.log`, once it answers Probe.
 */
export async function startDriver(
  dir: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<BenchDriver> {
  const socket = path.join(dir, 'csi.sock');
  const logFile = path.join(dir, 'driver.log');
  const child = startProcess(
    process.execPath,
    [snapbackMain(), 'driver', `--endpoint=unix://${socket}`, ...args],
    {
      logFile,
      owned: true,
      env: { ...process.env, SNAPBACK_CSI_PROTO: tool('CSI_PROTO'), ...env },
    },
  );
  const pid = child.pid!;
  const client = connectCsi(`unix://${socket}`, { protoPath: tool('CSI_PROTO') });
  const stop = async () => {
    client.close();
    await stopProcess(pid);
  };
  try {
    await waitFor(
      async () =>
        isAlive(pid) && (await client.identity.probe({}, { timeoutMs: 1000 })).ready?.value,
      60_000,
      'the driver to answer Probe',
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { pid, client, logFile, stop };
}

/** Detaches the loop devices whose backing files lie under `dir` (a local driver's disks). */
export function detachLoopDevicesUnder(dir: string): void {
  const listed = execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], {
    encoding: 'utf8',
  });
  for (const line of listed.split('\n')) {
    const [name, file] = line.trim().split(/\s+/);
    if (name && file?.startsWith(`${dir}/`)) execFileSync('losetup', ['--detach', name]);
  }
}

/** `--name=<number>` on the command line, or `fallback`. */
export function numberFlag(name: string, fallback: number): number {
  const value = stringFlag(name);
  return value === undefined ? fallback : Number(value);
}

/** `--name=<text>` on the command line. */
export function stringFlag(name: string): string | undefined {
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

/** Peak resident set size of a process so far (VmHWM), in MiB to one decimal. */
export function peakRssMiB(pid: number): number {
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return Math.round((kb / 1024) * 10) / 10;
}

/** CPU time (user + system) a process has used so far, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[11] and [12] are utime and stime (the 14th and 15th of the whole line), in ticks
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
}

/** Runs `run` over `items` with at most `limit` in flight. */
export async function inParallel<T>(
  items: T[],
  limit: number,
  run: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await run(items[next++]!);
    }),
  );
}

/**
 * The API server's apiserver_request_total, summed per resource (`resource` or
 * `resource/subresource`): every resource, or only those named.
 */
export async function apiRequestCounts(
  controlPlane: ControlPlane,
  resources?: ReadonlySet<string>,
): Promise<Record<string, number>> {
  const ca = readFileSync(path.join(controlPlane.state.dir, 'certs', 'apiserver.crt'));
  const body = await new Promise<string>((resolve, reject) => {
    https
      .get(
        `${controlPlane.state.server}/metrics`,
        { ca, headers: { Authorization: `Bearer ${controlPlane.state.token}` } },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () => resolve(text));
        },
      )
      .on('error', reject);
  });
  const totals: Record<string, number> = {};
  for (const line of body.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const resource = /resource="([^"]*)"/.exec(line)?.[1] ?? '';
    if (resource === '' || (resources && !resources.has(resource))) continue;
    const subresource = /subresource="([^"]*)"/.exec(line)?.[1] ?? '';
    const key = subresource ? `${resource}/${subresource}` : resource;
    totals[key] = (totals[key] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return totals;
}

export const total = (counts: Record<string, number>): number =>
  Object.values(counts).reduce((a, b) => a + b, 0);

export interface BenchProcess {
  name: string;
  pid: number;
  log: string;
}

/** Processes a bench starts, each logging to `<dir>/<name>.log`, stopped by PID. */
export class BenchProcesses {
  private readonly running: BenchProcess[] = [];

  constructor(private readonly dir: string) {}

  spawn(name: string, binary: string, args: string[], env?: NodeJS.ProcessEnv): BenchProcess {
    const log = path.join(this.dir, `${name}.log`);
    const child = startProcess(binary, args, { logFile: log, owned: true, env });
    const proc = { name, pid: child.pid!, log };
    this.running.push(proc);
    return proc;
  }

  async stop(proc: BenchProcess, timeoutMs = 20_000): Promise<void> {
    await stopProcess(proc.pid, timeoutMs);
    this.running.splice(this.running.indexOf(proc), 1);
  }

  /** Stops what is still running, the last started first. */
  async stopAll(timeoutMs = 20_000): Promise<void> {
    for (const proc of [...this.running].reverse()) await this.stop(proc, timeoutMs);
  }
}

/** The StorageClass and VolumeSnapshotClass `local` of the local-backend driver. */
export async function createLocalClasses(
  client: HttpKubeClient,
  options: { defaultSnapshotClass?: boolean } = {},
): Promise<void> {
  await client.create(StorageClasses, {
    metadata: { name: 'local' },
    provisioner: LOCAL_DRIVER,
    reclaimPolicy: 'Delete',
  } as KubeObject);
  await client.create(VolumeSnapshotClasses, {
    metadata: {
      name: 'local',
      ...(options.defaultSnapshotClass && {
        annotations: { 'snapshot.storage.kubernetes.io/is-default-class': 'true' },
      }),
    },
    driver: LOCAL_DRIVER,
    deletionPolicy: 'Delete',
    parameters: { forceDelete: 'true' },
  } as KubeObject);
}

/**
 * Creates 16 MiB PVCs of the `local` class (20 at a time) and waits until they are all
 * Bound; `describe` says what the provisioner logged when they are not.
 */
export async function provisionPvcs(
  client: HttpKubeClient,
  namespace: string,
  pvcs: Array<{ name: string; labels?: Record<string, string> }>,
  describe: () => string,
): Promise<void> {
  await inParallel(pvcs, 20, async ({ name, labels }) => {
    await client.create(PersistentVolumeClaims, {
      metadata: { name, namespace, ...(labels && { labels }) },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: 'local',
        resources: { requests: { storage: '16Mi' } },
      },
    } as KubeObject);
  });
  const bound = async () =>
    (
      await client.list<KubeObject & { status?: { phase?: string } }>(PersistentVolumeClaims, {
        namespace,
      })
    ).items.filter((pvc) => pvc.status?.phase === 'Bound').length;
  await waitFor(
    async () => (await bound()) === pvcs.length,
    1_800_000,
    `${pvcs.length} PVCs to be Bound`,
    async () => `${await bound()} bound\n${describe()}`,
  );
}

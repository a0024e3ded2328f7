/**
 * 300 VolumeSnapshots from creation to readyToUse: snapback's embedded snapshot controller +
 * CSI snapshotter (one process) against upstream's snapshot-controller + csi-snapshotter (two
 * processes, built in tools/), on the same control plane, the same local-backend driver and the
 * same client QPS/burst, in alternated rounds. Prints per round and per side: wall time, API
 * requests per snapshot (apiserver_request_total deltas, minus this script's own requests) and
 * peak RSS (VmHWM) of each process.
 *
 *   node --import tsx/esm bench/snapshot-stack/run.ts [--count=300] [--rounds=2] [--qps=50]
 *     [--burst=100] [--json=<file>] [--logs=<dir>] [--profile=<dir>]
 *
 * Needs root (loop devices) and `make tools`. Figures, not assertions: see the README.
 */
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { VolumeSnapshot } from '../../src/api/snapshot.js';
import {
  HttpKubeClient,
  PersistentVolumeClaims,
  type KubeObject,
  type WatchHandle,
} from '../../src/kube/index.js';
import {
  VolumeSnapshotClasses,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../../src/snapshot/sidecar/resources.js';
import { startControlPlane, type ControlPlane } from '../../test/support/control-plane.js';
import { kubectl } from '../../test/support/cluster.js';
import { startProcess, stopProcess, waitFor } from '../../test/support/processes.js';
import { repoRoot, tool } from '../../test/support/tools.js';

const DRIVER = 'local.snapback.dev';
const NAMESPACE = 'bench';

function flag(name: string, fallback: number): number {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  return arg ? Number(arg.slice(name.length + 3)) : fallback;
}
const COUNT = flag('count', 300);
const ROUNDS = flag('rounds', 2);
const QPS = flag('qps', 50);
const BURST = flag('burst', 100);
const JSON_OUT = process.argv.find((a) => a.startsWith('--json='))?.slice('--json='.length);
/** Where snapback's side writes V8 CPU profiles (node --cpu-prof), one per round. */
const PROFILE_DIR = process.argv
  .find((a) => a.startsWith('--profile='))
  ?.slice('--profile='.length);
/** Where to copy the processes' logs before the work directory goes (the driver logs each call). */
const LOGS_OUT = process.argv.find((a) => a.startsWith('--logs='))?.slice('--logs='.length);

type Side = 'snapback' | 'upstream';

interface Proc {
  name: string;
  pid: number;
  log: string;
}

interface RoundResult {
  side: Side;
  round: number;
  seconds: number;
  requests: number;
  requestsPerSnapshot: number;
  requestsByResource: Record<string, number>;
  peakRssMiB: Record<string, number>;
  /** CPU seconds each stack process and the driver used during the measured window. */
  cpuSeconds: Record<string, number>;
}

const work = mkdtempSync(path.join(os.tmpdir(), 'snapback-bench-'));
const started: Proc[] = [];

function spawn(name: string, binary: string, args: string[], env?: NodeJS.ProcessEnv): Proc {
  const log = path.join(work, `${name}.log`);
  const child = startProcess(binary, args, { logFile: log, owned: true, env });
  const proc = { name, pid: child.pid!, log };
  started.push(proc);
  return proc;
}

async function stop(proc: Proc): Promise<void> {
  await stopProcess(proc.pid, 20_000);
  started.splice(started.indexOf(proc), 1);
}

/** Peak resident set size so far, from /proc (VmHWM), in MiB. */
function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return Math.round((kb / 1024) * 10) / 10;
}

/** CPU time (user + system) a process has used so far, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[11] and [12] are utime and stime (the 14th and 15th of the whole line), in ticks
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
}

/** apiserver_request_total summed per resource (snapshot, storage, event and lease kinds). */
async function requestCounts(controlPlane: ControlPlane): Promise<Record<string, number>> {
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
  const counted = new Set([
    'volumesnapshots',
    'volumesnapshotcontents',
    'volumesnapshotclasses',
    'persistentvolumeclaims',
    'persistentvolumes',
    'events',
    'leases',
  ]);
  const totals: Record<string, number> = {};
  for (const line of body.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const resource = /resource="([^"]*)"/.exec(line)?.[1] ?? '';
    const subresource = /subresource="([^"]*)"/.exec(line)?.[1] ?? '';
    if (!counted.has(resource)) continue;
    const key = subresource ? `${resource}/${subresource}` : resource;
    totals[key] = (totals[key] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return totals;
}

async function settledRequestCounts(controlPlane: ControlPlane): Promise<Record<string, number>> {
  const total = (counts: Record<string, number>) =>
    Object.values(counts).reduce((a, b) => a + b, 0);
  let last = await requestCounts(controlPlane);
  let stableSince = Date.now();
  const deadline = Date.now() + 120_000;
  while (Date.now() - stableSince < 3_000 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const next = await requestCounts(controlPlane);
    if (total(next) !== total(last)) stableSince = Date.now();
    last = next;
  }
  return last;
}

function difference(after: Record<string, number>, before: Record<string, number>) {
  const result: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    const delta = value - (before[key] ?? 0);
    if (delta > 0) result[key] = delta;
  }
  return result;
}

/**
 * Resolves once `names` are all readyToUse, watching (not polling) the namespace; a watch the
 * server ends is resumed from a fresh list.
 */
async function allReady(client: HttpKubeClient, names: Set<string>): Promise<void> {
  const pending = new Set(names);
  const deadline = Date.now() + 30 * 60_000;
  while (Date.now() < deadline) {
    const list = await client.list<VolumeSnapshot>(VolumeSnapshots, { namespace: NAMESPACE });
    for (const vs of list.items) if (vs.status?.readyToUse) pending.delete(vs.metadata.name!);
    if (pending.size === 0) return;
    let handle: WatchHandle | undefined;
    await new Promise<void>((resolve) => {
      void client
        .watch<VolumeSnapshot>(
          VolumeSnapshots,
          { namespace: NAMESPACE, resourceVersion: list.resourceVersion },
          (event) => {
            if (event.object.status?.readyToUse) pending.delete(event.object.metadata?.name ?? '');
            if (pending.size === 0) resolve();
          },
          () => resolve(),
        )
        .then(
          (h) => (handle = h),
          () => resolve(),
        );
    });
    handle?.stop();
    if (pending.size === 0) return;
  }
  throw new Error(
    `${pending.size} snapshots still not ready after 30 min: ${[...pending].slice(0, 5).join(', ')}`,
  );
}

async function inParallel<T>(items: T[], limit: number, run: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await run(items[next++]!);
    }),
  );
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the local backend needs root (loop devices)');
  console.log(`building snapback into .cache/bench-build ...`);
  const build = path.join(repoRoot, '.cache', 'bench-build');
  execFileSync(
    path.join(repoRoot, 'node_modules/.bin/tsc'),
    ['-p', 'tsconfig.build.json', '--outDir', build],
    { cwd: repoRoot, stdio: 'inherit' },
  );
  const snapback = path.join(build, 'src/cli/main.js');

  console.log('starting a control plane ...');
  const controlPlane = await startControlPlane();
  const env = {
    ...process.env,
    KUBECONFIG: controlPlane.kubeconfig,
    SNAPBACK_CSI_PROTO: tool('CSI_PROTO'),
    SNAPBACK_LOG_LEVEL: 'warn',
  };
  const client = new HttpKubeClient(
    (() => {
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(controlPlane.kubeconfig);
      return kc;
    })(),
    { qps: 1000, burst: 1000 },
  );
  try {
    const crds = ['volumesnapshots', 'volumesnapshotcontents', 'volumesnapshotclasses'].map((p) =>
      path.join(repoRoot, 'crds', `snapshot.storage.k8s.io_${p}.yaml`),
    );
    await kubectl(controlPlane, ['apply', ...crds.flatMap((f) => ['-f', f])]);
    await kubectl(controlPlane, [
      'wait',
      '--for=condition=Established',
      ...crds.flatMap((f) => ['-f', f]),
    ]);
    await kubectl(controlPlane, ['create', 'namespace', NAMESPACE]);

    const socket = path.join(work, 'csi.sock');
    const root = path.join(work, 'disks');
    const driver = spawn(
      'driver',
      process.execPath,
      [
        snapback,
        'driver',
        '--backend=local',
        `--root=${root}`,
        '--node-id=bench',
        `--endpoint=unix://${socket}`,
      ],
      { ...env, SNAPBACK_LOG_LEVEL: 'info' },
    );

    // the source volumes, provisioned once by snapback's provisioner (not measured)
    await client.create(
      {
        group: 'storage.k8s.io',
        version: 'v1',
        plural: 'storageclasses',
        kind: 'StorageClass',
        namespaced: false,
      },
      {
        metadata: { name: 'local' },
        provisioner: DRIVER,
        reclaimPolicy: 'Delete',
      } as KubeObject,
    );
    await client.create(VolumeSnapshotClasses, {
      metadata: { name: 'local' },
      driver: DRIVER,
      deletionPolicy: 'Delete',
      parameters: { forceDelete: 'true' },
    } as KubeObject);
    const provisioner = spawn(
      'provisioner',
      process.execPath,
      [
        snapback,
        'controller',
        `--csi-address=unix://${socket}`,
        '--policy=false',
        '--snapshot-controller=false',
        '--csi-snapshotter=false',
        '--leader-election=false',
      ],
      env,
    );
    // one source volume per snapshot: the driver serialises operations on a volume (ABORTED for
    // a second one in flight), which would measure its backoff rather than the stacks
    const sources = Array.from({ length: COUNT + 1 }, (_, n) => sourceName(n));
    await inParallel(sources, 20, async (name) => {
      await client.create(PersistentVolumeClaims, {
        metadata: { name, namespace: NAMESPACE },
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
          namespace: NAMESPACE,
        })
      ).items.filter((pvc) => pvc.status?.phase === 'Bound').length;
    await waitFor(
      async () => (await bound()) === sources.length,
      1_800_000,
      `${sources.length} source PVCs to be bound`,
      async () => `${await bound()} bound\n${readFileSync(provisioner.log, 'utf8').slice(-2000)}`,
    );
    await stop(provisioner);

    const results: RoundResult[] = [];
    const order: Side[] = [];
    for (let i = 0; i < ROUNDS; i++)
      order.push(
        ...((i % 2 === 0 ? ['snapback', 'upstream'] : ['upstream', 'snapback']) as Side[]),
      );
    for (const [index, side] of order.entries()) {
      const round = index + 1;
      const procs: Proc[] =
        side === 'snapback'
          ? [
              spawn(
                `snapback-${round}`,
                process.execPath,
                [
                  snapback,
                  'controller',
                  `--csi-address=unix://${socket}`,
                  '--policy=false',
                  '--csi-provisioner=false',
                  '--leader-election=false',
                  `--kube-api-qps=${QPS}`,
                  `--kube-api-burst=${BURST}`,
                ],
                PROFILE_DIR
                  ? { ...env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${PROFILE_DIR}` }
                  : env,
              ),
            ]
          : [
              spawn(`snapshot-controller-${round}`, tool('SNAPSHOT_CONTROLLER'), [
                `--kubeconfig=${controlPlane.kubeconfig}`,
                '--leader-election=false',
                `--kube-api-qps=${QPS}`,
                `--kube-api-burst=${BURST}`,
              ]),
              spawn(`csi-snapshotter-${round}`, tool('CSI_SNAPSHOTTER'), [
                `--kubeconfig=${controlPlane.kubeconfig}`,
                `--csi-address=${socket}`,
                '--leader-election=false',
                `--kube-api-qps=${QPS}`,
                `--kube-api-burst=${BURST}`,
              ]),
            ];
      const describe = () =>
        procs.map((p) => `--- ${p.name}\n${readFileSync(p.log, 'utf8').slice(-2000)}`).join('\n');

      // warm up (caches synced, driver found): one snapshot, not measured
      const warm = `r${round}-warm`;
      await client.create(VolumeSnapshots, snapshotObject(warm, sourceName(COUNT)));
      await waitFor(
        async () =>
          (await client.get<VolumeSnapshot>(VolumeSnapshots, warm, NAMESPACE))?.status?.readyToUse,
        180_000,
        `the ${side} warm-up snapshot`,
        describe,
      );

      const names = Array.from(
        { length: COUNT },
        (_, n) => `r${round}-${String(n).padStart(3, '0')}`,
      );
      const before = await requestCounts(controlPlane);
      const watched = [...procs, driver];
      const cpuBefore = watched.map((p) => cpuSeconds(p.pid));
      const ownBefore = client.requests;
      const t0 = performance.now();
      const ready = allReady(client, new Set(names)).then(
        () => undefined,
        (error: unknown) => error,
      );
      await inParallel(names, 20, async (name) => {
        await client.create(VolumeSnapshots, snapshotObject(name, sourceName(names.indexOf(name))));
      });
      const failure = await ready;
      if (failure) {
        const stuck = (
          await client.list<VolumeSnapshot>(VolumeSnapshots, { namespace: NAMESPACE })
        ).items
          .filter((vs) => !vs.status?.readyToUse)
          .slice(0, 2);
        throw new Error(`${String(failure)}\n${JSON.stringify(stuck, null, 1)}\n${describe()}`);
      }
      const seconds = (performance.now() - t0) / 1000;
      // the stacks keep writing briefly after the last snapshot is ready (Events, the PVC
      // source-protection finalizer): count requests once they have settled
      const after = await settledRequestCounts(controlPlane);
      const cpu = Object.fromEntries(
        watched.map((p, i) => [
          p.name.replace(/-\d+$/, ''),
          Math.round((cpuSeconds(p.pid) - cpuBefore[i]!) * 100) / 100,
        ]),
      );
      const own = client.requests - ownBefore;
      const byResource = difference(after, before);
      const total = Object.values(byResource).reduce((a, b) => a + b, 0) - own;
      const peaks = Object.fromEntries(
        procs.map((p) => [p.name.replace(/-\d+$/, ''), peakRssMiB(p.pid)]),
      );
      const result: RoundResult = {
        side,
        round,
        seconds: Math.round(seconds * 100) / 100,
        requests: total,
        requestsPerSnapshot: Math.round((total / COUNT) * 100) / 100,
        requestsByResource: byResource,
        peakRssMiB: peaks,
        cpuSeconds: cpu,
      };
      results.push(result);
      console.log(JSON.stringify(result));

      // clean up with the same stack, so that the next round starts from an empty namespace
      await inParallel([warm, ...names], 20, async (name) => {
        await client.delete(VolumeSnapshots, name, NAMESPACE);
      });
      await waitFor(
        async () => (await client.list(VolumeSnapshotContents, { limit: 1 })).items.length === 0,
        600_000,
        `the ${side} round's contents to be deleted`,
        describe,
      );
      for (const proc of procs) await stop(proc);
    }
    await stop(driver);
    report(results);
  } finally {
    for (const proc of [...started].reverse()) await stopProcess(proc.pid, 10_000);
    await controlPlane.stop();
    if (LOGS_OUT) {
      mkdirSync(LOGS_OUT, { recursive: true });
      for (const file of readdirSync(work).filter((f) => f.endsWith('.log'))) {
        copyFileSync(path.join(work, file), path.join(LOGS_OUT, file));
      }
    }
    rmSync(work, { recursive: true, force: true });
  }
}

const sourceName = (n: number): string => `src-${String(n).padStart(3, '0')}`;

function snapshotObject(name: string, source: string): VolumeSnapshot {
  return {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshot',
    metadata: { name, namespace: NAMESPACE },
    spec: { source: { persistentVolumeClaimName: source }, volumeSnapshotClassName: 'local' },
  };
}

function report(results: RoundResult[]): void {
  const mean = (side: Side, pick: (r: RoundResult) => number) => {
    const values = results.filter((r) => r.side === side).map(pick);
    return values.reduce((a, b) => a + b, 0) / values.length;
  };
  const rss = (side: Side) =>
    mean(side, (r) => Object.values(r.peakRssMiB).reduce((a, b) => a + b, 0));
  const stackCpu = (r: RoundResult) =>
    Object.entries(r.cpuSeconds)
      .filter(([name]) => name !== 'driver')
      .reduce((sum, [, seconds]) => sum + seconds, 0);
  const summary = {
    count: COUNT,
    rounds: ROUNDS,
    qps: QPS,
    burst: BURST,
    snapback: {
      seconds: mean('snapback', (r) => r.seconds),
      requestsPerSnapshot: mean('snapback', (r) => r.requestsPerSnapshot),
      peakRssMiB: rss('snapback'),
      cpuSeconds: mean('snapback', stackCpu),
    },
    upstream: {
      seconds: mean('upstream', (r) => r.seconds),
      requestsPerSnapshot: mean('upstream', (r) => r.requestsPerSnapshot),
      peakRssMiB: rss('upstream'),
      cpuSeconds: mean('upstream', stackCpu),
    },
    timeRatio: 0,
  };
  summary.timeRatio =
    Math.round((summary.snapback.seconds / summary.upstream.seconds) * 1000) / 1000;
  console.log('\nround  side      seconds  req/snapshot  peak RSS (MiB) / CPU (s)');
  for (const r of results) {
    const perProcess = Object.entries(r.peakRssMiB)
      .map(([k, v]) => `${k}=${v}/${r.cpuSeconds[k]}`)
      .join(' ');
    console.log(
      `${String(r.round).padEnd(6)} ${r.side.padEnd(9)} ${String(r.seconds).padStart(7)}  ${String(r.requestsPerSnapshot).padStart(12)}  ${perProcess} driver-cpu=${r.cpuSeconds.driver}`,
    );
  }
  console.log(`\ntime ratio snapback/upstream: ${summary.timeRatio} (goal <= 0.8)`);
  console.log(JSON.stringify(summary, null, 2));
  if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ summary, results }, null, 2));
}

await main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

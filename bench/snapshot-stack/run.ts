/**
 * 300 VolumeSnapshots from creation to readyToUse: snapback's embedded snapshot controller +
 * CSI snapshotter (one process) against upstream's snapshot-controller + csi-snapshotter (two
 * processes, built in tools/), on the same control plane, the same local-backend driver and the
 * same client QPS/burst, in alternated rounds. Prints per round and per side: wall time, API
 * requests per snapshot (apiserver_request_total deltas, minus this script's own requests) and
 * peak RSS (VmHWM) of each process.
 *
 *   make bench BENCH=snapshot-stack ARGS='[--count=300] [--rounds=2] [--qps=50]
 *     [--burst=100] [--json=<file>] [--logs=<dir>] [--profile=<dir>] [--node-options=<opts>]
 *     [--sides=snapback]'
 *
 * Needs root (loop devices); `make bench` builds dist/ and the tools first. Figures, not
 * assertions: see the README.
 */
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { VolumeSnapshot } from '../../src/api/snapshot.js';
import { HttpKubeClient, type WatchHandle } from '../../src/kube/index.js';
import { VolumeSnapshotContents, VolumeSnapshots } from '../../src/kube/resource.js';
import { startControlPlane, type ControlPlane } from '../../test/support/control-plane.js';
import { kubectl } from '../../test/support/cluster.js';
import { waitFor } from '../../test/support/processes.js';
import { repoRoot, tool } from '../../test/support/tools.js';
import {
  apiRequestCounts,
  BenchProcesses,
  type BenchProcess as Proc,
  cpuSeconds,
  createLocalClasses,
  inParallel,
  numberFlag as flag,
  peakRssMiB,
  provisionPvcs,
  snapbackMain,
  stringFlag,
  total,
} from '../support.js';

const NAMESPACE = 'bench';

const COUNT = flag('count', 300);
const ROUNDS = flag('rounds', 2);
const QPS = flag('qps', 50);
const BURST = flag('burst', 100);
const JSON_OUT = stringFlag('json');
/** Where snapback's side writes V8 CPU profiles (node --cpu-prof), one per round. */
const PROFILE_DIR = stringFlag('profile');
/**
 * Node.js (and V8) flags for snapback's side, on its command line (e.g. --trace-gc,
 * --max-semi-space-size=2). Several settings separated by `;` (an empty one = none) each get a
 * snapback round in every round, to compare them side by side.
 */
const NODE_FLAG_VARIANTS = (stringFlag('node-options') ?? '').split(';').map((v) => v.trim());
/** `snapback` to run only snapback's rounds (comparing its own settings); both by default. */
const SIDES = (stringFlag('sides') ?? 'snapback,upstream').split(',') as Side[];
/** Where to copy the processes' logs before the work directory goes (the driver logs each call). */
const LOGS_OUT = stringFlag('logs');

type Side = 'snapback' | 'upstream';

interface RoundResult {
  side: Side;
  /** Node.js flags of snapback's side ('' for none). */
  nodeFlags: string;
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
const processes = new BenchProcesses(work);
const spawn = processes.spawn.bind(processes);
const stop = processes.stop.bind(processes);

/** The snapshot, storage, event and lease kinds whose requests count. */
const COUNTED = new Set([
  'volumesnapshots',
  'volumesnapshotcontents',
  'volumesnapshotclasses',
  'persistentvolumeclaims',
  'persistentvolumes',
  'events',
  'leases',
]);
const requestCounts = (controlPlane: ControlPlane) => apiRequestCounts(controlPlane, COUNTED);

async function settledRequestCounts(controlPlane: ControlPlane): Promise<Record<string, number>> {
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

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the local backend needs root (loop devices)');
  const snapback = snapbackMain();

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
    await createLocalClasses(client);
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
    await provisionPvcs(
      client,
      NAMESPACE,
      sources.map((name) => ({ name })),
      () => readFileSync(provisioner.log, 'utf8').slice(-2000),
    );
    await stop(provisioner);

    const results: RoundResult[] = [];
    const order: Array<{ side: Side; nodeFlags: string }> = [];
    for (let i = 0; i < ROUNDS; i++) {
      const sides = (i % 2 === 0 ? ['snapback', 'upstream'] : ['upstream', 'snapback']) as Side[];
      for (const side of sides.filter((s) => SIDES.includes(s))) {
        if (side === 'upstream') order.push({ side, nodeFlags: '' });
        else for (const nodeFlags of NODE_FLAG_VARIANTS) order.push({ side, nodeFlags });
      }
    }
    for (const [index, { side, nodeFlags }] of order.entries()) {
      const round = index + 1;
      const procs: Proc[] =
        side === 'snapback'
          ? [
              spawn(
                `snapback-${round}`,
                process.execPath,
                [
                  ...nodeFlags.split(/\s+/).filter(Boolean),
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
      const requests = total(byResource) - own;
      const peaks = Object.fromEntries(
        procs.map((p) => [p.name.replace(/-\d+$/, ''), peakRssMiB(p.pid)]),
      );
      const result: RoundResult = {
        side,
        nodeFlags,
        round,
        seconds: Math.round(seconds * 100) / 100,
        requests,
        requestsPerSnapshot: Math.round((requests / COUNT) * 100) / 100,
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
    await processes.stopAll(10_000);
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
  const rss = (side: Side) => mean(side, (r) => total(r.peakRssMiB));
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
    /** Per setting of --node-options, when several were compared. */
    snapbackByNodeFlags: {} as Record<string, Record<string, number>>,
  };
  summary.timeRatio =
    Math.round((summary.snapback.seconds / summary.upstream.seconds) * 1000) / 1000;
  if (NODE_FLAG_VARIANTS.length > 1) {
    for (const flags of NODE_FLAG_VARIANTS) {
      const rounds = results.filter((r) => r.side === 'snapback' && r.nodeFlags === flags);
      const avg = (pick: (r: RoundResult) => number) =>
        rounds.map(pick).reduce((a, b) => a + b, 0) / rounds.length;
      summary.snapbackByNodeFlags[flags || '(none)'] = {
        seconds: avg((r) => r.seconds),
        timeRatio: Math.round((avg((r) => r.seconds) / summary.upstream.seconds) * 1000) / 1000,
        requestsPerSnapshot: avg((r) => r.requestsPerSnapshot),
        peakRssMiB: avg((r) => total(r.peakRssMiB)),
        cpuSeconds: avg(stackCpu),
      };
    }
  }
  console.log('\nround  side      seconds  req/snapshot  peak RSS (MiB) / CPU (s)');
  for (const r of results) {
    const perProcess = Object.entries(r.peakRssMiB)
      .map(([k, v]) => `${k}=${v}/${r.cpuSeconds[k]}`)
      .join(' ');
    console.log(
      `${String(r.round).padEnd(6)} ${r.side.padEnd(9)} ${String(r.seconds).padStart(7)}  ${String(r.requestsPerSnapshot).padStart(12)}  ${perProcess} driver-cpu=${r.cpuSeconds.driver}${r.nodeFlags ? ` node: ${r.nodeFlags}` : ''}`,
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

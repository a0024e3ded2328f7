/**
 * Memory over time: one BackupPolicy firing every minute over a few PVCs (keepLast 3, so each
 * run also prunes), for --minutes, while the resident memory of the controller (policy layer and
 * embedded snapshot stack in one process) and of the local-backend driver is sampled. After
 * --warmup-minutes the RSS should stay flat: the summary gives the first and last post-warm-up
 * minute, the largest sample, and the least-squares slope in MiB per hour; --svg writes a plot.
 * The controller's V8 heap in use (nodejs_heap_size_used_bytes from its /metrics) is sampled
 * too: RSS that grows while the heap in use does not is V8 keeping pages, not live objects.
 *
 *   make bench BENCH=soak ARGS='[--minutes=30] [--warmup-minutes=5] [--pvcs=3]
 *     [--sample-seconds=10] [--node-options="--max-semi-space-size=2"] [--json=<file>]
 *     [--svg=<file>]'
 *
 * Needs root (the local backend). Figures, not assertions.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { VolumeSnapshot } from '../../src/api/index.js';
import { HttpKubeClient, type KubeObject } from '../../src/kube/index.js';
import { loadClusterAccess } from '../../src/kube/kubeconfig.js';
import { VolumeSnapshots } from '../../src/kube/resource.js';
import { BackupPolicies } from '../../src/policy/objects.js';
import { kubectl } from '../../test/support/cluster.js';
import { startControlPlane } from '../../test/support/control-plane.js';
import { repoRoot, tool } from '../../test/support/tools.js';
import {
  BenchProcesses,
  createLocalClasses,
  numberFlag as flag,
  provisionPvcs,
  snapbackMain,
  stringFlag,
} from '../support.js';

const NAMESPACE = 'soak';
const MINUTES = flag('minutes', 30);
const WARMUP_MINUTES = flag('warmup-minutes', 5);
const PVCS = flag('pvcs', 3);
const SAMPLE_SECONDS = flag('sample-seconds', 10);
const JSON_OUT = stringFlag('json');
const SVG_OUT = stringFlag('svg');
/** Node.js (and V8) flags for both processes, e.g. the image's --max-semi-space-size=2. */
const NODE_FLAGS = stringFlag('node-options')?.split(/\s+/).filter(Boolean) ?? [];
const METRICS_PORT = flag('metrics-port', 18390);

interface Sample {
  /** Minutes since the policy was created. */
  minute: number;
  controllerMiB: number;
  driverMiB: number;
  /** The controller's V8 heap in use, as its /metrics reports it. */
  controllerHeapMiB: number;
  readySnapshots: number;
}

type Series = 'controllerMiB' | 'driverMiB' | 'controllerHeapMiB';

/** nodejs_heap_size_used_bytes of the controller, in MiB. */
async function heapUsedMiB(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`)).text();
  const bytes = Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1]);
  return Math.round((bytes / 2 ** 20) * 10) / 10;
}

const rssMiB = (pid: number): number => {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return Math.round((kb / 1024) * 10) / 10;
};

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return sxx === 0 ? 0 : sxy / sxx;
}

function summarize(samples: Sample[], key: Series) {
  const after = samples.filter((s) => s.minute >= WARMUP_MINUTES);
  const firstMinute = after.filter((s) => s.minute < WARMUP_MINUTES + 1).map((s) => s[key]);
  const lastMinute = after.filter((s) => s.minute >= MINUTES - 1).map((s) => s[key]);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return {
    warmupEndMiB: round(mean(firstMinute)),
    lastMinuteMiB: round(mean(lastMinute)),
    maxAfterWarmupMiB: Math.max(...after.map((s) => s[key])),
    slopeMiBPerHour: round(slope(after.map((s) => [s.minute / 60, s[key]])), 2),
  };
}

/** A small SVG line plot of both processes' RSS over the run. */
function svgPlot(samples: Sample[]): string {
  const width = 640;
  const height = 240;
  const pad = 40;
  const maxY = Math.ceil(Math.max(...samples.map((s) => s.controllerMiB)) / 50) * 50;
  const x = (m: number) => pad + ((width - 2 * pad) * m) / MINUTES;
  const y = (v: number) => height - pad - ((height - 2 * pad) * v) / maxY;
  const line = (key: Series, color: string) =>
    `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${samples
      .map((s) => `${x(s.minute).toFixed(1)},${y(s[key]).toFixed(1)}`)
      .join(' ')}"/>`;
  const ticks = [0, maxY / 2, maxY]
    .map(
      (v) =>
        `<text x="${pad - 4}" y="${y(v) + 4}" text-anchor="end">${v}</text>` +
        `<line x1="${pad}" x2="${width - pad}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
    )
    .join('');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    ticks,
    `<line x1="${x(WARMUP_MINUTES)}" x2="${x(WARMUP_MINUTES)}" y1="${pad}" y2="${height - pad}" stroke="#aaa" stroke-dasharray="3,3"/>`,
    line('controllerMiB', '#1f77b4'),
    line('driverMiB', '#ff7f0e'),
    line('controllerHeapMiB', '#2ca02c'),
    `<text x="${pad}" y="${pad - 10}">MiB: controller RSS (blue), driver RSS (orange), controller V8 heap in use (green); dashed: end of warm-up</text>`,
    `<text x="${width - pad}" y="${height - 10}" text-anchor="end">${MINUTES} minutes, one policy run a minute</text>`,
    '</svg>',
  ].join('\n');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the local backend needs root');
  const work = mkdtempSync(path.join(os.tmpdir(), 'snapback-bench-soak-'));
  const processes = new BenchProcesses(work);
  console.log('starting a control plane ...');
  const controlPlane = await startControlPlane();
  const client = new HttpKubeClient(loadClusterAccess({ file: controlPlane.kubeconfig }));
  const env = {
    ...process.env,
    KUBECONFIG: controlPlane.kubeconfig,
    SNAPBACK_CSI_PROTO: tool('CSI_PROTO'),
    SNAPBACK_LOG_LEVEL: 'warn',
  };
  const spawn = (name: string, args: string[]) =>
    processes.spawn(name, process.execPath, [...NODE_FLAGS, snapbackMain(), ...args], env);
  try {
    const crds = path.join(repoRoot, 'crds');
    await kubectl(controlPlane, ['apply', '--server-side', '-f', crds]);
    await kubectl(controlPlane, ['wait', '--for=condition=Established', '-f', crds]);
    await kubectl(controlPlane, ['create', 'namespace', NAMESPACE]);
    const socket = path.join(work, 'csi.sock');
    const driver = spawn('driver', [
      'driver',
      '--backend=local',
      `--root=${path.join(work, 'disks')}`,
      '--node-id=soak',
      `--endpoint=unix://${socket}`,
    ]);
    const controller = spawn('controller', [
      'controller',
      `--csi-address=unix://${socket}`,
      '--leader-election=false',
      `--http-endpoint=127.0.0.1:${METRICS_PORT}`,
    ]);
    await createLocalClasses(client, { defaultSnapshotClass: true });
    const names = Array.from({ length: PVCS }, (_, i) => `data-${i}`);
    await provisionPvcs(
      client,
      NAMESPACE,
      names.map((name) => ({ name, labels: { app: 'soak' } })),
      () => readFileSync(controller.log, 'utf8').slice(-2000),
    );
    await client.create(BackupPolicies, {
      apiVersion: 'snapback.dev/v1alpha1',
      kind: 'BackupPolicy',
      metadata: { name: 'every-minute', namespace: NAMESPACE },
      spec: {
        schedule: '* * * * *',
        selector: { matchLabels: { app: 'soak' } },
        retention: { keepLast: 3 },
      },
    } as KubeObject);
    console.log(`${MINUTES} minutes, one run a minute over ${PVCS} PVCs ...`);
    const samples: Sample[] = [];
    const start = performance.now();
    for (;;) {
      const minute = (performance.now() - start) / 60_000;
      if (minute > MINUTES) break;
      const { items } = await client.list<VolumeSnapshot>(VolumeSnapshots, {
        namespace: NAMESPACE,
      });
      samples.push({
        minute: round(minute, 2),
        controllerMiB: rssMiB(controller.pid),
        driverMiB: rssMiB(driver.pid),
        controllerHeapMiB: await heapUsedMiB(),
        readySnapshots: items.filter((s) => s.status?.readyToUse).length,
      });
      await new Promise((r) => setTimeout(r, SAMPLE_SECONDS * 1000));
    }
    const summary = {
      minutes: MINUTES,
      warmupMinutes: WARMUP_MINUTES,
      pvcs: PVCS,
      nodeOptions: NODE_FLAGS.join(' '),
      controller: summarize(samples, 'controllerMiB'),
      controllerHeap: summarize(samples, 'controllerHeapMiB'),
      driver: summarize(samples, 'driverMiB'),
      readySnapshotsAtEnd: samples.at(-1)?.readySnapshots,
    };
    console.log(JSON.stringify(summary, null, 2));
    if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ summary, samples }, null, 2));
    if (SVG_OUT) writeFileSync(SVG_OUT, svgPlot(samples) + '\n');
  } finally {
    await processes.stopAll();
    await controlPlane.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

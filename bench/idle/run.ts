/**
 * Resident memory of snapback's processes at rest, against a bare Node.js process and Node.js
 * with one dependency imported, all started fresh from the compiled dist/:
 *
 * - `all-in-one --backend=local` on the test control plane (every CRD applied, no objects);
 * - `driver --backend=local`;
 * - `driver --backend=alicloud` against the ECS emulator (test/support/ecs-emulator), which
 *   checks the credentials and ECS access at start-up;
 * - reference rows: `node` doing nothing, and `node` after importing one package.
 *
 * Each process is ready (/readyz answers 200, or the import resolved), then left alone for
 * --settle-seconds; its VmRSS then and its VmHWM are read from /proc. Median over --rounds.
 *
 *   make bench BENCH=idle ARGS='[--rounds=3] [--settle-seconds=15] [--json=<file>]
 *     [--node-options=<flags of the snapback processes>]'
 *
 * Figures, not assertions: see the README.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startControlPlane, freePort } from '../../test/support/control-plane.js';
import { kubectl } from '../../test/support/cluster.js';
import { isAlive, sleep, waitFor } from '../../test/support/processes.js';
import { repoRoot, tool } from '../../test/support/tools.js';
import { ECS, startEmulator, type Emulator } from '../ecs-emulator.js';
import { BenchProcesses, numberFlag as flag, snapbackMain, stringFlag } from '../support.js';

const ROUNDS = flag('rounds', 3);
const SETTLE_MS = flag('settle-seconds', 15) * 1000;
const JSON_OUT = stringFlag('json');
/** Node.js (and V8) flags for snapback's processes (e.g. --max-semi-space-size=1). */
const NODE_FLAGS = stringFlag('node-options')?.split(/\s+/).filter(Boolean) ?? [];

/** Packages whose import cost is reported on its own (node, import, nothing else). */
const PACKAGES = [
  '@kubernetes/client-node',
  '@alicloud/ecs20140526',
  '@grpc/grpc-js',
  '@grpc/proto-loader',
  'zod',
  'winston',
  'prom-client',
  'yaml',
];

interface Sample {
  rssMiB: number;
  peakMiB: number;
}

const work = mkdtempSync(path.join(os.tmpdir(), 'snapback-bench-idle-'));
const processes = new BenchProcesses(work);

function memory(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]);
  const mib = (value: number) => Math.round((value / 1024) * 10) / 10;
  return { rssMiB: mib(kb('VmRSS')), peakMiB: mib(kb('VmHWM')) };
}

async function ready(url: string, pid: number, log: string): Promise<void> {
  await waitFor(
    async () => {
      if (!isAlive(pid)) throw new Error(`process ${pid} exited:\n${readFileSync(log, 'utf8')}`);
      try {
        return (await fetch(url)).status === 200;
      } catch {
        return false;
      }
    },
    120_000,
    `${url} to answer 200`,
    () => readFileSync(log, 'utf8').slice(-2000),
  );
}

/** Starts `args` of the compiled CLI with a health endpoint, waits for /readyz, settles, samples. */
async function measureSnapback(
  name: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<Sample> {
  const port = await freePort();
  const proc = processes.spawn(
    name,
    process.execPath,
    [...NODE_FLAGS, snapbackMain(), ...args, `--http-endpoint=127.0.0.1:${port}`],
    env,
  );
  try {
    await ready(`http://127.0.0.1:${port}/readyz`, proc.pid, proc.log);
    await sleep(SETTLE_MS);
    if (!isAlive(proc.pid)) throw new Error(`${name} exited:\n${readFileSync(proc.log, 'utf8')}`);
    return memory(proc.pid);
  } finally {
    await processes.stop(proc);
  }
}

/** Node.js importing `pkg` (or nothing), then idle. */
async function measureImport(pkg: string | undefined): Promise<Sample> {
  const script = pkg
    ? `await import(${JSON.stringify(pkg)}); console.log('imported'); setInterval(() => {}, 1e9);`
    : `console.log('imported'); setInterval(() => {}, 1e9);`;
  const proc = processes.spawn(pkg ? `import-${pkg.replace(/\W/g, '_')}` : 'bare-node', 'sh', [
    '-c',
    `cd ${JSON.stringify(repoRoot)} && exec ${JSON.stringify(process.execPath)} --input-type=module -e ${JSON.stringify(script)}`,
  ]);
  try {
    await waitFor(
      () => readFileSync(proc.log, 'utf8').includes('imported'),
      60_000,
      `node to import ${pkg ?? 'nothing'}`,
      () => readFileSync(proc.log, 'utf8'),
    );
    await sleep(Math.min(SETTLE_MS, 5_000));
    return memory(proc.pid);
  } finally {
    await processes.stop(proc);
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function main(): Promise<void> {
  console.log('starting a control plane and the ECS emulator ...');
  const controlPlane = await startControlPlane();
  let emulator: Emulator | undefined;
  const samples: Record<string, Sample[]> = {};
  const record = (name: string, sample: Sample) => {
    (samples[name] ??= []).push(sample);
    console.log(JSON.stringify({ name, ...sample }));
  };
  try {
    await kubectl(controlPlane, ['apply', '--server-side', '-f', path.join(repoRoot, 'crds')]);
    await kubectl(controlPlane, [
      'wait',
      '--for=condition=Established',
      'crd',
      '--all',
      '--timeout=60s',
    ]);
    emulator = await startEmulator();
    const env = {
      ...process.env,
      KUBECONFIG: controlPlane.kubeconfig,
      SNAPBACK_CSI_PROTO: tool('CSI_PROTO'),
      SNAPBACK_LOG_LEVEL: 'warn',
    };
    for (let round = 1; round <= ROUNDS; round++) {
      const dir = path.join(work, `round-${round}`);
      mkdirSync(dir);
      record('node (bare)', await measureImport(undefined));
      record(
        'all-in-one --backend=local',
        await measureSnapback(
          `all-in-one-${round}`,
          [
            'all-in-one',
            '--backend=local',
            `--root=${path.join(dir, 'all-in-one')}`,
            '--node-id=bench',
            '--leader-election=false',
          ],
          env,
        ),
      );
      record(
        'driver --backend=local',
        await measureSnapback(
          `driver-local-${round}`,
          [
            'driver',
            '--backend=local',
            `--root=${path.join(dir, 'driver')}`,
            '--node-id=bench',
            `--endpoint=unix://${path.join(dir, 'driver.sock')}`,
          ],
          env,
        ),
      );
      record(
        'driver --backend=alicloud',
        await measureSnapback(
          `driver-alicloud-${round}`,
          [
            'driver',
            '--backend=alicloud',
            `--endpoint=unix://${path.join(dir, 'alicloud.sock')}`,
            `--region=${ECS.region}`,
            `--zone=${ECS.zone}`,
            `--ecs-endpoint=${emulator.endpoint}`,
            '--ecs-protocol=http',
            '--credentials=env',
          ],
          {
            ...env,
            ALIBABA_CLOUD_ACCESS_KEY_ID: ECS.accessKeyId,
            ALIBABA_CLOUD_ACCESS_KEY_SECRET: ECS.accessKeySecret,
          },
        ),
      );
      for (const pkg of PACKAGES) record(`node + import ${pkg}`, await measureImport(pkg));
    }
  } finally {
    await processes.stopAll(10_000);
    await emulator?.stop();
    await controlPlane.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const summary = Object.fromEntries(
    Object.entries(samples).map(([name, list]) => [
      name,
      {
        rssMiB: median(list.map((s) => s.rssMiB)),
        peakMiB: median(list.map((s) => s.peakMiB)),
      },
    ]),
  );
  const bare = summary['node (bare)']!.rssMiB;
  console.log(`\n${'process'.padEnd(42)} RSS (MiB)  peak (MiB)  RSS - bare node`);
  for (const [name, s] of Object.entries(summary)) {
    console.log(
      `${name.padEnd(42)} ${s.rssMiB.toFixed(1).padStart(9)}  ${s.peakMiB.toFixed(1).padStart(10)}  ${(s.rssMiB - bare).toFixed(1).padStart(15)}`,
    );
  }
  console.log(
    `\nmedians of ${ROUNDS} rounds, ${SETTLE_MS / 1000} s after ready, ${process.version}`,
  );
  if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ summary, samples }, null, 2));
}

await main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

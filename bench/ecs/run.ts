/**
 * ECS API calls and wall time per snapshot lifecycle (create -> ready -> delete) for 100
 * snapshots of 100 disks, with the ECS emulator limiting CreateSnapshot to 10 requests a
 * second, so no client can finish in under 100 / 10 = 10 s.
 *
 *   node --import tsx/esm bench/ecs/run.ts [--snapshots=100] [--rate=10] [--rounds=3]
 *     [--json=<file>]
 *
 * Sides, alternated per round so machine drift favours none:
 * - driver:        the alicloud backend as `snapback driver` builds it (default client limits),
 *                  driven the way csi-snapshotter drives a CSI driver: CreateSnapshot repeated
 *                  every second until ready, then DeleteSnapshot, retried on UNAVAILABLE/ABORTED;
 * - driver-20/s:   the same, told CreateSnapshot may go at 20/s: it must learn the real limit
 *                  from ECS's throttling replies;
 * - paced-sdk:     a hand-written client that knows the limit: CreateSnapshot paced at exactly
 *                  the rate, one batched DescribeSnapshots a second, DeleteSnapshot without any
 *                  dependent-disk check: the fewest calls and least time possible, as a peer.
 * Each round starts a fresh emulator process (`test/support/ecs-emulator/main.ts`). Figures,
 * not assertions.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import ecs from '@alicloud/ecs20140526';
import openapi from '@alicloud/openapi-client';
import { createAlicloudBackend } from '../../src/driver/backends/alicloud/index.js';
import type { AlicloudBackend } from '../../src/driver/backends/alicloud/backend.js';
import { isDiskError } from '../../src/csi/errors.js';
import { silentLogger } from '../../src/observability/logger.js';
import { repoRoot } from '../../test/support/tools.js';

function flag(name: string, fallback: number): number {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  return arg ? Number(arg.slice(name.length + 3)) : fallback;
}
const SNAPSHOTS = flag('snapshots', 100);
const RATE = flag('rate', 10);
const ROUNDS = flag('rounds', 3);
const JSON_OUT = process.argv.find((a) => a.startsWith('--json='))?.slice('--json='.length);
const FLOOR_S = SNAPSHOTS / RATE;

const accessKeyId = 'BENCHKEY';
const accessKeySecret = 'bench-secret';
const region = 'cn-hangzhou';
const zone = 'cn-hangzhou-h';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;

type CallSummary = Record<string, { ok: number; failed: number }>;

interface Emulator {
  endpoint: string;
  admin(method: string, route: string, body?: unknown): Promise<unknown>;
  stop(): Promise<void>;
}

async function startEmulator(): Promise<Emulator> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--import',
      'tsx/esm',
      path.join(repoRoot, 'test/support/ecs-emulator/main.ts'),
      '--port=0',
      `--access-key-id=${accessKeyId}`,
      `--access-key-secret=${accessKeySecret}`,
      `--region=${region}`,
      `--zones=${zone}`,
      `--rate-limit=CreateSnapshot=${RATE}`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const endpoint = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening on (\S+)\n/.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) =>
      reject(new Error(`the emulator exited (${code}) before listening: ${out}`)),
    );
  });
  return {
    endpoint,
    async admin(method, route, body) {
      const response = await fetch(`http://${endpoint}/__emulator/${route}`, {
        method,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!response.ok) throw new Error(`admin ${route}: ${await response.text()}`);
      return response.json();
    },
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Disks that have been attached once, so ECS snapshots them. */
async function seedDisks(emulator: Emulator): Promise<string[]> {
  const instance = (await emulator.admin('POST', 'instances', {
    regionId: region,
    zoneId: zone,
  })) as { id: string };
  const disks: string[] = [];
  for (let i = 0; i < SNAPSHOTS; i++) {
    const disk = (await emulator.admin('POST', 'disks', {
      regionId: region,
      zoneId: zone,
      sizeGiB: 40,
      category: 'cloud_essd',
      instanceId: instance.id,
    })) as { DiskId: string };
    disks.push(disk.DiskId);
  }
  return disks;
}

/** What csi-snapshotter does with one VolumeSnapshotContent, until the snapshot is deleted. */
async function lifecycle(backend: AlicloudBackend, name: string, diskId: string): Promise<void> {
  const request = {
    name,
    sourceVolumeId: diskId,
    forceDelete: false,
    parameters: {},
    metadata: {},
  };
  let snapshotId: string | undefined;
  for (;;) {
    try {
      const snapshot = await backend.createSnapshot(request);
      snapshotId = snapshot.id;
      if (snapshot.readyToUse) break;
    } catch (error) {
      if (!isDiskError(error, 'UNAVAILABLE') && !isDiskError(error, 'ABORTED')) throw error;
    }
    await sleep(1000);
  }
  for (;;) {
    try {
      await backend.deleteSnapshot(snapshotId);
      return;
    } catch (error) {
      if (!isDiskError(error, 'UNAVAILABLE') && !isDiskError(error, 'ABORTED')) throw error;
      await sleep(1000);
    }
  }
}

interface Result {
  side: string;
  round: number;
  seconds: number;
  callsPerSnapshot: number;
  okCallsPerSnapshot: number;
  calls: CallSummary;
}

function totals(calls: CallSummary): { all: number; ok: number } {
  let all = 0;
  let ok = 0;
  for (const entry of Object.values(calls)) {
    all += entry.ok + entry.failed;
    ok += entry.ok;
  }
  return { all, ok };
}

function diff(after: CallSummary, before: CallSummary): CallSummary {
  const out: CallSummary = {};
  for (const [action, entry] of Object.entries(after)) {
    const prior = before[action] ?? { ok: 0, failed: 0 };
    const d = { ok: entry.ok - prior.ok, failed: entry.failed - prior.failed };
    if (d.ok || d.failed) out[action] = d;
  }
  return out;
}

async function runDriver(side: string, round: number, rateLimits?: string): Promise<Result> {
  const emulator = await startEmulator();
  try {
    const disks = await seedDisks(emulator);
    const backend = await createAlicloudBackend({
      nodeId: undefined,
      flags: {
        region,
        zone,
        'ecs-endpoint': emulator.endpoint,
        'ecs-protocol': 'http',
        credentials: 'env',
        ...(rateLimits && { 'ecs-rate-limits': rateLimits }),
      },
      env: {
        ALIBABA_CLOUD_ACCESS_KEY_ID: accessKeyId,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET: accessKeySecret,
      },
      logger: silentLogger(),
    });
    try {
      const before = (await emulator.admin('GET', 'calls')) as CallSummary;
      const start = process.hrtime.bigint();
      await Promise.all(
        disks.map((disk, i) => lifecycle(backend, `snapshot-bench-${round}-${i}`, disk)),
      );
      const elapsed = seconds(start);
      const calls = diff((await emulator.admin('GET', 'calls')) as CallSummary, before);
      const { all, ok } = totals(calls);
      return {
        side,
        round,
        seconds: elapsed,
        callsPerSnapshot: all / SNAPSHOTS,
        okCallsPerSnapshot: ok / SNAPSHOTS,
        calls,
      };
    } finally {
      await backend.close();
    }
  } finally {
    await emulator.stop();
  }
}

async function runPacedSdk(round: number): Promise<Result> {
  const emulator = await startEmulator();
  try {
    const disks = await seedDisks(emulator);
    const client = new ecs.default(
      new openapi.Config({
        accessKeyId,
        accessKeySecret,
        endpoint: emulator.endpoint,
        protocol: 'http',
        regionId: region,
      }),
    );
    const before = (await emulator.admin('GET', 'calls')) as CallSummary;
    const start = process.hrtime.bigint();
    const ids = await Promise.all(
      disks.map(async (diskId, i) => {
        await sleep((i * 1000) / RATE);
        // Timers bunch up on a busy machine: even a paced client is throttled at times.
        for (;;) {
          try {
            const response = await client.createSnapshot(
              new ecs.CreateSnapshotRequest({ diskId, clientToken: `n:paced-${round}-${i}` }),
            );
            return response.body!.snapshotId!;
          } catch (error) {
            const { code, retryAfter } = error as { code?: string; retryAfter?: number };
            if (!code?.startsWith('Throttling')) throw error;
            await sleep(retryAfter ?? 100);
          }
        }
      }),
    );
    const pending = new Set(ids);
    while (pending.size > 0) {
      await sleep(1000);
      const batch = [...pending].slice(0, 100);
      const response = await client.describeSnapshots(
        new ecs.DescribeSnapshotsRequest({
          regionId: region,
          snapshotIds: JSON.stringify(batch),
          maxResults: 100,
        }),
      );
      for (const s of response.body?.snapshots?.snapshot ?? [])
        if (s.available) pending.delete(s.snapshotId!);
    }
    await Promise.all(
      ids.map((snapshotId) => client.deleteSnapshot(new ecs.DeleteSnapshotRequest({ snapshotId }))),
    );
    const elapsed = seconds(start);
    const calls = diff((await emulator.admin('GET', 'calls')) as CallSummary, before);
    const { all, ok } = totals(calls);
    return {
      side: 'paced-sdk',
      round,
      seconds: elapsed,
      callsPerSnapshot: all / SNAPSHOTS,
      okCallsPerSnapshot: ok / SNAPSHOTS,
      calls,
    };
  } finally {
    await emulator.stop();
  }
}

const results: Result[] = [];
const sides: Record<string, (round: number) => Promise<Result>> = {
  driver: (round) => runDriver('driver', round),
  'driver-20/s': (round) => runDriver('driver-20/s', round, 'CreateSnapshot=20'),
  'paced-sdk': (round) => runPacedSdk(round),
};
const order = Object.keys(sides);
console.log(
  `${SNAPSHOTS} snapshot lifecycles, CreateSnapshot limited to ${RATE}/s by the emulator (floor ${FLOOR_S.toFixed(1)} s)`,
);
for (let round = 1; round <= ROUNDS; round++) {
  const names = round % 2 ? order : [...order].reverse();
  for (const side of names) {
    const result = await sides[side]!(round);
    results.push(result);
    const breakdown = Object.entries(result.calls)
      .map(([action, c]) => `${action} ${c.ok}${c.failed ? `+${c.failed} refused` : ''}`)
      .join(', ');
    console.log(
      `round ${round} ${side.padEnd(11)} ${result.seconds.toFixed(2)} s (${(result.seconds / FLOOR_S).toFixed(2)}x floor), ` +
        `${result.callsPerSnapshot.toFixed(2)} calls/snapshot (${result.okCallsPerSnapshot.toFixed(2)} answered OK): ${breakdown}`,
    );
  }
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const summary = Object.fromEntries(
  order.map((side) => {
    const mine = results.filter((r) => r.side === side);
    return [
      side,
      {
        seconds: mean(mine.map((r) => r.seconds)),
        floorRatio: mean(mine.map((r) => r.seconds)) / FLOOR_S,
        callsPerSnapshot: mean(mine.map((r) => r.callsPerSnapshot)),
        okCallsPerSnapshot: mean(mine.map((r) => r.okCallsPerSnapshot)),
      },
    ];
  }),
);
console.log('\nmean over rounds:');
for (const [side, s] of Object.entries(summary)) {
  console.log(
    `  ${side.padEnd(11)} ${s.seconds.toFixed(2)} s = ${s.floorRatio.toFixed(2)}x the ${FLOOR_S} s floor ` +
      `(${(s.seconds / summary['paced-sdk']!.seconds).toFixed(2)}x paced-sdk), ` +
      `${s.callsPerSnapshot.toFixed(2)} calls/snapshot (${s.okCallsPerSnapshot.toFixed(2)} OK)`,
  );
}
if (JSON_OUT)
  writeFileSync(
    JSON_OUT,
    JSON.stringify(
      { snapshots: SNAPSHOTS, rate: RATE, floorSeconds: FLOOR_S, results, summary },
      null,
      2,
    ),
  );

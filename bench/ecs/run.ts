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
 * - driver-process: `snapback driver --backend=alicloud` from dist/ as its own process, driven
 *                  the same way over its CSI socket: the figures plus the driver's peak RSS;
 * - driver-20/s:   the same, told CreateSnapshot may go at 20/s: it must learn the real limit
 *                  from ECS's throttling replies;
 * - paced-sdk:     a hand-written client that knows the limit: CreateSnapshot paced at exactly
 *                  the rate, one batched DescribeSnapshots a second, DeleteSnapshot without any
 *                  dependent-disk check: the fewest calls and least time possible, as a peer.
 * Each round starts a fresh emulator process (`test/support/ecs-emulator/main.ts`). Figures,
 * not assertions.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import ecs from '@alicloud/ecs20140526';
import openapi from '@alicloud/openapi-client';
import type { AlicloudBackend } from '../../src/driver/backends/alicloud/backend.js';
import { type CsiClient } from '../../src/csi/client.js';
import { isDiskError } from '../../src/csi/errors.js';
import { grpcCodeOf } from '../../src/csi/status.js';

import {
  ECS,
  callBreakdown,
  callTotals,
  callsBetween,
  emulatedBackend,
  seedDisks,
  startEmulator,
  type CallSummary,
  type Emulator,
} from '../ecs-emulator.js';
import { peakRssMiB, startDriver, type BenchDriver } from '../support.js';

function flag(name: string, fallback: number): number {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  return arg ? Number(arg.slice(name.length + 3)) : fallback;
}
const SNAPSHOTS = flag('snapshots', 100);
const RATE = flag('rate', 10);
const ROUNDS = flag('rounds', 3);
const JSON_OUT = process.argv.find((a) => a.startsWith('--json='))?.slice('--json='.length);
const FLOOR_S = SNAPSHOTS / RATE;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;

/** One side's CreateSnapshot and DeleteSnapshot, and which failures a sidecar retries. */
interface SnapshotCalls {
  create(name: string, diskId: string): Promise<{ id: string; ready: boolean }>;
  delete(id: string): Promise<void>;
  retryable(error: unknown): boolean;
}

/** The alicloud backend's calls, in this process. */
function backendCalls(backend: AlicloudBackend): SnapshotCalls {
  return {
    async create(name, diskId) {
      const snapshot = await backend.createSnapshot({
        name,
        sourceVolumeId: diskId,
        forceDelete: false,
        parameters: {},
        metadata: {},
      });
      return { id: snapshot.id, ready: snapshot.readyToUse };
    },
    delete: (id) => backend.deleteSnapshot(id),
    retryable: (error) => isDiskError(error, 'UNAVAILABLE') || isDiskError(error, 'ABORTED'),
  };
}

/** A `snapback driver` process's calls, over its CSI socket. */
function csiCalls(client: CsiClient): SnapshotCalls {
  return {
    async create(name, diskId) {
      const { snapshot } = await client.controller.createSnapshot({
        name,
        source_volume_id: diskId,
      });
      return { id: snapshot!.snapshot_id, ready: snapshot!.ready_to_use };
    },
    async delete(id) {
      await client.controller.deleteSnapshot({ snapshot_id: id });
    },
    retryable: (error) =>
      grpcCodeOf(error) === GrpcStatus.UNAVAILABLE || grpcCodeOf(error) === GrpcStatus.ABORTED,
  };
}

/** What csi-snapshotter does with one VolumeSnapshotContent, until the snapshot is deleted. */
async function lifecycle(calls: SnapshotCalls, name: string, diskId: string): Promise<void> {
  let snapshotId: string | undefined;
  for (;;) {
    try {
      const snapshot = await calls.create(name, diskId);
      snapshotId = snapshot.id;
      if (snapshot.ready) break;
    } catch (error) {
      if (!calls.retryable(error)) throw error;
    }
    await sleep(1000);
  }
  for (;;) {
    try {
      await calls.delete(snapshotId);
      return;
    } catch (error) {
      if (!calls.retryable(error)) throw error;
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
  /** driver-process: the driver's peak RSS (VmHWM). */
  peakRssMiB?: number;
}

/** 100 lifecycles against a fresh emulator through `calls`; the emulator counts the calls. */
async function measured(
  side: string,
  round: number,
  emulator: Emulator,
  disks: string[],
  calls: SnapshotCalls,
): Promise<Result> {
  const before = await emulator.calls();
  const start = process.hrtime.bigint();
  await Promise.all(disks.map((disk, i) => lifecycle(calls, `snapshot-bench-${round}-${i}`, disk)));
  const elapsed = seconds(start);
  const counted = callsBetween(before, await emulator.calls());
  const { all, ok } = callTotals(counted);
  return {
    side,
    round,
    seconds: elapsed,
    callsPerSnapshot: all / SNAPSHOTS,
    okCallsPerSnapshot: ok / SNAPSHOTS,
    calls: counted,
  };
}

async function runDriver(side: string, round: number, rateLimits?: string): Promise<Result> {
  const emulator = await startEmulator([`CreateSnapshot=${RATE}`]);
  try {
    const disks = await seedDisks(emulator, SNAPSHOTS);
    const backend = await emulatedBackend(
      emulator,
      rateLimits ? { 'ecs-rate-limits': rateLimits } : {},
    );
    try {
      return await measured(side, round, emulator, disks, backendCalls(backend));
    } finally {
      await backend.close();
    }
  } finally {
    await emulator.stop();
  }
}

/** `snapback driver --backend=alicloud` (the compiled dist/) as its own process, over CSI. */
async function runDriverProcess(round: number): Promise<Result> {
  const emulator = await startEmulator([`CreateSnapshot=${RATE}`]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-bench-ecs-'));
  let driver: BenchDriver | undefined;
  try {
    const disks = await seedDisks(emulator, SNAPSHOTS);
    driver = await startDriver(
      dir,
      [
        '--backend=alicloud',
        `--region=${ECS.region}`,
        `--zone=${ECS.zone}`,
        `--ecs-endpoint=${emulator.endpoint}`,
        '--ecs-protocol=http',
        '--credentials=env',
      ],
      {
        SNAPBACK_LOG_LEVEL: 'warn',
        ALIBABA_CLOUD_ACCESS_KEY_ID: ECS.accessKeyId,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET: ECS.accessKeySecret,
      },
    );
    const { client, pid } = driver;
    const result = await measured('driver-process', round, emulator, disks, csiCalls(client));
    return { ...result, peakRssMiB: peakRssMiB(pid) };
  } finally {
    await driver?.stop();
    await emulator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runPacedSdk(round: number): Promise<Result> {
  const emulator = await startEmulator([`CreateSnapshot=${RATE}`]);
  try {
    const disks = await seedDisks(emulator, SNAPSHOTS);
    const client = new ecs.default(
      new openapi.Config({
        accessKeyId: ECS.accessKeyId,
        accessKeySecret: ECS.accessKeySecret,
        endpoint: emulator.endpoint,
        protocol: 'http',
        regionId: ECS.region,
      }),
    );
    const before = await emulator.calls();
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
          regionId: ECS.region,
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
    const calls = callsBetween(before, await emulator.calls());
    const { all, ok } = callTotals(calls);
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
  'driver-process': (round) => runDriverProcess(round),
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
    const breakdown = callBreakdown(result.calls);
    const rss = result.peakRssMiB === undefined ? '' : `, peak RSS ${result.peakRssMiB} MiB`;
    console.log(
      `round ${round} ${side.padEnd(14)} ${result.seconds.toFixed(2)} s (${(result.seconds / FLOOR_S).toFixed(2)}x floor), ` +
        `${result.callsPerSnapshot.toFixed(2)} calls/snapshot (${result.okCallsPerSnapshot.toFixed(2)} answered OK)${rss}: ${breakdown}`,
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
        ...(mine[0]?.peakRssMiB !== undefined && {
          peakRssMiB: Math.max(...mine.map((r) => r.peakRssMiB!)),
        }),
      },
    ];
  }),
);
console.log('\nmean over rounds:');
for (const [side, s] of Object.entries(summary)) {
  console.log(
    `  ${side.padEnd(11)} ${s.seconds.toFixed(2)} s = ${s.floorRatio.toFixed(2)}x the ${FLOOR_S} s floor ` +
      `(${(s.seconds / summary['paced-sdk']!.seconds).toFixed(2)}x paced-sdk), ` +
      `${s.callsPerSnapshot.toFixed(2)} calls/snapshot (${s.okCallsPerSnapshot.toFixed(2)} OK)` +
      ('peakRssMiB' in s ? `, peak RSS ${s.peakRssMiB} MiB` : ''),
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

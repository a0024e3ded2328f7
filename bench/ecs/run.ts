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
import { writeFileSync } from 'node:fs';
import ecs from '@alicloud/ecs20140526';
import openapi from '@alicloud/openapi-client';
import type { AlicloudBackend } from '../../src/driver/backends/alicloud/backend.js';
import { isDiskError } from '../../src/csi/errors.js';
import {
  ECS,
  callBreakdown,
  callTotals,
  callsBetween,
  emulatedBackend,
  seedDisks,
  startEmulator,
  type CallSummary,
} from '../ecs-emulator.js';

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

async function runDriver(side: string, round: number, rateLimits?: string): Promise<Result> {
  const emulator = await startEmulator([`CreateSnapshot=${RATE}`]);
  try {
    const disks = await seedDisks(emulator, SNAPSHOTS);
    const backend = await emulatedBackend(
      emulator,
      rateLimits ? { 'ecs-rate-limits': rateLimits } : {},
    );
    try {
      const before = await emulator.calls();
      const start = process.hrtime.bigint();
      await Promise.all(
        disks.map((disk, i) => lifecycle(backend, `snapshot-bench-${round}-${i}`, disk)),
      );
      const elapsed = seconds(start);
      const calls = callsBetween(before, await emulator.calls());
      const { all, ok } = callTotals(calls);
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

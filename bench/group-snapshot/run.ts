/**
 * One VolumeGroupSnapshot of N volumes against N single snapshots of the same volumes, on both
 * backends, in the same run:
 * - local: `snapback driver --backend=local` (the compiled dist/), N volumes staged (mounted)
 *   with data written through ext4; CreateVolumeGroupSnapshot of all N (every file system frozen
 *   at one instant, the images copied, thawed) against N CreateSnapshot calls made at once, as
 *   csi-snapshotter's workers make them (each volume frozen and copied on its own);
 * - alicloud: the alicloud backend against the ECS emulator with N attached ESSD disks: one
 *   snapshot-consistent group (CreateSnapshotGroup) polled until ready against N CreateSnapshot
 *   lifecycles polled the same way, each followed by its delete.
 * Rounds alternate which side goes first. Figures, not assertions.
 *
 *   make bench BENCH=group-snapshot ARGS='[--members=10] [--rounds=4] [--data-mib=64]
 *     [--backends=local,alicloud] [--json=<file>]'
 *
 * Needs root for the local backend (loop devices, mount, fsfreeze).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { isDiskError } from '../../src/csi/errors.js';
import type { AlicloudBackend } from '../../src/driver/backends/alicloud/backend.js';

import {
  callBreakdown,
  callTotals,
  callsBetween,
  emulatedBackend,
  seedDisks,
  startEmulator,
  type CallSummary,
} from '../ecs-emulator.js';
import {
  numberFlag,
  peakRssMiB,
  detachLoopDevicesUnder,
  startDriver,
  stringFlag,
} from '../support.js';

const MEMBERS = numberFlag('members', 10);
/** Even, so that each side goes first in as many rounds as the other. */
const ROUNDS = Math.max(2, Math.ceil(numberFlag('rounds', 4) / 2) * 2);
const DATA_MIB = numberFlag('data-mib', 64);
const BACKENDS = (stringFlag('backends') ?? 'local,alicloud').split(',');
const JSON_OUT = stringFlag('json');
const MiB = 1024 ** 2;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;
const mount = {
  mount: { fs_type: 'ext4', mount_flags: [] },
  access_mode: { mode: 'SINGLE_NODE_WRITER' as const },
};

interface Measure {
  backend: string;
  side: 'group' | 'singles';
  round: number;
  /** From the first create call until every snapshot is ready. */
  seconds: number;
  /** The delete call(s) after it. */
  deleteSeconds: number;
  /** local: the longest a file system stayed frozen (the group's window, or one volume's). */
  frozenSeconds?: number;
  /** alicloud: the ECS calls of create, polls and delete. */
  calls?: CallSummary;
}

const results: Measure[] = [];

function report(m: Measure): void {
  results.push(m);
  const extra =
    m.frozenSeconds !== undefined
      ? `, longest freeze ${m.frozenSeconds.toFixed(3)} s`
      : m.calls
        ? `, ${callTotals(m.calls).all} ECS calls (${callBreakdown(m.calls)})`
        : '';
  console.log(
    `${m.backend} round ${m.round} ${m.side.padEnd(7)} ${m.seconds.toFixed(2)} s to ready, ` +
      `delete ${m.deleteSeconds.toFixed(2)} s${extra}`,
  );
}

/** The driver's log lines with `message`, newest last. */
function logged(logFile: string, message: string): Array<Record<string, unknown>> {
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry.message === message);
}

async function fill(dir: string, mib: number): Promise<void> {
  const handle = await open(path.join(dir, 'data.bin'), 'w');
  try {
    for (let i = 0; i < mib; i += 4) await handle.write(randomBytes(4 * MiB));
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function benchLocal(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the local backend needs root (loop devices)');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-bench-group-'));
  const driver = await startDriver(
    dir,
    [
      '--backend=local',
      '--node-id=bench',
      `--root=${path.join(dir, 'root')}`,
      `--kubelet-dir=${dir}`,
    ],
    { SNAPBACK_LOG_LEVEL: 'info' },
  );
  const { client, pid, logFile: driverLog } = driver;
  const volumes = Array.from({ length: MEMBERS }, (_, i) => `vol-${i}`);
  const staging = (volume: string) => path.join(dir, 'staging', volume);
  try {
    for (const volume of volumes) {
      await client.controller.createVolume({
        name: volume,
        capacity_range: { required_bytes: String(4 * DATA_MIB * MiB) },
        volume_capabilities: [mount],
      });
      await client.node.nodeStageVolume({
        volume_id: volume,
        staging_target_path: staging(volume),
        volume_capability: mount,
      });
      await fill(staging(volume), DATA_MIB);
    }
    console.log(
      `local: ${MEMBERS} volumes staged, ${DATA_MIB} MiB of random data each, written through ext4`,
    );
    const group = async (round: number): Promise<Measure> => {
      execFileSync('sync');
      const start = process.hrtime.bigint();
      const response = await client.groupController.createVolumeGroupSnapshot({
        name: `group-${round}`,
        source_volume_ids: volumes,
      });
      const created = response.group_snapshot!;
      if (!created.ready_to_use) throw new Error('the local group snapshot was not ready');
      const elapsed = seconds(start);
      const line = logged(driverLog, 'group snapshot created').at(-1)!;
      const deleteStart = process.hrtime.bigint();
      await client.groupController.deleteVolumeGroupSnapshot({
        group_snapshot_id: created.group_snapshot_id,
        snapshot_ids: created.snapshots.map((s) => s.snapshot_id),
      });
      return {
        backend: 'local',
        side: 'group',
        round,
        seconds: elapsed,
        deleteSeconds: seconds(deleteStart),
        frozenSeconds: Number(line.frozenSeconds),
      };
    };
    const singles = async (round: number): Promise<Measure> => {
      execFileSync('sync');
      const before = logged(driverLog, 'snapshot created').length;
      const start = process.hrtime.bigint();
      const ids = await Promise.all(
        volumes.map(async (volume) => {
          const response = await client.controller.createSnapshot({
            name: `single-${round}-${volume}`,
            source_volume_id: volume,
          });
          if (!response.snapshot?.ready_to_use) throw new Error('a local snapshot was not ready');
          return response.snapshot.snapshot_id;
        }),
      );
      const elapsed = seconds(start);
      const lines = logged(driverLog, 'snapshot created').slice(before);
      const deleteStart = process.hrtime.bigint();
      await Promise.all(ids.map((id) => client.controller.deleteSnapshot({ snapshot_id: id })));
      return {
        backend: 'local',
        side: 'singles',
        round,
        seconds: elapsed,
        deleteSeconds: seconds(deleteStart),
        frozenSeconds: Math.max(...lines.map((l) => Number(l.frozenSeconds ?? 0))),
      };
    };
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? [group, singles] : [singles, group];
      for (const side of order) report(await side(round));
    }
    console.log(`local: driver peak RSS ${peakRssMiB(pid).toFixed(1)} MiB`);
  } finally {
    for (const volume of volumes) {
      await client.node
        .nodeUnstageVolume({ volume_id: volume, staging_target_path: staging(volume) })
        .catch(() => undefined);
    }
    await driver.stop();
    detachLoopDevicesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Repeats `call` every second until it succeeds, as a sidecar retries UNAVAILABLE/ABORTED. */
async function retried<T>(call: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (!isDiskError(error, 'UNAVAILABLE') && !isDiskError(error, 'ABORTED')) throw error;
      await sleep(1000);
    }
  }
}

async function benchAlicloud(): Promise<void> {
  console.log(
    `alicloud: ${MEMBERS} attached ESSD disks in one zone on the ECS emulator (default timings)`,
  );
  const request = { forceDelete: false, parameters: {}, metadata: {} };
  const group = async (backend: AlicloudBackend, disks: string[], round: number) => {
    const start = process.hrtime.bigint();
    let created = await retried(() =>
      backend.createGroupSnapshot({ ...request, name: `group-${round}`, sourceVolumeIds: disks }),
    );
    // as csi-snapshotter polls a group that is not ready: GetVolumeGroupSnapshot every second
    while (!created.readyToUse) {
      await sleep(1000);
      created = (await retried(() => backend.getGroupSnapshot(created.id))) ?? created;
    }
    const elapsed = seconds(start);
    const deleteStart = process.hrtime.bigint();
    await retried(() => backend.deleteGroupSnapshot(created.id));
    return { seconds: elapsed, deleteSeconds: seconds(deleteStart) };
  };
  const singles = async (backend: AlicloudBackend, disks: string[], round: number) => {
    const start = process.hrtime.bigint();
    // as csi-snapshotter polls a snapshot that is not ready: CreateSnapshot again every second
    const ids = await Promise.all(
      disks.map(async (disk, i) => {
        const call = () =>
          backend.createSnapshot({
            ...request,
            name: `single-${round}-${i}`,
            sourceVolumeId: disk,
          });
        let snapshot = await retried(call);
        while (!snapshot.readyToUse) {
          await sleep(1000);
          snapshot = await retried(call);
        }
        return snapshot.id;
      }),
    );
    const elapsed = seconds(start);
    const deleteStart = process.hrtime.bigint();
    await Promise.all(ids.map((id) => retried(() => backend.deleteSnapshot(id))));
    return { seconds: elapsed, deleteSeconds: seconds(deleteStart) };
  };
  const sides = { group, singles } as const;
  for (let round = 1; round <= ROUNDS; round++) {
    const order: Array<keyof typeof sides> =
      round % 2 === 1 ? ['group', 'singles'] : ['singles', 'group'];
    for (const side of order) {
      const emulator = await startEmulator();
      try {
        const disks = await seedDisks(emulator, MEMBERS);
        const backend = await emulatedBackend(emulator);
        try {
          const before = await emulator.calls();
          const timing = await sides[side](backend, disks, round);
          const calls = callsBetween(before, await emulator.calls());
          report({ backend: 'alicloud', side, round, ...timing, calls });
        } finally {
          await backend.close();
        }
      } finally {
        await emulator.stop();
      }
    }
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

console.log(`${MEMBERS} volumes: one group snapshot against ${MEMBERS} single snapshots`);
if (BACKENDS.includes('local')) await benchLocal();
if (BACKENDS.includes('alicloud')) await benchAlicloud();

const summary: Record<string, Record<string, number>> = {};
for (const backend of BACKENDS) {
  const of = (side: string) => results.filter((r) => r.backend === backend && r.side === side);
  const group = of('group');
  const singles = of('singles');
  if (group.length === 0 || singles.length === 0) continue;
  const calls = (rs: Measure[]) =>
    rs[0]?.calls ? median(rs.map((r) => callTotals(r.calls!).all)) : Number.NaN;
  summary[backend] = {
    groupSeconds: median(group.map((r) => r.seconds)),
    singlesSeconds: median(singles.map((r) => r.seconds)),
    groupDeleteSeconds: median(group.map((r) => r.deleteSeconds)),
    singlesDeleteSeconds: median(singles.map((r) => r.deleteSeconds)),
    groupFrozenSeconds: median(group.map((r) => r.frozenSeconds ?? Number.NaN)),
    singlesFrozenSeconds: median(singles.map((r) => r.frozenSeconds ?? Number.NaN)),
    groupCalls: calls(group),
    singlesCalls: calls(singles),
  };
  const s = summary[backend]!;
  console.log(
    `\n${backend} (medians of ${ROUNDS} rounds): group ${s.groupSeconds!.toFixed(2)} s against ` +
      `${s.singlesSeconds!.toFixed(2)} s for ${MEMBERS} singles = ` +
      `${(s.groupSeconds! / s.singlesSeconds!).toFixed(2)}x; delete ` +
      `${s.groupDeleteSeconds!.toFixed(2)} s against ${s.singlesDeleteSeconds!.toFixed(2)} s` +
      (Number.isNaN(s.groupFrozenSeconds!)
        ? ''
        : `; longest freeze ${s.groupFrozenSeconds!.toFixed(3)} s against ${s.singlesFrozenSeconds!.toFixed(3)} s`) +
      (Number.isNaN(s.groupCalls!) ? '' : `; ECS calls ${s.groupCalls} against ${s.singlesCalls}`),
  );
}
if (JSON_OUT) {
  writeFileSync(
    JSON_OUT,
    `${JSON.stringify({ members: MEMBERS, rounds: ROUNDS, dataMiB: DATA_MIB, summary, results }, null, 2)}\n`,
  );
}

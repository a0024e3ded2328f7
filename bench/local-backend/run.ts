/**
 * Snapshot and restore of a 4 GiB sparse disk holding 1 GiB of data by the local backend,
 * against `cp --sparse=always` of the same image in the same run. Prints per round the
 * seconds of each, the ratios, the driver's split of each operation (copy, then fsync), how
 * much space each copy allocates, and the driver's peak RSS.
 *
 *   make bench BENCH=local-backend ARGS='[--rounds=6] [--data-mib=1024]
 *     [--disk-gib=4] [--cold] [--json=<file>]'
 *
 * Needs root (loop devices, mount); `make bench` builds dist/ and the tools (csi.proto) first.
 * Figures, not assertions.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { Layout } from '../../src/driver/backends/local/layout.js';

import {
  numberFlag as flag,
  peakRssMiB,
  detachLoopDevicesUnder,
  startDriver,
  stringFlag,
} from '../support.js';

/** Even, so that the driver goes first in as many rounds as cp does. */
const ROUNDS = Math.max(2, Math.ceil(flag('rounds', 6) / 2) * 2);
const DATA_MIB = flag('data-mib', 1024);
const DISK_GIB = flag('disk-gib', 4);
const JSON_OUT = stringFlag('json');
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

const mount = {
  mount: { fs_type: 'ext4', mount_flags: [] },
  access_mode: { mode: 'SINGLE_NODE_WRITER' as const },
};

const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;
const allocatedMiB = (file: string): number => (statSync(file).blocks * 512) / MiB;

/** How many extents `filefrag` counts in a file. */
const extentCount = (file: string): string =>
  /(\d+) extents? found/.exec(execFileSync('filefrag', [file], { encoding: 'utf8' }))?.[1] ?? '?';

/** --cold: drop the page cache before each measured copy, so every copy reads from the disk. */
const COLD = process.argv.includes('--cold');

/**
 * Flushes every dirty page on the machine, so each measured copy starts without the previous
 * one's writeback still competing for the disk; with --cold, also drops the clean pages, so
 * no copy finds its source in memory.
 */
const settle = (): void => {
  execFileSync('sync');
  if (COLD) writeFileSync('/proc/sys/vm/drop_caches', '3\n');
};
/** `cp --sparse=always`, then fsync of the copy (the backend fsyncs its copies too). */
function timedCp(source: string, target: string): { cp: number; cpSync: number } {
  settle();
  const start = process.hrtime.bigint();
  execFileSync('cp', ['--sparse=always', source, target]);
  const cp = seconds(start);
  execFileSync('sync', [target]);
  return { cp, cpSync: seconds(start) };
}

async function fill(dir: string, mib: number): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(path.join(dir, 'data.bin'), 'w');
  try {
    for (let i = 0; i < mib; i += 4) {
      const chunk = randomBytes(4 * MiB);
      hash.update(chunk);
      await handle.write(chunk);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

/**
 * The driver's own split of an operation, from its log line ("snapshot created" or "volume
 * created"): seconds copying and checksumming, then seconds of the final fsync.
 */
function phases(logFile: string, message: string, key: string, id: string): Phases {
  for (const line of readFileSync(logFile, 'utf8').split('\n').reverse()) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as Record<string, unknown>;
    if (entry.message === message && entry[key] === id) {
      return { copy: Number(entry.copySeconds), sync: Number(entry.syncSeconds) };
    }
  }
  throw new Error(`the driver logged no "${message}" for ${id}`);
}

interface Phases {
  copy: number;
  sync: number;
}

interface Round {
  round: number;
  snapshotSeconds: number;
  snapshotPhases: Phases;
  restoreSeconds: number;
  restorePhases: Phases;
  cpSnapshotSeconds: number;
  cpSnapshotSyncSeconds: number;
  cpRestoreSeconds: number;
  cpRestoreSyncSeconds: number;
  snapshotAllocatedMiB: number;
  cpAllocatedMiB: number;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the local backend needs root (loop devices)');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-bench-local-'));
  const root = path.join(dir, 'root');
  const layout = new Layout(root);
  const driver = await startDriver(
    dir,
    // the bench stages and publishes under its own directory, not kubelet's
    ['--backend=local', '--node-id=bench', `--root=${root}`, `--kubelet-dir=${dir}`],
    { SNAPBACK_LOG_LEVEL: 'info' },
  );
  const { client, pid, logFile: driverLog } = driver;
  const rounds: Round[] = [];
  try {
    console.log(
      `disk: ${DISK_GIB} GiB sparse image, ${DATA_MIB} MiB of random data written through ext4`,
    );
    await client.controller.createVolume({
      name: 'source',
      capacity_range: { required_bytes: String(DISK_GIB * GiB) },
      volume_capabilities: [mount],
    });
    const staging = path.join(dir, 'staging');
    await client.node.nodeStageVolume({
      volume_id: 'source',
      staging_target_path: staging,
      volume_capability: mount,
    });
    await fill(staging, DATA_MIB);
    await client.node.nodeUnstageVolume({ volume_id: 'source', staging_target_path: staging });
    const image = layout.diskImage('source');
    console.log(
      `source image: ${(statSync(image).size / GiB).toFixed(1)} GiB apparent, ${allocatedMiB(image).toFixed(0)} MiB allocated, ` +
        `${extentCount(image)} extents`,
    );

    for (let round = 1; round <= ROUNDS; round++) {
      const ours = async () => {
        settle();
        let start = process.hrtime.bigint();
        await client.controller.createSnapshot({
          name: `snap-${round}`,
          source_volume_id: 'source',
        });
        const snapshotSeconds = seconds(start);
        settle();
        start = process.hrtime.bigint();
        await client.controller.createVolume({
          name: `restored-${round}`,
          capacity_range: { required_bytes: String(DISK_GIB * GiB) },
          volume_capabilities: [mount],
          volume_content_source: { snapshot: { snapshot_id: `snap-${round}` } },
        });
        const restoreSeconds = seconds(start);
        return {
          snapshotSeconds,
          snapshotPhases: phases(driverLog, 'snapshot created', 'snapshot', `snap-${round}`),
          restoreSeconds,
          restorePhases: phases(driverLog, 'volume created', 'volume', `restored-${round}`),
        };
      };
      const peer = () => {
        const snapshotCopy = path.join(dir, `cp-snap-${round}.img`);
        const snap = timedCp(image, snapshotCopy);
        const restore = timedCp(snapshotCopy, path.join(dir, `cp-restored-${round}.img`));
        return { snap, restore, allocated: allocatedMiB(snapshotCopy) };
      };
      // Alternate which goes first, so page-cache warmth and drift favour neither.
      let mine: Awaited<ReturnType<typeof ours>>;
      let theirs: ReturnType<typeof peer>;
      if (round % 2 === 1) {
        mine = await ours();
        theirs = peer();
      } else {
        theirs = peer();
        mine = await ours();
      }
      const result: Round = {
        round,
        ...mine,
        cpSnapshotSeconds: theirs.snap.cp,
        cpSnapshotSyncSeconds: theirs.snap.cpSync,
        cpRestoreSeconds: theirs.restore.cp,
        cpRestoreSyncSeconds: theirs.restore.cpSync,
        snapshotAllocatedMiB: allocatedMiB(layout.snapshotImage(`snap-${round}`)),
        cpAllocatedMiB: theirs.allocated,
      };
      rounds.push(result);
      console.log(
        `round ${round} (${round % 2 === 1 ? 'driver' : 'cp'} first): snapshot ${result.snapshotSeconds.toFixed(2)} s vs cp ${result.cpSnapshotSeconds.toFixed(2)} s ` +
          `(cp+fsync ${result.cpSnapshotSyncSeconds.toFixed(2)} s); restore ${result.restoreSeconds.toFixed(2)} s vs cp ` +
          `${result.cpRestoreSeconds.toFixed(2)} s (cp+fsync ${result.cpRestoreSyncSeconds.toFixed(2)} s); allocated ` +
          `${result.snapshotAllocatedMiB.toFixed(0)} MiB vs cp ${result.cpAllocatedMiB.toFixed(0)} MiB`,
      );
      await client.controller.deleteVolume({ volume_id: `restored-${round}` });
      await client.controller.deleteSnapshot({ snapshot_id: `snap-${round}` });
      for (const f of [`cp-snap-${round}.img`, `cp-restored-${round}.img`])
        rmSync(path.join(dir, f));
    }
    // Medians: other work on the machine's disk makes single copies vary several-fold.
    const median = (pick: (r: Round) => number) => {
      const values = rounds.map(pick).sort((a, b) => a - b);
      const mid = Math.floor(values.length / 2);
      return values.length % 2 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
    };
    const summary = {
      rounds: ROUNDS,
      cold: COLD,
      diskGiB: DISK_GIB,
      dataMiB: DATA_MIB,
      snapshotSeconds: median((r) => r.snapshotSeconds),
      cpSeconds: median((r) => r.cpSnapshotSeconds),
      cpFsyncSeconds: median((r) => r.cpSnapshotSyncSeconds),
      snapshotCopySeconds: median((r) => r.snapshotPhases.copy),
      snapshotSyncSeconds: median((r) => r.snapshotPhases.sync),
      restoreSeconds: median((r) => r.restoreSeconds),
      restoreCopySeconds: median((r) => r.restorePhases.copy),
      restoreSyncSeconds: median((r) => r.restorePhases.sync),
      cpRestoreSeconds: median((r) => r.cpRestoreSeconds),
      cpRestoreFsyncSeconds: median((r) => r.cpRestoreSyncSeconds),
      driverPeakRssMiB: peakRssMiB(pid),
    };
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
    // Whichever copy runs second in a round is often slowed by the disk (the first one's
    // writeback, or throttling); the geometric mean of per-round ratios over rounds in both
    // orders cancels that out.
    const geomean = (pick: (r: Round) => number) =>
      Math.exp(rounds.reduce((s, r) => s + Math.log(pick(r)), 0) / rounds.length);
    const ratios = {
      snapshotVsCp: geomean((r) => r.snapshotSeconds / r.cpSnapshotSeconds),
      snapshotVsCpFsync: geomean((r) => r.snapshotSeconds / r.cpSnapshotSyncSeconds),
      restoreVsCp: geomean((r) => r.restoreSeconds / r.cpRestoreSeconds),
      restoreVsCpFsync: geomean((r) => r.restoreSeconds / r.cpRestoreSyncSeconds),
    };
    console.log('\nmedians over rounds:');
    console.log(
      `  snapshot ${summary.snapshotSeconds.toFixed(2)} s: ${ratio(summary.snapshotSeconds, summary.cpSeconds)} cp ` +
        `(${summary.cpSeconds.toFixed(2)} s), ${ratio(summary.snapshotSeconds, summary.cpFsyncSeconds)} cp+fsync ` +
        `(${summary.cpFsyncSeconds.toFixed(2)} s)`,
    );
    console.log(
      `  restore  ${summary.restoreSeconds.toFixed(2)} s: ${ratio(summary.restoreSeconds, summary.cpRestoreSeconds)} cp ` +
        `(${summary.cpRestoreSeconds.toFixed(2)} s), ${ratio(summary.restoreSeconds, summary.cpRestoreFsyncSeconds)} cp+fsync ` +
        `(${summary.cpRestoreFsyncSeconds.toFixed(2)} s)`,
    );
    console.log(
      `per-round ratios (geometric mean): snapshot ${ratios.snapshotVsCp.toFixed(2)}x cp, ` +
        `${ratios.snapshotVsCpFsync.toFixed(2)}x cp+fsync; restore ${ratios.restoreVsCp.toFixed(2)}x cp, ` +
        `${ratios.restoreVsCpFsync.toFixed(2)}x cp+fsync`,
    );
    console.log(
      `driver's split (medians): snapshot ${summary.snapshotCopySeconds.toFixed(2)} s copying and ` +
        `checksumming + ${summary.snapshotSyncSeconds.toFixed(2)} s final fsync; restore ` +
        `${summary.restoreCopySeconds.toFixed(2)} s + ${summary.restoreSyncSeconds.toFixed(2)} s`,
    );
    console.log(
      `driver peak RSS ${summary.driverPeakRssMiB.toFixed(0)} MiB (VmHWM of the snapback process)`,
    );
    if (JSON_OUT) {
      writeFileSync(JSON_OUT, `${JSON.stringify({ summary, ratios, rounds }, null, 2)}\n`);
    }
  } finally {
    await driver.stop();
    detachLoopDevicesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

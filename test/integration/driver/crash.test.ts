import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';

import { LocalBackend } from '../../../src/driver/backends/local/backend.js';
import { Layout } from '../../../src/driver/backends/local/layout.js';
import { runCommand } from '../../../src/driver/backends/local/system.js';
import { waitFor } from '../../support/processes.js';
import {
  cleanupScratch,
  codeOf,
  GiB,
  idOf,
  MiB,
  mountCapability,
  scratchDir,
  sha256Of,
  spawnLocalDriver,
  stageAndPublish,
  unpublishAndUnstage,
  testNode,
  writeRandomFile,
  type DriverProcess,
} from './local-support.js';

const snapshotIds = async (driver: DriverProcess): Promise<string[]> =>
  (await driver.client.controller.listSnapshots({})).entries.map((e) => e.snapshot!.snapshot_id);
const volumeIds = async (driver: DriverProcess): Promise<string[]> =>
  (await driver.client.controller.listVolumes({})).entries.map((e) => e.volume!.volume_id);

/** Waits until a copy for `prefix` is under way in the backend's tmp directory. */
const copyInProgress = (layout: Layout, prefix: string) =>
  waitFor(
    () => readdirSync(layout.tmp).some((f) => f.startsWith(prefix)),
    60_000,
    `a ${prefix}* copy to appear in ${layout.tmp}`,
    () => readdirSync(layout.tmp).join(', '),
  );

/** Whether a write to `dir` completes within a few seconds (it hangs on a frozen file system). */
function writable(dir: string): boolean {
  try {
    execFileSync('timeout', [
      '5',
      'sh',
      '-c',
      `echo ok > '${dir}/probe' && sync -f '${dir}/probe'`,
    ]);
    return true;
  } catch {
    return false;
  }
}

describe('local backend: kill -9 of the driver mid-operation, then restart', function () {
  this.timeout(600_000);
  let dir: string;
  let root: string;
  let socket: string;
  let layout: Layout;
  let driver: DriverProcess | undefined;

  let logOffset = 0;
  const logFile = () => path.join(dir, 'driver.log');
  const start = async () => {
    logOffset = existsSync(logFile()) ? readFileSync(logFile()).length : 0;
    driver = await spawnLocalDriver({ dir, root, socket });
    return driver;
  };
  /** What the driver started last has logged. */
  const loggedAfterRestart = () => readFileSync(logFile()).subarray(logOffset).toString();

  beforeEach(function () {
    dir = scratchDir('crash');
    root = path.join(dir, 'root');
    socket = path.join(dir, 'csi.sock');
    layout = new Layout(root);
  });

  afterEach(async function () {
    await driver?.stop();
    driver = undefined;
    cleanupScratch(dir);
  });

  /** A 1 GiB disk holding 512 MiB of random data in /data.bin, staged and published. */
  async function diskWithData(d: DriverProcess): Promise<{ target: string; sum: string }> {
    await d.client.controller.createVolume({
      name: 'source',
      capacity_range: { required_bytes: String(GiB) },
      volume_capabilities: [mountCapability],
    });
    const target = await stageAndPublish(d.client, dir, 'source');
    const sum = await writeRandomFile(path.join(target, 'data.bin'), 512 * MiB);
    return { target, sum };
  }

  it('during CreateSnapshot: nothing half-made is reported, the file system is thawed, and the retried call completes', async function () {
    let d = await start();
    const { target, sum } = await diskWithData(d);
    const request = { name: 'snap', source_volume_id: 'source' };
    const pending = d.client.controller.createSnapshot(request).catch((e: unknown) => e);
    await copyInProgress(layout, 'snapshot-snap-');
    await d.kill();
    await pending;
    const record = JSON.parse(readFileSync(layout.snapshotMeta('snap'), 'utf8')) as {
      state: string;
      frozenMount?: string;
    };
    expect(record.state).to.equal('creating');
    expect(record.frozenMount, 'killed while the source was frozen').to.equal(
      path.join(dir, 'staging', 'source'),
    );

    d = await start();
    expect(readdirSync(layout.tmp), 'leftover copies removed at start-up').to.deep.equal([]);
    expect(existsSync(layout.snapshotMeta('snap')), 'the half-made record reaped').to.equal(false);
    expect(existsSync(layout.snapshotImage('snap'))).to.equal(false);
    expect(loggedAfterRestart()).to.match(
      /"message":"removed a snapshot a crash left half-made".*"snapshot":"snap"/,
    );
    expect(writable(target), 'the source file system is writable again (thawed)').to.equal(true);
    expect(await snapshotIds(d)).to.deep.equal([]);
    const restoreFromHalf = d.client.controller.createVolume({
      name: 'early',
      volume_capabilities: [mountCapability],
      volume_content_source: { snapshot: { snapshot_id: 'snap' } },
    });
    expect(await codeOf(restoreFromHalf)).to.equal('NOT_FOUND');

    const retried = await d.client.controller.createSnapshot(request);
    expect(retried.snapshot?.ready_to_use).to.equal(true);
    expect(await snapshotIds(d)).to.deep.equal([idOf('snap')]);
    await d.client.controller.createVolume({
      name: 'restored',
      volume_capabilities: [mountCapability],
      volume_content_source: { snapshot: { snapshot_id: 'snap' } },
    });
    const restoredTarget = await stageAndPublish(d.client, dir, 'restored');
    expect(await sha256Of(path.join(restoredTarget, 'data.bin'))).to.equal(sum);
    await unpublishAndUnstage(d.client, dir, 'restored');
    await unpublishAndUnstage(d.client, dir, 'source');
  });

  it('during CreateVolume from a snapshot: the half-made disk is reaped at restart (its image too, and its dependent entry), never reported, and the retried call completes', async function () {
    let d = await start();
    const { sum } = await diskWithData(d);
    await unpublishAndUnstage(d.client, dir, 'source');
    await d.client.controller.createSnapshot({
      name: 'snap',
      source_volume_id: 'source',
      parameters: { forceDelete: 'true' },
    });
    const request = {
      name: 'restored',
      capacity_range: { required_bytes: String(2 * GiB) },
      volume_capabilities: [mountCapability],
      volume_content_source: { snapshot: { snapshot_id: 'snap' } },
    };
    const pending = d.client.controller.createVolume(request).catch((e: unknown) => e);
    await copyInProgress(layout, 'disk-restored-');
    await d.kill();
    await pending;

    const left = JSON.parse(readFileSync(layout.diskMeta('restored'), 'utf8')) as { state: string };
    expect(left.state, 'killed mid-copy').to.equal('creating');
    const dependents = () =>
      (JSON.parse(readFileSync(layout.snapshotMeta('snap'), 'utf8')) as { dependents: string[] })
        .dependents;
    expect(dependents()).to.deep.equal(['restored']);

    d = await start();
    expect(existsSync(layout.diskMeta('restored')), 'the half-made record reaped').to.equal(false);
    expect(existsSync(layout.diskImage('restored'))).to.equal(false);
    expect(readdirSync(layout.tmp)).to.deep.equal([]);
    expect(dependents(), 'no longer a dependent of the snapshot').to.deep.equal([]);
    expect(loggedAfterRestart()).to.match(
      /"message":"removed a volume a crash left half-made".*"volume":"restored"/,
    );
    expect(await volumeIds(d)).to.deep.equal([idOf('source')]);
    expect(
      await codeOf(d.client.controller.controllerGetVolume({ volume_id: 'restored' })),
    ).to.equal('NOT_FOUND');
    expect(
      await codeOf(
        d.client.node.nodeStageVolume({
          volume_id: 'restored',
          staging_target_path: path.join(dir, 'staging', 'restored'),
          volume_capability: mountCapability,
        }),
      ),
    ).to.equal('NOT_FOUND');

    const retried = await d.client.controller.createVolume(request);
    expect(retried.volume?.capacity_bytes).to.equal(String(2 * GiB));
    expect(await volumeIds(d)).to.deep.equal([idOf('restored'), idOf('source')]);
    const target = await stageAndPublish(d.client, dir, 'restored');
    expect(await sha256Of(path.join(target, 'data.bin'))).to.equal(sum);
    await unpublishAndUnstage(d.client, dir, 'restored');
    await d.client.controller.deleteSnapshot({ snapshot_id: 'snap' });
  });

  it('at start-up, records a crash left "creating" go with their images, whole or partial, each with a log line; ready ones stay', async function () {
    for (const sub of ['disks', 'snapshots', 'tmp'])
      mkdirSync(path.join(root, sub), { recursive: true });
    const json = (value: unknown) => `${JSON.stringify(value)}\n`;
    const since = '2026-01-01T00:00:00.000Z';
    // A ready snapshot, and a restore from it whose image was complete when the driver died
    // before recording it ready.
    writeFileSync(
      layout.snapshotMeta('kept'),
      json({
        id: 'kept',
        sourceVolumeId: 'gone',
        sizeBytes: 16 * MiB,
        state: 'ready',
        forceDelete: false,
        creationTime: since,
        dependents: ['half'],
      }),
    );
    writeFileSync(layout.snapshotImage('kept'), 'snapshot data');
    writeFileSync(
      layout.diskMeta('half'),
      json({
        id: 'half',
        capacityBytes: 16 * MiB,
        state: 'creating',
        source: { kind: 'snapshot', snapshotId: 'kept' },
        createdAt: since,
      }),
    );
    writeFileSync(layout.diskImage('half'), 'restored data');
    // A snapshot cut short, its image partly renamed into place.
    writeFileSync(
      layout.snapshotMeta('cut'),
      json({
        id: 'cut',
        sourceVolumeId: 'gone',
        sizeBytes: 16 * MiB,
        state: 'creating',
        forceDelete: true,
        creationTime: since,
        dependents: [],
      }),
    );
    writeFileSync(layout.snapshotImage('cut'), 'partial');
    const logged: Array<Record<string, unknown>> = [];
    const logger = winston.createLogger({
      format: winston.format.json(),
      transports: [
        new winston.transports.Stream({
          stream: new Writable({
            write(chunk: Buffer, _encoding, done) {
              logged.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
              done();
            },
          }),
        }),
      ],
    });

    const backend = await LocalBackend.open({
      root,
      nodeId: testNode,
      onlineResize: false,
      vendorVersion: 'test',
      run: runCommand,
      logger,
    });
    try {
      expect(readdirSync(layout.disks)).to.deep.equal([]);
      expect(readdirSync(layout.snapshots).sort()).to.deep.equal(['kept.img', 'kept.json']);
      const kept = JSON.parse(readFileSync(layout.snapshotMeta('kept'), 'utf8')) as {
        dependents: string[];
      };
      expect(kept.dependents).to.deep.equal([]);
      const reaped = logged.filter((l) => /a crash left half-made/.test(String(l.message)));
      expect(reaped).to.have.length(2);
      expect(reaped.map((l) => [l.level, l.message, l.snapshot ?? l.volume])).to.have.deep.members([
        ['warn', 'removed a volume a crash left half-made', 'half'],
        ['warn', 'removed a snapshot a crash left half-made', 'cut'],
      ]);
      expect(await backend.getSnapshot(idOf('kept'))).to.deep.include({ id: idOf('kept') });
      // Nothing depends on it any more, so it can be deleted (it was not created with forceDelete).
      await backend.deleteSnapshot(idOf('kept'));
      expect(existsSync(layout.snapshotImage('kept'))).to.equal(false);
    } finally {
      await backend.close();
    }
  });
});

import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { Layout } from '../../../src/driver/backends/local/layout.js';
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

  const start = async () => {
    driver = await spawnLocalDriver({ dir, root, socket });
    return driver;
  };

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

  it("during CreateVolume from a snapshot: the half-made disk is not reported and blocks the snapshot's deletion; the retried call completes", async function () {
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

    d = await start();
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
    expect(
      await codeOf(d.client.controller.deleteSnapshot({ snapshot_id: 'snap' })),
      'a disk still being created blocks deletion even with forceDelete',
    ).to.equal('FAILED_PRECONDITION');

    const retried = await d.client.controller.createVolume(request);
    expect(retried.volume?.capacity_bytes).to.equal(String(2 * GiB));
    expect(await volumeIds(d)).to.deep.equal([idOf('restored'), idOf('source')]);
    const target = await stageAndPublish(d.client, dir, 'restored');
    expect(await sha256Of(path.join(target, 'data.bin'))).to.equal(sum);
    await unpublishAndUnstage(d.client, dir, 'restored');
    await d.client.controller.deleteSnapshot({ snapshot_id: 'snap' });
  });
});

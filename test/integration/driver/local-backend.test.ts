import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  statSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';

import {
  CAP_SYS_RESOURCE,
  type CommandRunner,
  hasCapability,
  runCommand,
} from '../../../src/driver/backends/local/system.js';
import {
  cleanupScratch,
  codeOf,
  detailsOf,
  GiB,
  idOf,
  MiB,
  mountCapability,
  outcomeOf,
  scratchDir,
  sha256Of,
  stageAndPublish,
  startLocalDriver,
  unpublishAndUnstage,
  writeRandomFile,
  type InProcessDriver,
} from './local-support.js';

const createVolume = (
  driver: InProcessDriver,
  name: string,
  bytes: number,
  extra: Record<string, unknown> = {},
) =>
  driver.client.controller.createVolume({
    name,
    capacity_range: { required_bytes: String(bytes) },
    volume_capabilities: [mountCapability],
    ...extra,
  });

const fromSnapshot = (snapshotId: string) => ({
  volume_content_source: { snapshot: { snapshot_id: snapshotId } },
});

function commandExists(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Bytes the file occupies on disk (not its apparent size). */
const allocatedBytes = (file: string): number => statSync(file).blocks * 512;

describe('local backend: disks, snapshots and restores (driver in this process)', function () {
  this.timeout(300_000);
  let dir: string;
  let driver: InProcessDriver;

  beforeEach(async function () {
    dir = scratchDir('local');
    driver = await startLocalDriver(dir);
  });

  afterEach(async function () {
    await driver?.stop();
    cleanupScratch(dir);
  });

  it('keeps data byte for byte through snapshot -> restore -> publish of a 1 GiB sparse disk, and grows the restored file system', async function () {
    const { client, backend } = driver;
    const created = await createVolume(driver, 'source', GiB);
    expect(created.volume?.capacity_bytes).to.equal(String(GiB));
    expect(created.volume?.accessible_topology).to.deep.equal([
      { segments: { 'topology.local.snapback.dev/node': 'test-node' } },
    ]);
    const image = backend.layout.diskImage('source');
    expect(statSync(image).size).to.equal(GiB);
    expect(allocatedBytes(image)).to.be.below(MiB);

    const target = await stageAndPublish(client, dir, 'source');
    expect(existsSync(path.join(target, 'lost+found'))).to.equal(true);
    writeFileSync(path.join(target, 'test'), 'written before the backup\n');
    const bigSum = await writeRandomFile(path.join(target, 'big.bin'), 200 * MiB);

    // Staged and published: the snapshot is taken with the file system frozen.
    const snap = await client.controller.createSnapshot({
      name: 'snap',
      source_volume_id: 'source',
    });
    expect(snap.snapshot).to.deep.include({
      snapshot_id: idOf('snap'),
      source_volume_id: idOf('source'),
      size_bytes: String(GiB),
      ready_to_use: true,
    });
    const snapshotImage = backend.layout.snapshotImage('snap');
    expect(allocatedBytes(snapshotImage)).to.be.above(200 * MiB);
    expect(allocatedBytes(snapshotImage)).to.be.below(400 * MiB);
    // The source stays writable after the freeze.
    writeFileSync(path.join(target, 'after'), 'written after the snapshot\n');

    const restored = await createVolume(driver, 'restored', 2 * GiB, fromSnapshot('snap'));
    expect(restored.volume).to.deep.include({
      volume_id: idOf('restored'),
      capacity_bytes: String(2 * GiB),
    });
    expect(restored.volume?.content_source?.snapshot?.snapshot_id).to.equal(idOf('snap'));
    const restoredTarget = await stageAndPublish(client, dir, 'restored');
    expect(await sha256Of(path.join(restoredTarget, 'big.bin'))).to.equal(bigSum);
    expect(await sha256Of(path.join(restoredTarget, 'test'))).to.equal(
      await sha256Of(path.join(target, 'test')),
    );
    expect(existsSync(path.join(restoredTarget, 'after'))).to.equal(false);
    const sourceFs = statfsSync(target);
    const restoredFs = statfsSync(restoredTarget);
    expect(restoredFs.blocks * restoredFs.bsize).to.be.above(
      1.8 * sourceFs.blocks * sourceFs.bsize,
    );

    await unpublishAndUnstage(client, dir, 'restored');
    await unpublishAndUnstage(client, dir, 'source');
  });

  it('expands offline: ControllerExpandVolume on an unstaged disk, the file system grows at the next stage', async function () {
    const { client } = driver;
    await createVolume(driver, 'grow', 256 * MiB);
    let target = await stageAndPublish(client, dir, 'grow');
    const sum = await writeRandomFile(path.join(target, 'data'), 16 * MiB);
    const before = statfsSync(target);
    await unpublishAndUnstage(client, dir, 'grow');
    const expanded = await client.controller.controllerExpandVolume({
      volume_id: 'grow',
      capacity_range: { required_bytes: String(512 * MiB) },
      volume_capability: mountCapability,
    });
    expect(expanded).to.deep.include({
      capacity_bytes: String(512 * MiB),
      node_expansion_required: true,
    });
    target = await stageAndPublish(client, dir, 'grow');
    const node = await client.node.nodeExpandVolume({
      volume_id: 'grow',
      volume_path: target,
      staging_target_path: path.join(dir, 'staging', 'grow'),
      capacity_range: { required_bytes: String(512 * MiB) },
    });
    expect(node.capacity_bytes).to.equal(String(512 * MiB));
    const after = statfsSync(target);
    expect(after.blocks * after.bsize).to.be.above(1.8 * before.blocks * before.bsize);
    expect(await sha256Of(path.join(target, 'data'))).to.equal(sum);
    const stats = await client.node.nodeGetVolumeStats({ volume_id: 'grow', volume_path: target });
    expect(Number(stats.usage.find((u) => u.unit === 'BYTES')?.total)).to.equal(
      after.blocks * after.bsize,
    );
    expect(stats.volume_condition?.abnormal).to.equal(false);
    await unpublishAndUnstage(client, dir, 'grow');
  });

  it('without CAP_SYS_RESOURCE: advertises OFFLINE expansion and refuses to grow a mounted file system with FAILED_PRECONDITION', async function () {
    await driver.stop();
    driver = await startLocalDriver(dir, { onlineResize: false });
    const { client } = driver;
    const plugin = await client.identity.getPluginCapabilities({});
    expect(plugin.capabilities.map((c) => c.volume_expansion?.type).filter(Boolean)).to.deep.equal([
      'OFFLINE',
    ]);
    await createVolume(driver, 'grow', 256 * MiB);
    const target = await stageAndPublish(client, dir, 'grow');
    await client.controller.controllerExpandVolume({
      volume_id: 'grow',
      capacity_range: { required_bytes: String(512 * MiB) },
    });
    const call = client.node.nodeExpandVolume({ volume_id: 'grow', volume_path: target });
    expect(await detailsOf(call)).to.match(/lacks CAP_SYS_RESOURCE/);
    expect(
      await codeOf(client.node.nodeExpandVolume({ volume_id: 'grow', volume_path: target })),
    ).to.equal('FAILED_PRECONDITION');
    await unpublishAndUnstage(client, dir, 'grow');
  });

  it('with CAP_SYS_RESOURCE: grows a published volume online', async function () {
    if (!hasCapability(CAP_SYS_RESOURCE)) {
      // ext4 online resize needs CAP_SYS_RESOURCE, which this test process does not hold.
      this.skip();
    }
    const { client } = driver;
    await createVolume(driver, 'online', 256 * MiB);
    const target = await stageAndPublish(client, dir, 'online');
    const before = statfsSync(target);
    await client.controller.controllerExpandVolume({
      volume_id: 'online',
      capacity_range: { required_bytes: String(512 * MiB) },
    });
    await client.node.nodeExpandVolume({ volume_id: 'online', volume_path: target });
    const after = statfsSync(target);
    expect(after.blocks * after.bsize).to.be.above(1.8 * before.blocks * before.bsize);
    await unpublishAndUnstage(client, dir, 'online');
  });

  it('clones a published volume (frozen for the copy) with its data', async function () {
    const { client } = driver;
    await createVolume(driver, 'original', 256 * MiB);
    const target = await stageAndPublish(client, dir, 'original');
    const sum = await writeRandomFile(path.join(target, 'data'), 32 * MiB);
    const clone = await createVolume(driver, 'clone', 256 * MiB, {
      volume_content_source: { volume: { volume_id: 'original' } },
    });
    expect(clone.volume?.content_source?.volume?.volume_id).to.equal(idOf('original'));
    writeFileSync(path.join(target, 'after'), 'the original is writable again');
    const cloneTarget = await stageAndPublish(client, dir, 'clone');
    expect(await sha256Of(path.join(cloneTarget, 'data'))).to.equal(sum);
    await unpublishAndUnstage(client, dir, 'clone');
    await unpublishAndUnstage(client, dir, 'original');
  });

  it('freezes a mounted file system for the reading only: one freeze, one thaw, the time logged', async function () {
    await driver.stop();
    const fsfreeze: string[] = [];
    const run: CommandRunner = (program, args) => {
      if (program === 'fsfreeze') fsfreeze.push(args.join(' '));
      return runCommand(program, args);
    };
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
    driver = await startLocalDriver(dir, { run, logger });
    const { client } = driver;
    await createVolume(driver, 'busy', 256 * MiB);
    const target = await stageAndPublish(client, dir, 'busy');
    await writeRandomFile(path.join(target, 'data'), 64 * MiB);

    await client.controller.createSnapshot({ name: 'busy-snap', source_volume_id: 'busy' });
    const mountPoint = fsfreeze[0]!.replace('--freeze ', '');
    // The thaw once the image is read stands for the thaw when the copy ends: not twice.
    expect(fsfreeze).to.deep.equal([`--freeze ${mountPoint}`, `--unfreeze ${mountPoint}`]);
    const created = logged.find((l) => l.message === 'snapshot created')!;
    expect(created.frozen).to.equal(mountPoint);
    expect(created.frozenSeconds).to.be.a('number');
    expect(created.syncSeconds).to.be.a('number');
    writeFileSync(path.join(target, 'after'), 'writable again');
    await unpublishAndUnstage(client, dir, 'busy');
  });

  it('on a file system with reflinks (XFS), snapshots and restores share extents instead of copying', async function () {
    if (!commandExists('mkfs.xfs')) {
      // xfsprogs is not installed on this machine: there is no reflink file system to try.
      this.skip();
    }
    await driver.stop();
    const rootImage = path.join(dir, 'xfs-root.img');
    const xfsRoot = path.join(dir, 'xfs-root');
    execFileSync('truncate', ['-s', `${1536 * MiB}`, rootImage]);
    execFileSync('mkfs.xfs', ['-q', '-m', 'reflink=1', rootImage]);
    mkdirSync(xfsRoot);
    execFileSync('mount', ['-o', 'loop', rootImage, xfsRoot]);
    driver = await startLocalDriver(dir, { root: xfsRoot, capacityBytes: 10 * GiB });
    const { client, backend } = driver;
    await createVolume(driver, 'vol', GiB);
    const target = await stageAndPublish(client, dir, 'vol');
    const sum = await writeRandomFile(path.join(target, 'data'), 300 * MiB);
    const used = () => {
      const fs = statfsSync(xfsRoot);
      return (fs.blocks - fs.bfree) * fs.bsize;
    };
    const before = used();
    await client.controller.createSnapshot({ name: 'shared', source_volume_id: 'vol' });
    await createVolume(driver, 'restored', GiB, fromSnapshot('shared'));
    // Two more copies of 300 MiB of data would need 600 MiB; shared extents need almost none.
    expect(used() - before).to.be.below(50 * MiB);
    const extents = execFileSync('filefrag', ['-v', backend.layout.snapshotImage('shared')], {
      encoding: 'utf8',
    });
    expect(extents).to.match(/shared/);
    const restoredTarget = await stageAndPublish(client, dir, 'restored');
    expect(await sha256Of(path.join(restoredTarget, 'data'))).to.equal(sum);
    await unpublishAndUnstage(client, dir, 'restored');
    await unpublishAndUnstage(client, dir, 'vol');
  });

  it('publishes read-only when asked', async function () {
    const { client } = driver;
    await createVolume(driver, 'ro', 64 * MiB);
    const target = await stageAndPublish(client, dir, 'ro', true);
    expect(() => writeFileSync(path.join(target, 'x'), 'x')).to.throw(/EROFS/);
    await unpublishAndUnstage(client, dir, 'ro');
  });

  describe('forceDelete', function () {
    it('false: DeleteSnapshot is refused with FAILED_PRECONDITION naming the dependent disk until it is gone', async function () {
      const { client, backend } = driver;
      await createVolume(driver, 'vol', 64 * MiB);
      await client.controller.createSnapshot({
        name: 'keep',
        source_volume_id: 'vol',
        parameters: { forceDelete: 'false' },
      });
      await createVolume(driver, 'child', 64 * MiB, fromSnapshot('keep'));
      const refused = client.controller.deleteSnapshot({ snapshot_id: 'keep' });
      expect(await detailsOf(refused)).to.match(/dependent disks child/);
      expect(await codeOf(client.controller.deleteSnapshot({ snapshot_id: 'keep' }))).to.equal(
        'FAILED_PRECONDITION',
      );
      expect(existsSync(backend.layout.snapshotImage('keep'))).to.equal(true);
      await client.controller.deleteVolume({ volume_id: 'child' });
      await client.controller.deleteSnapshot({ snapshot_id: 'keep' });
      expect(existsSync(backend.layout.snapshotImage('keep'))).to.equal(false);
    });

    it('true: DeleteSnapshot goes ahead with a ready dependent, which keeps its data', async function () {
      const { client } = driver;
      await createVolume(driver, 'vol', 64 * MiB);
      const target = await stageAndPublish(client, dir, 'vol');
      const sum = await writeRandomFile(path.join(target, 'data'), 8 * MiB);
      await client.controller.createSnapshot({
        name: 'go',
        source_volume_id: 'vol',
        parameters: { forceDelete: 'true' },
      });
      await createVolume(driver, 'child', 64 * MiB, fromSnapshot('go'));
      await client.controller.deleteSnapshot({ snapshot_id: 'go' });
      const listed = await client.controller.listSnapshots({});
      expect(listed.entries.map((e) => e.snapshot?.snapshot_id)).to.deep.equal([]);
      const childTarget = await stageAndPublish(client, dir, 'child');
      expect(await sha256Of(path.join(childTarget, 'data'))).to.equal(sum);
      await unpublishAndUnstage(client, dir, 'child');
      await unpublishAndUnstage(client, dir, 'vol');
    });

    it('true: a disk still being created from the snapshot blocks its deletion', async function () {
      const { client, backend } = driver;
      await createVolume(driver, 'vol', GiB);
      const target = await stageAndPublish(client, dir, 'vol');
      await writeRandomFile(path.join(target, 'data'), 400 * MiB);
      await unpublishAndUnstage(client, dir, 'vol');
      await client.controller.createSnapshot({
        name: 'busy',
        source_volume_id: 'vol',
        parameters: { forceDelete: 'true' },
      });
      const restoring = createVolume(driver, 'filling', GiB, fromSnapshot('busy'));
      const tmp = backend.layout.tmp;
      while (!readdirSync(tmp).some((f) => f.startsWith('disk-filling-'))) {
        await new Promise((r) => setTimeout(r, 5));
      }
      const refused = client.controller.deleteSnapshot({ snapshot_id: 'busy' });
      expect(await detailsOf(refused)).to.match(/being created from it: filling/);
      await restoring;
      await client.controller.deleteSnapshot({ snapshot_id: 'busy' });
    });
  });

  describe('idempotency', function () {
    it('repeating CreateVolume, CreateSnapshot, node calls and deletes changes nothing', async function () {
      const { client, backend } = driver;
      const first = await createVolume(driver, 'same', 128 * MiB);
      const again = await createVolume(driver, 'same', 128 * MiB);
      expect(again.volume).to.deep.equal(first.volume);
      const s1 = await client.controller.createSnapshot({ name: 'snap', source_volume_id: 'same' });
      const s2 = await client.controller.createSnapshot({ name: 'snap', source_volume_id: 'same' });
      expect(s2.snapshot).to.deep.equal(s1.snapshot);
      const r1 = await createVolume(driver, 'copy', 128 * MiB, fromSnapshot('snap'));
      const r2 = await createVolume(driver, 'copy', 128 * MiB, fromSnapshot('snap'));
      expect(r2.volume).to.deep.equal(r1.volume);
      expect(readdirSync(backend.layout.disks).filter((f) => f.endsWith('.img'))).to.have.members([
        'same.img',
        'copy.img',
      ]);

      await stageAndPublish(client, dir, 'same');
      await stageAndPublish(client, dir, 'same');
      await unpublishAndUnstage(client, dir, 'same');
      await unpublishAndUnstage(client, dir, 'same');

      await client.controller.deleteVolume({ volume_id: 'copy' });
      await client.controller.deleteVolume({ volume_id: 'copy' });
      await client.controller.deleteSnapshot({ snapshot_id: 'snap' });
      await client.controller.deleteSnapshot({ snapshot_id: 'snap' });
      const volumes = await client.controller.listVolumes({});
      expect(volumes.entries.map((e) => e.volume?.volume_id)).to.deep.equal([idOf('same')]);
    });

    it('answers CreateVolume with the same name and a different size with ALREADY_EXISTS, leaving the disk alone', async function () {
      const { client, backend } = driver;
      await createVolume(driver, 'taken', 128 * MiB);
      const image = backend.layout.diskImage('taken');
      const conflict = createVolume(driver, 'taken', 256 * MiB);
      expect(await codeOf(conflict)).to.equal('ALREADY_EXISTS');
      expect(statSync(image).size).to.equal(128 * MiB);
      const got = await client.controller.controllerGetVolume({ volume_id: 'taken' });
      expect(got.volume?.capacity_bytes).to.equal(String(128 * MiB));
    });
  });

  it('confines staging and target paths below the kubelet directory: outside, "..", or a symlink out is INVALID_ARGUMENT naming both, and nothing there is touched', async function () {
    await driver.stop();
    const kubeletDir = path.join(dir, 'kubelet');
    driver = await startLocalDriver(dir, { kubeletDir });
    const { client } = driver;
    await createVolume(driver, 'vol', 64 * MiB);
    const volume_id = idOf('vol');
    // An empty directory outside: NodeUnpublishVolume would remove it, NodeStageVolume mount on it.
    const outside = path.join(dir, 'outside');
    mkdirSync(outside);
    mkdirSync(path.join(kubeletDir, 'pods'), { recursive: true });
    symlinkSync(outside, path.join(kubeletDir, 'pods', 'link'));
    const bad: Array<[string, RegExp]> = [
      [outside, /is not below it/],
      ['/etc/snapback-test', /is not below it/],
      [`${kubeletDir}-other/x`, /is not below it/],
      [kubeletDir, /is not below it/],
      [path.join(kubeletDir, 'pods') + '/../../outside', /contains "\.\."/],
      [path.join(kubeletDir, 'pods', 'link'), /leads to .*\/outside through a symbolic link/],
      [path.join(kubeletDir, 'pods', 'link', 'mount'), /through a symbolic link/],
      ['relative/path', /is not an absolute path/],
    ];
    const good = path.join(kubeletDir, 'plugins', 'staging', 'vol');
    const target = path.join(kubeletDir, 'pods', 'uid', 'volumes', 'vol', 'mount');
    for (const [where, why] of bad) {
      const calls: Array<[string, () => Promise<unknown>]> = [
        [
          'NodeStageVolume',
          () =>
            client.node.nodeStageVolume({
              volume_id,
              staging_target_path: where,
              volume_capability: mountCapability,
            }),
        ],
        [
          'NodePublishVolume target_path',
          () =>
            client.node.nodePublishVolume({
              volume_id,
              staging_target_path: good,
              target_path: where,
              volume_capability: mountCapability,
            }),
        ],
        [
          'NodePublishVolume staging_target_path',
          () =>
            client.node.nodePublishVolume({
              volume_id,
              staging_target_path: where,
              target_path: target,
              volume_capability: mountCapability,
            }),
        ],
        [
          'NodeUnpublishVolume',
          () => client.node.nodeUnpublishVolume({ volume_id, target_path: where }),
        ],
        [
          'NodeUnstageVolume',
          () => client.node.nodeUnstageVolume({ volume_id, staging_target_path: where }),
        ],
      ];
      if (path.isAbsolute(where)) {
        calls.push(
          [
            'NodeGetVolumeStats',
            () => client.node.nodeGetVolumeStats({ volume_id, volume_path: where }),
          ],
          [
            'NodeExpandVolume',
            () => client.node.nodeExpandVolume({ volume_id, volume_path: where }),
          ],
        );
      }
      for (const [rpc, call] of calls) {
        const { code, details } = await outcomeOf(call());
        expect(code, `${rpc} at ${where}`).to.equal('INVALID_ARGUMENT');
        expect(details, `${rpc} at ${where}`).to.contain(`"${where}"`);
        expect(details, `${rpc} at ${where}`).to.match(why);
        expect(details, `${rpc} at ${where}`).to.contain(
          `node paths must lie below the kubelet directory ${kubeletDir}`,
        );
      }
    }
    expect(readdirSync(outside), 'the directory outside').to.deep.equal([]);
    expect(existsSync('/etc/snapback-test')).to.equal(false);
    const loops = execFileSync(
      'losetup',
      ['--associated', driver.backend.layout.diskImage('vol')],
      {
        encoding: 'utf8',
      },
    );
    expect(loops, 'no loop device attached by a refused call').to.equal('');

    // Below it, the same calls work; a relative volume path holds no volume.
    await client.node.nodeStageVolume({
      volume_id,
      staging_target_path: good,
      volume_capability: mountCapability,
    });
    await client.node.nodePublishVolume({
      volume_id,
      staging_target_path: good,
      target_path: target,
      volume_capability: mountCapability,
    });
    writeFileSync(path.join(target, 'data'), 'kept');
    const stats = await client.node.nodeGetVolumeStats({ volume_id, volume_path: target });
    expect(stats.volume_condition?.abnormal).to.equal(false);
    expect(
      await codeOf(client.node.nodeGetVolumeStats({ volume_id, volume_path: 'relative/path' })),
    ).to.equal('NOT_FOUND');
    await client.node.nodeUnpublishVolume({ volume_id, target_path: target });
    await client.node.nodeUnstageVolume({ volume_id, staging_target_path: good });
    expect(existsSync(target)).to.equal(false);
  });

  describe('ids of another node: refused naming that node, never answered "deleted"', function () {
    let otherDir: string;
    let other: InProcessDriver | undefined;

    beforeEach(async function () {
      otherDir = scratchDir('other-node');
      other = await startLocalDriver(otherDir, { nodeId: 'other-node' });
    });

    afterEach(async function () {
      await other?.stop();
      other = undefined;
      cleanupScratch(otherDir);
    });

    it('every controller and node call on a volume or snapshot of another node fails with a code the CSI spec allows, and nothing changes on either node', async function () {
      const made = await createVolume(other!, 'shared-name', 64 * MiB);
      const volumeId = made.volume!.volume_id;
      expect(volumeId).to.equal('shared-name@other-node');
      const snapshot = await other!.client.controller.createSnapshot({
        name: 'shared-snap',
        source_volume_id: volumeId,
      });
      const snapshotId = snapshot.snapshot!.snapshot_id;
      expect(snapshotId).to.equal('shared-snap@other-node');
      // The same names exist on this node: only the node in the id tells them apart.
      await createVolume(driver, 'shared-name', 64 * MiB);
      await driver.client.controller.createSnapshot({
        name: 'shared-snap',
        source_volume_id: idOf('shared-name'),
      });
      const state = () => ({
        here: [
          readdirSync(driver.backend.layout.disks).sort(),
          readdirSync(driver.backend.layout.snapshots).sort(),
        ],
        there: [
          readdirSync(other!.backend.layout.disks).sort(),
          readdirSync(other!.backend.layout.snapshots).sort(),
        ],
      });
      const before = state();

      const { controller, node } = driver.client;
      const staging = path.join(dir, 'staging', 'shared-name');
      const target = path.join(dir, 'target', 'shared-name');
      const calls: Array<[string, () => Promise<unknown>, string]> = [
        [
          'DeleteVolume',
          () => controller.deleteVolume({ volume_id: volumeId }),
          'FAILED_PRECONDITION',
        ],
        [
          'DeleteSnapshot',
          () => controller.deleteSnapshot({ snapshot_id: snapshotId }),
          'FAILED_PRECONDITION',
        ],
        [
          'ControllerGetVolume',
          () => controller.controllerGetVolume({ volume_id: volumeId }),
          'FAILED_PRECONDITION',
        ],
        [
          'ValidateVolumeCapabilities',
          () =>
            controller.validateVolumeCapabilities({
              volume_id: volumeId,
              volume_capabilities: [mountCapability],
            }),
          'FAILED_PRECONDITION',
        ],
        [
          'ControllerExpandVolume',
          () =>
            controller.controllerExpandVolume({
              volume_id: volumeId,
              capacity_range: { required_bytes: String(128 * MiB) },
            }),
          'FAILED_PRECONDITION',
        ],
        [
          'CreateSnapshot',
          () => controller.createSnapshot({ name: 'from-elsewhere', source_volume_id: volumeId }),
          'FAILED_PRECONDITION',
        ],
        [
          'ListSnapshots by id',
          () => controller.listSnapshots({ snapshot_id: snapshotId }),
          'FAILED_PRECONDITION',
        ],
        // The restore or clone could only be made on the source's node, as for a requisite
        // topology this node is not in.
        [
          'CreateVolume from its snapshot',
          () => createVolume(driver, 'restore', 64 * MiB, fromSnapshot(snapshotId)),
          'RESOURCE_EXHAUSTED',
        ],
        [
          'CreateVolume as a clone',
          () =>
            createVolume(driver, 'clone', 64 * MiB, {
              volume_content_source: { volume: { volume_id: volumeId } },
            }),
          'RESOURCE_EXHAUSTED',
        ],
        [
          'NodeStageVolume',
          () =>
            node.nodeStageVolume({
              volume_id: volumeId,
              staging_target_path: staging,
              volume_capability: mountCapability,
            }),
          'FAILED_PRECONDITION',
        ],
        [
          'NodePublishVolume',
          () =>
            node.nodePublishVolume({
              volume_id: volumeId,
              staging_target_path: staging,
              target_path: target,
              volume_capability: mountCapability,
            }),
          'FAILED_PRECONDITION',
        ],
        [
          'NodeUnpublishVolume',
          () => node.nodeUnpublishVolume({ volume_id: volumeId, target_path: target }),
          'FAILED_PRECONDITION',
        ],
        [
          'NodeUnstageVolume',
          () => node.nodeUnstageVolume({ volume_id: volumeId, staging_target_path: staging }),
          'FAILED_PRECONDITION',
        ],
        [
          'NodeGetVolumeStats',
          () => node.nodeGetVolumeStats({ volume_id: volumeId, volume_path: target }),
          'FAILED_PRECONDITION',
        ],
        [
          'NodeExpandVolume',
          () => node.nodeExpandVolume({ volume_id: volumeId, volume_path: target }),
          'FAILED_PRECONDITION',
        ],
      ];
      for (const [rpc, call, expected] of calls) {
        const { code, details } = await outcomeOf(call());
        expect(code, rpc).to.equal(expected);
        expect(details, rpc).to.match(/lives on node other-node, not on node test-node/);
      }
      expect(state()).to.deep.equal(before);
      // Both objects are still there, and their own node still serves them.
      const still = await other!.client.controller.controllerGetVolume({ volume_id: volumeId });
      expect(still.volume?.volume_id).to.equal(volumeId);
      const listed = await other!.client.controller.listSnapshots({ snapshot_id: snapshotId });
      expect(listed.entries.map((e) => e.snapshot?.snapshot_id)).to.deep.equal([snapshotId]);
      await other!.client.controller.deleteSnapshot({ snapshot_id: snapshotId });
      await other!.client.controller.deleteVolume({ volume_id: volumeId });
      expect((await other!.client.controller.listVolumes({})).entries).to.deep.equal([]);
    });
  });

  describe('bad input: the CSI code, a message, and nothing existing touched', function () {
    const snapshotOf = async (name: string) => {
      await createVolume(driver, `${name}-src`, 64 * MiB);
      await driver.client.controller.createSnapshot({ name, source_volume_id: `${name}-src` });
    };

    const state = () => ({
      disks: readdirSync(driver.backend.layout.disks).sort(),
      snapshots: readdirSync(driver.backend.layout.snapshots).sort(),
      tmp: readdirSync(driver.backend.layout.tmp),
    });

    it('unknown StorageClass or snapshot class parameters: INVALID_ARGUMENT', async function () {
      await snapshotOf('base');
      const before = state();
      const volume = createVolume(driver, 'v', 64 * MiB, { parameters: { type: 'ssd' } });
      expect(await detailsOf(volume)).to.match(/unknown StorageClass parameter type/);
      expect(
        await codeOf(createVolume(driver, 'v', 64 * MiB, { parameters: { type: 'ssd' } })),
      ).to.equal('INVALID_ARGUMENT');
      const snapshot = driver.client.controller.createSnapshot({
        name: 's',
        source_volume_id: 'base-src',
        parameters: { retentionDays: '3' },
      });
      expect(await codeOf(snapshot)).to.equal('INVALID_ARGUMENT');
      expect(state()).to.deep.equal(before);
    });

    it("a size below the snapshot's: OUT_OF_RANGE", async function () {
      await snapshotOf('base');
      const before = state();
      const call = createVolume(driver, 'small', 32 * MiB, fromSnapshot('base'));
      expect(await detailsOf(call)).to.match(/below the source's size/);
      expect(await codeOf(createVolume(driver, 'small', 32 * MiB, fromSnapshot('base')))).to.equal(
        'OUT_OF_RANGE',
      );
      expect(state()).to.deep.equal(before);
    });

    it('a snapshot id that does not exist: NOT_FOUND', async function () {
      const before = state();
      expect(
        await codeOf(createVolume(driver, 'v', 64 * MiB, fromSnapshot('no-such-snapshot'))),
      ).to.equal('NOT_FOUND');
      expect(await codeOf(createVolume(driver, 'v', 64 * MiB, fromSnapshot('../../etc')))).to.equal(
        'NOT_FOUND',
      );
      expect(state()).to.deep.equal(before);
    });

    it('path-like or oversized names: INVALID_ARGUMENT, and ids that point outside touch nothing', async function () {
      await createVolume(driver, 'victim', 64 * MiB);
      const before = state();
      for (const name of ['../escape', '../../tmp/escape', 'a/b', '.hidden', 'x'.repeat(129)]) {
        expect(await codeOf(createVolume(driver, name, 64 * MiB)), name).to.equal(
          'INVALID_ARGUMENT',
        );
        expect(
          await codeOf(
            driver.client.controller.createSnapshot({ name, source_volume_id: 'victim' }),
          ),
          name,
        ).to.equal('INVALID_ARGUMENT');
      }
      expect(existsSync(path.join(driver.backend.layout.root, 'escape.img'))).to.equal(false);
      expect(existsSync(path.join(dir, 'escape.img'))).to.equal(false);
      // Deleting an id that names something outside the directory is a no-op, not a delete.
      await driver.client.controller.deleteVolume({ volume_id: '../disks/victim' });
      await driver.client.controller.deleteSnapshot({ snapshot_id: '../disks/victim' });
      expect(
        await codeOf(
          driver.client.node.nodeStageVolume({
            volume_id: '../disks/victim',
            staging_target_path: path.join(dir, 'staging', 'x'),
            volume_capability: mountCapability,
          }),
        ),
      ).to.equal('NOT_FOUND');
      expect(state()).to.deep.equal(before);
    });

    it('a full disk under the root: RESOURCE_EXHAUSTED, the partial copy removed, the source intact and thawed', async function () {
      await driver.stop();
      // The root on its own small file system, so a snapshot copy runs out of space.
      const rootImage = path.join(dir, 'small-root.img');
      const smallRoot = path.join(dir, 'small-root');
      execFileSync('truncate', ['-s', `${96 * MiB}`, rootImage]);
      execFileSync('mkfs.ext4', ['-q', '-F', rootImage]);
      mkdirSync(smallRoot);
      execFileSync('mount', ['-o', 'loop', rootImage, smallRoot]);
      driver = await startLocalDriver(dir, { root: smallRoot, capacityBytes: 10 * GiB });
      const { client } = driver;
      await createVolume(driver, 'full', 256 * MiB);
      const target = await stageAndPublish(client, dir, 'full');
      const sum = await writeRandomFile(path.join(target, 'data'), 52 * MiB);
      const before = state();
      const call = client.controller.createSnapshot({ name: 'nospace', source_volume_id: 'full' });
      expect(await detailsOf(call)).to.match(/no space left/);
      expect(
        await codeOf(
          client.controller.createSnapshot({ name: 'nospace', source_volume_id: 'full' }),
        ),
      ).to.equal('RESOURCE_EXHAUSTED');
      expect(state()).to.deep.equal(before);
      expect((await client.controller.listSnapshots({})).entries).to.deep.equal([]);
      writeFileSync(path.join(target, 'still-writable'), 'yes');
      expect(await sha256Of(path.join(target, 'data'))).to.equal(sum);
      await unpublishAndUnstage(client, dir, 'full');
    });

    it('a disk that already holds a partition table: NodeStageVolume refuses to format it with FAILED_PRECONDITION, and not a byte changes', async function () {
      const { client, backend } = driver;
      await createVolume(driver, 'parted', 64 * MiB);
      const image = backend.layout.diskImage('parted');
      // A DOS partition table: one Linux partition from sector 2048 to the end of the disk.
      const mbr = Buffer.alloc(512);
      mbr[450] = 0x83;
      mbr.writeUInt32LE(2048, 454);
      mbr.writeUInt32LE((64 * MiB) / 512 - 2048, 458);
      mbr[510] = 0x55;
      mbr[511] = 0xaa;
      const handle = await open(image, 'r+');
      await handle.write(mbr, 0, mbr.length, 0);
      await handle.close();
      const sum = await sha256Of(image);

      const stage = client.node.nodeStageVolume({
        volume_id: idOf('parted'),
        staging_target_path: path.join(dir, 'staging', 'parted'),
        volume_capability: mountCapability,
      });
      const { code, details } = await outcomeOf(stage);
      expect(code).to.equal('FAILED_PRECONDITION');
      expect(details).to.match(
        /^volume parted already holds dos partition-table at offset 0x1fe, not a lone ext4 file system; refusing to format or mount it/,
      );
      expect(await sha256Of(image)).to.equal(sum);
      // Left detached as it was found, so the volume can still be deleted.
      const loops = execFileSync('losetup', ['--associated', image], { encoding: 'utf8' });
      expect(loops).to.equal('');
      await client.controller.deleteVolume({ volume_id: idOf('parted') });
      expect(existsSync(image)).to.equal(false);
    });

    it('no capacity left: RESOURCE_EXHAUSTED', async function () {
      await driver.stop();
      driver = await startLocalDriver(dir, { capacityBytes: 3 * GiB });
      await createVolume(driver, 'fits', 2 * GiB);
      const before = state();
      const call = createVolume(driver, 'too-big', 2 * GiB);
      expect(await detailsOf(call)).to.match(/only \d+ are left/);
      expect(await codeOf(createVolume(driver, 'too-big', 2 * GiB))).to.equal('RESOURCE_EXHAUSTED');
      expect(state()).to.deep.equal(before);
      const capacity = await driver.client.controller.getCapacity({});
      expect(capacity.available_capacity).to.equal(String(GiB));
    });
  });
});

import { mkdir, realpath, rmdir, stat, statfs } from 'node:fs/promises';

import type { Logger } from '../../../observability/logger.js';
import type {
  NodeBackend,
  NodeExpandRequest,
  PublishVolumeRequest,
  StageVolumeRequest,
  Topology,
  VolumeCapability,
  VolumeStats,
} from '../../backend.js';
import { alreadyExists, failedPrecondition, notFound } from '../../../csi/errors.js';
import type { Layout } from './layout.js';
import { ownName } from './layout.js';
import type { DiskRecord } from './metadata.js';
import { isReadOnly, loopDevicesOf, mountAt, readMounts, type MountEntry } from './mounts.js';
import type { CommandRunner } from './system.js';

export interface LocalNodeConfig {
  layout: Layout;
  topology: Topology;
  /** The node this driver serves: volume ids name the node that holds them. */
  nodeId: string;
  run: CommandRunner;
  logger: Logger;
  readDisk(id: string): Promise<DiskRecord | undefined>;
  /** Whether resize2fs may grow a mounted ext4 (needs CAP_SYS_RESOURCE). */
  onlineResize: boolean;
  /** Where kubelet keeps its staging and target paths. */
  kubeletDir: string;
}

const defaultFsType = 'ext4';

/** One line of `wipefs --json`. */
interface Signature {
  type: string;
  offset: string;
  /** filesystem, partition-table, raid, crypto... */
  usage: string;
}

const readOnlyMode = (capability: VolumeCapability): boolean =>
  capability.accessMode === 'SINGLE_NODE_READER_ONLY' ||
  capability.accessMode === 'MULTI_NODE_READER_ONLY';

/** A path as the kernel reports it in mountinfo (symlinks resolved), when it exists. */
async function canonical(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return path;
  }
}

/**
 * The node side of the local backend: a disk image is attached to a loop device, formatted
 * ext4 on first use, mounted at the staging path and bind-mounted to each target path.
 * Everything is looked up from the kernel (losetup, mountinfo) rather than remembered, so a
 * restarted driver picks up where the last one stopped.
 */
export class LocalNode implements NodeBackend {
  readonly topology: Topology;
  readonly maxVolumesPerNode = 0;
  readonly kubeletDir: string;
  private readonly layout: Layout;
  private readonly nodeId: string;
  private readonly run: CommandRunner;
  private readonly logger: Logger;
  private readonly readDisk: LocalNodeConfig['readDisk'];
  private readonly onlineResize: boolean;

  constructor(config: LocalNodeConfig) {
    this.layout = config.layout;
    this.topology = config.topology;
    this.nodeId = config.nodeId;
    this.kubeletDir = config.kubeletDir;
    this.run = config.run;
    this.logger = config.logger;
    this.readDisk = config.readDisk;
    this.onlineResize = config.onlineResize;
  }

  /**
   * The name under the root of a volume id, undefined when no volume can have it. A volume of
   * another node cannot be attached here: FAILED_PRECONDITION, naming its node, rather than a
   * NOT_FOUND that says it does not exist, or an OK that would act on whatever is mounted.
   */
  private own(volumeId: string, action: string): string | undefined {
    return ownName('volume', volumeId, this.nodeId, 'FAILED_PRECONDITION', action);
  }

  private async readyDisk(volumeId: string, action: string): Promise<DiskRecord> {
    const name = this.own(volumeId, action);
    const record = name === undefined ? undefined : await this.readDisk(name);
    if (!record || record.state !== 'ready') throw notFound(`volume ${volumeId} does not exist`);
    return record;
  }

  private async attach(image: string): Promise<string> {
    const device = (await this.run('losetup', ['--find', '--show', image])).trim();
    this.logger.info('loop device attached', { image, device });
    return device;
  }

  /** Every signature libblkid knows on `device`: file systems, partition tables, RAID, LUKS... */
  private async signaturesOf(device: string): Promise<Signature[]> {
    const out = await this.run('wipefs', ['--json', '--output', 'TYPE,OFFSET,USAGE', device]);
    if (out.trim() === '') return [];
    return (JSON.parse(out) as { signatures: Signature[] }).signatures;
  }

  /**
   * The file system to mount from `device`: undefined when the device holds no signature at
   * all (a new disk, to be formatted). Anything else that is not exactly one file system of
   * the wanted type is refused, so mkfs never overwrites a partition table or data it was not
   * asked to replace.
   */
  private async existingFileSystem(
    volumeId: string,
    device: string,
    wanted: string,
  ): Promise<string | undefined> {
    const signatures = await this.signaturesOf(device);
    if (signatures.length === 0) return undefined;
    const [only] = signatures;
    if (signatures.length === 1 && only?.usage === 'filesystem' && only.type === wanted) {
      return only.type;
    }
    const found = signatures.map((s) => `${s.type} ${s.usage} at offset ${s.offset}`).join(', ');
    throw failedPrecondition(
      `volume ${volumeId} already holds ${found}, not a lone ${wanted} file system; refusing ` +
        `to format or mount it so nothing on it is lost (inspect it with wipefs, or delete the volume)`,
    );
  }

  async stageVolume(request: StageVolumeRequest): Promise<void> {
    const record = await this.readyDisk(request.volumeId, 'stage');
    const { capability } = request;
    if (capability.access.type !== 'mount') {
      throw failedPrecondition('the local backend serves mount volumes only');
    }
    const image = this.layout.diskImage(record.id);
    const attached = await loopDevicesOf(this.run, image);
    const device = attached[0] ?? (await this.attach(image));
    try {
      await this.stageDevice(record, request, capability.access, device);
    } catch (error) {
      // A refused stage leaves the disk as it found it: not attached, so it can be deleted.
      if (attached.length === 0) await this.detach(record.id, device);
      throw error;
    }
  }

  private async stageDevice(
    record: DiskRecord,
    request: StageVolumeRequest,
    access: { fsType: string; mountFlags: string[] },
    device: string,
  ): Promise<void> {
    const stagingPath = await canonical(request.stagingPath);
    const mounted = mountAt(await readMounts(), stagingPath);
    if (mounted) {
      if (mounted.source !== device) {
        throw alreadyExists(
          `${request.stagingPath} already has ${mounted.source} mounted, not volume ${record.id}`,
        );
      }
      return;
    }
    const wanted = access.fsType || defaultFsType;
    const found = await this.existingFileSystem(record.id, device, wanted);
    if (!found) {
      await this.run('mkfs.ext4', ['-q', '-F', device]);
      this.logger.info('file system created', { volume: record.id, device, fsType: wanted });
    }
    const readOnly = readOnlyMode(request.capability);
    // A disk restored into a larger size, or expanded while unstaged, has a file system
    // smaller than its device: grow it now, offline, before anything uses it.
    if (found && !readOnly) await this.growOffline(device);
    const options = [...access.mountFlags, ...(readOnly ? ['ro'] : [])];
    await mkdir(request.stagingPath, { recursive: true });
    await this.run('mount', [
      '-t',
      wanted,
      ...(options.length > 0 ? ['-o', options.join(',')] : []),
      device,
      request.stagingPath,
    ]);
    this.logger.info('volume staged', { volume: record.id, device, stagingPath });
  }

  private async deviceBytes(device: string): Promise<number> {
    return Number((await this.run('blockdev', ['--getsize64', device])).trim());
  }

  /** The size of the ext4 file system on `device`, from its superblock. */
  private async fileSystemBytes(device: string): Promise<number> {
    const header = await this.run('dumpe2fs', ['-h', device]);
    const count = /^Block count:\s+(\d+)/m.exec(header)?.[1];
    const size = /^Block size:\s+(\d+)/m.exec(header)?.[1];
    if (!count || !size) throw new Error(`cannot read the file system size of ${device}`);
    return Number(count) * Number(size);
  }

  private async growOffline(device: string): Promise<void> {
    if ((await this.fileSystemBytes(device)) >= (await this.deviceBytes(device))) return;
    // resize2fs insists on a freshly checked file system when it is not mounted.
    await this.run('e2fsck', ['-f', '-p', device]);
    await this.run('resize2fs', [device]);
    this.logger.info('file system grown', { device });
  }

  async unstageVolume(request: { volumeId: string; stagingPath: string }): Promise<void> {
    const name = this.own(request.volumeId, 'unstage');
    const stagingPath = await canonical(request.stagingPath);
    if (mountAt(await readMounts(), stagingPath)) {
      await this.run('umount', [stagingPath]);
    }
    if (name === undefined) return;
    const image = this.layout.diskImage(name);
    const mounts = await readMounts();
    for (const device of await loopDevicesOf(this.run, image).catch(() => [])) {
      const inUse = mounts.filter((m) => m.source === device);
      if (inUse.length > 0) {
        throw failedPrecondition(
          `volume ${request.volumeId} is still mounted at ${inUse.map((m) => m.mountPoint).join(', ')}; unpublish it first`,
        );
      }
      await this.detach(request.volumeId, device);
    }
  }

  private async detach(volumeId: string, device: string): Promise<void> {
    await this.run('losetup', ['--detach', device]);
    this.logger.info('loop device detached', { volume: volumeId, device });
  }

  private async stagedMount(volumeId: string, stagingPath: string): Promise<MountEntry> {
    const devices = await loopDevicesOf(this.run, this.layout.diskImage(volumeId));
    const staged = mountAt(await readMounts(), await canonical(stagingPath));
    if (!staged || !devices.includes(staged.source)) {
      throw failedPrecondition(`volume ${volumeId} is not staged at ${stagingPath}`);
    }
    return staged;
  }

  async publishVolume(request: PublishVolumeRequest): Promise<void> {
    const record = await this.readyDisk(request.volumeId, 'publish');
    const staged = await this.stagedMount(record.id, request.stagingPath);
    const readOnly = request.readonly || readOnlyMode(request.capability);
    const published = mountAt(await readMounts(), await canonical(request.targetPath));
    if (published) {
      if (published.source !== staged.source || isReadOnly(published) !== readOnly) {
        throw alreadyExists(
          `${request.targetPath} is already mounted (${published.source}, ${isReadOnly(published) ? 'ro' : 'rw'}) incompatibly with this request`,
        );
      }
      return;
    }
    await mkdir(request.targetPath, { recursive: true });
    await this.run('mount', ['--bind', request.stagingPath, request.targetPath]);
    if (readOnly) {
      await this.run('mount', ['-o', 'remount,bind,ro', request.targetPath]);
    }
    this.logger.info('volume published', {
      volume: record.id,
      targetPath: request.targetPath,
      readOnly,
    });
  }

  async unpublishVolume(request: { volumeId: string; targetPath: string }): Promise<void> {
    this.own(request.volumeId, 'unpublish');
    const targetPath = await canonical(request.targetPath);
    if (mountAt(await readMounts(), targetPath)) await this.run('umount', [targetPath]);
    // rmdir, not rm -r: should the unmount not have happened, the volume's files stay.
    await rmdir(request.targetPath).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }

  async volumeStats(request: { volumeId: string; volumePath: string }): Promise<VolumeStats> {
    await this.readyDisk(request.volumeId, 'report on');
    try {
      await stat(request.volumePath);
    } catch {
      throw notFound(`volume path ${request.volumePath} does not exist`);
    }
    const fs = await statfs(request.volumePath);
    const mounted = mountAt(await readMounts(), await canonical(request.volumePath));
    return {
      bytes: {
        total: fs.blocks * fs.bsize,
        used: (fs.blocks - fs.bfree) * fs.bsize,
        available: fs.bavail * fs.bsize,
      },
      inodes: { total: fs.files, used: fs.files - fs.ffree, available: fs.ffree },
      ...(!mounted && { abnormal: `${request.volumePath} is not a mount point` }),
    };
  }

  async expandVolume(request: NodeExpandRequest): Promise<{ capacityBytes: number }> {
    const record = await this.readyDisk(request.volumeId, 'expand');
    const devices = await loopDevicesOf(this.run, this.layout.diskImage(record.id));
    const device = devices[0];
    if (!device) throw failedPrecondition(`volume ${record.id} is not staged on this node`);
    await this.run('losetup', ['--set-capacity', device]);
    const capacityBytes = await this.deviceBytes(device);
    if ((await this.fileSystemBytes(device)) < capacityBytes) {
      if (!this.onlineResize) {
        throw failedPrecondition(
          `the file system of volume ${record.id} is mounted and this driver may not grow it ` +
            `online (it lacks CAP_SYS_RESOURCE); it is grown when the volume is next staged`,
        );
      }
      await this.run('resize2fs', [device]);
    }
    this.logger.info('volume expanded on node', { volume: record.id, device, capacityBytes });
    return { capacityBytes };
  }
}

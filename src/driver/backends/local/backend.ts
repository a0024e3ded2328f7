import { mkdir, open, readdir, rm, stat, statfs, truncate } from 'node:fs/promises';
import path from 'node:path';

import type { Logger } from '../../../observability/logger.js';
import { errorMessage } from '../../../observability/logger.js';
import { systemClock, type Clock } from '../../../util/clock.js';
import {
  snapshotDeletionBlocker,
  type BackendCapabilities,
  type Capacity,
  type CreateGroupSnapshotRequest,
  type CreateSnapshotRequest,
  type CreateVolumeRequest,
  type DependentDisk,
  type DiskBackend,
  type ExpandVolumeRequest,
  type ExpandVolumeResult,
  type GroupSnapshot,
  type ListOptions,
  type Page,
  type Snapshot,
  type SnapshotListOptions,
  type Topology,
  type Volume,
  type VolumeSource,
} from '../../backend.js';
import {
  alreadyExists,
  failedPrecondition,
  invalidArgument,
  notFound,
  outOfRange,
  resourceExhausted,
  type DiskErrorCode,
} from '../../../csi/errors.js';
import { paginate } from '../../pagination.js';
import { type CopyOptions, type CopyResult, copyFigures, copySparse } from './copy.js';
import { metaIds, readJson, removeDurably, renameDurably, writeFileAtomic } from './files.js';
import {
  checkName,
  Layout,
  locateId,
  nodeIdProblem,
  ownName,
  qualifiedId,
  type ObjectKind,
} from './layout.js';
import {
  checkExistingDisk,
  checkExistingGroup,
  checkExistingSnapshot,
  diskAlignmentBytes,
  plannedDiskBytes,
  groupMembers,
  rejectParameters,
  toGroupSnapshot,
  toSnapshot,
  toVolume,
  type DiskRecord,
  type GroupMember,
  type GroupSnapshotRecord,
  type SnapshotRecord,
} from './metadata.js';
import { loopDevicesOf, readMounts, type MountEntry } from './mounts.js';
import { FileLock } from './lock.js';
import { KeyedMutex } from './mutex.js';
import { LocalNode } from './node.js';
import type { CommandRunner } from './system.js';

/** A copy, and how long the file system it was read from was frozen (when it was mounted). */
type FrozenCopy = CopyResult & { frozenSeconds?: number };

export const localDriverName = 'local.snapback.dev';
export const localTopologyKey = 'topology.local.snapback.dev/node';
export const defaultKubeletDir = '/var/lib/kubelet';

export interface LocalBackendConfig {
  root: string;
  nodeId: string;
  /** Bytes all disks together may be provisioned with; the root file system's size if absent. */
  capacityBytes?: number;
  /**
   * Whether this process may grow a mounted ext4 file system (CAP_SYS_RESOURCE). Without it
   * volumes are expanded offline: the file system grows when the volume is next staged.
   */
  onlineResize: boolean;
  /** Kubelet's directory, below which every staging and target path must lie (default /var/lib/kubelet). */
  kubeletDir?: string;
  vendorVersion: string;
  run: CommandRunner;
  logger: Logger;
  clock?: Clock;
  /** This node's mount table (default: /proc/self/mountinfo). */
  readMounts?: () => Promise<MountEntry[]>;
}

/**
 * Disks as sparse image files under a root directory on this node, snapshots as sparse
 * copies with a content checksum. Every state change is a metadata file replaced atomically,
 * so a crash at any point leaves either the old state or a "creating" record, which the next
 * start removes (with its partial image) for the CO's retry to start again.
 */
export class LocalBackend implements DiskBackend {
  readonly driverName = localDriverName;
  readonly vendorVersion: string;
  readonly capabilities: BackendCapabilities;
  readonly topologyKeys = [localTopologyKey];
  readonly node: LocalNode;
  readonly layout: Layout;
  private readonly topology: Topology;
  private readonly run: CommandRunner;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly mutex = new KeyedMutex();
  private readonly nodeId: string;
  private readonly readMounts: () => Promise<MountEntry[]>;
  private lock: FileLock | undefined;

  private constructor(private readonly config: LocalBackendConfig) {
    const problem = nodeIdProblem(config.nodeId);
    if (problem) throw new Error(`the node id "${config.nodeId}" ${problem}`);
    this.nodeId = config.nodeId;
    this.layout = new Layout(config.root);
    this.vendorVersion = config.vendorVersion;
    this.capabilities = {
      accessModes: ['SINGLE_NODE_WRITER', 'SINGLE_NODE_READER_ONLY'],
      accessTypes: ['mount'],
      fsTypes: ['ext4'],
      cloneVolume: true,
      onlineExpansion: config.onlineResize,
    };
    this.topology = { [localTopologyKey]: config.nodeId };
    this.run = config.run;
    this.logger = config.logger.child({ backend: 'local' });
    this.clock = config.clock ?? systemClock;
    this.readMounts = config.readMounts ?? readMounts;
    this.node = new LocalNode({
      layout: this.layout,
      topology: this.topology,
      run: this.run,
      logger: this.logger,
      nodeId: config.nodeId,
      readDisk: (id) => this.readDisk(id),
      onlineResize: config.onlineResize,
      kubeletDir: path.resolve(config.kubeletDir ?? defaultKubeletDir),
    });
  }

  /**
   * Opens (creating if needed) the root, locks it for this process and cleans up what a crash
   * left behind. Two drivers on one root would each take the other's copies in progress for
   * leftovers and reuse each other's names, so the second is refused, naming the first.
   */
  static async open(config: LocalBackendConfig): Promise<LocalBackend> {
    const backend = new LocalBackend(config);
    await mkdir(backend.layout.root, { recursive: true, mode: 0o700 });
    backend.lock = await FileLock.acquire(
      backend.layout.lock,
      `the root ${backend.layout.root} of the local backend`,
      'two drivers on one root would corrupt its disks: stop the other driver or give this one another --root',
    );
    try {
      await backend.recover();
    } catch (error) {
      await backend.close();
      throw error;
    }
    return backend;
  }

  async close(): Promise<void> {
    await this.lock?.release();
    this.lock = undefined;
  }

  private async recover(): Promise<void> {
    const { layout } = this;
    for (const dir of [layout.disks, layout.snapshots, layout.groups, layout.tmp]) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    }
    // Copies in progress when the last process died are restarted from scratch by the retry.
    for (const name of await readdir(layout.tmp)) {
      await rm(path.join(layout.tmp, name), { force: true });
    }
    // A copy cut short may have left its source frozen: every write to it would hang.
    for (const id of await metaIds(layout.snapshots)) {
      const record = await this.readSnapshot(id);
      if (record?.state === 'creating' && record.frozenMount) await this.thaw(record.frozenMount);
    }
    for (const id of await metaIds(layout.disks)) {
      const record = await this.readDisk(id);
      if (record?.state === 'creating' && record.frozenMount) await this.thaw(record.frozenMount);
    }
    for (const id of await metaIds(layout.groups)) {
      const record = await this.readGroup(id);
      if (record?.state === 'creating') {
        for (const mountPoint of record.frozenMounts ?? []) await this.thaw(mountPoint);
      }
    }
    await this.reapHalfMadeGroups();
    await this.reapHalfMade();
    await this.removeStrays(layout.disks);
    await this.removeStrays(layout.snapshots);
  }

  /**
   * Records still "creating" at start-up were left by a process that died mid-copy (the root's
   * lock rules out a live one): nothing will finish them, and a restore left so would block its
   * snapshot's deletion for ever. They go, with whatever image they have; the CO's retry of the
   * create starts afresh.
   */
  private async reapHalfMade(): Promise<void> {
    for (const id of await metaIds(this.layout.snapshots)) {
      const record = await this.readSnapshot(id);
      if (record?.state !== 'creating') continue;
      await removeDurably(this.layout.snapshotMeta(id));
      await removeDurably(this.layout.snapshotImage(id));
      this.logger.warn('removed a snapshot a crash left half-made', {
        snapshot: id,
        volume: record.sourceVolumeId,
        since: record.creationTime,
      });
    }
    for (const id of await metaIds(this.layout.disks)) {
      const record = await this.readDisk(id);
      if (record?.state !== 'creating') continue;
      await this.forgetDisk(id, record.source);
      this.logger.warn('removed a volume a crash left half-made', {
        volume: id,
        source: record.source ?? null,
        since: record.createdAt,
      });
    }
  }

  /**
   * A group still "creating" at start-up goes with all its members (even those already
   * copied: the group was never reported cut); one "deleting" is finished.
   */
  private async reapHalfMadeGroups(): Promise<void> {
    for (const id of await metaIds(this.layout.groups)) {
      const record = await this.readGroup(id);
      if (record?.state !== 'creating' && record?.state !== 'deleting') continue;
      await this.removeGroup(record);
      this.logger.warn(
        record.state === 'creating'
          ? 'removed a group snapshot a crash left half-made'
          : 'finished deleting a group snapshot a crash interrupted',
        { groupSnapshot: id, members: record.members.map((m) => m.snapshotId) },
      );
    }
  }

  /** Images with no metadata (a delete cut short) and half-written metadata temp files. */
  private async removeStrays(dir: string): Promise<void> {
    const names = await readdir(dir);
    const recorded = new Set(names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5)));
    for (const name of names) {
      const stray =
        (name.startsWith('.') && name.endsWith('.tmp')) ||
        (name.endsWith('.img') && !recorded.has(name.slice(0, -4)));
      if (stray) {
        this.logger.info('removing leftover file', { file: path.join(dir, name) });
        await rm(path.join(dir, name), { force: true });
      }
    }
  }

  async probe(): Promise<boolean> {
    await stat(this.layout.disks);
    return true;
  }

  // ---- volumes ----

  async createVolume(request: CreateVolumeRequest): Promise<Volume> {
    const id = checkName('volume', request.name);
    rejectParameters('StorageClass', request.parameters);
    this.checkTopology(request);
    const source = this.localSource(request.source);
    return this.mutex.with(`create-delete/disk/${id}`, () => this.createDisk(id, request, source));
  }

  /**
   * The content source with the names its objects have under the root. A source on another
   * node is RESOURCE_EXHAUSTED: the new disk could only be made there, as a requisite
   * topology that excludes this node is.
   */
  private localSource(source: VolumeSource | undefined): VolumeSource | undefined {
    if (source?.kind === 'snapshot') {
      const name = this.own('snapshot', source.snapshotId, 'RESOURCE_EXHAUSTED', 'restore');
      if (name === undefined) throw notFound(`snapshot ${source.snapshotId} does not exist`);
      return { kind: 'snapshot', snapshotId: name };
    }
    if (source?.kind === 'volume') {
      const name = this.own('volume', source.volumeId, 'RESOURCE_EXHAUSTED', 'clone');
      if (name === undefined) throw notFound(`source volume ${source.volumeId} does not exist`);
      return { kind: 'volume', volumeId: name };
    }
    return undefined;
  }

  private async createDisk(
    id: string,
    request: CreateVolumeRequest,
    source: VolumeSource | undefined,
  ): Promise<Volume> {
    const existing = await this.readDisk(id);
    if (existing) {
      checkExistingDisk(existing, { ...request, source });
      if (existing.state === 'ready') return this.toVolume(existing);
    }

    let sourceImage: string | undefined;
    let sourceBytes: number | undefined;
    let expectedChecksum: string | undefined;
    if (source?.kind === 'snapshot') {
      const snapshot = await this.readSnapshot(source.snapshotId);
      if (!snapshot || snapshot.state !== 'ready') {
        throw notFound(`snapshot ${this.idOf(source.snapshotId)} does not exist`);
      }
      sourceImage = this.layout.snapshotImage(snapshot.id);
      sourceBytes = snapshot.sizeBytes;
      expectedChecksum = snapshot.checksum;
    } else if (source?.kind === 'volume') {
      const volume = await this.readDisk(source.volumeId);
      if (!volume || volume.state !== 'ready') {
        throw notFound(`source volume ${this.idOf(source.volumeId)} does not exist`);
      }
      sourceImage = this.layout.diskImage(volume.id);
      sourceBytes = volume.capacityBytes;
    }
    const capacityBytes = plannedDiskBytes(request, sourceBytes);
    // A clone of a mounted volume is copied with its file system frozen, as a snapshot is.
    const frozenMount =
      source?.kind === 'volume' && sourceImage ? await this.mountPointOf(sourceImage) : undefined;

    const record: DiskRecord = {
      id,
      capacityBytes,
      state: 'creating',
      ...(source && { source }),
      createdAt: this.clock.now().toISOString(),
      ...(frozenMount && { frozenMount }),
    };
    await this.mutex.with('capacity', async () => {
      const available = await this.availableBytes(id);
      if (capacityBytes > available) {
        throw resourceExhausted(
          `volume ${id} needs ${capacityBytes} bytes but only ${available} are left of this node's capacity`,
        );
      }
      if (source?.kind !== 'snapshot') {
        await this.writeDisk(record);
        return;
      }
      // Under the snapshot's mutex, so DeleteSnapshot sees either neither or both: the
      // dependent entry and the disk record saying it is being created.
      await this.mutex.with(`snapshot/${source.snapshotId}`, async () => {
        const snapshot = await this.readSnapshot(source.snapshotId);
        if (!snapshot || snapshot.state !== 'ready') {
          throw notFound(`snapshot ${source.snapshotId} does not exist`);
        }
        if (!snapshot.dependents.includes(id)) {
          snapshot.dependents.push(id);
          await this.writeSnapshot(snapshot);
        }
        await this.writeDisk(record);
      });
    });

    const tmp = this.layout.tmpFile('disk', id);
    let copied: FrozenCopy | undefined;
    try {
      if (sourceImage) {
        copied = await this.copyFrozen(sourceImage, tmp, frozenMount, {
          targetBytes: capacityBytes,
          expectedChecksum,
        });
      } else {
        await this.createSparseFile(tmp, capacityBytes);
      }
      await renameDurably(tmp, this.layout.diskImage(id));
    } catch (error) {
      // A failure this process saw (no space, a corrupt snapshot) leaves nothing behind; only
      // a crash leaves the "creating" record, removed when the driver next starts.
      await rm(tmp, { force: true });
      await this.forgetDisk(id, source);
      throw error;
    }
    const ready: DiskRecord = { ...record, state: 'ready' };
    delete ready.frozenMount;
    await this.writeDisk(ready);
    this.logger.info('volume created', {
      volume: id,
      capacityBytes,
      source: source ?? null,
      ...(copied && copyFigures(copied)),
    });
    return this.toVolume(ready);
  }

  private checkTopology(request: CreateVolumeRequest): void {
    const requisite = request.accessibility?.requisite ?? [];
    if (requisite.length === 0) return;
    const here = this.topology[localTopologyKey];
    const reachable = requisite.some(
      (t) => t[localTopologyKey] === undefined || t[localTopologyKey] === here,
    );
    if (!reachable) {
      throw resourceExhausted(
        `volumes of this driver live on node ${here}, which none of the requisite topologies include`,
      );
    }
  }

  private async createSparseFile(file: string, bytes: number): Promise<void> {
    const handle = await open(file, 'wx', 0o600);
    try {
      await handle.truncate(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async deleteVolume(volumeId: string): Promise<void> {
    const name = this.own('volume', volumeId, 'FAILED_PRECONDITION', 'delete');
    if (name === undefined) return;
    await this.mutex.with(`create-delete/disk/${name}`, async () => {
      const record = await this.readDisk(name);
      if (!record) return;
      const image = this.layout.diskImage(name);
      const attached = await loopDevicesOf(this.run, image).catch(() => []);
      if (attached.length > 0) {
        throw failedPrecondition(
          `volume ${volumeId} is still attached on this node (${attached.join(', ')}); unstage it first`,
        );
      }
      await this.forgetDisk(name, record.source);
      this.logger.info('volume deleted', { volume: name });
    });
  }

  /**
   * Removes a disk: its record first (from then on it does not exist), its image, then its
   * entry among the snapshot's dependents. A crash in between leaves an image without a
   * record (removed at start-up) or a dependent entry naming nothing (ignored).
   */
  private async forgetDisk(id: string, source: VolumeSource | undefined): Promise<void> {
    await removeDurably(this.layout.diskMeta(id));
    await removeDurably(this.layout.diskImage(id));
    if (source?.kind === 'snapshot') {
      await this.updateSnapshot(source.snapshotId, (s) => {
        if (!s) return undefined;
        s.dependents = s.dependents.filter((d) => d !== id);
        return s;
      });
    }
  }

  async getVolume(volumeId: string): Promise<Volume | undefined> {
    const name = this.own('volume', volumeId, 'FAILED_PRECONDITION', 'describe');
    if (name === undefined) return undefined;
    const record = await this.readDisk(name);
    return record?.state === 'ready' ? this.toVolume(record) : undefined;
  }

  async listVolumes(options: ListOptions): Promise<Page<Volume>> {
    const records = await this.readAll<DiskRecord>(this.layout.disks, (id) => this.readDisk(id));
    const ready = records.filter((r) => r.state === 'ready').map((r) => this.toVolume(r));
    return paginate(ready, (v) => v.id, options);
  }

  async expandVolume(request: ExpandVolumeRequest): Promise<ExpandVolumeResult> {
    const name = this.own('volume', request.volumeId, 'FAILED_PRECONDITION', 'expand');
    const record = name === undefined ? undefined : await this.readDisk(name);
    if (!record || record.state !== 'ready')
      throw notFound(`volume ${request.volumeId} does not exist`);
    const nodeExpansionRequired = request.capability?.access.type !== 'block';
    if (record.capacityBytes >= request.requiredBytes) {
      return { capacityBytes: record.capacityBytes, nodeExpansionRequired };
    }
    const target = Math.ceil(request.requiredBytes / diskAlignmentBytes) * diskAlignmentBytes;
    if (request.limitBytes > 0 && target > request.limitBytes) {
      throw outOfRange(`cannot grow to ${target} bytes within limit_bytes ${request.limitBytes}`);
    }
    await this.mutex.with('capacity', async () => {
      const available = await this.availableBytes(record.id);
      if (target > available) {
        throw resourceExhausted(
          `growing volume ${record.id} to ${target} bytes exceeds this node's capacity (${available} bytes left)`,
        );
      }
      // Image first: a crash in between leaves a larger image than recorded, which the
      // retried expansion records; the reverse would report space the image does not have.
      await truncate(this.layout.diskImage(record.id), target);
      await this.writeDisk({ ...record, capacityBytes: target });
    });
    this.logger.info('volume expanded', { volume: record.id, capacityBytes: target });
    return { capacityBytes: target, nodeExpansionRequired };
  }

  async getCapacity(): Promise<Capacity> {
    const availableBytes = await this.availableBytes();
    return { availableBytes, maximumVolumeSizeBytes: availableBytes };
  }

  /** Capacity minus what the recorded disks (except `excluding`) are provisioned with. */
  private async availableBytes(excluding?: string): Promise<number> {
    const capacity = this.config.capacityBytes ?? (await this.rootBytes());
    const records = await this.readAll<DiskRecord>(this.layout.disks, (id) => this.readDisk(id));
    const provisioned = records
      .filter((r) => r.id !== excluding)
      .reduce((sum, r) => sum + r.capacityBytes, 0);
    return Math.max(0, capacity - provisioned);
  }

  private async rootBytes(): Promise<number> {
    const fs = await statfs(this.layout.root);
    return fs.blocks * fs.bsize;
  }

  // ---- snapshots ----

  async createSnapshot(request: CreateSnapshotRequest): Promise<Snapshot> {
    const id = checkName('snapshot', request.name);
    rejectParameters('snapshot class', request.parameters);
    const sourceName = this.own(
      'volume',
      request.sourceVolumeId,
      'FAILED_PRECONDITION',
      'snapshot',
    );
    return this.mutex.with(`create-delete/snapshot/${id}`, () =>
      this.createSnapshotCopy(id, request, sourceName),
    );
  }

  private async createSnapshotCopy(
    id: string,
    request: CreateSnapshotRequest,
    sourceName: string | undefined,
  ): Promise<Snapshot> {
    const existing = await this.readSnapshot(id);
    if (existing) {
      checkExistingSnapshot(existing, sourceName ?? request.sourceVolumeId);
      if (existing.state === 'ready') return this.toSnapshot(existing);
    }
    const volume = sourceName === undefined ? undefined : await this.readDisk(sourceName);
    if (!volume || volume.state !== 'ready') {
      throw notFound(`source volume ${request.sourceVolumeId} does not exist`);
    }
    const sourceImage = this.layout.diskImage(volume.id);
    const mountPoint = await this.mountPointOf(sourceImage);
    const record: SnapshotRecord = {
      id,
      sourceVolumeId: volume.id,
      sizeBytes: volume.capacityBytes,
      state: 'creating',
      forceDelete: request.forceDelete,
      creationTime: this.clock.now().toISOString(),
      dependents: [],
      ...(mountPoint && { frozenMount: mountPoint }),
    };
    await this.writeSnapshot(record);

    const tmp = this.layout.tmpFile('snapshot', id);
    let copied;
    try {
      copied = await this.copyFrozen(sourceImage, tmp, mountPoint, {});
      await renameDurably(tmp, this.layout.snapshotImage(id));
    } catch (error) {
      await rm(tmp, { force: true });
      await removeDurably(this.layout.snapshotMeta(id));
      throw error;
    }
    const ready: SnapshotRecord = {
      ...record,
      state: 'ready',
      checksum: copied.checksum,
      dataBytes: copied.dataBytes,
    };
    delete ready.frozenMount;
    await this.writeSnapshot(ready);
    this.logger.info('snapshot created', {
      snapshot: id,
      volume: volume.id,
      dataBytes: copied.dataBytes,
      frozen: mountPoint ?? null,
      forceDelete: request.forceDelete,
      ...copyFigures(copied),
    });
    return this.toSnapshot(ready);
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    const name = this.own('snapshot', snapshotId, 'FAILED_PRECONDITION', 'delete');
    if (name === undefined) return;
    await this.mutex.with(`create-delete/snapshot/${name}`, () =>
      this.mutex.with(`snapshot/${name}`, async () => {
        const record = await this.readSnapshot(name);
        if (!record) return;
        if (record.groupSnapshotId !== undefined) {
          throw invalidArgument(
            `snapshot ${snapshotId} is a member of group snapshot ${this.idOf(record.groupSnapshotId)} ` +
              'and cannot be deleted alone; delete the group (DeleteVolumeGroupSnapshot)',
          );
        }
        const dependents = await this.liveDependents(record);
        const blocker = snapshotDeletionBlocker(snapshotId, record.forceDelete, dependents);
        if (blocker) throw failedPrecondition(blocker);
        await removeDurably(this.layout.snapshotMeta(name));
        await removeDurably(this.layout.snapshotImage(name));
        this.logger.info('snapshot deleted', {
          snapshot: name,
          forceDelete: record.forceDelete,
          dependents: dependents.map((d) => d.id),
        });
      }),
    );
  }

  /** The recorded dependents that still exist, and whether each is still being filled. */
  private async liveDependents(record: SnapshotRecord): Promise<DependentDisk[]> {
    const live: DependentDisk[] = [];
    for (const id of record.dependents) {
      const disk = await this.readDisk(id);
      const fromThis = disk?.source?.kind === 'snapshot' && disk.source.snapshotId === record.id;
      // named by their CSI ids, as the PVs' volumeHandles show them to the user
      if (disk && fromThis) {
        live.push({ id: qualifiedId(id, this.nodeId), creating: disk.state === 'creating' });
      }
    }
    return live;
  }

  async getSnapshot(snapshotId: string): Promise<Snapshot | undefined> {
    const name = this.own('snapshot', snapshotId, 'FAILED_PRECONDITION', 'describe');
    if (name === undefined) return undefined;
    const record = await this.readSnapshot(name);
    return record?.state === 'ready' ? this.toSnapshot(record) : undefined;
  }

  async listSnapshots(options: SnapshotListOptions): Promise<Page<Snapshot>> {
    const records = await this.readAll<SnapshotRecord>(this.layout.snapshots, (id) =>
      this.readSnapshot(id),
    );
    // Snapshots of a volume of another node, or of an id no volume has: none here.
    const location =
      options.sourceVolumeId === undefined
        ? undefined
        : locateId(options.sourceVolumeId, this.nodeId);
    const snapshots = records
      .filter((r) => r.state === 'ready')
      .filter(
        (r) =>
          location === undefined ||
          (location.where === 'here' && r.sourceVolumeId === location.name),
      )
      .map((r) => this.toSnapshot(r));
    return paginate(snapshots, (s) => s.id, options);
  }

  // ---- group snapshots ----

  async createGroupSnapshot(request: CreateGroupSnapshotRequest): Promise<GroupSnapshot> {
    const id = checkName('group snapshot', request.name);
    rejectParameters('group snapshot class', request.parameters);
    const sources = request.sourceVolumeIds.map((volumeId) => {
      const name = this.own('volume', volumeId, 'FAILED_PRECONDITION', 'snapshot');
      if (name === undefined) throw notFound(`source volume ${volumeId} does not exist`);
      return name;
    });
    const twice = sources.filter((name, i) => sources.indexOf(name) !== i);
    if (twice.length > 0) {
      throw invalidArgument(
        `source_volume_ids names volume ${this.idOf(twice[0]!)} more than once`,
      );
    }
    const members = groupMembers(id, sources);
    // Besides the group's own mutex, its members' names: a CreateSnapshot of such a name must
    // not race with the group's copy.
    const keys = [
      `create-delete/group/${id}`,
      ...members.map((m) => `create-delete/snapshot/${m.snapshotId}`).sort(),
    ];
    return this.withAll(keys, () => this.createGroupCopies(id, request.forceDelete, members));
  }

  private async createGroupCopies(
    id: string,
    forceDelete: boolean,
    members: GroupMember[],
  ): Promise<GroupSnapshot> {
    const sources = members.map((m) => m.sourceVolumeId);
    const existing = await this.readGroup(id);
    // "deleting" is a deletion an I/O error cut short: finish it, then cut anew.
    if (existing?.state === 'deleting') await this.removeGroup(existing);
    else if (existing) {
      checkExistingGroup(existing, sources, forceDelete);
      if (existing.state === 'ready') return this.toGroupSnapshot(existing);
    }
    const disks: DiskRecord[] = [];
    for (const member of members) {
      const disk = await this.readDisk(member.sourceVolumeId);
      if (!disk || disk.state !== 'ready') {
        throw notFound(`source volume ${this.idOf(member.sourceVolumeId)} does not exist`);
      }
      const taken = await this.readSnapshot(member.snapshotId);
      if (taken && taken.groupSnapshotId !== id) {
        throw alreadyExists(
          `snapshot ${this.idOf(member.snapshotId)}, the name of this group's member for volume ` +
            `${this.idOf(disk.id)}, is taken by another snapshot; use another group name`,
        );
      }
      disks.push(disk);
    }
    const images = disks.map((d) => this.layout.diskImage(d.id));
    const mountPoints: string[] = [];
    for (const image of images) {
      const mountPoint = await this.mountPointOf(image);
      if (mountPoint !== undefined && !mountPoints.includes(mountPoint)) {
        mountPoints.push(mountPoint);
      }
    }
    // One order for every group, so two groups sharing volumes freeze them alike.
    mountPoints.sort();
    const record: GroupSnapshotRecord = {
      id,
      members,
      state: 'creating',
      forceDelete,
      creationTime: this.clock.now().toISOString(),
      ...(mountPoints.length > 0 && { frozenMounts: mountPoints }),
    };
    await this.writeGroup(record);
    const pending: SnapshotRecord[] = members.map((member, i) => ({
      id: member.snapshotId,
      sourceVolumeId: member.sourceVolumeId,
      sizeBytes: disks[i]!.capacityBytes,
      state: 'creating',
      forceDelete,
      creationTime: record.creationTime,
      dependents: [],
      groupSnapshotId: id,
    }));
    for (const snapshot of pending) await this.writeSnapshot(snapshot);

    const tmps = members.map((m) => this.layout.tmpFile('snapshot', m.snapshotId));
    const frozen: string[] = [];
    let frozenAt = 0;
    let frozenSeconds: number | undefined;
    const thawAll = async (): Promise<void> => {
      if (frozen.length > 0 && frozenSeconds === undefined) {
        frozenSeconds = Math.round(performance.now() - frozenAt) / 1000;
      }
      while (frozen.length > 0) await this.thaw(frozen.pop()!);
    };
    let cutAt: Date;
    const copies: CopyResult[] = [];
    try {
      for (const mountPoint of mountPoints) {
        await this.run('fsfreeze', ['--freeze', mountPoint]);
        frozen.push(mountPoint);
      }
      frozenAt = performance.now();
      cutAt = this.clock.now();
      // Every file system stays frozen until the last image has been read.
      for (const [i, image] of images.entries()) {
        const last = i === images.length - 1;
        copies.push(
          await copySparse(this.run, image, tmps[i]!, last ? { sourceRead: thawAll } : {}),
        );
      }
      await thawAll();
      for (const [i, member] of members.entries()) {
        await renameDurably(tmps[i]!, this.layout.snapshotImage(member.snapshotId));
      }
    } catch (error) {
      await thawAll();
      for (const tmp of tmps) await rm(tmp, { force: true });
      await this.removeGroup(record);
      throw error;
    } finally {
      await thawAll();
    }
    for (const [i, snapshot] of pending.entries()) {
      await this.writeSnapshot({
        ...snapshot,
        state: 'ready',
        creationTime: cutAt.toISOString(),
        checksum: copies[i]!.checksum,
        dataBytes: copies[i]!.dataBytes,
      });
    }
    const ready: GroupSnapshotRecord = {
      ...record,
      state: 'ready',
      creationTime: cutAt.toISOString(),
    };
    delete ready.frozenMounts;
    await this.writeGroup(ready);
    this.logger.info('group snapshot created', {
      groupSnapshot: id,
      members: members.map((m) => `${m.snapshotId}<-${m.sourceVolumeId}`),
      frozen: mountPoints,
      ...(frozenSeconds !== undefined && { frozenSeconds }),
      copySeconds: Math.round(copies.reduce((sum, c) => sum + c.copySeconds, 0) * 1000) / 1000,
      forceDelete,
    });
    return this.toGroupSnapshot(ready);
  }

  async deleteGroupSnapshot(groupSnapshotId: string): Promise<void> {
    const name = this.own('group snapshot', groupSnapshotId, 'FAILED_PRECONDITION', 'delete');
    if (name === undefined) return;
    await this.mutex.with(`create-delete/group/${name}`, async () => {
      const record = await this.readGroup(name);
      if (!record) return;
      const keys = record.members
        .flatMap((m) => [`create-delete/snapshot/${m.snapshotId}`, `snapshot/${m.snapshotId}`])
        .sort();
      await this.withAll(keys, async () => {
        // Every member is checked before any goes: a group is deleted whole or not at all.
        const blockers: string[] = [];
        for (const member of record.members) {
          const snapshot = await this.readSnapshot(member.snapshotId);
          if (!snapshot) continue;
          const dependents = await this.liveDependents(snapshot);
          const blocker = snapshotDeletionBlocker(
            this.idOf(member.snapshotId),
            record.forceDelete,
            dependents,
          );
          if (blocker) blockers.push(blocker);
        }
        if (blockers.length > 0) {
          throw failedPrecondition(
            `group snapshot ${groupSnapshotId} is in use: ${blockers.join('; ')}`,
          );
        }
        await this.writeGroup({ ...record, state: 'deleting' });
        await this.removeGroup(record);
      });
      this.logger.info('group snapshot deleted', {
        groupSnapshot: name,
        members: record.members.map((m) => m.snapshotId),
        forceDelete: record.forceDelete,
      });
    });
  }

  async getGroupSnapshot(groupSnapshotId: string): Promise<GroupSnapshot | undefined> {
    const name = this.own('group snapshot', groupSnapshotId, 'FAILED_PRECONDITION', 'describe');
    if (name === undefined) return undefined;
    const record = await this.readGroup(name);
    return record?.state === 'ready' ? this.toGroupSnapshot(record) : undefined;
  }

  /** Members first, then the group's record: a group record always accounts for its members. */
  private async removeGroup(record: GroupSnapshotRecord): Promise<void> {
    for (const member of record.members) {
      const snapshot = await this.readSnapshot(member.snapshotId);
      if (snapshot && snapshot.groupSnapshotId !== record.id) continue;
      await removeDurably(this.layout.snapshotMeta(member.snapshotId));
      await removeDurably(this.layout.snapshotImage(member.snapshotId));
    }
    await removeDurably(this.layout.groupMeta(record.id));
  }

  private async toGroupSnapshot(record: GroupSnapshotRecord): Promise<GroupSnapshot> {
    const members: SnapshotRecord[] = [];
    for (const member of record.members) {
      const snapshot = await this.readSnapshot(member.snapshotId);
      if (snapshot?.groupSnapshotId === record.id) members.push(snapshot);
    }
    return toGroupSnapshot(record, members, this.nodeId);
  }

  // ---- freezing ----

  /**
   * Copies an image with the file system mounted from it (if any) frozen while it is read, so
   * the copy is consistent: thawed as soon as the last block is read, before the copy is
   * flushed, and in any case when the copy ends.
   */
  private async copyFrozen(
    source: string,
    target: string,
    mountPoint: string | undefined,
    options: CopyOptions,
  ): Promise<FrozenCopy> {
    if (!mountPoint) return copySparse(this.run, source, target, options);
    await this.run('fsfreeze', ['--freeze', mountPoint]);
    const frozenAt = performance.now();
    let frozenSeconds: number | undefined;
    const thaw = async (): Promise<void> => {
      if (frozenSeconds !== undefined) return;
      frozenSeconds = Math.round(performance.now() - frozenAt) / 1000;
      await this.thaw(mountPoint);
    };
    try {
      const copied = await copySparse(this.run, source, target, { ...options, sourceRead: thaw });
      return { ...copied, frozenSeconds };
    } finally {
      await thaw();
    }
  }

  /** Where the file system on `image` is mounted on this node (its first mount), if it is. */
  private async mountPointOf(image: string): Promise<string | undefined> {
    const devices = await loopDevicesOf(this.run, image);
    if (devices.length === 0) return undefined;
    const mounts = await this.readMounts();
    return mounts.find((m) => devices.includes(m.source) && m.root === '/')?.mountPoint;
  }

  private async thaw(mountPoint: string): Promise<void> {
    try {
      await this.run('fsfreeze', ['--unfreeze', mountPoint]);
    } catch (error) {
      // "Invalid argument" means it was not frozen (any more): nothing to undo.
      this.logger.debug('thaw skipped', { mountPoint, error: errorMessage(error) });
    }
  }

  // ---- ids ----

  private own(
    kind: ObjectKind,
    id: string,
    code: DiskErrorCode,
    action: string,
  ): string | undefined {
    return ownName(kind, id, this.nodeId, code, action);
  }

  /** The CSI id of this node's volume or snapshot `name`. */
  private idOf(name: string): string {
    return qualifiedId(name, this.nodeId);
  }

  private toVolume(record: DiskRecord): Volume {
    return toVolume(record, this.nodeId, this.topology);
  }

  private toSnapshot(record: SnapshotRecord): Snapshot {
    return toSnapshot(record, this.nodeId);
  }

  // ---- records ----

  private readDisk(id: string): Promise<DiskRecord | undefined> {
    return readJson<DiskRecord>(this.layout.diskMeta(id));
  }

  private writeDisk(record: DiskRecord): Promise<void> {
    return writeFileAtomic(this.layout.diskMeta(record.id), `${JSON.stringify(record, null, 2)}\n`);
  }

  private readSnapshot(id: string): Promise<SnapshotRecord | undefined> {
    return readJson<SnapshotRecord>(this.layout.snapshotMeta(id));
  }

  private writeSnapshot(record: SnapshotRecord): Promise<void> {
    return writeFileAtomic(
      this.layout.snapshotMeta(record.id),
      `${JSON.stringify(record, null, 2)}\n`,
    );
  }

  private readGroup(id: string): Promise<GroupSnapshotRecord | undefined> {
    return readJson<GroupSnapshotRecord>(this.layout.groupMeta(id));
  }

  private writeGroup(record: GroupSnapshotRecord): Promise<void> {
    return writeFileAtomic(
      this.layout.groupMeta(record.id),
      `${JSON.stringify(record, null, 2)}\n`,
    );
  }

  /** Holds the mutexes of all `keys` (taken in the order given) while `section` runs. */
  private withAll<T>(keys: string[], section: () => Promise<T>): Promise<T> {
    const [first, ...rest] = keys;
    if (first === undefined) return section();
    return this.mutex.with(first, () => this.withAll(rest, section));
  }

  /** Read-modify-write of a snapshot record under its mutex; `change` may throw to abort. */
  private async updateSnapshot(
    id: string,
    change: (record: SnapshotRecord | undefined) => SnapshotRecord | undefined,
  ): Promise<void> {
    await this.mutex.with(`snapshot/${id}`, async () => {
      const updated = change(await this.readSnapshot(id));
      if (updated) await this.writeSnapshot(updated);
    });
  }

  private async readAll<T>(
    dir: string,
    read: (id: string) => Promise<T | undefined>,
  ): Promise<T[]> {
    const records: T[] = [];
    for (const id of await metaIds(dir)) {
      const record = await read(id);
      if (record) records.push(record);
    }
    return records;
  }
}

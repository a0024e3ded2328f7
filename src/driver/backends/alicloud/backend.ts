import type { Logger } from '../../../observability/logger.js';
import {
  snapshotDeletionBlocker,
  type BackendCapabilities,
  type CreateGroupSnapshotRequest,
  type CreateSnapshotRequest,
  type CreateVolumeRequest,
  type DiskBackend,
  type ExpandVolumeRequest,
  type ExpandVolumeResult,
  type GroupSnapshot,
  type ListOptions,
  type Page,
  type Snapshot,
  type SnapshotListOptions,
  type Volume,
} from '../../backend.js';
import {
  DiskError,
  aborted,
  alreadyExists,
  failedPrecondition,
  invalidArgument,
  notFound,
  outOfRange,
  unavailable,
} from '../../../csi/errors.js';
import { clientToken } from './client-token.js';
import { DiskSnapshotSlots } from './disk-slots.js';
import {
  EcsError,
  type CreateSnapshotInput,
  type EcsApi,
  type EcsDisk,
  type EcsSnapshot,
  type EcsSnapshotGroup,
} from './ecs.js';
import { diskErrorFromEcs, rethrowEcs } from './ecs-errors.js';
import {
  GiB,
  chooseZone,
  creatorValue,
  defaultSnapshotGroupLimits,
  describeCategory,
  diskSizeGiB,
  diskSpec,
  groupSizeProblem,
  groupSnapshotSpec,
  isRegional,
  ownerTags,
  recordedForceDelete,
  snapshotGroupName,
  snapshotGroupProblem,
  snapshotSpec,
  tagKeys,
  validSnapshotName,
  zoneTopologyKey,
  type Category,
  type SnapshotGroupLimits,
} from './parameters.js';
import { SnapshotPoller, type PollerOptions } from './snapshot-poller.js';

export const driverName = 'diskplugin.csi.alibabacloud.com';

export interface Waits {
  /** How long CreateSnapshot waits for ECS to cut the snapshot before the CO is told to retry. */
  cutMs: number;
  /** How long a snapshot waits for the disk's previous snapshot to finish. */
  diskBusyMs: number;
  /** How long DeleteVolume retries a disk that is still being created. */
  diskInitializingMs: number;
  /** How long a snapshot is tracked until ECS reports it finished. */
  trackMs: number;
}

export const defaultWaits: Waits = {
  cutMs: 30_000,
  diskBusyMs: 20_000,
  diskInitializingMs: 30_000,
  trackMs: 24 * 3600_000,
};

export interface AlicloudBackendOptions {
  /** Already rate-limited and retrying. */
  api: EcsApi;
  regionId: string;
  /** Zone for disks whose request names none. */
  defaultZone: string;
  clusterId?: string;
  vendorVersion: string;
  logger: Logger;
  poller?: Partial<Omit<PollerOptions, 'logger'>>;
  waits?: Partial<Waits>;
  /** ECS's limits on one snapshot-consistent group; defaultSnapshotGroupLimits when absent. */
  groupSnapshotLimits?: SnapshotGroupLimits;
  /** Called by close(), e.g. to stop the rate limiter. */
  onClose?: () => void;
}

interface KnownSnapshot {
  id: string;
  diskId: string;
  /** The CreateSnapshot request, to tell a repeated call from a conflicting one. */
  fingerprint: string;
}

/** ECS codes that mean "no such snapshot/disk" (a malformed id cannot exist either). */
const snapshotAbsent = new Set(['InvalidSnapshotId.NotFound', 'InvalidSnapshotId.Malformed']);
const groupAbsent = new Set(['InvalidSnapshotGroup.NotFound']);
const diskAbsent = new Set(['InvalidDiskId.NotFound', 'InvalidDiskId.Malformed']);

/** CreateDisk codes after which the next category in the StorageClass's list is tried. */
const categoryUnavailable = new Set([
  'InvalidDiskCategory.NotSupported',
  'InvalidDiskCategory.ValueNotSupported',
  'InvalidDataDiskCategory.NotSupported',
  'Zone.NotOnSale',
  'OperationDenied.NoStock',
]);

const pageLimit = 100;

function pageSize(maxEntries: number): number {
  return maxEntries > 0 ? Math.min(maxEntries, pageLimit) : pageLimit;
}

function isCut(snapshot: EcsSnapshot): boolean {
  return snapshot.creationTime !== '';
}

export function toSnapshot(s: EcsSnapshot): Snapshot {
  return {
    id: s.id,
    sourceVolumeId: s.sourceDiskId,
    sizeBytes: s.sourceDiskSizeGiB * GiB,
    creationTime: new Date(s.creationTime),
    readyToUse: s.available,
  };
}

function volumeContext(c: Category): Record<string, string> {
  return c.performanceLevel
    ? { type: c.category, performanceLevel: c.performanceLevel }
    : { type: c.category };
}

export function toVolume(d: EcsDisk): Volume {
  return {
    id: d.id,
    capacityBytes: d.sizeGiB * GiB,
    context: volumeContext({
      category: d.category,
      performanceLevel: d.performanceLevel || undefined,
    }),
    source: d.sourceSnapshotId ? { kind: 'snapshot', snapshotId: d.sourceSnapshotId } : undefined,
    accessibleTopology: d.zoneId ? [{ [zoneTopologyKey]: d.zoneId }] : [],
  };
}

/** The same CSI name again: the same disks and forceDelete, or ALREADY_EXISTS. */
function checkSameGroup(request: CreateGroupSnapshotRequest, existing: EcsSnapshotGroup): void {
  const had = existing.members.map((m) => m.sourceDiskId).sort();
  const wanted = [...request.sourceVolumeIds].sort();
  if (had.join('\n') !== wanted.join('\n')) {
    throw alreadyExists(
      `group snapshot name ${request.name} is already used by ECS snapshot group ${existing.id} of disks ${had.join(', ')}, not ${wanted.join(', ')}`,
    );
  }
  const forceDelete = recordedForceDelete(existing.tags);
  if (forceDelete !== request.forceDelete) {
    throw alreadyExists(
      `group snapshot name ${request.name} is already used by ECS snapshot group ${existing.id}, made with forceDelete=${forceDelete}, not ${request.forceDelete}`,
    );
  }
}

/** ECS cloud disks and snapshots, under the driver name ACK's disk plugin uses. */
export class AlicloudBackend implements DiskBackend {
  readonly driverName = driverName;
  readonly vendorVersion: string;
  readonly capabilities: BackendCapabilities = {
    accessModes: ['SINGLE_NODE_WRITER', 'SINGLE_NODE_SINGLE_WRITER', 'SINGLE_NODE_READER_ONLY'],
    accessTypes: ['mount', 'block'],
    fsTypes: ['ext4', 'xfs', 'ext3'],
    cloneVolume: false,
    onlineExpansion: true,
  };
  readonly topologyKeys = [zoneTopologyKey];

  private readonly api: EcsApi;
  private readonly poller: SnapshotPoller;
  private readonly slots = new DiskSnapshotSlots();
  private readonly known = new Map<string, KnownSnapshot>();
  private readonly waits: Waits;
  private readonly groupLimits: SnapshotGroupLimits;
  private readonly logger: Logger;
  private closed = false;

  constructor(private readonly options: AlicloudBackendOptions) {
    this.api = options.api;
    this.vendorVersion = options.vendorVersion;
    this.logger = options.logger;
    this.waits = { ...defaultWaits, ...options.waits };
    this.groupLimits = options.groupSnapshotLimits ?? defaultSnapshotGroupLimits;
    this.poller = new SnapshotPoller(this.api, {
      intervalMs: 1000,
      batchWindowMs: 20,
      ...options.poller,
      logger: this.logger,
    });
  }

  async probe(): Promise<boolean> {
    return !this.closed;
  }

  /**
   * One cheap call at start-up: credentials ECS rejects, or a region it does not know, stop
   * the driver with ECS's reason. A transient failure only warns; calls will retry.
   */
  async verifyAccess(): Promise<void> {
    try {
      await this.api.describeDisks({ tags: ownerTags(this.options.clusterId), maxResults: 1 });
    } catch (error) {
      if (!(error instanceof EcsError)) throw error;
      const mapped = diskErrorFromEcs(error, `checking access to ECS in ${this.options.regionId}`);
      if (mapped.code === 'UNAVAILABLE') {
        this.logger.warn('ECS is not reachable yet; calls will retry', { error: mapped.message });
        return;
      }
      throw new Error(mapped.message, { cause: error });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.poller.close();
    this.options.onClose?.();
  }

  // ---- snapshots ----

  async createSnapshot(request: CreateSnapshotRequest): Promise<Snapshot> {
    const spec = snapshotSpec({ ...request, clusterId: this.options.clusterId });
    if (spec.ignored.length > 0) {
      this.logger.warn('VolumeSnapshotClass parameters ignored: ECS no longer uses them', {
        name: request.name,
        parameters: spec.ignored,
      });
    }
    const input: CreateSnapshotInput = {
      diskId: request.sourceVolumeId,
      clientToken: clientToken(request.name),
      snapshotName: validSnapshotName(request.name) ? request.name : undefined,
      retentionDays: spec.retentionDays,
      resourceGroupId: spec.resourceGroupId,
      tags: spec.tags,
    };
    const fingerprint = JSON.stringify(input);
    const known = this.known.get(request.name);
    if (known && known.fingerprint !== fingerprint) {
      throw alreadyExists(
        `snapshot name ${request.name} is already used by ${known.id} of volume ${known.diskId}, with other parameters`,
      );
    }
    if (known) {
      const current = await this.currentState(known.id);
      if (current) return this.untilCut(request.name, current);
      this.known.delete(request.name);
    }
    const id = await this.createEcsSnapshot(request.name, input);
    this.known.set(request.name, { id, diskId: input.diskId, fingerprint });
    return this.untilCut(request.name, undefined, id);
  }

  /** CreateSnapshot in the disk's slot; the slot is kept until ECS finishes the snapshot. */
  private async createEcsSnapshot(name: string, input: CreateSnapshotInput): Promise<string> {
    const release = await this.slots.acquire(input.diskId, this.waits.diskBusyMs);
    const what = `creating snapshot ${name} of disk ${input.diskId}`;
    let id: string;
    try {
      ({ snapshotId: id } = await this.api.createSnapshot(input).catch(async (error: unknown) => {
        // A disk still being created cannot be snapshotted yet: wait for it, then try again.
        if (!(error instanceof EcsError) || error.code !== 'IncorrectDiskStatus') throw error;
        const disk = await this.untilDiskSettled(input.diskId, what);
        if (disk?.status !== 'Available' && disk?.status !== 'In_use') throw error;
        return this.api.createSnapshot(input);
      }));
    } catch (error) {
      release();
      return rethrowEcs(what)(error);
    }
    this.logger.info('ECS snapshot requested', { name, snapshot: id, disk: input.diskId });
    void this.poller
      .watch(id, (s) => !s || s.status !== 'progressing', this.waits.trackMs)
      .then(({ snapshot }) => {
        release();
        if (snapshot?.status === 'failed') {
          this.logger.warn('ECS snapshot failed', { name, snapshot: id, disk: input.diskId });
        }
      });
    return id;
  }

  /** The snapshot once ECS has cut it (it has a creation time); `id` when nothing is known yet. */
  private async untilCut(
    name: string,
    current: EcsSnapshot | undefined,
    id = current?.id ?? '',
  ): Promise<Snapshot> {
    let snapshot = current;
    if (!snapshot || !isCut(snapshot)) {
      const result = await this.poller.watch(id, (s) => !s || isCut(s), this.waits.cutMs);
      if (!result.satisfied)
        throw aborted(`ECS has not cut snapshot ${id} (${name}) yet; retry later`);
      snapshot = result.snapshot;
    }
    if (!snapshot) {
      this.known.delete(name);
      throw new DiskError(
        'INTERNAL',
        `ECS snapshot ${id}, made for ${name}, no longer exists (deleted outside the driver?); ` +
          'ECS ties the name to that snapshot, so create the VolumeSnapshot under a new name',
      );
    }
    if (snapshot.status === 'failed') {
      throw new DiskError(
        'INTERNAL',
        `ECS reports snapshot ${snapshot.id} (${name}) failed; delete it and snapshot again`,
      );
    }
    return toSnapshot(snapshot);
  }

  /** From the poller when it is tracking the snapshot (no call), else one batched lookup. */
  private async currentState(id: string): Promise<EcsSnapshot | undefined> {
    const tracked = this.poller.latest(id);
    if (tracked) return tracked.snapshot;
    return this.poller.lookup(id).catch(rethrowEcs(`looking up snapshot ${id}`));
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    const what = `deleting snapshot ${snapshotId}`;
    const snapshot = await this.poller.lookup(snapshotId).catch(rethrowEcs(what));
    if (!snapshot) {
      this.forget(snapshotId);
      return;
    }
    const groupId = await this.groupOf(snapshot, what);
    if (groupId) {
      throw invalidArgument(
        `snapshot ${snapshotId} is a member of group snapshot ${groupId} and cannot be deleted alone; ` +
          'delete the group (DeleteVolumeGroupSnapshot)',
      );
    }
    const dependents = await this.dependentDisks(snapshotId).catch(rethrowEcs(what));
    // Force only matters when disks were made from the snapshot; without any seen, ECS's own
    // SnapshotCreatedDisk check guards against one created since.
    let force = false;
    if (dependents.length > 0) {
      const blocker = snapshotDeletionBlocker(
        snapshotId,
        recordedForceDelete(snapshot.tags),
        dependents.map((d) => ({
          id: d.id,
          creating: d.status === 'Creating' || d.status === 'ReIniting',
        })),
      );
      if (blocker) {
        this.logger.info('snapshot deletion refused', { snapshot: snapshotId, reason: blocker });
        throw failedPrecondition(blocker);
      }
      force = true;
    }
    try {
      await this.api.deleteSnapshot({ snapshotId, force });
    } catch (error) {
      if (!(error instanceof EcsError)) throw error;
      if (!snapshotAbsent.has(error.code)) throw diskErrorFromEcs(error, what);
    }
    this.forget(snapshotId);
    this.logger.info('ECS snapshot deleted', { snapshot: snapshotId, force });
  }

  /**
   * The id of this driver's group that the snapshot is a member of. ECS tags no member, and
   * every single snapshot this driver makes carries its creator tag, so only an untagged
   * snapshot costs a look through the groups (DescribeSnapshotGroups, all pages).
   */
  private async groupOf(snapshot: EcsSnapshot, what: string): Promise<string | undefined> {
    if (snapshot.tags[tagKeys.creator] === creatorValue) return undefined;
    let nextToken: string | undefined;
    do {
      const page = await this.api
        .describeSnapshotGroups({
          tags: ownerTags(this.options.clusterId),
          maxResults: pageLimit,
          nextToken,
        })
        .catch(rethrowEcs(what));
      const group = page.items.find((g) => g.members.some((m) => m.snapshotId === snapshot.id));
      if (group) return group.id;
      nextToken = page.nextToken;
    } while (nextToken);
    return undefined;
  }

  private forget(snapshotId: string): void {
    for (const [name, known] of this.known) if (known.id === snapshotId) this.known.delete(name);
  }

  /** Every disk ECS reports as created from the snapshot, over all pages. */
  private async dependentDisks(snapshotId: string): Promise<EcsDisk[]> {
    const disks: EcsDisk[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.api.describeDisks({ snapshotId, maxResults: pageLimit, nextToken });
      disks.push(...page.items.filter((d) => d.sourceSnapshotId === snapshotId));
      nextToken = page.nextToken;
    } while (nextToken);
    return disks;
  }

  async getSnapshot(snapshotId: string): Promise<Snapshot | undefined> {
    const current = await this.currentState(snapshotId);
    if (!current) return undefined;
    const snapshot = await this.untilCut(current.name || snapshotId, current);
    const groupSnapshotId = await this.groupOf(current, `looking up snapshot ${snapshotId}`);
    return groupSnapshotId ? { ...snapshot, groupSnapshotId } : snapshot;
  }

  async listSnapshots(options: SnapshotListOptions): Promise<Page<Snapshot>> {
    const page = await this.api
      .describeSnapshots({
        diskId: options.sourceVolumeId,
        tags: ownerTags(this.options.clusterId),
        maxResults: pageSize(options.maxEntries),
        nextToken: options.startingToken,
      })
      .catch((error: unknown) => this.pageError(error, options, 'listing snapshots'));
    return { entries: page.items.filter(isCut).map(toSnapshot), nextToken: page.nextToken };
  }

  private pageError(error: unknown, options: ListOptions, what: string): never {
    if (error instanceof EcsError && /NextToken/.test(error.code)) {
      throw aborted(`starting_token "${options.startingToken}" was not issued by this driver`);
    }
    return rethrowEcs(what)(error);
  }

  // ---- snapshot-consistent groups ----

  /**
   * One ECS snapshot-consistent group per CSI name, found again by its ECS name (derived from
   * the CSI name) and made with a ClientToken derived from it. The rules ECS applies to the
   * disks are checked first, so a refusal names the disk and the rule.
   */
  async createGroupSnapshot(request: CreateGroupSnapshotRequest): Promise<GroupSnapshot> {
    const spec = groupSnapshotSpec({ ...request, clusterId: this.options.clusterId });
    if (spec.ignored.length > 0) {
      this.logger.warn('VolumeGroupSnapshotClass parameters ignored: ECS no longer uses them', {
        name: request.name,
        parameters: spec.ignored,
      });
    }
    const diskIds = request.sourceVolumeIds;
    const what = `creating group snapshot ${request.name} of disks ${diskIds.join(', ')}`;
    const ecsName = snapshotGroupName(request.name);
    const existing = await this.findGroup(ecsName, what);
    if (existing) {
      checkSameGroup(request, existing);
      if (existing.status === 'failed') return this.removeFailedGroup(request.name, existing);
      return this.untilGroupCut(request.name, existing);
    }
    const tooMany = groupSizeProblem(diskIds, this.groupLimits);
    if (tooMany) throw tooMany;
    const page = await this.api
      .describeDisks({ diskIds, maxResults: pageLimit })
      .catch(rethrowEcs(what));
    const missing = diskIds.filter((id) => !page.items.some((d) => d.id === id));
    if (missing.length > 0) throw notFound(`source volumes ${missing.join(', ')} do not exist`);
    const disks = diskIds.map((id) => page.items.find((d) => d.id === id)!);
    const problem = snapshotGroupProblem(disks, this.groupLimits);
    if (problem) throw problem;
    const creating = disks.filter((d) => d.status === 'Creating').map((d) => d.id);
    if (creating.length > 0) {
      throw aborted(`${what}: disks ${creating.join(', ')} are still being created; retry later`);
    }
    const id = await this.createEcsGroup(request.name, disks, {
      diskIds,
      clientToken: clientToken(request.name),
      name: ecsName,
      resourceGroupId: spec.resourceGroupId,
      tags: spec.tags,
    });
    const group = await this.describeGroup(id, what);
    if (group?.status === 'failed') return this.removeFailedGroup(request.name, group);
    if (!group) {
      throw new DiskError(
        'INTERNAL',
        `ECS snapshot group ${id}, made for ${request.name}, no longer exists (deleted outside the driver?); ` +
          'ECS ties the name to that group, so create the VolumeGroupSnapshot under a new name',
      );
    }
    return this.untilGroupCut(request.name, group);
  }

  /**
   * CreateSnapshotGroup while holding every member disk's snapshot slot (taken in id order,
   * so two groups sharing disks cannot deadlock); each slot is kept until ECS finishes that
   * disk's member snapshot, as for a single snapshot.
   */
  private async createEcsGroup(
    name: string,
    disks: EcsDisk[],
    input: Parameters<EcsApi['createSnapshotGroup']>[0],
  ): Promise<string> {
    const what = `creating group snapshot ${name} of disks ${input.diskIds.join(', ')}`;
    const releases = new Map<string, () => void>();
    const releaseAll = () => {
      for (const release of releases.values()) release();
    };
    let id: string;
    try {
      for (const diskId of [...input.diskIds].sort()) {
        releases.set(diskId, await this.slots.acquire(diskId, this.waits.diskBusyMs));
      }
      ({ snapshotGroupId: id } = await this.api.createSnapshotGroup(input));
    } catch (error) {
      releaseAll();
      if (error instanceof EcsError && error.code === 'IncorrectDiskStatus.NeverAttached') {
        const never = disks.filter((d) => !d.everAttached).map((d) => d.id);
        throw failedPrecondition(
          `${what}: ECS snapshots only disks that have been attached to an instance` +
            (never.length > 0 ? `, and ${never.join(', ')} never were` : '') +
            `; mount the volumes in a pod first (ECS: ${error.describe()})`,
        );
      }
      return rethrowEcs(what)(error);
    }
    this.logger.info('ECS snapshot group requested', {
      name,
      snapshotGroup: id,
      disks: input.diskIds,
    });
    void this.releaseWhenMembersFinish(id, releases);
    return id;
  }

  private async releaseWhenMembersFinish(
    groupId: string,
    releases: Map<string, () => void>,
  ): Promise<void> {
    try {
      const group = await this.describeGroup(groupId, `tracking snapshot group ${groupId}`);
      await Promise.all(
        (group?.members ?? []).map(async (member) => {
          const { snapshot } = await this.poller.watch(
            member.snapshotId,
            (s) => !s || s.status !== 'progressing',
            this.waits.trackMs,
          );
          releases.get(member.sourceDiskId)?.();
          if (snapshot?.status === 'failed') {
            this.logger.warn('ECS group member snapshot failed', {
              snapshotGroup: groupId,
              snapshot: member.snapshotId,
              disk: member.sourceDiskId,
            });
          }
        }),
      );
    } catch (error) {
      this.logger.warn('lost track of an ECS snapshot group; its disks take snapshots again', {
        snapshotGroup: groupId,
        error: error instanceof Error ? error.message : String(error),
      });
    } finally {
      for (const release of releases.values()) release();
    }
  }

  /**
   * A failed group whose id the CO never got is deleted, as CSI asks, so no member snapshot
   * leaks; ECS ties the name's ClientToken to it, so the create fails for good.
   */
  private async removeFailedGroup(name: string, group: EcsSnapshotGroup): Promise<never> {
    await this.api.deleteSnapshotGroup({ snapshotGroupId: group.id }).catch((error: unknown) => {
      if (!(error instanceof EcsError) || !groupAbsent.has(error.code)) {
        return rethrowEcs(`deleting failed snapshot group ${group.id} (${name})`)(error);
      }
    });
    this.logger.warn('ECS snapshot group failed and was deleted', {
      name,
      snapshotGroup: group.id,
    });
    throw new DiskError(
      'INTERNAL',
      `ECS reports snapshot group ${group.id} (${name}) failed; it was deleted, so create the VolumeGroupSnapshot again under a new name`,
    );
  }

  /** The group once ECS has cut every member (each has a creation time). */
  private async untilGroupCut(name: string, group: EcsSnapshotGroup): Promise<GroupSnapshot> {
    if (group.status === 'failed') {
      throw new DiskError(
        'INTERNAL',
        `ECS reports snapshot group ${group.id} (${name}) failed; delete it and create the group snapshot again`,
      );
    }
    const members = await Promise.all(
      group.members.map(async ({ snapshotId }) => {
        const current = await this.currentState(snapshotId);
        if (current && isCut(current)) return current;
        const result = await this.poller.watch(snapshotId, (s) => !s || isCut(s), this.waits.cutMs);
        if (!result.satisfied) {
          throw aborted(
            `ECS has not cut snapshot ${snapshotId} of group ${group.id} (${name}) yet; retry later`,
          );
        }
        return result.snapshot;
      }),
    );
    return {
      id: group.id,
      // A member deleted meanwhile is no longer part of the group.
      snapshots: members
        .filter((s): s is EcsSnapshot => s !== undefined)
        .map((s) => ({ ...toSnapshot(s), groupSnapshotId: group.id })),
      creationTime: new Date(group.creationTime),
      readyToUse: group.status === 'accomplished',
    };
  }

  private async findGroup(ecsName: string, what: string): Promise<EcsSnapshotGroup | undefined> {
    const page = await this.api
      .describeSnapshotGroups({ name: ecsName, tags: ownerTags(this.options.clusterId) })
      .catch(rethrowEcs(what));
    return page.items.find((g) => g.name === ecsName);
  }

  private async describeGroup(id: string, what: string): Promise<EcsSnapshotGroup | undefined> {
    try {
      const page = await this.api.describeSnapshotGroups({ snapshotGroupIds: [id] });
      return page.items.find((g) => g.id === id);
    } catch (error) {
      if (error instanceof EcsError && groupAbsent.has(error.code)) return undefined;
      return rethrowEcs(what)(error);
    }
  }

  async getGroupSnapshot(groupSnapshotId: string): Promise<GroupSnapshot | undefined> {
    const group = await this.describeGroup(
      groupSnapshotId,
      `looking up group snapshot ${groupSnapshotId}`,
    );
    return group ? this.untilGroupCut(group.name || groupSnapshotId, group) : undefined;
  }

  /**
   * A group goes whole or not at all: every member is checked (forceDelete as recorded on
   * the group, images) before DeleteSnapshotGroup. ECS keeps the members disks were made
   * from, since that call has no Force; with forceDelete they are then deleted with Force.
   */
  async deleteGroupSnapshot(groupSnapshotId: string): Promise<void> {
    const what = `deleting group snapshot ${groupSnapshotId}`;
    const group = await this.describeGroup(groupSnapshotId, what);
    if (!group) return;
    const forceDelete = recordedForceDelete(group.tags);
    const blockers: string[] = [];
    for (const { snapshotId } of group.members) {
      const snapshot = await this.poller.lookup(snapshotId).catch(rethrowEcs(what));
      if (!snapshot) continue;
      if (snapshot.usage === 'image' || snapshot.usage === 'image_disk') {
        blockers.push(
          `a custom image was created from member snapshot ${snapshotId}; delete the image first`,
        );
      }
      const dependents = await this.dependentDisks(snapshotId).catch(rethrowEcs(what));
      const blocker = snapshotDeletionBlocker(
        snapshotId,
        forceDelete,
        dependents.map((d) => ({
          id: d.id,
          creating: d.status === 'Creating' || d.status === 'ReIniting',
        })),
      );
      if (blocker) blockers.push(blocker);
    }
    if (blockers.length > 0) {
      const message = `group snapshot ${groupSnapshotId} is in use: ${blockers.join('; ')}`;
      this.logger.info('group snapshot deletion refused', {
        snapshotGroup: groupSnapshotId,
        reason: message,
      });
      throw failedPrecondition(message);
    }
    let kept: { snapshotId: string; code: string; message: string }[];
    try {
      ({ kept } = await this.api.deleteSnapshotGroup({ snapshotGroupId: groupSnapshotId }));
    } catch (error) {
      if (error instanceof EcsError && groupAbsent.has(error.code)) return;
      return rethrowEcs(what)(error);
    }
    const left: string[] = [];
    for (const member of kept) {
      if (member.code === 'SnapshotCreatedDisk' && forceDelete) {
        await this.deleteForced(member.snapshotId, what);
      } else {
        left.push(`${member.snapshotId} (${member.code}: ${member.message})`);
      }
    }
    if (left.length > 0) {
      // Only a disk or image made from a member after the checks above lands here.
      const message =
        `${what}: ECS deleted the group but kept member snapshots ${left.join(', ')}; ` +
        'they are ordinary snapshots now: delete what was made from them, then the snapshots';
      this.logger.warn('ECS kept group member snapshots', {
        snapshotGroup: groupSnapshotId,
        kept: left,
      });
      throw failedPrecondition(message);
    }
    this.logger.info('ECS snapshot group deleted', {
      snapshotGroup: groupSnapshotId,
      members: group.members.map((m) => m.snapshotId),
      forceDelete,
    });
  }

  private async deleteForced(snapshotId: string, what: string): Promise<void> {
    try {
      await this.api.deleteSnapshot({ snapshotId, force: true });
    } catch (error) {
      if (!(error instanceof EcsError)) throw error;
      if (!snapshotAbsent.has(error.code)) throw diskErrorFromEcs(error, what);
    }
  }

  // ---- volumes ----

  async createVolume(request: CreateVolumeRequest): Promise<Volume> {
    if (request.source?.kind === 'volume') {
      throw invalidArgument(
        'ECS disks cannot be cloned from another disk; snapshot it and restore the snapshot',
      );
    }
    const spec = diskSpec({ ...request, clusterId: this.options.clusterId });
    let sourceSizeGiB: number | undefined;
    const snapshotId = request.source?.kind === 'snapshot' ? request.source.snapshotId : undefined;
    if (snapshotId) {
      let snapshot = await this.currentState(snapshotId);
      if (!snapshot) throw notFound(`snapshot ${snapshotId} does not exist`);
      if (!snapshot.available) {
        const waited = await this.poller.watch(
          snapshotId,
          (s) => !s || s.available,
          this.waits.cutMs,
        );
        if (!waited.snapshot) throw notFound(`snapshot ${snapshotId} does not exist`);
        snapshot = waited.snapshot;
      }
      if (!snapshot.available) {
        throw unavailable(
          `snapshot ${snapshotId} cannot be restored from yet (ECS: ${snapshot.status} ${snapshot.progress})`,
        );
      }
      sourceSizeGiB = snapshot.sourceDiskSizeGiB;
    }
    const fitting: { category: Category; sizeGiB: number; index: number }[] = [];
    let sizeProblem: DiskError | undefined;
    spec.candidates.forEach((category, index) => {
      try {
        fitting.push({
          category,
          index,
          sizeGiB: diskSizeGiB({ ...request, sourceSizeGiB, category }),
        });
      } catch (error) {
        if (!(error instanceof DiskError)) throw error;
        sizeProblem ??= error;
      }
    });
    if (fitting.length === 0)
      throw sizeProblem ?? outOfRange('no disk category fits the requested size');
    const zonal = fitting.some((f) => !isRegional(f.category.category));
    const zone = zonal
      ? chooseZone({
          accessibility: request.accessibility,
          classZones: spec.zones,
          defaultZone: this.options.defaultZone,
        })
      : '';
    const what = `creating disk ${request.name}${snapshotId ? ` from snapshot ${snapshotId}` : ''}`;
    let lastError: EcsError | undefined;
    for (const { category, sizeGiB, index } of fitting) {
      const regional = isRegional(category.category);
      try {
        const { diskId } = await this.api.createDisk({
          // The first category keeps the plain name's token; others get their own.
          clientToken: clientToken(
            index === 0 ? request.name : `${request.name}/${describeCategory(category)}`,
          ),
          zoneId: regional ? undefined : zone,
          category: category.category,
          performanceLevel: category.performanceLevel,
          sizeGiB,
          snapshotId,
          encrypted: spec.encrypted,
          kmsKeyId: spec.kmsKeyId,
          resourceGroupId: spec.resourceGroupId,
          diskName: request.name,
          tags: spec.tags,
        });
        this.logger.info('ECS disk created', {
          name: request.name,
          disk: diskId,
          category: describeCategory(category),
          sizeGiB,
          zone: regional ? undefined : zone,
          snapshot: snapshotId,
        });
        return {
          id: diskId,
          capacityBytes: sizeGiB * GiB,
          context: volumeContext(category),
          source: request.source,
          accessibleTopology: regional ? [] : [{ [zoneTopologyKey]: zone }],
        };
      } catch (error) {
        if (error instanceof EcsError && categoryUnavailable.has(error.code)) {
          this.logger.info('disk category unavailable, trying the next', {
            name: request.name,
            category: describeCategory(category),
            code: error.code,
          });
          lastError = error;
          continue;
        }
        return rethrowEcs(what)(error);
      }
    }
    throw diskErrorFromEcs(lastError!, what);
  }

  async deleteVolume(volumeId: string): Promise<void> {
    const what = `deleting disk ${volumeId}`;
    const remove = () => this.api.deleteDisk({ diskId: volumeId });
    try {
      await remove().catch(async (error: unknown) => {
        if (!(error instanceof EcsError) || error.code !== 'IncorrectDiskStatus.Initializing')
          throw error;
        if (!(await this.untilDiskSettled(volumeId, what))) return;
        await remove();
      });
    } catch (error) {
      if (error instanceof EcsError && diskAbsent.has(error.code)) return;
      return rethrowEcs(what)(error);
    }
    this.logger.info('ECS disk deleted', { disk: volumeId });
  }

  private async describeDisk(diskId: string, what: string): Promise<EcsDisk | undefined> {
    const page = await this.api.describeDisks({ diskIds: [diskId] }).catch(rethrowEcs(what));
    return page.items.find((d) => d.id === diskId);
  }

  /**
   * The disk once it has left Creating (undefined if it does not exist); ABORTED when it is
   * still being created after `diskInitializingMs`, so the CO retries later.
   */
  private async untilDiskSettled(diskId: string, what: string): Promise<EcsDisk | undefined> {
    const deadline = Date.now() + this.waits.diskInitializingMs;
    for (let attempt = 0; ; attempt++) {
      const disk = await this.describeDisk(diskId, what);
      if (disk?.status !== 'Creating') return disk;
      const delay = Math.min(5000, 250 * 2 ** attempt);
      if (Date.now() + delay > deadline)
        throw aborted(`${what}: disk ${diskId} is still being created; retry later`);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  async getVolume(volumeId: string): Promise<Volume | undefined> {
    const disk = await this.describeDisk(volumeId, `looking up disk ${volumeId}`);
    return disk ? toVolume(disk) : undefined;
  }

  async listVolumes(options: ListOptions): Promise<Page<Volume>> {
    const page = await this.api
      .describeDisks({
        tags: ownerTags(this.options.clusterId),
        maxResults: pageSize(options.maxEntries),
        nextToken: options.startingToken,
      })
      .catch((error: unknown) => this.pageError(error, options, 'listing disks'));
    return { entries: page.items.map(toVolume), nextToken: page.nextToken };
  }

  async expandVolume(request: ExpandVolumeRequest): Promise<ExpandVolumeResult> {
    const what = `expanding disk ${request.volumeId}`;
    const disk = await this.untilDiskSettled(request.volumeId, what);
    if (!disk) throw notFound(`disk ${request.volumeId} does not exist`);
    const volume = toVolume(disk);
    const sizeGiB = Math.ceil(request.requiredBytes / GiB);
    if (request.limitBytes > 0 && sizeGiB * GiB > request.limitBytes) {
      throw outOfRange(
        `ECS sizes disks in whole GiB: ${sizeGiB} GiB exceeds the limit of ${request.limitBytes} bytes`,
      );
    }
    if (sizeGiB * GiB <= volume.capacityBytes) {
      return {
        capacityBytes: volume.capacityBytes,
        nodeExpansionRequired: request.capability?.access.type !== 'block',
      };
    }
    await this.api
      .resizeDisk({
        diskId: request.volumeId,
        newSizeGiB: sizeGiB,
        online: true,
        clientToken: clientToken(`${request.volumeId}/${sizeGiB}`),
      })
      .catch(rethrowEcs(what));
    return {
      capacityBytes: sizeGiB * GiB,
      nodeExpansionRequired: request.capability?.access.type !== 'block',
    };
  }
}

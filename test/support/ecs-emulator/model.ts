import { randomBytes } from 'node:crypto';
import { EcsApiError, invalidParameter, missingParameter } from './errors.js';

/**
 * The ECS resources the disk driver touches (disks, snapshots, snapshot-consistent groups,
 * instances) and the documented rules for them. Status transitions are computed from timestamps on every read, so nothing
 * runs in the background and a test controls how long each phase lasts.
 */

export interface Timings {
  /** From CreateSnapshot until the snapshot is cut (CreationTime is set). */
  snapshotCutMs: number;
  /** From the cut until an ESSD-family snapshot is usable (instant access). */
  instantAccessMs: number;
  /** From CreateSnapshot until Status is accomplished (Progress 100%). */
  snapshotAccomplishMs: number;
  /** From CreateDisk until the disk leaves Creating. */
  diskCreateMs: number;
}

export interface ModelOptions {
  /** Region id -> its zone ids. */
  regions: Record<string, string[]>;
  timings: Timings;
  /** Manual snapshots a disk may have (the documented quota). */
  snapshotQuotaPerDisk: number;
  /**
   * ECS refuses to snapshot a disk that was never attached. csi-sanity snapshots blank volumes
   * it never attaches (attachment belongs to the node plugin), so its runs relax this.
   */
  snapshotNeverAttachedDisks: boolean;
  /** How many disks, and how many GiB in all, one snapshot-consistent group may hold. */
  snapshotGroupLimits?: SnapshotGroupLimits;
  now: () => number;
}

export interface SnapshotGroupLimits {
  maxDisks: number;
  maxTotalGiB: number;
}

/**
 * CreateSnapshotGroup: "up to 16 disks ... and cannot exceed 32 TiB" (API reference). The user
 * guide raises this to 128 disks and 256 TiB in a list of regions; tests that need that pass
 * their own limits.
 */
export const defaultSnapshotGroupLimits: SnapshotGroupLimits = { maxDisks: 16, maxTotalGiB: 32768 };

export const defaultTimings: Timings = {
  snapshotCutMs: 200,
  instantAccessMs: 300,
  snapshotAccomplishMs: 1500,
  diskCreateMs: 300,
};

export interface Tag {
  key: string;
  value: string;
}

export interface Disk {
  id: string;
  regionId: string;
  zoneId: string;
  category: string;
  performanceLevel?: string;
  sizeGiB: number;
  name?: string;
  description?: string;
  sourceSnapshotId?: string;
  encrypted: boolean;
  kmsKeyId?: string;
  resourceGroupId?: string;
  tags: Tag[];
  createdAt: number;
  /** When the disk leaves Creating; Infinity while a test holds it there. */
  readyAt: number;
  instanceId?: string;
  everAttached: boolean;
  attachedAt?: number;
  detachedAt?: number;
}

export interface Snapshot {
  id: string;
  regionId: string;
  name?: string;
  description?: string;
  sourceDiskId: string;
  sourceDiskSizeGiB: number;
  sourceDiskCategory: string;
  retentionDays?: number;
  resourceGroupId?: string;
  tags: Tag[];
  requestedAt: number;
  cutAt: number;
  availableAt: number;
  accomplishedAt: number;
  /** Set when a test fails the snapshot (through its group); the status is then failed. */
  failedAt?: number;
  usedByImage: boolean;
  /** The instance the source disk was attached to when the snapshot was requested. */
  sourceInstanceId?: string;
}

export interface SnapshotGroup {
  id: string;
  regionId: string;
  name?: string;
  description?: string;
  resourceGroupId?: string;
  tags: Tag[];
  createdAt: number;
  /** Member snapshot ids, in the order the disks were given. */
  snapshotIds: string[];
  failed: boolean;
}

export interface Instance {
  id: string;
  regionId: string;
  zoneId: string;
}

export type Params = Record<string, string>;
export type Body = Record<string, unknown>;

/** Minimum and maximum size in GiB by category (and ESSD performance level). */
const sizeLimits: Record<string, [number, number]> = {
  cloud: [5, 2000],
  cloud_efficiency: [20, 32768],
  cloud_ssd: [20, 32768],
  'cloud_essd:PL0': [1, 65536],
  'cloud_essd:PL1': [20, 65536],
  'cloud_essd:PL2': [461, 65536],
  'cloud_essd:PL3': [1261, 65536],
  cloud_auto: [1, 65536],
  cloud_essd_entry: [10, 32768],
  cloud_regional_disk_auto: [10, 65536],
  cloud_essd_xc0: [40, 65536],
  cloud_essd_xc1: [40, 65536],
};

/** Categories whose snapshots become usable right after the cut (instant access). */
const instantAccessCategories = new Set([
  'cloud_essd',
  'cloud_auto',
  'cloud_essd_entry',
  'cloud_regional_disk_auto',
  'cloud_essd_xc0',
  'cloud_essd_xc1',
]);

const regionalCategories = new Set(['cloud_regional_disk_auto']);

/**
 * The disks a snapshot-consistent group takes: ESSD, ESSD AutoPL and ESSD Entry (API
 * reference), and Regional ESSDs, which the user guide adds, only together with other
 * Regional ESSDs.
 */
const snapshotGroupCategories = new Set([
  'cloud_essd',
  'cloud_auto',
  'cloud_essd_entry',
  'cloud_regional_disk_auto',
]);

const SNAPSHOT_GROUP_STATUSES = ['progressing', 'accomplished', 'failed'];

/** Name: 2 to 128 characters, starts with a letter, letters, digits and . _ - : only. */
const snapshotGroupName = /^[A-Za-z][\w.:-]{1,127}$/;

function newId(prefix: string): string {
  return `${prefix}-${randomBytes(10).toString('hex')}`;
}

export function ecsTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function parseTags(params: Params): Tag[] {
  const tags: Tag[] = [];
  for (let n = 1; params[`Tag.${n}.Key`] !== undefined; n++) {
    const key = params[`Tag.${n}.Key`] ?? '';
    if (!key) throw invalidParameter(`Tag.${n}.Key`, 'a tag key must not be empty');
    tags.push({ key, value: params[`Tag.${n}.Value`] ?? '' });
  }
  if (tags.length > 20) throw invalidParameter('Tag', 'at most 20 tags are allowed');
  return tags;
}

function tagBody(tags: Tag[]): Body {
  return { Tag: tags.map((t) => ({ TagKey: t.key, TagValue: t.value })) };
}

function matchesTags(tags: Tag[], wanted: Tag[]): boolean {
  return wanted.every((w) =>
    tags.some((t) => t.key === w.key && (!w.value || t.value === w.value)),
  );
}

function parseIdList(params: Params, name: string): string[] | undefined {
  const raw = params[name];
  if (raw === undefined || raw === '') return undefined;
  let ids: unknown;
  try {
    ids = JSON.parse(raw);
  } catch {
    throw new EcsApiError(
      400,
      `Invalid${name}.Malformed`,
      `The specified parameter "${name}" is not a JSON array.`,
    );
  }
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
    throw new EcsApiError(
      400,
      `Invalid${name}.Malformed`,
      `The specified parameter "${name}" is not a JSON array of strings.`,
    );
  }
  if (ids.length > 100) {
    throw new EcsApiError(
      400,
      `Invalid${name}.Malformed`,
      `The specified parameter "${name}" holds more than 100 ids.`,
    );
  }
  return ids as string[];
}

/**
 * A repeated parameter (`DiskId.1`, `DiskId.2`, ...) in the order of N. N counts up from 1
 * to at most `max`; a gap, an empty value or a repeated value is refused.
 */
function indexedParams(params: Params, name: string, max: number): string[] {
  const pattern = new RegExp(`^${name}\\.(\\d+)$`);
  const entries = Object.entries(params)
    .flatMap(([key, value]) => {
      const match = pattern.exec(key);
      return match ? [{ n: Number(match[1]), value }] : [];
    })
    .sort((a, b) => a.n - b.n);
  entries.forEach(({ n, value }, index) => {
    if (n > max) throw invalidParameter(`${name}.${n}`, `N runs from 1 to at most ${max}`);
    if (n !== index + 1) {
      throw invalidParameter(`${name}.${n}`, `N must count up from 1 without gaps`);
    }
    if (!value) throw invalidParameter(`${name}.${n}`, 'the value must not be empty');
  });
  const values = entries.map((e) => e.value);
  const repeated = values.find((v, i) => values.indexOf(v) !== i);
  // No documented code for a repeated id; InvalidParameter is ECS's general one.
  if (repeated) throw invalidParameter(name, `"${repeated}" is given more than once`);
  return values;
}

function intParam(params: Params, name: string, min: number, max: number): number | undefined {
  const raw = params[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidParameter(name, `expected an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function boolParam(params: Params, name: string): boolean | undefined {
  const raw = params[name];
  if (raw === undefined || raw === '') return undefined;
  if (raw !== 'true' && raw !== 'false')
    throw invalidParameter(name, `expected true or false, got "${raw}"`);
  return raw === 'true';
}

function required(params: Params, name: string): string {
  const value = params[name];
  if (value === undefined || value === '') throw missingParameter(name);
  return value;
}

/** MaxResults/NextToken pages, or the older PageNumber/PageSize pages when neither is sent. */
function paginate<T>(
  items: T[],
  params: Params,
  maxResultsLimit: number,
): { page: T[]; meta: Body } {
  if (params.NextToken !== undefined || params.MaxResults !== undefined) {
    const size = intParam(params, 'MaxResults', 1, maxResultsLimit) ?? 10;
    let start = 0;
    if (params.NextToken) {
      start = Number(Buffer.from(params.NextToken, 'base64url').toString());
      if (!Number.isInteger(start) || start < 0) {
        throw new EcsApiError(
          400,
          'InvalidNextToken.Malformed',
          'The specified NextToken is not valid.',
        );
      }
    }
    const page = items.slice(start, start + size);
    const more = start + size < items.length;
    return {
      page,
      meta: {
        NextToken: more ? Buffer.from(String(start + size)).toString('base64url') : '',
        TotalCount: items.length,
      },
    };
  }
  const pageNumber = intParam(params, 'PageNumber', 1, 1_000_000) ?? 1;
  const pageSize = intParam(params, 'PageSize', 1, 100) ?? 10;
  return {
    page: items.slice((pageNumber - 1) * pageSize, pageNumber * pageSize),
    meta: { PageNumber: pageNumber, PageSize: pageSize, TotalCount: items.length },
  };
}

export class EcsModel {
  readonly disks = new Map<string, Disk>();
  readonly snapshots = new Map<string, Snapshot>();
  readonly instances = new Map<string, Instance>();
  readonly snapshotGroups = new Map<string, SnapshotGroup>();
  /** While true, new disks stay Creating until released. */
  holdDiskCreation = false;

  constructor(readonly options: ModelOptions) {}

  private now(): number {
    return this.options.now();
  }

  // ---- derived state ----

  diskStatus(disk: Disk): string {
    if (this.now() < disk.readyAt) return 'Creating';
    return disk.instanceId ? 'In_use' : 'Available';
  }

  snapshotStatus(snapshot: Snapshot): 'progressing' | 'accomplished' | 'failed' {
    if (snapshot.failedAt !== undefined) return 'failed';
    return this.now() < snapshot.accomplishedAt ? 'progressing' : 'accomplished';
  }

  private snapshotProgress(snapshot: Snapshot): string {
    if (this.snapshotStatus(snapshot) === 'accomplished') return '100%';
    const at = snapshot.failedAt ?? this.now();
    const span = snapshot.accomplishedAt - snapshot.requestedAt;
    const done = Math.floor((100 * (at - snapshot.requestedAt)) / span);
    return `${Math.min(99, Math.max(0, done))}%`;
  }

  private snapshotAvailable(snapshot: Snapshot): boolean {
    return snapshot.failedAt === undefined && this.now() >= snapshot.availableAt;
  }

  /** A group is accomplished once every member is, and failed as soon as one member fails. */
  snapshotGroupStatus(group: SnapshotGroup): 'progressing' | 'accomplished' | 'failed' {
    if (group.failed) return 'failed';
    const members = this.groupMembers(group);
    if (members.some((s) => this.snapshotStatus(s) === 'failed')) return 'failed';
    return members.every((s) => this.snapshotStatus(s) === 'accomplished')
      ? 'accomplished'
      : 'progressing';
  }

  /** The members that still exist (DeleteSnapshot may have removed some). */
  private groupMembers(group: SnapshotGroup): Snapshot[] {
    return group.snapshotIds.flatMap((id) => this.snapshots.get(id) ?? []);
  }

  /** Disks that exist now and were created from the snapshot. */
  dependents(snapshotId: string): Disk[] {
    return [...this.disks.values()].filter((d) => d.sourceSnapshotId === snapshotId);
  }

  private snapshotUsage(snapshot: Snapshot): string {
    const disk = this.dependents(snapshot.id).length > 0;
    if (snapshot.usedByImage) return disk ? 'image_disk' : 'image';
    return disk ? 'disk' : 'none';
  }

  private region(params: Params): string {
    const regionId = required(params, 'RegionId');
    if (!this.options.regions[regionId]) {
      throw new EcsApiError(
        404,
        'InvalidRegionId.NotFound',
        `The specified RegionId "${regionId}" does not exist.`,
      );
    }
    return regionId;
  }

  private disk(id: string): Disk {
    const disk = this.disks.get(id);
    if (!disk)
      throw new EcsApiError(
        404,
        'InvalidDiskId.NotFound',
        `The specified disk "${id}" does not exist.`,
      );
    return disk;
  }

  private hasProgressingSnapshot(diskId: string): boolean {
    return [...this.snapshots.values()].some(
      (s) => s.sourceDiskId === diskId && this.snapshotStatus(s) === 'progressing',
    );
  }

  // ---- seeding, for tests and demos ----

  addInstance(regionId: string, zoneId: string): Instance {
    const instance = { id: newId('i'), regionId, zoneId };
    this.instances.set(instance.id, instance);
    return instance;
  }

  /** A disk that already exists (already Available), optionally attached to an instance. */
  addDisk(spec: {
    regionId: string;
    zoneId: string;
    sizeGiB: number;
    category?: string;
    performanceLevel?: string;
    instanceId?: string;
    sourceSnapshotId?: string;
    tags?: Tag[];
  }): Disk {
    const instance = spec.instanceId ? this.instances.get(spec.instanceId) : undefined;
    if (spec.instanceId && !instance) throw new Error(`no instance ${spec.instanceId}`);
    const now = this.now();
    const disk: Disk = {
      id: newId('d'),
      regionId: spec.regionId,
      zoneId: spec.zoneId,
      category: spec.category ?? 'cloud_essd',
      performanceLevel:
        spec.performanceLevel ??
        ((spec.category ?? 'cloud_essd') === 'cloud_essd' ? 'PL1' : undefined),
      sizeGiB: spec.sizeGiB,
      sourceSnapshotId: spec.sourceSnapshotId,
      encrypted: false,
      tags: spec.tags ?? [],
      createdAt: now,
      readyAt: now,
      instanceId: instance?.id,
      everAttached: instance !== undefined,
      attachedAt: instance ? now : undefined,
    };
    this.disks.set(disk.id, disk);
    return disk;
  }

  /** Releases disks held in Creating (all of them, or the ones named). */
  releaseDisks(ids?: string[]): void {
    for (const disk of this.disks.values()) {
      if (disk.readyAt === Infinity && (!ids || ids.includes(disk.id))) disk.readyAt = this.now();
    }
  }

  markUsedByImage(snapshotId: string, used = true): void {
    const snapshot = this.snapshots.get(snapshotId);
    if (!snapshot) throw new Error(`no snapshot ${snapshotId}`);
    snapshot.usedByImage = used;
  }

  /** Fails a snapshot-consistent group, and with it each member not yet accomplished. */
  failSnapshotGroup(groupId: string): void {
    const group = this.snapshotGroups.get(groupId);
    if (!group) throw new Error(`no snapshot group ${groupId}`);
    group.failed = true;
    for (const snapshot of this.groupMembers(group)) {
      if (this.snapshotStatus(snapshot) === 'progressing') snapshot.failedAt = this.now();
    }
  }

  // ---- API actions: each takes the decoded query and returns the body without RequestId ----

  CreateSnapshot(params: Params): Body {
    const disk = this.disk(required(params, 'DiskId'));
    const blocked = this.snapshotBlocker(disk);
    if (blocked) throw blocked;
    const name = params.SnapshotName;
    if (
      name !== undefined &&
      (!/^[A-Za-z\u4e00-\u9fa5][\w.:\-\u4e00-\u9fa5]{1,127}$/.test(name) ||
        /^(auto|https?:\/\/)/.test(name))
    ) {
      throw new EcsApiError(
        400,
        'InvalidSnapshotName.Malformed',
        'The specified snapshot name is not valid.',
      );
    }
    const snapshot = this.newSnapshot(disk, this.now(), {
      name,
      description: params.Description,
      retentionDays: intParam(params, 'RetentionDays', 1, 65536),
      resourceGroupId: params.ResourceGroupId,
      tags: parseTags(params),
    });
    this.snapshots.set(snapshot.id, snapshot);
    return { SnapshotId: snapshot.id };
  }

  /** Why ECS would refuse to snapshot the disk now, if it would. */
  private snapshotBlocker(disk: Disk): EcsApiError | undefined {
    if (this.diskStatus(disk) === 'Creating') {
      return new EcsApiError(
        403,
        'IncorrectDiskStatus',
        'The current disk status does not support this operation.',
      );
    }
    if (!disk.everAttached && !this.options.snapshotNeverAttachedDisks) {
      return new EcsApiError(
        403,
        'IncorrectDiskStatus.NeverAttached',
        'The specified disk has never been attached to any instance.',
      );
    }
    if (this.hasProgressingSnapshot(disk.id)) {
      return new EcsApiError(
        403,
        'IncorrectDiskStatus.CreatingSnapshot',
        'A snapshot is being created for the disk.',
      );
    }
    const count = [...this.snapshots.values()].filter((s) => s.sourceDiskId === disk.id).length;
    if (count >= this.options.snapshotQuotaPerDisk) {
      return new EcsApiError(
        403,
        'QuotaExceed.Snapshot',
        `The disk already has ${count} snapshots, the maximum allowed.`,
      );
    }
    return undefined;
  }

  private newSnapshot(
    disk: Disk,
    requestedAt: number,
    fields: Pick<Snapshot, 'name' | 'description' | 'retentionDays' | 'resourceGroupId' | 'tags'>,
  ): Snapshot {
    const { snapshotCutMs, instantAccessMs, snapshotAccomplishMs } = this.options.timings;
    const cutAt = requestedAt + snapshotCutMs;
    const accomplishedAt = Math.max(cutAt, requestedAt + snapshotAccomplishMs);
    return {
      id: newId('s'),
      regionId: disk.regionId,
      ...fields,
      sourceDiskId: disk.id,
      sourceDiskSizeGiB: disk.sizeGiB,
      sourceDiskCategory: disk.category,
      sourceInstanceId: disk.instanceId,
      requestedAt,
      cutAt,
      availableAt: instantAccessCategories.has(disk.category)
        ? Math.min(accomplishedAt, cutAt + instantAccessMs)
        : accomplishedAt,
      accomplishedAt,
      usedByImage: false,
    };
  }

  DescribeSnapshots(params: Params): Body {
    const regionId = this.region(params);
    const ids = parseIdList(params, 'SnapshotIds');
    const wantedTags = parseTags(params);
    const status = params.Status && params.Status !== 'all' ? params.Status : undefined;
    const matches = [...this.snapshots.values()].filter(
      (s) =>
        s.regionId === regionId &&
        (!ids || ids.includes(s.id)) &&
        (!params.DiskId || s.sourceDiskId === params.DiskId) &&
        (!params.SnapshotName || s.name === params.SnapshotName) &&
        (!status || this.snapshotStatus(s) === status) &&
        (!params.Usage || this.snapshotUsage(s) === params.Usage) &&
        matchesTags(s.tags, wantedTags),
    );
    const { page, meta } = paginate(matches, params, 100);
    return { ...meta, Snapshots: { Snapshot: page.map((s) => this.snapshotBody(s)) } };
  }

  private snapshotBody(s: Snapshot): Body {
    const now = this.now();
    return {
      SnapshotId: s.id,
      SnapshotName: s.name ?? '',
      Description: s.description ?? '',
      RegionId: s.regionId,
      SourceDiskId: s.sourceDiskId,
      SourceDiskSize: String(s.sourceDiskSizeGiB),
      SourceDiskType: 'data',
      SourceStorageType: 'disk',
      Category: 'standard',
      SnapshotType: 'user',
      Status: this.snapshotStatus(s),
      Progress: this.snapshotProgress(s),
      CreationTime: now >= s.cutAt ? ecsTime(s.cutAt) : '',
      LastModifiedTime: ecsTime(Math.min(now, s.accomplishedAt)),
      Available: this.snapshotAvailable(s),
      InstantAccess: instantAccessCategories.has(s.sourceDiskCategory),
      Usage: this.snapshotUsage(s),
      RetentionDays: s.retentionDays ?? 0,
      ResourceGroupId: s.resourceGroupId ?? '',
      Encrypted: false,
      Tags: tagBody(s.tags),
    };
  }

  DeleteSnapshot(params: Params): Body {
    const id = required(params, 'SnapshotId');
    const snapshot = this.snapshots.get(id);
    if (!snapshot)
      throw new EcsApiError(
        404,
        'InvalidSnapshotId.NotFound',
        `The specified snapshot "${id}" does not exist.`,
      );
    if (snapshot.usedByImage) {
      throw new EcsApiError(
        403,
        'SnapshotCreatedImage',
        'The snapshot has been used to create a custom image and cannot be deleted.',
      );
    }
    if (this.dependents(id).length > 0 && boolParam(params, 'Force') !== true) {
      throw new EcsApiError(
        403,
        'SnapshotCreatedDisk',
        'The snapshot has been used to create disks and cannot be deleted without Force.',
      );
    }
    // Deleting a progressing snapshot cancels its creation.
    this.snapshots.delete(id);
    return {};
  }

  // ---- snapshot-consistent groups ----

  /**
   * Every rule is checked before anything is created, so a refused request leaves no member
   * snapshots behind. All members share one request time: ECS cuts them at the same instant,
   * which is what makes the group crash-consistent.
   */
  CreateSnapshotGroup(params: Params): Body {
    const regionId = this.region(params);
    const limits = this.options.snapshotGroupLimits ?? defaultSnapshotGroupLimits;
    // The disk count is checked once the disks are known (NumberExceed.TooManyDisks).
    const diskIds = indexedParams(params, 'DiskId', Infinity);
    const excluded = indexedParams(params, 'ExcludeDiskId', Infinity);
    if (diskIds.length > 0 && excluded.length > 0) {
      throw new EcsApiError(
        400,
        'InvalidParam.ExcludeDiskIdsAndDiskIds.Conflict',
        "The use of parameter 'ExcludeDiskIds' and 'DiskIds' at the same time is not supported.",
      );
    }
    const instanceId = params.InstanceId || undefined;
    if (!instanceId && diskIds.length === 0) {
      // The documented code is spelt this way.
      throw new EcsApiError(
        400,
        'MissingParamter.InstanceId',
        'The specified InstanceId should not be null (give InstanceId, or DiskId.N).',
      );
    }
    this.checkGroupText(params);
    const tags = parseTags(params);
    const duplicate = tags.find((t, i) => tags.findIndex((u) => u.key === t.key) !== i);
    if (duplicate) {
      throw new EcsApiError(
        400,
        'Duplicate.TagKey',
        `The Tag.N.Key contain duplicate key "${duplicate.key}".`,
      );
    }
    const disks = this.groupDisks(regionId, instanceId, diskIds, excluded);
    if (disks.length > limits.maxDisks) {
      throw new EcsApiError(
        403,
        'NumberExceed.TooManyDisks',
        `The request covers ${disks.length} disks; a snapshot-consistent group holds at most ${limits.maxDisks}.`,
      );
    }
    for (const disk of disks) this.checkGroupMember(disk, disks[0]!);
    const totalGiB = disks.reduce((sum, d) => sum + d.sizeGiB, 0);
    if (totalGiB > limits.maxTotalGiB) {
      throw new EcsApiError(
        403,
        'CapacityExceed.TooManyDisks',
        `The disks hold ${totalGiB} GiB in all; a snapshot-consistent group holds at most ${limits.maxTotalGiB} GiB.`,
      );
    }
    const requestedAt = this.now();
    const group: SnapshotGroup = {
      id: newId('ssg'),
      regionId,
      name: params.Name,
      description: params.Description,
      resourceGroupId: params.ResourceGroupId,
      tags,
      createdAt: requestedAt,
      snapshotIds: [],
      failed: false,
    };
    for (const disk of disks) {
      // Members carry no name, description or tags of their own (none is documented).
      const snapshot = this.newSnapshot(disk, requestedAt, {
        resourceGroupId: params.ResourceGroupId,
        tags: [],
      });
      this.snapshots.set(snapshot.id, snapshot);
      group.snapshotIds.push(snapshot.id);
    }
    this.snapshotGroups.set(group.id, group);
    return { SnapshotGroupId: group.id };
  }

  private checkGroupText(params: Params): void {
    const { Name: name, Description: description } = params;
    if (name !== undefined && !snapshotGroupName.test(name)) {
      throw new EcsApiError(
        400,
        'InvalidParameter.Name',
        `The specified Name "${name}" is invalid: 2 to 128 characters, starting with a letter, of letters, digits, ".", "_", "-" and ":".`,
      );
    }
    if (
      description !== undefined &&
      (description.length < 2 || description.length > 256 || /^https?:\/\//.test(description))
    ) {
      throw new EcsApiError(
        400,
        'InvalidParameter.Description',
        'The specified Description is invalid: 2 to 256 characters, not starting with http:// or https://.',
      );
    }
  }

  /** The disks the request names: DiskId.N, or the instance's disks less ExcludeDiskId.N. */
  private groupDisks(
    regionId: string,
    instanceId: string | undefined,
    diskIds: string[],
    excluded: string[],
  ): Disk[] {
    const inRegion = (id: string): Disk => {
      const disk = this.disks.get(id);
      if (!disk || disk.regionId !== regionId) {
        throw new EcsApiError(
          404,
          'InvalidDiskId.NotFound',
          `The specified DiskId "${id}" does not exist in ${regionId}.`,
        );
      }
      return disk;
    };
    if (!instanceId) return diskIds.map(inRegion);
    const instance = this.instances.get(instanceId);
    if (!instance || instance.regionId !== regionId) {
      throw new EcsApiError(
        404,
        'InvalidInstanceId.NotFound',
        `The specified InstanceId "${instanceId}" does not exist.`,
      );
    }
    if (diskIds.length > 0) {
      const disks = diskIds.map(inRegion);
      const elsewhere = disks.find((d) => d.instanceId !== instanceId);
      if (elsewhere) {
        // Documented as a rule, without an error code of its own.
        throw invalidParameter(
          'DiskId',
          `disk ${elsewhere.id} is not attached to ${instanceId}; with InstanceId, DiskId.N may name only that instance's disks`,
        );
      }
      return disks;
    }
    excluded.forEach(inRegion);
    const disks = [...this.disks.values()].filter(
      (d) => d.instanceId === instanceId && !excluded.includes(d.id),
    );
    if (disks.length === 0) {
      throw new EcsApiError(
        403,
        'InvalidInstance.NoDisk',
        `No disk of instance ${instanceId} is left to snapshot.`,
      );
    }
    return disks;
  }

  /** The per-disk rules, each message naming the disk. `first` sets the zone and the kind. */
  private checkGroupMember(disk: Disk, first: Disk): void {
    if (!snapshotGroupCategories.has(disk.category)) {
      throw new EcsApiError(
        400,
        'DiskCategory.OperationNotSupported',
        `Disk ${disk.id} is ${disk.category}; snapshot-consistent groups take only ${[...snapshotGroupCategories].join(', ')} disks.`,
      );
    }
    const regional = regionalCategories.has(disk.category);
    if (regional !== regionalCategories.has(first.category)) {
      throw new EcsApiError(
        403,
        'InvalidDisk.DiskCategoryInconsistent',
        `Disk ${disk.id} is ${disk.category} and disk ${first.id} ${first.category}; a Regional ESSD is grouped only with other Regional ESSDs.`,
      );
    }
    if (!regional && disk.zoneId !== first.zoneId) {
      throw new EcsApiError(
        400,
        'InvalidDiskIds.NotInSameZone',
        `The specified disks are not in the same availability zone: ${disk.id} is in ${disk.zoneId}, ${first.id} in ${first.zoneId}.`,
      );
    }
    const blocked = this.snapshotBlocker(disk);
    if (blocked) {
      throw new EcsApiError(blocked.status, blocked.code, `Disk ${disk.id}: ${blocked.message}`);
    }
  }

  DescribeSnapshotGroups(params: Params): Body {
    const regionId = this.region(params);
    const ids = indexedParams(params, 'SnapshotGroupId', 10);
    const statuses = indexedParams(params, 'Status', 3);
    const unknown = statuses.find((st) => !SNAPSHOT_GROUP_STATUSES.includes(st));
    if (unknown) {
      throw new EcsApiError(
        403,
        'InvalidStatus.ValueNotSupported',
        `The specified parameter status "${unknown}" is not valid. The expected status is progressing, accomplished or failed.`,
      );
    }
    if (params.InstanceId && !this.instances.has(params.InstanceId)) {
      throw new EcsApiError(
        404,
        'InvalidInstanceId.NotFound',
        `The InstanceId "${params.InstanceId}" provided does not exist in our records.`,
      );
    }
    const wantedTags = parseTags(params);
    const matches = [...this.snapshotGroups.values()].filter(
      (g) =>
        g.regionId === regionId &&
        (ids.length === 0 || ids.includes(g.id)) &&
        (statuses.length === 0 || statuses.includes(this.snapshotGroupStatus(g))) &&
        (!params.InstanceId || this.groupInstance(g) === params.InstanceId) &&
        (!params.Name || g.name === params.Name) &&
        (!params.ResourceGroupId || g.resourceGroupId === params.ResourceGroupId) &&
        matchesTags(g.tags, wantedTags),
    );
    // This API pages by NextToken only; without MaxResults a page holds 10.
    const { page, meta } = paginate(
      matches,
      { ...params, MaxResults: params.MaxResults ?? '10' },
      100,
    );
    return {
      NextToken: meta.NextToken,
      SnapshotGroups: { SnapshotGroup: page.map((g) => this.snapshotGroupBody(g)) },
    };
  }

  /** The instance of the group's disks, when they all were on one instance. */
  private groupInstance(group: SnapshotGroup): string {
    const instances = new Set(this.groupMembers(group).map((s) => s.sourceInstanceId ?? ''));
    return instances.size === 1 ? [...instances][0]! : '';
  }

  private snapshotGroupBody(g: SnapshotGroup): Body {
    const keyValue = (tags: Tag[]): Body => ({
      Tag: tags.map((t) => ({ Key: t.key, Value: t.value })),
    });
    return {
      SnapshotGroupId: g.id,
      Name: g.name ?? '',
      Description: g.description ?? '',
      Status: this.snapshotGroupStatus(g),
      CreationTime: ecsTime(g.createdAt),
      InstanceId: this.groupInstance(g),
      ResourceGroupId: g.resourceGroupId ?? '',
      ProgressStatus: '',
      Tags: keyValue(g.tags),
      Snapshots: {
        Snapshot: this.groupMembers(g).map((s) => ({
          SnapshotId: s.id,
          SourceDiskId: s.sourceDiskId,
          SourceDiskType: 'data',
          Progress: this.snapshotProgress(s),
          Available: this.snapshotAvailable(s),
          InstantAccess: instantAccessCategories.has(s.sourceDiskCategory),
          InstantAccessRetentionDays: 0,
          // The documented default tag: where the snapshot came from.
          Tags: keyValue(
            s.sourceInstanceId ? [{ key: 'acs:ecs:createFrom', value: s.sourceInstanceId }] : [],
          ),
        })),
      },
    };
  }

  /**
   * Deletes the group and its member snapshots. A member behind a custom image is kept, as
   * documented, and so is one that disks were created from: DeleteSnapshotGroup takes no
   * Force, and DeleteSnapshot keeps such a snapshot without it (how ECS treats those members
   * is not documented). Kept members are reported per snapshot in OperationProgressSet and
   * stay ordinary snapshots for DeleteSnapshot. Deleting a progressing group cancels it.
   */
  DeleteSnapshotGroup(params: Params): Body {
    const regionId = this.region(params);
    const id = required(params, 'SnapshotGroupId');
    const group = this.snapshotGroups.get(id);
    if (!group || group.regionId !== regionId) {
      // Documented for ModifySnapshotGroup; DeleteSnapshotGroup's page lists no not-found code.
      throw new EcsApiError(
        404,
        'InvalidSnapshotGroup.NotFound',
        `The SnapshotGroupId "${id}" provided does not exist in our records.`,
      );
    }
    const progress = this.groupMembers(group).map((snapshot) => {
      const kept = snapshot.usedByImage
        ? {
            code: 'SnapshotCreatedImage',
            message: 'The snapshot has been used to create user defined image(s).',
          }
        : this.dependents(snapshot.id).length > 0
          ? {
              code: 'SnapshotCreatedDisk',
              message:
                'The snapshot has been used to create disks; delete it with DeleteSnapshot and Force.',
            }
          : undefined;
      if (!kept) this.snapshots.delete(snapshot.id);
      return {
        // Documented: Success, or else ErrorCode and ErrorMsg; the other status value is a guess.
        OperationStatus: kept ? 'Failed' : 'Success',
        ErrorCode: kept?.code ?? '',
        ErrorMsg: kept?.message ?? '',
        RelatedItemSet: { RelatedItem: [{ Name: 'SnapshotId', Value: snapshot.id }] },
      };
    });
    this.snapshotGroups.delete(group.id);
    return { OperationProgressSet: { OperationProgress: progress } };
  }

  CreateDisk(params: Params): Body {
    const regionId = this.region(params);
    const category = params.DiskCategory || 'cloud';
    const regional = regionalCategories.has(category);
    const zoneId = params.ZoneId ?? '';
    if (!regional) {
      if (!zoneId) throw missingParameter('ZoneId');
      if (!this.options.regions[regionId]?.includes(zoneId)) {
        throw new EcsApiError(
          404,
          'InvalidZoneId.NotFound',
          `The specified zone "${zoneId}" does not exist in ${regionId}.`,
        );
      }
    }
    let performanceLevel = params.PerformanceLevel || undefined;
    if (category === 'cloud_essd') performanceLevel ??= 'PL1';
    else if (performanceLevel) {
      throw new EcsApiError(
        400,
        'InvalidPerformanceLevel.Malformed',
        `PerformanceLevel applies only to cloud_essd, not ${category}.`,
      );
    }
    const limits = sizeLimits[performanceLevel ? `${category}:${performanceLevel}` : category];
    if (!limits) {
      throw new EcsApiError(
        400,
        'InvalidDiskCategory.ValueNotSupported',
        `The disk category ${category}${performanceLevel ? ` ${performanceLevel}` : ''} is not supported.`,
      );
    }
    let sizeGiB = intParam(params, 'Size', 1, 1_000_000);
    let sourceSnapshotId: string | undefined;
    if (params.SnapshotId) {
      const snapshot = this.snapshots.get(params.SnapshotId);
      if (!snapshot || snapshot.regionId !== regionId) {
        throw new EcsApiError(
          404,
          'InvalidSnapshotId.NotFound',
          `The specified snapshot "${params.SnapshotId}" does not exist.`,
        );
      }
      if (!this.snapshotAvailable(snapshot)) {
        throw new EcsApiError(
          403,
          'InvalidSnapshotId.NotReady',
          'The specified snapshot is not ready to create disks.',
        );
      }
      sourceSnapshotId = snapshot.id;
      // Current ECS documentation: a size below the snapshot's is raised to it.
      sizeGiB = Math.max(sizeGiB ?? 0, snapshot.sourceDiskSizeGiB);
    }
    if (sizeGiB === undefined) throw missingParameter('Size');
    if (sizeGiB < limits[0]) {
      throw new EcsApiError(
        400,
        'InvalidDiskSize.TooSmall',
        `A ${category} disk must be at least ${limits[0]} GiB.`,
      );
    }
    if (sizeGiB > limits[1]) {
      throw new EcsApiError(
        400,
        'InvalidDiskSize.TooLarge',
        `A ${category} disk must be at most ${limits[1]} GiB.`,
      );
    }
    const createdAt = this.now();
    const disk: Disk = {
      id: newId('d'),
      regionId,
      zoneId: regional ? '' : zoneId,
      category,
      performanceLevel,
      sizeGiB,
      name: params.DiskName,
      description: params.Description,
      sourceSnapshotId,
      encrypted: boolParam(params, 'Encrypted') ?? false,
      kmsKeyId: params.KMSKeyId,
      resourceGroupId: params.ResourceGroupId,
      tags: parseTags(params),
      createdAt,
      readyAt: this.holdDiskCreation ? Infinity : createdAt + this.options.timings.diskCreateMs,
      everAttached: false,
    };
    this.disks.set(disk.id, disk);
    return { DiskId: disk.id, OrderId: '' };
  }

  DescribeDisks(params: Params): Body {
    const regionId = this.region(params);
    const ids = parseIdList(params, 'DiskIds');
    const wantedTags = parseTags(params);
    const matches = [...this.disks.values()].filter(
      (d) =>
        d.regionId === regionId &&
        (!ids || ids.includes(d.id)) &&
        (!params.ZoneId || d.zoneId === params.ZoneId) &&
        (!params.SnapshotId || d.sourceSnapshotId === params.SnapshotId) &&
        (!params.InstanceId || d.instanceId === params.InstanceId) &&
        (!params.Category || d.category === params.Category) &&
        (!params.Status || params.Status === 'All' || this.diskStatus(d) === params.Status) &&
        matchesTags(d.tags, wantedTags),
    );
    const { page, meta } = paginate(matches, params, 500);
    return { ...meta, Disks: { Disk: page.map((d) => this.diskBody(d)) } };
  }

  private diskBody(d: Disk): Body {
    return {
      DiskId: d.id,
      DiskName: d.name ?? '',
      Description: d.description ?? '',
      RegionId: d.regionId,
      ZoneId: d.zoneId,
      Category: d.category,
      PerformanceLevel: d.performanceLevel ?? '',
      Size: d.sizeGiB,
      Status: this.diskStatus(d),
      Type: 'data',
      SourceSnapshotId: d.sourceSnapshotId ?? '',
      InstanceId: d.instanceId ?? '',
      Encrypted: d.encrypted,
      KMSKeyId: d.kmsKeyId ?? '',
      ResourceGroupId: d.resourceGroupId ?? '',
      Portable: true,
      DeleteWithInstance: false,
      CreationTime: ecsTime(d.createdAt),
      AttachedTime: d.attachedAt ? ecsTime(d.attachedAt) : '',
      DetachedTime: d.detachedAt ? ecsTime(d.detachedAt) : '',
      Tags: tagBody(d.tags),
      Attachments: {
        Attachment: d.instanceId
          ? [{ InstanceId: d.instanceId, AttachedTime: ecsTime(d.attachedAt ?? 0), Device: '' }]
          : [],
      },
    };
  }

  DeleteDisk(params: Params): Body {
    const disk = this.disk(required(params, 'DiskId'));
    const status = this.diskStatus(disk);
    if (status === 'Creating') {
      throw new EcsApiError(
        403,
        'IncorrectDiskStatus.Initializing',
        'The specified disk has not been initialized.',
      );
    }
    if (status !== 'Available') {
      throw new EcsApiError(
        403,
        'IncorrectDiskStatus',
        `The disk is ${status}; only an Available disk can be deleted.`,
      );
    }
    this.disks.delete(disk.id);
    return {};
  }

  AttachDisk(params: Params): Body {
    const disk = this.disk(required(params, 'DiskId'));
    const instanceId = required(params, 'InstanceId');
    const instance = this.instances.get(instanceId);
    if (!instance)
      throw new EcsApiError(
        404,
        'InvalidInstanceId.NotFound',
        `The specified instance "${instanceId}" does not exist.`,
      );
    if (this.diskStatus(disk) !== 'Available') {
      throw new EcsApiError(
        403,
        'IncorrectDiskStatus',
        `The disk is ${this.diskStatus(disk)}; only an Available disk can be attached.`,
      );
    }
    if (disk.zoneId && disk.zoneId !== instance.zoneId) {
      throw new EcsApiError(
        403,
        'InstanceDiskNotSupported',
        `The disk is in ${disk.zoneId} and the instance in ${instance.zoneId}.`,
      );
    }
    disk.instanceId = instance.id;
    disk.everAttached = true;
    disk.attachedAt = this.now();
    return {};
  }

  DetachDisk(params: Params): Body {
    const disk = this.disk(required(params, 'DiskId'));
    const instanceId = required(params, 'InstanceId');
    if (disk.instanceId !== instanceId) {
      throw new EcsApiError(
        403,
        'IncorrectDiskStatus',
        `The disk is not attached to ${instanceId}.`,
      );
    }
    disk.instanceId = undefined;
    disk.detachedAt = this.now();
    return {};
  }

  ResizeDisk(params: Params): Body {
    const disk = this.disk(required(params, 'DiskId'));
    const newSize = intParam(params, 'NewSize', 1, 65536);
    if (newSize === undefined) throw missingParameter('NewSize');
    if (this.diskStatus(disk) === 'Creating') {
      throw new EcsApiError(
        403,
        'IncorrectDiskStatus',
        'The disk is Creating and cannot be resized yet.',
      );
    }
    if (this.hasProgressingSnapshot(disk.id)) {
      throw new EcsApiError(
        403,
        'IncorrectDiskStatus.CreatingSnapshot',
        'A snapshot is being created for the disk.',
      );
    }
    if (params.Type === 'offline' && disk.instanceId) {
      throw new EcsApiError(403, 'IncorrectDiskStatus', 'An offline resize needs a detached disk.');
    }
    const limits =
      sizeLimits[
        disk.performanceLevel ? `${disk.category}:${disk.performanceLevel}` : disk.category
      ];
    if (newSize <= disk.sizeGiB) {
      throw new EcsApiError(
        400,
        'InvalidDiskSize.TooSmall',
        `The new size must exceed the current ${disk.sizeGiB} GiB.`,
      );
    }
    if (limits && newSize > limits[1]) {
      throw new EcsApiError(
        400,
        'InvalidDiskSize.TooLarge',
        `A ${disk.category} disk must be at most ${limits[1]} GiB.`,
      );
    }
    disk.sizeGiB = newSize;
    return {};
  }

  /** A readable dump for the admin endpoint and test failure messages. */
  describe(): Body {
    return {
      disks: [...this.disks.values()].map((d) => this.diskBody(d)),
      snapshots: [...this.snapshots.values()].map((s) => this.snapshotBody(s)),
      snapshotGroups: [...this.snapshotGroups.values()].map((g) => this.snapshotGroupBody(g)),
      instances: [...this.instances.values()],
    };
  }
}

export const ecsActions = [
  'CreateSnapshot',
  'DescribeSnapshots',
  'DeleteSnapshot',
  'CreateSnapshotGroup',
  'DescribeSnapshotGroups',
  'DeleteSnapshotGroup',
  'CreateDisk',
  'DescribeDisks',
  'DeleteDisk',
  'AttachDisk',
  'DetachDisk',
  'ResizeDisk',
] as const;
export type EcsAction = (typeof ecsActions)[number];

/** Actions whose ClientToken makes a repeated request return the first result. */
export const idempotentActions = new Set<string>([
  'CreateSnapshot',
  'CreateSnapshotGroup',
  'CreateDisk',
  'ResizeDisk',
]);

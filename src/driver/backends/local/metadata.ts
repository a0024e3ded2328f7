/**
 * What the local backend records about each disk and snapshot, and the pure decisions made
 * from it. A record in state "creating" is a copy that has not finished (possibly cut short
 * by a crash, and then removed at the next start); it is never reported as a volume or a
 * ready snapshot, and a retried create with the same name starts it again.
 */
import { createHash } from 'node:crypto';

import type {
  CreateVolumeRequest,
  GroupSnapshot,
  Snapshot,
  Volume,
  VolumeSource,
} from '../../backend.js';
import { alreadyExists, invalidArgument, outOfRange } from '../../../csi/errors.js';
import { maxNameBytes, qualifiedId } from './layout.js';

export const diskAlignmentBytes = 4096;
/** Smaller images cannot hold a useful ext4 file system (journal, lost+found). */
export const minimumDiskBytes = 16 * 1024 * 1024;
/** The size of a blank disk when the request leaves it open. */
export const defaultDiskBytes = 1024 * 1024 * 1024;

/** Records name objects by their names under the root (`id`, sources), never by CSI ids. */
export interface DiskRecord {
  id: string;
  capacityBytes: number;
  state: 'creating' | 'ready';
  source?: VolumeSource;
  createdAt: string;
  /** Set while a cloned source's file system is frozen for the copy, so a restart can thaw it. */
  frozenMount?: string;
}

export interface SnapshotRecord {
  id: string;
  sourceVolumeId: string;
  /** The source disk's capacity when the snapshot was cut: the smallest restore. */
  sizeBytes: number;
  state: 'creating' | 'ready';
  /** The class parameter forceDelete, recorded because DeleteSnapshot carries no parameters. */
  forceDelete: boolean;
  /** Content checksum (see copy.ts), verified on every restore. */
  checksum?: string;
  /** Bytes of data the snapshot holds (its allocated size). */
  dataBytes?: number;
  creationTime: string;
  /**
   * Disks created from this snapshot. Ids are added before a restore starts and removed after
   * the disk is deleted, so after a crash the list may name a disk that no longer exists
   * (checked on use), never miss one that does.
   */
  dependents: string[];
  /** Set while the source's file system is frozen for the copy, so a restart can thaw it. */
  frozenMount?: string;
  /** The group snapshot this one is a member of: deleted with it, never alone. */
  groupSnapshotId?: string;
}

export interface GroupMember {
  /** The member snapshot's name under the root. */
  snapshotId: string;
  sourceVolumeId: string;
}

/**
 * A group snapshot: its members are snapshot records (with `groupSnapshotId` set), written
 * after this record and removed before it, so a group record always accounts for every
 * member. "creating" left by a crash is removed at the next start, "deleting" is finished.
 */
export interface GroupSnapshotRecord {
  id: string;
  /** In the order the create request named the source volumes. */
  members: GroupMember[];
  state: 'creating' | 'ready' | 'deleting';
  /** The class parameter forceDelete, recorded on every member too. */
  forceDelete: boolean;
  /** The instant every member was cut at (all file systems frozen). */
  creationTime: string;
  /** Set while the members' file systems are frozen, so a restart can thaw them. */
  frozenMounts?: string[];
}

/** Longer group names are shortened to a hash in their members' names. */
const maxGroupPrefixBytes = 100;

/**
 * The members of group `groupId` for the source volumes `sources` (names under the root), in
 * their order. A member's name depends only on the group's name and the volume's rank among
 * the sorted sources, so a retry that lists the volumes in another order finds the same
 * members; names stay within the limit for any group name.
 */
export function groupMembers(groupId: string, sources: string[]): GroupMember[] {
  const prefix =
    Buffer.byteLength(groupId) <= maxGroupPrefixBytes
      ? groupId
      : `group-${createHash('sha256').update(groupId).digest('hex').slice(0, 40)}`;
  const sorted = [...sources].sort();
  return sources.map((sourceVolumeId) => {
    const snapshotId = `${prefix}-${sorted.indexOf(sourceVolumeId)}`;
    if (Buffer.byteLength(snapshotId) > maxNameBytes) {
      throw invalidArgument(`a group snapshot of ${sources.length} volumes is too large`);
    }
    return { snapshotId, sourceVolumeId };
  });
}

/**
 * CreateVolumeGroupSnapshot for a name that is already recorded: it answers the request when
 * it holds the same set of volumes with the same forceDelete; otherwise the name is taken.
 */
export function checkExistingGroup(
  existing: GroupSnapshotRecord,
  sources: string[],
  forceDelete: boolean,
): void {
  const had = existing.members.map((m) => m.sourceVolumeId).sort();
  const wanted = [...sources].sort();
  if (had.join('\n') !== wanted.join('\n')) {
    throw alreadyExists(
      `group snapshot ${existing.id} exists for volumes ${had.join(', ')}, not ${wanted.join(', ')}`,
    );
  }
  if (existing.forceDelete !== forceDelete) {
    throw alreadyExists(
      `group snapshot ${existing.id} exists with forceDelete=${existing.forceDelete}, not ${forceDelete}`,
    );
  }
}

const roundUp = (bytes: number, unit: number): number => Math.ceil(bytes / unit) * unit;

/**
 * The size of a new disk: the request's required bytes (or the source's size, or the
 * default), at least the minimum, aligned; OUT_OF_RANGE when that cannot fit the request.
 */
export function plannedDiskBytes(
  request: Pick<CreateVolumeRequest, 'requiredBytes' | 'limitBytes'>,
  sourceBytes?: number,
): number {
  const { requiredBytes, limitBytes } = request;
  if (sourceBytes !== undefined) {
    if (requiredBytes > 0 && requiredBytes < sourceBytes) {
      throw outOfRange(
        `required_bytes ${requiredBytes} is below the source's size ${sourceBytes}; a restored disk must be at least as large as its source`,
      );
    }
    if (limitBytes > 0 && limitBytes < sourceBytes) {
      throw outOfRange(`limit_bytes ${limitBytes} is below the source's size ${sourceBytes}`);
    }
  }
  const wanted =
    requiredBytes > 0
      ? requiredBytes
      : (sourceBytes ??
        (limitBytes > 0 ? Math.min(defaultDiskBytes, limitBytes) : defaultDiskBytes));
  const size = roundUp(Math.max(wanted, minimumDiskBytes, sourceBytes ?? 0), diskAlignmentBytes);
  if (limitBytes > 0 && size > limitBytes) {
    throw outOfRange(
      `the smallest disk this backend makes for the request is ${size} bytes, above limit_bytes ${limitBytes} (minimum ${minimumDiskBytes}, multiples of ${diskAlignmentBytes})`,
    );
  }
  return size;
}

const sameSource = (a?: VolumeSource, b?: VolumeSource): boolean =>
  a?.kind === b?.kind &&
  (a?.kind !== 'snapshot' || a.snapshotId === (b as typeof a).snapshotId) &&
  (a?.kind !== 'volume' || a.volumeId === (b as typeof a).volumeId);

/**
 * CreateVolume for a name that is already recorded: the existing disk answers the request
 * when its source matches and its size is within the requested range; otherwise the name is
 * taken (ALREADY_EXISTS).
 */
export function checkExistingDisk(
  existing: DiskRecord,
  request: Pick<CreateVolumeRequest, 'requiredBytes' | 'limitBytes' | 'source'>,
): void {
  const fits =
    existing.capacityBytes >= request.requiredBytes &&
    (request.limitBytes === 0 || existing.capacityBytes <= request.limitBytes);
  if (!sameSource(existing.source, request.source)) {
    throw alreadyExists(`volume ${existing.id} exists with a different content source`);
  }
  if (!fits) {
    throw alreadyExists(
      `volume ${existing.id} exists with ${existing.capacityBytes} bytes, outside the requested range ` +
        `(required ${request.requiredBytes}, limit ${request.limitBytes || 'none'})`,
    );
  }
}

/** `sourceVolumeId` is the source's name under the root, as the record holds it. */
export function checkExistingSnapshot(existing: SnapshotRecord, sourceVolumeId: string): void {
  if (existing.groupSnapshotId !== undefined) {
    throw alreadyExists(
      `snapshot ${existing.id} exists as a member of group snapshot ${existing.groupSnapshotId}`,
    );
  }
  if (existing.sourceVolumeId !== sourceVolumeId) {
    throw alreadyExists(
      `snapshot ${existing.id} exists for volume ${existing.sourceVolumeId}, not ${sourceVolumeId}`,
    );
  }
}

/** The local backend takes no StorageClass or snapshot class parameters of its own. */
export function rejectParameters(kind: string, parameters: Record<string, string>): void {
  const keys = Object.keys(parameters);
  if (keys.length > 0) {
    throw invalidArgument(
      `unknown ${kind} parameter${keys.length > 1 ? 's' : ''} ${keys.join(', ')}: the local backend takes none` +
        (kind === 'snapshot class' ? ' besides forceDelete' : ''),
    );
  }
}

/** A source as CSI sees it: records name objects under the root, CSI by their node's ids. */
function qualifiedSource(source: VolumeSource, node: string): VolumeSource {
  return source.kind === 'snapshot'
    ? { kind: 'snapshot', snapshotId: qualifiedId(source.snapshotId, node) }
    : { kind: 'volume', volumeId: qualifiedId(source.volumeId, node) };
}

/** The volume a record describes, on `node` (its id names the node). */
export function toVolume(
  record: DiskRecord,
  node: string,
  topology: Record<string, string>,
): Volume {
  return {
    id: qualifiedId(record.id, node),
    capacityBytes: record.capacityBytes,
    context: {},
    ...(record.source && { source: qualifiedSource(record.source, node) }),
    accessibleTopology: [topology],
  };
}

export function toSnapshot(record: SnapshotRecord, node: string): Snapshot {
  return {
    id: qualifiedId(record.id, node),
    sourceVolumeId: qualifiedId(record.sourceVolumeId, node),
    sizeBytes: record.sizeBytes,
    creationTime: new Date(record.creationTime),
    readyToUse: record.state === 'ready',
    ...(record.groupSnapshotId !== undefined && {
      groupSnapshotId: qualifiedId(record.groupSnapshotId, node),
    }),
  };
}

/** A group as CSI sees it; `members` are the records of its members that exist. */
export function toGroupSnapshot(
  record: GroupSnapshotRecord,
  members: SnapshotRecord[],
  node: string,
): GroupSnapshot {
  const snapshots = members.map((m) => toSnapshot(m, node));
  return {
    id: qualifiedId(record.id, node),
    snapshots,
    creationTime: new Date(record.creationTime),
    readyToUse:
      record.state === 'ready' &&
      snapshots.length === record.members.length &&
      snapshots.every((s) => s.readyToUse),
  };
}

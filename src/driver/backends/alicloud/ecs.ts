/**
 * The slice of the ECS API the disk driver uses, as a small interface: the SDK adapter
 * (sdk-client.ts) implements it, the rate limiter (throttle.ts) wraps it, and unit tests can
 * replace it. Field names are ours; sizes are GiB as ECS counts them.
 */

export type EcsAction =
  | 'CreateSnapshot'
  | 'DescribeSnapshots'
  | 'DeleteSnapshot'
  | 'CreateDisk'
  | 'DescribeDisks'
  | 'DeleteDisk'
  | 'ResizeDisk'
  | 'CreateSnapshotGroup'
  | 'DescribeSnapshotGroups'
  | 'DeleteSnapshotGroup';

export const ecsActions: readonly EcsAction[] = [
  'CreateSnapshot',
  'DescribeSnapshots',
  'DeleteSnapshot',
  'CreateDisk',
  'DescribeDisks',
  'DeleteDisk',
  'ResizeDisk',
  'CreateSnapshotGroup',
  'DescribeSnapshotGroups',
  'DeleteSnapshotGroup',
];

export type Tags = Record<string, string>;

export interface EcsSnapshot {
  id: string;
  name: string;
  sourceDiskId: string;
  sourceDiskSizeGiB: number;
  status: string;
  progress: string;
  /** Empty until the snapshot is cut. */
  creationTime: string;
  /** Usable to create disks (ECS's `Available`). */
  available: boolean;
  /** none, disk, image or image_disk. */
  usage: string;
  tags: Tags;
}

export interface EcsDisk {
  id: string;
  zoneId: string;
  category: string;
  performanceLevel: string;
  sizeGiB: number;
  /** Creating, Available, In_use, ReIniting... */
  status: string;
  sourceSnapshotId: string;
  instanceId: string;
  /** False when ECS reports neither an attach nor a detach time: never on an instance. */
  everAttached: boolean;
  tags: Tags;
}

/** A snapshot-consistent group: snapshots of several disks cut at one instant. */
export interface EcsSnapshotGroup {
  id: string;
  name: string;
  /** progressing, accomplished or failed. */
  status: string;
  creationTime: string;
  tags: Tags;
  members: { snapshotId: string; sourceDiskId: string }[];
}

export interface EcsPage<T> {
  items: T[];
  /** Empty or absent on the last page. */
  nextToken?: string;
}

export interface CreateSnapshotInput {
  diskId: string;
  clientToken: string;
  snapshotName?: string;
  retentionDays?: number;
  resourceGroupId?: string;
  tags: Tags;
}

export interface DescribeSnapshotsInput {
  /** At most 100. */
  snapshotIds?: string[];
  diskId?: string;
  tags?: Tags;
  maxResults?: number;
  nextToken?: string;
}

export interface CreateDiskInput {
  clientToken: string;
  zoneId?: string;
  category: string;
  performanceLevel?: string;
  sizeGiB: number;
  snapshotId?: string;
  encrypted?: boolean;
  kmsKeyId?: string;
  resourceGroupId?: string;
  diskName?: string;
  tags: Tags;
}

export interface DescribeDisksInput {
  /** At most 100. */
  diskIds?: string[];
  snapshotId?: string;
  tags?: Tags;
  maxResults?: number;
  nextToken?: string;
}

export interface CreateSnapshotGroupInput {
  diskIds: string[];
  clientToken: string;
  name: string;
  resourceGroupId?: string;
  tags: Tags;
}

export interface DescribeSnapshotGroupsInput {
  /** At most 10. */
  snapshotGroupIds?: string[];
  name?: string;
  tags?: Tags;
  maxResults?: number;
  nextToken?: string;
}

/** A member DeleteSnapshotGroup left in place, with ECS's reason (e.g. SnapshotCreatedDisk). */
export interface KeptSnapshot {
  snapshotId: string;
  code: string;
  message: string;
}

export interface EcsApi {
  createSnapshot(input: CreateSnapshotInput): Promise<{ snapshotId: string }>;
  describeSnapshots(input: DescribeSnapshotsInput): Promise<EcsPage<EcsSnapshot>>;
  deleteSnapshot(input: { snapshotId: string; force: boolean }): Promise<void>;
  createDisk(input: CreateDiskInput): Promise<{ diskId: string }>;
  describeDisks(input: DescribeDisksInput): Promise<EcsPage<EcsDisk>>;
  deleteDisk(input: { diskId: string }): Promise<void>;
  resizeDisk(input: {
    diskId: string;
    newSizeGiB: number;
    online: boolean;
    clientToken: string;
  }): Promise<void>;
  createSnapshotGroup(input: CreateSnapshotGroupInput): Promise<{ snapshotGroupId: string }>;
  describeSnapshotGroups(input: DescribeSnapshotGroupsInput): Promise<EcsPage<EcsSnapshotGroup>>;
  /** Members ECS would not delete stay as ordinary snapshots and are listed in `kept`. */
  deleteSnapshotGroup(input: { snapshotGroupId: string }): Promise<{ kept: KeptSnapshot[] }>;
}

/**
 * An ECS call that failed: the API's error code, or one of ours for failures that never
 * reached ECS (`NetworkError`, `RequestTimeout`, `CredentialsUnavailable`).
 */
export class EcsError extends Error {
  override readonly name = 'EcsError';

  constructor(
    readonly action: EcsAction,
    readonly code: string,
    message: string,
    readonly details: {
      statusCode?: number;
      requestId?: string;
      /** Milliseconds ECS asked us to wait (`x-acs-retry-after`). */
      retryAfterMs?: number;
      cause?: unknown;
    } = {},
  ) {
    super(message, { cause: details.cause });
  }

  get statusCode(): number | undefined {
    return this.details.statusCode;
  }

  get retryAfterMs(): number | undefined {
    return this.details.retryAfterMs;
  }

  /** `Code: message (request id ...)`, fit for a status condition or an Event. */
  describe(): string {
    const id = this.details.requestId ? ` (request id ${this.details.requestId})` : '';
    // ECS messages may span lines (a signature error quotes its string to sign).
    return `${this.code}: ${this.message.replace(/\s+/g, ' ').trim()}${id}`;
  }
}

export const isThrottling = (error: EcsError): boolean => error.code.startsWith('Throttling');

/** Codes ECS documents as "try again", whatever the HTTP status. */
const transientCodes = new Set([
  'IdempotentProcessing',
  'LastOrderProcessing',
  'ServiceUnavailable',
  'InternalError',
  'UnknownError',
  'NetworkError',
  'RequestTimeout',
]);

/** Worth retrying: the same request may succeed later without anyone changing anything. */
export function isTransient(error: EcsError): boolean {
  return (
    isThrottling(error) ||
    transientCodes.has(error.code) ||
    (error.statusCode !== undefined && error.statusCode >= 500)
  );
}

import ecs from '@alicloud/ecs20140526';
import openapi from '@alicloud/openapi-client';
import type Credential from '@alicloud/credentials';
import {
  EcsError,
  type CreateDiskInput,
  type CreateSnapshotGroupInput,
  type CreateSnapshotInput,
  type DescribeDisksInput,
  type DescribeSnapshotGroupsInput,
  type DescribeSnapshotsInput,
  type EcsAction,
  type EcsApi,
  type EcsDisk,
  type EcsPage,
  type EcsSnapshot,
  type EcsSnapshotGroup,
  type KeptSnapshot,
  type Tags,
} from './ecs.js';

/**
 * EcsApi over @alicloud/ecs20140526 (V3 ACS3-HMAC-SHA256 signatures). The SDK's own retries
 * stay off: retrying belongs to the rate limiter, which knows about every caller.
 */

export interface SdkClientOptions {
  regionId: string;
  /** host[:port]; absent: the SDK's endpoint for the region and network. */
  endpoint?: string;
  protocol: 'https' | 'http';
  network: 'public' | 'vpc';
  credential: InstanceType<typeof Credential.default>;
  requestTimeoutMs: number;
}

type SdkClient = InstanceType<typeof ecs.default>;

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  statusCode?: number;
  requestId?: string;
  retryAfter?: number;
  data?: { Message?: string };
}

const networkCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/** Turns whatever the SDK threw into an EcsError; the SDK's messages carry no credentials. */
export function toEcsError(action: EcsAction, error: unknown): EcsError {
  if (error instanceof EcsError) return error;
  const e = (error ?? {}) as SdkErrorShape;
  if (typeof e.statusCode === 'number' && typeof e.code === 'string') {
    return new EcsError(action, e.code, e.data?.Message ?? e.message ?? e.code, {
      statusCode: e.statusCode,
      requestId: e.requestId,
      retryAfterMs: typeof e.retryAfter === 'number' ? e.retryAfter : undefined,
      cause: error,
    });
  }
  const message = e.message ?? String(error);
  if (e.name === 'RequestTimeoutError' || /timeout/i.test(message)) {
    return new EcsError(action, 'RequestTimeout', `no answer from ECS in time: ${message}`, {
      cause: error,
    });
  }
  if (
    (e.code && networkCodes.has(e.code)) ||
    /socket hang up|ECONN|ENOTFOUND|EAI_AGAIN/.test(message)
  ) {
    return new EcsError(action, 'NetworkError', `cannot reach ECS: ${message}`, { cause: error });
  }
  if (/credential/i.test(message)) {
    return new EcsError(action, 'CredentialsUnavailable', message, { cause: error });
  }
  return new EcsError(action, 'UnknownClientError', message, { cause: error });
}

function tagList<T>(
  tags: Tags | undefined,
  make: (tag: { key: string; value: string }) => T,
): T[] | undefined {
  if (!tags) return undefined;
  const list = Object.entries(tags).map(([key, value]) => make({ key, value }));
  return list.length > 0 ? list : undefined;
}

function tagsFrom(container: { tag?: { tagKey?: string; tagValue?: string }[] } | undefined): Tags {
  const tags: Tags = {};
  for (const t of container?.tag ?? []) if (t.tagKey) tags[t.tagKey] = t.tagValue ?? '';
  return tags;
}

/** DescribeSnapshotGroups spells its tags Key/Value, not TagKey/TagValue. */
function keyValueTags(container: { tag?: { key?: string; value?: string }[] } | undefined): Tags {
  const tags: Tags = {};
  for (const t of container?.tag ?? []) if (t.key) tags[t.key] = t.value ?? '';
  return tags;
}

export class SdkEcsApi implements EcsApi {
  private readonly client: SdkClient;

  constructor(private readonly options: SdkClientOptions) {
    this.client = new ecs.default(
      new openapi.Config({
        regionId: options.regionId,
        endpoint: options.endpoint,
        protocol: options.protocol,
        network: options.network === 'vpc' ? 'vpc' : undefined,
        credential: options.credential,
        readTimeout: options.requestTimeoutMs,
        connectTimeout: options.requestTimeoutMs,
      }),
    );
  }

  private async call<T>(action: EcsAction, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw toEcsError(action, error);
    }
  }

  createSnapshot(input: CreateSnapshotInput): Promise<{ snapshotId: string }> {
    return this.call('CreateSnapshot', async () => {
      const response = await this.client.createSnapshot(
        new ecs.CreateSnapshotRequest({
          diskId: input.diskId,
          clientToken: input.clientToken,
          snapshotName: input.snapshotName,
          retentionDays: input.retentionDays,
          resourceGroupId: input.resourceGroupId,
          tag: tagList(input.tags, (t) => new ecs.CreateSnapshotRequestTag(t)),
        }),
      );
      return { snapshotId: response.body?.snapshotId ?? '' };
    });
  }

  describeSnapshots(input: DescribeSnapshotsInput): Promise<EcsPage<EcsSnapshot>> {
    return this.call('DescribeSnapshots', async () => {
      const response = await this.client.describeSnapshots(
        new ecs.DescribeSnapshotsRequest({
          regionId: this.options.regionId,
          snapshotIds: input.snapshotIds ? JSON.stringify(input.snapshotIds) : undefined,
          diskId: input.diskId,
          tag: tagList(input.tags, (t) => new ecs.DescribeSnapshotsRequestTag(t)),
          maxResults: input.maxResults,
          nextToken: input.nextToken,
        }),
      );
      const body = response.body;
      return {
        nextToken: body?.nextToken || undefined,
        items: (body?.snapshots?.snapshot ?? []).map((s) => ({
          id: s.snapshotId ?? '',
          name: s.snapshotName ?? '',
          sourceDiskId: s.sourceDiskId ?? '',
          sourceDiskSizeGiB: Number(s.sourceDiskSize ?? 0),
          status: s.status ?? '',
          progress: s.progress ?? '',
          creationTime: s.creationTime ?? '',
          available: s.available === true,
          usage: s.usage ?? 'none',
          tags: tagsFrom(s.tags),
        })),
      };
    });
  }

  deleteSnapshot(input: { snapshotId: string; force: boolean }): Promise<void> {
    return this.call('DeleteSnapshot', async () => {
      await this.client.deleteSnapshot(
        new ecs.DeleteSnapshotRequest({ snapshotId: input.snapshotId, force: input.force }),
      );
    });
  }

  createDisk(input: CreateDiskInput): Promise<{ diskId: string }> {
    return this.call('CreateDisk', async () => {
      const response = await this.client.createDisk(
        new ecs.CreateDiskRequest({
          regionId: this.options.regionId,
          zoneId: input.zoneId,
          clientToken: input.clientToken,
          diskCategory: input.category,
          performanceLevel: input.performanceLevel,
          size: input.sizeGiB,
          snapshotId: input.snapshotId,
          encrypted: input.encrypted,
          KMSKeyId: input.kmsKeyId,
          resourceGroupId: input.resourceGroupId,
          diskName: input.diskName,
          tag: tagList(input.tags, (t) => new ecs.CreateDiskRequestTag(t)),
        }),
      );
      return { diskId: response.body?.diskId ?? '' };
    });
  }

  describeDisks(input: DescribeDisksInput): Promise<EcsPage<EcsDisk>> {
    return this.call('DescribeDisks', async () => {
      const response = await this.client.describeDisks(
        new ecs.DescribeDisksRequest({
          regionId: this.options.regionId,
          diskIds: input.diskIds ? JSON.stringify(input.diskIds) : undefined,
          snapshotId: input.snapshotId,
          tag: tagList(input.tags, (t) => new ecs.DescribeDisksRequestTag(t)),
          maxResults: input.maxResults,
          nextToken: input.nextToken,
        }),
      );
      const body = response.body;
      return {
        nextToken: body?.nextToken || undefined,
        items: (body?.disks?.disk ?? []).map((d) => ({
          id: d.diskId ?? '',
          zoneId: d.zoneId ?? '',
          category: d.category ?? '',
          performanceLevel: d.performanceLevel ?? '',
          sizeGiB: d.size ?? 0,
          status: d.status ?? '',
          sourceSnapshotId: d.sourceSnapshotId ?? '',
          instanceId: d.instanceId ?? '',
          everAttached: Boolean(d.attachedTime || d.detachedTime || d.instanceId),
          tags: tagsFrom(d.tags),
        })),
      };
    });
  }

  deleteDisk(input: { diskId: string }): Promise<void> {
    return this.call('DeleteDisk', async () => {
      await this.client.deleteDisk(new ecs.DeleteDiskRequest({ diskId: input.diskId }));
    });
  }

  resizeDisk(input: {
    diskId: string;
    newSizeGiB: number;
    online: boolean;
    clientToken: string;
  }): Promise<void> {
    return this.call('ResizeDisk', async () => {
      await this.client.resizeDisk(
        new ecs.ResizeDiskRequest({
          diskId: input.diskId,
          newSize: input.newSizeGiB,
          type: input.online ? 'online' : 'offline',
          clientToken: input.clientToken,
        }),
      );
    });
  }

  createSnapshotGroup(input: CreateSnapshotGroupInput): Promise<{ snapshotGroupId: string }> {
    return this.call('CreateSnapshotGroup', async () => {
      const response = await this.client.createSnapshotGroup(
        new ecs.CreateSnapshotGroupRequest({
          regionId: this.options.regionId,
          diskId: input.diskIds,
          clientToken: input.clientToken,
          name: input.name,
          resourceGroupId: input.resourceGroupId,
          tag: tagList(input.tags, (t) => new ecs.CreateSnapshotGroupRequestTag(t)),
        }),
      );
      return { snapshotGroupId: response.body?.snapshotGroupId ?? '' };
    });
  }

  describeSnapshotGroups(input: DescribeSnapshotGroupsInput): Promise<EcsPage<EcsSnapshotGroup>> {
    return this.call('DescribeSnapshotGroups', async () => {
      const response = await this.client.describeSnapshotGroups(
        new ecs.DescribeSnapshotGroupsRequest({
          regionId: this.options.regionId,
          snapshotGroupId: input.snapshotGroupIds,
          name: input.name,
          tag: tagList(input.tags, (t) => new ecs.DescribeSnapshotGroupsRequestTag(t)),
          maxResults: input.maxResults,
          nextToken: input.nextToken,
        }),
      );
      const body = response.body;
      return {
        nextToken: body?.nextToken || undefined,
        items: (body?.snapshotGroups?.snapshotGroup ?? []).map((g) => ({
          id: g.snapshotGroupId ?? '',
          name: g.name ?? '',
          status: g.status ?? '',
          creationTime: g.creationTime ?? '',
          tags: keyValueTags(g.tags),
          members: (g.snapshots?.snapshot ?? []).map((s) => ({
            snapshotId: s.snapshotId ?? '',
            sourceDiskId: s.sourceDiskId ?? '',
          })),
        })),
      };
    });
  }

  deleteSnapshotGroup(input: { snapshotGroupId: string }): Promise<{ kept: KeptSnapshot[] }> {
    return this.call('DeleteSnapshotGroup', async () => {
      const response = await this.client.deleteSnapshotGroup(
        new ecs.DeleteSnapshotGroupRequest({
          regionId: this.options.regionId,
          snapshotGroupId: input.snapshotGroupId,
        }),
      );
      const progress = response.body?.operationProgressSet?.operationProgress ?? [];
      return {
        kept: progress
          .filter((p) => p.operationStatus !== 'Success')
          .map((p) => ({
            snapshotId:
              p.relatedItemSet?.relatedItem?.find((item) => item.name === 'SnapshotId')?.value ??
              '',
            code: p.errorCode ?? '',
            message: p.errorMsg ?? '',
          })),
      };
    });
  }
}

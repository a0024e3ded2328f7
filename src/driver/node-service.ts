import { realpath } from 'node:fs/promises';
import path from 'node:path';

import type { NodeHandlers } from '../gen/csi/csi/v1/Node.js';
import type { VolumeUsage } from '../gen/csi/csi/v1/VolumeUsage.js';
import type { AsyncHandlers } from '../csi/handlers.js';
import type { BackendCapabilities, NodeBackend } from './backend.js';
import {
  checkCapabilities,
  parseCapacityRange,
  requireField,
  toCsiTopology,
  toVolumeCapability,
} from './convert.js';
import { invalidArgument, notFound } from '../csi/errors.js';
import type { OperationLocks } from './operations.js';

const below = (file: string, dir: string): boolean =>
  file.startsWith(dir.endsWith('/') ? dir : `${dir}/`);

/** Where `file` really is: the real path of its deepest existing ancestor, plus the rest. */
async function realLocation(file: string): Promise<string> {
  try {
    return await realpath(file);
  } catch (error) {
    const parent = path.dirname(file);
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || parent === file) throw error;
    return path.join(await realLocation(parent), path.basename(file));
  }
}

/**
 * A staging or target path, confined below kubelet's directory `root`: the driver creates,
 * mounts over, unmounts and removes directories there, so a path elsewhere, one that climbs
 * out with "..", or one that leads out through a symbolic link is INVALID_ARGUMENT.
 */
async function confinedPath(value: string, field: string, root: string): Promise<string> {
  requireField(value, field);
  const refuse = (why: string) =>
    invalidArgument(
      `${field} "${value}" ${why}; node paths must lie below the kubelet directory ${root}`,
    );
  if (!path.isAbsolute(value)) throw refuse('is not an absolute path');
  if (value.split('/').includes('..')) throw refuse('contains ".."');
  const normalized = path.normalize(value).replace(/(.)\/+$/, '$1');
  if (!below(normalized, root)) throw refuse('is not below it');
  const real = await realLocation(normalized);
  const realRoot = await realLocation(root);
  if (!below(real, realRoot)) throw refuse(`leads to ${real} through a symbolic link`);
  return normalized;
}

/**
 * The path a volume is reported or expanded at. A relative path names no place a volume can
 * have been published (CSI asks for absolute paths), so the volume is NOT_FOUND there, as
 * csi-sanity expects; an absolute one is confined as a staging or target path is.
 */
async function volumePath(value: string, field: string, root: string): Promise<string> {
  requireField(value, field);
  if (!path.isAbsolute(value)) {
    throw notFound(`${field} "${value}" is not an absolute path: no volume is published there`);
  }
  return confinedPath(value, field, root);
}

/** The CSI Node service over a backend's node side, on the node `nodeId`. */
export function nodeService(
  node: NodeBackend,
  capabilities: BackendCapabilities,
  nodeId: string,
  locks: OperationLocks,
): Partial<AsyncHandlers<NodeHandlers>> {
  const root = path.resolve(node.kubeletDir);
  const requirePath = (value: string, field: string) => confinedPath(value, field, root);
  const optionalPath = async (value: string, field: string) =>
    value ? await confinedPath(value, field, root) : undefined;
  return {
    async NodeGetInfo() {
      return {
        node_id: nodeId,
        max_volumes_per_node: String(node.maxVolumesPerNode),
        accessible_topology:
          Object.keys(node.topology).length > 0 ? toCsiTopology(node.topology) : null,
      };
    },

    async NodeGetCapabilities() {
      const types = [
        'STAGE_UNSTAGE_VOLUME',
        'GET_VOLUME_STATS',
        'EXPAND_VOLUME',
        'VOLUME_CONDITION',
      ] as const;
      return { capabilities: types.map((type) => ({ rpc: { type } })) };
    },

    async NodeStageVolume(request) {
      const volumeId = requireField(request.volume_id, 'volume_id');
      const stagingPath = await requirePath(request.staging_target_path, 'staging_target_path');
      const capability = toVolumeCapability(request.volume_capability);
      checkCapabilities([capability], capabilities);
      await locks.run([`volume/${volumeId}`], () =>
        node.stageVolume({ volumeId, stagingPath, capability, context: request.volume_context }),
      );
      return {};
    },

    async NodeUnstageVolume(request) {
      const volumeId = requireField(request.volume_id, 'volume_id');
      const stagingPath = await requirePath(request.staging_target_path, 'staging_target_path');
      await locks.run([`volume/${volumeId}`], () => node.unstageVolume({ volumeId, stagingPath }));
      return {};
    },

    async NodePublishVolume(request) {
      const volumeId = requireField(request.volume_id, 'volume_id');
      const targetPath = await requirePath(request.target_path, 'target_path');
      const stagingPath = await requirePath(request.staging_target_path, 'staging_target_path');
      const capability = toVolumeCapability(request.volume_capability);
      checkCapabilities([capability], capabilities);
      await locks.run([`volume/${volumeId}`], () =>
        node.publishVolume({
          volumeId,
          stagingPath,
          targetPath,
          capability,
          readonly: request.readonly,
          context: request.volume_context,
        }),
      );
      return {};
    },

    async NodeUnpublishVolume(request) {
      const volumeId = requireField(request.volume_id, 'volume_id');
      const targetPath = await requirePath(request.target_path, 'target_path');
      await locks.run([`volume/${volumeId}`], () => node.unpublishVolume({ volumeId, targetPath }));
      return {};
    },

    async NodeGetVolumeStats(request) {
      const volumeId = requireField(request.volume_id, 'volume_id');
      const stats = await node.volumeStats({
        volumeId,
        volumePath: await volumePath(request.volume_path, 'volume_path', root),
        stagingPath: await optionalPath(request.staging_target_path, 'staging_target_path'),
      });
      const usage: VolumeUsage[] = [
        {
          unit: 'BYTES',
          total: String(stats.bytes.total),
          used: String(stats.bytes.used),
          available: String(stats.bytes.available),
        },
      ];
      if (stats.inodes) {
        usage.push({
          unit: 'INODES',
          total: String(stats.inodes.total),
          used: String(stats.inodes.used),
          available: String(stats.inodes.available),
        });
      }
      return {
        usage,
        volume_condition: {
          abnormal: stats.abnormal !== undefined,
          message: stats.abnormal ?? 'volume is healthy',
        },
      };
    },

    async NodeExpandVolume(request) {
      const volumeId = requireField(request.volume_id, 'volume_id');
      const expandPath = await volumePath(request.volume_path, 'volume_path', root);
      const stagingPath = await optionalPath(request.staging_target_path, 'staging_target_path');
      const { requiredBytes, limitBytes } = parseCapacityRange(request.capacity_range);
      const capability = request.volume_capability
        ? toVolumeCapability(request.volume_capability)
        : undefined;
      const result = await locks.run([`volume/${volumeId}`], () =>
        node.expandVolume({
          volumeId,
          volumePath: expandPath,
          stagingPath,
          requiredBytes,
          limitBytes,
          capability,
        }),
      );
      return { capacity_bytes: String(result.capacityBytes) };
    },
  };
}

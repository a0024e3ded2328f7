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
import { invalidArgument } from './errors.js';
import type { OperationLocks } from './operations.js';

function requirePath(value: string, field: string): string {
  requireField(value, field);
  if (!path.isAbsolute(value)) throw invalidArgument(`${field} must be an absolute path`);
  return path.normalize(value);
}

/** The CSI Node service over a backend's node side, on the node `nodeId`. */
export function nodeService(
  node: NodeBackend,
  capabilities: BackendCapabilities,
  nodeId: string,
  locks: OperationLocks,
): Partial<AsyncHandlers<NodeHandlers>> {
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
      const stagingPath = requirePath(request.staging_target_path, 'staging_target_path');
      const capability = toVolumeCapability(request.volume_capability);
      checkCapabilities([capability], capabilities);
      await locks.run([`volume/${volumeId}`], () =>
        node.stageVolume({ volumeId, stagingPath, capability, context: request.volume_context }),
      );
      return {};
    },

    async NodeUnstageVolume(request) {
      const volumeId = requireField(request.volume_id, 'volume_id');
      const stagingPath = requirePath(request.staging_target_path, 'staging_target_path');
      await locks.run([`volume/${volumeId}`], () => node.unstageVolume({ volumeId, stagingPath }));
      return {};
    },

    async NodePublishVolume(request) {
      const volumeId = requireField(request.volume_id, 'volume_id');
      const targetPath = requirePath(request.target_path, 'target_path');
      const stagingPath = requirePath(request.staging_target_path, 'staging_target_path');
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
      const targetPath = requirePath(request.target_path, 'target_path');
      await locks.run([`volume/${volumeId}`], () => node.unpublishVolume({ volumeId, targetPath }));
      return {};
    },

    async NodeGetVolumeStats(request) {
      const volumeId = requireField(request.volume_id, 'volume_id');
      // Not requirePath: an unknown volume or path is NOT_FOUND, whatever the path looks like.
      const volumePath = requireField(request.volume_path, 'volume_path');
      const stats = await node.volumeStats({
        volumeId,
        volumePath,
        stagingPath: request.staging_target_path || undefined,
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
      const volumePath = requireField(request.volume_path, 'volume_path');
      const { requiredBytes, limitBytes } = parseCapacityRange(request.capacity_range);
      const capability = request.volume_capability
        ? toVolumeCapability(request.volume_capability)
        : undefined;
      const result = await locks.run([`volume/${volumeId}`], () =>
        node.expandVolume({
          volumeId,
          volumePath,
          stagingPath: request.staging_target_path || undefined,
          requiredBytes,
          limitBytes,
          capability,
        }),
      );
      return { capacity_bytes: String(result.capacityBytes) };
    },
  };
}

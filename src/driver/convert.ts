/**
 * Pure translations between CSI messages (as proto-loader decodes them) and the backend's
 * types, with the request checks CSI asks of every driver.
 */
import type { CapacityRange__Output } from '../gen/csi/csi/v1/CapacityRange.js';
import type { Snapshot as CsiSnapshot } from '../gen/csi/csi/v1/Snapshot.js';
import type { Topology as CsiTopology } from '../gen/csi/csi/v1/Topology.js';
import type { TopologyRequirement__Output } from '../gen/csi/csi/v1/TopologyRequirement.js';
import type { Volume as CsiVolume } from '../gen/csi/csi/v1/Volume.js';
import type { VolumeCapability__Output } from '../gen/csi/csi/v1/VolumeCapability.js';
import type { VolumeContentSource as CsiVolumeContentSource } from '../gen/csi/csi/v1/VolumeContentSource.js';
import type { VolumeContentSource__Output } from '../gen/csi/csi/v1/VolumeContentSource.js';
import type { Timestamp } from '../gen/csi/google/protobuf/Timestamp.js';
import {
  ACCESS_MODES,
  type AccessMode,
  type BackendCapabilities,
  type Snapshot,
  type Topology,
  type TopologyRequirement,
  type Volume,
  type VolumeCapability,
  type VolumeSource,
} from './backend.js';
import { invalidArgument, outOfRange } from '../csi/errors.js';
import { CSI_PARAMETER_PREFIX } from '../api/csi-parameters.js';

/** Keys the Kubernetes sidecars add to parameters (pvc/name, volumesnapshot/namespace...). */

/** The CreateSnapshot parameter (from the VolumeSnapshotClass) recorded on the snapshot. */
export const forceDeleteParameter = 'forceDelete';

export function requireField(value: string, field: string): string {
  if (value === '') throw invalidArgument(`${field} is required`);
  return value;
}

/** An int64 (a decimal string, as proto-loader delivers it) as a byte count. */
export function parseBytes(value: string, field: string): number {
  if (!/^-?\d+$/.test(value)) throw invalidArgument(`${field} "${value}" is not an integer`);
  const bytes = Number(value);
  if (bytes < 0) throw outOfRange(`${field} must not be negative (got ${value})`);
  if (!Number.isSafeInteger(bytes)) throw outOfRange(`${field} ${value} is too large`);
  return bytes;
}

export function parseCapacityRange(range: CapacityRange__Output | null): {
  requiredBytes: number;
  limitBytes: number;
} {
  if (!range) return { requiredBytes: 0, limitBytes: 0 };
  const requiredBytes = parseBytes(range.required_bytes, 'capacity_range.required_bytes');
  const limitBytes = parseBytes(range.limit_bytes, 'capacity_range.limit_bytes');
  if (limitBytes !== 0 && limitBytes < requiredBytes) {
    throw outOfRange(
      `capacity_range.limit_bytes (${limitBytes}) is below required_bytes (${requiredBytes})`,
    );
  }
  return { requiredBytes, limitBytes };
}

/** A decoded VolumeCapability, or INVALID_ARGUMENT when it lacks its access type or mode. */
export function toVolumeCapability(
  capability: VolumeCapability__Output | null,
  field = 'volume_capability',
): VolumeCapability {
  if (!capability) throw invalidArgument(`${field} is required`);
  const mode = capability.access_mode?.mode;
  if (!mode || !ACCESS_MODES.includes(mode as AccessMode)) {
    throw invalidArgument(`${field}.access_mode is required (got ${mode ?? 'none'})`);
  }
  const accessMode = mode as AccessMode;
  if (capability.access_type === 'mount' && capability.mount) {
    return {
      access: {
        type: 'mount',
        fsType: capability.mount.fs_type,
        mountFlags: [...capability.mount.mount_flags],
      },
      accessMode,
    };
  }
  if (capability.access_type === 'block' && capability.block) {
    return { access: { type: 'block' }, accessMode };
  }
  throw invalidArgument(`${field} needs an access type (mount or block)`);
}

export function toVolumeCapabilities(
  capabilities: VolumeCapability__Output[],
  field = 'volume_capabilities',
): VolumeCapability[] {
  if (capabilities.length === 0) throw invalidArgument(`${field} is required`);
  return capabilities.map((c, i) => toVolumeCapability(c, `${field}[${i}]`));
}

/** Why the backend cannot serve `capability`, or undefined when it can. */
export function capabilityProblem(
  capability: VolumeCapability,
  supported: BackendCapabilities,
): string | undefined {
  if (!supported.accessModes.includes(capability.accessMode)) {
    return `access mode ${capability.accessMode} is not supported (supported: ${supported.accessModes.join(', ')})`;
  }
  if (!supported.accessTypes.includes(capability.access.type)) {
    return `${capability.access.type} volumes are not supported`;
  }
  if (
    capability.access.type === 'mount' &&
    capability.access.fsType !== '' &&
    !supported.fsTypes.includes(capability.access.fsType)
  ) {
    return `file system ${capability.access.fsType} is not supported (supported: ${supported.fsTypes.join(', ')})`;
  }
  return undefined;
}

export function checkCapabilities(
  capabilities: VolumeCapability[],
  supported: BackendCapabilities,
): void {
  for (const capability of capabilities) {
    const problem = capabilityProblem(capability, supported);
    if (problem) throw invalidArgument(problem);
  }
}

/** Separates the sidecars' `csi.storage.k8s.io/` keys from the class's own parameters. */
export function splitParameters(all: Record<string, string>): {
  parameters: Record<string, string>;
  metadata: Record<string, string>;
} {
  const parameters: Record<string, string> = {};
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(all)) {
    if (key.startsWith(CSI_PARAMETER_PREFIX)) metadata[key] = value;
    else parameters[key] = value;
  }
  return { parameters, metadata };
}

/** The `forceDelete` class parameter: "true" or "false" (any case), false when absent. */
export function parseForceDelete(parameters: Record<string, string>): boolean {
  const value = parameters[forceDeleteParameter];
  if (value === undefined) return false;
  const normalized = value.trim().toLowerCase();
  if (normalized === 'true') return true;
  if (normalized === 'false') return false;
  throw invalidArgument(
    `parameter ${forceDeleteParameter} must be "true" or "false" (got "${value}")`,
  );
}

export function toVolumeSource(
  source: VolumeContentSource__Output | null,
): VolumeSource | undefined {
  if (!source) return undefined;
  if (source.type === 'snapshot' && source.snapshot) {
    return {
      kind: 'snapshot',
      snapshotId: requireField(
        source.snapshot.snapshot_id,
        'volume_content_source.snapshot.snapshot_id',
      ),
    };
  }
  if (source.type === 'volume' && source.volume) {
    return {
      kind: 'volume',
      volumeId: requireField(source.volume.volume_id, 'volume_content_source.volume.volume_id'),
    };
  }
  throw invalidArgument('volume_content_source needs a snapshot or a volume');
}

export function toTopologyRequirement(
  requirement: TopologyRequirement__Output | null,
): TopologyRequirement | undefined {
  if (!requirement) return undefined;
  return {
    requisite: requirement.requisite.map((t) => ({ ...t.segments })),
    preferred: requirement.preferred.map((t) => ({ ...t.segments })),
  };
}

export function toCsiTopology(topology: Topology): CsiTopology {
  return { segments: { ...topology } };
}

function toCsiSource(source: VolumeSource | undefined): CsiVolumeContentSource | null {
  if (!source) return null;
  return source.kind === 'snapshot'
    ? { snapshot: { snapshot_id: source.snapshotId } }
    : { volume: { volume_id: source.volumeId } };
}

export function toCsiVolume(volume: Volume): CsiVolume {
  return {
    volume_id: volume.id,
    capacity_bytes: String(volume.capacityBytes),
    volume_context: { ...volume.context },
    content_source: toCsiSource(volume.source),
    accessible_topology: volume.accessibleTopology.map(toCsiTopology),
  };
}

export function toTimestamp(date: Date): Timestamp {
  const ms = date.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds: String(seconds), nanos: (ms - seconds * 1000) * 1_000_000 };
}

export function toCsiSnapshot(snapshot: Snapshot): CsiSnapshot {
  return {
    snapshot_id: snapshot.id,
    source_volume_id: snapshot.sourceVolumeId,
    size_bytes: String(snapshot.sizeBytes),
    creation_time: toTimestamp(snapshot.creationTime),
    ready_to_use: snapshot.readyToUse,
    ...(snapshot.groupSnapshotId ? { group_snapshot_id: snapshot.groupSnapshotId } : {}),
  };
}

/** CSI's max_entries: 0 means "no limit", a negative value is invalid. */
export function parseMaxEntries(value: number): number {
  if (value < 0) throw invalidArgument(`max_entries must not be negative (got ${value})`);
  return value;
}

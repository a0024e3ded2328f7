/**
 * What a disk backend provides to the CSI services. The services own the protocol (request
 * validation, gRPC codes, capabilities, pagination fields); a backend owns disks and
 * snapshots. Sizes are byte counts as JS numbers (exact up to 8 PiB). Errors a caller can act
 * on are thrown as DiskError (./errors.ts); anything else is reported as INTERNAL.
 *
 * Idempotency is the backend's job, as CSI requires: a create with the name of an existing
 * object and compatible arguments returns that object; with incompatible arguments it throws
 * ALREADY_EXISTS. A delete of an absent object succeeds.
 */
import { _csi_v1_VolumeCapability_AccessMode_Mode } from '../gen/csi/csi/v1/VolumeCapability.js';

/** CSI access modes, spelled as in csi.proto (its generated enum, without UNKNOWN). */
export type AccessMode = Exclude<keyof typeof _csi_v1_VolumeCapability_AccessMode_Mode, 'UNKNOWN'>;

/** Every access mode csi.proto defines. */
export const ACCESS_MODES: readonly AccessMode[] = Object.keys(
  _csi_v1_VolumeCapability_AccessMode_Mode,
).filter((mode): mode is AccessMode => mode !== 'UNKNOWN');

export type AccessType = 'mount' | 'block';

export interface VolumeCapability {
  access:
    | {
        type: 'mount';
        /** '' when the caller left it to the driver (the backend's first fsType). */
        fsType: string;
        mountFlags: string[];
      }
    | { type: 'block' };
  accessMode: AccessMode;
}

/** Topology segments, e.g. { 'topology.diskplugin.csi.alibabacloud.com/zone': 'cn-hangzhou-h' }. */
export type Topology = Record<string, string>;

export interface TopologyRequirement {
  /** The volume must be accessible from at least one of these (empty: anywhere). */
  requisite: Topology[];
  /** Where the caller would like it, best first. */
  preferred: Topology[];
}

export type VolumeSource =
  { kind: 'snapshot'; snapshotId: string } | { kind: 'volume'; volumeId: string };

export interface CreateVolumeRequest {
  /** The caller's idempotency key (e.g. pvc-<uid>), already checked to be non-empty. */
  name: string;
  /** The volume must hold at least this many bytes; 0 leaves the size to the backend. */
  requiredBytes: number;
  /** The volume must not be larger than this; 0 for no limit. */
  limitBytes: number;
  /**
   * StorageClass parameters, without the `csi.storage.k8s.io/` keys (see `metadata`). A
   * backend rejects a key it does not know with INVALID_ARGUMENT.
   */
  parameters: Record<string, string>;
  /** The `csi.storage.k8s.io/*` keys the provisioner adds (pvc/name, pvc/namespace, pv/name). */
  metadata: Record<string, string>;
  /** Non-empty, and each one already checked against the backend's `capabilities`. */
  capabilities: VolumeCapability[];
  source?: VolumeSource;
  accessibility?: TopologyRequirement;
}

export interface Volume {
  id: string;
  capacityBytes: number;
  /** Opaque strings the CO passes back to the node-side calls for this volume. */
  context: Record<string, string>;
  source?: VolumeSource;
  /** Where the volume can be used; empty when it is accessible from every node. */
  accessibleTopology: Topology[];
}

export interface CreateSnapshotRequest {
  /** The caller's idempotency key (e.g. snapshot-<uid>). */
  name: string;
  sourceVolumeId: string;
  /**
   * The snapshot class's `forceDelete` parameter: when true, disks created from the snapshot
   * do not block its deletion. The backend records it on the snapshot, because
   * DeleteSnapshot carries no class parameters.
   */
  forceDelete: boolean;
  /** The other class parameters, without `forceDelete` and `csi.storage.k8s.io/` keys. */
  parameters: Record<string, string>;
  /** The `csi.storage.k8s.io/*` keys the sidecar adds (volumesnapshot/name, /namespace...). */
  metadata: Record<string, string>;
}

export interface Snapshot {
  id: string;
  sourceVolumeId: string;
  /** The smallest volume a restore of this snapshot can go into. */
  sizeBytes: number;
  creationTime: Date;
  /** False while the backend is still copying data (e.g. an ECS snapshot in progress). */
  readyToUse: boolean;
  /** Set on a member of a group snapshot: it is deleted with its group, never alone. */
  groupSnapshotId?: string;
}

export interface CreateGroupSnapshotRequest {
  /** The caller's idempotency key (e.g. groupsnapshot-<uid>). */
  name: string;
  /** Non-empty, each one non-empty and named once. */
  sourceVolumeIds: string[];
  /** As on CreateSnapshotRequest: recorded on the group and each of its members. */
  forceDelete: boolean;
  /** The other class parameters, without `forceDelete` and `csi.storage.k8s.io/` keys. */
  parameters: Record<string, string>;
  metadata: Record<string, string>;
}

/** Snapshots of several volumes cut at one instant (write-order consistent across them). */
export interface GroupSnapshot {
  id: string;
  /** One per source volume, each with `groupSnapshotId` set to `id`. */
  snapshots: Snapshot[];
  creationTime: Date;
  /** True when every member is ready to use. */
  readyToUse: boolean;
}

/** A disk created from a snapshot, as DeleteSnapshot sees it. */
export interface DependentDisk {
  id: string;
  /** The disk is still being filled from the snapshot. */
  creating: boolean;
}

export interface ListOptions {
  /** 0: as many as the backend likes. */
  maxEntries: number;
  /** A `nextToken` from a previous page; a token the backend did not issue is ABORTED. */
  startingToken?: string;
}

/** A lookup by snapshot id goes to `getSnapshot`, so listing filters by source only. */
export interface SnapshotListOptions extends ListOptions {
  sourceVolumeId?: string;
}

export interface Page<T> {
  entries: T[];
  /** Absent on the last page. */
  nextToken?: string;
}

export interface Capacity {
  availableBytes: number;
  maximumVolumeSizeBytes?: number;
  minimumVolumeSizeBytes?: number;
}

export interface ExpandVolumeRequest {
  volumeId: string;
  requiredBytes: number;
  limitBytes: number;
  capability?: VolumeCapability;
}

export interface ExpandVolumeResult {
  capacityBytes: number;
  /** The file system on the node must be grown too (NodeExpandVolume follows). */
  nodeExpansionRequired: boolean;
}

export interface BackendCapabilities {
  accessModes: AccessMode[];
  accessTypes: AccessType[];
  /** File systems a mount volume may ask for; the first is the default. */
  fsTypes: string[];
  /** CreateVolume accepts a volume source (a clone). */
  cloneVolume: boolean;
  /** ControllerExpandVolume works while the volume is attached and mounted. */
  onlineExpansion: boolean;
}

/** The controller side of a backend: everything the CSI Controller service needs. */
export interface DiskBackend {
  /** The CSI driver name, e.g. local.snapback.dev or diskplugin.csi.alibabacloud.com. */
  readonly driverName: string;
  readonly vendorVersion: string;
  readonly capabilities: BackendCapabilities;
  /** Topology keys that constrain where volumes can be used; [] when none do. */
  readonly topologyKeys: string[];
  /** The node side, when this backend can attach its disks to the host it runs on. */
  readonly node?: NodeBackend;

  /** Resolves false (or throws UNAVAILABLE) while the backend cannot serve requests. */
  probe(): Promise<boolean>;

  createVolume(request: CreateVolumeRequest): Promise<Volume>;
  /** Succeeds when the volume does not exist. */
  deleteVolume(volumeId: string): Promise<void>;
  getVolume(volumeId: string): Promise<Volume | undefined>;
  listVolumes(options: ListOptions): Promise<Page<Volume>>;
  /** Absent when the backend cannot grow volumes. */
  expandVolume?(request: ExpandVolumeRequest): Promise<ExpandVolumeResult>;
  /** Absent when the backend cannot tell its free capacity. */
  getCapacity?(request: {
    parameters: Record<string, string>;
    capabilities: VolumeCapability[];
    topology?: Topology;
  }): Promise<Capacity>;

  /**
   * Returns as soon as the snapshot exists; `readyToUse` may still be false, and the CO
   * repeats the call (same name and source) until it is true.
   */
  createSnapshot(request: CreateSnapshotRequest): Promise<Snapshot>;
  /**
   * Succeeds when the snapshot does not exist. Throws FAILED_PRECONDITION naming the
   * dependent disks when `snapshotDeletionBlocker` says so.
   */
  deleteSnapshot(snapshotId: string): Promise<void>;
  getSnapshot(snapshotId: string): Promise<Snapshot | undefined>;
  listSnapshots(options: SnapshotListOptions): Promise<Page<Snapshot>>;

  /**
   * Group snapshots: a backend offers all three or none (see supportsGroupSnapshots). Create
   * is idempotent by name: the same name with the same set of source volumes returns the
   * existing group, with other volumes or another forceDelete it throws ALREADY_EXISTS.
   */
  createGroupSnapshot?(request: CreateGroupSnapshotRequest): Promise<GroupSnapshot>;
  /**
   * Deletes the group and all its members; succeeds when it does not exist. Throws
   * FAILED_PRECONDITION when a member may not be deleted (see snapshotDeletionBlocker).
   */
  deleteGroupSnapshot?(groupSnapshotId: string): Promise<void>;
  getGroupSnapshot?(groupSnapshotId: string): Promise<GroupSnapshot | undefined>;

  /** Releases clients, timers and file handles; the backend serves nothing afterwards. */
  close?(): Promise<void>;
}

/** A backend that can snapshot several volumes together. */
export type GroupSnapshotBackend = DiskBackend &
  Required<Pick<DiskBackend, 'createGroupSnapshot' | 'deleteGroupSnapshot' | 'getGroupSnapshot'>>;

export function supportsGroupSnapshots(backend: DiskBackend): backend is GroupSnapshotBackend {
  return (
    backend.createGroupSnapshot !== undefined &&
    backend.deleteGroupSnapshot !== undefined &&
    backend.getGroupSnapshot !== undefined
  );
}

export interface StageVolumeRequest {
  volumeId: string;
  stagingPath: string;
  capability: VolumeCapability;
  context: Record<string, string>;
}

export interface PublishVolumeRequest {
  volumeId: string;
  /** Where NodeStageVolume put the volume. */
  stagingPath: string;
  targetPath: string;
  capability: VolumeCapability;
  readonly: boolean;
  context: Record<string, string>;
}

export interface VolumeStats {
  bytes: { total: number; used: number; available: number };
  inodes?: { total: number; used: number; available: number };
  /** Set when the volume is unhealthy, saying why. */
  abnormal?: string;
}

export interface NodeExpandRequest {
  volumeId: string;
  volumePath: string;
  stagingPath?: string;
  requiredBytes: number;
  limitBytes: number;
  capability?: VolumeCapability;
}

/**
 * The node side: attaching a backend's disks to this host. Each call is idempotent: staging
 * an already staged volume at the same path, or unpublishing a path that is not mounted,
 * succeeds.
 */
export interface NodeBackend {
  /** This node's topology segments, as NodeGetInfo reports them. */
  readonly topology: Topology;
  /** 0 for no limit. */
  readonly maxVolumesPerNode: number;
  /**
   * Kubelet's directory: the node service refuses a staging or target path that is not below
   * it, since the driver mounts, unmounts and removes directories at those paths.
   */
  readonly kubeletDir: string;

  stageVolume(request: StageVolumeRequest): Promise<void>;
  unstageVolume(request: { volumeId: string; stagingPath: string }): Promise<void>;
  publishVolume(request: PublishVolumeRequest): Promise<void>;
  unpublishVolume(request: { volumeId: string; targetPath: string }): Promise<void>;
  volumeStats(request: {
    volumeId: string;
    volumePath: string;
    stagingPath?: string;
  }): Promise<VolumeStats>;
  expandVolume(request: NodeExpandRequest): Promise<{ capacityBytes: number }>;
}

/**
 * The forceDelete rule shared by every backend: a snapshot with dependent disks may be
 * deleted only when it was created with forceDelete=true, and never while a disk is still
 * being created from it. Returns the refusal message, or undefined when deletion may go on.
 */
export function snapshotDeletionBlocker(
  snapshotId: string,
  forceDelete: boolean,
  dependents: DependentDisk[],
): string | undefined {
  const creating = dependents.filter((d) => d.creating).map((d) => d.id);
  if (creating.length > 0) {
    return (
      `snapshot ${snapshotId} cannot be deleted while disks are being created from it: ` +
      `${creating.join(', ')}; retry once they are ready`
    );
  }
  if (dependents.length > 0 && !forceDelete) {
    return (
      `snapshot ${snapshotId} has dependent disks ${dependents.map((d) => d.id).join(', ')} ` +
      `and was created without forceDelete=true; delete those disks first, or create ` +
      `snapshots with a class whose forceDelete parameter is "true"`
    );
  }
  return undefined;
}

import type {
  BackendCapabilities,
  CreateSnapshotRequest,
  CreateVolumeRequest,
  DiskBackend,
  ListOptions,
  Page,
  Snapshot,
  SnapshotListOptions,
  Volume,
} from '../../../src/driver/backend.js';
import { notFound } from '../../../src/csi/errors.js';
import { paginate } from '../../../src/driver/pagination.js';

/**
 * An in-memory backend that records what the CSI services hand it, for testing the services
 * alone. `gate` lets a test hold a create open to observe concurrent calls.
 */
export class FakeBackend implements DiskBackend {
  readonly driverName = 'fake.snapback.dev';
  readonly vendorVersion = '0.0.1';
  readonly capabilities: BackendCapabilities = {
    accessModes: ['SINGLE_NODE_WRITER'],
    accessTypes: ['mount'],
    fsTypes: ['ext4'],
    cloneVolume: false,
    onlineExpansion: false,
  };
  readonly topologyKeys: string[] = [];
  readonly volumes = new Map<string, Volume>();
  readonly snapshots = new Map<string, Snapshot>();
  readonly volumeRequests: CreateVolumeRequest[] = [];
  readonly snapshotRequests: CreateSnapshotRequest[] = [];
  gate: Promise<void> | undefined;
  /** Thrown by the next create, if set. */
  failure: Error | undefined;
  ready = true;
  closed = false;

  async probe(): Promise<boolean> {
    return this.ready;
  }

  async createVolume(request: CreateVolumeRequest): Promise<Volume> {
    this.volumeRequests.push(request);
    await this.gate;
    if (this.failure) throw this.failure;
    const volume: Volume = {
      id: request.name,
      capacityBytes: request.requiredBytes,
      context: {},
      accessibleTopology: [],
      ...(request.source && { source: request.source }),
    };
    this.volumes.set(volume.id, volume);
    return volume;
  }

  async deleteVolume(volumeId: string): Promise<void> {
    this.volumes.delete(volumeId);
  }

  async getVolume(volumeId: string): Promise<Volume | undefined> {
    return this.volumes.get(volumeId);
  }

  async listVolumes(options: ListOptions): Promise<Page<Volume>> {
    return paginate([...this.volumes.values()], (v) => v.id, options);
  }

  async createSnapshot(request: CreateSnapshotRequest): Promise<Snapshot> {
    this.snapshotRequests.push(request);
    if (this.failure) throw this.failure;
    const volume = this.volumes.get(request.sourceVolumeId);
    if (!volume) throw notFound(`volume ${request.sourceVolumeId} does not exist`);
    const snapshot: Snapshot = {
      id: request.name,
      sourceVolumeId: volume.id,
      sizeBytes: volume.capacityBytes,
      creationTime: new Date('2026-01-01T00:00:00Z'),
      readyToUse: false,
    };
    this.snapshots.set(snapshot.id, snapshot);
    return snapshot;
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    this.snapshots.delete(snapshotId);
  }

  async getSnapshot(snapshotId: string): Promise<Snapshot | undefined> {
    return this.snapshots.get(snapshotId);
  }

  async listSnapshots(options: SnapshotListOptions): Promise<Page<Snapshot>> {
    const matching = [...this.snapshots.values()].filter(
      (s) => !options.sourceVolumeId || s.sourceVolumeId === options.sourceVolumeId,
    );
    return paginate(matching, (s) => s.id, options);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

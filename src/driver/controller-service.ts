import type { ControllerHandlers } from '../gen/csi/csi/v1/Controller.js';
import type { ControllerServiceCapability } from '../gen/csi/csi/v1/ControllerServiceCapability.js';
import type { AsyncHandlers } from '../csi/handlers.js';
import type { DiskBackend, Page, Snapshot } from './backend.js';
import {
  capabilityProblem,
  checkCapabilities,
  forceDeleteParameter,
  parseCapacityRange,
  parseForceDelete,
  parseMaxEntries,
  requireField,
  splitParameters,
  toCsiSnapshot,
  toCsiVolume,
  toTopologyRequirement,
  toVolumeCapabilities,
  toVolumeCapability,
  toVolumeSource,
} from './convert.js';
import { invalidArgument, notFound } from '../csi/errors.js';
import type { OperationLocks } from './operations.js';

type Rpc = NonNullable<ControllerServiceCapability['rpc']>['type'];

/** The controller RPCs this backend can serve, as ControllerGetCapabilities reports them. */
export function controllerCapabilities(backend: DiskBackend): Rpc[] {
  const rpcs: Rpc[] = [
    'CREATE_DELETE_VOLUME',
    'LIST_VOLUMES',
    'GET_VOLUME',
    'CREATE_DELETE_SNAPSHOT',
    'LIST_SNAPSHOTS',
  ];
  if (backend.getCapacity) rpcs.push('GET_CAPACITY');
  if (backend.expandVolume) rpcs.push('EXPAND_VOLUME');
  if (backend.capabilities.cloneVolume) rpcs.push('CLONE_VOLUME');
  return rpcs;
}

/**
 * The CSI Controller service over any DiskBackend: request checks and CSI's error codes here,
 * disk work in the backend. Publish/unpublish are not offered: the disks are attached by the
 * node service on the host that serves them.
 */
export function controllerService(
  backend: DiskBackend,
  locks: OperationLocks,
): Partial<AsyncHandlers<ControllerHandlers>> {
  const rpcs = controllerCapabilities(backend);
  return {
    async ControllerGetCapabilities() {
      return { capabilities: rpcs.map((type) => ({ rpc: { type } })) };
    },

    async CreateVolume(request) {
      const name = requireField(request.name, 'name');
      const capabilities = toVolumeCapabilities(request.volume_capabilities);
      checkCapabilities(capabilities, backend.capabilities);
      const { requiredBytes, limitBytes } = parseCapacityRange(request.capacity_range);
      const source = toVolumeSource(request.volume_content_source);
      if (source?.kind === 'volume' && !backend.capabilities.cloneVolume) {
        throw invalidArgument('this driver cannot create a volume from another volume (cloning)');
      }
      if (Object.keys(request.mutable_parameters).length > 0) {
        throw invalidArgument('mutable_parameters are not supported (no ModifyVolume)');
      }
      const { parameters, metadata } = splitParameters(request.parameters);
      const keys = [`volume/${name}`];
      if (source?.kind === 'volume') keys.push(`volume/${source.volumeId}`);
      const volume = await locks.run(keys, () =>
        backend.createVolume({
          name,
          requiredBytes,
          limitBytes,
          parameters,
          metadata,
          capabilities,
          source,
          accessibility: toTopologyRequirement(request.accessibility_requirements),
        }),
      );
      return { volume: toCsiVolume(volume) };
    },

    async DeleteVolume(request) {
      const id = requireField(request.volume_id, 'volume_id');
      await locks.run([`volume/${id}`], () => backend.deleteVolume(id));
      return {};
    },

    async ValidateVolumeCapabilities(request) {
      const id = requireField(request.volume_id, 'volume_id');
      const capabilities = toVolumeCapabilities(request.volume_capabilities);
      if (!(await backend.getVolume(id))) throw notFound(`volume ${id} does not exist`);
      const problems = capabilities
        .map((c) => capabilityProblem(c, backend.capabilities))
        .filter((p): p is string => p !== undefined);
      if (problems.length > 0) return { message: problems.join('; ') };
      return {
        confirmed: {
          volume_context: request.volume_context,
          volume_capabilities: request.volume_capabilities,
          parameters: request.parameters,
          mutable_parameters: request.mutable_parameters,
        },
      };
    },

    async ListVolumes(request) {
      const page = await backend.listVolumes({
        maxEntries: parseMaxEntries(request.max_entries),
        startingToken: request.starting_token || undefined,
      });
      return {
        entries: page.entries.map((v) => ({ volume: toCsiVolume(v) })),
        next_token: page.nextToken ?? '',
      };
    },

    async ControllerGetVolume(request) {
      const id = requireField(request.volume_id, 'volume_id');
      const volume = await backend.getVolume(id);
      if (!volume) throw notFound(`volume ${id} does not exist`);
      return { volume: toCsiVolume(volume), status: { published_node_ids: [] } };
    },

    ...(backend.getCapacity && {
      async GetCapacity(request) {
        const capabilities = request.volume_capabilities.map((c, i) =>
          toVolumeCapability(c, `volume_capabilities[${i}]`),
        );
        const { parameters } = splitParameters(request.parameters);
        const capacity = await backend.getCapacity!({
          parameters,
          capabilities,
          topology: request.accessible_topology
            ? { ...request.accessible_topology.segments }
            : undefined,
        });
        return {
          available_capacity: String(capacity.availableBytes),
          maximum_volume_size:
            capacity.maximumVolumeSizeBytes === undefined
              ? null
              : { value: String(capacity.maximumVolumeSizeBytes) },
          minimum_volume_size:
            capacity.minimumVolumeSizeBytes === undefined
              ? null
              : { value: String(capacity.minimumVolumeSizeBytes) },
        };
      },
    }),

    ...(backend.expandVolume && {
      async ControllerExpandVolume(request) {
        const id = requireField(request.volume_id, 'volume_id');
        if (!request.capacity_range) throw invalidArgument('capacity_range is required');
        const { requiredBytes, limitBytes } = parseCapacityRange(request.capacity_range);
        const capability = request.volume_capability
          ? toVolumeCapability(request.volume_capability)
          : undefined;
        const result = await locks.run([`volume/${id}`], () =>
          backend.expandVolume!({ volumeId: id, requiredBytes, limitBytes, capability }),
        );
        return {
          capacity_bytes: String(result.capacityBytes),
          node_expansion_required: result.nodeExpansionRequired,
        };
      },
    }),

    async CreateSnapshot(request) {
      const name = requireField(request.name, 'name');
      const sourceVolumeId = requireField(request.source_volume_id, 'source_volume_id');
      const { parameters: classParameters, metadata } = splitParameters(request.parameters);
      const forceDelete = parseForceDelete(classParameters);
      const parameters = { ...classParameters };
      delete parameters[forceDeleteParameter];
      const snapshot = await locks.run([`snapshot/${name}`, `volume/${sourceVolumeId}`], () =>
        backend.createSnapshot({ name, sourceVolumeId, forceDelete, parameters, metadata }),
      );
      return { snapshot: toCsiSnapshot(snapshot) };
    },

    async DeleteSnapshot(request) {
      const id = requireField(request.snapshot_id, 'snapshot_id');
      await locks.run([`snapshot/${id}`], () => backend.deleteSnapshot(id));
      return {};
    },

    async ListSnapshots(request) {
      const maxEntries = parseMaxEntries(request.max_entries);
      const startingToken = request.starting_token || undefined;
      const sourceVolumeId = request.source_volume_id || undefined;
      let page: Page<Snapshot>;
      if (request.snapshot_id) {
        // CSI: a snapshot id that does not exist gives an empty list, not NOT_FOUND.
        const snapshot = await backend.getSnapshot(request.snapshot_id);
        const matches = snapshot && (!sourceVolumeId || snapshot.sourceVolumeId === sourceVolumeId);
        page = { entries: matches ? [snapshot] : [] };
      } else {
        page = await backend.listSnapshots({ maxEntries, startingToken, sourceVolumeId });
      }
      return {
        entries: page.entries.map((s) => ({ snapshot: toCsiSnapshot(s) })),
        next_token: page.nextToken ?? '',
      };
    },
  };
}

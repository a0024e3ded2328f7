import type { ControllerHandlers } from '../gen/csi/csi/v1/Controller.js';
import type { GroupControllerHandlers } from '../gen/csi/csi/v1/GroupController.js';
import type { IdentityHandlers } from '../gen/csi/csi/v1/Identity.js';
import type { NodeHandlers } from '../gen/csi/csi/v1/Node.js';
import { toGrpcHandlers, type CallOutcome } from '../csi/handlers.js';
import { loadCsi, resolveCsiProto } from '../csi/proto.js';
import { serveCsi } from '../csi/server.js';
import { statusName } from '../csi/status.js';
import { silentLogger, type Logger } from '../observability/logger.js';
import { supportsGroupSnapshots, type DiskBackend } from './backend.js';
import { controllerService } from './controller-service.js';
import { groupControllerService } from './group-controller-service.js';
import { identityService } from './identity-service.js';
import { nodeService } from './node-service.js';
import { OperationLocks } from './operations.js';

export interface DriverOptions {
  backend: DiskBackend;
  /** unix:///path/csi.sock */
  endpoint: string;
  /** Required when the node service is served. */
  nodeId?: string;
  /** csi.proto; see resolveCsiProto for the default. */
  protoPath?: string;
  /** Serve the Controller service (default true). */
  controller?: boolean;
  /** Serve the Node service (default: when the backend has a node side). */
  node?: boolean;
  logger?: Logger;
  socketMode?: number;
}

export interface DriverHandle {
  socket: string;
  driverName: string;
  /** Stops serving, waits for running calls (up to `graceMs`) and closes the backend. */
  stop(graceMs?: number): Promise<void>;
}

const readOnlyMethods = new Set([
  'GetPluginInfo',
  'GetPluginCapabilities',
  'Probe',
  'ControllerGetCapabilities',
  'NodeGetCapabilities',
  'NodeGetInfo',
  'ListVolumes',
  'ListSnapshots',
  'ControllerGetVolume',
  'GetCapacity',
  'GroupControllerGetCapabilities',
  'GetVolumeGroupSnapshot',
  'NodeGetVolumeStats',
  'ValidateVolumeCapabilities',
]);

/**
 * Serves a backend as a CSI driver on a unix socket, in this process. `snapback driver` runs
 * it alone; `snapback all-in-one` embeds it beside the controllers.
 */
export async function startDriver(options: DriverOptions): Promise<DriverHandle> {
  const { backend } = options;
  const logger = options.logger ?? silentLogger();
  const servesController = options.controller ?? true;
  const servesNode = options.node ?? backend.node !== undefined;
  const servesGroups = servesController && supportsGroupSnapshots(backend);
  if (servesNode && !backend.node) {
    throw new Error(
      `backend ${backend.driverName} has no node side; it cannot serve the Node service`,
    );
  }
  if (servesNode && !options.nodeId)
    throw new Error('a node id is needed to serve the Node service');

  const protoPath = resolveCsiProto(options.protoPath);
  const csi = loadCsi(protoPath).csi.v1;
  const locks = new OperationLocks();
  const observe = (outcome: CallOutcome): void => {
    const entry = {
      method: outcome.method,
      code: statusName(outcome.code),
      durationMs: Math.round(outcome.durationMs),
      ...(outcome.message !== undefined && { error: outcome.message }),
    };
    if (outcome.code !== 0 && outcome.code !== 12) logger.warn('csi call failed', entry);
    else if (readOnlyMethods.has(outcome.method)) logger.debug('csi call', entry);
    else logger.info('csi call', entry);
  };

  const server = await serveCsi({
    endpoint: options.endpoint,
    protoPath,
    socketMode: options.socketMode,
    handlers: {
      identity: toGrpcHandlers<IdentityHandlers>(
        'Identity',
        csi.Identity.service,
        identityService(backend, servesController),
        observe,
      ),
      controller: servesController
        ? toGrpcHandlers<ControllerHandlers>(
            'Controller',
            csi.Controller.service,
            controllerService(backend, locks),
            observe,
          )
        : undefined,
      groupController: servesGroups
        ? toGrpcHandlers<GroupControllerHandlers>(
            'GroupController',
            csi.GroupController.service,
            groupControllerService(backend, locks),
            observe,
          )
        : undefined,
      node:
        servesNode && backend.node && options.nodeId
          ? toGrpcHandlers<NodeHandlers>(
              'Node',
              csi.Node.service,
              nodeService(backend.node, backend.capabilities, options.nodeId, locks),
              observe,
            )
          : undefined,
    },
  });
  logger.info('csi driver serving', {
    driver: backend.driverName,
    socket: server.socket,
    services: [
      servesController && 'controller',
      servesGroups && 'group-controller',
      servesNode && 'node',
    ]
      .filter(Boolean)
      .join(','),
  });

  let stopped: Promise<void> | undefined;
  return {
    socket: server.socket,
    driverName: backend.driverName,
    stop(graceMs) {
      stopped ??= (async () => {
        await server.stop(graceMs);
        await backend.close?.();
        logger.info('csi driver stopped', { driver: backend.driverName });
      })();
      return stopped;
    },
  };
}

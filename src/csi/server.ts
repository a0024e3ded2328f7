import * as grpc from '@grpc/grpc-js';

import type { ControllerHandlers } from '../gen/csi/csi/v1/Controller.js';
import type { GroupControllerHandlers } from '../gen/csi/csi/v1/GroupController.js';
import type { IdentityHandlers } from '../gen/csi/csi/v1/Identity.js';
import type { NodeHandlers } from '../gen/csi/csi/v1/Node.js';
import {
  grpcAddress,
  prepareSocket,
  restrictSocket,
  shutdownServer,
  socketPath,
} from './endpoint.js';
import { loadCsi } from './proto.js';

export interface CsiHandlers {
  identity: IdentityHandlers;
  /** Left out by a node-only driver. */
  controller?: ControllerHandlers;
  /** Served only by a driver whose backend can snapshot volumes together. */
  groupController?: GroupControllerHandlers;
  /** Left out by a controller-only driver. */
  node?: NodeHandlers;
}

export interface CsiServerOptions {
  /** unix:///path/csi.sock */
  endpoint: string;
  protoPath: string;
  handlers: CsiHandlers;
  /** File mode of the socket; only the owner and its group (the sidecars) may connect. */
  socketMode?: number;
}

export interface CsiServer {
  socket: string;
  /** Stops accepting calls, lets running calls finish for up to `graceMs`, removes the socket. */
  stop(graceMs?: number): Promise<void>;
}

export async function serveCsi(options: CsiServerOptions): Promise<CsiServer> {
  const socket = socketPath(options.endpoint);
  const csi = loadCsi(options.protoPath).csi.v1;
  const server = new grpc.Server();
  server.addService(csi.Identity.service, options.handlers.identity);
  if (options.handlers.controller) {
    server.addService(csi.Controller.service, options.handlers.controller);
  }
  if (options.handlers.groupController) {
    server.addService(csi.GroupController.service, options.handlers.groupController);
  }
  if (options.handlers.node) server.addService(csi.Node.service, options.handlers.node);

  await prepareSocket(socket);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(grpcAddress(socket), grpc.ServerCredentials.createInsecure(), (error) =>
      error ? reject(error) : resolve(),
    );
  });
  await restrictSocket(socket, options.socketMode ?? 0o660);

  let stopped: Promise<void> | undefined;
  return {
    socket,
    stop(graceMs = 5_000) {
      stopped ??= shutdownServer(server, socket, graceMs);
      return stopped;
    },
  };
}

import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import type * as grpc from '@grpc/grpc-js';
import net from 'node:net';
import path from 'node:path';

/**
 * A CSI endpoint: `unix:///abs/path.sock`, `unix:/abs/path.sock` or a bare absolute path.
 * CSI drivers are reached over unix sockets only, so nothing else is accepted.
 */
export function socketPath(endpoint: string): string {
  const withoutScheme = endpoint.startsWith('unix://')
    ? endpoint.slice('unix://'.length)
    : endpoint.startsWith('unix:')
      ? endpoint.slice('unix:'.length)
      : endpoint;
  if (!path.isAbsolute(withoutScheme) || /^[a-z]+:/i.test(withoutScheme)) {
    throw new Error(
      `endpoint "${endpoint}" is not a unix socket: use unix:///absolute/path/csi.sock`,
    );
  }
  return path.normalize(withoutScheme);
}

/** The grpc-js address of a socket path. */
export const grpcAddress = (socket: string): string => `unix://${socket}`;

/** True when a process accepts connections on the socket. */
function socketIsLive(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const connection = net.connect(socket);
    connection.once('connect', () => {
      connection.destroy();
      resolve(true);
    });
    connection.once('error', () => resolve(false));
  });
}

/**
 * Makes `socket` free to bind: creates its directory and removes a socket file left by a
 * process that died. A socket some process still serves, or a file that is not a socket,
 * is left alone and reported.
 */
export async function prepareSocket(socket: string): Promise<void> {
  await mkdir(path.dirname(socket), { recursive: true });
  let stats;
  try {
    stats = await lstat(socket);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!stats.isSocket()) {
    throw new Error(`${socket} exists and is not a socket; refusing to replace it`);
  }
  if (await socketIsLive(socket)) {
    throw new Error(`${socket} is served by another running process`);
  }
  await unlink(socket);
}

export async function restrictSocket(socket: string, mode: number): Promise<void> {
  await chmod(socket, mode);
}

export async function removeSocket(socket: string): Promise<void> {
  await unlink(socket).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

/**
 * Stops a gRPC server on a unix socket: in-flight calls may finish for `graceMs`, then the rest
 * are cut off; the socket is unlinked either way.
 */
export async function shutdownServer(
  server: grpc.Server,
  socket: string,
  graceMs: number,
): Promise<void> {
  await new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
  await removeSocket(socket);
}

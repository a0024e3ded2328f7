import { existsSync } from 'node:fs';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

import { grpcAddress, prepareSocket, restrictSocket, shutdownServer } from './endpoint.js';
import { packagedFile, protoLoaderOptions } from './proto.js';

/**
 * kubelet's plugin registration API v1 (k8s.io/kubelet pkg/apis/pluginregistration/v1), which a
 * node plugin serves on a socket in kubelet's plugins_registry directory: kubelet's plugin
 * watcher finds the socket, asks GetInfo where the CSI driver is, and reports the outcome with
 * NotifyRegistrationStatus.
 *
 * The API is four small messages frozen at v1, so their shapes are written out here rather than
 * generated: with `protoLoaderOptions` (keepCase, defaults) the loaded objects are exactly these.
 */
export interface PluginInfo {
  /** "CSIPlugin" for a CSI driver. */
  type: string;
  name: string;
  /** The driver's socket as kubelet, on the node, dials it. */
  endpoint: string;
  supported_versions: string[];
}

export interface RegistrationStatus {
  plugin_registered: boolean;
  error: string;
}

/** The environment variable naming pluginregistration.proto when no flag names it. */
export const registrationProtoEnv = 'SNAPBACK_REGISTRATION_PROTO';

/**
 * Where pluginregistration.proto is: `--registration-proto` when given, else
 * $SNAPBACK_REGISTRATION_PROTO when set, else `pluginregistration.proto` in dist/ (where the
 * build copies it). A path that was asked for must exist: falling back to another copy would
 * hide the mistake. The file comes from the Go module k8s.io/kubelet pinned in
 * tools/kubelet-api, never from this repository.
 */
export function resolveRegistrationProto(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const fromEnv = env[registrationProtoEnv];
  const [where, file] = explicit
    ? ['--registration-proto', explicit]
    : fromEnv
      ? [`$${registrationProtoEnv}`, fromEnv]
      : ['the build output', packagedFile('pluginregistration.proto')];
  if (existsSync(file)) return file;
  throw new Error(
    `pluginregistration.proto not found at ${file} (from ${where}); pass ` +
      `--registration-proto=<path> or set ${registrationProtoEnv}. \`make build\` copies it ` +
      `into dist/ from the Go module k8s.io/kubelet (\`bash tools/build.sh paths\` prints ` +
      `PLUGIN_REGISTRATION_PROTO).`,
  );
}

interface RegistrationPackage {
  pluginregistration: { Registration: grpc.ServiceClientConstructor };
}

/** The Registration service's constructor (a client) and definition (`.service`). */
export function loadRegistration(protoPath: string): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync(protoPath, protoLoaderOptions);
  const loaded = grpc.loadPackageDefinition(definition) as unknown as RegistrationPackage;
  const service = loaded.pluginregistration?.Registration;
  if (!service) {
    throw new Error(`${protoPath} defines no service pluginregistration.Registration`);
  }
  return service;
}

export interface RegistrationServerOptions {
  /** `<plugin-registration-path>/<driver>-reg.sock` */
  socket: string;
  protoPath: string;
  info: PluginInfo;
  /** Called with each NotifyRegistrationStatus, after kubelet has been answered. */
  onStatus(status: RegistrationStatus): void;
}

export interface RegistrationServer {
  socket: string;
  /** Stops serving and removes the socket, so kubelet's plugin watcher deregisters the plugin. */
  stop(graceMs?: number): Promise<void>;
}

/** Serves the Registration service on a unix socket, replacing a stale socket left behind. */
export async function serveRegistration(
  options: RegistrationServerOptions,
): Promise<RegistrationServer> {
  const registration = loadRegistration(options.protoPath);
  const server = new grpc.Server();
  server.addService(registration.service, {
    GetInfo(
      _call: grpc.ServerUnaryCall<object, PluginInfo>,
      callback: grpc.sendUnaryData<PluginInfo>,
    ) {
      callback(null, options.info);
    },
    NotifyRegistrationStatus(
      call: grpc.ServerUnaryCall<RegistrationStatus, object>,
      callback: grpc.sendUnaryData<object>,
    ) {
      callback(null, {});
      options.onStatus(call.request);
    },
  });

  await prepareSocket(options.socket);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(
      grpcAddress(options.socket),
      grpc.ServerCredentials.createInsecure(),
      (error) => (error ? reject(error) : resolve()),
    );
  });
  // kubelet dials it as root; nobody else on the node needs to
  await restrictSocket(options.socket, 0o600);

  let stopped: Promise<void> | undefined;
  return {
    socket: options.socket,
    stop(graceMs = 2_000) {
      stopped ??= shutdownServer(server, options.socket, graceMs);
      return stopped;
    },
  };
}

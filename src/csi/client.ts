import * as grpc from '@grpc/grpc-js';

import type { ControllerDefinition } from '../gen/csi/csi/v1/Controller.js';
import type { GroupControllerDefinition } from '../gen/csi/csi/v1/GroupController.js';
import type { IdentityDefinition } from '../gen/csi/csi/v1/Identity.js';
import type { NodeDefinition } from '../gen/csi/csi/v1/Node.js';
import { grpcAddress, socketPath } from './endpoint.js';
import { loadCsi } from './proto.js';
import { isGrpcError } from './status.js';

export interface CallOptions {
  /** Milliseconds before the call fails with DEADLINE_EXCEEDED; the client's default if absent. */
  timeoutMs?: number;
  /** Cancels the call (it fails with CANCELLED) when it aborts, e.g. once leadership is lost. */
  signal?: AbortSignal;
}

/** A CSI service's RPCs as promise-returning methods: `CreateVolume` becomes `createVolume`. */
export type PromiseClient<D> = {
  [K in keyof D as string extends K ? never : Uncapitalize<K & string>]: D[K] extends {
    requestSerialize: (value: infer Request) => Buffer;
    responseDeserialize: (bytes: Buffer) => infer Response;
  }
    ? (request: Request, options?: CallOptions) => Promise<Response>
    : never;
};

export interface CsiClient {
  identity: PromiseClient<IdentityDefinition>;
  controller: PromiseClient<ControllerDefinition>;
  /**
   * CreateVolumeGroupSnapshot, DeleteVolumeGroupSnapshot, GetVolumeGroupSnapshot and
   * GroupControllerGetCapabilities; a driver without the service answers UNIMPLEMENTED.
   */
  groupController: PromiseClient<GroupControllerDefinition>;
  node: PromiseClient<NodeDefinition>;
  /** Resolves once the socket accepts a connection, or rejects after `timeoutMs`. */
  waitForReady(timeoutMs: number): Promise<void>;
  close(): void;
}

export interface CsiClientOptions {
  protoPath: string;
  /** Default per-call timeout; none when absent. */
  timeoutMs?: number;
}

/**
 * A typed CSI client over one channel to `endpoint` (unix:///path/csi.sock), for the
 * sidecar, the provisioner and tests. Failed calls reject with the grpc-js ServiceError
 * (`code`, `details`); see `isGrpcError` in ./status.ts.
 */
export function connectCsi(endpoint: string, options: CsiClientOptions): CsiClient {
  const csi = loadCsi(options.protoPath).csi.v1;
  const address = grpcAddress(socketPath(endpoint));
  const credentials = grpc.credentials.createInsecure();
  const identity = new csi.Identity(address, credentials);
  const shared = { channelOverride: identity.getChannel() };
  const controller = new csi.Controller(address, credentials, shared);
  const node = new csi.Node(address, credentials, shared);
  const groupController = new csi.GroupController(address, credentials, shared);

  return {
    identity: promisify(identity, csi.Identity.service, options.timeoutMs),
    controller: promisify(controller, csi.Controller.service, options.timeoutMs),
    node: promisify(node, csi.Node.service, options.timeoutMs),
    groupController: promisify(groupController, csi.GroupController.service, options.timeoutMs),
    waitForReady(timeoutMs) {
      return new Promise((resolve, reject) => {
        identity.waitForReady(Date.now() + timeoutMs, (error) =>
          error ? reject(error) : resolve(),
        );
      });
    },
    close() {
      identity.close();
    },
  };
}

/** Where CSI call durations are observed (the csiOperationDuration histogram of our metrics). */
export interface CallTimer {
  startTimer(labels: { driver: string; method: string }): (labels: { code: string }) => void;
}

/**
 * The same client with every call timed by method and gRPC status code name (OK,
 * FAILED_PRECONDITION, ...), so /metrics shows what the sidecar and the provisioner asked of
 * the driver and how it answered.
 */
export function timedCsiClient<T extends object>(client: T, driver: string, timer: CallTimer): T {
  return new Proxy(client, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return async (...args: unknown[]) => {
        const end = timer.startTimer({ driver, method: property });
        try {
          const response: unknown = await (value as (...a: unknown[]) => unknown).apply(
            target,
            args,
          );
          end({ code: 'OK' });
          return response;
        } catch (error) {
          end({ code: isGrpcError(error) ? grpc.status[error.code] : 'UNKNOWN' });
          throw error;
        }
      };
    },
  });
}

/** A call refused before it was sent: the same code a cancelled call fails with. */
function cancelled(signal: AbortSignal): grpc.ServiceError {
  const reason = signal.reason instanceof Error ? signal.reason.message : 'aborted';
  return Object.assign(new Error(`1 CANCELLED: ${reason}`), {
    code: grpc.status.CANCELLED,
    details: reason,
    metadata: new grpc.Metadata(),
  });
}

type Callback = (error: grpc.ServiceError | null, response?: unknown) => void;
type RawMethod = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: Callback,
) => grpc.ClientUnaryCall;

function promisify<D>(
  client: grpc.Client,
  definition: grpc.ServiceDefinition,
  defaultTimeoutMs: number | undefined,
): PromiseClient<D> {
  const methods: Record<string, (request: unknown, options?: CallOptions) => Promise<unknown>> = {};
  const raw = client as unknown as Record<string, RawMethod>;
  for (const name of Object.keys(definition)) {
    const method = raw[name];
    if (!method) continue;
    methods[name.charAt(0).toLowerCase() + name.slice(1)] = (request, options) =>
      new Promise((resolve, reject) => {
        const timeoutMs = options?.timeoutMs ?? defaultTimeoutMs;
        const callOptions: grpc.CallOptions =
          timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs };
        const signal = options?.signal;
        if (signal?.aborted) {
          reject(cancelled(signal));
          return;
        }
        const cancel = () => call.cancel();
        const call = method.call(
          client,
          request,
          new grpc.Metadata(),
          callOptions,
          (error, response) => {
            signal?.removeEventListener('abort', cancel);
            if (error) reject(error);
            else resolve(response);
          },
        );
        signal?.addEventListener('abort', cancel, { once: true });
      });
  }
  return methods as PromiseClient<D>;
}

import * as grpc from '@grpc/grpc-js';

import { toServiceError } from './status.js';

/** A service's handlers as async functions from request to response (no grpc-js call objects). */
export type AsyncHandlers<H> = {
  [K in keyof H as string extends K ? never : K]: H[K] extends grpc.handleUnaryCall<
    infer Request,
    infer Response
  >
    ? (request: Request) => Promise<Response>
    : never;
};

export interface CallOutcome {
  service: string;
  method: string;
  code: grpc.status;
  durationMs: number;
  /** The error text, when the call failed. */
  message?: string;
}

/**
 * grpc-js handlers for `definition`: each implemented method's result or thrown DiskError
 * becomes the response or status; a method left out answers UNIMPLEMENTED, as CSI expects
 * for an RPC whose capability is not offered.
 */
export function toGrpcHandlers<H extends grpc.UntypedServiceImplementation>(
  service: string,
  definition: grpc.ServiceDefinition,
  implementation: Partial<AsyncHandlers<H>>,
  observe: (outcome: CallOutcome) => void,
): H {
  const impl = implementation as Record<
    string,
    ((request: unknown) => Promise<unknown>) | undefined
  >;
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of Object.keys(definition)) {
    const fn = impl[method];
    handlers[method] = (
      call: grpc.ServerUnaryCall<unknown, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      const started = performance.now();
      const finish = (code: grpc.status, message?: string): void =>
        observe({ service, method, code, durationMs: performance.now() - started, message });
      if (!fn) {
        finish(grpc.status.UNIMPLEMENTED);
        callback({
          code: grpc.status.UNIMPLEMENTED,
          details: `${service}.${method} is not offered`,
        });
        return;
      }
      fn(call.request).then(
        (response) => {
          finish(grpc.status.OK);
          callback(null, response);
        },
        (error: unknown) => {
          const status = toServiceError(error);
          finish(status.code ?? grpc.status.INTERNAL, status.details);
          callback(status);
        },
      );
    };
  }
  return handlers as H;
}

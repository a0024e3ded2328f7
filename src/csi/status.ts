import * as grpc from '@grpc/grpc-js';

import { DiskError, type DiskErrorCode } from './errors.js';

const grpcCodes: Record<DiskErrorCode, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  NOT_FOUND: grpc.status.NOT_FOUND,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  OUT_OF_RANGE: grpc.status.OUT_OF_RANGE,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  ABORTED: grpc.status.ABORTED,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  DEADLINE_EXCEEDED: grpc.status.DEADLINE_EXCEEDED,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  UNIMPLEMENTED: grpc.status.UNIMPLEMENTED,
  INTERNAL: grpc.status.INTERNAL,
};

/** The gRPC status a thrown value is answered with: a DiskError's own code, else INTERNAL. */
export function toServiceError(error: unknown): Partial<grpc.ServiceError> {
  if (error instanceof DiskError) {
    return { code: grpcCodes[error.code], details: error.message };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: grpc.status.INTERNAL, details: message };
}

/** A gRPC error as a client sees it, with the numeric code. */
export function isGrpcError(error: unknown, code?: grpc.status): error is grpc.ServiceError {
  return (
    typeof error === 'object' &&
    error !== null &&
    'code' in error &&
    typeof (error as { code: unknown }).code === 'number' &&
    (code === undefined || (error as grpc.ServiceError).code === code)
  );
}

export const statusName = (code: grpc.status): string => grpc.status[code] ?? String(code);

/** The gRPC status code of an error from a CSI call, or undefined for any other error. */
export function grpcCodeOf(error: unknown): grpc.status | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  if (typeof code !== 'number' || !Number.isInteger(code)) return undefined;
  return code >= grpc.status.OK && code <= grpc.status.UNAUTHENTICATED ? code : undefined;
}

/** The part of an error a user can act on: gRPC `details` rather than "9 FAILED_PRECONDITION: ...". */
export function messageOf(error: unknown): string {
  const details = (error as { details?: unknown } | null | undefined)?.details;
  if (typeof details === 'string' && details) {
    const code = grpcCodeOf(error);
    return code === undefined ? details : `${grpc.status[code]}: ${details}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * The one error type a disk backend throws for an outcome the caller can act on. The CSI
 * services turn `code` into the gRPC status code of the same name, as the CSI spec prescribes
 * for each RPC; any other thrown value becomes INTERNAL.
 */
export type DiskErrorCode =
  /** A malformed or unsupported request: a bad name, an unknown parameter, a missing field. */
  | 'INVALID_ARGUMENT'
  /** The volume, snapshot or node named in the request does not exist. */
  | 'NOT_FOUND'
  /** A volume or snapshot of that name exists with incompatible properties. */
  | 'ALREADY_EXISTS'
  /** The request is valid but the current state forbids it (e.g. a snapshot with dependents). */
  | 'FAILED_PRECONDITION'
  /** A size outside what the backend or the source allows. */
  | 'OUT_OF_RANGE'
  /** No space or quota left for the volume or snapshot. */
  | 'RESOURCE_EXHAUSTED'
  /** An operation on the same volume or snapshot is already in progress; retry later. */
  | 'ABORTED'
  /** The backing service cannot be reached or throttles us; retry later. */
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  | 'PERMISSION_DENIED'
  | 'UNIMPLEMENTED'
  | 'INTERNAL';

export class DiskError extends Error {
  override readonly name = 'DiskError';

  constructor(
    readonly code: DiskErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isDiskError(error: unknown, code?: DiskErrorCode): error is DiskError {
  return error instanceof DiskError && (code === undefined || error.code === code);
}

export const invalidArgument = (message: string): DiskError =>
  new DiskError('INVALID_ARGUMENT', message);
export const notFound = (message: string): DiskError => new DiskError('NOT_FOUND', message);
export const alreadyExists = (message: string): DiskError =>
  new DiskError('ALREADY_EXISTS', message);
export const failedPrecondition = (message: string): DiskError =>
  new DiskError('FAILED_PRECONDITION', message);
export const outOfRange = (message: string): DiskError => new DiskError('OUT_OF_RANGE', message);
export const resourceExhausted = (message: string): DiskError =>
  new DiskError('RESOURCE_EXHAUSTED', message);
export const aborted = (message: string): DiskError => new DiskError('ABORTED', message);
export const unavailable = (message: string): DiskError => new DiskError('UNAVAILABLE', message);

/** An ECS API error as the gateway returns it: an HTTP status and a `{Code, Message}` body. */
export class EcsApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Milliseconds, sent as `x-acs-retry-after` (what the SDK exposes as `retryAfter`). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export const missingParameter = (name: string) =>
  new EcsApiError(
    400,
    'MissingParameter',
    `The input parameter "${name}" that is mandatory for processing this request is not supplied.`,
  );

export const invalidParameter = (name: string, why: string) =>
  new EcsApiError(
    400,
    `InvalidParameter`,
    `The specified parameter "${name}" is not valid: ${why}`,
  );

export const throttled = (retryAfterMs?: number) =>
  new EcsApiError(
    400,
    'Throttling.User',
    'Request was denied due to user flow control.',
    retryAfterMs,
  );

export const internalError = () =>
  new EcsApiError(
    500,
    'InternalError',
    'The request processing has failed due to some unknown error, exception or failure.',
  );

export const serviceUnavailable = () =>
  new EcsApiError(
    503,
    'ServiceUnavailable',
    'The request has failed due to a temporary failure of the server.',
  );

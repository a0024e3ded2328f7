/**
 * A failed API request, carrying the HTTP code and the `reason` of the API server's Status
 * (`NotFound`, `AlreadyExists`, `Conflict`, `Expired`, `Gone`, `Invalid`, ...).
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }

  /** Builds the error from a Status body (or whatever the server sent instead). */
  static fromResponse(code: number, body: string, what: string): ApiError {
    try {
      const status = JSON.parse(body) as { reason?: string; message?: string; kind?: string };
      if (status.kind === 'Status') {
        return new ApiError(
          code,
          status.reason ?? reasonForCode(code),
          `${what}: ${status.message ?? body}`,
        );
      }
    } catch {
      // not JSON: fall through to the raw text
    }
    return new ApiError(code, reasonForCode(code), `${what}: HTTP ${code} ${body.slice(0, 200)}`);
  }
}

function reasonForCode(code: number): string {
  switch (code) {
    case 404:
      return 'NotFound';
    case 409:
      return 'Conflict';
    case 410:
      return 'Gone';
    case 422:
      return 'Invalid';
    case 403:
      return 'Forbidden';
    case 401:
      return 'Unauthorized';
    case 429:
      return 'TooManyRequests';
    default:
      return code >= 500 ? 'InternalError' : 'Unknown';
  }
}

function codeOf(error: unknown): number | undefined {
  if (error instanceof ApiError) return error.code;
  const code = (error as { code?: unknown; statusCode?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

export const isNotFound = (error: unknown): boolean => codeOf(error) === 404;

/** 409 AlreadyExists (a create lost to an existing object). */
export const isAlreadyExists = (error: unknown): boolean =>
  error instanceof ApiError && error.code === 409 && error.reason === 'AlreadyExists';

/** 409 Conflict (a stale resourceVersion or a failed JSON-patch `test`). */
export const isConflict = (error: unknown): boolean =>
  codeOf(error) === 409 && !(error instanceof ApiError && error.reason === 'AlreadyExists');

/** 410 Gone / Expired: a resourceVersion too old to watch or list from. */
export const isGone = (error: unknown): boolean => codeOf(error) === 410;

/**
 * Thrown by a reconciler for an error no retry can fix (an invalid spec): the work queue
 * forgets the key instead of backing off, until the object changes again.
 */
export class TerminalError extends Error {
  override readonly name = 'TerminalError';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

// The one error registry. Every error a caller can see has a stable code, an HTTP
// status and whether a retry with the same body can succeed. docs/errors.md lists the
// same codes; test/unit/errors.test.ts fails when the two drift apart.

export interface ErrorSpec {
  readonly status: number;
  readonly retryable: boolean;
  readonly message: string;
}

export const ERRORS = {
  BAD_REQUEST: { status: 400, retryable: false, message: 'The request is not valid HTTP/1.1' },
  INVALID_JSON: { status: 400, retryable: false, message: 'Request body is not valid JSON' },
  INVALID_FIELD: { status: 400, retryable: false, message: 'A field is missing or invalid' },
  SIGNATURE_INVALID: { status: 401, retryable: false, message: 'Signature does not verify' },
  UNKNOWN_KEY: { status: 401, retryable: false, message: 'Signing key id is not active' },
  UNAUTHORIZED: { status: 401, retryable: false, message: 'Missing, invalid or revoked API key' },
  NOT_FOUND: { status: 404, retryable: false, message: 'Not found' },
  METHOD_NOT_ALLOWED: { status: 405, retryable: false, message: 'Method not allowed' },
  REQUEST_TIMEOUT: { status: 408, retryable: true, message: 'The request (headers or body) did not arrive in time' },
  PAYLOAD_TOO_LARGE: { status: 413, retryable: false, message: 'Request body is over the limit' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false, message: 'Content-Type must be application/json' },
  HEADERS_TOO_LARGE: { status: 431, retryable: false, message: 'Request line and headers are over the limit' },
  TIMESTAMP_OUT_OF_RANGE: { status: 422, retryable: false, message: 'Timestamp is too old or too far in the future' },
  RANGE_TOO_LARGE: { status: 400, retryable: false, message: 'The requested range holds too many windows' },
  QUERY_TOO_EXPENSIVE: { status: 400, retryable: false, message: 'The query would return or read more rows than the server allows; narrow the range or use a coarser granularity' },
  RATE_LIMITED: { status: 429, retryable: true, message: 'Too many requests' },
  UNAVAILABLE: { status: 503, retryable: true, message: 'Temporarily unavailable, retry later' },
  OVERLOADED: { status: 503, retryable: true, message: 'The pipeline is too far behind to take more clicks now; nothing was accepted, retry after Retry-After' },
  INTERNAL: { status: 500, retryable: true, message: 'Internal error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly field?: string;
  /** Seconds for a Retry-After header (429/503). */
  readonly retryAfterSec?: number;

  constructor(code: ErrorCode, message?: string, opts: { field?: string; cause?: unknown; retryAfterSec?: number } = {}) {
    // An answer we chose (401, 429, a shed 503, ...) needs no stack, and capturing one is
    // most of what a refused request costs in a flood (issue 16): only INTERNAL keeps it.
    const limit = Error.stackTraceLimit;
    if (code !== 'INTERNAL') Error.stackTraceLimit = 0;
    try {
      super(message ?? ERRORS[code].message, { cause: opts.cause });
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'AppError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.retryable = ERRORS[code].retryable;
    this.field = opts.field;
    this.retryAfterSec = opts.retryAfterSec;
  }

  toBody(): ErrorBody {
    return errorBody(this.code, this.message, this.field);
  }
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; field?: string };
}

export function errorBody(code: ErrorCode, message?: string, field?: string): ErrorBody {
  const error: ErrorBody['error'] = { code, message: message ?? ERRORS[code].message };
  if (field !== undefined) error.field = field;
  return { error };
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof Error && typeof (err as AppError).code === 'string' && (err as AppError).code in ERRORS;
}

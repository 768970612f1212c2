// Pieces both OpenAPI documents (src/gateway/openapi.ts, src/query/openapi.ts) are built
// from. Error responses are derived from the one error registry (errors.ts): a code's HTTP
// status and its description come from there, so a document cannot put a code under the
// wrong status or describe it differently from the code that answers it.
import { ERRORS, type ErrorCode } from './errors.ts';

/** A JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1) or any OpenAPI object: plain JSON. */
export type JsonObject = { readonly [key: string]: unknown };

export interface OpenApiDocument extends JsonObject {
  readonly openapi: '3.1.0';
  readonly info: { readonly title: string; readonly version: string; readonly description?: string };
  readonly paths: { readonly [path: string]: JsonObject };
  readonly components: JsonObject;
}

/**
 * Specification extensions (OpenAPI 3.1 §4.9) for answers no operation describes: OpenAPI
 * has no place for "any other path" or "any other method on this path", yet both answer
 * documented errors that clients see (404 NOT_FOUND, 405 METHOD_NOT_ALLOWED).
 */
export const UNMATCHED_EXTENSION = 'x-adclick-unmatched';
export const OTHER_METHODS_EXTENSION = 'x-adclick-other-methods';
/**
 * Answers any request can get from the HTTP parser before it reaches a route (not HTTP,
 * headers too large, too slow): same error shape, no per-service headers, connection closed.
 */
export const CONNECTION_EXTENSION = 'x-adclick-any-request';

const CONNECTION_NOTES: Partial<Record<ErrorCode, string>> = {
  BAD_REQUEST: 'the bytes are not an HTTP/1.1 request (bad request line, bad chunked framing, both Content-Length and Transfer-Encoding, ...)',
  REQUEST_TIMEOUT: 'the headers did not arrive within ADCLICK_HTTP_HEADERS_TIMEOUT_MS (default 10 s) or the whole request within ADCLICK_HTTP_REQUEST_TIMEOUT_MS (default 30 s); send it again, faster',
  HEADERS_TOO_LARGE: 'request line and headers over 16 KiB (Node\'s limit)',
};

/** The connection-level answers (CONNECTION_EXTENSION), the same in both documents. */
export function connectionErrors(codes: readonly ErrorCode[]): JsonObject {
  return {
    description: 'Any path and method: answered by the HTTP parser before routing, and the connection is closed.',
    responses: errorResponses(codes, { retryAfter: () => false, notes: CONNECTION_NOTES }),
  };
}

export const MAX_ID = Number.MAX_SAFE_INTEGER;

export const ref = (name: string, kind: 'schemas' | 'responses' | 'parameters' | 'headers' | 'securitySchemes' = 'schemas') =>
  ({ $ref: `#/components/${kind}/${name}` }) as const;

/** `{"error": {...}}` and its inner object, with the codes this service can answer. */
export function errorSchemas(codes: readonly ErrorCode[]): { ErrorDetail: JsonObject; Error: JsonObject } {
  return {
    ErrorDetail: {
      type: 'object',
      description: 'Branch on `code`, never on `message`. Codes are stable; new ones are only ever added (docs/errors.md).',
      required: ['code', 'message'],
      additionalProperties: false,
      properties: {
        code: { type: 'string', enum: [...codes], pattern: '^[A-Z][A-Z_]*$' },
        message: { type: 'string', description: 'A human sentence; may change at any time.' },
        field: { type: 'string', description: 'The request field at fault (`clicks[3].ad_id` in a batch), when there is one.' },
      },
    },
    Error: {
      type: 'object',
      description: 'The one shape of every error body.',
      required: ['error'],
      additionalProperties: false,
      properties: { error: ref('ErrorDetail') },
    },
  };
}

export interface ErrorResponseOptions {
  /** Headers of every error response (e.g. the gateway's traceresponse). */
  readonly headers?: (status: number) => JsonObject;
  /** Whether answers with this code carry Retry-After. */
  readonly retryAfter: (code: ErrorCode) => boolean;
  /** Extra words on a code at this operation (why it happens here). */
  readonly notes?: Partial<Record<ErrorCode, string>>;
}

/**
 * One response per HTTP status the codes map to, each the shared Error schema narrowed to
 * exactly the codes of that status at this operation.
 */
export function errorResponses(codes: readonly ErrorCode[], o: ErrorResponseOptions): Record<string, JsonObject> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = ERRORS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, JsonObject> = {};
  for (const [status, group] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    const retry = group.map(o.retryAfter);
    if (retry.some((r) => r !== retry[0])) throw new Error(`codes of status ${status} disagree on Retry-After: ${group.join(', ')}`);
    const headers: Record<string, unknown> = { ...(o.headers?.(status) ?? {}) };
    if (retry[0]) headers['Retry-After'] = ref('RetryAfter', 'headers');
    out[String(status)] = {
      description: group.map((c) => `\`${c}\`: ${o.notes?.[c] ?? ERRORS[c].message}`).join('; '),
      ...(Object.keys(headers).length ? { headers } : {}),
      content: {
        'application/json': {
          schema: {
            allOf: [
              ref('Error'),
              {
                type: 'object',
                properties: { error: { type: 'object', properties: { code: { type: 'string', enum: group } } } },
              },
            ],
          },
        },
      },
    };
  }
  return out;
}

export const RETRY_AFTER_HEADER: JsonObject = {
  description: 'Seconds to wait before retrying the same request.',
  required: true,
  schema: { type: 'string', pattern: '^[0-9]+$' },
};

/** Every GET operation is also served for HEAD (fastify exposes it): same status and headers, no body. */
export const HEAD_NOTE = 'Every GET operation also answers HEAD with the same status and headers and no body.';

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

// The gateway's OpenAPI 3.1 document, served at GET /openapi.json. It describes shared/API.md
// ("Click ingestion") plus the additive traceresponse header; test/unit/shared/openapi.test.ts
// checks it against the routes the app registers and the error registry, and
// test/integration/openapi.test.ts validates real answers against it.
import { ERRORS, type ErrorCode } from '../shared/errors.ts';
import { CONNECTION_ERROR_CODES } from '../shared/http-admission.ts';
import {
  CONNECTION_EXTENSION, HEAD_NOTE, MAX_ID, connectionErrors, RETRY_AFTER_HEADER, UNMATCHED_EXTENSION, deepFreeze, errorResponses, errorSchemas, ref,
  type JsonObject, type OpenApiDocument,
} from '../shared/openapi.ts';

/** Every code the gateway answers (docs/errors.md, "where" = gateway or all). */
export const GATEWAY_ERROR_CODES = [
  'INVALID_JSON', 'INVALID_FIELD', 'SIGNATURE_INVALID', 'UNKNOWN_KEY', 'NOT_FOUND', 'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE', 'TIMESTAMP_OUT_OF_RANGE', 'RATE_LIMITED', 'UNAVAILABLE', 'OVERLOADED', 'INTERNAL', ...CONNECTION_ERROR_CODES,
] as const satisfies readonly ErrorCode[];

/** Codes a single click of a batch can be rejected with (in its result, inside a 200). */
export const BATCH_ITEM_ERROR_CODES = ['INVALID_FIELD', 'SIGNATURE_INVALID', 'UNKNOWN_KEY', 'TIMESTAMP_OUT_OF_RANGE', 'UNAVAILABLE'] as const satisfies readonly ErrorCode[];

// Defaults of the configurable limits (README configuration table); the unit test compares them with config.ts.
export const GATEWAY_DOC_DEFAULTS = Object.freeze({ maxBodyBytes: 4096, maxBatchBodyBytes: 1_048_576, maxBatchClicks: 1000 });

const ID_CHARS = '^[A-Za-z0-9._:-]+$';

// The gateway writes traceresponse on every answer it routes, errors included.
const traced = (): JsonObject => ({ traceresponse: ref('TraceResponse', 'headers') });
const errors = (codes: readonly ErrorCode[], notes?: Partial<Record<ErrorCode, string>>) =>
  // The gateway sends Retry-After with every retryable error (the registry's flag), 500 included.
  errorResponses(codes, { headers: traced, retryAfter: (c) => ERRORS[c].retryable, notes });

const json = (schema: JsonObject) => ({ 'application/json': { schema } });

const NOTES: Partial<Record<ErrorCode, string>> = {
  INVALID_FIELD: 'a field is missing or invalid; `field` names it',
  PAYLOAD_TOO_LARGE: `body over the limit (default ${GATEWAY_DOC_DEFAULTS.maxBodyBytes} bytes single, ${GATEWAY_DOC_DEFAULTS.maxBatchBodyBytes} batch; ADCLICK_MAX_BODY_BYTES, ADCLICK_MAX_BATCH_BODY_BYTES)`,
  UNSUPPORTED_MEDIA_TYPE: 'Content-Type is missing or not application/json',
  INVALID_JSON: 'the body is not JSON, is empty, or nests deeper than 8 levels',
  RATE_LIMITED: 'per-client-IP limit (default 100 requests/s, burst 200; IPv6 clients per /64), charged before the body is read, so bad requests count too; a batch pays one request per click before its signatures are checked. Retry-After at most 60 s',
  UNAVAILABLE: 'Kafka unreachable or its circuit breaker open; nothing was accepted, retry',
  OVERLOADED: 'back-pressure: the pipeline is more than ADCLICK_BACKPRESSURE_MAX_LAG records behind (committed consumer-group lag); nothing was accepted, retry after Retry-After (additive code)',
  INTERNAL: 'a bug; logged with details, never shown to the caller',
};

const clickSchema: JsonObject = {
  type: 'object',
  description: 'One signed click. Fields not listed here are ignored.',
  required: ['impression_id', 'ad_id', 'campaign_id', 'advertiser_id', 'user_id', 'timestamp', 'key_id', 'signature'],
  properties: {
    impression_id: {
      type: 'string', minLength: 8, maxLength: 128, pattern: ID_CHARS,
      description: 'With `event_type` the idempotency key: the same (impression_id, event_type) is counted at most once, ever.',
    },
    event_type: { type: 'string', const: 'click', default: 'click', description: 'Only `click` is accepted in v1.' },
    ad_id: ref('Id'),
    campaign_id: ref('Id'),
    advertiser_id: ref('Id'),
    user_id: { type: 'string', minLength: 1, maxLength: 128, pattern: ID_CHARS },
    timestamp: {
      type: 'integer', minimum: 1, maximum: MAX_ID,
      description: 'Event time, epoch milliseconds. Accepted from now − ADCLICK_MAX_CLICK_AGE_MS (default 24 h) to now + ADCLICK_MAX_CLOCK_SKEW_MS (default 5 min); otherwise 422 TIMESTAMP_OUT_OF_RANGE.',
    },
    key_id: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$', description: 'An active signing key id; otherwise 401 UNKNOWN_KEY.' },
    signature: {
      type: 'string', pattern: '^[0-9a-f]{64}$',
      description: 'lowercase_hex(HMAC_SHA256(secret_of(key_id), "v1|" + key_id + "|" + event_type + "|" + impression_id + "|" + ad_id + "|" + campaign_id + "|" + advertiser_id + "|" + user_id + "|" + timestamp)), numbers in plain decimal. Any other string: 401 SIGNATURE_INVALID.',
    },
  },
};

const doc: OpenApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'AdClick click ingestion gateway',
    version: '1',
    description: `The public contract of shared/API.md ("Click ingestion", default port 8080) plus additive fields. ${HEAD_NOTE} Every answer carries \`traceresponse\` (W3C trace context); a request may send \`traceparent\` to join a trace.`,
  },
  paths: {
    '/v1/clicks': {
      post: {
        operationId: 'postClick',
        summary: 'Ingest one signed click',
        description: 'A 202 `accepted` was durably written to Kafka (acks=all) before the answer and is never lost; any other answer (or none) may be retried with the same body and is then counted at most once.',
        parameters: [ref('traceparent', 'parameters')],
        requestBody: { required: true, description: `JSON, at most ${GATEWAY_DOC_DEFAULTS.maxBodyBytes} bytes by default.`, content: json(ref('Click')) },
        responses: {
          '202': {
            description: '`accepted`: durably written to Kafka; `duplicate`: accepted earlier, nothing new written (the safe end of a retry).',
            headers: traced(),
            content: json(ref('ClickAnswer')),
          },
          ...errors(['INVALID_JSON', 'INVALID_FIELD', 'SIGNATURE_INVALID', 'UNKNOWN_KEY', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'TIMESTAMP_OUT_OF_RANGE', 'RATE_LIMITED', 'UNAVAILABLE', 'OVERLOADED', 'INTERNAL'], NOTES),
        },
      },
    },
    '/v1/clicks/batch': {
      post: {
        operationId: 'postClickBatch',
        summary: 'Ingest up to 1000 signed clicks',
        description: 'One result per input click, in order. Request-level problems (bad JSON, too large, rate limited, Kafka down) answer the whole batch with the status codes of the single endpoint.',
        parameters: [ref('traceparent', 'parameters')],
        requestBody: { required: true, description: `JSON, at most ${GATEWAY_DOC_DEFAULTS.maxBatchBodyBytes} bytes by default.`, content: json(ref('ClickBatch')) },
        responses: {
          '200': { description: 'One result per input click, in order.', headers: traced(), content: json(ref('BatchAnswer')) },
          ...errors(['INVALID_JSON', 'INVALID_FIELD', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'RATE_LIMITED', 'UNAVAILABLE', 'OVERLOADED', 'INTERNAL'], {
            ...NOTES,
            INVALID_FIELD: `the body is not {"clicks": [...]} with 1 to ${GATEWAY_DOC_DEFAULTS.maxBatchClicks} clicks (ADCLICK_MAX_BATCH_CLICKS); field \`clicks\``,
          }),
        },
      },
    },
    '/healthz': {
      get: {
        operationId: 'gatewayHealth',
        summary: 'Process alive',
        responses: {
          '200': { description: 'Alive.', headers: traced(), content: json(ref('Health')) },
          ...errors(['INTERNAL'], NOTES),
        },
      },
    },
    '/readyz': {
      get: {
        operationId: 'gatewayReadiness',
        summary: 'Dependencies reachable',
        description: 'Ready when the Kafka producer is connected and its breaker closed. Redis is reported but never required (the gateway fails open without it).',
        responses: {
          '200': { description: 'Ready.', headers: traced(), content: json({ allOf: [ref('Readiness'), { type: 'object', properties: { status: { const: 'ready' } } }] }) },
          '503': { description: 'Not ready: Kafka is not reachable.', headers: traced(), content: json({ allOf: [ref('Readiness'), { type: 'object', properties: { status: { const: 'not_ready' } } }] }) },
          ...errors(['INTERNAL'], NOTES),
        },
      },
    },
    '/metrics': {
      get: {
        operationId: 'gatewayMetrics',
        summary: 'Prometheus metrics',
        description: 'With several workers (ADCLICK_GATEWAY_WORKERS) the sum over all of them; the back-pressure metrics (adclick_gateway_backpressure_*, adclick_gateway_pipeline_lag_records) come once, from the primary that reads the lag.',
        responses: {
          '200': { description: 'Prometheus text exposition format 0.0.4.', headers: traced(), content: { 'text/plain': { schema: { type: 'string' } } } },
          ...errors(['UNAVAILABLE', 'INTERNAL'], { ...NOTES, UNAVAILABLE: 'the metrics of the other gateway workers could not be collected; retry' }),
        },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'gatewayOpenApi',
        summary: 'This document',
        responses: {
          '200': { description: 'The OpenAPI 3.1 document of the gateway.', headers: traced(), content: json(ref('OpenApiDocument')) },
          ...errors(['INTERNAL'], NOTES),
        },
      },
    },
  },
  [UNMATCHED_EXTENSION]: {
    description: 'Any other path, or a documented path with another method: charged to the client\'s rate limit and answered before the body is read.',
    responses: errors(['NOT_FOUND', 'RATE_LIMITED'], { ...NOTES, NOT_FOUND: 'no such route' }),
  },
  [CONNECTION_EXTENSION]: connectionErrors(CONNECTION_ERROR_CODES),
  components: {
    schemas: {
      ...errorSchemas(GATEWAY_ERROR_CODES),
      Id: { type: 'integer', minimum: 1, maximum: MAX_ID, description: 'A positive integer below 2^53.' },
      Click: clickSchema,
      ClickBatch: {
        type: 'object',
        required: ['clicks'],
        properties: {
          clicks: {
            type: 'array', minItems: 1, maxItems: GATEWAY_DOC_DEFAULTS.maxBatchClicks, items: ref('Click'),
            description: 'Each click is checked on its own: an invalid one is answered in its result, not with a 400.',
          },
        },
      },
      ClickAnswer: {
        type: 'object',
        required: ['status'],
        additionalProperties: false,
        properties: { status: { type: 'string', enum: ['accepted', 'duplicate'] } },
      },
      BatchAnswer: {
        type: 'object',
        required: ['results'],
        additionalProperties: false,
        properties: { results: { type: 'array', items: ref('BatchResult') } },
      },
      BatchResult: {
        oneOf: [
          {
            type: 'object',
            required: ['impression_id', 'status'],
            additionalProperties: false,
            properties: { impression_id: { type: 'string' }, status: { type: 'string', enum: ['accepted', 'duplicate'] } },
          },
          {
            type: 'object',
            required: ['impression_id', 'status', 'error'],
            additionalProperties: false,
            properties: {
              impression_id: { type: ['string', 'null'], description: 'null when the input click had no string impression_id.' },
              status: { const: 'rejected' },
              error: {
                allOf: [ref('ErrorDetail'), { type: 'object', properties: { code: { type: 'string', enum: BATCH_ITEM_ERROR_CODES } } }],
                description: 'Why this click was not accepted. `UNAVAILABLE`: Kafka did not acknowledge it; retry it.',
              },
            },
          },
        ],
      },
      Health: { type: 'object', required: ['status'], additionalProperties: false, properties: { status: { const: 'ok' } } },
      Readiness: {
        type: 'object',
        required: ['status', 'checks'],
        additionalProperties: false,
        properties: {
          status: { type: 'string', enum: ['ready', 'not_ready'] },
          checks: {
            type: 'object',
            required: ['kafka'],
            properties: { kafka: { type: 'boolean' }, redis: { type: 'boolean', description: 'Reported, never required.' } },
            additionalProperties: { type: 'boolean' },
          },
        },
      },
      OpenApiDocument: {
        type: 'object',
        required: ['openapi', 'info', 'paths'],
        properties: { openapi: { const: '3.1.0' }, info: { type: 'object' }, paths: { type: 'object' } },
      },
    },
    parameters: {
      traceparent: {
        name: 'traceparent',
        in: 'header',
        required: false,
        description: 'W3C trace context of the caller; the gateway joins it (or starts a trace) and puts its own span on every Kafka record of the request.',
        schema: { type: 'string' },
      },
    },
    headers: {
      RetryAfter: RETRY_AFTER_HEADER,
      TraceResponse: {
        description: 'W3C trace context of the gateway span that handled the request (additive).',
        required: true,
        schema: { type: 'string', pattern: '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$' },
      },
    },
  },
};

export const GATEWAY_OPENAPI: OpenApiDocument = deepFreeze(doc);

// The query API's OpenAPI 3.1 document, served at GET /openapi.json. It describes shared/API.md
// ("Advertiser query API") plus the README's additive fields (`final`/`revised` on points,
// `granularity` on /ads, the ranged campaign list) and the dashboard routes;
// test/unit/shared/openapi.test.ts checks it against the routes the app registers and the
// error registry, and test/integration/openapi.test.ts validates real answers against it.
import type { ErrorCode } from '../shared/errors.ts';
import { CONNECTION_ERROR_CODES } from '../shared/http-admission.ts';
import {
  CONNECTION_EXTENSION, HEAD_NOTE, MAX_ID, connectionErrors, OTHER_METHODS_EXTENSION, RETRY_AFTER_HEADER, UNMATCHED_EXTENSION, deepFreeze, errorResponses, errorSchemas, ref,
  type JsonObject, type OpenApiDocument,
} from '../shared/openapi.ts';
import { GRANULARITIES } from '../shared/window-math.ts';
import { DASHBOARD_CSP, IMMUTABLE_CACHE, REVALIDATE_CACHE } from './dashboard.ts';

/** Every code the query API answers (docs/errors.md, "where" = query or all). */
export const QUERY_ERROR_CODES = [
  'INVALID_FIELD', 'RANGE_TOO_LARGE', 'QUERY_TOO_EXPENSIVE', 'UNAUTHORIZED', 'NOT_FOUND', 'METHOD_NOT_ALLOWED',
  'RATE_LIMITED', 'UNAVAILABLE', 'INTERNAL', ...CONNECTION_ERROR_CODES,
] as const satisfies readonly ErrorCode[];

// Defaults of the configurable values; app.ts imports this module, so they are restated
// here and the unit test compares them with DEFAULT_QUERY_APP_OPTIONS.
export const QUERY_DOC_DEFAULTS = Object.freeze({ maxWindows: 10_000, defaultGranularity: '1m', defaultRangeMs: 3_600_000, defaultAdsLimit: 10, maxAdsLimit: 1000, maxParamLength: 64 });

// The same texts time-params.ts accepts: epoch milliseconds, or RFC 3339 with an offset
// (a space where the sign should be is an unencoded '+').
export const EPOCH_MS_PATTERN = '^\\d{1,15}$';
export const ISO_INSTANT_PATTERN = '^(\\d{4})-(\\d{2})-(\\d{2})[Tt](\\d{2}):(\\d{2})(?::(\\d{2})(?:\\.(\\d{1,9}))?)?(?:([Zz])|([+\\- ])(\\d{2}):?(\\d{2}))$';

const header = (description: string, schema: JsonObject, required = true): JsonObject => ({ description, required, schema });

/**
 * Headers of every answer the app routes. An over-long or undecodable path is refused
 * before routing (404 without them), so on a 404 they are not promised.
 */
const routed = (required: boolean): JsonObject => ({
  'Cache-Control': header('Answers are per key and change by the second: never stored by shared caches.', { type: 'string', const: 'no-store' }, required),
  'X-Content-Type-Options': header('Always `nosniff`.', { type: 'string', const: 'nosniff' }, required),
});

const errorHeaders = (status: number): JsonObject => ({
  ...routed(status !== 404),
  ...(status === 401 ? { 'WWW-Authenticate': ref('WWWAuthenticate', 'headers') } : {}),
  ...(status === 405 ? { Allow: ref('Allow', 'headers') } : {}),
});

const NOTES: Partial<Record<ErrorCode, string>> = {
  INVALID_FIELD: '`from`, `to`, `granularity` (or `limit`) is malformed, given twice, or `to` is not after `from`; `field` names it',
  RANGE_TOO_LARGE: `the range holds more than ${QUERY_DOC_DEFAULTS.maxWindows} windows at that granularity (ADCLICK_QUERY_MAX_WINDOWS)`,
  QUERY_TOO_EXPENSIVE: 'the read would return or read more rows than the server allows (ADCLICK_QUERY_MAX_RESULT_ROWS, ADCLICK_QUERY_MAX_ROWS_TO_READ); narrow the range or use a coarser granularity',
  UNAUTHORIZED: 'API key missing, malformed, unknown or revoked',
  NOT_FOUND: 'no such campaign or ad, or one of another advertiser, or a malformed id (indistinguishable)',
  RATE_LIMITED: 'per-client-IP limit, charged before anything else (default 200 requests/s, burst 400; IPv6 per /64), or per-API-key limit (default 50 requests/s, burst 100); Retry-After at most 60 s',
  UNAVAILABLE: 'ClickHouse unreachable or slower than the storage timeout, or a read past ADCLICK_QUERY_MAX_EXECUTION_SEC',
  INTERNAL: 'a bug; logged with details, never shown to the caller',
};

const errors = (codes: readonly ErrorCode[], notes: Partial<Record<ErrorCode, string>> = NOTES) =>
  errorResponses(codes, { headers: errorHeaders, retryAfter: (c) => c === 'RATE_LIMITED' || c === 'UNAVAILABLE', notes });

const json = (schema: JsonObject) => ({ 'application/json': { schema } });
const ok = (description: string, schema: JsonObject): JsonObject => ({ description, headers: routed(true), content: json(schema) });

const V1_ERRORS = ['INVALID_FIELD', 'RANGE_TOO_LARGE', 'QUERY_TOO_EXPENSIVE', 'UNAUTHORIZED', 'RATE_LIMITED', 'UNAVAILABLE', 'INTERNAL'] as const satisfies readonly ErrorCode[];
const V1_OWNED_ERRORS = [...V1_ERRORS, 'NOT_FOUND'] as const satisfies readonly ErrorCode[];

const RANGE_PARAMS = [ref('from', 'parameters'), ref('to', 'parameters'), ref('granularity', 'parameters')];

const IP_LIMITED = 'per-client-IP limit (default 200 requests/s, burst 400; IPv6 per /64), charged before the body is read; Retry-After at most 60 s';

const otherMethods: JsonObject = {
  description: 'Any method other than GET and HEAD on this path (answered before the body is read).',
  responses: errors(['METHOD_NOT_ALLOWED', 'RATE_LIMITED'], { METHOD_NOT_ALLOWED: 'the path exists with GET and HEAD only', RATE_LIMITED: IP_LIMITED }),
};

const pathItem = (item: JsonObject): JsonObject => ({ ...item, [OTHER_METHODS_EXTENSION]: otherMethods });

const cacheValidated = (cacheControl: JsonObject, extra: JsonObject = {}): JsonObject => ({
  'Cache-Control': header('How long the file may be cached.', cacheControl),
  ETag: ref('ETag', 'headers'),
  'X-Content-Type-Options': header('Always `nosniff`.', { type: 'string', const: 'nosniff' }),
  ...extra,
});

const pageHeaders = cacheValidated({ type: 'string', const: REVALIDATE_CACHE }, {
  'Content-Security-Policy': header('Scripts, styles and API calls from this origin only; never framed.', { type: 'string', const: DASHBOARD_CSP }),
  'Referrer-Policy': header('Always `no-referrer`.', { type: 'string', const: 'no-referrer' }),
  'X-Frame-Options': header('Always `DENY`.', { type: 'string', const: 'DENY' }),
});

const asset = (operationId: string, summary: string, versioned: boolean): JsonObject => {
  const cache = versioned
    ? { type: 'string', enum: [IMMUTABLE_CACHE, REVALIDATE_CACHE], description: `\`${IMMUTABLE_CACHE}\` when {version} is the current one, else \`${REVALIDATE_CACHE}\`.` }
    : { type: 'string', const: REVALIDATE_CACHE };
  return pathItem({
    get: {
      operationId,
      summary,
      parameters: [...(versioned ? [ref('assetVersion', 'parameters')] : []), ref('assetName', 'parameters'), ref('ifNoneMatch', 'parameters')],
      responses: {
        '200': {
          description: 'The file.',
          headers: cacheValidated(cache),
          content: Object.fromEntries(['text/javascript', 'text/css', 'image/svg+xml'].map((t) => [t, { schema: { type: 'string' } }])),
        },
        '304': { description: 'If-None-Match names the current ETag.', headers: cacheValidated(cache) },
        ...errors(['NOT_FOUND', 'INTERNAL'], { ...NOTES, NOT_FOUND: 'no such file' }),
      },
    },
  });
};

const instant: JsonObject = { type: 'string', format: 'date-time', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$', description: 'ISO-8601 UTC, whole seconds.' };

const series = (head: Record<string, JsonObject>): JsonObject => ({
  type: 'object',
  required: [...Object.keys(head), 'granularity', 'from', 'to', 'complete_before', 'total_clicks', 'points'],
  additionalProperties: false,
  properties: {
    ...head,
    granularity: ref('Granularity'),
    from: { ...ref('Instant'), description: 'The requested `from`, rounded down to the granularity (inclusive).' },
    to: { ...ref('Instant'), description: 'The requested `to`, rounded up to the granularity (exclusive).' },
    complete_before: ref('CompleteBefore'),
    total_clicks: { ...ref('Count'), description: 'Sum of the points.' },
    points: {
      type: 'array',
      maxItems: QUERY_DOC_DEFAULTS.maxWindows,
      items: ref('Point'),
      description: 'Dense: every window of the range, zeros included, in time order.',
    },
  },
});

const doc: OpenApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'AdClick advertiser query API',
    version: '1',
    description: `The public contract of shared/API.md ("Advertiser query API", default port 8081) plus the README's additive fields, and the dashboard served at \`/\`. Windows are half-open [window_start, window_start + granularity), aligned to UTC; \`from\` is rounded down and \`to\` up to the granularity. ${HEAD_NOTE}`,
  },
  paths: {
    '/v1/campaigns': pathItem({
      get: {
        operationId: 'listCampaigns',
        summary: "All-time totals of the key's campaigns; with a range also each campaign's clicks in it",
        description: 'A range is asked for by `from` and/or `to`. Without either the answer is the v1 one (a lone `granularity` is ignored). With a range, `from`, `to` and `granularity` follow the series endpoints exactly and each campaign also carries `clicks`, equal to the `total_clicks` of `/v1/campaigns/{campaign_id}/clicks` with the same query string (additive).',
        security: [{ bearer: [] }],
        parameters: RANGE_PARAMS,
        responses: {
          '200': ok('Without a range: `CampaignTotals`; with one: `CampaignRangeTotals`.', { oneOf: [ref('CampaignTotals'), ref('CampaignRangeTotals')] }),
          ...errors(V1_ERRORS),
        },
      },
    }),
    '/v1/campaigns/{campaign_id}/clicks': pathItem({
      get: {
        operationId: 'getCampaignSeries',
        summary: 'Clicks of a campaign per window',
        security: [{ bearer: [] }],
        parameters: [ref('campaignId', 'parameters'), ...RANGE_PARAMS],
        responses: {
          '200': ok('The dense series.', ref('CampaignSeries')),
          ...errors(V1_OWNED_ERRORS),
        },
      },
    }),
    '/v1/campaigns/{campaign_id}/ads': pathItem({
      get: {
        operationId: 'getCampaignAds',
        summary: "Per-ad totals of a campaign's range, highest first",
        description: '`granularity` (additive) picks the table read, the rounding of the range and the window cap.',
        security: [{ bearer: [] }],
        parameters: [ref('campaignId', 'parameters'), ...RANGE_PARAMS, ref('limit', 'parameters')],
        responses: {
          '200': ok('Highest first; ties by ad id.', ref('AdTotals')),
          ...errors(V1_OWNED_ERRORS),
        },
      },
    }),
    '/v1/ads/{ad_id}/clicks': pathItem({
      get: {
        operationId: 'getAdSeries',
        summary: 'Clicks of an ad per window',
        security: [{ bearer: [] }],
        parameters: [ref('adId', 'parameters'), ...RANGE_PARAMS],
        responses: {
          '200': ok('The dense series, with the ad and its campaign.', ref('AdSeries')),
          ...errors(V1_OWNED_ERRORS, { ...NOTES, NOT_FOUND: 'no such ad, or one of another advertiser, or a malformed id (indistinguishable)' }),
        },
      },
    }),
    '/healthz': pathItem({
      get: {
        operationId: 'queryHealth',
        summary: 'Process alive',
        responses: { '200': ok('Alive; does not depend on storage.', ref('Health')), ...errors(['INTERNAL']) },
      },
    }),
    '/readyz': pathItem({
      get: {
        operationId: 'queryReadiness',
        summary: 'Storage reachable',
        responses: {
          '200': ok('ClickHouse answers.', ref('Ready')),
          ...errors(['UNAVAILABLE', 'INTERNAL'], { ...NOTES, UNAVAILABLE: 'ClickHouse is not reachable' }),
        },
      },
    }),
    '/metrics': pathItem({
      get: {
        operationId: 'queryMetrics',
        summary: 'Prometheus metrics of the serving process',
        responses: {
          '200': { description: 'Prometheus text exposition format 0.0.4.', headers: routed(true), content: { 'text/plain': { schema: { type: 'string' } } } },
          ...errors(['INTERNAL']),
        },
      },
    }),
    '/openapi.json': pathItem({
      get: {
        operationId: 'queryOpenApi',
        summary: 'This document',
        responses: { '200': ok('The OpenAPI 3.1 document of the query API.', ref('OpenApiDocument')), ...errors(['INTERNAL']) },
      },
    }),
    '/': pathItem({
      get: {
        operationId: 'dashboard',
        summary: 'The advertiser dashboard (static page; it signs in with an API key and uses the public API only)',
        parameters: [ref('ifNoneMatch', 'parameters')],
        responses: {
          '200': { description: 'The page; it names its assets under /assets/{version}/.', headers: pageHeaders, content: { 'text/html': { schema: { type: 'string' } } } },
          '304': { description: 'If-None-Match names the current ETag.', headers: pageHeaders },
          ...errors(['INTERNAL']),
        },
      },
    }),
    '/assets/{name}': asset('dashboardAsset', 'A dashboard file (revalidated by ETag every time)', false),
    '/assets/{version}/{name}': asset('dashboardVersionedAsset', 'A dashboard file under the asset version the page names (cached for a year when current)', true),
  },
  [UNMATCHED_EXTENSION]: {
    description: 'Any other path (answered before the body is read).',
    responses: errors(['NOT_FOUND', 'RATE_LIMITED'], { NOT_FOUND: 'no such route', RATE_LIMITED: IP_LIMITED }),
  },
  [CONNECTION_EXTENSION]: connectionErrors(CONNECTION_ERROR_CODES),
  components: {
    securitySchemes: {
      bearer: {
        type: 'http',
        scheme: 'bearer',
        description: 'An API key (`adclick keys create --advertiser <id>`); a key belongs to exactly one advertiser. Missing, invalid or revoked: 401 UNAUTHORIZED.',
      },
    },
    schemas: {
      ...errorSchemas(QUERY_ERROR_CODES),
      Id: { type: 'integer', minimum: 1, maximum: MAX_ID, description: 'A positive integer below 2^53.' },
      Count: { type: 'integer', minimum: 0 },
      Instant: instant,
      Granularity: { type: 'string', enum: [...GRANULARITIES] },
      CompleteBefore: {
        anyOf: [ref('Instant'), { type: 'null' }],
        description: "Windows that end at or before it have been closed by the pipeline's watermark (later corrections can still change them); null while the watermark is unknown.",
      },
      Point: {
        type: 'object',
        required: ['window_start', 'clicks', 'final', 'revised'],
        additionalProperties: false,
        properties: {
          window_start: ref('Instant'),
          clicks: ref('Count'),
          final: { type: 'boolean', description: 'Additive: the window ends at or before `complete_before`.' },
          revised: { type: 'boolean', description: "Additive: the number changed after the pipeline's own result (a late correction beyond the allowed lateness, or a backfill)." },
        },
      },
      CampaignSeries: series({ campaign_id: ref('Id') }),
      AdSeries: series({ ad_id: ref('Id'), campaign_id: ref('Id') }),
      CampaignTotals: {
        type: 'object',
        required: ['campaigns'],
        additionalProperties: false,
        properties: {
          campaigns: {
            type: 'array',
            description: 'By campaign id.',
            items: {
              type: 'object',
              required: ['campaign_id', 'total_clicks'],
              additionalProperties: false,
              properties: { campaign_id: ref('Id'), total_clicks: { ...ref('Count'), description: 'All-time clicks.' } },
            },
          },
        },
      },
      CampaignRangeTotals: {
        type: 'object',
        required: ['campaigns', 'granularity', 'from', 'to', 'complete_before'],
        additionalProperties: false,
        properties: {
          campaigns: {
            type: 'array',
            description: 'Every campaign of the list, by campaign id; `clicks: 0` when quiet in the range.',
            items: {
              type: 'object',
              required: ['campaign_id', 'total_clicks', 'clicks'],
              additionalProperties: false,
              properties: {
                campaign_id: ref('Id'),
                total_clicks: { ...ref('Count'), description: 'All-time clicks.' },
                clicks: { ...ref('Count'), description: 'Clicks in [from, to) (additive).' },
              },
            },
          },
          granularity: ref('Granularity'),
          from: ref('Instant'),
          to: ref('Instant'),
          complete_before: ref('CompleteBefore'),
        },
      },
      AdTotals: {
        type: 'object',
        required: ['campaign_id', 'from', 'to', 'ads'],
        additionalProperties: false,
        properties: {
          campaign_id: ref('Id'),
          from: ref('Instant'),
          to: ref('Instant'),
          ads: {
            type: 'array',
            maxItems: QUERY_DOC_DEFAULTS.maxAdsLimit,
            items: { type: 'object', required: ['ad_id', 'clicks'], additionalProperties: false, properties: { ad_id: ref('Id'), clicks: ref('Count') } },
          },
        },
      },
      Health: { type: 'object', required: ['status'], additionalProperties: false, properties: { status: { const: 'ok' } } },
      Ready: { type: 'object', required: ['status'], additionalProperties: false, properties: { status: { const: 'ready' } } },
      OpenApiDocument: {
        type: 'object',
        required: ['openapi', 'info', 'paths'],
        properties: { openapi: { const: '3.1.0' }, info: { type: 'object' }, paths: { type: 'object' } },
      },
    },
    parameters: {
      from: {
        name: 'from',
        in: 'query',
        required: false,
        description: `Start of the range: epoch milliseconds or ISO-8601 with an offset; rounded down to the granularity. Default: \`to\` − 1 h.`,
        schema: { type: 'string', anyOf: [{ pattern: EPOCH_MS_PATTERN }, { pattern: ISO_INSTANT_PATTERN }] },
        examples: { iso: { value: '2026-11-27T10:00:00Z' }, epoch: { value: '1764237600000' } },
      },
      to: {
        name: 'to',
        in: 'query',
        required: false,
        description: 'End of the range (exclusive), as `from`; rounded up to the granularity; must be after `from`. Default: now.',
        schema: { type: 'string', anyOf: [{ pattern: EPOCH_MS_PATTERN }, { pattern: ISO_INSTANT_PATTERN }] },
      },
      granularity: {
        name: 'granularity',
        in: 'query',
        required: false,
        description: `Window size. At most ${QUERY_DOC_DEFAULTS.maxWindows} windows per request (7 days need 5m or 1h).`,
        schema: { ...ref('Granularity'), default: QUERY_DOC_DEFAULTS.defaultGranularity },
      },
      limit: {
        name: 'limit',
        in: 'query',
        required: false,
        description: 'Most ads in the answer.',
        schema: { type: 'integer', minimum: 1, maximum: QUERY_DOC_DEFAULTS.maxAdsLimit, default: QUERY_DOC_DEFAULTS.defaultAdsLimit },
      },
      campaignId: {
        name: 'campaign_id',
        in: 'path',
        required: true,
        description: 'A malformed id answers the same 404 as a missing or foreign campaign.',
        schema: ref('Id'),
      },
      adId: {
        name: 'ad_id',
        in: 'path',
        required: true,
        description: 'A malformed id answers the same 404 as a missing or foreign ad.',
        schema: ref('Id'),
      },
      assetName: { name: 'name', in: 'path', required: true, schema: { type: 'string', maxLength: QUERY_DOC_DEFAULTS.maxParamLength } },
      assetVersion: { name: 'version', in: 'path', required: true, description: 'The asset version the page names (a hash of all assets).', schema: { type: 'string', maxLength: QUERY_DOC_DEFAULTS.maxParamLength } },
      ifNoneMatch: { name: 'If-None-Match', in: 'header', required: false, description: 'An ETag from an earlier answer.', schema: { type: 'string' } },
    },
    headers: {
      RetryAfter: RETRY_AFTER_HEADER,
      WWWAuthenticate: header('The Bearer challenge.', { type: 'string', const: 'Bearer realm="adclick"' }),
      Allow: header('The methods of this path.', { type: 'string', const: 'GET, HEAD' }),
      ETag: header('Strong validator: a hash of the body.', { type: 'string', pattern: '^"[A-Za-z0-9_-]+"$' }),
    },
  },
};

export const QUERY_OPENAPI: OpenApiDocument = deepFreeze(doc);

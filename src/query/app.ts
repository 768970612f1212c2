// The advertiser query API (API.md, "Advertiser query API"). Builds routes and never
// listens: the serving process owns the port, the store and the signals.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { AppError, ERRORS, errorBody, isAppError, type ErrorCode } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { createAggregateOf, createClientAddress } from '../shared/client-ip.ts';
import { clientErrorHandler, hasUnreadBody, serverTimeouts, type HttpTimeouts } from '../shared/http-admission.ts';
import { ApiKeyAuthenticator, type AuthGuardOptions, type Clock, type Principal } from './auth.ts';
import { dashboardHandlers } from './dashboard.ts';
import { createQueryMetrics } from './metrics.ts';
import { QUERY_OPENAPI } from './openapi.ts';
import { TokenBucketLimiter } from './rate-limit.ts';
import type { QueryRepository } from './repository.ts';
import { storageScopeHook } from './request-scope.ts';
import { isStorageShed } from '../store/storage-queue.ts';
import { parseId, parseLimit } from './request-params.ts';
import { formatInstant, resolveRange, type TimeRange } from './time-params.ts';
import { GRANULARITY_MS, denseFill, type Granularity } from '../shared/window-math.ts';
import { cachedAnswer } from '../shared/cached-answer.ts';

export interface QueryAppOptions {
  /** How long a valid API key is trusted without a storage lookup; bounds revocation delay. */
  readonly apiKeyCacheTtlMs: number;
  /** Bound on cached API keys and on rate-limit buckets. */
  readonly maxTrackedKeys: number;
  /** Per-API-key sustained request rate (requests/s), in-process. */
  readonly rateLimitPerSec: number;
  /** Per-API-key burst (requests). */
  readonly rateLimitBurst: number;
  /** Most windows one request may cover (series and the ads ranking alike). */
  readonly maxWindows: number;
  /** Granularity when the request names none. */
  readonly defaultGranularity: Granularity;
  /** Range length when `from` is omitted (the range ends at `to`, default now). */
  readonly defaultRangeMs: number;
  readonly defaultAdsLimit: number;
  readonly maxAdsLimit: number;
  /** Retry-After (seconds) on 503 answers. */
  readonly retryAfterSec: number;
  /** A storage call slower than this answers 503 UNAVAILABLE. */
  readonly storageTimeoutMs: number;
  /** Per-client-address sustained rate and burst, charged on arrival (before the key is looked at). */
  readonly ipRateLimitPerSec: number;
  readonly ipRateLimitBurst: number;
  /** Peers whose X-Forwarded-For is believed (addresses, CIDR ranges, proxy-addr names). */
  readonly trustedProxies: readonly string[];
  /** IPv6 clients share a bucket per prefix of this length. */
  readonly ipv6BucketPrefix: number;
  /** IPv6 buckets also pay into one per prefix of this length (0: off), at `ipv6AggregateFactor` times the per-client rate and burst. */
  readonly ipv6AggregatePrefix?: number;
  readonly ipv6AggregateFactor?: number;
  /** Header and whole-request timeouts of the listening server. */
  readonly timeouts?: Partial<HttpTimeouts>;
  /** Failed-key memory and per-client failed-lookup budget (auth.ts; defaults DEFAULT_AUTH_GUARD). */
  readonly authGuard?: Partial<AuthGuardOptions>;
}

export const DEFAULT_QUERY_APP_OPTIONS: QueryAppOptions = Object.freeze({
  apiKeyCacheTtlMs: 2000,
  maxTrackedKeys: 10_000,
  rateLimitPerSec: 50,
  rateLimitBurst: 100,
  maxWindows: 10_000,
  defaultGranularity: '1m',
  defaultRangeMs: 3_600_000,
  defaultAdsLimit: 10,
  maxAdsLimit: 1000,
  retryAfterSec: 2,
  storageTimeoutMs: 10_000,
  ipRateLimitPerSec: 200,
  ipRateLimitBurst: 400,
  trustedProxies: [],
  ipv6BucketPrefix: 64,
  ipv6AggregatePrefix: 48,
  ipv6AggregateFactor: 16,
});

export interface QueryAppDeps {
  readonly repo: QueryRepository;
  readonly logger: Logger;
  /** Epoch ms; injected so tests can move time. */
  readonly clock?: Clock;
  readonly options?: Partial<QueryAppOptions>;
  /** Registry served at /metrics; a fresh one when omitted (default process metrics are the caller's choice). */
  readonly registry?: Registry;
}

const OPENAPI_BODY = JSON.stringify(QUERY_OPENAPI);

/** Retry-After values travel with the error to the one place that writes error replies. */
const retryAfterOf = new WeakMap<Error, number>();

function withRetryAfter(err: AppError, seconds: number): AppError {
  retryAfterOf.set(err, seconds);
  return err;
}

function notFound(): AppError {
  return new AppError('NOT_FOUND');
}

/** fastify's own errors (bad content type, body too large, ...) mapped to registry codes. */
function codeForFrameworkError(err: { statusCode?: number; code?: string }): ErrorCode {
  const status = err.statusCode ?? 500;
  if (status === 415) return 'UNSUPPORTED_MEDIA_TYPE';
  if (status === 413) return 'PAYLOAD_TOO_LARGE';
  if (status === 404) return 'NOT_FOUND';
  if (status === 405) return 'METHOD_NOT_ALLOWED';
  if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return 'INVALID_JSON';
  if (status >= 400 && status < 500) return 'INVALID_FIELD';
  return 'INTERNAL';
}

export function buildQueryApp(deps: QueryAppDeps): FastifyInstance {
  const opts: QueryAppOptions = { ...DEFAULT_QUERY_APP_OPTIONS, ...deps.options };
  const clock: Clock = deps.clock ?? Date.now;
  const log = deps.logger.child({ module: 'query' });
  const metrics = createQueryMetrics(deps.registry);
  const repo = deps.repo;

  /** Any storage failure or timeout becomes 503 UNAVAILABLE; an AppError keeps its code. */
  async function storage<T>(call: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`storage call exceeded ${opts.storageTimeoutMs} ms`)), opts.storageTimeoutMs);
    });
    try {
      return await Promise.race([call(), timeout]);
    } catch (err) {
      if (isAppError(err)) throw err;
      throw new AppError('UNAVAILABLE', undefined, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  const authenticator = new ApiKeyAuthenticator((hash) => storage(() => repo.findApiKey(hash)), clock, {
    cacheTtlMs: opts.apiKeyCacheTtlMs,
    maxCachedKeys: opts.maxTrackedKeys,
    ...opts.authGuard,
  });
  const limiter = new TokenBucketLimiter(clock, {
    perSec: opts.rateLimitPerSec,
    burst: opts.rateLimitBurst,
    maxKeys: opts.maxTrackedKeys,
  });
  const clientAddress = createClientAddress({ trustedProxies: opts.trustedProxies, ipv6Prefix: opts.ipv6BucketPrefix });
  const ipLimiter = new TokenBucketLimiter(clock, {
    perSec: opts.ipRateLimitPerSec,
    burst: opts.ipRateLimitBurst,
    maxKeys: opts.maxTrackedKeys,
  });
  // Rotating over the /64s of one IPv6 /48 meets one (larger) limit.
  const aggregateOf = createAggregateOf(opts.ipv6AggregatePrefix ?? 0);
  const aggregateFactor = opts.ipv6AggregateFactor ?? 1;
  const aggregateLimiter = new TokenBucketLimiter(clock, {
    perSec: opts.ipRateLimitPerSec * aggregateFactor,
    burst: opts.ipRateLimitBurst * aggregateFactor,
    maxKeys: opts.maxTrackedKeys,
  });
  /** The client's bucket and (IPv6) its aggregate's: both must allow; a refusal by the aggregate gives the client's token back. */
  const takeAddress = (bucket: string) => {
    const decision = ipLimiter.take(bucket);
    const aggregate = decision.allowed ? aggregateOf(bucket) : null;
    if (aggregate === null) return decision;
    const wide = aggregateLimiter.take(aggregate);
    if (!wide.allowed) ipLimiter.refund(bucket);
    return wide;
  };

  /** Authenticate (401, or 429 once the client spent its failed-lookup budget), then charge the key's bucket. */
  async function principalOf(request: FastifyRequest): Promise<Principal> {
    // The same client identity as the address limit (trusted proxies, IPv6 prefix).
    const principal = await authenticator.authenticate(request.headers.authorization, clientAddress(request.raw).bucket);
    const decision = limiter.take(principal.keyHash);
    if (!decision.allowed) throw withRetryAfter(new AppError('RATE_LIMITED'), decision.retryAfterSec);
    return principal;
  }

  async function ownedCampaign(advertiserId: number, campaignId: number): Promise<void> {
    // Missing and foreign are one answer, byte for byte. Scoped to the caller: another
    // advertiser's click claiming this campaign id never hides it from its owner.
    if (!(await storage(() => repo.hasCampaign(advertiserId, campaignId)))) throw notFound();
  }

  async function completeBefore(): Promise<number | null> {
    const cb = await storage(() => repo.completeBefore());
    return typeof cb === 'number' && Number.isFinite(cb) && cb >= 0 ? cb : null;
  }

  function rangeOf(request: FastifyRequest): TimeRange {
    return resolveRange(request.query as Record<string, unknown>, clock(), opts);
  }

  function seriesBody(
    head: Record<string, number>,
    range: TimeRange,
    rows: { windowStartMs: number; clicks: number }[],
    cb: number | null,
  ) {
    const size = GRANULARITY_MS[range.granularity];
    let total = 0;
    const points = denseFill(rows, range.fromMs, range.toMs, range.granularity).map((p) => {
      total += p.clicks;
      return {
        window_start: formatInstant(p.windowStartMs),
        clicks: p.clicks,
        // Additive to API.md: the window ends at or before complete_before.
        final: cb !== null && p.windowStartMs + size <= cb,
        // Additive too: the number changed after the pipeline's result (late correction or backfill).
        revised: p.revised,
      };
    });
    return {
      ...head,
      granularity: range.granularity,
      from: formatInstant(range.fromMs),
      to: formatInstant(range.toMs),
      complete_before: cb === null ? null : formatInstant(cb),
      total_clicks: total,
      points,
    };
  }

  const app = Fastify({
    loggerInstance: deps.logger.child({ module: 'http' }),
    routerOptions: { maxParamLength: 64 },
    // No route takes a body (unknown routes answer before one is read, see below).
    bodyLimit: 1024,
    ...serverTimeouts(opts.timeouts),
    clientErrorHandler: clientErrorHandler((code) => metrics.clientErrors.inc({ code })),
    // Errors raised before routing: an undecodable URL or an over-long path parameter
    // names nothing, so it is a 404 like any bad id; the rest is ours to fix (500).
    frameworkErrors: (err, request, reply) => {
      const code: ErrorCode = err.code === 'FST_ERR_BAD_URL' || err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'NOT_FOUND' : 'INTERNAL';
      if (code === 'INTERNAL') request.log.error({ err }, 'unexpected routing error');
      void (reply as FastifyReply).code(ERRORS[code].status).type('application/json; charset=utf-8').send(errorBody(code));
    },
  });

  app.addHook('onRequest', storageScopeHook);
  app.addHook('onRequest', async (_request, reply) => {
    // Answers are per key and change by the second: never cache them in shared caches.
    reply.header('cache-control', 'no-store');
    reply.header('x-content-type-options', 'nosniff');
  });

  // Admission before anything else: the API, unknown routes and wrong methods are charged
  // to the client's address (IPv6: its prefix), so a flood of junk keys or junk paths costs
  // a bucket step each; the constant GETs (health, metrics, the dashboard's files) are not.
  app.addHook('onRequest', async (request, reply) => {
    const charged = request.is404 || (request.method !== 'GET' && request.method !== 'HEAD') || request.url.startsWith('/v1/');
    if (!charged) return;
    const decision = takeAddress(clientAddress(request.raw).bucket);
    // Refused before the body is read: close rather than read the rest.
    if ((!decision.allowed || request.is404) && hasUnreadBody(request.raw)) reply.header('connection', 'close');
    if (!decision.allowed) throw withRetryAfter(new AppError('RATE_LIMITED'), decision.retryAfterSec);
    if (request.is404) return reply.code(404).type('application/json; charset=utf-8').send(errorBody('NOT_FOUND'));
  });

  app.addHook('onResponse', async (request, reply) => {
    // The answer is out: re-check the keys that are due now, off every request's path.
    void authenticator.refreshDue();
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, status: String(reply.statusCode) });
    metrics.duration.observe({ route }, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((err: unknown, request, reply) => {
    let appErr: AppError;
    if (isAppError(err)) {
      appErr = err;
    } else {
      const e = (err ?? {}) as { statusCode?: number; code?: string };
      const code = codeForFrameworkError(e);
      appErr = new AppError(code, code === 'INTERNAL' ? undefined : ERRORS[code].message, { cause: err });
    }
    if (appErr.code === 'INTERNAL') request.log.error({ err }, 'unexpected error');
    else if (appErr.code === 'UNAVAILABLE' && !isStorageShed(appErr)) request.log.warn({ err: appErr.cause ?? appErr }, 'storage unavailable');

    const retryAfter = retryAfterOf.get(appErr) ?? appErr.retryAfterSec ?? (appErr.code === 'UNAVAILABLE' ? opts.retryAfterSec : undefined);
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
    if (appErr.code === 'UNAUTHORIZED') reply.header('www-authenticate', 'Bearer realm="adclick"');
    void reply.code(appErr.status).type('application/json; charset=utf-8').send(appErr.toBody());
  });

  app.setNotFoundHandler((_request, reply) => {
    void reply.code(404).type('application/json; charset=utf-8').send(errorBody('NOT_FOUND'));
  });

  const otherMethods = app.supportedMethods.filter((m) => m !== 'GET' && m !== 'HEAD');

  /** A GET route plus a 405 for every other method on the same path (fastify alone would say 404). */
  function get(url: string, handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>): void {
    app.get(url, handler);
    app.route({
      method: otherMethods,
      url,
      // onRequest runs before body parsing, so a bad body cannot turn a 405 into a 400.
      onRequest: async (_request, reply) => {
        reply.header('allow', 'GET, HEAD');
        throw new AppError('METHOD_NOT_ALLOWED');
      },
      handler: async () => {
        throw new AppError('METHOD_NOT_ALLOWED');
      },
    });
  }

  get('/healthz', async () => ({ status: 'ok' }));

  // One storage round trip per second at most, however many probes ask (cached-answer.ts).
  const ping = cachedAnswer(() => repo.ping(), 1000, clock);
  get('/readyz', async () => {
    // A rejection becomes UNAVAILABLE (with its cause logged) inside storage().
    const ok = await storage(ping);
    if (ok !== true) throw new AppError('UNAVAILABLE', 'Storage is not reachable');
    return { status: 'ready' };
  });

  get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });

  get('/openapi.json', async (_request, reply) => reply.type('application/json; charset=utf-8').send(OPENAPI_BODY));

  // The dashboard: static files read once per process, a strict CSP on the page.
  const dashboard = dashboardHandlers();
  get('/', dashboard.page);
  get('/assets/:name', dashboard.asset);
  get('/assets/:version/:name', dashboard.asset);

  get('/v1/campaigns', async (request) => {
    const { advertiserId } = await principalOf(request);
    const query = request.query as Record<string, unknown>;
    // Additive to API.md: a range is asked for only by `from` or `to`. Without either the
    // answer is exactly the v1 one (a lone `granularity` is ignored, as it always was), so
    // existing clients see no change at all.
    if (query.from === undefined && query.to === undefined) {
      const rows = await storage(() => repo.campaignTotals(advertiserId));
      const campaigns = [...rows]
        .sort((a, b) => a.campaignId - b.campaignId)
        .map((r) => ({ campaign_id: r.campaignId, total_clicks: r.clicks }));
      return { campaigns };
    }
    // Same parsing, rounding, defaults and window cap as the series endpoints (granularity
    // default 1m), so the same query string gives clicks equal to the series' total_clicks.
    const range = rangeOf(request);
    const [rows, inRange, cb] = await Promise.all([
      storage(() => repo.campaignTotals(advertiserId)),
      storage(() => repo.campaignRangeClicks({ advertiserId, granularity: range.granularity, fromMs: range.fromMs, toMs: range.toMs })),
      completeBefore(),
    ]);
    const clicksOf = new Map<number, number>();
    for (const r of inRange) clicksOf.set(r.campaignId, (clicksOf.get(r.campaignId) ?? 0) + r.clicks);
    // The list is the all-time one (a campaign quiet in the range still appears, with 0).
    const campaigns = [...rows]
      .sort((a, b) => a.campaignId - b.campaignId)
      .map((r) => ({ campaign_id: r.campaignId, total_clicks: r.clicks, clicks: clicksOf.get(r.campaignId) ?? 0 }));
    return {
      campaigns,
      granularity: range.granularity,
      from: formatInstant(range.fromMs),
      to: formatInstant(range.toMs),
      complete_before: cb === null ? null : formatInstant(cb),
    };
  });

  get('/v1/campaigns/:campaign_id/clicks', async (request) => {
    const { advertiserId } = await principalOf(request);
    const campaignId = parseId((request.params as Record<string, unknown>).campaign_id);
    if (campaignId === null) throw notFound();
    const range = rangeOf(request);
    await ownedCampaign(advertiserId, campaignId);
    const [rows, cb] = await Promise.all([
      storage(() =>
        repo.series({ advertiserId, campaignId, granularity: range.granularity, fromMs: range.fromMs, toMs: range.toMs }),
      ),
      completeBefore(),
    ]);
    return seriesBody({ campaign_id: campaignId }, range, rows, cb);
  });

  get('/v1/campaigns/:campaign_id/ads', async (request) => {
    const { advertiserId } = await principalOf(request);
    const campaignId = parseId((request.params as Record<string, unknown>).campaign_id);
    if (campaignId === null) throw notFound();
    const range = rangeOf(request);
    const limit = parseLimit((request.query as Record<string, unknown>).limit, opts.defaultAdsLimit, opts.maxAdsLimit);
    await ownedCampaign(advertiserId, campaignId);
    const rows = await storage(() =>
      repo.adTotals({ advertiserId, campaignId, granularity: range.granularity, fromMs: range.fromMs, toMs: range.toMs, limit }),
    );
    // Highest first; ties by ad id so equal counts come out the same every time.
    const ads = [...rows]
      .sort((a, b) => b.clicks - a.clicks || a.adId - b.adId)
      .slice(0, limit)
      .map((r) => ({ ad_id: r.adId, clicks: r.clicks }));
    return { campaign_id: campaignId, from: formatInstant(range.fromMs), to: formatInstant(range.toMs), ads };
  });

  get('/v1/ads/:ad_id/clicks', async (request) => {
    const { advertiserId } = await principalOf(request);
    const adId = parseId((request.params as Record<string, unknown>).ad_id);
    if (adId === null) throw notFound();
    const range = rangeOf(request);
    // Every click the caller signed for this ad, under whichever of its campaigns (an ad
    // moved between campaigns); reported under the campaign of its newest click.
    const campaigns = await storage(() => repo.adCampaigns(advertiserId, adId));
    if (!campaigns) throw notFound();
    const campaignId = campaigns.newest;
    const [rows, cb] = await Promise.all([
      storage(() =>
        repo.series({ advertiserId, campaignId, campaignIds: campaigns.all, adId, granularity: range.granularity, fromMs: range.fromMs, toMs: range.toMs }),
      ),
      completeBefore(),
    ]);
    return seriesBody({ ad_id: adId, campaign_id: campaignId }, range, rows, cb);
  });

  log.debug({ options: opts }, 'query app built');
  return app as unknown as FastifyInstance;
}

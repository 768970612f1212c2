// The gateway app factory: builds routes, never listens (main.ts does). Everything it
// talks to — Kafka publisher, Redis-backed dedup and rate limiter, clock, logger — is
// passed in, so tests use real engines or fakes without touching globals.
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../shared/logger.ts';
import { AppError, errorBody, isAppError, type ErrorCode } from '../shared/errors.ts';
import { ClickEvent } from '../shared/proto.ts';
import { Counter, Gauge, Histogram, httpMetrics, type Registry } from '../shared/metrics.ts';
import { parseClick, verifyClick, type Click } from './click-validation.ts';
import { createClientAddress } from '../shared/client-ip.ts';
import { JsonDepthScanner } from '../shared/json-depth.ts';
import { GATEWAY_OPENAPI } from './openapi.ts';
import { dedupKey, type EdgeDedup } from './edge-dedup.ts';
import type { ClickPublisher, OutRecord } from './click-publisher.ts';
import { RecentRefusals, separateAdmission, type Admission, type RateDecision, type RateLimiter } from './rate-limiter.ts';
import { clientErrorHandler, hasUnreadBody, serverTimeouts, MAX_RETRY_AFTER_SEC, type HttpTimeouts } from '../shared/http-admission.ts';
import { cachedAnswer } from '../shared/cached-answer.ts';
import { traceContextFor, type TraceContext } from './trace-context.ts';
import type { Backpressure } from './backpressure.ts';

export interface GatewayOptions {
  signingKeys: ReadonlyMap<string, string>;
  maxClickAgeMs: number;
  maxClockSkewMs: number;
  maxBodyBytes: number;
  maxBatchBodyBytes: number;
  maxBatchClicks: number;
  /** Addresses, CIDR ranges or proxy-addr names whose X-Forwarded-For is believed. */
  trustedProxies: readonly string[];
  /** IPv6 clients share a rate-limit bucket per prefix of this length (default 64). */
  ipv6BucketPrefix?: number;
  /** Header and whole-request (body) timeouts of the listening server (defaults: shared/http-admission.ts). */
  timeouts?: Partial<HttpTimeouts>;
  retryAfterSec: number;
  ipHashKey: string;
  gatewayId: string;
}

export interface GatewayDeps {
  options: GatewayOptions;
  publisher: ClickPublisher;
  dedup: EdgeDedup;
  rateLimiter: RateLimiter;
  /**
   * Rate limit + edge-dedup read in one call (the Redis limiter does both in one script).
   * Default: `rateLimiter.check` and `dedup.seen` side by side.
   */
  admission?: Admission;
  logger: Logger;
  registry: Registry;
  now?: () => number;
  /** Extra readiness checks (e.g. Redis) reported by /readyz; Redis is never required. */
  readiness?: () => Record<string, boolean>;
  /**
   * Back-pressure (backpressure.ts): while `refusing()`, new clicks are answered 503
   * OVERLOADED + Retry-After before their body is read. Absent: never refuses.
   */
  backpressure?: Pick<Backpressure, 'refusing' | 'retryAfterSec'>;
  /** The whole gateway's /metrics text when this app is one of several workers (summed by the cluster primary). */
  metricsText?: () => Promise<string>;
}

type Outcome = { status: 'accepted' | 'duplicate' } | { status: 'rejected'; error: AppError };

declare module 'fastify' {
  interface FastifyRequest {
    /** Canonical client address (audit). */
    clientIp: string;
    /** Its rate-limit bucket (the IPv6 prefix for IPv6 clients). */
    rateKey: string;
    /** W3C trace context of this request (joined or started); its trace id is the request id. */
    trace: TraceContext;
    /** The rate-limit decision once taken (so an error after it does not count twice). */
    rateDecision?: RateDecision;
    /**
     * A single click's charge waits for its body, to ride with its edge-dedup read (one
     * Redis round trip per click); true until taken. An error before it still pays it.
     */
    chargeDeferred: boolean;
  }
}

// The trace context is made where fastify asks for the request id, so the id fastify
// binds to every request log line (as `trace_id`) is the trace id at no extra cost.
const TRACE = Symbol('adclick.trace');
type TracedMessage = IncomingMessage & { [TRACE]?: TraceContext };
function traceOf(raw: TracedMessage): TraceContext {
  return (raw[TRACE] ??= traceContextFor(raw.headers.traceparent));
}

const JSON_TYPE = 'application/json; charset=utf-8';
const ACCEPTED_BODY = JSON.stringify({ status: 'accepted' });
const DUPLICATE_BODY = JSON.stringify({ status: 'duplicate' });
const NOT_FOUND_BODY = JSON.stringify(errorBody('NOT_FOUND'));
const OPENAPI_BODY = JSON.stringify(GATEWAY_OPENAPI);
const NO_KEYS: readonly string[] = [];
/**
 * Deepest JSON a request may hold: a batch is 3 levels ({"clicks": [{...}]}), the rest is
 * slack for unknown fields. Checked before JSON.parse, so a deeply nested body costs a scan
 * of its first bytes, not a parse.
 */
const MAX_JSON_DEPTH = 8;
/**
 * Single clicks of one client whose body has not arrived yet (their charge waits for it):
 * beyond this many the next is refused before its body, so slow single-click bodies cannot
 * pile up uncharged. An honest body arrives with its headers; this is never reached.
 */
export const MAX_PENDING_CLICKS_PER_CLIENT = 64;

export function buildGatewayApp(deps: GatewayDeps) {
  const { options: o, publisher, dedup, rateLimiter, registry, backpressure } = deps;
  const admission = deps.admission ?? separateAdmission(rateLimiter, dedup);
  const now = deps.now ?? Date.now;
  const clientAddress = createClientAddress({ trustedProxies: o.trustedProxies, ipv6Prefix: o.ipv6BucketPrefix ?? 64 });
  const clientErrors = new Counter({
    name: 'adclick_gateway_client_errors_total',
    help: 'Requests refused by the HTTP parser before routing: BAD_REQUEST (not HTTP), REQUEST_TIMEOUT (headers or body too slow), HEADERS_TOO_LARGE',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const app = Fastify({
    loggerInstance: deps.logger.child({ module: 'http' }),
    disableRequestLogging: true,
    clientErrorHandler: clientErrorHandler((code) => clientErrors.inc({ code })),
    genReqId: (raw) => traceOf(raw as TracedMessage).traceId,
    requestIdLogLabel: 'trace_id',
    // The single-click limit everywhere; only the batch route takes more.
    bodyLimit: o.maxBodyBytes,
    return503OnClosing: true,
    ...serverTimeouts(o.timeouts),
  });
  const http = httpMetrics(registry, 'adclick_gateway');
  const clicks = new Counter({
    name: 'adclick_gateway_clicks_total',
    help: 'Clicks by outcome (accepted, duplicate, or the rejection code)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const kafkaAck = new Histogram({
    name: 'adclick_gateway_kafka_ack_seconds',
    help: 'Produce to acks=all acknowledgement (or failure), per request',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [registry],
  });
  const admissionTime = new Histogram({
    name: 'adclick_gateway_admission_seconds',
    help: 'Rate limit and/or edge-dedup read (one Redis round trip, or the in-process fallback), per admission call',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: [registry],
  });
  new Gauge({
    name: 'adclick_gateway_kafka_inflight',
    help: 'Clicks awaiting a Kafka acknowledgement',
    registers: [registry],
    collect() {
      this.set(publisher.inflight());
    },
  });
  new Gauge({
    name: 'adclick_gateway_kafka_breaker_open',
    help: '1 while the Kafka circuit breaker is open',
    registers: [registry],
    collect() {
      this.set(publisher.breakerState() === 'open' ? 1 : 0);
    },
  });

  // Clicks being produced right now by this instance: a concurrent retry of the same
  // click waits for the first attempt instead of writing a second copy. (The delivery of
  // the whole publish call and the click's index in it: no promise per click.)
  const producing = new Map<string, { delivery: Promise<boolean[]>; index: number }>();
  const ACCEPTED: Outcome = { status: 'accepted' };
  const DUPLICATE: Outcome = { status: 'duplicate' };
  const notAcked = (): Outcome => ({ status: 'rejected', error: new AppError('UNAVAILABLE', 'click was not acknowledged by Kafka; retry') });

  const rateLimited = (d: RateDecision) => new AppError('RATE_LIMITED', undefined, { retryAfterSec: Math.min(MAX_RETRY_AFTER_SEC, Math.max(1, Math.ceil(d.retryAfterMs / 1000))) });
  // Buckets this process saw refused, until their Retry-After: a single click from one of
  // them is refused before its body is read without asking Redis (see chargeDeferred).
  const refusals = new RecentRefusals();
  const pendingClicks = new Map<string, number>();
  const counted = new WeakSet<FastifyRequest>();
  const settlePending = (req: FastifyRequest) => {
    if (!counted.delete(req)) return;
    const n = (pendingClicks.get(req.rateKey) ?? 1) - 1;
    if (n > 0) pendingClicks.set(req.rateKey, n);
    else pendingClicks.delete(req.rateKey);
  };
  /** Charge `cost` to the request's bucket (with the reads of `keys`); remembers a refusal. */
  const charge = async (req: FastifyRequest, keys: readonly string[], cost: number, paid = 0) => {
    const t0 = performance.now();
    const admitted = await admission.admit(req.rateKey, keys, cost, paid);
    admissionTime.observe((performance.now() - t0) / 1000);
    settlePending(req);
    req.chargeDeferred = false;
    req.rateDecision = admitted.decision;
    if (!admitted.decision.allowed) refusals.note(req.rateKey, admitted.decision.retryAfterMs);
    return admitted;
  };

  const sendError = (reply: FastifyReply, err: AppError) => {
    if (err.retryable) reply.header('retry-after', String(err.retryAfterSec ?? o.retryAfterSec));
    return reply.code(err.status).send(err.toBody());
  };

  app.setErrorHandler(async (err: unknown, req, reply) => {
    const e = err as { code?: string; statusCode?: number };
    let appErr: AppError;
    // Refused before the whole body was read: close rather than read the rest.
    if (hasUnreadBody(req.raw)) reply.header('connection', 'close');
    // A single click that failed before its deferred charge (bad body, wrong type) pays it
    // now: bad requests are limited like good ones, and 429 wins over any 4xx.
    if (req.chargeDeferred) {
      const { decision } = await charge(req, NO_KEYS, 1);
      if (!decision.allowed) err = rateLimited(decision);
    }
    if (isAppError(err)) appErr = err;
    else if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') appErr = new AppError('PAYLOAD_TOO_LARGE');
    else if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') appErr = new AppError('UNSUPPORTED_MEDIA_TYPE');
    else if (e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) appErr = new AppError('INVALID_JSON');
    else if (e.statusCode === 400) appErr = new AppError('INVALID_JSON', (err as Error).message);
    else {
      req.log.error({ err }, 'unhandled error');
      appErr = new AppError('INTERNAL');
    }
    if (appErr.code !== 'INTERNAL') clicks.inc({ outcome: appErr.code });
    return sendError(reply, appErr);
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).send(errorBody('NOT_FOUND')));
  // Answers echo client-supplied text (impression ids, field paths): no browser may sniff them into HTML.
  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
  });

  // Only JSON is accepted. A missing Content-Type is "not JSON" too (415).
  app.removeAllContentTypeParsers();
  // Read by hand rather than with parseAs, so nesting and size are refused while the body
  // arrives: the rest of a refused upload is never read (the connection closes instead).
  app.addContentTypeParser(['application/json'], (req, payload, done) => {
    const limit = req.routeOptions.bodyLimit ?? o.maxBodyBytes;
    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    if (declared !== undefined && declared > limit) return done(new AppError('PAYLOAD_TOO_LARGE'), undefined);
    const depth = new JsonDepthScanner(MAX_JSON_DEPTH);
    const parts: Buffer[] = [];
    let received = 0;
    let settled = false;
    const settle = (err: Error | null, value?: unknown) => {
      if (settled) return;
      settled = true;
      payload.removeListener('data', onData);
      if (err) payload.pause();
      done(err, value);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) return settle(new AppError('PAYLOAD_TOO_LARGE'));
      if (depth.push(chunk)) return settle(new AppError('INVALID_JSON', `JSON nested deeper than ${MAX_JSON_DEPTH} levels`));
      parts.push(chunk);
    };
    payload.on('data', onData);
    payload.on('error', (err) => settle(err));
    payload.on('end', () => {
      if (declared !== undefined && received !== declared) return settle(new AppError('INVALID_JSON', 'body length differs from Content-Length'));
      const text = (parts.length === 1 ? parts[0]! : Buffer.concat(parts, received)).toString('utf8');
      try {
        settle(null, JSON.parse(text));
      } catch {
        settle(new AppError('INVALID_JSON'));
      }
    });
  });

  app.decorateRequest('clientIp', '');
  app.decorateRequest('rateKey', '');
  app.decorateRequest('trace', null as unknown as TraceContext);
  app.decorateRequest('rateDecision', undefined);
  app.decorateRequest('chargeDeferred', false);
  // Admission before anything is read: every request but the operational GETs (health,
  // readiness, metrics, the document) is charged to its client's bucket here, before its
  // body arrives, so a limited client, an unknown route or a bad body costs one bucket
  // step. A flood of bad requests is limited like good ones: 429 wins over any 4xx.
  app.addHook('onRequest', async (req, reply) => {
    const addr = clientAddress(req.raw);
    req.clientIp = addr.ip;
    req.rateKey = addr.bucket;
    req.trace = traceOf(req.raw);
    reply.header('traceresponse', req.trace.header);
    if (!req.is404 && (req.method === 'GET' || req.method === 'HEAD')) return;
    // Back-pressure: the pipeline is too far behind; refused before the body and the
    // rate-limit charge (nothing is read, nothing is written, the client retries later).
    if (backpressure?.refusing() && !req.is404 && req.method === 'POST' && (req.routeOptions.url === '/v1/clicks' || req.routeOptions.url === '/v1/clicks/batch')) {
      if (hasUnreadBody(req.raw)) reply.header('connection', 'close');
      throw new AppError('OVERLOADED', undefined, { retryAfterSec: backpressure.retryAfterSec });
    }
    if (!req.is404 && req.method === 'POST' && req.routeOptions.url === '/v1/clicks') {
      // A single click (at most ADCLICK_MAX_BODY_BYTES, nesting refused while it arrives) is
      // charged with its edge-dedup read once its body is parsed: one Redis round trip, not
      // two. A bucket refused lately is refused here, before the body, without Redis.
      const pending = pendingClicks.get(req.rateKey) ?? 0;
      const waitMs = pending >= MAX_PENDING_CLICKS_PER_CLIENT ? 1000 : refusals.waitMs(req.rateKey);
      if (waitMs > 0) {
        if (hasUnreadBody(req.raw)) reply.header('connection', 'close');
        throw rateLimited({ allowed: false, retryAfterMs: waitMs });
      }
      req.chargeDeferred = true;
      pendingClicks.set(req.rateKey, pending + 1);
      counted.add(req);
      // Its body arrived (or never will: request timeout, client gone); the charge may follow.
      req.raw.once('close', () => settlePending(req));
      if (req.headers['content-type'] === undefined) throw new AppError('UNSUPPORTED_MEDIA_TYPE');
      return;
    }
    const { decision } = await charge(req, NO_KEYS, 1);
    // Refused before the body is read: the connection closes rather than reading the rest.
    if ((!decision.allowed || req.is404) && hasUnreadBody(req.raw)) reply.header('connection', 'close');
    if (!decision.allowed) throw rateLimited(decision);
    // Only routes that take a body read one: an unknown route answers at once.
    if (req.is404) return reply.code(404).type(JSON_TYPE).send(NOT_FOUND_BODY);
    if (req.method === 'POST' && req.headers['content-type'] === undefined) throw new AppError('UNSUPPORTED_MEDIA_TYPE');
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    http.requests.inc({ route, status: reply.statusCode });
    http.duration.observe({ route }, reply.elapsedTime / 1000);
  });

  // Keyed hash of the client IP, cached per IP (an HMAC costs more than the rest of a
  // click's encoding); the cache is simply dropped when it grows large.
  const ipHashes = new Map<string, Buffer>();
  const ipHash = (ip: string): Buffer => {
    let h = ipHashes.get(ip);
    if (!h) {
      if (ipHashes.size >= 10_000) ipHashes.clear();
      h = createHmac('sha256', o.ipHashKey).update(ip).digest().subarray(0, 16);
      ipHashes.set(ip, h);
    }
    return h;
  };

  const toRecord = (c: Click, receivedAt: number, ipH: Buffer, headers: OutRecord['headers']): OutRecord => {
    const value = ClickEvent.encode({
      impressionId: c.impression_id,
      eventType: c.event_type,
      adId: c.ad_id,
      campaignId: c.campaign_id,
      advertiserId: c.advertiser_id,
      userId: c.user_id,
      eventTimeMs: c.timestamp,
      receivedAtMs: receivedAt,
      clientIpHash: ipH,
      keyId: c.key_id,
      gatewayId: o.gatewayId,
    }).finish() as Buffer;
    // Keyed by impression, not by ad: a hot ad's clicks spread over every partition (and
    // so over every source subtask) instead of binding one partition. Nothing downstream
    // needs an ad's clicks in one partition: dedup is keyed by (impression, event) inside
    // the job, each click carries its own campaign, and progress ticks go to every partition.
    return { key: c.impression_id, value, headers };
  };

  /**
   * The core of both endpoints: edge dedup, produce, wait for acks, mark as seen.
   * `seen`: the edge-dedup flags of `keys` when already read (a batch reads them with its
   * charge). Returns one outcome per valid click. Throws UNAVAILABLE when nothing could be sent.
   */
  async function ingest(valid: Click[], req: FastifyRequest, keys = valid.map(keyOf), seen?: boolean[]): Promise<Outcome[]> {
    // The request was charged on arrival: this is the edge-dedup read alone (cost 0).
    seen ??= (await admission.admit(req.rateKey, keys, 0)).seen;
    const receivedAt = now();
    const ipH = ipHash(req.clientIp);
    const outcomes: (Outcome | Promise<Outcome> | undefined)[] = new Array(valid.length);
    const firstIndex = new Map<string, number>();
    const repeats: number[] = [];
    const toSend: number[] = [];
    for (let i = 0; i < valid.length; i++) {
      const key = keys[i]!;
      if (seen[i]) {
        outcomes[i] = DUPLICATE;
      } else if (firstIndex.has(key)) {
        repeats.push(i); // same click twice in one batch: answered from its first copy
      } else {
        firstIndex.set(key, i);
        const pending = producing.get(key);
        // A concurrent request is producing this very click: its outcome decides ours.
        if (pending) outcomes[i] = pending.delivery.then((acked) => (acked[pending.index] ? DUPLICATE : notAcked()));
        else toSend.push(i);
      }
    }
    if (toSend.length) {
      // Throws synchronously (breaker open, Kafka not connected, in-flight cap) → the
      // whole request is answered 503 and nothing was written.
      // Every record of the request carries the gateway span as its parent (one array, shared).
      const headers = [{ traceparent: req.trace.header }];
      const t1 = performance.now();
      const delivery = publisher.publish(toSend.map((i) => toRecord(valid[i]!, receivedAt, ipH, headers)));
      toSend.forEach((i, index) => producing.set(keys[i]!, { delivery, index }));
      let acked: boolean[];
      try {
        acked = await delivery;
      } finally {
        for (const i of toSend) producing.delete(keys[i]!);
        kafkaAck.observe((performance.now() - t1) / 1000);
      }
      const ackedKeys: string[] = [];
      toSend.forEach((i, j) => {
        if (acked[j]) ackedKeys.push(keys[i]!);
        outcomes[i] = acked[j] ? ACCEPTED : notAcked();
      });
      // Marked only after the ack, and not awaited: a retry racing the mark is produced
      // again and dropped by the Flink job's dedup; waiting would add a Redis round trip
      // to every answer.
      void dedup.mark(ackedKeys);
    }
    const settled = (await Promise.all(outcomes)) as Outcome[];
    for (const i of repeats) {
      const first = settled[firstIndex.get(keys[i]!)!]!;
      settled[i] = first.status === 'rejected' ? first : DUPLICATE;
    }
    return settled;
  }

  const keyOf = (c: Click) => dedupKey(c.event_type, c.impression_id);
  const verifyOpts = () => ({ keys: o.signingKeys, now: now(), maxClickAgeMs: o.maxClickAgeMs, maxClockSkewMs: o.maxClockSkewMs });

  app.post('/v1/clicks', { bodyLimit: o.maxBodyBytes }, async (req, reply) => {
    const click = parseClick(req.body);
    // The charge and the edge-dedup read in one admission, before the signature is checked.
    const key = keyOf(click);
    const { decision, seen } = await charge(req, [key], 1);
    if (!decision.allowed) throw rateLimited(decision);
    verifyClick(click, verifyOpts());
    const [outcome] = await ingest([click], req, [key], seen);
    if (outcome!.status === 'rejected') throw outcome!.error;
    clicks.inc({ outcome: outcome!.status });
    // Constant answers, already serialized.
    return reply.code(202).type(JSON_TYPE).send(outcome!.status === 'accepted' ? ACCEPTED_BODY : DUPLICATE_BODY);
  });

  app.post('/v1/clicks/batch', { bodyLimit: o.maxBatchBodyBytes }, async (req, reply) => {
    const body = req.body as { clicks?: unknown } | null;
    if (typeof body !== 'object' || body === null || Array.isArray(body) || !Array.isArray(body.clicks)) {
      throw new AppError('INVALID_FIELD', 'body must be {"clicks": [...]}', { field: 'clicks' });
    }
    const items = body.clicks;
    if (items.length < 1 || items.length > o.maxBatchClicks) {
      throw new AppError('INVALID_FIELD', `clicks must hold 1 to ${o.maxBatchClicks} clicks`, { field: 'clicks' });
    }
    const vo = verifyOpts();
    // Outcome counts of the whole batch, added to the counter once per outcome (not per click).
    const tally = new Map<string, number>();
    const count = (outcome: string) => tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
    const results: { impression_id: string | null; status: string; error?: ReturnType<AppError['toBody']>['error'] }[] = new Array(items.length);
    const reject = (i: number, item: unknown, err: unknown) => {
      const e = isAppError(err) ? err : new AppError('INVALID_FIELD');
      const imp = (item as { impression_id?: unknown } | null)?.impression_id;
      results[i] = { impression_id: typeof imp === 'string' ? imp : null, status: 'rejected', error: e.toBody().error };
      count(e.code);
    };
    // The cheap part first: field checks of every click, no signature yet.
    const parsed: Click[] = [];
    const parsedIdx: number[] = [];
    items.forEach((item, i) => {
      try {
        parsed.push(parseClick(item, `clicks[${i}]`));
        parsedIdx.push(i);
      } catch (err) {
        reject(i, item, err);
      }
    });
    const flushTally = () => {
      for (const [outcome, n] of tally) clicks.inc({ outcome }, n);
      tally.clear();
    };
    flushTally(); // the rejected ones count even when the rest is then refused (429, 503)
    // One request per click: the rest of the charge (1 was paid on arrival) before any
    // signature is checked, with the edge-dedup read of the well-formed clicks.
    const parsedKeys = parsed.map(keyOf);
    const charged = await charge(req, parsedKeys, items.length - 1, 1);
    if (!charged.decision.allowed) throw rateLimited(charged.decision);
    const valid: Click[] = [];
    const validIdx: number[] = [];
    const validKeys: string[] = [];
    const validSeen: boolean[] = [];
    parsed.forEach((c, j) => {
      try {
        verifyClick(c, vo);
        valid.push(c);
        validIdx.push(parsedIdx[j]!);
        validKeys.push(parsedKeys[j]!);
        validSeen.push(charged.seen[j]!);
      } catch (err) {
        reject(parsedIdx[j]!, items[parsedIdx[j]!], err);
      }
    });
    flushTally();
    if (valid.length) {
      const outcomes = await ingest(valid, req, validKeys, validSeen);
      outcomes.forEach((out, j) => {
        const i = validIdx[j]!;
        const imp = valid[j]!.impression_id;
        if (out.status === 'rejected') {
          results[i] = { impression_id: imp, status: 'rejected', error: out.error.toBody().error };
          count(out.error.code);
        } else {
          results[i] = { impression_id: imp, status: out.status };
          count(out.status);
        }
      });
      flushTally();
    }
    return reply.code(200).send({ results });
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const checks = { kafka: publisher.ready(), ...(deps.readiness?.() ?? {}) };
    // Redis is reported but never required: the gateway fails open without it.
    const ready = checks.kafka;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks });
  });
  // One collection across the workers per second at most, however many scrapes ask (one
  // process alone reads its own registry: cheap, and always current).
  const metricsText = deps.metricsText ? cachedAnswer(deps.metricsText, 1000) : () => registry.metrics();
  app.get('/metrics', async (req, reply) => {
    let text: string;
    try {
      text = await metricsText();
    } catch (err) {
      req.log.warn({ err }, 'metrics aggregation across workers failed');
      return sendError(reply, new AppError('UNAVAILABLE', 'metrics of the other gateway workers could not be collected; retry'));
    }
    return reply.type(registry.contentType).send(text);
  });
  app.get('/openapi.json', async (_req, reply) => reply.type(JSON_TYPE).send(OPENAPI_BODY));

  return app;
}

export type { ErrorCode };

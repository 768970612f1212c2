// Real answers of the running services validated against their OpenAPI documents: the
// gateway on a real Kafka broker and Redis, the query API in the serving process on
// embedded ClickHouse (chdb). Every answer is checked (status documented, content type,
// body schema, required headers) and counted; at the end every documented (operation,
// status) must have been seen, so neither the document nor the code can drift alone.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import * as ajvFormats from 'ajv-formats';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { freePort, startTestKafka } from '../helpers/kafka.ts';
import { buildGatewayApp } from '../../src/gateway/app.ts';
import { createClickPublisher } from '../../src/gateway/click-publisher.ts';
import { createEdgeDedup } from '../../src/gateway/edge-dedup.ts';
import { GATEWAY_OPENAPI } from '../../src/gateway/openapi.ts';
import { createRateLimiter } from '../../src/gateway/rate-limiter.ts';
import { buildQueryApp } from '../../src/query/app.ts';
import { QUERY_OPENAPI } from '../../src/query/openapi.ts';
import { startServing } from '../../src/serving.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRegistry } from '../../src/shared/metrics.ts';
import { CONNECTION_ERROR_CODES } from '../../src/shared/http-admission.ts';
import { OTHER_METHODS_EXTENSION, UNMATCHED_EXTENSION, type OpenApiDocument } from '../../src/shared/openapi.ts';
import { WatermarkProgress, WindowAggregate } from '../../src/shared/proto.ts';
import { createOptionalRedis } from '../../src/shared/redis.ts';
import { signClick } from '../../src/shared/signature.ts';
import { buildBatch, writeBatch, type SinkMessage } from '../../src/sink/batch.ts';
import { createApiKey } from '../../src/store/api-keys.ts';
import { storeQueryRepository } from '../../src/store/query-repository.ts';
import { ensureTopics } from '../../src/stack/topics.ts';

// ajv-formats is CommonJS with a default export; under NodeNext its default arrives one level down.
const addFormats = ((ajvFormats as unknown as { default: { default?: unknown } }).default.default ?? ajvFormats.default) as unknown as (ajv: Ajv2020) => Ajv2020;

/**
 * Statuses no request to the real services can provoke. Kept to one: INTERNAL is the
 * answer to a bug (an exception no handler maps), documented on every operation.
 */
const EXEMPT_STATUSES: Readonly<Record<string, string>> = { '500': 'INTERNAL: only a bug answers it' };

const OPERATION_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const esc = (s: string) => s.replaceAll('~', '~0').replaceAll('/', '~1');

function at(doc: unknown, pointer: string): Obj {
  let node: unknown = doc;
  for (const part of pointer.replace(/^#\//, '').split('/')) node = (node as Obj)[part.replaceAll('~1', '/').replaceAll('~0', '~')];
  assert.ok(isObj(node), `${pointer} does not resolve`);
  return node;
}

/** The pointer of an object that may be a local $ref. */
const target = (doc: unknown, pointer: string): string => {
  const node = at(doc, pointer);
  return typeof node.$ref === 'string' ? target(doc, node.$ref) : pointer;
};

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  json<T = any>(): T;
}

/** One service's document: finds the operation of a request, validates its answer, counts what was seen. */
class Contract {
  private readonly ajv = new Ajv2020({ strict: true, allErrors: true });
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly id: string;
  readonly exercised = new Set<string>();
  readonly codes = new Set<string>();
  /** Real bodies seen per (operation, status), for the drift checks. */
  readonly samples = new Map<string, { pointer: string; bodies: unknown[] }>();

  constructor(readonly name: string, readonly doc: OpenApiDocument) {
    this.id = `https://adclick.invalid/${name}/openapi.json`;
    addFormats(this.ajv);
    this.ajv.addVocabulary(Object.keys(doc));
    this.ajv.addSchema(structuredClone(doc) as never, this.id);
  }

  validator(pointer: string): ValidateFunction {
    let v = this.validators.get(pointer);
    if (!v) this.validators.set(pointer, (v = this.ajv.compile({ $ref: `${this.id}${pointer}` })));
    return v;
  }

  /** Every (operation, status) the document promises. */
  pairs(): string[] {
    return this.operations().flatMap(({ key, op }) => Object.keys(op.responses as Obj).map((s) => `${key} ${s}`));
  }

  private operations(): { key: string; pointer: string; op: Obj }[] {
    const out: { key: string; pointer: string; op: Obj }[] = [];
    for (const [path, item] of Object.entries(this.doc.paths)) {
      for (const m of OPERATION_METHODS) if (isObj(item[m])) out.push({ key: `${m.toUpperCase()} ${path}`, pointer: `#/paths/${esc(path)}/${m}`, op: item[m] as Obj });
      if (isObj(item[OTHER_METHODS_EXTENSION])) out.push({ key: `* ${path}`, pointer: `#/paths/${esc(path)}/${OTHER_METHODS_EXTENSION}`, op: item[OTHER_METHODS_EXTENSION] as Obj });
    }
    if (isObj(this.doc[UNMATCHED_EXTENSION])) out.push({ key: 'unmatched', pointer: `#/${UNMATCHED_EXTENSION}`, op: this.doc[UNMATCHED_EXTENSION] as Obj });
    return out;
  }

  /** The documented operation a request lands on: literal paths first, then templates. */
  operationOf(method: string, pathname: string): { key: string; pointer: string } {
    const paths = Object.keys(this.doc.paths).sort((a, b) => Number(a.includes('{')) - Number(b.includes('{')));
    const path = paths.find((p) => new RegExp(`^${p.replace(/\{\w+\}/g, '[^/]+')}$`).test(pathname));
    const item = path === undefined ? undefined : this.doc.paths[path]!;
    const m = method === 'HEAD' ? 'get' : method.toLowerCase();
    if (item && isObj(item[m])) return { key: `${m.toUpperCase()} ${path}`, pointer: `#/paths/${esc(path!)}/${m}` };
    if (item && isObj(item[OTHER_METHODS_EXTENSION]) && method !== 'GET' && method !== 'HEAD') return { key: `* ${path}`, pointer: `#/paths/${esc(path!)}/${OTHER_METHODS_EXTENSION}` };
    return { key: 'unmatched', pointer: `#/${UNMATCHED_EXTENSION}` };
  }

  async request(base: string, method: string, url: string, init: { headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
    const res = await fetch(base + url, { method, headers: init.headers, body: init.body });
    const text = await res.text();
    const answer: Answer = { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
    this.check(method, new URL(url, 'http://x').pathname, answer);
    return answer;
  }

  private check(method: string, pathname: string, a: Answer): void {
    const what = `${this.name}: ${method} ${pathname} → ${a.status} ${a.text.slice(0, 300)}`;
    const { key, pointer } = this.operationOf(method, pathname);
    const responses = at(this.doc, `${pointer}/responses`);
    assert.ok(String(a.status) in responses, `${what}: status ${a.status} is not documented for ${key} (${Object.keys(responses).join(', ')})`);
    const rp = target(this.doc, `${pointer}/responses/${a.status}`);
    const response = at(this.doc, rp);

    for (const name of Object.keys((response.headers as Obj | undefined) ?? {})) {
      const hp = target(this.doc, `${rp}/headers/${esc(name)}`);
      const value = a.headers.get(name);
      if (value === null) {
        assert.ok(at(this.doc, hp).required !== true, `${what}: required header ${name} missing`);
        continue;
      }
      const v = this.validator(`${hp}/schema`);
      assert.ok(v(value), `${what}: header ${name}: ${JSON.stringify(value)} ${this.ajv.errorsText(v.errors)}`);
    }

    const content = response.content as Obj | undefined;
    if (!content) {
      assert.equal(a.text, '', `${what}: no body is documented`);
    } else {
      const type = (a.headers.get('content-type') ?? '').split(';')[0]!.trim();
      assert.ok(type in content, `${what}: content type ${type} is not documented (${Object.keys(content).join(', ')})`);
      if (method === 'HEAD') {
        assert.equal(a.text, '', `${what}: HEAD has no body`);
      } else {
        const body: unknown = type === 'application/json' ? JSON.parse(a.text) : a.text;
        const schemaPointer = `${rp}/content/${esc(type)}/schema`;
        const v = this.validator(schemaPointer);
        assert.ok(v(body), `${what}: body does not match ${key} ${a.status}: ${this.ajv.errorsText(v.errors)}`);
        const code = isObj(body) && isObj(body.error) ? body.error.code : undefined;
        if (typeof code === 'string') this.codes.add(code);
        const seen = this.samples.get(`${key} ${a.status}`) ?? { pointer: schemaPointer, bodies: [] };
        seen.bodies.push(body);
        this.samples.set(`${key} ${a.status}`, seen);
      }
    }
    this.exercised.add(`${key} ${a.status}`);
  }
}

const gatewayContract = new Contract('gateway', GATEWAY_OPENAPI);
const queryContract = new Contract('query', QUERY_OPENAPI);

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const run = randomBytes(4).toString('hex');
const kafka = await startTestKafka({ after });
const topic = kafka.uniqueTopic('clicks-openapi');
await ensureTopics(kafka.bootstrap, [{ name: topic, partitions: 1, configs: {} }], logger);

const KEYS = new Map([['k1', 'openapi-secret']]);
let seq = 0;
function click(over: Record<string, unknown> = {}) {
  const c = { impression_id: `imp_${run}_${++seq}`, event_type: 'click', ad_id: 1000 + (seq % 5), campaign_id: 50, advertiser_id: 7, user_id: `u_${seq}`, timestamp: Date.now() - 500, key_id: 'k1', ...over };
  return { ...c, signature: signClick(c as never, KEYS.get('k1')!) };
}

/**
 * A gateway wired as main.ts wires it (Redis limiter also answering admission, Redis in
 * /readyz), listening on a free loopback port. Each gateway sends its own X-Forwarded-For
 * (loopback is a trusted proxy here) so its Redis rate-limit bucket is its own.
 */
async function startGateway(o: { brokers: string; perSecond: number; burst: number; metricsText?: () => Promise<string>; backpressure?: { refusing(): boolean; retryAfterSec: number } }) {
  const redis = createOptionalRedis('redis://127.0.0.1:6379', logger);
  if (redis && redis.status !== 'ready') await new Promise((r) => redis.once('ready', r));
  const publisher = await createClickPublisher({
    brokers: o.brokers, topic, lingerMs: 1, compression: 'lz4', produceTimeoutMs: 5000, maxInflight: 10_000,
    breakerFailures: 5, breakerOpenMs: 2000, clientId: `it-openapi-${run}`, logger,
  });
  const rateLimiter = createRateLimiter(redis, { perSecond: o.perSecond, burst: o.burst });
  const app = buildGatewayApp({
    options: {
      signingKeys: KEYS, maxClickAgeMs: 86_400_000, maxClockSkewMs: 300_000, maxBodyBytes: 4096, maxBatchBodyBytes: 65_536,
      maxBatchClicks: 1000, trustedProxies: ['127.0.0.1'], retryAfterSec: 2, ipHashKey: 'k', gatewayId: 'it-openapi',
    },
    publisher,
    dedup: createEdgeDedup(redis, 3600, () => {}),
    rateLimiter,
    admission: rateLimiter,
    logger,
    registry: createRegistry('gateway', false),
    readiness: () => ({ redis: redis?.status === 'ready' }),
    metricsText: o.metricsText,
    backpressure: o.backpressure,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  after(async () => {
    await app.close();
    await publisher.close();
    redis?.disconnect();
  });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  // A real address (garbage would fall back to the proxy's own bucket), in a /64 of its own.
  const ip = `2001:db8:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}::1`;
  return { app, publisher, redis, base, ip };
}

test('gateway: every documented answer of every operation, from a real broker and Redis', { timeout: 180_000 }, async () => {
  const main = await startGateway({ brokers: kafka.bootstrap, perSecond: 1_000_000, burst: 1_000_000 });
  for (let i = 0; i < 200 && !main.publisher.ready(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(main.publisher.ready(), 'producer connected');
  const g = gatewayContract;
  const json = (ip: string, extra: Record<string, string> = {}) => ({ 'content-type': 'application/json', 'x-forwarded-for': ip, ...extra });
  const post = (gw: { base: string; ip: string }, url: string, body: string, headers = json(gw.ip)) => g.request(gw.base, 'POST', url, { headers, body });

  const c = click();
  const accepted = await post(main, '/v1/clicks', JSON.stringify(c), json(main.ip, { traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` }));
  assert.equal(accepted.status, 202, accepted.text);
  assert.deepEqual(accepted.json(), { status: 'accepted' });
  // The edge-dedup mark follows the ack without being awaited by the answer.
  for (let i = 0; i < 100 && (await main.redis!.exists(`adclick:seen:click:${c.impression_id}`)) === 0; i++) await new Promise((r) => setTimeout(r, 20));
  const dup = await post(main, '/v1/clicks', JSON.stringify(c));
  assert.deepEqual(dup.json(), { status: 'duplicate' });

  const expect = async (p: Promise<Answer>, status: number, code: string, field?: string) => {
    const a = await p;
    assert.equal(a.status, status, a.text);
    assert.equal(a.json().error.code, code);
    if (field) assert.equal(a.json().error.field, field);
    return a;
  };
  await expect(post(main, '/v1/clicks', '{"impression_id":'), 400, 'INVALID_JSON');
  await expect(post(main, '/v1/clicks', JSON.stringify({ ...c, ad_id: 0 })), 400, 'INVALID_FIELD', 'ad_id');
  await expect(post(main, '/v1/clicks', JSON.stringify({ ...click(), signature: 'f'.repeat(64) })), 401, 'SIGNATURE_INVALID');
  await expect(post(main, '/v1/clicks', JSON.stringify({ ...click(), key_id: 'retired' })), 401, 'UNKNOWN_KEY');
  await expect(post(main, '/v1/clicks', JSON.stringify({ ...click(), user_id: 'u'.repeat(5000) })), 413, 'PAYLOAD_TOO_LARGE');
  await expect(post(main, '/v1/clicks', JSON.stringify(click()), { 'content-type': 'text/plain', 'x-forwarded-for': main.ip }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  await expect(post(main, '/v1/clicks', JSON.stringify(click({ timestamp: Date.now() - 2 * 86_400_000 }))), 422, 'TIMESTAMP_OUT_OF_RANGE', 'timestamp');

  const batch = await post(main, '/v1/clicks/batch', JSON.stringify({
    clicks: [click(), c, { ...click(), ad_id: 'x' }, { ...click(), signature: '0'.repeat(64) }, { ...click(), key_id: 'retired' }, click({ timestamp: Date.now() + 3_600_000 }), 42],
  }));
  assert.equal(batch.status, 200, batch.text);
  assert.deepEqual(batch.json().results.map((r: { status: string; error?: { code: string } }) => r.error?.code ?? r.status),
    ['accepted', 'duplicate', 'INVALID_FIELD', 'SIGNATURE_INVALID', 'UNKNOWN_KEY', 'TIMESTAMP_OUT_OF_RANGE', 'INVALID_FIELD']);
  await expect(post(main, '/v1/clicks/batch', '{"clicks": ['), 400, 'INVALID_JSON');
  await expect(post(main, '/v1/clicks/batch', JSON.stringify({ clicks: [] })), 400, 'INVALID_FIELD', 'clicks');
  await expect(post(main, '/v1/clicks/batch', JSON.stringify({ clicks: Array.from({ length: 300 }, () => click()) })), 413, 'PAYLOAD_TOO_LARGE');
  await expect(post(main, '/v1/clicks/batch', JSON.stringify({ clicks: [click()] }), { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': main.ip }), 415, 'UNSUPPORTED_MEDIA_TYPE');

  for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
    assert.equal((await g.request(main.base, 'GET', url)).status, 200, url);
    assert.equal((await g.request(main.base, 'HEAD', url)).status, 200, `HEAD ${url}`);
  }
  assert.deepEqual((await g.request(main.base, 'GET', '/openapi.json')).json(), GATEWAY_OPENAPI);
  assert.deepEqual((await g.request(main.base, 'GET', '/readyz')).json().checks, { kafka: true, redis: true });
  await expect(g.request(main.base, 'GET', '/v1/clicks'), 404, 'NOT_FOUND');
  await expect(g.request(main.base, 'DELETE', '/healthz'), 404, 'NOT_FOUND');

  // A tiny per-IP limit in Redis: one request, then 429 for either endpoint.
  const limited = await startGateway({ brokers: kafka.bootstrap, perSecond: 0.1, burst: 1 });
  for (let i = 0; i < 200 && !limited.publisher.ready(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal((await post(limited, '/v1/clicks', JSON.stringify(click()))).status, 202);
  const limitedOne = await expect(post(limited, '/v1/clicks', JSON.stringify(click())), 429, 'RATE_LIMITED');
  assert.ok(Number(limitedOne.headers.get('retry-after')) >= 1);
  await expect(post(limited, '/v1/clicks/batch', JSON.stringify({ clicks: [click()] })), 429, 'RATE_LIMITED');
  // Unknown routes are charged too, before their body is read.
  await expect(post(limited, '/anything', JSON.stringify({ clicks: [click()] })), 429, 'RATE_LIMITED');
  await expect(g.request(limited.base, 'GET', '/v1/clicks', { headers: { 'x-forwarded-for': limited.ip } }), 429, 'RATE_LIMITED');

  // Back-pressure on (the pipeline-lag source itself is covered by overload.test.ts): 503 OVERLOADED + Retry-After.
  const overloaded = await startGateway({ brokers: kafka.bootstrap, perSecond: 1_000_000, burst: 1_000_000, backpressure: { refusing: () => true, retryAfterSec: 3 } });
  const over = await expect(post(overloaded, '/v1/clicks', JSON.stringify(click())), 503, 'OVERLOADED');
  assert.equal(over.headers.get('retry-after'), '3');
  await expect(post(overloaded, '/v1/clicks/batch', JSON.stringify({ clicks: [click()] })), 503, 'OVERLOADED');

  // Kafka bootstrap on a loopback port nothing listens on: never connected, nothing accepted.
  // Its /metrics stands for a worker whose cluster peers did not answer the aggregation.
  const down = await startGateway({
    brokers: `127.0.0.1:${await freePort()}`, perSecond: 1_000_000, burst: 1_000_000,
    metricsText: () => Promise.reject(new Error('metrics aggregation timed out')),
  });
  await expect(post(down, '/v1/clicks', JSON.stringify(click())), 503, 'UNAVAILABLE');
  await expect(post(down, '/v1/clicks/batch', JSON.stringify({ clicks: [click(), click()] })), 503, 'UNAVAILABLE');
  const notReady = await g.request(down.base, 'GET', '/readyz');
  assert.equal(notReady.status, 503);
  assert.deepEqual(notReady.json(), { status: 'not_ready', checks: { kafka: false, redis: true } });
  await expect(g.request(down.base, 'GET', '/metrics'), 503, 'UNAVAILABLE');
});

const MIN = 60_000;
// A day ago, hour-aligned: inside every retention the store applies.
const T0 = Math.floor((Date.now() - 86_400_000) / 3_600_000) * 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.000Z$/, 'Z');

/** Advertiser 7: campaign 55 with ads 1-3 over three 1m windows; advertiser 8: campaign 99, ad 9. The watermark closes two windows. */
function seedMessages(): SinkMessage[] {
  let offset = 0;
  const msgs: SinkMessage[] = [];
  const agg = (advertiserId: number, campaignId: number, adId: number, w: number, clicks: number) =>
    msgs.push({
      topic: 'click-aggregates', partition: 0, offset: String(offset++), key: null,
      value: Buffer.from(WindowAggregate.encode({ granularity: 1, adId, campaignId, advertiserId, windowStartMs: T0 + w * MIN, windowEndMs: T0 + (w + 1) * MIN, clicks, final: true, watermarkMs: T0 + 2 * MIN, emittedAtMs: T0 + 3 * MIN }).finish()),
    });
  for (const ad of [1, 2, 3]) for (let w = 0; w < 3; w++) agg(7, 55, ad, w, ad + w);
  agg(8, 99, 9, 0, 5);
  msgs.push({
    topic: 'click-watermarks', partition: 0, offset: '0', key: null,
    value: Buffer.from(WatermarkProgress.encode({ subtask: 0, parallelism: 1, watermarkMs: T0 + 2 * MIN, emittedAtMs: T0 + 3 * MIN }).finish()),
  });
  return msgs;
}

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  after(() => app.close());
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

test('query API: every documented answer of every operation, from the serving process on embedded ClickHouse', { timeout: 180_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'adclick-openapi-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({}, {
    dataDir, clickhouseUrl: '', queryPort: await freePort(), flinkRestUrl: `http://127.0.0.1:${await freePort()}`,
    queryRateLimitPerSec: 100_000, queryRateLimitBurst: 100_000, logLevel: 'silent',
  });
  const serving = await startServing(config, createLogger('test', 'silent'), { adminPort: 0, consumer: null });
  after(() => serving.stop());
  await writeBatch(serving.store, buildBatch(seedMessages()));
  const { api_key } = await createApiKey(serving.store, 7);
  const auth = { authorization: `Bearer ${api_key}` };
  const base = `http://127.0.0.1:${config.queryPort}`;
  const q = queryContract;
  const get = (url: string, headers: Record<string, string> = auth, b = base) => q.request(b, 'GET', url, { headers });
  const expect = async (p: Promise<Answer>, status: number, code: string) => {
    const a = await p;
    assert.equal(a.status, status, a.text);
    assert.equal(a.json().error.code, code);
    return a;
  };
  const range = `from=${T0}&to=${T0 + 3 * MIN}`;

  const v1 = await get('/v1/campaigns');
  assert.deepEqual(v1.json(), { campaigns: [{ campaign_id: 55, total_clicks: 27 }] });
  const ranged = await get(`/v1/campaigns?${range}&granularity=1m`);
  assert.equal(ranged.status, 200, ranged.text);
  assert.deepEqual(ranged.json().campaigns, [{ campaign_id: 55, total_clicks: 27, clicks: 27 }]);
  const series = await get(`/v1/campaigns/55/clicks?${range}`);
  assert.equal(series.status, 200, series.text);
  assert.deepEqual(series.json().points.map((p: { final: boolean }) => p.final), [true, true, false]);
  const ads = await get(`/v1/campaigns/55/ads?from=${iso(T0)}&to=${encodeURIComponent(iso(T0 + 3 * MIN).replace('Z', '+00:00'))}&limit=2&granularity=1m`);
  assert.deepEqual(ads.json().ads, [{ ad_id: 3, clicks: 12 }, { ad_id: 2, clicks: 9 }]);
  const adSeries = await get(`/v1/ads/1/clicks?${range}`);
  assert.equal(adSeries.json().campaign_id, 55);
  assert.equal((await q.request(base, 'HEAD', '/v1/campaigns', { headers: auth })).status, 200);

  const v1Urls = ['/v1/campaigns', '/v1/campaigns/55/clicks', '/v1/campaigns/55/ads', '/v1/ads/1/clicks'];
  for (const url of v1Urls) {
    await expect(get(`${url}?from=0&granularity=1m`), 400, 'RANGE_TOO_LARGE');
    await expect(get(`${url}?from=${T0}&granularity=2m`), 400, 'INVALID_FIELD');
    await expect(get(url, {}), 401, 'UNAUTHORIZED');
    await expect(get(url, { authorization: 'Bearer ak_revoked_or_never_issued' }), 401, 'UNAUTHORIZED');
  }
  await expect(get('/v1/campaigns/55/ads?limit=0'), 400, 'INVALID_FIELD');
  await expect(get('/v1/campaigns/99/clicks'), 404, 'NOT_FOUND');
  await expect(get('/v1/campaigns/99/ads'), 404, 'NOT_FOUND');
  await expect(get('/v1/campaigns/x55/ads'), 404, 'NOT_FOUND');
  await expect(get(`/v1/campaigns/${'5'.repeat(80)}/clicks`), 404, 'NOT_FOUND');
  await expect(get('/v1/ads/9/clicks'), 404, 'NOT_FOUND');

  for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
    assert.equal((await get(url, {})).status, 200, url);
    assert.equal((await q.request(base, 'HEAD', url)).status, 200, `HEAD ${url}`);
  }
  assert.deepEqual((await get('/openapi.json', {})).json(), QUERY_OPENAPI);
  await expect(get('/nope', {}), 404, 'NOT_FOUND');

  const page = await get('/', {});
  assert.equal(page.status, 200);
  assert.equal((await get('/', { 'if-none-match': page.headers.get('etag')! })).status, 304);
  const version = /\/assets\/([^/]+)\/app\.js/.exec(page.text)?.[1];
  assert.ok(version, 'the page names its asset version');
  for (const url of ['/assets/app.js', `/assets/${version}/app.js`, '/assets/dashboard.css', `/assets/${version}/uplot.min.css`]) {
    const a = await get(url, {});
    assert.equal(a.status, 200, url);
    assert.equal((await get(url, { 'if-none-match': a.headers.get('etag')! })).status, 304, url);
  }
  await expect(get('/assets/nope.js', {}), 404, 'NOT_FOUND');
  await expect(get(`/assets/${version}/nope.js`, {}), 404, 'NOT_FOUND');

  // 405 on every documented path, with more than one method.
  const methods = ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
  const paths = ['/v1/campaigns', '/v1/campaigns/55/clicks', '/v1/campaigns/55/ads', '/v1/ads/1/clicks', '/healthz', '/readyz', '/metrics', '/openapi.json', '/', '/assets/app.js', `/assets/${version}/app.js`];
  for (const [i, url] of paths.entries()) {
    await expect(q.request(base, methods[i % methods.length]!, url, { headers: { ...auth, 'content-type': 'application/json' }, body: '{' }), 405, 'METHOD_NOT_ALLOWED');
  }

  // The same store under a result-row cap of 2: the 3-window series is too expensive.
  const capped = await listen(buildQueryApp({ repo: storeQueryRepository(serving.store, { limits: { maxExecutionSec: 5, maxResultRows: 2, maxRowsToRead: 0 } }), logger }));
  await expect(get(`/v1/campaigns/55/clicks?${range}`, auth, capped), 400, 'QUERY_TOO_EXPENSIVE');

  // The same store behind a limit of one request per key: every further /v1 call is 429.
  const limited = await listen(buildQueryApp({ repo: storeQueryRepository(serving.store), logger, options: { rateLimitPerSec: 0.01, rateLimitBurst: 1 } }));
  assert.equal((await get('/v1/campaigns', auth, limited)).status, 200);
  for (const url of v1Urls) {
    const a = await expect(get(url, auth, limited), 429, 'RATE_LIMITED');
    assert.ok(Number(a.headers.get('retry-after')) >= 1);
  }

  // A limit of one request per client address: an unknown route takes it, then unknown
  // routes and other methods on every documented path are 429 before anything else.
  const ipLimited = await listen(buildQueryApp({ repo: storeQueryRepository(serving.store), logger, options: { ipRateLimitPerSec: 0.01, ipRateLimitBurst: 1 } }));
  await expect(get('/nope', {}, ipLimited), 404, 'NOT_FOUND');
  const ipLimitedNope = await expect(get('/nope', {}, ipLimited), 429, 'RATE_LIMITED');
  assert.equal(ipLimitedNope.headers.get('retry-after'), '60', 'capped');
  for (const [i, url] of paths.entries()) {
    await expect(q.request(ipLimited, methods[i % methods.length]!, url, { headers: { 'content-type': 'application/json' }, body: '{' }), 429, 'RATE_LIMITED');
  }
  await expect(get('/v1/campaigns', auth, ipLimited), 429, 'RATE_LIMITED');
  assert.equal((await get('/healthz', {}, ipLimited)).status, 200, 'health is never limited');

  // Storage gone: the serving process stopped (its chdb session closed) under an app still listening.
  const orphan = await listen(buildQueryApp({ repo: storeQueryRepository(serving.store), logger }));
  await serving.stop();
  await expect(get('/readyz', {}, orphan), 503, 'UNAVAILABLE');
  for (const url of v1Urls) await expect(get(url, auth, orphan), 503, 'UNAVAILABLE');
  assert.equal((await get('/healthz', {}, orphan)).status, 200, 'liveness does not depend on storage');
});

for (const contract of [gatewayContract, queryContract]) {
  test(`${contract.name}: every documented (operation, status) was answered by the real service`, (t) => {
    const exempt = contract.pairs().filter((p) => p.split(' ').at(-1)! in EXEMPT_STATUSES);
    assert.ok(exempt.every((p) => !contract.exercised.has(p)), 'an exempt status was seen: drop its exemption');
    const missing = contract.pairs().filter((p) => !contract.exercised.has(p) && !exempt.includes(p));
    assert.deepEqual(missing, [], `documented but never seen:\n${missing.join('\n')}`);
    t.diagnostic(`${contract.name}: ${contract.exercised.size} of ${contract.pairs().length} (operation, status) pairs answered; exempt: ${exempt.length} (${Object.keys(EXEMPT_STATUSES).join(', ')})`);
    const undocumented = [...contract.exercised].filter((p) => !contract.pairs().includes(p));
    assert.deepEqual(undocumented, []);
    const detail = at(contract.doc, '#/components/schemas/ErrorDetail');
    const codes = ((detail.properties as Obj).code as Obj).enum as string[];
    // The HTTP parser's own refusals (not HTTP, headers too large, too slow) cannot be sent with
    // fetch: test/unit/shared/connection-errors.test.ts checks them on a listening server.
    const byParser = new Set<string>(CONNECTION_ERROR_CODES);
    assert.deepEqual(codes.filter((c) => c !== 'INTERNAL' && !byParser.has(c) && !contract.codes.has(c)), [], 'every error code of the service was answered');
  });
}

test('the checks catch drift: a field the document lacks, a field the answer lacks, a code of another service', () => {
  const sample = (c: Contract, key: string, which: (body: Obj) => boolean = () => true) => {
    const s = c.samples.get(key);
    const body = s?.bodies.find((b) => isObj(b) && which(b));
    assert.ok(s && body, `no sample of ${key}`);
    return { pointer: s.pointer, body };
  };
  const mutated = (doc: OpenApiDocument, edit: (d: any) => void) => {
    const d = structuredClone(doc) as any;
    edit(d);
    return new Contract('mutated', d);
  };

  // The code starts answering a field the document does not have (additionalProperties: false).
  const s202 = sample(gatewayContract, 'POST /v1/clicks 202');
  assert.equal(gatewayContract.validator(s202.pointer)(s202.body), true);
  assert.equal(gatewayContract.validator(s202.pointer)({ ...(s202.body as Obj), queued: true }), false);
  const series = sample(queryContract, 'GET /v1/campaigns/{campaign_id}/clicks 200');
  const body = structuredClone(series.body) as { points: Obj[] };
  body.points[0]!.late = 0;
  assert.equal(queryContract.validator(series.pointer)(body), false);

  // The document drops an additive field the answers carry.
  const noRevised = mutated(QUERY_OPENAPI, (d) => {
    delete d.components.schemas.Point.properties.revised;
    d.components.schemas.Point.required = d.components.schemas.Point.required.filter((k: string) => k !== 'revised');
  });
  assert.equal(noRevised.validator(series.pointer)(series.body), false);
  const ranged = sample(queryContract, 'GET /v1/campaigns 200', (b) => 'granularity' in b);
  const noClicks = mutated(QUERY_OPENAPI, (d) => {
    const item = d.components.schemas.CampaignRangeTotals.properties.campaigns.items;
    delete item.properties.clicks;
    item.required = item.required.filter((k: string) => k !== 'clicks');
  });
  assert.equal(queryContract.validator(ranged.pointer)(ranged.body), true);
  assert.equal(noClicks.validator(ranged.pointer)(ranged.body), false);

  // An error answered under the wrong status, or with another service's code.
  const s401 = sample(gatewayContract, 'POST /v1/clicks 401');
  assert.equal(gatewayContract.validator(s401.pointer)({ error: { code: 'UNAUTHORIZED', message: 'x' } }), false);
  assert.equal(gatewayContract.validator(s401.pointer)({ error: { code: 'INVALID_FIELD', message: 'x' } }), false);
});

// The gateway against a real Kafka broker and a real Redis (API.md click ingestion).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { readClicks, startTestKafka } from '../helpers/kafka.ts';
import { buildGatewayApp } from '../../src/gateway/app.ts';
import { createClickPublisher, type ClickPublisher } from '../../src/gateway/click-publisher.ts';
import { createEdgeDedup, verifiedAdmission } from '../../src/gateway/edge-dedup.ts';
import { createRateLimiter } from '../../src/gateway/rate-limiter.ts';
import { createOptionalRedis } from '../../src/shared/redis.ts';
import { createRegistry } from '../../src/shared/metrics.ts';
import { signClick } from '../../src/shared/signature.ts';
import { ensureTopics } from '../../src/stack/topics.ts';

const kafka = await startTestKafka({ after });
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const KEYS = new Map([['k1', 'integration-secret']]);
const run = randomBytes(4).toString('hex');
let seq = 0;

function click(over: Record<string, unknown> = {}) {
  const c = { impression_id: `imp_${run}_${++seq}`, event_type: 'click', ad_id: 1000 + (seq % 7), campaign_id: 50 + (seq % 3), advertiser_id: 7, user_id: `u_${seq}`, timestamp: Date.now() - 500, key_id: 'k1', ...over };
  return { ...c, signature: signClick(c as never, KEYS.get('k1')!) };
}

async function gateway(topic: string, opts: { redisUrl?: string; produceTimeoutMs?: number } = {}) {
  // Wired as main.ts does: the Redis limiter also answers admission (rate limit + dedup read in one script).
  const redis = createOptionalRedis(opts.redisUrl ?? 'redis://127.0.0.1:6379', logger);
  if (redis && !opts.redisUrl) await new Promise((r) => redis.once('ready', r));
  const publisher = await createClickPublisher({
    brokers: kafka.bootstrap, topic, lingerMs: 2, compression: 'lz4', produceTimeoutMs: opts.produceTimeoutMs ?? 5000,
    maxInflight: 10_000, breakerFailures: 3, breakerOpenMs: 500, clientId: 'it-gateway', logger,
  });
  for (let i = 0; i < 200 && !publisher.ready(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(publisher.ready(), 'producer connected');
  const rateLimiter = createRateLimiter(redis, { perSecond: 100_000, burst: 100_000 });
  const app = buildGatewayApp({
    options: { signingKeys: KEYS, maxClickAgeMs: 86_400_000, maxClockSkewMs: 300_000, maxBodyBytes: 4096, maxBatchBodyBytes: 1 << 20, maxBatchClicks: 1000, trustedProxies: [], retryAfterSec: 1, ipHashKey: 'k', gatewayId: 'it' },
    publisher,
    dedup: createEdgeDedup(redis, 3600, () => {}),
    rateLimiter,
    admission: rateLimiter,
    logger,
    registry: createRegistry('gateway', false),
  });
  const close = async () => {
    await app.close();
    await publisher.close();
    redis?.disconnect();
  };
  after(close);
  return { app, publisher, redis, close };
}

const post = (app: Awaited<ReturnType<typeof gateway>>['app'], url: string, body: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url, payload: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });

/** The edge-dedup mark is written right after the ack, not awaited by the answer: poll briefly. */
async function eventuallyExists(redis: Redis, key: string, timeoutMs = 3000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = await redis.exists(key);
    if (n === 1 || Date.now() > deadline) return n;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Everything currently in the topic. */
const readTopic = (topic: string, expectAtLeast: number, timeoutMs?: number) => readClicks(kafka.bootstrap, topic, expectAtLeast, timeoutMs);

async function newTopic(prefix: string) {
  const topic = kafka.uniqueTopic(prefix);
  await ensureTopics(kafka.bootstrap, [{ name: topic, partitions: 3, configs: {} }], logger);
  return topic;
}

test('(a) every 202-accepted click is in Kafka and decodes to the same fields', async () => {
  const topic = await newTopic('clicks-a');
  const { app } = await gateway(topic);
  const sent = new Map<string, ReturnType<typeof click>>();
  for (let i = 0; i < 50; i++) {
    const c = click();
    const res = await post(app, '/v1/clicks', c);
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(res.json().status, 'accepted');
    sent.set(c.impression_id, c);
  }
  const batch = Array.from({ length: 200 }, () => click());
  const res = await post(app, '/v1/clicks/batch', { clicks: batch });
  assert.equal(res.statusCode, 200);
  assert.ok(res.json().results.every((r: { status: string }) => r.status === 'accepted'));
  for (const c of batch) sent.set(c.impression_id, c);

  const got = await readTopic(topic, sent.size);
  assert.equal(got.length, sent.size, 'exactly one record per accepted click');
  for (const { key, value: ev } of got) {
    const c = sent.get(ev.impressionId);
    assert.ok(c, `unexpected impression ${ev.impressionId}`);
    assert.equal(key, c.impression_id);
    assert.equal(ev.eventType, c.event_type);
    assert.equal(ev.adId, c.ad_id);
    assert.equal(ev.campaignId, c.campaign_id);
    assert.equal(ev.advertiserId, c.advertiser_id);
    assert.equal(ev.userId, c.user_id);
    assert.equal(ev.eventTimeMs, c.timestamp);
    assert.equal(ev.keyId, 'k1');
    assert.ok(ev.receivedAtMs >= c.timestamp);
    assert.equal(ev.clientIpHash.length, 16);
    sent.delete(ev.impressionId);
  }
  assert.equal(sent.size, 0);
});

test('(b) a repeated impression answers duplicate and writes nothing (Redis edge dedup)', async () => {
  const topic = await newTopic('clicks-b');
  const { app, redis } = await gateway(topic);
  const c = click();
  assert.equal((await post(app, '/v1/clicks', c)).json().status, 'accepted');
  assert.equal(await eventuallyExists(redis!, `adclick:seen:click:${c.impression_id}`), 1, 'marked in Redis after the ack');
  for (let i = 0; i < 3; i++) assert.deepEqual((await post(app, '/v1/clicks', c)).json(), { status: 'duplicate' });
  const b = (await post(app, '/v1/clicks/batch', { clicks: [c, c] })).json();
  assert.deepEqual(b.results.map((r: { status: string }) => r.status), ['duplicate', 'duplicate']);
  // A second gateway instance sharing Redis also knows it.
  const other = await gateway(topic);
  assert.deepEqual((await post(other.app, '/v1/clicks', c)).json(), { status: 'duplicate' });
  const got = await readTopic(topic, 1);
  assert.equal(got.length, 1);
});

test('(c) broker down: 503 + Retry-After and nothing acknowledged; after it returns a retry is accepted exactly once', async () => {
  const topic = await newTopic('clicks-c');
  const { app, redis } = await gateway(topic, { produceTimeoutMs: 2000 });
  const before = click();
  assert.equal((await post(app, '/v1/clicks', before)).statusCode, 202);

  await kafka.broker.stop();
  const c = click();
  const answers: number[] = [];
  for (let i = 0; i < 5; i++) {
    const res = await post(app, '/v1/clicks', c);
    answers.push(res.statusCode);
    if (res.statusCode !== 202) {
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.json().error.code, 'UNAVAILABLE');
      assert.ok(Number(res.headers['retry-after']) >= 1);
    }
  }
  assert.ok(answers.every((s) => s === 503), `all answers 503 while the broker is down: ${answers}`);
  assert.equal(await redis!.exists(`adclick:seen:click:${c.impression_id}`), 0, 'nothing marked seen');

  await kafka.broker.start();
  let accepted = 0;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const res = await post(app, '/v1/clicks', c);
    if (res.statusCode === 202) {
      assert.equal(res.json().status, 'accepted');
      accepted++;
      break;
    }
    assert.equal(res.statusCode, 503);
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(accepted, 1, 'the retry was accepted after the broker returned');
  assert.deepEqual((await post(app, '/v1/clicks', c)).json(), { status: 'duplicate' });
  const got = await readTopic(topic, 2);
  assert.equal(got.filter((r) => r.value.impressionId === c.impression_id).length, 1, 'exactly one copy of the retried click');
  assert.equal(got.filter((r) => r.value.impressionId === before.impression_id).length, 1);
});

test('(d) Redis unreachable: the gateway keeps accepting (fail-open)', async () => {
  const topic = await newTopic('clicks-d');
  const { app } = await gateway(topic, { redisUrl: 'redis://127.0.0.1:1' });
  for (let i = 0; i < 20; i++) {
    const res = await post(app, '/v1/clicks', click());
    assert.equal(res.statusCode, 202, res.body);
  }
  const got = await readTopic(topic, 20);
  assert.equal(got.length, 20);
});

test('rate limit in Redis is shared by gateway instances (GCRA, Retry-After)', async () => {
  const a = new Redis('redis://127.0.0.1:6379');
  const b = new Redis('redis://127.0.0.1:6379');
  after(() => { a.disconnect(); b.disconnect(); });
  // Until a client is ready the limiter falls back to its in-process bucket (fail-open).
  await Promise.all([a, b].map((r) => (r.status === 'ready' ? null : new Promise((res) => r.once('ready', res)))));
  const la = createRateLimiter(a, { perSecond: 2, burst: 4 });
  const lb = createRateLimiter(b, { perSecond: 2, burst: 4 });
  const ip = `198.51.100.${Math.floor(Math.random() * 250)}-${run}`;
  const results = [];
  for (let i = 0; i < 6; i++) results.push(await (i % 2 ? la : lb).check(ip));
  assert.deepEqual(results.map((r) => r.allowed), [true, true, true, true, false, false]);
  assert.ok(results[4]!.retryAfterMs > 0 && results[4]!.retryAfterMs <= 500, `retry after ${results[4]!.retryAfterMs} ms`);
});

test('trace context: records carry traceparent with the incoming trace id, or a new trace; traceresponse matches', async () => {
  const topic = await newTopic('clicks-trace');
  const { app } = await gateway(topic);
  const traceId = randomBytes(16).toString('hex');
  const callerSpan = randomBytes(8).toString('hex');
  const joined = click();
  const r1 = await post(app, '/v1/clicks', joined, { traceparent: `00-${traceId}-${callerSpan}-01` });
  assert.equal(r1.statusCode, 202, r1.body);
  const fresh = click();
  const r2 = await post(app, '/v1/clicks', fresh);
  assert.equal(r2.statusCode, 202, r2.body);
  const batch = [click(), click()];
  const r3 = await post(app, '/v1/clicks/batch', { clicks: batch }, { traceparent: `00-${traceId}-${callerSpan}-00` });
  assert.equal(r3.statusCode, 200, r3.body);

  const got = new Map((await readTopic(topic, 4)).map((r) => [r.value.impressionId, r.headers.traceparent]));
  assert.equal(got.size, 4);
  const TP = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
  const t1 = TP.exec(got.get(joined.impression_id) ?? '');
  assert.ok(t1, `joined record traceparent: ${got.get(joined.impression_id)}`);
  assert.equal(t1[1], traceId, 'the incoming trace id travels with the record');
  assert.notEqual(t1[2], callerSpan, 'the parent is the gateway span');
  assert.equal(t1[3], '01');
  assert.equal(r1.headers.traceresponse, got.get(joined.impression_id));

  const t2 = TP.exec(got.get(fresh.impression_id) ?? '');
  assert.ok(t2, `fresh record traceparent: ${got.get(fresh.impression_id)}`);
  assert.notEqual(t2[1], traceId, 'a request without traceparent starts a new trace');
  assert.notEqual(t2[1], '0'.repeat(32));
  assert.equal(t2[3], '01');
  assert.equal(r2.headers.traceresponse, got.get(fresh.impression_id));

  const b = batch.map((c) => got.get(c.impression_id));
  assert.equal(b[0], b[1], 'all records of one batch request carry the same traceparent');
  assert.equal(TP.exec(b[0] ?? '')?.[1], traceId);
  assert.equal(TP.exec(b[0] ?? '')?.[3], '00', 'flags come from the incoming header');
});

/** A Redis client that is ready (until then the limiter would fall back in-process); closed after the test. */
async function readyRedis(): Promise<Redis> {
  const r = new Redis('redis://127.0.0.1:6379');
  after(() => r.disconnect());
  if (r.status !== 'ready') await new Promise((res) => r.once('ready', res));
  return r;
}

test('admission script on real Redis: one call rate-limits and reads edge dedup; marks are written together', async () => {
  const r = await readyRedis();
  const limiter = createRateLimiter(r, { perSecond: 1, burst: 2 });
  const dedup = createEdgeDedup(r, 60, (err) => assert.fail(String(err)));
  const k = (n: number) => `adclick:seen:click:it_${run}_adm_${n}`;
  const ip = `203.0.113.${Math.floor(Math.random() * 250)}-${run}`;
  await Promise.all([dedup.mark([k(1)]), dedup.mark([k(2), k(3)])]);
  const ttl = await r.ttl(k(2));
  assert.ok(ttl > 0 && ttl <= 60, `marked with the TTL (${ttl})`);
  const a1 = await limiter.admit(ip, [k(1), k(4), k(3)]);
  assert.deepEqual(a1, { decision: { allowed: true, retryAfterMs: 0 }, seen: [true, false, true] });
  const a2 = await limiter.admit(ip, [k(4)]);
  assert.equal(a2.decision.allowed, true);
  const a3 = await limiter.admit(ip, [k(1)]);
  assert.equal(a3.decision.allowed, false, 'third request inside a burst of 2 at 1/s is limited');
  assert.ok(a3.decision.retryAfterMs > 0 && a3.decision.retryAfterMs <= 1000, String(a3.decision.retryAfterMs));
  assert.deepEqual(a3.seen, [false], 'a limited request reads nothing');
  // The limit is the same bucket the plain check uses (error paths count against it too).
  assert.equal((await limiter.check(ip)).allowed, false);
});

test('admissions of one event-loop turn go to Redis as one script and keep per-request semantics', async () => {
  const r = await readyRedis();
  const limiter = createRateLimiter(r, { perSecond: 1, burst: 2 });
  const dedup = createEdgeDedup(r, 60, (err) => assert.fail(String(err)));
  const k = (n: number) => `adclick:seen:click:it_${run}_turn_${n}`;
  const ipA = `192.0.2.${Math.floor(Math.random() * 250)}-${run}-a`;
  const ipB = `192.0.2.${Math.floor(Math.random() * 250)}-${run}-b`;
  await dedup.mark([k(1), k(5)]);
  // MONITOR shows each EVAL/EVALSHA with its keys (then the commands the script runs).
  const lines: string[] = [];
  const dup = r.duplicate();
  const monitor = await dup.monitor();
  after(() => { monitor.disconnect(); dup.disconnect(); });
  monitor.on('monitor', (_t: string, args: string[]) => lines.push(args.join(' ')));
  // Three requests of A (burst 2: the third is limited) and one of B, all in one turn.
  const got = await Promise.all([
    limiter.admit(ipA, [k(1), k(2)]),
    limiter.admit(ipB, [k(5)]),
    limiter.admit(ipA, [k(3)]),
    limiter.admit(ipA, [k(5), k(4)]),
  ]);
  assert.deepEqual(got.map((a) => a.decision.allowed), [true, true, true, false]);
  assert.deepEqual(got.map((a) => a.seen), [[true, false], [true], [false], [false, false]]);
  assert.ok(got[3]!.decision.retryAfterMs > 0 && got[3]!.decision.retryAfterMs <= 1000, String(got[3]!.decision.retryAfterMs));
  await new Promise((res) => setTimeout(res, 200)); // MONITOR lines arrive asynchronously
  const scripts = lines.filter((l) => /^eval(sha)? /i.test(l) && l.includes(`turn_`) && l.includes(run));
  assert.equal(scripts.length, 1, `one script for the four admissions:\n${scripts.join('\n')}`);
});

// Issue 16 follow-up: a single click used to cost two Redis round trips before its answer
// (the arrival charge, then the edge-dedup read); now the charge waits for the body and rides
// with the read. Counted with MONITOR on the gateway's own connection (its local port), so
// other clients of this Redis do not count; the mark written after the Kafka ack is the
// only other command.
test('a single click costs one Redis round trip before its answer (charge + dedup read), plus the mark after the ack', async () => {
  const topic = await newTopic('clicks-rtt');
  const r = await readyRedis();
  const gw = r.duplicate();
  after(() => gw.disconnect());
  if (gw.status !== 'ready') await new Promise((res) => gw.once('ready', res));
  const publisher = await createClickPublisher({
    brokers: kafka.bootstrap, topic, lingerMs: 2, compression: 'lz4', produceTimeoutMs: 5000,
    maxInflight: 10_000, breakerFailures: 3, breakerOpenMs: 500, clientId: 'it-gateway-rtt', logger,
  });
  after(() => publisher.close());
  for (let i = 0; i < 200 && !publisher.ready(); i++) await new Promise((res) => setTimeout(res, 50));
  // Wired as main.ts does.
  const rateLimiter = createRateLimiter(gw, { perSecond: 1000, burst: 1000 });
  const dedup = createEdgeDedup(gw, 3600, (err) => assert.fail(String(err)), randomBytes(32));
  const app = buildGatewayApp({
    options: { signingKeys: KEYS, maxClickAgeMs: 86_400_000, maxClockSkewMs: 300_000, maxBodyBytes: 4096, maxBatchBodyBytes: 1 << 20, maxBatchClicks: 1000, trustedProxies: [], retryAfterSec: 1, ipHashKey: 'k', gatewayId: 'it-rtt' },
    publisher, dedup, rateLimiter, admission: verifiedAdmission(rateLimiter, dedup), logger, registry: createRegistry('gateway', false),
  });
  after(() => app.close());
  const ip = `2001:db8:${randomBytes(2).toString('hex')}::7`;
  // Warm-up: the scripts are loaded (EVALSHA from then on).
  assert.equal((await post(app, '/v1/clicks', click(), { 'x-forwarded-for': ip })).statusCode, 202);
  await new Promise((res) => setTimeout(res, 100));

  const port = (gw as unknown as { stream: { localPort: number } }).stream.localPort;
  const mon = r.duplicate();
  const monitor = await mon.monitor();
  after(() => { monitor.disconnect(); mon.disconnect(); });
  const commands: string[] = [];
  monitor.on('monitor', (_t: string, args: string[], source: string) => {
    if (source.endsWith(`:${port}`)) commands.push(args.join(' '));
  });
  await new Promise((res) => setTimeout(res, 100));
  const N = 5;
  const sent = Array.from({ length: N }, () => click());
  for (const c of sent) {
    const res = await app.inject({ method: 'POST', url: '/v1/clicks', payload: JSON.stringify(c), headers: { 'content-type': 'application/json' } });
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(res.json().status, 'accepted');
  }
  await new Promise((res) => setTimeout(res, 300)); // marks (not awaited) and MONITOR lines arrive asynchronously
  const marks = commands.filter((c) => /^set adclick:seen:/i.test(c));
  const before = commands.filter((c) => !/^set adclick:seen:/i.test(c));
  assert.equal(before.length, N, `one command per click before its answer:\n${before.join('\n')}`);
  assert.ok(before.every((c) => /^evalsha /i.test(c)), before.join('\n'));
  assert.equal(marks.length, N, 'one mark per accepted click');
  // A retry answers duplicate: the admission, then the mark's verification.
  commands.length = 0;
  const again = await app.inject({ method: 'POST', url: '/v1/clicks', payload: JSON.stringify(sent[0]), headers: { 'content-type': 'application/json' } });
  assert.equal(again.json().status, 'duplicate');
  await new Promise((res) => setTimeout(res, 200));
  assert.equal(commands.length, 2, commands.join('\n'));
});

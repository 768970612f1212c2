// The gateway against a real Kafka broker and a real Redis (API.md click ingestion).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import KafkaJs from '@confluentinc/kafka-javascript';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { startTestKafka } from '../helpers/kafka.ts';
import { buildGatewayApp } from '../../src/gateway/app.ts';
import { createClickPublisher, type ClickPublisher } from '../../src/gateway/click-publisher.ts';
import { createEdgeDedup } from '../../src/gateway/edge-dedup.ts';
import { createRateLimiter } from '../../src/gateway/rate-limiter.ts';
import { createOptionalRedis } from '../../src/shared/redis.ts';
import { createRegistry } from '../../src/shared/metrics.ts';
import { ClickEvent } from '../../src/shared/proto.ts';
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
  const redis = createOptionalRedis(opts.redisUrl ?? 'redis://127.0.0.1:6379', logger);
  if (redis && !opts.redisUrl) await new Promise((r) => redis.once('ready', r));
  const publisher = await createClickPublisher({
    brokers: kafka.bootstrap, topic, lingerMs: 2, compression: 'lz4', produceTimeoutMs: opts.produceTimeoutMs ?? 5000,
    maxInflight: 10_000, breakerFailures: 3, breakerOpenMs: 500, clientId: 'it-gateway', logger,
  });
  for (let i = 0; i < 200 && !publisher.ready(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(publisher.ready(), 'producer connected');
  const app = buildGatewayApp({
    options: { signingKeys: KEYS, maxClickAgeMs: 86_400_000, maxClockSkewMs: 300_000, maxBodyBytes: 4096, maxBatchBodyBytes: 1 << 20, maxBatchClicks: 1000, trustedProxies: [], retryAfterSec: 1, ipHashKey: 'k', gatewayId: 'it' },
    publisher,
    dedup: createEdgeDedup(redis, 3600, () => {}),
    rateLimiter: createRateLimiter(redis, { perSecond: 100_000, burst: 100_000 }),
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

const post = (app: Awaited<ReturnType<typeof gateway>>['app'], url: string, body: unknown) =>
  app.inject({ method: 'POST', url, payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

/** Everything currently in the topic (read_committed, from the beginning). */
async function readTopic(topic: string, expectAtLeast: number, timeoutMs = 20_000) {
  const consumer = new KafkaJs.KafkaJS.Kafka({ kafkaJS: { brokers: [kafka.bootstrap], logLevel: KafkaJs.KafkaJS.logLevel.NOTHING } }).consumer({
    kafkaJS: { groupId: `it-${randomBytes(4).toString('hex')}`, fromBeginning: true, autoCommit: false },
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic] });
  const out: { key: string; value: ReturnType<typeof ClickEvent.decode> }[] = [];
  let lastGrowth = Date.now();
  await consumer.run({
    eachMessage: async ({ message }) => {
      out.push({ key: message.key!.toString(), value: ClickEvent.decode(message.value!) });
      lastGrowth = Date.now();
    },
  });
  const deadline = Date.now() + timeoutMs;
  // Wait for the expected count, then a quiet second to catch anything extra.
  while (Date.now() < deadline && (out.length < expectAtLeast || Date.now() - lastGrowth < 1500)) await new Promise((r) => setTimeout(r, 100));
  await consumer.disconnect();
  return out;
}

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
    assert.equal(key, String(c.ad_id));
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
  assert.equal(await redis!.exists(`adclick:seen:click:${c.impression_id}`), 1, 'marked in Redis after the ack');
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

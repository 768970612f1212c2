import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { buildGatewayApp } from '../../../src/gateway/app.ts';
import { signClick } from '../../../src/shared/signature.ts';
import { ClickEvent } from '../../../src/shared/proto.ts';
import { createRegistry } from '../../../src/shared/metrics.ts';
import { FakeDedup, FakeLimiter, FakePublisher } from './fakes.ts';

const NOW = 1_764_237_600_000;
const KEYS = new Map([['k1', 'secret-one'], ['k2', 'secret-two']]);

function setup(logger = pino({ level: 'silent' })) {
  const publisher = new FakePublisher();
  const dedup = new FakeDedup();
  const limiter = new FakeLimiter();
  const app = buildGatewayApp({
    options: {
      signingKeys: KEYS, maxClickAgeMs: 24 * 3600_000, maxClockSkewMs: 300_000, maxBodyBytes: 4096,
      maxBatchBodyBytes: 1024 * 1024, maxBatchClicks: 1000, trustedProxies: ['10.0.0.1'], retryAfterSec: 2,
      ipHashKey: 'ip-key', gatewayId: 'test-gw',
    },
    publisher, dedup, rateLimiter: limiter, logger, registry: createRegistry('gateway', false), now: () => NOW,
  });
  return { app, publisher, dedup, limiter };
}

let seq = 0;
function click(over: Record<string, unknown> = {}, keyId = 'k1') {
  const c = { impression_id: `imp_test_${++seq}`, event_type: 'click', ad_id: 1234, campaign_id: 55, advertiser_id: 7, user_id: 'u_93af', timestamp: NOW - 1000, key_id: keyId, ...over };
  return { ...c, signature: signClick(c as never, KEYS.get(keyId) ?? 'x') };
}

const post = (app: ReturnType<typeof setup>['app'], url: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  app.inject({ method: 'POST', url, payload: typeof body === 'string' ? body : JSON.stringify(body), headers });

function assertError(res: { statusCode: number; json(): any }, status: number, code: string, field?: string) {
  assert.equal(res.statusCode, status);
  const body = res.json();
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
  if (field) assert.equal(body.error.field, field);
  assert.deepEqual(Object.keys(body), ['error']);
}

test('accepted click is encoded to Protobuf with every field, keyed by impression_id', async () => {
  const { app, publisher, dedup } = setup();
  const c = click();
  const res = await post(app, '/v1/clicks', c);
  assert.equal(res.statusCode, 202);
  assert.deepEqual(res.json(), { status: 'accepted' });
  assert.equal(publisher.records.length, 1);
  const rec = publisher.records[0]!;
  assert.equal(rec.key, c.impression_id);
  const ev = ClickEvent.decode(rec.value);
  assert.equal(ev.impressionId, c.impression_id);
  assert.equal(ev.eventType, 'click');
  assert.equal(ev.adId, 1234);
  assert.equal(ev.campaignId, 55);
  assert.equal(ev.advertiserId, 7);
  assert.equal(ev.userId, 'u_93af');
  assert.equal(ev.eventTimeMs, NOW - 1000);
  assert.equal(ev.receivedAtMs, NOW);
  assert.equal(ev.keyId, 'k1');
  assert.equal(ev.gatewayId, 'test-gw');
  assert.equal(ev.clientIpHash.length, 16);
  assert.equal(dedup.keys.size, 1, 'marked as seen after the ack');
});

test('one hot ad\'s clicks are not bound to one Kafka partition: each is keyed by its impression (issue 17)', async () => {
  const { app, publisher } = setup();
  const clicks = Array.from({ length: 50 }, () => click({ ad_id: 777 }));
  const res = await post(app, '/v1/clicks/batch', { clicks });
  assert.equal(res.statusCode, 200);
  assert.equal(publisher.records.length, 50);
  assert.equal(new Set(publisher.records.map((r) => r.key)).size, 50, 'keyed by ad_id, all 50 share one key and so one partition');
  assert.deepEqual(publisher.records.map((r) => r.key).sort(), clicks.map((c) => c.impression_id).sort());
});

test('a repeated click answers duplicate and writes nothing new', async () => {
  const { app, publisher } = setup();
  const c = click();
  assert.equal((await post(app, '/v1/clicks', c)).json().status, 'accepted');
  const again = await post(app, '/v1/clicks', c);
  assert.equal(again.statusCode, 202);
  assert.deepEqual(again.json(), { status: 'duplicate' });
  assert.equal(publisher.records.length, 1);
});

test('keys rotate: clicks signed by any active key verify', async () => {
  const { app } = setup();
  assert.equal((await post(app, '/v1/clicks', click({}, 'k2'))).statusCode, 202);
});

test('400 INVALID_JSON for malformed and empty bodies', async () => {
  const { app } = setup();
  assertError(await post(app, '/v1/clicks', '{"impression_id": '), 400, 'INVALID_JSON');
  assertError(await post(app, '/v1/clicks', ''), 400, 'INVALID_JSON');
});

test('400 INVALID_FIELD names the field', async () => {
  const { app } = setup();
  const cases: [Record<string, unknown>, string][] = [
    [{ impression_id: 'short' }, 'impression_id'],
    [{ impression_id: 'has space in it' }, 'impression_id'],
    [{ impression_id: 'x'.repeat(129) }, 'impression_id'],
    [{ event_type: 'view' }, 'event_type'],
    [{ ad_id: 0 }, 'ad_id'],
    [{ ad_id: -5 }, 'ad_id'],
    [{ ad_id: 1.5 }, 'ad_id'],
    [{ ad_id: '1234' }, 'ad_id'],
    [{ ad_id: 2 ** 53 }, 'ad_id'],
    [{ campaign_id: null }, 'campaign_id'],
    [{ advertiser_id: undefined }, 'advertiser_id'],
    [{ user_id: '' }, 'user_id'],
    [{ timestamp: '2026-01-01' }, 'timestamp'],
    [{ key_id: '' }, 'key_id'],
  ];
  for (const [over, field] of cases) {
    const body = { ...click(), ...over };
    assertError(await post(app, '/v1/clicks', body), 400, 'INVALID_FIELD', field);
  }
  const noSig: Record<string, unknown> = click();
  delete noSig.signature;
  assertError(await post(app, '/v1/clicks', noSig), 400, 'INVALID_FIELD', 'signature');
  assertError(await post(app, '/v1/clicks', [1, 2]), 400, 'INVALID_FIELD');
});

test('401 SIGNATURE_INVALID and UNKNOWN_KEY', async () => {
  const { app, publisher } = setup();
  assertError(await post(app, '/v1/clicks', { ...click(), ad_id: 999 }), 401, 'SIGNATURE_INVALID');
  assertError(await post(app, '/v1/clicks', { ...click(), signature: 'f'.repeat(64) }), 401, 'SIGNATURE_INVALID');
  assertError(await post(app, '/v1/clicks', click({}, 'k9')), 401, 'UNKNOWN_KEY');
  assert.equal(publisher.records.length, 0);
});

test('413 PAYLOAD_TOO_LARGE over the single-click limit', async () => {
  const { app } = setup();
  assertError(await post(app, '/v1/clicks', { ...click(), pad: 'x'.repeat(5000) }), 413, 'PAYLOAD_TOO_LARGE');
});

test('415 UNSUPPORTED_MEDIA_TYPE for non-JSON and missing content type', async () => {
  const { app } = setup();
  assertError(await post(app, '/v1/clicks', 'a=b', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  assertError(await post(app, '/v1/clicks', 'hello', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  assertError(await app.inject({ method: 'POST', url: '/v1/clicks', payload: Buffer.from('{}') }), 415, 'UNSUPPORTED_MEDIA_TYPE');
});

test('422 TIMESTAMP_OUT_OF_RANGE too old and too far ahead; bounds inclusive', async () => {
  const { app } = setup();
  assertError(await post(app, '/v1/clicks', click({ timestamp: NOW - 24 * 3600_000 - 1 })), 422, 'TIMESTAMP_OUT_OF_RANGE', 'timestamp');
  assertError(await post(app, '/v1/clicks', click({ timestamp: NOW + 300_001 })), 422, 'TIMESTAMP_OUT_OF_RANGE', 'timestamp');
  assert.equal((await post(app, '/v1/clicks', click({ timestamp: NOW - 24 * 3600_000 }))).statusCode, 202);
  assert.equal((await post(app, '/v1/clicks', click({ timestamp: NOW + 300_000 }))).statusCode, 202);
});

test('429 RATE_LIMITED with Retry-After', async () => {
  const { app, limiter, publisher } = setup();
  limiter.deny = true;
  const res = await post(app, '/v1/clicks', click());
  assertError(res, 429, 'RATE_LIMITED');
  assert.equal(res.headers['retry-after'], '2');
  assert.equal(publisher.records.length, 0);
  // A flood of bad requests is limited too: 429 wins over 400/401.
  assertError(await post(app, '/v1/clicks', '{not json'), 429, 'RATE_LIMITED');
  assertError(await post(app, '/v1/clicks', { ...click(), signature: '0'.repeat(64) }), 429, 'RATE_LIMITED');
  assertError(await post(app, '/v1/clicks/batch', { clicks: [{ nope: 1 }] }), 429, 'RATE_LIMITED');
});

test('client IP is the socket peer; X-Forwarded-For is ignored from untrusted peers', async () => {
  const { app, limiter } = setup();
  await post(app, '/v1/clicks', click(), { 'content-type': 'application/json', 'x-forwarded-for': '1.2.3.4' });
  assert.equal(limiter.ips.at(-1), '127.0.0.1');
  await app.inject({ method: 'POST', url: '/v1/clicks', payload: JSON.stringify(click()), headers: { 'content-type': 'application/json', 'x-forwarded-for': '1.2.3.4' }, remoteAddress: '10.0.0.1' });
  assert.equal(limiter.ips.at(-1), '1.2.3.4');
});

test('503 UNAVAILABLE + Retry-After when Kafka is down or does not ack; nothing marked seen', async () => {
  const { app, publisher, dedup } = setup();
  publisher.mode = 'down';
  const c = click();
  const res = await post(app, '/v1/clicks', c);
  assertError(res, 503, 'UNAVAILABLE');
  assert.equal(res.headers['retry-after'], '2');
  publisher.mode = 'nack';
  assertError(await post(app, '/v1/clicks', c), 503, 'UNAVAILABLE');
  assert.equal(dedup.keys.size, 0);
  publisher.mode = 'ok';
  assert.deepEqual((await post(app, '/v1/clicks', c)).json(), { status: 'accepted' }, 'the retry is accepted once Kafka is back');
});

test('batch: per-item results in order, in-batch duplicates, rejects do not block others', async () => {
  const { app, publisher } = setup();
  const a = click();
  const b = click();
  const bad = { ...click(), signature: '0'.repeat(64) };
  const res = await post(app, '/v1/clicks/batch', { clicks: [a, bad, b, a, { nope: 1 }] });
  assert.equal(res.statusCode, 200);
  const r = res.json().results;
  assert.equal(r.length, 5);
  assert.deepEqual(r[0], { impression_id: a.impression_id, status: 'accepted' });
  assert.equal(r[1].status, 'rejected');
  assert.equal(r[1].error.code, 'SIGNATURE_INVALID');
  assert.deepEqual(r[2], { impression_id: b.impression_id, status: 'accepted' });
  assert.deepEqual(r[3], { impression_id: a.impression_id, status: 'duplicate' });
  assert.equal(r[4].error.code, 'INVALID_FIELD');
  assert.equal(r[4].error.field, 'clicks[4].impression_id');
  assert.equal(publisher.records.length, 2);
  const again = (await post(app, '/v1/clicks/batch', { clicks: [a, b] })).json().results;
  assert.deepEqual(again.map((x: { status: string }) => x.status), ['duplicate', 'duplicate']);
});

test('batch: request-level errors', async () => {
  const { app, publisher } = setup();
  assertError(await post(app, '/v1/clicks/batch', { clicks: [] }), 400, 'INVALID_FIELD', 'clicks');
  assertError(await post(app, '/v1/clicks/batch', { items: [] }), 400, 'INVALID_FIELD', 'clicks');
  assertError(await post(app, '/v1/clicks/batch', { clicks: Array.from({ length: 1001 }, () => click()) }), 400, 'INVALID_FIELD', 'clicks');
  assertError(await post(app, '/v1/clicks/batch', 'nope'), 400, 'INVALID_JSON');
  assertError(await post(app, '/v1/clicks/batch', { clicks: [click()], pad: 'x'.repeat(1024 * 1024) }), 413, 'PAYLOAD_TOO_LARGE');
  publisher.mode = 'down';
  assertError(await post(app, '/v1/clicks/batch', { clicks: [click()] }), 503, 'UNAVAILABLE');
});

test('health, readiness and metrics', async () => {
  const { app, publisher } = setup();
  assert.equal((await app.inject('/healthz')).statusCode, 200);
  assert.equal((await app.inject('/readyz')).statusCode, 200);
  publisher.mode = 'down';
  assert.equal((await app.inject('/readyz')).statusCode, 503);
  await post(app, '/v1/clicks', click());
  const m = await app.inject('/metrics');
  assert.match(m.body, /adclick_gateway_requests_total\{route="\/v1\/clicks",status="503"/);
  assert.match(m.body, /adclick_gateway_clicks_total\{outcome="UNAVAILABLE"/);
  assertError(await app.inject('/nope'), 404, 'NOT_FOUND');
});

// ---- W3C trace context ----------------------------------------------------------------
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const TP = `00-${TRACE}-00f067aa0ba902b7-01`;
const TRACE_HEADER = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const json = (extra: Record<string, string> = {}) => ({ 'content-type': 'application/json', ...extra });

test('trace: a valid incoming traceparent is continued in the Kafka header and traceresponse, with the gateway span', async () => {
  const { app, publisher } = setup();
  const res = await post(app, '/v1/clicks', click(), json({ traceparent: TP }));
  assert.equal(res.statusCode, 202);
  const rec = publisher.records[0]!;
  const tp = rec.headers?.[0]?.traceparent;
  const m = TRACE_HEADER.exec(tp ?? '');
  assert.ok(m, `record traceparent ${tp}`);
  assert.equal(m[1], TRACE);
  assert.notEqual(m[2], '00f067aa0ba902b7', 'parent is the gateway span, not the caller span');
  assert.equal(m[3], '01');
  assert.equal(res.headers.traceresponse, tp, 'traceresponse = the header the records carry');
  assert.deepEqual(res.json(), { status: 'accepted' }, 'nothing added to the body');
});

test('trace: without (or with an invalid) traceparent a new trace starts; every request gets its own', async () => {
  const { app, publisher } = setup();
  await post(app, '/v1/clicks', click());
  await post(app, '/v1/clicks', click(), json({ traceparent: `00-${TRACE.toUpperCase()}-00f067aa0ba902b7-01` }));
  await post(app, '/v1/clicks', click(), json({ traceparent: `00-${'0'.repeat(32)}-00f067aa0ba902b7-01` }));
  const ids = publisher.records.map((r) => TRACE_HEADER.exec(r.headers?.[0]?.traceparent ?? ''));
  assert.equal(ids.length, 3);
  for (const m of ids) {
    assert.ok(m);
    assert.notEqual(m[1], TRACE);
    assert.notEqual(m[1], TRACE.toLowerCase().replace(/./g, '0'));
    assert.equal(m[3], '01', 'a new trace is sampled');
  }
  assert.equal(new Set(ids.map((m) => m![1])).size, 3);
});

test('trace: all records of a batch carry the same traceparent; errors carry traceresponse too', async () => {
  const { app, publisher } = setup();
  const res = await post(app, '/v1/clicks/batch', { clicks: [click(), click(), click()] }, json({ traceparent: TP }));
  assert.equal(res.statusCode, 200);
  const headers = new Set(publisher.records.map((r) => r.headers?.[0]?.traceparent));
  assert.equal(publisher.records.length, 3);
  assert.equal(headers.size, 1);
  assert.equal([...headers][0], res.headers.traceresponse);
  assert.equal(TRACE_HEADER.exec(res.headers.traceresponse as string)?.[1], TRACE);
  const bad = await post(app, '/v1/clicks', '{', json({ traceparent: TP }));
  assert.equal(bad.statusCode, 400);
  assert.equal(TRACE_HEADER.exec(bad.headers.traceresponse as string)?.[1], TRACE);
  assertError(bad, 400, 'INVALID_JSON');
});

test('trace: log lines about a request carry its trace_id', async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const { app, publisher } = setup(logger);
  // An unexpected failure is logged through the request logger.
  publisher.publish = () => { throw new Error('boom'); };
  const res = await post(app, '/v1/clicks', click(), json({ traceparent: TP }));
  assert.equal(res.statusCode, 500);
  const line = lines.find((l) => l.msg === 'unhandled error');
  assert.ok(line, JSON.stringify(lines));
  assert.equal(line.trace_id, TRACE);
});

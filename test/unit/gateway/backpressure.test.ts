// Gateway back-pressure (backpressure.ts): the hysteresis, the fail-open on unreadable lag,
// and the app refusing new clicks with 503 OVERLOADED + Retry-After (health still answers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { buildGatewayApp } from '../../../src/gateway/app.ts';
import { nextState, startBackpressure, type WatchedLag } from '../../../src/gateway/backpressure.ts';
import { createRegistry } from '../../../src/shared/metrics.ts';
import { loadConfig } from '../../../src/shared/config.ts';
import { FakeDedup, FakeLimiter, FakePublisher } from './fakes.ts';

const logger = pino({ level: 'silent' });

test('nextState: refuse above max, accept again only at or below resume', () => {
  assert.equal(nextState(false, 1000, 1000, 500), false, 'at max: still accepting');
  assert.equal(nextState(false, 1001, 1000, 500), true);
  assert.equal(nextState(true, 800, 1000, 500), true, 'between resume and max: keeps refusing (no flapping)');
  assert.equal(nextState(true, 500, 1000, 500), false);
  assert.equal(nextState(false, 800, 1000, 500), false, 'between resume and max: keeps accepting');
});

test('startBackpressure: follows the largest watched lag with hysteresis; unreadable lag falls back to accepting after 3 polls', async () => {
  let lags: WatchedLag[] | Error = [];
  const registry = createRegistry('gateway', false);
  const bp = startBackpressure({ maxLag: 100, pollMs: 60_000, logger, registry, retryAfterSec: 2,
    read: async () => { if (lags instanceof Error) throw lags; return lags; } });
  try {
    assert.equal(bp.retryAfterSec, 60, 'Retry-After is at least one poll interval');
    const at = async (l: WatchedLag[] | Error) => { lags = l; await bp.pollOnce(); return bp.refusing(); };
    assert.equal(await at([{ group: 'f', topic: 'clicks', lag: 10 }, { group: 's', topic: 'aggs', lag: 20 }]), false);
    assert.equal(await at([{ group: 'f', topic: 'clicks', lag: 10 }, { group: 's', topic: 'aggs', lag: 101 }]), true, 'any watched group above max');
    assert.equal(await at([{ group: 'f', topic: 'clicks', lag: 60 }]), true, 'above resume (default: half of max)');
    assert.equal(await at([{ group: 'f', topic: 'clicks', lag: 50 }]), false);
    assert.equal(await at([]), false, 'no group committed anything: nothing to watch');
    assert.equal(await at([{ group: 'f', topic: 'clicks', lag: 500 }]), true);
    assert.equal(await at(new Error('broker down')), true, 'one failed read keeps the state');
    assert.equal(await at(new Error('broker down')), true);
    assert.equal(await at(new Error('broker down')), false, 'three in a row: fail open');
    const text = await registry.metrics();
    assert.match(text, /adclick_gateway_backpressure_transitions_total\{to="refusing"[^}]*\} 2/);
    assert.match(text, /adclick_gateway_backpressure_transitions_total\{to="accepting"[^}]*\} 2/);
    assert.match(text, /adclick_gateway_backpressure_read_failures_total\{[^}]*\} 3/);
  } finally {
    await bp.stop();
  }
});

test('the app: while refusing, single and batch clicks answer 503 OVERLOADED + Retry-After before anything is produced; health, readiness and metrics answer', async () => {
  let refusing = true;
  const publisher = new FakePublisher();
  const app = buildGatewayApp({
    options: {
      signingKeys: new Map([['k1', 's'.repeat(32)]]), maxClickAgeMs: 86_400_000, maxClockSkewMs: 300_000, maxBodyBytes: 4096,
      maxBatchBodyBytes: 1 << 20, maxBatchClicks: 1000, trustedProxies: [], retryAfterSec: 2, ipHashKey: 'k', gatewayId: 'gw',
    },
    publisher, dedup: new FakeDedup(), rateLimiter: new FakeLimiter(), logger, registry: createRegistry('gateway', false),
    backpressure: { refusing: () => refusing, retryAfterSec: 7 },
  });
  const post = (url: string, body: unknown) => app.inject({ method: 'POST', url, payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  for (const [url, body] of [['/v1/clicks', { impression_id: 'imp_12345678' }], ['/v1/clicks/batch', { clicks: [{}] }]] as const) {
    const res = await post(url, body);
    assert.equal(res.statusCode, 503, url);
    assert.equal(res.json().error.code, 'OVERLOADED');
    assert.equal(res.headers['retry-after'], '7');
  }
  assert.equal(publisher.records.length, 0, 'nothing produced');
  for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.json']) assert.notEqual((await app.inject({ method: 'GET', url })).statusCode, 503, url);
  assert.equal((await post('/v1/nope', {})).statusCode, 404, 'unknown routes still answer 404');
  refusing = false;
  assert.equal((await post('/v1/clicks', { impression_id: 'imp_12345678' })).json().error.code, 'INVALID_FIELD', 'accepting again: the click is judged');
  await app.close();
});

test('config: ADCLICK_BACKPRESSURE_* parse, 0 or empty turn it off, bad watch entries are named', () => {
  assert.equal(loadConfig({}).backpressureMaxLag, 500_000);
  assert.equal(loadConfig({ ADCLICK_BACKPRESSURE_MAX_LAG: '' }).backpressureMaxLag, 0);
  assert.equal(loadConfig({ ADCLICK_BACKPRESSURE_MAX_LAG: '0' }).backpressureMaxLag, 0);
  assert.deepEqual(loadConfig({}).backpressureWatch, ['adclick-flink@clicks', 'adclick-sink@click-aggregates']);
  assert.deepEqual(loadConfig({ ADCLICK_BACKPRESSURE_WATCH: 'g1@t1, g2@t2' }).backpressureWatch, ['g1@t1', 'g2@t2']);
  assert.throws(() => loadConfig({ ADCLICK_BACKPRESSURE_WATCH: 'justagroup' }), /ADCLICK_BACKPRESSURE_WATCH: "justagroup" must be group@topic/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { buildGatewayApp } from '../../../src/gateway/app.ts';
import { createRegistry } from '../../../src/shared/metrics.ts';
import { signClick } from '../../../src/shared/signature.ts';
import { FakeDedup, FakeLimiter, FakePublisher } from './fakes.ts';

const NOW = 1_764_237_600_000;
const SECRET = 's'.repeat(32);

// Answers echo client-supplied text (impression ids, field paths): a browser must never
// sniff one of them into HTML or script, on any route and any status.
test('every gateway answer carries X-Content-Type-Options: nosniff', async () => {
  const app = buildGatewayApp({
    options: {
      signingKeys: new Map([['k1', SECRET]]), maxClickAgeMs: 86_400_000, maxClockSkewMs: 300_000, maxBodyBytes: 4096,
      maxBatchBodyBytes: 1 << 20, maxBatchClicks: 1000, trustedProxies: [], retryAfterSec: 2, ipHashKey: 'k', gatewayId: 'gw',
    },
    publisher: new FakePublisher(), dedup: new FakeDedup(), rateLimiter: new FakeLimiter(),
    logger: pino({ level: 'silent' }), registry: createRegistry('gateway', false), now: () => NOW,
  });
  const c = { impression_id: 'imp_<script>x', event_type: 'click', ad_id: 1, campaign_id: 2, advertiser_id: 3, user_id: 'u1', timestamp: NOW - 1000, key_id: 'k1' };
  const json = { 'content-type': 'application/json' };
  const answers = await Promise.all([
    app.inject({ method: 'POST', url: '/v1/clicks/batch', headers: json, payload: JSON.stringify({ clicks: [{ ...c, signature: signClick(c, SECRET) }] }) }),
    app.inject({ method: 'POST', url: '/v1/clicks', headers: json, payload: '{"impression_id": "<html>"' }),
    app.inject({ method: 'POST', url: '/v1/clicks', headers: { 'content-type': 'text/html' }, payload: '<html>' }),
    app.inject({ method: 'GET', url: '/nope<script>' }),
    app.inject({ method: 'GET', url: '/healthz' }),
    app.inject({ method: 'GET', url: '/openapi.json' }),
  ]);
  assert.deepEqual(answers.map((a) => a.statusCode), [200, 400, 415, 404, 200, 200]);
  for (const a of answers) assert.equal(a.headers['x-content-type-options'], 'nosniff', `${a.statusCode} ${a.body.slice(0, 80)}`);
});

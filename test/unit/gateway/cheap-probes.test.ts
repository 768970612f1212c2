// /metrics on the gateway collects from every worker (a cross-process round per call); a
// flood of scrapes must cost one collection per second, not one each (issue #16).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { buildGatewayApp } from '../../../src/gateway/app.ts';
import { createRegistry } from '../../../src/shared/metrics.ts';
import { FakeDedup, FakeLimiter, FakePublisher } from './fakes.ts';

test('a flood of /metrics scrapes costs one collection across the workers per second', async () => {
  let collections = 0;
  const app = buildGatewayApp({
    options: {
      signingKeys: new Map([['k1', 's'.repeat(32)]]), maxClickAgeMs: 86_400_000, maxClockSkewMs: 300_000, maxBodyBytes: 4096,
      maxBatchBodyBytes: 1 << 20, maxBatchClicks: 1000, trustedProxies: [], retryAfterSec: 2, ipHashKey: 'k', gatewayId: 'gw',
    },
    publisher: new FakePublisher(), dedup: new FakeDedup(), rateLimiter: new FakeLimiter(),
    logger: pino({ level: 'silent' }), registry: createRegistry('gateway', false),
    metricsText: async () => {
      collections++;
      await new Promise((r) => setTimeout(r, 20)); // the round to the other workers
      return '# collected\n';
    },
  });
  const answers = await Promise.all(Array.from({ length: 200 }, () => app.inject({ method: 'GET', url: '/metrics' })));
  assert.ok(answers.every((a) => a.statusCode === 200 && a.body === '# collected\n'));
  for (let i = 0; i < 50; i++) assert.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 200);
  assert.equal(collections, 1, `${collections} collections for 250 scrapes within a second`);
  await new Promise((r) => setTimeout(r, 1050));
  await app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(collections, 2, 'a second later the figures are collected afresh');
});

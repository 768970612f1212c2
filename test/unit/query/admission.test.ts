// Issue 16, HTTP admission on the query API port: every request but the cheap constant
// GETs is charged to its client's bucket (IPv6 per /64) before anything else, no body is
// ever read (no route takes one), and slow requests time out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { buildQueryApp, type QueryAppOptions } from '../../../src/query/app.ts';
import { FakeRepository } from './fake-repository.ts';
import { msUntilServerCloses, within } from '../../helpers/slow-client.ts';

const KEY = 'ak_live_advertiser7_secret';

function setup(options: Partial<QueryAppOptions> = {}) {
  const repo = new FakeRepository();
  repo.addKey(KEY, 7);
  repo.addAd(7, 55, 1234);
  const clock = { now: Date.UTC(2026, 10, 27, 11, 30) };
  const app = buildQueryApp({ repo, logger: pino({ level: 'silent' }), clock: () => clock.now, options, registry: new Registry() });
  return { app, repo, clock };
}

test('a POST to an unknown route answers 404 at once, without reading its body', async () => {
  const { app } = setup();
  const body = new PassThrough();
  body.write('[[[[[[[[');
  const res = await within(2000, app.inject({ method: 'POST', url: '/anything', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, payload: body }), 'POST /anything');
  body.destroy();
  assert.equal(res.statusCode, 404);
  assert.equal(res.json().error.code, 'NOT_FOUND');
  assert.equal(res.headers.connection, 'close', 'the unread body is not drained');
});

test('per-client-IP limit before the key is looked at: unknown routes, wrong methods and /v1 pay; constant GETs do not', async () => {
  const { app, repo } = setup({ ipRateLimitPerSec: 1, ipRateLimitBurst: 2 });
  const from = (remoteAddress: string, url: string, method: 'GET' | 'POST' = 'GET', headers: Record<string, string> = {}) =>
    app.inject({ method, url, remoteAddress, headers });
  assert.equal((await from('198.51.100.7', '/nope')).statusCode, 404);
  assert.equal((await from('198.51.100.7', '/v1/campaigns', 'POST')).statusCode, 405);
  const limited = await from('198.51.100.7', '/nope');
  assert.equal(limited.statusCode, 429);
  assert.equal(limited.json().error.code, 'RATE_LIMITED');
  assert.equal(limited.headers['retry-after'], '1');
  const lookups = repo.calls.findApiKey ?? 0;
  assert.equal((await from('198.51.100.7', '/v1/campaigns', 'GET', { authorization: 'Bearer ak_junk_junk_junk_junk' })).statusCode, 429);
  assert.equal(repo.calls.findApiKey ?? 0, lookups, 'a limited client causes no key lookup');
  for (const url of ['/healthz', '/metrics', '/openapi.json', '/']) assert.equal((await from('198.51.100.7', url)).statusCode, 200, url);
  assert.equal((await from('198.51.100.8', '/nope')).statusCode, 404, 'other clients unaffected');
  // IPv6: one bucket per /64, whatever the spelling.
  assert.equal((await from('2001:db8:5:6::1', '/nope')).statusCode, 404);
  assert.equal((await from('2001:DB8:5:6:0:0:0:2', '/nope')).statusCode, 404);
  assert.equal((await from('2001:db8:5:6:ffff::3', '/nope')).statusCode, 429);
});

test('behind a trusted proxy (CIDR) the forwarded client is the bucket', async () => {
  const { app } = setup({ ipRateLimitPerSec: 1, ipRateLimitBurst: 1, trustedProxies: ['10.0.0.0/8'] });
  const via = (proxy: string, client: string) => app.inject({ url: '/nope', remoteAddress: proxy, headers: { 'x-forwarded-for': client } });
  assert.equal((await via('10.0.0.5', '198.51.100.9')).statusCode, 404);
  assert.equal((await via('10.200.0.1', '198.51.100.9:4444')).statusCode, 429, 'same client through another proxy, with a port');
  assert.equal((await via('10.0.0.5', '198.51.100.10')).statusCode, 404, 'another client through the same proxy');
});

test('slow requests: the connection is closed after the request timeout', async () => {
  const { app } = setup({ timeouts: { headersTimeoutMs: 300, requestTimeoutMs: 600 } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const { port } = app.server.address() as AddressInfo;
    const closedAfter = await msUntilServerCloses(port, 'GET /v1/campaigns HTTP/1.1\r\nhost: x\r\n', 'x-slow: 1\r\n', 5000, 'slow request');
    assert.ok(closedAfter >= 250 && closedAfter < 3000, `closed after ${closedAfter} ms`);
  } finally {
    await app.close();
  }
});

test('IPv6 rotation over the /64s of one /48 meets the /48 aggregate (factor × the per-client limit); another /48 is independent', async () => {
  // The clock is frozen: no token comes back during the loop.
  const { app } = setup({ ipRateLimitPerSec: 1, ipRateLimitBurst: 2, ipv6AggregatePrefix: 48, ipv6AggregateFactor: 3 });
  const statusFrom = async (remoteAddress: string) => (await app.inject({ url: '/nope', remoteAddress })).statusCode;
  let passed = 0;
  for (let i = 0; i < 200; i++) if ((await statusFrom(`2001:db8:aaaa:${i.toString(16)}::1`)) === 404) passed++;
  assert.equal(passed, 6, 'the /48 passes 3 × the burst of 2, not 2 per /64');
  assert.equal(await statusFrom('2001:db8:bbbb:1::1'), 404, 'another /48');
  assert.equal(await statusFrom('2001:db8:bbbb:1::2'), 404, 'the same /64 has its burst of 2');
  assert.equal(await statusFrom('2001:db8:bbbb:1::3'), 429);
  const { app: off } = setup({ ipRateLimitPerSec: 1, ipRateLimitBurst: 2, ipv6AggregatePrefix: 0 });
  let free = 0;
  for (let i = 0; i < 50; i++) if ((await off.inject({ url: '/nope', remoteAddress: `2001:db8:cccc:${i.toString(16)}::1` })).statusCode === 404) free++;
  assert.equal(free, 50, 'without the aggregate each /64 stands alone');
});

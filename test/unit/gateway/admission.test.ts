// Issue 16, HTTP admission on the gateway: a request is charged to its client's bucket
// before its body is read, batches pay per click before any signature is checked, only
// routes that take a body read one, nesting is refused before parsing, and slow bodies
// time out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { buildGatewayApp, MAX_PENDING_CLICKS_PER_CLIENT, type GatewayOptions } from '../../../src/gateway/app.ts';
import { createRateLimiter, type RateLimiter } from '../../../src/gateway/rate-limiter.ts';
import { signClick } from '../../../src/shared/signature.ts';
import { createRegistry } from '../../../src/shared/metrics.ts';
import { FakeDedup, FakeLimiter, FakePublisher } from './fakes.ts';
import { msUntilServerCloses, within } from '../../helpers/slow-client.ts';

const NOW = Date.now();
const KEYS = new Map([['k1', 'secret-one']]);

function setup(o: { limiter?: RateLimiter; options?: Partial<GatewayOptions> } = {}) {
  const publisher = new FakePublisher();
  const limiter = o.limiter ?? new FakeLimiter();
  const app = buildGatewayApp({
    options: {
      signingKeys: KEYS, maxClickAgeMs: 24 * 3600_000, maxClockSkewMs: 300_000, maxBodyBytes: 4096,
      maxBatchBodyBytes: 1024 * 1024, maxBatchClicks: 1000, trustedProxies: ['10.0.0.0/8'], retryAfterSec: 2,
      ipHashKey: 'ip-key', gatewayId: 'test-gw', ...o.options,
    },
    publisher, dedup: new FakeDedup(), rateLimiter: limiter, logger: pino({ level: 'silent' }), registry: createRegistry('gateway', false), now: () => NOW,
  });
  return { app, publisher, limiter };
}

let seq = 0;
function click(over: Record<string, unknown> = {}) {
  const c = { impression_id: `imp_adm_${++seq}`, event_type: 'click', ad_id: 1234, campaign_id: 55, advertiser_id: 7, user_id: 'u_1', timestamp: NOW - 1000, key_id: 'k1', ...over };
  return { ...c, signature: signClick(c as never, KEYS.get('k1')!) };
}
const JSON_HEADERS = { 'content-type': 'application/json' };

/** A body that starts and never ends: whoever waits for it waits forever. */
function endlessBody(): PassThrough {
  const s = new PassThrough();
  s.write('{"clicks": [');
  return s;
}

test('a limited client is refused before its body is read (429, Retry-After, connection closed)', async () => {
  const { app, limiter } = setup();
  (limiter as FakeLimiter).deny = true;
  // A single click is charged with its edge-dedup read once its (small) body is parsed; the
  // refusal is remembered, so from then on this client is refused before its body.
  const first = await app.inject({ method: 'POST', url: '/v1/clicks', headers: JSON_HEADERS, payload: JSON.stringify(click()) });
  assert.equal(first.statusCode, 429);
  assert.equal(first.headers['retry-after'], '2');
  for (const url of ['/v1/clicks', '/v1/clicks/batch', '/anything']) {
    const body = endlessBody();
    const res = await within(2000, app.inject({ method: 'POST', url, headers: { ...JSON_HEADERS, 'transfer-encoding': 'chunked' }, payload: body }), url);
    body.destroy();
    assert.equal(res.statusCode, 429, url);
    assert.equal(res.json().error.code, 'RATE_LIMITED');
    assert.equal(res.headers['retry-after'], '2');
    assert.equal(res.headers.connection, 'close', `${url}: the unread body is not drained`);
  }
});

test('unknown routes are charged like any request and answer 404 without reading the body', async () => {
  const { app, limiter } = setup();
  const fake = limiter as FakeLimiter;
  const body = endlessBody();
  const res = await within(2000, app.inject({ method: 'POST', url: '/anything', headers: { ...JSON_HEADERS, 'transfer-encoding': 'chunked' }, payload: body }), 'POST /anything');
  body.destroy();
  assert.equal(res.statusCode, 404);
  assert.equal(res.json().error.code, 'NOT_FOUND');
  assert.equal(fake.ips.length, 1, 'charged once');
  // The single-click limit applies to every route but the batch: a large body elsewhere is 413 or 404, never parsed.
  const big = JSON.stringify({ pad: 'x'.repeat(100_000) });
  assert.equal((await app.inject({ method: 'POST', url: '/v1/clicks', headers: JSON_HEADERS, payload: big })).statusCode, 413);
  assert.equal((await app.inject({ method: 'PUT', url: '/healthz', headers: JSON_HEADERS, payload: big })).statusCode, 404);
  // The operational GETs are not charged.
  const before = fake.ips.length;
  for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.json']) await app.inject(url);
  assert.equal(fake.ips.length, before);
});

test('deeply nested JSON is refused as INVALID_JSON before it is parsed', async () => {
  const { app } = setup();
  const deep = '['.repeat(400_000) + ']'.repeat(400_000);
  const t0 = process.cpuUsage();
  const res = await app.inject({ method: 'POST', url: '/v1/clicks/batch', headers: JSON_HEADERS, payload: deep });
  const cpuMs = (process.cpuUsage(t0).user + process.cpuUsage(t0).system) / 1000;
  assert.equal(res.statusCode, 400);
  assert.equal(res.json().error.code, 'INVALID_JSON');
  assert.match(res.json().error.message, /nested deeper/);
  const inField = JSON.stringify({ clicks: [{ ...click(), extra: JSON.parse('['.repeat(20) + ']'.repeat(20)) }] });
  assert.equal((await app.inject({ method: 'POST', url: '/v1/clicks/batch', headers: JSON_HEADERS, payload: inField })).json().error.code, 'INVALID_JSON');
  // Brackets inside strings are text, not nesting.
  const inString = await app.inject({ method: 'POST', url: '/v1/clicks', headers: JSON_HEADERS, payload: JSON.stringify({ ...click(), user_id: '[[[[[[[[[[[[' }) });
  assert.equal(inString.json().error.field, 'user_id');
  assert.ok(cpuMs < 400, `nested body cost ${cpuMs} ms of CPU`);
});

test('a batch pays one request per click, before any signature is checked', async () => {
  const limiter = createRateLimiter(null, { perSecond: 1, burst: 10 });
  const { app, publisher } = setup({ limiter });
  // 1 on arrival + 5: fits in a burst of 10.
  const ok = await app.inject({ method: 'POST', url: '/v1/clicks/batch', headers: JSON_HEADERS, payload: JSON.stringify({ clicks: Array.from({ length: 6 }, () => click()) }) });
  assert.equal(ok.statusCode, 200);
  assert.equal(publisher.records.length, 6);
  // 4 left: a batch of 5 with a bad signature in it does not fit and is refused whole, unverified.
  const refused = await app.inject({ method: 'POST', url: '/v1/clicks/batch', headers: JSON_HEADERS, payload: JSON.stringify({ clicks: [...Array.from({ length: 4 }, () => click()), { ...click(), signature: '0'.repeat(64) }] }) });
  assert.equal(refused.statusCode, 429);
  assert.equal(refused.json().error.code, 'RATE_LIMITED');
  assert.ok(Number(refused.headers['retry-after']) >= 1);
  assert.equal(publisher.records.length, 6);
});

test('a batch larger than the burst passes from a full bucket and leaves the client in debt', async () => {
  const limiter = createRateLimiter(null, { perSecond: 1, burst: 10 });
  const { app } = setup({ limiter });
  const big = await app.inject({ method: 'POST', url: '/v1/clicks/batch', headers: JSON_HEADERS, payload: JSON.stringify({ clicks: Array.from({ length: 30 }, () => click()) }) });
  assert.equal(big.statusCode, 200);
  const next = await app.inject({ method: 'POST', url: '/v1/clicks', headers: JSON_HEADERS, payload: JSON.stringify(click()) });
  assert.equal(next.statusCode, 429);
  // 30 requests at 1/s with 9 of burst: about 21 s of debt.
  assert.ok(Number(next.headers['retry-after']) >= 19 && Number(next.headers['retry-after']) <= 22, String(next.headers['retry-after']));
});

test('Retry-After is capped at 60 s however long the limiter says', async () => {
  const limiter: RateLimiter = { check: async () => ({ allowed: false, retryAfterMs: 3_600_000 }) };
  const { app } = setup({ limiter });
  const res = await app.inject({ method: 'POST', url: '/v1/clicks', headers: JSON_HEADERS, payload: JSON.stringify(click()) });
  assert.equal(res.statusCode, 429);
  assert.equal(res.headers['retry-after'], '60');
});

test('IPv6 clients share a bucket per /64; forwarded addresses are canonical before they are buckets', async () => {
  const { app, limiter } = setup();
  const fake = limiter as FakeLimiter;
  const send = (remoteAddress: string, xff?: string) =>
    app.inject({ method: 'POST', url: '/nope', remoteAddress, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } });
  await send('2001:db8:1:2::1');
  await send('2001:db8:1:2:ffff:ffff:ffff:ffff');
  await send('2001:DB8:1:2:0:0:0:7');
  assert.deepEqual(fake.ips.splice(0), ['2001:db8:1:2::/64', '2001:db8:1:2::/64', '2001:db8:1:2::/64']);
  // Through a trusted proxy (a CIDR range): ports, mapped IPv4 and case make no new bucket.
  await send('10.1.2.3', '198.51.100.7');
  await send('10.1.2.3', '198.51.100.7:5555');
  await send('10.1.2.3', '::ffff:198.51.100.7');
  await send('10.9.9.9', 'spoofed, 198.51.100.7');
  assert.deepEqual(fake.ips.splice(0), Array(4).fill('198.51.100.7'));
  // Garbage from a trusted proxy is no bucket of its own: the proxy stands in.
  await send('10.1.2.3', 'not-an-ip');
  await send('10.1.2.3', 'not-an-ip-either');
  assert.deepEqual(fake.ips.splice(0), ['10.1.2.3', '10.1.2.3']);
  // An untrusted peer's header is ignored.
  await send('203.0.113.9', '198.51.100.7');
  assert.deepEqual(fake.ips.splice(0), ['203.0.113.9']);
});

test('slow bodies: the connection is closed after the request timeout', async () => {
  const { app } = setup({ options: { timeouts: { headersTimeoutMs: 300, requestTimeoutMs: 600 } } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const { port } = app.server.address() as AddressInfo;
    const closedAfter = await msUntilServerCloses(port, `POST /v1/clicks/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{"clicks": [`, ' ', 5000, 'slow body');
    assert.ok(closedAfter >= 500 && closedAfter < 3000, `closed after ${closedAfter} ms`);
  } finally {
    await app.close();
  }
});

test('without Redis each of N gateway workers limits to its share of the host limit', async () => {
  // A slow rate, so a loaded machine cannot earn a token back during the loop.
  const alone = createRateLimiter(null, { perSecond: 1, burst: 10 });
  const oneOfTwo = createRateLimiter(null, { perSecond: 1, burst: 10, workers: 2 });
  const passed = async (l: RateLimiter) => {
    let n = 0;
    for (let i = 0; i < 20; i++) if ((await l.check('198.51.100.7')).allowed) n++;
    return n;
  };
  assert.equal(await passed(alone), 10);
  assert.equal(await passed(oneOfTwo), 5, 'two workers together still allow the burst of 10');
});

test('nesting is refused while the body arrives: the first chunk decides, the rest is never read', async () => {
  const { app } = setup();
  const body = new PassThrough();
  body.write('{"clicks": [' + '['.repeat(64 * 1024));
  const res = await within(2000, app.inject({ method: 'POST', url: '/v1/clicks/batch', headers: { ...JSON_HEADERS, 'content-length': String(1024 * 1024) }, payload: body }), 'nested upload');
  body.destroy();
  assert.equal(res.statusCode, 400);
  assert.equal(res.json().error.code, 'INVALID_JSON');
  assert.equal(res.headers.connection, 'close', 'the unread rest is not drained');
  // Split anywhere, an escaped quote or a bracket inside a string is still text.
  const text = JSON.stringify({ clicks: [{ ...click(), user_id: 'a\\"[[[[[[[[[[[[' }] });
  const split = new PassThrough();
  const pending = app.inject({ method: 'POST', url: '/v1/clicks/batch', headers: JSON_HEADERS, payload: split });
  for (let i = 0; i < text.length; i += 7) split.write(text.slice(i, i + 7));
  split.end();
  const ok = await pending;
  assert.equal(ok.statusCode, 200, ok.body);
  assert.equal(ok.json().results[0].error.field, 'clicks[0].user_id');
});

test('a single click costs one admission (charge and edge-dedup read together), before its signature is checked', async () => {
  const calls: { keys: readonly string[]; cost: number }[] = [];
  const publisher = new FakePublisher();
  const app = buildGatewayApp({
    options: {
      signingKeys: KEYS, maxClickAgeMs: 24 * 3600_000, maxClockSkewMs: 300_000, maxBodyBytes: 4096,
      maxBatchBodyBytes: 1024 * 1024, maxBatchClicks: 1000, trustedProxies: [], retryAfterSec: 2, ipHashKey: 'ip-key', gatewayId: 'test-gw',
    },
    publisher, dedup: new FakeDedup(), rateLimiter: new FakeLimiter(), logger: pino({ level: 'silent' }), registry: createRegistry('gateway', false), now: () => NOW,
    admission: { admit: async (_ip, keys, cost = 1) => { calls.push({ keys, cost }); return { decision: { allowed: true, retryAfterMs: 0 }, seen: keys.map(() => false) }; } },
  });
  const c = click();
  const res = await app.inject({ method: 'POST', url: '/v1/clicks', headers: JSON_HEADERS, payload: JSON.stringify(c) });
  assert.equal(res.statusCode, 202);
  assert.deepEqual(calls, [{ keys: [`adclick:seen:click:${c.impression_id}`], cost: 1 }], 'one admission: the charge with the dedup read');
  calls.length = 0;
  // A bad signature is charged too (the charge comes first), a bad body is charged by the error path.
  assert.equal((await app.inject({ method: 'POST', url: '/v1/clicks', headers: JSON_HEADERS, payload: JSON.stringify({ ...click(), signature: '0'.repeat(64) }) })).statusCode, 401);
  assert.equal((await app.inject({ method: 'POST', url: '/v1/clicks', headers: JSON_HEADERS, payload: '{"nope' })).statusCode, 400);
  assert.equal((await app.inject({ method: 'POST', url: '/v1/clicks', headers: JSON_HEADERS, payload: JSON.stringify({ ad_id: 1 }) })).statusCode, 400);
  assert.equal((await app.inject({ method: 'POST', url: '/v1/clicks', payload: 'x' })).statusCode, 415);
  assert.deepEqual(calls.map((x) => x.cost), [1, 1, 1, 1], 'every request paid exactly once');
});

test('a limited client\'s bad single click answers 429, not 400 (429 wins over any 4xx)', async () => {
  const { app, limiter } = setup();
  (limiter as FakeLimiter).deny = true;
  const res = await app.inject({ method: 'POST', url: '/v1/clicks', headers: JSON_HEADERS, payload: '{"nope' });
  assert.equal(res.statusCode, 429);
  assert.equal(res.json().error.code, 'RATE_LIMITED');
});

test('slow single-click bodies cannot pile up uncharged: past MAX_PENDING_CLICKS_PER_CLIENT the next is refused before its body', async () => {
  const { app, limiter } = setup();
  const bodies: PassThrough[] = [];
  const waiting: Promise<unknown>[] = [];
  try {
    for (let i = 0; i < MAX_PENDING_CLICKS_PER_CLIENT; i++) {
      const b = new PassThrough();
      b.write('{"impression_id": "');
      bodies.push(b);
      waiting.push(app.inject({ method: 'POST', url: '/v1/clicks', headers: { ...JSON_HEADERS, 'transfer-encoding': 'chunked' }, payload: b }));
    }
    await new Promise((r) => setTimeout(r, 50));
    const extra = endlessBody();
    const res = await within(2000, app.inject({ method: 'POST', url: '/v1/clicks', headers: { ...JSON_HEADERS, 'transfer-encoding': 'chunked' }, payload: extra }), 'one too many');
    extra.destroy();
    assert.equal(res.statusCode, 429);
    assert.equal(res.headers.connection, 'close');
    assert.equal((limiter as FakeLimiter).ips.length, 0, 'nothing was charged yet: the pending ones wait for their bodies');
  } finally {
    for (const b of bodies) b.end('x"}');
    await Promise.allSettled(waiting);
  }
  // Their bodies arrived (and were charged and refused as invalid): the client may send again.
  assert.equal((limiter as FakeLimiter).ips.length, MAX_PENDING_CLICKS_PER_CLIENT);
  assert.equal((await app.inject({ method: 'POST', url: '/v1/clicks', headers: JSON_HEADERS, payload: JSON.stringify(click()) })).statusCode, 202);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { buildQueryApp, type QueryAppOptions } from '../../../src/query/app.ts';
import { FakeRepository, testApiKey } from './fake-repository.ts';
import { StorageQueue } from '../../../src/store/storage-queue.ts';

const T = Date.UTC(2026, 10, 27, 10, 0, 0); // 2026-11-27T10:00:00Z
const KEY = testApiKey('advertiser7');
const OTHER_KEY = testApiKey('advertiser8');
const REVOKED_KEY = testApiKey('revoked');
const UNKNOWN_KEY = testApiKey('never-minted');
const AUTH = { authorization: `Bearer ${KEY}` };

function setup(options: Partial<QueryAppOptions> = {}) {
  const repo = new FakeRepository();
  repo.addKey(KEY, 7);
  repo.addKey(OTHER_KEY, 8);
  repo.addAd(7, 55, 1234);
  repo.addAd(7, 55, 1235);
  repo.addAd(7, 56, 2000);
  repo.addAd(8, 99, 9999); // another advertiser's campaign and ad
  const clock = { now: T + 90 * 60_000 };
  const logs: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) });
  const registry = new Registry();
  const app = buildQueryApp({ repo, logger, clock: () => clock.now, options, registry });
  return { app, repo, clock, logs, registry };
}

function assertError(res: { statusCode: number; json(): unknown; headers: Record<string, unknown> }, status: number, code: string, field?: string) {
  assert.equal(res.statusCode, status);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = res.json() as { error: { code: string; message: string; field?: string } };
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
  assert.equal(body.error.field, field);
  assert.deepEqual(Object.keys(body), ['error']);
}

test('/healthz, /readyz, the dashboard page', async () => {
  const { app, repo, clock } = setup();
  assert.deepEqual((await app.inject('/healthz')).json(), { status: 'ok' });
  const ready = await app.inject('/readyz');
  assert.equal(ready.statusCode, 200);
  const page = await app.inject('/');
  assert.equal(page.statusCode, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.match(page.body, /AdClick dashboard/);

  // A flood of probes costs one storage round trip per second (issue #16), not one each.
  const pings = repo.calls.ping ?? 0;
  const probes = await Promise.all(Array.from({ length: 100 }, () => app.inject('/readyz')));
  assert.ok(probes.every((p) => p.statusCode === 200));
  assert.equal((repo.calls.ping ?? 0) - pings, 0, 'answered from the last second\'s round trip');

  repo.failure = new Error('connect ECONNREFUSED');
  clock.now += 1000;
  const down = await app.inject('/readyz');
  assertError(down, 503, 'UNAVAILABLE');
  assert.equal(down.headers['retry-after'], '2');
  assert.equal((await app.inject('/healthz')).statusCode, 200, 'liveness does not depend on storage');
});

test('401 for missing, malformed, unknown and revoked keys, all with one body', async () => {
  const { app, repo } = setup();
  repo.addKey(REVOKED_KEY, 7);
  repo.revokeKey(REVOKED_KEY);
  const bodies = new Set<string>();
  for (const authorization of [undefined, 'Basic Zm9vOmJhcg==', 'Bearer', `Bearer ${KEY} extra`, 'Bearer unknown-key', `Bearer ${UNKNOWN_KEY}`, `Bearer ${REVOKED_KEY}`]) {
    const res = await app.inject({ url: '/v1/campaigns', headers: authorization === undefined ? {} : { authorization } });
    assertError(res, 401, 'UNAUTHORIZED');
    assert.match(String(res.headers['www-authenticate']), /^Bearer/);
    bodies.add(res.body);
  }
  assert.equal(bodies.size, 1);
  // Every /v1 route is guarded, not just the list.
  for (const url of ['/v1/campaigns/55/clicks', '/v1/campaigns/55/ads', '/v1/ads/1234/clicks']) {
    assertError(await app.inject(url), 401, 'UNAUTHORIZED');
  }
});

test('the raw key never reaches the logs', async () => {
  const { app, logs } = setup();
  await app.inject({ url: '/v1/campaigns', headers: AUTH });
  await app.inject({ url: '/v1/campaigns', headers: { authorization: 'Bearer not-a-real-key' } });
  await app.inject({ url: '/v1/campaigns', headers: { authorization: `Bearer ${UNKNOWN_KEY}` } });
  assert.ok(logs.length > 0);
  const all = logs.join('\n');
  assert.ok(!all.includes(KEY));
  assert.ok(!all.includes('not-a-real-key'));
  assert.ok(!all.includes(UNKNOWN_KEY));
});

test('GET /v1/campaigns lists only the key owner campaigns with totals', async () => {
  const { app, repo } = setup();
  repo.click(1234, T, 3);
  repo.click(1235, T + 60_000, 2);
  repo.click(2000, T, 1);
  repo.click(9999, T, 50);
  const res = await app.inject({ url: '/v1/campaigns', headers: AUTH });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.json(), {
    campaigns: [
      { campaign_id: 55, total_clicks: 5 },
      { campaign_id: 56, total_clicks: 1 },
    ],
  });
  assert.equal(res.headers['cache-control'], 'no-store');
});

test('GET /v1/campaigns without from/to is byte-for-byte the v1 answer (a lone granularity changes nothing)', async () => {
  const { app, repo } = setup();
  repo.click(1234, T, 3);
  repo.click(9999, T, 50);
  const expected = '{"campaigns":[{"campaign_id":55,"total_clicks":3},{"campaign_id":56,"total_clicks":0}]}';
  for (const url of ['/v1/campaigns', '/v1/campaigns?granularity=1h', '/v1/campaigns?granularity=bogus', '/v1/campaigns?limit=3']) {
    const res = await app.inject({ url, headers: AUTH });
    assert.equal(res.statusCode, 200, url);
    assert.equal(res.body, expected, url);
  }
  assert.equal(repo.calls.campaignRangeClicks, undefined, 'no range read without a range');
  assert.equal(repo.calls.completeBefore, undefined);
});

test('GET /v1/campaigns?from=&to= adds clicks in the range per campaign, from, to, complete_before', async () => {
  const { app, repo } = setup();
  repo.addAd(7, 57, 3000); // a campaign with no click at all
  repo.click(1234, T + 61_000, 4); // in range
  repo.click(1235, T + 119_999, 1); // in range
  repo.click(1234, T + 300_000, 9); // at 10:05: outside [10:00, 10:05)
  repo.click(2000, T - 1, 6); // campaign 56: only before the range
  repo.click(9999, T + 61_000, 100); // other advertiser, in range
  repo.watermarkMs = T + 120_500;
  // Rounded like the series: from 10:00:30 down to 10:00, to 10:04:01 up to 10:05 (1m default).
  const qs = `from=${T + 30_000}&to=2026-11-27T11:04:01%2B01:00`;
  const res = await app.inject({ url: `/v1/campaigns?${qs}`, headers: AUTH });
  assert.equal(res.statusCode, 200, res.body);
  assert.deepEqual(res.json(), {
    campaigns: [
      { campaign_id: 55, total_clicks: 14, clicks: 5 },
      { campaign_id: 56, total_clicks: 6, clicks: 0 },
      { campaign_id: 57, total_clicks: 0, clicks: 0 },
    ],
    granularity: '1m',
    from: '2026-11-27T10:00:00Z',
    to: '2026-11-27T10:05:00Z',
    complete_before: '2026-11-27T10:02:00Z',
  });
  // The same query string on the series endpoint gives the same total and the same range.
  const series = (await app.inject({ url: `/v1/campaigns/55/clicks?${qs}`, headers: AUTH })).json();
  assert.equal(series.total_clicks, 5);
  assert.equal(series.from, res.json().from);
  assert.equal(series.to, res.json().to);

  // A coarser granularity rounds the range to it: [10:00, 11:00) now holds the 10:05 click too.
  const hour = (await app.inject({ url: `/v1/campaigns?from=${T + 30_000}&to=${T + 240_000}&granularity=1h`, headers: AUTH })).json();
  assert.equal(hour.granularity, '1h');
  assert.equal(hour.from, '2026-11-27T10:00:00Z');
  assert.equal(hour.to, '2026-11-27T11:00:00Z');
  assert.deepEqual(hour.campaigns.map((c: { clicks: number }) => c.clicks), [14, 0, 0]);

  // Only `to`: the range is the hour before it, as for the series; unknown watermark: null.
  repo.watermarkMs = null;
  const onlyTo = (await app.inject({ url: `/v1/campaigns?to=${T}`, headers: AUTH })).json();
  assert.equal(onlyTo.from, '2026-11-27T09:00:00Z');
  assert.equal(onlyTo.to, '2026-11-27T10:00:00Z');
  assert.equal(onlyTo.complete_before, null);
  assert.deepEqual(onlyTo.campaigns.map((c: { clicks: number }) => c.clicks), [0, 6, 0]);
  assert.equal(repo.calls.campaignRangeClicks, 3, 'one range read per request, never one per campaign');
  assert.equal(repo.calls.series, 1, 'only the explicit series request above read a series');
});

test('GET /v1/campaigns with a range: bad from/to/granularity give the same 400 as the series', async () => {
  const { app, repo } = setup();
  const to10k = T + 10_000 * 60_000;
  const cases = [
    'from=yesterday',
    'from=2026-11-27T10:00:00',
    'to=1.5',
    `from=${T}&to=${T}`,
    `from=${T}&to=${T - 60_000}`,
    `from=${T}&granularity=1d`,
    `from=${T}&granularity=1m&granularity=5m`,
    `from=${T}&from=${T + 1}`,
    'from=-5',
    'to=9999-12-31T23:59:30Z',
    `from=${T}&to=${to10k + 1}`,
    `from=${T}&to=${to10k * 12 + 1}&granularity=5m`,
  ];
  for (const qs of cases) {
    const want = await app.inject({ url: `/v1/campaigns/55/clicks?${qs}`, headers: AUTH });
    assert.equal(want.statusCode, 400, `series ${qs}`);
    const { code, field } = want.json().error;
    assertError(await app.inject({ url: `/v1/campaigns?${qs}`, headers: AUTH }), 400, code, field);
  }
  assert.equal(repo.calls.campaignRangeClicks, undefined, 'refused before any range read');
  // The cap is 10,000 windows of the granularity, as for the series and /ads.
  const ok = await app.inject({ url: `/v1/campaigns?from=${T}&to=${to10k}`, headers: AUTH });
  assert.equal(ok.statusCode, 200, ok.body);
  assertError(await app.inject({ url: `/v1/campaigns?from=${T}&to=${to10k + 1}`, headers: AUTH }), 400, 'RANGE_TOO_LARGE');
  assert.equal((await app.inject({ url: `/v1/campaigns?from=${T}&to=${to10k + 1}&granularity=1h`, headers: AUTH })).statusCode, 200);
  // Authentication still comes first.
  assertError(await app.inject({ url: '/v1/campaigns?from=yesterday' }), 401, 'UNAUTHORIZED');
});

test('GET /v1/campaigns with a range never shows another advertiser campaigns', async () => {
  const { app, repo } = setup();
  repo.click(1234, T, 2);
  repo.click(9999, T, 50);
  const range = `from=${T}&to=${T + 60_000}`;
  const own = (await app.inject({ url: `/v1/campaigns?${range}`, headers: AUTH })).json();
  assert.deepEqual(own.campaigns, [
    { campaign_id: 55, total_clicks: 2, clicks: 2 },
    { campaign_id: 56, total_clicks: 0, clicks: 0 },
  ]);
  const other = (await app.inject({ url: `/v1/campaigns?${range}`, headers: { authorization: `Bearer ${OTHER_KEY}` } })).json();
  assert.deepEqual(other.campaigns, [{ campaign_id: 99, total_clicks: 50, clicks: 50 }]);
  // Even a repository that wrongly returned a foreign campaign's range count cannot add it:
  // the list is the advertiser's own all-time list.
  const honest = repo.campaignRangeClicks.bind(repo);
  repo.campaignRangeClicks = async (q) => [...(await honest(q)), { campaignId: 99, clicks: 50 }];
  const guarded = (await app.inject({ url: `/v1/campaigns?${range}`, headers: AUTH })).json();
  assert.deepEqual(guarded.campaigns.map((c: { campaign_id: number }) => c.campaign_id), [55, 56]);
  assert.ok(!JSON.stringify(guarded).includes('99'));
});

test('campaign series is dense, rounded, time-ordered, ISO, and totals its points', async () => {
  const { app, repo } = setup();
  repo.click(1234, T + 61_000, 4); // window 10:01
  repo.click(1235, T + 119_999, 1); // window 10:01
  repo.click(1234, T + 180_000, 2); // window 10:03
  repo.click(1234, T + 300_000, 9); // at 10:05: outside [10:00, 10:05)
  repo.click(9999, T + 61_000, 100); // other advertiser
  repo.watermarkMs = T + 120_500;
  // from 10:00:30 rounds down to 10:00; to 10:04:01 rounds up to 10:05.
  const res = await app.inject({
    url: `/v1/campaigns/55/clicks?from=${T + 30_000}&to=2026-11-27T11:04:01%2B01:00&granularity=1m`,
    headers: AUTH,
  });
  assert.equal(res.statusCode, 200, res.body);
  assert.deepEqual(res.json(), {
    campaign_id: 55,
    granularity: '1m',
    from: '2026-11-27T10:00:00Z',
    to: '2026-11-27T10:05:00Z',
    complete_before: '2026-11-27T10:02:00Z',
    total_clicks: 7,
    points: [
      { window_start: '2026-11-27T10:00:00Z', clicks: 0, final: true, revised: false },
      { window_start: '2026-11-27T10:01:00Z', clicks: 5, final: true, revised: false },
      { window_start: '2026-11-27T10:02:00Z', clicks: 0, final: false, revised: false },
      { window_start: '2026-11-27T10:03:00Z', clicks: 2, final: false, revised: false },
      { window_start: '2026-11-27T10:04:00Z', clicks: 0, final: false, revised: false },
    ],
  });
});

test('series defaults: 1m over the last hour ending now; complete_before null when unknown', async () => {
  const { app, repo, clock } = setup();
  clock.now = T + 30_000;
  repo.click(1234, T - 3_600_000, 1); // first window of the default range
  repo.click(1234, T + 10_000, 2); // the current, open window
  const res = await app.inject({ url: '/v1/campaigns/55/clicks', headers: AUTH });
  assert.equal(res.statusCode, 200);
  const body = res.json();
  assert.equal(body.granularity, '1m');
  assert.equal(body.from, '2026-11-27T09:00:00Z');
  assert.equal(body.to, '2026-11-27T10:01:00Z');
  assert.equal(body.points.length, 61);
  assert.equal(body.complete_before, null);
  assert.equal(body.total_clicks, 3);
  assert.equal(body.total_clicks, body.points.reduce((s: number, p: { clicks: number }) => s + p.clicks, 0));
  assert.ok(body.points.every((p: { final: boolean }) => p.final === false));
  for (const p of body.points) assert.match(p.window_start, /^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$/);
});

test('an unencoded + in an ISO offset still parses', async () => {
  const { app } = setup();
  const res = await app.inject({ url: '/v1/campaigns/55/clicks?from=2026-11-27T11:00:00+01:00&to=2026-11-27T11:02:00+01:00', headers: AUTH });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.json().from, '2026-11-27T10:00:00Z');
  assert.equal(res.json().to, '2026-11-27T10:02:00Z');
});

test('5m and 1h series align windows to UTC', async () => {
  const { app, repo } = setup();
  repo.click(1234, T + 7 * 60_000, 1);
  repo.click(1234, T + 65 * 60_000, 1);
  const five = (await app.inject({ url: `/v1/campaigns/55/clicks?from=${T + 4 * 60_000}&to=${T + 11 * 60_000}&granularity=5m`, headers: AUTH })).json();
  assert.equal(five.from, '2026-11-27T10:00:00Z');
  assert.equal(five.to, '2026-11-27T10:15:00Z');
  assert.deepEqual(five.points.map((p: { clicks: number }) => p.clicks), [0, 1, 0]);
  const hour = (await app.inject({ url: `/v1/campaigns/55/clicks?from=2026-11-27T10:30:00Z&to=2026-11-27T11:30:00Z&granularity=1h`, headers: AUTH })).json();
  assert.deepEqual(hour.points, [
    { window_start: '2026-11-27T10:00:00Z', clicks: 1, final: false, revised: false },
    { window_start: '2026-11-27T11:00:00Z', clicks: 1, final: false, revised: false },
  ]);
});

test('ad series carries ad_id and campaign_id and counts only that ad', async () => {
  const { app, repo } = setup();
  repo.click(1234, T, 3);
  repo.click(1235, T, 100);
  const res = await app.inject({ url: `/v1/ads/1234/clicks?from=${T}&to=${T + 120_000}`, headers: AUTH });
  assert.equal(res.statusCode, 200);
  const body = res.json();
  assert.deepEqual(Object.keys(body).slice(0, 2), ['ad_id', 'campaign_id']);
  assert.equal(body.ad_id, 1234);
  assert.equal(body.campaign_id, 55);
  assert.equal(body.total_clicks, 3);
  assert.deepEqual(body.points.map((p: { clicks: number }) => p.clicks), [3, 0]);
});

test('ads ranking: highest first, ties by id, limit applied, range rounded', async () => {
  const { app, repo } = setup();
  repo.addAd(7, 55, 1236);
  repo.click(1234, T, 2);
  repo.click(1235, T, 5);
  repo.click(1236, T, 2);
  repo.click(1234, T + 3_600_000, 50); // outside the range
  const res = await app.inject({ url: `/v1/campaigns/55/ads?from=${T + 1}&to=${T + 59 * 60_000}`, headers: AUTH });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.json(), {
    campaign_id: 55,
    from: '2026-11-27T10:00:00Z',
    to: '2026-11-27T10:59:00Z',
    ads: [
      { ad_id: 1235, clicks: 5 },
      { ad_id: 1234, clicks: 2 },
      { ad_id: 1236, clicks: 2 },
    ],
  });
  const top = await app.inject({ url: `/v1/campaigns/55/ads?from=${T}&to=${T + 60_000}&limit=1`, headers: AUTH });
  assert.deepEqual(top.json().ads, [{ ad_id: 1235, clicks: 5 }]);
});

test('404: foreign, missing and malformed ids give byte-identical answers', async () => {
  const { app } = setup();
  const cases = [
    ['/v1/campaigns/99/clicks', '/v1/campaigns/12345/clicks', '/v1/campaigns/0/clicks', '/v1/campaigns/abc/clicks', '/v1/campaigns/9007199254740992/clicks'],
    ['/v1/campaigns/99/ads', '/v1/campaigns/12345/ads', '/v1/campaigns/-1/ads'],
    ['/v1/ads/9999/clicks', '/v1/ads/4242/clicks', '/v1/ads/1.5/clicks'],
  ];
  const bodies = new Set<string>();
  for (const urls of cases) {
    for (const url of urls) {
      const res = await app.inject({ url, headers: AUTH });
      assertError(res, 404, 'NOT_FOUND');
      bodies.add(res.body);
    }
  }
  // Ids that fail before routing (undecodable, over-long) are the same 404.
  for (const url of ['/v1/campaigns/%E0%A4%A/clicks', `/v1/ads/${'1'.repeat(80)}/clicks`]) {
    const res = await app.inject({ url, headers: AUTH });
    assertError(res, 404, 'NOT_FOUND');
    bodies.add(res.body);
  }
  assert.equal(bodies.size, 1);
  // The other advertiser does see its own campaign: the 404 above is about ownership.
  assert.equal((await app.inject({ url: '/v1/campaigns/99/clicks', headers: { authorization: `Bearer ${OTHER_KEY}` } })).statusCode, 200);
});

test('400 INVALID_FIELD names the bad parameter', async () => {
  const { app } = setup();
  const cases: [string, string][] = [
    ['/v1/campaigns/55/clicks?from=yesterday', 'from'],
    ['/v1/campaigns/55/clicks?from=2026-11-27T10:00:00', 'from'],
    ['/v1/campaigns/55/clicks?to=1.5', 'to'],
    [`/v1/campaigns/55/clicks?from=${T}&to=${T}`, 'to'],
    [`/v1/campaigns/55/clicks?from=${T}&to=${T - 60_000}`, 'to'],
    ['/v1/campaigns/55/clicks?granularity=1d', 'granularity'],
    ['/v1/campaigns/55/clicks?granularity=1m&granularity=5m', 'granularity'],
    ['/v1/ads/1234/clicks?from=-5', 'from'],
    ['/v1/campaigns/55/ads?limit=0', 'limit'],
    ['/v1/campaigns/55/ads?limit=1001', 'limit'],
    ['/v1/campaigns/55/ads?limit=abc', 'limit'],
    ['/v1/campaigns/55/ads?to=soon', 'to'],
  ];
  for (const [url, field] of cases) assertError(await app.inject({ url, headers: AUTH }), 400, 'INVALID_FIELD', field);
  assert.equal((await app.inject({ url: '/v1/campaigns/55/ads?limit=1000', headers: AUTH })).statusCode, 200);
});

test('400 RANGE_TOO_LARGE beyond 10,000 windows', async () => {
  const { app } = setup();
  const to = T + 10_000 * 60_000;
  assert.equal((await app.inject({ url: `/v1/campaigns/55/clicks?from=${T}&to=${to}`, headers: AUTH })).json().points.length, 10_000);
  assertError(await app.inject({ url: `/v1/campaigns/55/clicks?from=${T}&to=${to + 1}`, headers: AUTH }), 400, 'RANGE_TOO_LARGE');
  assertError(await app.inject({ url: `/v1/ads/1234/clicks?from=${T}&to=${to + 1}`, headers: AUTH }), 400, 'RANGE_TOO_LARGE');
  assertError(await app.inject({ url: `/v1/campaigns/55/ads?from=${T}&to=${to + 1}`, headers: AUTH }), 400, 'RANGE_TOO_LARGE');
  assert.equal((await app.inject({ url: `/v1/campaigns/55/ads?from=${T}&to=${to + 1}&granularity=1h`, headers: AUTH })).statusCode, 200);
});

test('unknown routes 404, wrong methods 405, both in the error shape', async () => {
  const { app } = setup();
  assertError(await app.inject({ url: '/v1/nothing', headers: AUTH }), 404, 'NOT_FOUND');
  assertError(await app.inject({ url: '/v2/campaigns', headers: AUTH }), 404, 'NOT_FOUND');
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE'] as const) {
    const res = await app.inject({ method, url: '/v1/campaigns/55/clicks', headers: AUTH });
    assertError(res, 405, 'METHOD_NOT_ALLOWED');
    assert.equal(res.headers.allow, 'GET, HEAD');
  }
  // A broken body does not turn the 405 into a 400.
  const bad = await app.inject({ method: 'POST', url: '/v1/campaigns', headers: { 'content-type': 'application/json' }, payload: '{' });
  assertError(bad, 405, 'METHOD_NOT_ALLOWED');
  assertError(await app.inject({ method: 'DELETE', url: '/healthz' }), 405, 'METHOD_NOT_ALLOWED');
  assert.equal((await app.inject({ method: 'HEAD', url: '/v1/campaigns', headers: AUTH })).statusCode, 200);
});

test('storage failure answers 503 UNAVAILABLE with Retry-After, on every route', async () => {
  const { app, repo } = setup({ retryAfterSec: 3 });
  // Fail after auth, then also during auth.
  const ok = await app.inject({ url: '/v1/campaigns', headers: AUTH }); // caches the key
  assert.equal(ok.statusCode, 200);
  repo.failure = new Error('ClickHouse: connection refused');
  for (const url of ['/v1/campaigns', `/v1/campaigns?from=${T}`, '/v1/campaigns/55/clicks', '/v1/campaigns/55/ads', '/v1/ads/1234/clicks']) {
    const res = await app.inject({ url, headers: AUTH });
    assertError(res, 503, 'UNAVAILABLE');
    assert.equal(res.headers['retry-after'], '3');
    assert.ok(!res.body.includes('ClickHouse'), 'cause is not leaked');
  }
  const uncached = await app.inject({ url: '/v1/campaigns', headers: { authorization: `Bearer ${OTHER_KEY}` } });
  assertError(uncached, 503, 'UNAVAILABLE');
});

test('a hung storage call times out into 503', async () => {
  const { app, repo } = setup({ storageTimeoutMs: 20 });
  repo.campaignTotals = () => new Promise(() => {});
  const res = await app.inject({ url: '/v1/campaigns', headers: AUTH });
  assertError(res, 503, 'UNAVAILABLE');
});

test('unexpected errors answer 500 INTERNAL without a stack, and are logged', async () => {
  const { app, repo, logs } = setup();
  // A repository bug: rows that are not an array make the handler throw a TypeError.
  repo.series = async () => null as unknown as [];
  const res = await app.inject({ url: '/v1/campaigns/55/clicks', headers: AUTH });
  assertError(res, 500, 'INTERNAL');
  assert.ok(!/TypeError|at .*\.ts/.test(res.body));
  assert.ok(logs.some((l) => l.includes('"level":50') && l.includes('TypeError')));
});

test('revocation takes effect once the key cache expires', async () => {
  const { app, repo, clock } = setup({ apiKeyCacheTtlMs: 2000 });
  assert.equal((await app.inject({ url: '/v1/campaigns', headers: AUTH })).statusCode, 200);
  const lookups = repo.calls.findApiKey;
  repo.revokeKey(KEY);
  clock.now += 999;
  assert.equal((await app.inject({ url: '/v1/campaigns', headers: AUTH })).statusCode, 200, 'still cached');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(repo.calls.findApiKey, lookups, 'served from cache, a young entry is not re-checked');
  // No request while the entry was past half its TTL: refused once it expires.
  clock.now += 1001;
  assertError(await app.inject({ url: '/v1/campaigns', headers: AUTH }), 401, 'UNAUTHORIZED');
  clock.now += 10_000;
  assertError(await app.inject({ url: '/v1/campaigns', headers: AUTH }), 401, 'UNAUTHORIZED');
});

test('a key in use is re-checked after its answer once past half its TTL: revocation seen before the TTL ends', async () => {
  const { app, repo, clock } = setup({ apiKeyCacheTtlMs: 2000 });
  assert.equal((await app.inject({ url: '/v1/campaigns', headers: AUTH })).statusCode, 200);
  const lookups = repo.calls.findApiKey;
  repo.revokeKey(KEY);
  clock.now += 1500;
  assert.equal((await app.inject({ url: '/v1/campaigns', headers: AUTH })).statusCode, 200, 'answered from the cache');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(repo.calls.findApiKey, lookups! + 1, 'one re-check, after the answer');
  assertError(await app.inject({ url: '/v1/campaigns', headers: AUTH }), 401, 'UNAUTHORIZED');
});

test('a new key works at once, even right after a failed try with it', async () => {
  const { app, repo } = setup();
  const fresh = testApiKey('brand-new');
  const auth = { authorization: `Bearer ${fresh}` };
  assertError(await app.inject({ url: '/v1/campaigns', headers: auth }), 401, 'UNAUTHORIZED');
  assertError(await app.inject({ url: '/v1/campaigns', headers: auth }), 401, 'UNAUTHORIZED');
  assert.equal(repo.calls.findApiKey, 1, 'the failure is remembered');
  repo.addKey(fresh, 7); // minting forgets remembered failures
  assert.equal((await app.inject({ url: '/v1/campaigns', headers: auth })).statusCode, 200);
});

test('a failed key is remembered for the negative TTL only', async () => {
  const { app, repo, clock } = setup({ authGuard: { negativeTtlMs: 1000 } });
  const auth = { authorization: `Bearer ${UNKNOWN_KEY}` };
  for (let i = 0; i < 5; i++) assertError(await app.inject({ url: '/v1/campaigns', headers: auth }), 401, 'UNAUTHORIZED');
  assert.equal(repo.calls.findApiKey, 1);
  clock.now += 1000;
  assertError(await app.inject({ url: '/v1/campaigns', headers: auth }), 401, 'UNAUTHORIZED');
  assert.equal(repo.calls.findApiKey, 2);
});

test('a token that cannot be a minted key is refused before any lookup', async () => {
  const { app, repo } = setup();
  const almost = KEY.slice(0, -1) + (KEY.endsWith('B') ? 'C' : 'B'); // a last character 32 bytes never give
  for (const token of ['junk', 'ak_' + 'a'.repeat(42), 'ak_' + 'a'.repeat(44), KEY.toUpperCase(), 'xk_' + KEY.slice(3), almost]) {
    assertError(await app.inject({ url: '/v1/campaigns', headers: { authorization: `Bearer ${token}` } }), 401, 'UNAUTHORIZED');
  }
  assert.equal(repo.calls.findApiKey ?? 0, 0);
});

test('failed lookups are limited per client: 429 RATE_LIMITED + Retry-After; good keys and other clients unaffected', async () => {
  const { app, repo, clock } = setup({ authGuard: { failureBurst: 3, failuresPerMin: 6 } });
  const from = (remoteAddress: string, authorization: string) => app.inject({ url: '/v1/campaigns', headers: { authorization }, remoteAddress });
  assert.equal((await from('192.0.2.1', `Bearer ${KEY}`)).statusCode, 200, 'cached before the failures');
  for (let i = 0; i < 3; i++) assertError(await from('192.0.2.1', `Bearer ${testApiKey(`junk${i}`)}`), 401, 'UNAUTHORIZED');
  const limited = await from('192.0.2.1', `Bearer ${testApiKey('junk3')}`);
  assertError(limited, 429, 'RATE_LIMITED');
  assert.equal(limited.headers['retry-after'], '10', '6 a minute: one back in 10 s');
  const lookups = repo.calls.findApiKey;
  assertError(await from('192.0.2.1', `Bearer ${OTHER_KEY}`), 429, 'RATE_LIMITED'); // unknown to the cache: no lookup for this client
  assert.equal(repo.calls.findApiKey, lookups);
  assert.equal((await from('192.0.2.1', `Bearer ${KEY}`)).statusCode, 200, 'a cached key is served');
  assertError(await from('192.0.2.1', 'Bearer junk'), 401, 'UNAUTHORIZED'); // costs nothing: not limited
  assert.equal((await from('192.0.2.2', `Bearer ${OTHER_KEY}`)).statusCode, 200, 'other clients unaffected');
  clock.now += 10_000;
  assert.equal((await from('192.0.2.1', `Bearer ${OTHER_KEY}`)).statusCode, 200, 'a good key gives its reservation back');
  assertError(await from('192.0.2.1', `Bearer ${testApiKey('junk4')}`), 401, 'UNAUTHORIZED');
  assertError(await from('192.0.2.1', `Bearer ${testApiKey('junk5')}`), 429, 'RATE_LIMITED');
});

test('per-key rate limit: 429 RATE_LIMITED with Retry-After, other keys unaffected', async () => {
  const { app, clock } = setup({ rateLimitPerSec: 5, rateLimitBurst: 10 });
  for (let i = 0; i < 10; i++) assert.equal((await app.inject({ url: '/v1/campaigns', headers: AUTH })).statusCode, 200);
  const limited = await app.inject({ url: '/v1/campaigns', headers: AUTH });
  assertError(limited, 429, 'RATE_LIMITED');
  assert.equal(limited.headers['retry-after'], '1');
  assert.equal((await app.inject({ url: '/v1/campaigns', headers: { authorization: `Bearer ${OTHER_KEY}` } })).statusCode, 200);
  // Bad keys get 401, not 429, even while the good key is limited.
  assertError(await app.inject({ url: '/v1/campaigns', headers: { authorization: `Bearer ${UNKNOWN_KEY}` } }), 401, 'UNAUTHORIZED');
  clock.now += 200; // one token at 5/s
  assert.equal((await app.inject({ url: '/v1/campaigns', headers: AUTH })).statusCode, 200);
  assertError(await app.inject({ url: '/v1/campaigns', headers: AUTH }), 429, 'RATE_LIMITED');
});

test('default per-key limit is 50/s with a burst of 100', async () => {
  const { app } = setup();
  let ok = 0;
  for (let i = 0; i < 101; i++) if ((await app.inject({ url: '/v1/campaigns', headers: AUTH })).statusCode === 200) ok++;
  assert.equal(ok, 100);
});

test('/metrics: RED metrics labelled by route pattern', async () => {
  const { app } = setup();
  await app.inject({ url: '/v1/ads/1234/clicks', headers: AUTH });
  await app.inject({ url: '/v1/ads/4242/clicks', headers: AUTH });
  await app.inject({ url: '/nope' });
  const res = await app.inject('/metrics');
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain/);
  assert.match(res.body, /adclick_query_requests_total\{route="\/v1\/ads\/:ad_id\/clicks",status="200"\} 1/);
  assert.match(res.body, /adclick_query_requests_total\{route="\/v1\/ads\/:ad_id\/clicks",status="404"\} 1/);
  assert.match(res.body, /adclick_query_requests_total\{route="unmatched",status="404"\} 1/);
  assert.match(res.body, /adclick_query_request_seconds_count\{route="\/v1\/ads\/:ad_id\/clicks"\} 2/);
  assert.ok(!res.body.includes('4242'), 'raw ids are never labels');
});

test('two apps can share one registry', () => {
  const registry = new Registry();
  const repo = new FakeRepository();
  const logger = pino({ level: 'silent' });
  buildQueryApp({ repo, logger, registry });
  assert.doesNotThrow(() => buildQueryApp({ repo, logger, registry }));
});

test('a good key whose cache entry expired is re-checked even when its client spent the failure budget', async () => {
  const { app, repo, clock } = setup({ apiKeyCacheTtlMs: 2000, authGuard: { failureBurst: 2, failuresPerMin: 1 } });
  const from = (authorization: string) => app.inject({ url: '/v1/campaigns', headers: { authorization }, remoteAddress: '192.0.2.9' });
  assert.equal((await from(`Bearer ${KEY}`)).statusCode, 200);
  for (let i = 0; i < 2; i++) assertError(await from(`Bearer ${testApiKey(`junk${i}`)}`), 401, 'UNAUTHORIZED');
  assertError(await from(`Bearer ${testApiKey('junk2')}`), 429, 'RATE_LIMITED');
  clock.now += 2000; // the good key's entry expired; the budget is still spent
  const lookups = repo.calls.findApiKey;
  assert.equal((await from(`Bearer ${KEY}`)).statusCode, 200);
  assert.equal(repo.calls.findApiKey, (lookups ?? 0) + 1, 're-checked in storage');
  repo.revokeKey(KEY);
  clock.now += 2000;
  assertError(await from(`Bearer ${KEY}`), 401, 'UNAUTHORIZED');
  assertError(await from(`Bearer ${KEY}`), 401, 'UNAUTHORIZED');
});

test('storage work the queue refused or dropped answers 503 without a warning per request; a storage failure still warns', async () => {
  const { app, repo, logs } = setup();
  const queue = new StorageQueue({ maxQueued: 1 });
  let release!: () => void;
  const busy = queue.run(() => new Promise<void>((r) => { release = r; })); // the engine is busy
  queue.run(async () => undefined, { lane: 'interactive' }).catch(() => undefined); // and the lane full
  repo.campaignTotals = () => queue.run(async () => [], { lane: 'interactive' });
  const before = logs.filter((l) => l.includes('storage unavailable')).length;
  for (let i = 0; i < 5; i++) assertError(await app.inject({ url: '/v1/campaigns', headers: AUTH }), 503, 'UNAVAILABLE');
  assert.equal(logs.filter((l) => l.includes('storage unavailable')).length, before, 'refusals are counted in metrics, not logged one by one');
  repo.campaignTotals = async () => { throw new Error('connect ECONNREFUSED'); };
  assertError(await app.inject({ url: '/v1/campaigns', headers: AUTH }), 503, 'UNAVAILABLE');
  assert.equal(logs.filter((l) => l.includes('storage unavailable')).length, before + 1);
  release();
  await busy;
});

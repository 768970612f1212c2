// Property-based / fuzz tests of the advertiser query API (API.md "Advertiser query API"),
// in process with the fake repository. Arbitrary query strings, path segments, methods and
// Authorization headers: never a 500, only documented statuses and registry error bodies;
// every 200 series is dense, ordered, bounded and totals its points.
//   FUZZ_SEED=<n> pins the seed; FUZZ_SCALE=<x> multiplies every numRuns.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { buildQueryApp, type QueryAppOptions } from '../../../src/query/app.ts';
import { ERRORS } from '../../../src/shared/errors.ts';
import { FakeRepository, testApiKey } from '../query/fake-repository.ts';

const T = Date.UTC(2026, 10, 27, 10, 0, 0);
const NOW = T + 90 * 60_000;
const KEY = testApiKey('advertiser7');
const OTHER_KEY = testApiKey('advertiser8');
const REVOKED = testApiKey('revoked');
const G_MS: Record<string, number> = { '1m': 60_000, '5m': 300_000, '1h': 3_600_000 };
const MAX_WINDOWS = 10_000;
const MAX_TIME_MS = 253_402_300_799_999;
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const params = (n: number) => ({ numRuns: Math.max(1, Math.round(n * SCALE)), ...(SEED === undefined ? {} : { seed: SEED }) });

const STATUSES = new Set([200, 400, 401, 404, 405, 429]);

let cases = 0;
after(() => console.log(`fuzz: query ${cases} cases`));

function setup(options: Partial<QueryAppOptions> = { rateLimitPerSec: 1e9, rateLimitBurst: 1e9, ipRateLimitPerSec: 1e9, ipRateLimitBurst: 1e9 }) {
  const repo = new FakeRepository();
  repo.addKey(KEY, 7);
  repo.addKey(OTHER_KEY, 8);
  repo.addKey(REVOKED, 7);
  repo.revokeKey(REVOKED);
  repo.addAd(7, 55, 1234);
  repo.addAd(7, 55, 1235);
  repo.addAd(7, 56, 2000);
  repo.addAd(8, 99, 9999);
  // Clicks spread over two days before now, a few far in the past and future.
  for (let i = 0; i < 400; i++) repo.click([1234, 1235, 2000, 9999][i % 4]!, NOW - ((i * 7_919_113) % (2 * 86_400_000)), 1 + (i % 3));
  repo.click(1234, 0, 5);
  repo.click(1234, MAX_TIME_MS - 1, 7);
  repo.watermarkMs = NOW - 120_000;
  const clock = { now: NOW };
  const app = buildQueryApp({ repo, logger: pino({ level: 'silent' }), clock: () => clock.now, options, registry: new Registry() });
  return { app, repo, clock };
}
type Setup = ReturnType<typeof setup>;
type Res = Awaited<ReturnType<Setup['app']['inject']>>;

function assertErrorBody(res: Res, ctx: string): { code: string; message: string; field?: string } {
  assert.match(String(res.headers['content-type']), /^application\/json/, ctx);
  const body = JSON.parse(res.body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(body), ['error'], ctx);
  const e = body.error as Record<string, unknown>;
  for (const k of Object.keys(e)) assert.ok(['code', 'message', 'field'].includes(k), `${ctx}: unexpected key ${k}`);
  assert.ok(typeof e.code === 'string' && Object.hasOwn(ERRORS, e.code), `${ctx}: code ${String(e.code)} not in the registry`);
  assert.notEqual(e.code, 'INTERNAL', ctx);
  assert.ok(typeof e.message === 'string' && e.message.length > 0, ctx);
  if ('field' in e) assert.equal(typeof e.field, 'string', ctx);
  const spec = ERRORS[e.code as keyof typeof ERRORS];
  assert.equal(res.statusCode, spec.status, `${ctx}: ${String(e.code)} must be ${spec.status}`);
  if (spec.retryable) assert.match(String(res.headers['retry-after']), /^[1-9]\d*$/, `${ctx}: Retry-After`);
  if (e.code === 'UNAUTHORIZED') assert.match(String(res.headers['www-authenticate']), /^Bearer/, ctx);
  if (e.code === 'METHOD_NOT_ALLOWED') assert.equal(res.headers.allow, 'GET, HEAD', ctx);
  return e as { code: string; message: string; field?: string };
}

const ISO_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

interface Point { window_start: string; clicks: number; final: boolean }
interface Series {
  campaign_id: number; ad_id?: number; granularity: string; from: string; to: string;
  complete_before: string | null; total_clicks: number; points: Point[];
}

/** Dense, ordered, bounded, totals its points — and the total is what the fake store holds. */
function assertSeries(s: Setup, body: Series, ctx: string, scope: { campaignId: number; adId?: number }): void {
  const g = G_MS[body.granularity];
  assert.ok(g, `${ctx}: granularity ${body.granularity}`);
  assert.match(body.from, ISO_Z, ctx);
  assert.match(body.to, ISO_Z, ctx);
  const from = Date.parse(body.from);
  const to = Date.parse(body.to);
  assert.equal(from % g, 0, `${ctx}: from aligned`);
  assert.equal(to % g, 0, `${ctx}: to aligned`);
  assert.ok(to > from, `${ctx}: non-empty range`);
  assert.equal(body.points.length, (to - from) / g, `${ctx}: dense`);
  assert.ok(body.points.length <= MAX_WINDOWS, `${ctx}: at most ${MAX_WINDOWS} windows`);
  let total = 0;
  body.points.forEach((p, i) => {
    assert.match(p.window_start, ISO_Z, ctx);
    assert.equal(Date.parse(p.window_start), from + i * g, `${ctx}: point ${i} in order`);
    assert.ok(Number.isSafeInteger(p.clicks) && p.clicks >= 0, ctx);
    total += p.clicks;
  });
  assert.equal(body.total_clicks, total, `${ctx}: total = sum of points`);
  let expected = 0;
  for (const c of s.repo.clicks) {
    if (c.campaignId !== scope.campaignId || (scope.adId !== undefined && c.adId !== scope.adId)) continue;
    if (c.atMs >= from && c.atMs < to) expected += c.count ?? 1;
  }
  assert.equal(total, expected, `${ctx}: total matches the store`);
}

interface CampaignRange {
  campaigns: { campaign_id: number; total_clicks: number; clicks: number }[];
  granularity: string; from: string; to: string; complete_before: string | null;
}

/** A ranged campaign list: aligned bounded range, every own campaign with its clicks as the store holds them. */
function assertCampaignRange(s: Setup, body: CampaignRange, ctx: string, campaigns: number): void {
  assert.deepEqual(Object.keys(body), ['campaigns', 'granularity', 'from', 'to', 'complete_before'], ctx);
  const g = G_MS[body.granularity];
  assert.ok(g, `${ctx}: granularity ${body.granularity}`);
  assert.match(body.from, ISO_Z, ctx);
  assert.match(body.to, ISO_Z, ctx);
  assert.ok(body.complete_before === null || ISO_Z.test(body.complete_before), ctx);
  const from = Date.parse(body.from);
  const to = Date.parse(body.to);
  assert.equal(from % g, 0, `${ctx}: from aligned`);
  assert.equal(to % g, 0, `${ctx}: to aligned`);
  assert.ok(to > from, `${ctx}: non-empty range`);
  assert.ok((to - from) / g <= MAX_WINDOWS, `${ctx}: at most ${MAX_WINDOWS} windows`);
  assert.equal(body.campaigns.length, campaigns, ctx);
  for (const c of body.campaigns) {
    let expected = 0;
    for (const k of s.repo.clicks) if (k.campaignId === c.campaign_id && k.atMs >= from && k.atMs < to) expected += k.count ?? 1;
    assert.equal(c.clicks, expected, `${ctx}: campaign ${c.campaign_id} clicks match the store`);
    assert.ok(Number.isSafeInteger(c.clicks) && c.clicks >= 0 && c.clicks <= c.total_clicks, ctx);
  }
}

// ------------------------------------------------------------------ generators

const epochMs = fc.oneof(
  fc.integer({ min: NOW - 3 * 86_400_000, max: NOW + 86_400_000 }),
  fc.integer({ min: 0, max: MAX_TIME_MS }),
  fc.constantFrom(0, 1, 59_999, 60_000, NOW, T, MAX_TIME_MS, MAX_TIME_MS + 1, 999_999_999_999_999, 2 ** 53, -1),
);

/** ISO-like strings: valid ones from real dates, and near-misses built from parts. */
const isoLike = fc.oneof(
  epochMs.filter((ms) => ms >= 0 && ms <= MAX_TIME_MS).map((ms) => new Date(ms).toISOString()),
  fc.record({
    y: fc.oneof(fc.integer({ min: 0, max: 9999 }).map((n) => String(n).padStart(4, '0')), fc.constantFrom('20260', '-2026', '+002026', '99')),
    mo: fc.integer({ min: 0, max: 13 }),
    d: fc.integer({ min: 0, max: 32 }),
    h: fc.integer({ min: 0, max: 25 }),
    mi: fc.integer({ min: 0, max: 61 }),
    s: fc.option(fc.integer({ min: 0, max: 61 })),
    frac: fc.option(fc.stringMatching(/^[0-9]{1,12}$/)),
    sep: fc.constantFrom('T', 't', ' ', '_'),
    off: fc.constantFrom('Z', 'z', '+00:00', '-00:00', '+05:30', '-23:59', '+24:00', '+0530', ' 05:30', '', '+5', 'UTC'),
  }).map(({ y, mo, d, h, mi, s, frac, sep, off }) => {
    const p = (n: number) => String(n).padStart(2, '0');
    return `${y}-${p(mo)}-${p(d)}${sep}${p(h)}:${p(mi)}${s === null ? '' : `:${p(s)}`}${frac === null ? '' : `.${frac}`}${off}`;
  }),
);

const timeValue = fc.oneof(
  { weight: 3, arbitrary: epochMs.map(String) },
  { weight: 3, arbitrary: isoLike },
  { weight: 1, arbitrary: fc.double().map(String) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', 'now', 'NaN', 'Infinity', '1e12', '0x1F', '+1764237600000', '01764237600000', '１７６４２３７６００００', '1764237600000 ', '2026-11-27', '2026-11-27T10:00:00', '2026-02-29T00:00:00Z', '2028-02-29T00:00:00Z', '9'.repeat(400)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
);

const granularityValue = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('1m', '5m', '1h') },
  { weight: 1, arbitrary: fc.constantFrom('', '1M', '60s', '1d', '15m', 'm', '1m ', '1h\u0000', 'hour', '__proto__', 'constructor', 'toString') },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
);

const limitValue = fc.oneof(
  fc.integer({ min: -5, max: 1_005 }).map(String),
  fc.constantFrom('', '0', '1', '1000', '1001', '10000000', '99999999', '1.5', '1e3', '+5', ' 5', '0x10', '-0', '00010', '9'.repeat(30)),
  fc.string({ maxLength: 10 }),
);

type Pair = [string, string];
const queryPair: fc.Arbitrary<Pair> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.constant('from'), timeValue) },
  { weight: 3, arbitrary: fc.tuple(fc.constant('to'), timeValue) },
  { weight: 3, arbitrary: fc.tuple(fc.constant('granularity'), granularityValue) },
  { weight: 2, arbitrary: fc.tuple(fc.constant('limit'), limitValue) },
  { weight: 1, arbitrary: fc.tuple(fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('from[]', 'to[0]', '__proto__', 'constructor', 'FROM', 'from ')), fc.string({ maxLength: 10 })) },
);

/** Mostly-valid parameter sets, so that 200 answers are common enough to check their shape. */
const plausiblePairs: fc.Arbitrary<Pair[]> = fc
  .record({
    from: fc.integer({ min: NOW - 3 * 86_400_000, max: NOW }),
    len: fc.oneof(fc.integer({ min: 1, max: 2 * 86_400_000 }), fc.integer({ min: 1, max: 30 * 86_400_000 })),
    g: fc.constantFrom('1m', '5m', '1h'),
    iso: fc.boolean(),
    omit: fc.subarray(['from', 'to', 'granularity']),
    limit: fc.option(fc.integer({ min: 1, max: 1000 })),
  })
  .map(({ from, len, g, iso, omit, limit }) => {
    const f = (ms: number) => (iso ? new Date(ms).toISOString() : String(ms));
    const all: Pair[] = [['from', f(from)], ['to', f(from + len)], ['granularity', g]];
    if (limit !== null) all.push(['limit', String(limit)]);
    return all.filter(([k]) => !omit.includes(k));
  });

/** The query string: usually encoded, sometimes raw (unencoded '+', stray '%', bare keys). */
const queryString = fc
  .record({
    pairs: fc.oneof(fc.array(queryPair, { maxLength: 6 }), plausiblePairs),
    raw: fc.boolean(),
    extra: fc.oneof({ weight: 5, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('&', '&&', '&from', '&=x', '&%', '&%zz=1', '&a=%E0%A4%A', '#frag') }),
  })
  .map(({ pairs, raw, extra }) => {
    const enc = raw ? (x: string) => x.replace(/[#&\s]/g, (ch) => encodeURIComponent(ch)) : encodeURIComponent;
    return { pairs, qs: pairs.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&') + extra };
  });

const idSegment = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('55', '56', '99', '1234', '1235', '2000', '9999', '1', '12345') },
  { weight: 1, arbitrary: fc.constantFrom('0', '-1', '055', '1e3', '0x10', '1.0', '9007199254740991', '9007199254740992', '99999999999999999999', '%20', '%2F', '..', '.', '%', '%zz', '%00', '１２３', '55%00', '55;x', 'x'.repeat(65), '5'.repeat(64)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }).map(encodeURIComponent) },
  { weight: 1, arbitrary: fc.nat().map(String) },
);

/**
 * Ids that cannot reach the route: dot segments (the URL is normalised first), undecodable
 * percent-escapes and over-long segments (answered 404 before routing, by design).
 */
function routable(id: string): boolean {
  if (id === '.' || id === '..' || id.length > 64) return false;
  try {
    decodeURIComponent(id);
    return true;
  } catch {
    return false;
  }
}
const dotted = <K extends string>(kind: K, id: string) => (routable(id) ? kind : ('other' as const));
const route = fc.oneof(
  { weight: 3, arbitrary: idSegment.map((id) => ({ kind: dotted('campaign-series', id), id, path: `/v1/campaigns/${id}/clicks` })) },
  { weight: 3, arbitrary: idSegment.map((id) => ({ kind: dotted('campaign-ads', id), id, path: `/v1/campaigns/${id}/ads` })) },
  { weight: 3, arbitrary: idSegment.map((id) => ({ kind: dotted('ad-series', id), id, path: `/v1/ads/${id}/clicks` })) },
  { weight: 2, arbitrary: fc.constant({ kind: 'campaigns' as const, id: '', path: '/v1/campaigns' }) },
  { weight: 1, arbitrary: fc.array(fc.oneof(idSegment, fc.constantFrom('v1', 'campaigns', 'ads', 'clicks', '', 'v2', 'healthz', 'readyz', 'metrics')), { maxLength: 5 }).map((segs) => ({ kind: 'other' as const, id: '', path: '/' + segs.join('/') })) },
);

const authHeader = fc.oneof(
  { weight: 6, arbitrary: fc.constant(`Bearer ${KEY}`) },
  { weight: 1, arbitrary: fc.constantFrom(`Bearer ${OTHER_KEY}`, `bearer ${KEY}`, `BEARER   ${KEY}`) },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constantFrom(undefined, '', 'Bearer', 'Bearer ', `Bearer ${KEY} `, `Bearer  ${KEY}x`, `Basic ${KEY}`, `Bearer ${REVOKED}`, `Bearer ${KEY},Bearer ${KEY}`, `Bearer ${'A'.repeat(600)}`, 'Bearer ====', 'Token abc'),
      fc.string({ unit: fc.constantFrom(...'Bearer abcdefXYZ0123456789-._~+/= '.split('')), maxLength: 60 }),
    ),
  },
);

const method = fc.oneof({ weight: 8, arbitrary: fc.constant('GET') }, { weight: 2, arbitrary: fc.constantFrom('HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS') });

// ------------------------------------------------------------------ properties

const VALID_AUTH = new Set([`Bearer ${KEY}`, `bearer ${KEY}`, `BEARER   ${KEY}`, `Bearer ${OTHER_KEY}`]);
const OWN: Record<string, Record<string, { campaignId: number; adId?: number }>> = {
  [KEY]: { 'campaign:55': { campaignId: 55 }, 'campaign:56': { campaignId: 56 }, 'ad:1234': { campaignId: 55, adId: 1234 }, 'ad:1235': { campaignId: 55, adId: 1235 }, 'ad:2000': { campaignId: 56, adId: 2000 } },
  [OTHER_KEY]: { 'campaign:99': { campaignId: 99 }, 'ad:9999': { campaignId: 99, adId: 9999 } },
};

test('query: arbitrary routes, ids, parameters, methods and keys — never 500, documented answers only', async () => {
  const s = setup();
  const seen = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(route, queryString, authHeader, method, async (r, { pairs, qs }, auth, m) => {
      const url = qs ? `${r.path}?${qs}` : r.path;
      const headers: Record<string, string> = auth === undefined ? {} : { authorization: auth };
      let res: Res;
      try {
        res = await s.app.inject({ method: m as 'GET', url, headers });
      } catch (err) {
        // light-my-request refuses some URLs itself; that is the harness, not the server.
        if (err instanceof TypeError && /url|path|character/i.test(err.message)) return;
        throw err;
      }
      cases++;
      const ctx = `${m} ${url} auth=${JSON.stringify(auth)}`;
      assert.notEqual(res.statusCode, 500, `${ctx}: 500 ${res.body}`);
      assert.ok(STATUSES.has(res.statusCode), `${ctx}: status ${res.statusCode} ${res.body}`);
      const outcome = res.statusCode === 200 ? `200 ${r.kind}` : m === 'HEAD' ? `${res.statusCode}` : assertErrorBody(res, ctx).code;
      seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
      if (m === 'HEAD') return; // no body to inspect
      if (res.statusCode !== 200) {
        const e = assertErrorBody(res, ctx);
        if (e.code === 'INVALID_FIELD') assert.ok(['from', 'to', 'granularity', 'limit'].includes(e.field ?? ''), `${ctx}: field ${e.field}`);
        const isV1 = r.kind !== 'other';
        // Authentication comes first: without a valid key a /v1 route says nothing else.
        if (isV1 && m === 'GET' && !VALID_AUTH.has(auth ?? '')) assert.equal(e.code, 'UNAUTHORIZED', ctx);
        if (isV1 && m !== 'GET') assert.equal(e.code, 'METHOD_NOT_ALLOWED', ctx);
        return;
      }
      assert.equal(m, 'GET', ctx);
      if (r.kind === 'other') return; // may normalise to a real route ('/v1/x/..', '//v1/campaigns')
      assert.ok(VALID_AUTH.has(auth ?? ''), `${ctx}: 200 without a valid key`);
      const key = auth!.includes(OTHER_KEY) ? OTHER_KEY : KEY;
      const body = res.json() as Record<string, unknown>;
      if (r.kind === 'campaigns') {
        const list = body.campaigns as { campaign_id: number; total_clicks: number }[];
        const own = Object.keys(OWN[key]!).filter((k) => k.startsWith('campaign:')).map((k) => Number(k.slice(9)));
        assert.deepEqual(list.map((c) => c.campaign_id), own.sort((a, b) => a - b), ctx);
        const ranged = pairs.some(([k]) => k === 'from' || k === 'to');
        if (!ranged) {
          // No range asked: exactly the v1 shape, whatever else the query string holds.
          assert.deepEqual(Object.keys(body), ['campaigns'], ctx);
          for (const c of list) assert.deepEqual(Object.keys(c), ['campaign_id', 'total_clicks'], ctx);
          return;
        }
        for (const name of ['from', 'to', 'granularity']) assert.ok(pairs.filter(([k]) => k === name).length <= 1, `${ctx}: repeated ${name} answered 200`);
        assertCampaignRange(s, body as unknown as CampaignRange, ctx, own.length);
        seen.set('200 campaigns ranged', (seen.get('200 campaigns ranged') ?? 0) + 1);
        return;
      }
      const scope = OWN[key]![`${r.kind === 'ad-series' ? 'ad' : 'campaign'}:${r.id}`];
      assert.ok(scope, `${ctx}: 200 for an id the key does not own`);
      // Repeated parameters are refused, never silently picked.
      for (const name of ['from', 'to', 'granularity']) assert.ok(pairs.filter(([k]) => k === name).length <= 1, `${ctx}: repeated ${name} answered 200`);
      if (r.kind === 'campaign-ads') {
        const ads = body.ads as { ad_id: number; clicks: number }[];
        const limitRaw = pairs.filter(([k]) => k === 'limit');
        const limit = limitRaw.length ? Number(limitRaw[0]![1]) : 10;
        assert.ok(ads.length <= limit && ads.length <= 1000, ctx);
        for (let i = 1; i < ads.length; i++) {
          const a = ads[i - 1]!, b = ads[i]!;
          assert.ok(a.clicks > b.clicks || (a.clicks === b.clicks && a.ad_id < b.ad_id), `${ctx}: ads ranked`);
        }
        assert.match(String(body.from), ISO_Z, ctx);
        assert.match(String(body.to), ISO_Z, ctx);
        return;
      }
      assertSeries(s, body as unknown as Series, ctx, scope);
      if (r.kind === 'ad-series') assert.equal(body.ad_id, scope.adId, ctx);
      assert.equal(body.campaign_id, scope.campaignId, ctx);
    }),
    params(2000),
  );
  console.log(`query outcomes: ${JSON.stringify(Object.fromEntries(seen))}`);
  if (SCALE >= 1) for (const o of ['200 campaign-series', '200 ad-series', '200 campaign-ads', '200 campaigns', '200 campaigns ranged', 'INVALID_FIELD', 'RANGE_TOO_LARGE', 'NOT_FOUND', 'UNAUTHORIZED', 'METHOD_NOT_ALLOWED']) {
    assert.ok(seen.has(o), `outcome ${o} never generated`);
  }
});

test('query: well-formed ranges give exactly the windows API.md promises, or RANGE_TOO_LARGE', async () => {
  const s = setup();
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: MAX_TIME_MS - 1 }),
      fc.oneof(fc.integer({ min: 1, max: 12 * 3_600_000 }), fc.integer({ min: 1, max: 2 * 10_000 * 3_600_000 })),
      fc.constantFrom('1m', '5m', '1h'),
      fc.constantFrom('epoch', 'iso', 'offset'),
      fc.constantFrom('campaigns/55', 'ads/1234', 'campaigns'),
      async (fromMs, len, g, form, target) => {
        const toMs = Math.min(fromMs + len, MAX_TIME_MS);
        fc.pre(toMs > fromMs);
        const fmt = (ms: number) => {
          if (form === 'epoch') return String(ms);
          if (form === 'iso') return new Date(ms).toISOString();
          // same instant written with a +05:30 offset
          const shifted = new Date(ms + 330 * 60_000).toISOString().replace('Z', '+05:30');
          return ms + 330 * 60_000 > MAX_TIME_MS ? new Date(ms).toISOString() : shifted;
        };
        const path = target === 'campaigns' ? '/v1/campaigns' : `/v1/${target}/clicks`;
        const url = `${path}?from=${encodeURIComponent(fmt(fromMs))}&to=${encodeURIComponent(fmt(toMs))}&granularity=${g}`;
        const res = await s.app.inject({ url, headers: { authorization: `Bearer ${KEY}` } });
        cases++;
        const ctx = `GET ${url}`;
        const size = G_MS[g]!;
        const from = Math.floor(fromMs / size) * size;
        const to = Math.ceil(toMs / size) * size;
        const windows = (to - from) / size;
        if (to > MAX_TIME_MS) {
          // The last window of year 9999 ends in year 10000: no 4-digit ISO `to` can name it.
          const e = assertErrorBody(res, ctx);
          assert.deepEqual([e.code, e.field], ['INVALID_FIELD', 'to'], ctx);
          return;
        }
        if (windows > MAX_WINDOWS) {
          assert.equal(assertErrorBody(res, ctx).code, 'RANGE_TOO_LARGE', ctx);
          return;
        }
        assert.equal(res.statusCode, 200, `${ctx}: ${res.body}`);
        if (target === 'campaigns') {
          const list = res.json() as CampaignRange;
          assert.equal(Date.parse(list.from), from, ctx);
          assert.equal(Date.parse(list.to), to, ctx);
          assertCampaignRange(s, list, ctx, 2);
          // The promise of the addition: each campaign's clicks = its series total for the same range.
          const same = await s.app.inject({ url: url.replace('/v1/campaigns?', '/v1/campaigns/55/clicks?'), headers: { authorization: `Bearer ${KEY}` } });
          assert.equal(list.campaigns.find((c) => c.campaign_id === 55)!.clicks, (same.json() as Series).total_clicks, ctx);
          return;
        }
        const body = res.json() as Series;
        assert.equal(Date.parse(body.from), from, ctx);
        assert.equal(Date.parse(body.to), to, ctx);
        assertSeries(s, body, ctx, target === 'ads/1234' ? { campaignId: 55, adId: 1234 } : { campaignId: 55 });
      },
    ),
    params(600),
  );
});

test('query: per-key rate limit — invalid keys always 401 (never 429), valid keys 429 once the burst is spent', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.constantFrom('valid', 'other', 'invalid', 'missing'), { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 10 }), async (who, burst) => {
      const s = setup({ rateLimitPerSec: 1, rateLimitBurst: burst });
      const used = new Map<string, number>();
      for (const w of who) {
        const auth = w === 'valid' ? `Bearer ${KEY}` : w === 'other' ? `Bearer ${OTHER_KEY}` : w === 'invalid' ? 'Bearer nope' : undefined;
        const res = await s.app.inject({ url: '/v1/campaigns', headers: auth ? { authorization: auth } : {} });
        cases++;
        const ctx = `${w} after ${JSON.stringify([...used])} burst ${burst}`;
        assert.ok(STATUSES.has(res.statusCode), ctx);
        if (!auth || w === 'invalid') {
          assert.equal(assertErrorBody(res, ctx).code, 'UNAUTHORIZED', ctx);
          continue;
        }
        const n = (used.get(w) ?? 0) + 1;
        used.set(w, n);
        if (n <= burst) assert.equal(res.statusCode, 200, ctx);
        else assert.equal(assertErrorBody(res, ctx).code, 'RATE_LIMITED', ctx);
      }
    }),
    params(200),
  );
});

// Issue 16, junk keys in the fuzzers: a bearer token that no `adclick keys create` could have
// printed (wrong prefix, length, alphabet, or a last character 32 bytes cannot end in) is
// 401 without any storage lookup, and a well-formed unknown one costs at most one lookup
// per token (the negative cache) until the client's failed-lookup budget answers 429.
test('query: junk bearer tokens — malformed ones never reach storage; well-formed unknown ones at most once each', async () => {
  const s = setup();
  const b64 = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split(''));
  const wellFormed = fc.tuple(fc.string({ unit: b64, minLength: 42, maxLength: 42 }), fc.constantFrom(...'AEIMQUYcgkosw048'.split(''))).map(([a, b]) => `ak_${a}${b}`);
  const malformed = fc.oneof(
    fc.string({ unit: b64, minLength: 1, maxLength: 80 }).filter((t) => !/^ak_[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/.test(t)),
    fc.tuple(fc.string({ unit: b64, minLength: 42, maxLength: 42 }), fc.constantFrom(...'BCDFbdf159-_'.split(''))).map(([a, b]) => `ak_${a}${b}`),
    wellFormed.map((k) => k.slice(0, -1)),
    wellFormed.map((k) => `${k}A`),
    wellFormed.map((k) => k.replace('ak_', 'ak-')),
  );
  const seenWellFormed = new Set<string>();
  await fc.assert(
    fc.asyncProperty(fc.oneof(malformed.map((t) => ({ t, ok: false })), wellFormed.map((t) => ({ t, ok: true }))), async ({ t, ok }) => {
      const before = s.repo.calls.findApiKey ?? 0;
      const res = await s.app.inject({ url: '/v1/campaigns', headers: { authorization: `Bearer ${t}` }, remoteAddress: '2001:db8::1' });
      const lookups = (s.repo.calls.findApiKey ?? 0) - before;
      assert.ok(res.statusCode === 401 || res.statusCode === 429, `${t}: ${res.statusCode}`);
      if (!ok) assert.equal(lookups, 0, `malformed ${t} reached storage`);
      else {
        assert.ok(lookups <= (seenWellFormed.has(t) ? 0 : 1), `${t}: ${lookups} lookups`);
        seenWellFormed.add(t);
      }
    }),
    { numRuns: 300 },
  );
});

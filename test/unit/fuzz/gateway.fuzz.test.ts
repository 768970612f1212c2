// Property-based / fuzz tests of the click gateway (API.md "Click ingestion"), in process
// with fakes. Every request ends in a documented status with a registry error body, and
// a 202 "accepted" happens exactly for a click that really verifies, with exactly one
// record published. The expected answer comes from an independent oracle written from
// API.md, not from src/gateway/click-validation.ts.
//   FUZZ_SEED=<n> pins the seed; FUZZ_SCALE=<x> multiplies every numRuns.
import { after, test } from 'node:test';
import { JsonDepthScanner } from '../../../src/shared/json-depth.ts';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { pino } from 'pino';
import { buildGatewayApp } from '../../../src/gateway/app.ts';
import { ERRORS } from '../../../src/shared/errors.ts';
import { ClickEvent } from '../../../src/shared/proto.ts';
import { createRegistry } from '../../../src/shared/metrics.ts';
import { FakeDedup, FakeLimiter, FakePublisher } from '../gateway/fakes.ts';

const NOW = 1_764_237_600_000;
const MAX_AGE = 24 * 3600_000;
const MAX_SKEW = 300_000;
const MAX_BODY = 4096;
const MAX_BATCH_BODY = 1024 * 1024;
const MAX_BATCH = 1000;
const KEYS = new Map([['k1', 'secret-one'], ['k2', 'secret-two']]);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
const params = (n: number) => ({ numRuns: runs(n), ...(SEED === undefined ? {} : { seed: SEED }) });

const SINGLE_STATUSES = new Set([202, 400, 401, 413, 415, 422, 429, 503]);
const BATCH_STATUSES = new Set([200, 400, 413, 415, 429, 503]);
const ITEM_STATUSES = new Set(['accepted', 'duplicate', 'rejected']);

let cases = 0;
after(() => console.log(`fuzz: gateway ${cases} cases`));

// ------------------------------------------------------------------ app with fakes

function setup() {
  const publisher = new FakePublisher();
  const dedup = new FakeDedup();
  const limiter = new FakeLimiter();
  const app = buildGatewayApp({
    options: {
      signingKeys: KEYS, maxClickAgeMs: MAX_AGE, maxClockSkewMs: MAX_SKEW, maxBodyBytes: MAX_BODY,
      maxBatchBodyBytes: MAX_BATCH_BODY, maxBatchClicks: MAX_BATCH, trustedProxies: [], retryAfterSec: 2,
      ipHashKey: 'ip-key', gatewayId: 'fuzz-gw',
    },
    publisher, dedup, rateLimiter: limiter, logger: pino({ level: 'silent' }), registry: createRegistry('gateway', false), now: () => NOW,
  });
  /** Fresh state between runs of one property (the app itself is reused). */
  const reset = () => {
    publisher.records.length = 0;
    publisher.mode = 'ok';
    dedup.keys.clear();
    limiter.deny = false;
    limiter.ips.length = 0;
  };
  return { app, publisher, dedup, limiter, reset };
}
type Setup = ReturnType<typeof setup>;

const JSON_CT = { 'content-type': 'application/json' };

async function post(s: Setup, url: string, payload: string | Buffer, headers: Record<string, string> = JSON_CT) {
  cases++;
  return s.app.inject({ method: 'POST', url, payload, headers });
}

type Res = Awaited<ReturnType<typeof post>>;

/** Exactly `{error:{code,message[,field]}}`, code in the registry, status as registered. */
function assertErrorBody(res: Res, ctx: string): { code: string; message: string; field?: string } {
  assert.match(String(res.headers['content-type']), /^application\/json/, ctx);
  const body = JSON.parse(res.body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(body), ['error'], ctx);
  const e = body.error as Record<string, unknown>;
  assertErrorObject(e, ctx);
  const spec = ERRORS[e.code as keyof typeof ERRORS];
  assert.equal(res.statusCode, spec.status, `${ctx}: ${String(e.code)} must be ${spec.status}`);
  if (spec.retryable) assert.match(String(res.headers['retry-after']), /^[1-9]\d*$/, `${ctx}: Retry-After`);
  return e as { code: string; message: string; field?: string };
}

function assertErrorObject(e: Record<string, unknown>, ctx: string): void {
  assert.equal(typeof e, 'object', ctx);
  for (const k of Object.keys(e)) assert.ok(['code', 'message', 'field'].includes(k), `${ctx}: unexpected key ${k}`);
  assert.equal(typeof e.code, 'string', ctx);
  assert.ok(Object.hasOwn(ERRORS, e.code as string), `${ctx}: code ${String(e.code)} not in the registry`);
  assert.notEqual(e.code, 'INTERNAL', `${ctx}: INTERNAL reached the caller`);
  assert.equal(typeof e.message, 'string', ctx);
  assert.ok((e.message as string).length > 0, ctx);
  if ('field' in e) assert.equal(typeof e.field, 'string', ctx);
}

function assertSingle(res: Res, ctx: string): void {
  assert.notEqual(res.statusCode, 500, `${ctx}: 500 ${res.body}`);
  assert.ok(SINGLE_STATUSES.has(res.statusCode), `${ctx}: status ${res.statusCode}`);
  if (res.statusCode === 202) {
    const body = res.json() as { status: string };
    assert.deepEqual(Object.keys(body), ['status'], ctx);
    assert.ok(body.status === 'accepted' || body.status === 'duplicate', ctx);
  } else {
    assertErrorBody(res, ctx);
  }
}

interface BatchResult { impression_id: string | null; status: string; error?: Record<string, unknown> }

function assertBatch(res: Res, ctx: string, inputLength?: number): BatchResult[] | null {
  assert.notEqual(res.statusCode, 500, `${ctx}: 500 ${res.body}`);
  assert.ok(BATCH_STATUSES.has(res.statusCode), `${ctx}: status ${res.statusCode}`);
  if (res.statusCode !== 200) {
    assertErrorBody(res, ctx);
    return null;
  }
  const body = res.json() as { results: BatchResult[] };
  assert.deepEqual(Object.keys(body), ['results'], ctx);
  assert.ok(Array.isArray(body.results), ctx);
  if (inputLength !== undefined) assert.equal(body.results.length, inputLength, `${ctx}: one result per input`);
  for (const r of body.results) {
    assert.ok(ITEM_STATUSES.has(r.status), `${ctx}: item status ${r.status}`);
    assert.ok(r.impression_id === null || typeof r.impression_id === 'string', ctx);
    if (r.status === 'rejected') {
      assert.deepEqual(Object.keys(r).sort(), ['error', 'impression_id', 'status'], ctx);
      assertErrorObject(r.error!, ctx);
    } else {
      assert.deepEqual(Object.keys(r).sort(), ['impression_id', 'status'], ctx);
    }
  }
  return body.results;
}

// ------------------------------------------------------------------ the oracle (from API.md)

const ID_RE = /^[A-Za-z0-9._:-]+$/;
const KEY_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

type Verdict =
  | { ok: true; key: string }
  | { ok: false; code: 'INVALID_FIELD'; fields: Set<string> }
  | { ok: false; code: 'UNKNOWN_KEY' | 'SIGNATURE_INVALID' | 'TIMESTAMP_OUT_OF_RANGE' };

function canonical(c: Record<string, unknown>, eventType: string): string {
  // Objects never reach a real signature check (they are INVALID_FIELD); printing a deeply
  // nested array would only overflow the stack here.
  const s = (v: unknown) => (typeof v === 'object' && v !== null ? '[object]' : String(v));
  return `v1|${s(c.key_id)}|${eventType}|${s(c.impression_id)}|${s(c.ad_id)}|${s(c.campaign_id)}|${s(c.advertiser_id)}|${s(c.user_id)}|${s(c.timestamp)}`;
}

function hmac(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text).digest('hex');
}

/** What API.md says the gateway must answer for one parsed click body. */
function judge(v: unknown): Verdict {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, code: 'INVALID_FIELD', fields: new Set(['']) };
  const c = v as Record<string, unknown>;
  const bad = new Set<string>();
  const idStr = (f: string, min: number, max: number) => {
    const x = c[f];
    if (typeof x !== 'string' || x.length < min || x.length > max || !ID_RE.test(x)) bad.add(f);
  };
  const posInt = (f: string) => {
    const x = c[f];
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x <= 0) bad.add(f);
  };
  idStr('impression_id', 8, 128);
  if (c.event_type !== undefined && c.event_type !== 'click') bad.add('event_type');
  posInt('ad_id');
  posInt('campaign_id');
  posInt('advertiser_id');
  idStr('user_id', 1, 128);
  posInt('timestamp');
  if (typeof c.key_id !== 'string' || !KEY_ID_RE.test(c.key_id)) bad.add('key_id');
  if (typeof c.signature !== 'string') bad.add('signature');
  if (bad.size) return { ok: false, code: 'INVALID_FIELD', fields: bad };
  const secret = KEYS.get(c.key_id as string);
  if (secret === undefined) return { ok: false, code: 'UNKNOWN_KEY' };
  if (c.signature !== hmac(secret, canonical(c, 'click'))) return { ok: false, code: 'SIGNATURE_INVALID' };
  const ts = c.timestamp as number;
  if (ts < NOW - MAX_AGE || ts > NOW + MAX_SKEW) return { ok: false, code: 'TIMESTAMP_OUT_OF_RANGE' };
  return { ok: true, key: `click:${c.impression_id as string}` };
}

/** Objects and arrays nested deeper than this are INVALID_JSON, like text that is not JSON. */
const MAX_JSON_DEPTH = 8;

function tooDeep(value: unknown): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth + 1 > MAX_JSON_DEPTH) return true;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

function tryParse(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    const value: unknown = JSON.parse(text);
    return tooDeep(value) ? { ok: false } : { ok: true, value };
  } catch {
    return { ok: false };
  }
}

/** A published record decodes to exactly the click that was accepted. */
function assertRecordIs(rec: { key: string; value: Buffer }, c: Record<string, unknown>, ctx: string): void {
  const ev = ClickEvent.decode(rec.value);
  assert.equal(rec.key, c.impression_id, ctx);
  assert.equal(ev.impressionId, c.impression_id, ctx);
  assert.equal(ev.eventType, 'click', ctx);
  assert.equal(Number(ev.adId), c.ad_id, ctx);
  assert.equal(Number(ev.campaignId), c.campaign_id, ctx);
  assert.equal(Number(ev.advertiserId), c.advertiser_id, ctx);
  assert.equal(ev.userId, c.user_id, ctx);
  assert.equal(Number(ev.eventTimeMs), c.timestamp, ctx);
  assert.equal(ev.keyId, c.key_id, ctx);
}

// ------------------------------------------------------------------ generators

let seq = 0;
function validClick(over: Record<string, unknown> = {}, keyId = 'k1'): Record<string, unknown> {
  const c: Record<string, unknown> = {
    impression_id: `imp_fuzz_${++seq}_${Math.random().toString(36).slice(2, 8)}`, event_type: 'click', ad_id: 1 + (seq % 5000),
    campaign_id: 55, advertiser_id: 7, user_id: 'u_93af', timestamp: NOW - (seq % 1000) * 1000, key_id: keyId, ...over,
  };
  c.signature = hmac(KEYS.get(keyId) ?? 'x', canonical(c, typeof c.event_type === 'string' ? c.event_type : 'click'));
  return c;
}

const FIELDS = ['impression_id', 'event_type', 'ad_id', 'campaign_id', 'advertiser_id', 'user_id', 'timestamp', 'key_id', 'signature'] as const;

/** Raw JSON literals spliced into the text: number forms JSON.stringify never writes, and non-JSON tokens. */
const RAW_LITERALS = [
  '1e308', '-1e308', '1e309', '-0', '0', '-0.0', '1E3', '1234.0', '1.5', '12345678901234567890', '9007199254740991',
  '9007199254740992', '9007199254740993', '-1', '0.0000001', '1e-400', '"NaN"', '"1e308"', '"-0"', '"Infinity"',
  '"1234"', 'true', 'false', 'null', '[]', '{}', '[1234]', '{"$numberLong":"1234"}', '"\\u0000"', '"\\ud800"',
  '"imp\\u200bzero-width"', '"ｆｕｌｌｗｉｄｔｈ"', '"click\\u0000"', '"CLICK"', '" click"',
  // not JSON at all: the whole body must be INVALID_JSON
  'NaN', 'Infinity', '-Infinity', '0x10', '01', '+1', 'undefined', "'single'", '1.', '.5',
];

const rawLiteral = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...RAW_LITERALS) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 20_000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 2_000 }).map((depth) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 6_000 }).map((n) => JSON.stringify('x'.repeat(n))) },
);

/** Replacement values: anything JS can produce (JSON.stringify decides what survives), and near-valid strings/numbers. */
const fieldValue = fc.oneof(
  { weight: 3, arbitrary: fc.anything({ maxDepth: 3, withNullPrototype: true, withObjectString: true }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 140 }) },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9._:|-]{0,140}$/) },
  { weight: 2, arbitrary: fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.double(), fc.constantFrom(0, -0, 2 ** 53, 2 ** 53 - 1, NOW, NOW + MAX_SKEW, NOW + MAX_SKEW + 1, NOW - MAX_AGE, NOW - MAX_AGE - 1)) },
  { weight: 1, arbitrary: fc.constantFrom('click', 'k1', 'k2', 'k9', '', 'a'.repeat(64), 'a'.repeat(65), 'f'.repeat(64), 'F'.repeat(64)) },
);

type Mutation =
  | { kind: 'set'; field: string; value: unknown }
  | { kind: 'raw'; field: string; raw: string }
  | { kind: 'delete'; field: string }
  | { kind: 'extra'; field: string; value: unknown };

const fieldName = fc.constantFrom<string>(...FIELDS);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), field: fieldName, value: fieldValue }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('raw' as const), field: fieldName, raw: rawLiteral }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), field: fieldName }) },
  // Targeted: keys that are well-formed but not active, timestamps around the accepted window.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('set' as const), field: fc.constant('key_id'), value: fc.constantFrom('k9', 'K1', 'k1.old', 'k', 'dev') }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      field: fc.constant('timestamp'),
      value: fc.oneof(fc.integer({ min: NOW - MAX_AGE - 5, max: NOW - MAX_AGE + 5 }), fc.integer({ min: NOW + MAX_SKEW - 5, max: NOW + MAX_SKEW + 5 }), fc.integer({ min: 1, max: 2 * NOW })),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('extra' as const),
      field: fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'clicks', 'Ad_Id', 'ad_id ')),
      value: fc.jsonValue({ maxDepth: 3 }),
    }),
  },
);

/**
 * A signed click with mutations applied, as JSON text. With `resign` the signature is
 * recomputed over the mutated values, so validation (not just the signature) is exercised.
 */
function mutatedClickText(muts: Mutation[], resign: boolean, keyId: 'k1' | 'k2'): string {
  const c = validClick({}, keyId);
  const raws: string[] = [];
  for (const m of muts) {
    if (m.kind === 'delete') delete c[m.field];
    else if (m.kind === 'set') c[m.field] = m.value;
    else if (m.kind === 'raw') {
      c[m.field] = `\u0001RAW${raws.length}\u0001`;
      raws.push(m.raw);
    } else Object.defineProperty(c, m.field, { value: m.value, enumerable: true, writable: true, configurable: true });
  }
  const render = () => {
    let text = JSON.stringify(c) ?? 'null';
    raws.forEach((raw, i) => {
      text = text.replace(JSON.stringify(`\u0001RAW${i}\u0001`), () => raw);
    });
    return text;
  };
  if (resign && !muts.some((m) => m.field === 'signature')) {
    const parsed = tryParse(render());
    if (parsed.ok && typeof parsed.value === 'object' && parsed.value !== null && !Array.isArray(parsed.value)) {
      const p = parsed.value as Record<string, unknown>;
      const kid = typeof p.key_id === 'string' ? p.key_id : keyId;
      c.signature = hmac(KEYS.get(kid) ?? 'x', canonical(p, typeof p.event_type === 'string' ? p.event_type : 'click'));
    }
  }
  return render();
}

const mutatedClick = fc
  .record({ muts: fc.array(mutation, { minLength: 1, maxLength: 3 }), resign: fc.boolean(), keyId: fc.constantFrom<'k1' | 'k2'>('k1', 'k2') })
  .map(({ muts, resign, keyId }) => mutatedClickText(muts, resign, keyId));

// ------------------------------------------------------------------ single-click properties

/** Checks one answer to POST /v1/clicks against the oracle; returns whether it was accepted. */
function checkSingle(s: Setup, text: string | Buffer, res: Res, ctx: string): void {
  assertSingle(res, ctx);
  const size = Buffer.byteLength(text);
  const before = 0; // every property run starts from reset()
  if (size > MAX_BODY) {
    assertErrorBody(res, ctx);
    assert.equal(res.statusCode, 413, `${ctx}: ${size} bytes`);
    assert.equal(s.publisher.records.length, before, ctx);
    return;
  }
  const parsed = tryParse(typeof text === 'string' ? text : text.toString('utf8'));
  if (!parsed.ok) {
    assert.equal(res.statusCode, 400, `${ctx}: invalid JSON answered ${res.statusCode} ${res.body}`);
    assert.equal(assertErrorBody(res, ctx).code, 'INVALID_JSON', ctx);
    assert.equal(s.publisher.records.length, before, ctx);
    return;
  }
  const verdict = judge(parsed.value);
  if (verdict.ok) {
    assert.equal(res.statusCode, 202, `${ctx}: a verifying click answered ${res.statusCode} ${res.body}`);
    assert.deepEqual(res.json(), { status: 'accepted' }, ctx);
    assert.equal(s.publisher.records.length, 1, `${ctx}: exactly one record published`);
    assertRecordIs(s.publisher.records[0]!, parsed.value as Record<string, unknown>, ctx);
    return;
  }
  assert.notEqual(res.statusCode, 202, `${ctx}: accepted a click that does not verify (${verdict.code})`);
  assert.equal(s.publisher.records.length, 0, `${ctx}: published a rejected click`);
  const e = assertErrorBody(res, ctx);
  assert.equal(e.code, verdict.code, `${ctx}: expected ${verdict.code}, got ${e.code} ${e.message}`);
  if (verdict.code === 'INVALID_FIELD') {
    if (verdict.fields.has('')) assert.equal(e.field, undefined, ctx);
    else assert.ok(e.field !== undefined && verdict.fields.has(e.field), `${ctx}: field ${e.field} not among ${[...verdict.fields]}`);
  }
}

test('single: arbitrary bytes and strings as a JSON body never crash', async () => {
  const s = setup();
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)),
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.string({ unit: fc.constantFrom(...'{}[]":,0123456789.-+eE truefalsnul\\u'.split('')), maxLength: 200 }),
    fc.constantFrom('', ' ', '\ufeff{}', '{}', 'null', '"', '\u0000', '{"a":1}{"b":2}', '[', '{"impression_id":}'),
  );
  await fc.assert(
    fc.asyncProperty(body, async (text) => {
      s.reset();
      const res = await post(s, '/v1/clicks', text);
      checkSingle(s, text, res, `body ${JSON.stringify(typeof text === 'string' ? text : text.toString('hex')).slice(0, 300)}`);
    }),
    params(1500),
  );
});

test('single: arbitrary JSON values never crash and are judged as API.md says', async () => {
  const s = setup();
  await fc.assert(
    fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), async (v) => {
      s.reset();
      const text = JSON.stringify(v);
      const res = await post(s, '/v1/clicks', text);
      checkSingle(s, text, res, `json ${text.slice(0, 300)}`);
    }),
    params(1000),
  );
});

test('single: valid clicks with mutated fields, extra fields, raw literals, huge and deep values', async () => {
  const s = setup();
  const seen = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(mutatedClick, async (text) => {
      s.reset();
      const res = await post(s, '/v1/clicks', text);
      const outcome = res.statusCode === 202 ? 'accepted' : String((res.json() as { error?: { code?: string } }).error?.code);
      seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
      checkSingle(s, text, res, `click ${text.slice(0, 400)}`);
    }),
    params(2000),
  );
  // The generator must reach every outcome, including clicks that verify (extra fields,
  // re-signed mutations), or the property above proves little.
  if (SCALE >= 1) {
    for (const o of ['accepted', 'INVALID_JSON', 'INVALID_FIELD', 'UNKNOWN_KEY', 'SIGNATURE_INVALID', 'TIMESTAMP_OUT_OF_RANGE', 'PAYLOAD_TOO_LARGE']) {
      assert.ok(seen.has(o), `outcome ${o} never generated: ${JSON.stringify([...seen])}`);
    }
  }
  console.log(`gateway mutated-click outcomes: ${JSON.stringify(Object.fromEntries(seen))}`);
});

test('single: unmutated valid clicks are always accepted exactly once', async () => {
  const s = setup();
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        ad_id: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        campaign_id: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        advertiser_id: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        user_id: fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/),
        impression_id: fc.stringMatching(/^[A-Za-z0-9._:-]{8,128}$/),
        timestamp: fc.integer({ min: NOW - MAX_AGE, max: NOW + MAX_SKEW }),
        omitEventType: fc.boolean(),
        keyId: fc.constantFrom('k1', 'k2'),
      }),
      async ({ omitEventType, keyId, ...fields }) => {
        s.reset();
        const c = validClick(fields, keyId);
        if (omitEventType) delete c.event_type;
        const text = JSON.stringify(c);
        const res = await post(s, '/v1/clicks', text);
        checkSingle(s, text, res, `valid ${text}`);
        assert.equal(res.statusCode, 202);
      },
    ),
    params(500),
  );
});

test('content types: only JSON is parsed; everything else is 415, never 500', async () => {
  const s = setup();
  const contentType = fc.oneof(
    fc.constantFrom(
      'application/json', 'application/json; charset=utf-8', 'application/json;charset=UTF-8', 'APPLICATION/JSON',
      'Application/Json', 'application/json ', ' application/json', 'application/jsonx', 'application/json-patch+json',
      'application/vnd.api+json', 'text/json', 'text/plain', 'text/html', 'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=xyz', 'application/octet-stream', '', ';', 'application/', '*/*', 'json',
      'application/json; charset=latin1', 'application/json, text/plain',
    ),
    fc.string({ unit: fc.constantFrom(...'abcjsonapplication/;=+- \t*'.split('')), maxLength: 40 }),
  );
  await fc.assert(
    fc.asyncProperty(contentType, fc.boolean(), async (ct, batch) => {
      s.reset();
      const c = validClick();
      const text = batch ? JSON.stringify({ clicks: [c] }) : JSON.stringify(c);
      const res = await s.app.inject({ method: 'POST', url: batch ? '/v1/clicks/batch' : '/v1/clicks', payload: text, headers: { 'content-type': ct } });
      cases++;
      const ctx = `content-type ${JSON.stringify(ct)} ${batch ? 'batch' : 'single'}`;
      if (batch) assertBatch(res, ctx, 1);
      else assertSingle(res, ctx);
      const mediaType = ct.split(';')[0]!.trim().toLowerCase();
      const ok = res.statusCode === 202 || res.statusCode === 200;
      if (mediaType !== 'application/json') {
        assert.equal(res.statusCode, 415, `${ctx}: ${res.statusCode} ${res.body}`);
        assert.equal(assertErrorBody(res, ctx).code, 'UNSUPPORTED_MEDIA_TYPE', ctx);
      } else {
        // Media types are case-insensitive and parameters do not change what JSON is.
        assert.ok(ok, `${ctx}: a valid click sent as JSON answered ${res.statusCode} ${res.body}`);
      }
      if (ok) assert.equal(s.publisher.records.length, 1, ctx);
      else assert.equal(s.publisher.records.length, 0, ctx);
    }),
    params(600),
  );
});

// ------------------------------------------------------------------ batch properties

type Item = { text: string };
const batchItem: fc.Arbitrary<Item> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(null).map(() => ({ text: JSON.stringify(validClick()) })) },
  { weight: 3, arbitrary: mutatedClick.filter((t) => tryParse(t).ok).map((text) => ({ text })) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => ({ text: JSON.stringify(v) })) },
);

/** Items, some repeated (same click twice in one batch), as the JSON text of the batch body. */
const batchBody = fc
  .record({
    items: fc.array(batchItem, { minLength: 0, maxLength: 40 }),
    repeats: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 5 }),
  })
  .map(({ items, repeats }) => {
    const list = [...items];
    for (const [from, to] of repeats) if (list.length) list.splice(to % (list.length + 1), 0, list[from % list.length]!);
    return list;
  });

test('batch: mixed valid and invalid items — one result per input, statuses as API.md says', async () => {
  const s = setup();
  await fc.assert(
    fc.asyncProperty(batchBody, async (items) => {
      s.reset();
      const text = `{"clicks":[${items.map((i) => i.text).join(',')}]}`;
      const res = await post(s, '/v1/clicks/batch', text);
      const ctx = `batch ${text.slice(0, 600)}`;
      const results = assertBatch(res, ctx, items.length);
      if (items.length === 0) {
        assert.equal(res.statusCode, 400, ctx);
        assert.deepEqual(res.json().error.field, 'clicks');
        return;
      }
      if (Buffer.byteLength(text) > MAX_BATCH_BODY) {
        assert.equal(res.statusCode, 413, ctx);
        return;
      }
      if (!tryParse(text).ok) {
        // Items each within the depth limit can still nest too deep inside {"clicks": [...]}.
        assert.equal(res.statusCode, 400, ctx);
        assert.equal(res.json().error.code, 'INVALID_JSON', ctx);
        return;
      }
      assert.ok(results, `${ctx}: ${res.statusCode} ${res.body}`);
      const acceptedKeys = new Set<string>();
      const published: Record<string, unknown>[] = [];
      items.forEach((item, i) => {
        const value = JSON.parse(item.text) as unknown;
        const r = results[i]!;
        const ictx = `${ctx} item ${i} ${item.text.slice(0, 200)} → ${JSON.stringify(r)}`;
        const imp = (value as { impression_id?: unknown } | null)?.impression_id;
        const verdict = judge(value);
        if (verdict.ok) {
          const expected = acceptedKeys.has(verdict.key) ? 'duplicate' : 'accepted';
          assert.equal(r.status, expected, ictx);
          assert.equal(r.impression_id, imp, ictx);
          if (expected === 'accepted') {
            acceptedKeys.add(verdict.key);
            published.push(value as Record<string, unknown>);
          }
        } else {
          assert.equal(r.status, 'rejected', ictx);
          assert.equal(r.impression_id, typeof imp === 'string' ? imp : null, ictx);
          assert.equal(r.error!.code, verdict.code, ictx);
          if (verdict.code === 'INVALID_FIELD') {
            const field = String(r.error!.field);
            assert.ok(field.startsWith(`clicks[${i}]`), ictx);
            const rest = field.slice(`clicks[${i}]`.length);
            assert.ok(verdict.fields.has(rest === '' ? '' : rest.slice(1)), `${ictx}: field ${field} not among ${[...verdict.fields]}`);
          }
        }
      });
      assert.equal(s.publisher.records.length, published.length, `${ctx}: one record per accepted click`);
      published.forEach((c, j) => assertRecordIs(s.publisher.records[j]!, c, ctx));
    }),
    params(800),
  );
});

test('batch: arbitrary bodies and item lists never crash', async () => {
  const s = setup();
  const body = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
    fc.array(fc.anything({ maxDepth: 2 }), { maxLength: 20 }).map((clicks) => JSON.stringify({ clicks }) ?? 'null'),
    fc.record({ clicks: fc.anything({ maxDepth: 2 }) }).map((v) => JSON.stringify(v) ?? 'null'),
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.integer({ min: 0, max: 200_000 }).map((d) => `{"clicks":[${'['.repeat(d)}${']'.repeat(d)}]}`),
    fc.constantFrom('{"clicks":null}', '{"clicks":{}}', '{"clicks":"x"}', '{"Clicks":[]}', '[]', '{"clicks":[],"clicks":[1]}', '{"__proto__":{"clicks":[1]}}'),
  );
  await fc.assert(
    fc.asyncProperty(body, async (text) => {
      s.reset();
      const res = await post(s, '/v1/clicks/batch', text);
      const ctx = `batch ${text.slice(0, 300)}`;
      const parsed = tryParse(text);
      const clicks = parsed.ok ? (parsed.value as { clicks?: unknown } | null)?.clicks : undefined;
      const results = assertBatch(res, ctx, Array.isArray(clicks) ? clicks.length : undefined);
      if (Buffer.byteLength(text) > MAX_BATCH_BODY) assert.equal(res.statusCode, 413, ctx);
      else if (!parsed.ok) assert.equal(assertErrorBody(res, ctx).code, 'INVALID_JSON', ctx);
      else if (!Array.isArray(clicks) || clicks.length === 0 || clicks.length > MAX_BATCH || typeof parsed.value !== 'object' || Array.isArray(parsed.value)) {
        const e = assertErrorBody(res, ctx);
        assert.equal(e.code, 'INVALID_FIELD', ctx);
        assert.equal(e.field, 'clicks', ctx);
      } else assert.ok(results, ctx);
      const accepted = results?.filter((r) => r.status === 'accepted').length ?? 0;
      assert.equal(s.publisher.records.length, accepted, ctx);
    }),
    params(800),
  );
});

test('batch: size limits at 1000 clicks and 1 MiB', async () => {
  const s = setup();
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(999, 1000, 1001, 1500), fc.integer({ min: 0, max: 1500 }), async (n, pad) => {
      s.reset();
      const one = validClick();
      const items = Array.from({ length: n }, () => validClick({}, 'k1'));
      items[0] = { ...one, pad: 'p'.repeat(pad) };
      const text = JSON.stringify({ clicks: items });
      const res = await post(s, '/v1/clicks/batch', text);
      const ctx = `batch of ${n}, ${Buffer.byteLength(text)} bytes`;
      const results = assertBatch(res, ctx, n);
      if (Buffer.byteLength(text) > MAX_BATCH_BODY) assert.equal(res.statusCode, 413, ctx);
      else if (n > MAX_BATCH) assert.equal(res.statusCode, 400, ctx);
      else {
        assert.ok(results, ctx);
        assert.ok(results.every((r) => r.status === 'accepted'), ctx);
        assert.equal(s.publisher.records.length, n, ctx);
      }
    }),
    params(12),
  );
});

// ------------------------------------------------------------------ idempotency

test('an accepted click answers duplicate thereafter, however it is re-sent', async () => {
  const s = setup();
  type Resend = 'same' | 'reordered' | 'spaced' | 'no-event-type' | 'extra-field' | 'charset' | 'other-key' | 'other-ad' | 'batch';
  const resend = fc.constantFrom<Resend>('same', 'reordered', 'spaced', 'no-event-type', 'extra-field', 'charset', 'other-key', 'other-ad', 'batch');
  await fc.assert(
    fc.asyncProperty(fc.array(resend, { minLength: 1, maxLength: 6 }), fc.array(batchItem, { maxLength: 8 }), fc.nat(), async (how, others, pos) => {
      s.reset();
      const c = validClick();
      const first = await post(s, '/v1/clicks', JSON.stringify(c));
      assert.equal(first.statusCode, 202);
      assert.equal(first.json().status, 'accepted');
      for (const h of how) {
        const ctx = `re-send ${h} of ${JSON.stringify(c)}`;
        let text = JSON.stringify(c);
        let headers = JSON_CT;
        if (h === 'reordered') text = JSON.stringify(Object.fromEntries(Object.entries(c).reverse()));
        if (h === 'spaced') text = JSON.stringify(c, null, 2).replace(/:/g, ' :\t');
        if (h === 'no-event-type') {
          const { event_type: _omit, ...rest } = c;
          text = JSON.stringify(rest);
        }
        if (h === 'extra-field') text = JSON.stringify({ ...c, retry: 3, note: 'résumé ☃' });
        if (h === 'charset') headers = { 'content-type': 'application/json; charset=utf-8' };
        if (h === 'other-key') text = JSON.stringify(validClick({ impression_id: c.impression_id, ad_id: c.ad_id, timestamp: c.timestamp }, 'k2'));
        if (h === 'other-ad') text = JSON.stringify(validClick({ impression_id: c.impression_id, ad_id: (c.ad_id as number) + 1 }));
        if (h === 'batch') {
          // Items nested too deep would get the whole body refused before any item is judged
          // (the nesting limit, 8 levels with the batch's own 2): that is tested elsewhere.
          const list = others.map((o) => o.text).filter((t) => !new JsonDepthScanner(8 - 2).push(Buffer.from(t)));
          const at = pos % (list.length + 1);
          list.splice(at, 0, text);
          const res = await post(s, '/v1/clicks/batch', `{"clicks":[${list.join(',')}]}`);
          const results = assertBatch(res, ctx, list.length);
          assert.ok(results, `${ctx}: ${res.statusCode} ${res.body}`);
          assert.deepEqual(results[at], { impression_id: c.impression_id, status: 'duplicate' }, ctx);
          continue;
        }
        const res = await post(s, '/v1/clicks', text, headers);
        assert.equal(res.statusCode, 202, `${ctx}: ${res.statusCode} ${res.body}`);
        assert.deepEqual(res.json(), { status: 'duplicate' }, ctx);
      }
      const mineRecords = s.publisher.records.filter((r) => ClickEvent.decode(r.value).impressionId === c.impression_id);
      assert.equal(mineRecords.length, 1, 'the click was written to Kafka exactly once');
    }),
    params(500),
  );
});

// ------------------------------------------------------------------ degraded dependencies

test('rate limited, Kafka down or not acknowledging: never accepted, never 500, nothing marked', async () => {
  const s = setup();
  const request = fc.oneof(
    mutatedClick.map((text) => ({ url: '/v1/clicks', text })),
    fc.constant(null).map(() => ({ url: '/v1/clicks', text: JSON.stringify(validClick()) })),
    batchBody.map((items) => ({ url: '/v1/clicks/batch', text: `{"clicks":[${items.map((i) => i.text).join(',')}]}` })),
    fc.string({ maxLength: 50 }).map((text) => ({ url: '/v1/clicks', text })),
  );
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('limited', 'down', 'nack'), request, async (mode, { url, text }) => {
      s.reset();
      if (mode === 'limited') s.limiter.deny = true;
      else s.publisher.mode = mode as 'down' | 'nack';
      const res = await post(s, url, text);
      const ctx = `${mode} ${url} ${text.slice(0, 300)}`;
      const results = url === '/v1/clicks' ? (assertSingle(res, ctx), null) : assertBatch(res, ctx);
      if (mode === 'limited') {
        assert.equal(res.statusCode, 429, `${ctx}: a denied client gets 429 whatever it sends`);
      }
      if (url === '/v1/clicks') assert.notEqual(res.statusCode, 202, ctx);
      for (const r of results ?? []) {
        assert.notEqual(r.status, 'accepted', ctx);
        if (r.status === 'rejected' && mode !== 'limited') assert.ok(r.error!.code !== 'RATE_LIMITED', ctx);
      }
      assert.equal(s.publisher.records.length, 0, ctx);
      assert.equal(s.dedup.keys.size, 0, `${ctx}: nothing may be marked as seen without an ack`);
    }),
    params(600),
  );
});

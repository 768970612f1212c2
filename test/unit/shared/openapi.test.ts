// The two OpenAPI documents against the code: structure, every $ref, every schema compiled
// by a strict JSON Schema 2020-12 validator, error codes against the registry and
// docs/errors.md, and the routes each app really registers (both directions).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Ajv2020 } from 'ajv/dist/2020.js';
import * as ajvFormats from 'ajv-formats';
import { buildGatewayApp } from '../../../src/gateway/app.ts';
import { parseClick } from '../../../src/gateway/click-validation.ts';
import { GATEWAY_DOC_DEFAULTS, GATEWAY_OPENAPI } from '../../../src/gateway/openapi.ts';
import { buildQueryApp, DEFAULT_QUERY_APP_OPTIONS } from '../../../src/query/app.ts';
import { QUERY_DOC_DEFAULTS, QUERY_OPENAPI } from '../../../src/query/openapi.ts';
import { parseInstant } from '../../../src/query/time-params.ts';
import { loadConfig } from '../../../src/shared/config.ts';
import { ERRORS, isAppError, type ErrorCode } from '../../../src/shared/errors.ts';
import { createRegistry } from '../../../src/shared/metrics.ts';
import { CONNECTION_EXTENSION, OTHER_METHODS_EXTENSION, UNMATCHED_EXTENSION, type JsonObject, type OpenApiDocument } from '../../../src/shared/openapi.ts';
import { signClick } from '../../../src/shared/signature.ts';
import { FakeDedup, FakeLimiter, FakePublisher } from '../gateway/fakes.ts';
import { FakeRepository } from '../query/fake-repository.ts';

// ajv-formats is CommonJS with a default export; under NodeNext its default arrives one level down.
const addFormats = ((ajvFormats as unknown as { default: { default?: unknown } }).default.default ?? ajvFormats.default) as unknown as (ajv: Ajv2020) => Ajv2020;

const logger = pino({ level: 'silent' });
const OPERATION_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

function gatewayApp(): FastifyInstance {
  return buildGatewayApp({
    options: {
      signingKeys: new Map([['k1', 'secret']]), maxClickAgeMs: 86_400_000, maxClockSkewMs: 300_000, maxBodyBytes: 4096,
      maxBatchBodyBytes: 1 << 20, maxBatchClicks: 1000, trustedProxies: [], retryAfterSec: 2, ipHashKey: 'k', gatewayId: 'unit',
    },
    publisher: new FakePublisher(), dedup: new FakeDedup(), rateLimiter: new FakeLimiter(), logger, registry: createRegistry('gateway', false),
  }) as unknown as FastifyInstance;
}

const queryApp = (): FastifyInstance => buildQueryApp({ repo: new FakeRepository(), logger });

const SERVICES = [
  { name: 'gateway', doc: GATEWAY_OPENAPI, build: gatewayApp },
  { name: 'query', doc: QUERY_OPENAPI, build: queryApp },
] as const;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The object a local `#/...` reference points at, or undefined. */
function resolvePointer(doc: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let at: unknown = doc;
  for (const part of ref.slice(2).split('/').map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))) {
    if (!isObj(at) && !Array.isArray(at)) return undefined;
    at = (at as Obj)[part];
  }
  return at;
}

const deref = (doc: unknown, v: unknown): Obj => {
  let at = v;
  for (let i = 0; i < 10 && isObj(at) && typeof at.$ref === 'string'; i++) at = resolvePointer(doc, at.$ref);
  assert.ok(isObj(at), `unresolvable ${JSON.stringify(v)}`);
  return at;
};

function walk(v: unknown, visit: (node: Obj, path: string) => void, path = '#'): void {
  if (Array.isArray(v)) v.forEach((x, i) => walk(x, visit, `${path}/${i}`));
  else if (isObj(v)) {
    visit(v, path);
    for (const [k, x] of Object.entries(v)) walk(x, visit, `${path}/${k.replaceAll('~', '~0').replaceAll('/', '~1')}`);
  }
}

/** Every operation of the document, the three extensions included, with its JSON pointer. */
function operations(doc: OpenApiDocument): { key: string; pointer: string; op: Obj }[] {
  const out: { key: string; pointer: string; op: Obj }[] = [];
  const esc = (p: string) => p.replaceAll('~', '~0').replaceAll('/', '~1');
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const m of OPERATION_METHODS) if (isObj(item[m])) out.push({ key: `${m.toUpperCase()} ${path}`, pointer: `#/paths/${esc(path)}/${m}`, op: item[m] as Obj });
    if (isObj(item[OTHER_METHODS_EXTENSION])) out.push({ key: `* ${path}`, pointer: `#/paths/${esc(path)}/${OTHER_METHODS_EXTENSION}`, op: item[OTHER_METHODS_EXTENSION] as Obj });
  }
  if (isObj(doc[UNMATCHED_EXTENSION])) out.push({ key: 'unmatched', pointer: `#/${UNMATCHED_EXTENSION}`, op: doc[UNMATCHED_EXTENSION] as Obj });
  if (isObj(doc[CONNECTION_EXTENSION])) out.push({ key: 'any-request', pointer: `#/${CONNECTION_EXTENSION}`, op: doc[CONNECTION_EXTENSION] as Obj });
  return out;
}

function compiler(doc: OpenApiDocument) {
  const ajv = new Ajv2020({ strict: true, strictTypes: true, allErrors: true });
  addFormats(ajv);
  // The document's own top-level members are not JSON Schema keywords; only its schemas are compiled.
  ajv.addVocabulary(Object.keys(doc));
  ajv.addSchema(structuredClone(doc) as never, 'https://adclick.invalid/openapi.json');
  return (pointer: string) => ajv.compile({ $ref: `https://adclick.invalid/openapi.json${pointer}` });
}

/** Routes as fastify registers them, caught by an onRoute hook on the instance the factory creates. */
function registeredRoutes(build: () => FastifyInstance): { method: string; path: string }[] {
  const routes: { method: string; path: string }[] = [];
  const onInit = (message: unknown) => {
    (message as { fastify: FastifyInstance }).fastify.addHook('onRoute', (r) => {
      const path = r.url.replace(/:([A-Za-z_]\w*)/g, '{$1}');
      for (const method of [r.method].flat()) routes.push({ method, path });
    });
  };
  subscribe('fastify.initialization', onInit);
  try {
    build();
  } finally {
    unsubscribe('fastify.initialization', onInit);
  }
  return routes;
}

/** docs/errors.md: code → the services of its "where" column. */
function documentedWhere(): Map<string, string[]> {
  const md = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8').split('## Dead-letter')[0]!;
  return new Map([...md.matchAll(/^\| `([A-Z_]+)` \| \d{3} \| [^|]+ \| ([^|]+) \|/gm)].map((m) => [m[1]!, m[2]!.split(',').map((s) => s.trim())]));
}

/** The codes each error response narrows the shared Error schema to, by status. */
function narrowedCodes(doc: OpenApiDocument): { where: string; status: string; codes: string[] }[] {
  const out: { where: string; status: string; codes: string[] }[] = [];
  for (const { key, op } of operations(doc)) {
    for (const [status, response] of Object.entries(op.responses as Obj)) {
      const schema = (deref(doc, response).content as Obj | undefined)?.['application/json'] as Obj | undefined;
      const allOf = (schema?.schema as Obj | undefined)?.allOf as Obj[] | undefined;
      if (allOf?.[0]?.$ref !== '#/components/schemas/Error') continue;
      const code = ((allOf[1]!.properties as Obj).error as Obj).properties as Obj;
      out.push({ where: key, status, codes: (code.code as Obj).enum as string[] });
    }
  }
  return out;
}

for (const { name, doc, build } of SERVICES) {
  test(`${name}: an OpenAPI 3.1.0 document, frozen, plain JSON`, () => {
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(typeof doc.info.title, 'string');
    assert.equal(typeof doc.info.version, 'string');
    assert.equal(doc.servers, undefined, 'served from every host it runs on: no absolute servers');
    assert.deepEqual(JSON.parse(JSON.stringify(doc)), doc);
    walk(doc, (node, path) => assert.ok(Object.isFrozen(node), `${path} is not frozen`));
    assert.ok(Object.keys(doc).every((k) => ['openapi', 'info', 'paths', 'components', 'security', 'tags'].includes(k) || k.startsWith('x-')), Object.keys(doc).join());
  });

  test(`${name}: every operation has an id, responses with descriptions, and declares exactly its path parameters`, () => {
    const ids = new Set<string>();
    for (const { key, op } of operations(doc)) {
      if (!key.startsWith('*') && key !== 'unmatched' && key !== 'any-request') {
        assert.equal(typeof op.operationId, 'string', key);
        assert.ok(!ids.has(op.operationId as string), `duplicate operationId ${String(op.operationId)}`);
        ids.add(op.operationId as string);
      }
      const responses = op.responses as Obj;
      assert.ok(isObj(responses) && Object.keys(responses).length > 0, `${key} has no responses`);
      for (const [status, r] of Object.entries(responses)) {
        assert.match(status, /^[1-5]\d\d$/, `${key}: status ${status}`);
        assert.equal(typeof deref(doc, r).description, 'string', `${key} ${status}: description`);
      }
      const path = key.split(' ')[1];
      if (path) {
        const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!).sort();
        const declared = ((op.parameters as unknown[] | undefined) ?? []).map((p) => deref(doc, p)).filter((p) => p.in === 'path');
        assert.deepEqual(declared.map((p) => p.name).sort(), key.startsWith('*') ? [] : templated, `${key}: path parameters`);
        for (const p of declared) assert.equal(p.required, true, `${key}: ${String(p.name)} must be required`);
      }
    }
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const k of Object.keys(item)) assert.ok([...OPERATION_METHODS, 'parameters', 'summary', 'description'].includes(k as never) || k.startsWith('x-'), `${path}: ${k}`);
    }
  });

  test(`${name}: every $ref resolves and every component is used`, () => {
    const used = new Set<string>();
    walk(doc, (node, path) => {
      if (typeof node.$ref !== 'string') return;
      assert.ok(resolvePointer(doc, node.$ref) !== undefined, `${path}: ${node.$ref} does not resolve`);
      used.add(node.$ref);
    });
    for (const [kind, group] of Object.entries(doc.components)) {
      for (const key of Object.keys(group as Obj)) {
        const pointer = `#/components/${kind}/${key}`;
        const viaSecurity = kind === 'securitySchemes' && JSON.stringify(doc.paths).includes(`"${key}":[]`);
        assert.ok(used.has(pointer) || viaSecurity, `${pointer} is never used`);
      }
    }
  });

  test(`${name}: every schema compiles under strict JSON Schema 2020-12`, () => {
    const compile = compiler(doc);
    let count = 0;
    walk(doc, (node, path) => {
      if (path.startsWith('#/components/schemas/') && path.split('/').length === 4) {
        compile(path);
        count++;
      }
      if (isObj(node.schema) && !path.startsWith('#/components/schemas')) {
        compile(`${path}/schema`);
        count++;
      }
    });
    assert.ok(count > 20, `compiled ${count} schemas`);
  });

  test(`${name}: error codes are the registry's, under their registry status, as docs/errors.md says`, () => {
    const where = documentedWhere();
    const expected = [...where].filter(([, w]) => w.includes(name) || w.includes('all')).map(([c]) => c).sort();
    assert.ok(expected.length >= 8, `parsed ${expected.length} codes for ${name}`);
    const detail = deref(doc, { $ref: '#/components/schemas/ErrorDetail' });
    const enumCodes = ((detail.properties as Obj).code as Obj).enum as string[];
    assert.deepEqual([...enumCodes].sort(), expected, 'the Error schema lists exactly the codes of this service');
    const seen = new Set<string>();
    for (const { where: at, status, codes } of narrowedCodes(doc)) {
      for (const c of codes) {
        assert.ok(c in ERRORS, `${at} ${status}: ${c} is not in the registry`);
        assert.equal(String(ERRORS[c as ErrorCode].status), status, `${at}: ${c} documented under ${status}`);
        assert.ok(enumCodes.includes(c), `${at}: ${c} is not a ${name} code`);
        seen.add(c);
      }
    }
    assert.deepEqual([...seen].sort(), expected, 'every code of the service is answered by some operation');
  });

  test(`${name}: every registered route is documented and every documented operation is registered`, () => {
    const routes = registeredRoutes(build);
    assert.ok(routes.length > 3, `caught ${routes.length} routes`);
    const registered = new Set(routes.map((r) => `${r.method} ${r.path}`));
    for (const { method, path } of routes) {
      const item = doc.paths[path];
      assert.ok(item, `${method} ${path} is not in the document`);
      if (method === 'HEAD') assert.ok(item.get, `HEAD ${path} without a GET operation`);
      else if (isObj(item[method.toLowerCase()])) continue;
      else assert.ok(isObj(item[OTHER_METHODS_EXTENSION]), `${method} ${path} is not in the document`);
    }
    const supported = build().supportedMethods;
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const m of OPERATION_METHODS) {
        if (!item[m]) continue;
        assert.ok(registered.has(`${m.toUpperCase()} ${path}`), `${m.toUpperCase()} ${path} is documented but not served`);
        if (m === 'get') assert.ok(registered.has(`HEAD ${path}`), `HEAD ${path}`);
      }
      if (item[OTHER_METHODS_EXTENSION]) {
        for (const m of supported.filter((x) => x !== 'GET' && x !== 'HEAD')) assert.ok(registered.has(`${m} ${path}`), `${m} ${path} answers 405 per the document but is not routed`);
      }
    }
  });

  test(`${name}: GET /openapi.json serves this document, with no credentials`, async () => {
    const app = build();
    try {
      const res = await app.inject({ method: 'GET', url: '/openapi.json' });
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.deepEqual(res.json(), doc);
    } finally {
      await app.close();
    }
  });
}

test('every registry code is answered by one of the two services', () => {
  const all = new Set([...narrowedCodes(GATEWAY_OPENAPI), ...narrowedCodes(QUERY_OPENAPI)].flatMap((n) => n.codes));
  assert.deepEqual([...all].sort(), Object.keys(ERRORS).sort());
});

test('documented defaults are the configured ones', () => {
  const c = loadConfig({});
  assert.deepEqual(GATEWAY_DOC_DEFAULTS, { maxBodyBytes: c.maxBodyBytes, maxBatchBodyBytes: c.maxBatchBodyBytes, maxBatchClicks: c.maxBatchClicks });
  const o = DEFAULT_QUERY_APP_OPTIONS;
  assert.deepEqual(
    { maxWindows: QUERY_DOC_DEFAULTS.maxWindows, defaultGranularity: QUERY_DOC_DEFAULTS.defaultGranularity, defaultRangeMs: QUERY_DOC_DEFAULTS.defaultRangeMs, defaultAdsLimit: QUERY_DOC_DEFAULTS.defaultAdsLimit, maxAdsLimit: QUERY_DOC_DEFAULTS.maxAdsLimit },
    { maxWindows: o.maxWindows, defaultGranularity: o.defaultGranularity, defaultRangeMs: o.defaultRangeMs, defaultAdsLimit: o.defaultAdsLimit, maxAdsLimit: o.maxAdsLimit },
  );
  assert.equal(c.queryMaxWindows, QUERY_DOC_DEFAULTS.maxWindows);
});

test('the Click schema accepts and refuses what the gateway validation does', () => {
  const validate = compiler(GATEWAY_OPENAPI)('#/components/schemas/Click');
  const base = { impression_id: 'imp_7f9c2b1e4a', event_type: 'click', ad_id: 1234, campaign_id: 55, advertiser_id: 7, user_id: 'u_93af', timestamp: 1764237600123, key_id: 'k1' };
  const signed = (c: Obj) => ({ ...c, signature: signClick(c as never, 'secret') });
  const without = (k: string) => Object.fromEntries(Object.entries(signed(base)).filter(([key]) => key !== k));
  const cases: [string, unknown][] = [
    ['valid', signed(base)],
    ['valid without event_type', signed({ ...base, event_type: undefined })],
    ['extra fields are ignored', { ...signed(base), campaign_name: 'x' }],
    ['impression_id of 8', signed({ ...base, impression_id: 'a'.repeat(8) })],
    ['impression_id of 128', signed({ ...base, impression_id: 'a.:_-'.repeat(25) + 'abc' })],
    ['impression_id of 7', signed({ ...base, impression_id: 'a'.repeat(7) })],
    ['impression_id of 129', signed({ ...base, impression_id: 'a'.repeat(129) })],
    ['impression_id with a space', signed({ ...base, impression_id: 'imp 12345' })],
    ['impression_id a number', signed({ ...base, impression_id: 12345678 })],
    ['event_type view', signed({ ...base, event_type: 'view' })],
    ['ad_id 0', signed({ ...base, ad_id: 0 })],
    ['ad_id negative', signed({ ...base, ad_id: -3 })],
    ['ad_id fractional', signed({ ...base, ad_id: 1.5 })],
    ['ad_id a string', signed({ ...base, ad_id: '1234' })],
    ['ad_id 2^53', signed({ ...base, ad_id: 2 ** 53 })],
    ['ad_id 2^53 - 1', signed({ ...base, ad_id: 2 ** 53 - 1 })],
    ['campaign_id 0', signed({ ...base, campaign_id: 0 })],
    ['advertiser_id null', signed({ ...base, advertiser_id: null })],
    ['user_id empty', signed({ ...base, user_id: '' })],
    ['user_id of 128', signed({ ...base, user_id: 'u'.repeat(128) })],
    ['user_id of 129', signed({ ...base, user_id: 'u'.repeat(129) })],
    ['user_id with a slash', signed({ ...base, user_id: 'u/1' })],
    ['timestamp 0', signed({ ...base, timestamp: 0 })],
    ['timestamp fractional', signed({ ...base, timestamp: 1.5 })],
    ['timestamp ISO', signed({ ...base, timestamp: '2026-11-27T10:00:00Z' })],
    ['key_id of 64', signed({ ...base, key_id: 'k'.repeat(64) })],
    ['key_id of 65', signed({ ...base, key_id: 'k'.repeat(65) })],
    ['key_id with a colon', signed({ ...base, key_id: 'k:1' })],
    ['signature not a string', { ...signed(base), signature: 7 }],
    ['an array', [signed(base)]],
    ['null', null],
    ...['impression_id', 'ad_id', 'campaign_id', 'advertiser_id', 'user_id', 'timestamp', 'key_id', 'signature'].map((k): [string, unknown] => [`without ${k}`, without(k)]),
  ];
  for (const [label, body] of cases) {
    let accepted = true;
    try {
      parseClick(JSON.parse(JSON.stringify(body)));
    } catch (err) {
      assert.ok(isAppError(err) && err.code === 'INVALID_FIELD', `${label}: ${String(err)}`);
      accepted = false;
    }
    assert.equal(validate(JSON.parse(JSON.stringify(body))), accepted, `${label}: the schema says ${!accepted}, parseClick says ${accepted}`);
  }
  // Stricter on purpose: any other signature string passes parsing and fails verification (401).
  assert.equal(validate({ ...signed(base), signature: 'ABC' }), false);
});

test('the from/to patterns admit every instant the query API parses', () => {
  const from = deref(QUERY_OPENAPI, { $ref: '#/components/parameters/from' }).schema as Obj;
  const patterns = (from.anyOf as Obj[]).map((s) => new RegExp(s.pattern as string, 'u'));
  const samples = [
    '0', '1764237600000', '999999999999999', '1234567890123456', '-1', '1e3', '', 'yesterday',
    '2026-11-27T10:00:00Z', '2026-11-27t10:00z', '2026-11-27T10:00:00.123456789+01:00', '2026-11-27T10:00:00 01:00',
    '2026-11-27T10:00:00+0100', '2026-11-27T10:00:00-05:30', '2026-11-27T10:00:00', '2026-11-27', '2026-02-30T00:00:00Z',
    '9999-12-31T23:59:59Z', '2026-11-27T24:00:00Z', '2026-11-27T10:00:00+01',
  ];
  for (const s of samples) {
    const matches = patterns.some((p) => p.test(s));
    if (parseInstant(s) !== null) assert.ok(matches, `${JSON.stringify(s)} is parsed but the document refuses it`);
    if (!matches) assert.equal(parseInstant(s), null, `${JSON.stringify(s)} is refused by the document but parsed`);
  }
  const granularity = deref(QUERY_OPENAPI, (deref(QUERY_OPENAPI, { $ref: '#/components/parameters/granularity' }).schema as Obj));
  assert.deepEqual(granularity.enum, ['1m', '5m', '1h']);
});

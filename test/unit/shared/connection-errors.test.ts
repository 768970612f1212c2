// Issue 16: what the HTTP parser answers before any route runs (a request that is not HTTP,
// headers over Node's limit, headers or a body past their timeout) is in the one error shape
// and in each service's OpenAPI document, on both ports, checked against a listening server
// over a raw socket (fetch cannot send these requests). Before this, fastify's default
// answered `{"error":"Request Timeout","message":"Client Timeout","statusCode":408}`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { buildGatewayApp } from '../../../src/gateway/app.ts';
import { GATEWAY_OPENAPI } from '../../../src/gateway/openapi.ts';
import { buildQueryApp } from '../../../src/query/app.ts';
import { QUERY_OPENAPI } from '../../../src/query/openapi.ts';
import { ERRORS, type ErrorCode } from '../../../src/shared/errors.ts';
import { createRegistry } from '../../../src/shared/metrics.ts';
import { CONNECTION_EXTENSION, type OpenApiDocument } from '../../../src/shared/openapi.ts';
import type { Registry } from 'prom-client';
import { FakeDedup, FakeLimiter, FakePublisher } from '../gateway/fakes.ts';
import { FakeRepository } from '../query/fake-repository.ts';

const logger = pino({ level: 'silent' });
const timeouts = { headersTimeoutMs: 300, requestTimeoutMs: 600 };

function gateway(registry: Registry): FastifyInstance {
  return buildGatewayApp({
    options: {
      signingKeys: new Map([['k1', 'secret']]), maxClickAgeMs: 86_400_000, maxClockSkewMs: 300_000, maxBodyBytes: 4096,
      maxBatchBodyBytes: 1 << 20, maxBatchClicks: 1000, trustedProxies: [], retryAfterSec: 2, ipHashKey: 'k', gatewayId: 'unit', timeouts,
    },
    publisher: new FakePublisher(), dedup: new FakeDedup(), rateLimiter: new FakeLimiter(), logger, registry,
  }) as unknown as FastifyInstance;
}
const query = (registry: Registry): FastifyInstance => buildQueryApp({ repo: new FakeRepository(), logger, registry, options: { timeouts } } as never) as unknown as FastifyInstance;

interface Case { name: string; bytes: string; drip?: boolean; code: ErrorCode }
// Only the gateway has routes that take a body (the query API answers before reading one).
const BODY_CASE: Case = { name: 'a body that never completes', bytes: 'POST /v1/clicks/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{', drip: true, code: 'REQUEST_TIMEOUT' };
const CASES: Case[] = [
  { name: 'a header that trickles forever', bytes: 'GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ', drip: true, code: 'REQUEST_TIMEOUT' },
  { name: 'headers that never complete', bytes: 'GET /healthz HTTP/1.1\r\nhost: x\r\n', code: 'REQUEST_TIMEOUT' },
  { name: 'a header over 16 KiB', bytes: `GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, code: 'HEADERS_TOO_LARGE' },
  { name: 'a URL over 16 KiB', bytes: `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nhost: x\r\n\r\n`, code: 'HEADERS_TOO_LARGE' },
  { name: 'a request line that is not HTTP', bytes: 'GARBAGE\r\n\r\n', code: 'BAD_REQUEST' },
  { name: 'broken chunked framing', bytes: 'POST /v1/clicks HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', code: 'BAD_REQUEST' },
  { name: 'Content-Length with Transfer-Encoding', bytes: 'POST /v1/clicks HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n{}', code: 'BAD_REQUEST' },
];

/** Writes `bytes` (then a byte every 100 ms if `drip`) and collects everything until the server closes. */
function exchange(port: number, bytes: string, drip = false): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let timer: NodeJS.Timeout | undefined;
    const s = connect(port, '127.0.0.1', () => {
      s.write(bytes);
      if (drip) timer = setInterval(() => s.write(' '), 100);
    });
    const limit = setTimeout(() => { s.destroy(); reject(new Error(`no close within 5 s; got ${JSON.stringify(out.slice(0, 200))}`)); }, 5000);
    s.on('data', (d) => (out += d));
    s.on('error', () => undefined);
    s.on('close', () => { clearInterval(timer); clearTimeout(limit); resolve(out); });
  });
}

function parse(raw: string): { status: number; headers: Map<string, string>; body: unknown } {
  const [head, body = ''] = raw.split('\r\n\r\n');
  const [statusLine, ...lines] = head!.split('\r\n');
  const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as [string, string]));
  return { status: Number(statusLine!.split(' ')[1]), headers, body: JSON.parse(body) };
}

const SERVICES = [
  { service: 'gateway', build: gateway, doc: GATEWAY_OPENAPI, cases: [BODY_CASE, ...CASES] },
  { service: 'query', build: query, doc: QUERY_OPENAPI, cases: CASES },
] as const;

for (const { service, build, doc, cases } of SERVICES) {
  test(`${service}: connection-level refusals are in the error shape and in the OpenAPI document`, async () => {
    const registry = createRegistry(service, false);
    const app = build(registry);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const ajv = new Ajv2020({ strict: false });
    ajv.addSchema(structuredClone(doc) as never, 'https://adclick.invalid/openapi.json');
    try {
      const { port } = app.server.address() as AddressInfo;
      const responses = (doc as OpenApiDocument & Record<string, { responses: Record<string, unknown> }>)[CONNECTION_EXTENSION]?.responses;
      assert.ok(responses, `${service}: the document has ${CONNECTION_EXTENSION}`);
      for (const c of cases) {
        const raw = await exchange(port, c.bytes, c.drip);
        assert.ok(raw.length > 0, `${c.name}: an answer before the close`);
        const a = parse(raw);
        assert.equal(a.status, ERRORS[c.code].status, `${c.name}: ${raw.slice(0, 200)}`);
        assert.deepEqual(a.body, { error: { code: c.code, message: ERRORS[c.code].message } }, c.name);
        assert.equal(a.headers.get('connection'), 'close', c.name);
        assert.equal(a.headers.get('x-content-type-options'), 'nosniff', c.name);
        assert.match(a.headers.get('content-type') ?? '', /^application\/json/, c.name);
        assert.ok(String(a.status) in responses, `${c.name}: ${a.status} is documented`);
        const validate = ajv.compile({ $ref: `https://adclick.invalid/openapi.json#/${CONNECTION_EXTENSION}/responses/${a.status}/content/application~1json/schema` });
        assert.ok(validate(a.body), `${c.name}: ${JSON.stringify(validate.errors)}`);
      }
      const counted = await registry.getSingleMetric(`adclick_${service}_client_errors_total`)?.get();
      const byCode = Object.fromEntries((counted?.values ?? []).map((v) => [v.labels.code, v.value]));
      const expected: Record<string, number> = {};
      for (const c of cases) expected[c.code] = (expected[c.code] ?? 0) + 1;
      assert.deepEqual(byCode, expected, 'each refusal is counted by code');
    } finally {
      await app.close();
    }
  });
}

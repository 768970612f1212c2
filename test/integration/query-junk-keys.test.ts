// Junk API keys must not take the query API down (issue 16), on the real embedded engine.
// chdb runs one query at a time per process, so every storage call a stranger can cause
// delays every legitimate read. What runs inside chdb is counted with its own
// system.events SelectQuery counter, so "never reached storage" is what the engine saw.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildQueryApp, type QueryAppOptions } from '../../src/query/app.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { WindowAggregate } from '../../src/shared/proto.ts';
import { buildBatch, writeBatch, type SinkMessage } from '../../src/sink/batch.ts';
import { createApiKey } from '../../src/store/api-keys.ts';
import { EmbeddedStore } from '../../src/store/embedded-store.ts';
import { migrate } from '../../src/store/migrations.ts';
import { storeQueryRepository } from '../../src/store/query-repository.ts';

const logger = createLogger('test', 'silent');
const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 26 * 3_600_000;
const MIN = 60_000;
const SERIES = `/v1/campaigns/55/clicks?from=${T0}&to=${T0 + 3 * MIN}&granularity=1m`;
/** Storage work from the query API waits at most this long for the engine (the queue's deadline). */
const MAX_WAIT_MS = 1500;
const MAX_QUEUED = 30;

const dataDir = mkdtempSync(join(tmpdir(), 'adclick-junk-'));
let store: EmbeddedStore;
let apiKey = '';

before(async () => {
  // libchdb binds one data directory per process: one store for the whole file.
  store = await EmbeddedStore.open({ path: join(dataDir, 'clickhouse'), logger, queue: { maxQueued: MAX_QUEUED, maxLookupQueued: MAX_QUEUED, maxWaitMs: MAX_WAIT_MS } } as Parameters<typeof EmbeddedStore.open>[0]);
  await migrate(store, logger);
  const msgs: SinkMessage[] = [];
  for (let w = 0; w < 3; w++) {
    const value = Buffer.from(WindowAggregate.encode({ granularity: 1, adId: 1, campaignId: 55, advertiserId: 7, windowStartMs: T0 + w * MIN, windowEndMs: T0 + (w + 1) * MIN, clicks: w + 1, final: true, watermarkMs: T0 + 10 * MIN, emittedAtMs: T0 + 10 * MIN }).finish());
    msgs.push({ topic: 'click-aggregates', partition: 0, offset: String(w), key: null, value });
  }
  await writeBatch(store, buildBatch(msgs));
  apiKey = (await createApiKey(store, 7)).api_key;
});

after(async () => {
  await store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** SELECTs the engine has run so far (the counting query itself is one of them). */
async function selects(): Promise<number> {
  const rows = await store.query<{ value: number }>("SELECT value FROM system.events WHERE event = 'SelectQuery'");
  return Number(rows[0]?.value ?? 0);
}

/** SELECTs run by `fn`, not counting the two counting queries. */
async function selectsDuring(fn: () => Promise<void>): Promise<number> {
  const before = await selects();
  await fn();
  return (await selects()) - before - 1;
}

const wellFormedJunk = () => 'ak_' + randomBytes(32).toString('base64url');

function app(options: Partial<QueryAppOptions> & Record<string, unknown> = {}): FastifyInstance {
  return buildQueryApp({ repo: storeQueryRepository(store), logger, clock: () => T0 + 20 * MIN, options: { apiKeyCacheTtlMs: 60_000, ...options } });
}

test('chdb: a token that cannot be a minted key is refused with 401 before any storage lookup', { timeout: 60_000 }, async () => {
  const a = app();
  try {
    // RFC 6750 tokens that our minting (`ak_` + 32 random bytes, base64url) never produces:
    // wrong prefix, wrong length, and 43 characters whose last one carries bits 32 bytes cannot.
    const tokens = [
      ...Array.from({ length: 100 }, (_, i) => `junk-token-${i}-${randomBytes(8).toString('hex')}`),
      ...Array.from({ length: 50 }, () => 'ak_' + randomBytes(40).toString('base64url')),
      ...Array.from({ length: 50 }, () => 'ak_' + randomBytes(32).toString('base64url').slice(0, 42) + 'B'),
      ...Array.from({ length: 20 }, () => 'AK_' + randomBytes(32).toString('base64url').slice(3)),
    ];
    const statuses: number[] = [];
    const ran = await selectsDuring(async () => {
      // A different client each, so no per-client budget is what stops them.
      const res = await Promise.all(tokens.map((t, i) => a.inject({ url: '/v1/campaigns', headers: { authorization: `Bearer ${t}` }, remoteAddress: `10.1.${i >> 8}.${i & 255}` })));
      for (const r of res) {
        statuses.push(r.statusCode);
        assert.equal(r.json().error.code, 'UNAUTHORIZED');
      }
    });
    assert.deepEqual([...new Set(statuses)], [401]);
    assert.equal(ran, 0, 'malformed keys reached storage');
  } finally {
    await a.close();
  }
});

test('chdb: failed authentications are limited per client (429 + Retry-After) and cached; a known key keeps working', { timeout: 60_000 }, async () => {
  const a = app({ authGuard: { failureBurst: 10, failuresPerMin: 6 } });
  try {
    const client = '192.0.2.1';
    const good = { authorization: `Bearer ${apiKey}` };
    assert.equal((await a.inject({ url: '/v1/campaigns', headers: good, remoteAddress: client })).statusCode, 200);

    const flood = Array.from({ length: 200 }, wellFormedJunk);
    let limited = 0;
    const ran = await selectsDuring(async () => {
      const res = await Promise.all(flood.map((t) => a.inject({ url: '/v1/campaigns', headers: { authorization: `Bearer ${t}` }, remoteAddress: client })));
      for (const r of res) {
        // 503 + Retry-After: one of the few lookups the client is allowed met a full storage
        // queue (a loaded box); shed, never served and never an error of another kind.
        assert.ok(r.statusCode === 401 || r.statusCode === 429 || r.statusCode === 503, `status ${r.statusCode}`);
        if (r.statusCode === 503) assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/);
        if (r.statusCode === 429) {
          limited++;
          assert.equal(r.json().error.code, 'RATE_LIMITED');
          assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/);
        }
      }
    });
    assert.ok(ran <= 10, `${ran} junk lookups reached storage from one client (budget 10)`);
    assert.ok(limited >= 190, `${limited} of 200 limited`);
    // The client's key cached before the flood is served throughout; another client is unaffected.
    assert.equal((await a.inject({ url: '/v1/campaigns', headers: good, remoteAddress: client })).statusCode, 200);
    const other = await a.inject({ url: '/v1/campaigns', headers: { authorization: `Bearer ${wellFormedJunk()}` }, remoteAddress: '192.0.2.2' });
    assert.equal(other.statusCode, 401);

    // One junk key from many clients: looked up once (bounded negative cache).
    const junk = wellFormedJunk();
    const once = await selectsDuring(async () => {
      for (let i = 0; i < 20; i++) {
        const r = await a.inject({ url: '/v1/campaigns', headers: { authorization: `Bearer ${junk}` }, remoteAddress: `198.51.100.${i + 1}` });
        assert.equal(r.statusCode, 401);
      }
    });
    assert.equal(once, 1, 'a failed key is remembered for a while');
    // Minting a key in this process forgets remembered failures (a key created right after a failed try works at once).
    await createApiKey(store, 8);
    const again = await selectsDuring(async () => {
      assert.equal((await a.inject({ url: '/v1/campaigns', headers: { authorization: `Bearer ${junk}` }, remoteAddress: '198.51.100.99' })).statusCode, 401);
    });
    assert.equal(again, 1);
  } finally {
    await a.close();
  }
});

async function listening(a: FastifyInstance): Promise<string> {
  await a.listen({ host: '127.0.0.1', port: 0 });
  const addr = a.server.address() as { port: number };
  return `http://127.0.0.1:${addr.port}`;
}

test('chdb: queued storage work of a client that went away, or past its deadline, does not run; a full queue answers 503', { timeout: 120_000 }, async () => {
  const a = app();
  const base = await listening(a);
  const auth = { authorization: `Bearer ${apiKey}` };
  try {
    assert.equal((await fetch(base + SERIES, { headers: auth })).status, 200, 'caches the key');

    // Client gone: 20 series requests queue behind one busy second of the engine, their
    // clients give up after 200 ms. None of their reads may run afterwards.
    const gone = await selectsDuring(async () => {
      const busy = store.query('SELECT sleep(1)');
      await new Promise((r) => setTimeout(r, 50));
      const settled = await Promise.allSettled(Array.from({ length: 20 }, () => fetch(base + SERIES, { headers: auth, signal: AbortSignal.timeout(200) })));
      assert.ok(settled.every((s) => s.status === 'rejected'), 'clients gave up');
      await busy;
      await new Promise((r) => setTimeout(r, 300));
    });
    assert.ok(gone <= 1, `${gone} reads of clients that went away ran (only the sleep may)`);

    // Deadline: the engine is busy longer than the queue wait; the waiting requests answer
    // 503 + Retry-After at the deadline, and their reads never run.
    const late = await selectsDuring(async () => {
      const busy = store.query('SELECT sleep(2.5)');
      await new Promise((r) => setTimeout(r, 50));
      const t = Date.now();
      const res = await Promise.all(Array.from({ length: 10 }, () => fetch(base + SERIES, { headers: auth })));
      const waited = Date.now() - t;
      for (const r of res) {
        assert.equal(r.status, 503);
        assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'UNAVAILABLE');
        assert.match(String(r.headers.get('retry-after')), /^[1-9]\d*$/);
      }
      assert.ok(waited < 2300, `answered after ${waited} ms, not at the ${MAX_WAIT_MS} ms deadline`);
      await busy;
      await new Promise((r) => setTimeout(r, 300));
    });
    assert.ok(late <= 1, `${late} reads past their deadline ran (only the sleep may)`);

    // Bounded: with the engine busy, more waiting reads than the queue holds are refused at once.
    const busy = store.query('SELECT sleep(1)');
    await new Promise((r) => setTimeout(r, 50));
    const t = Date.now();
    const early: number[] = [];
    const res = await Promise.all(Array.from({ length: 2 * MAX_QUEUED }, async () => {
      const r = await fetch(base + SERIES, { headers: auth });
      if (r.status === 503) {
        assert.match(String(r.headers.get('retry-after')), /^[1-9]\d*$/);
        early.push(Date.now() - t);
      }
      await r.arrayBuffer();
      return r.status;
    }));
    await busy;
    assert.ok(res.every((s) => s === 200 || s === 503), String(res));
    assert.ok(res.filter((s) => s === 503).length >= MAX_QUEUED - 5, `only ${res.filter((s) => s === 503).length} refused`);
    assert.ok(early.filter((ms) => ms < 800).length >= MAX_QUEUED - 5, 'refused at once, not after waiting');
    assert.ok(res.includes(200), 'the queued ones are served');
  } finally {
    await a.close();
  }
});

// The sink against a real ClickHouse (embedded chdb; Debian's 18.16 server): large counts
// are stored and served exactly. The consumer is injected (no broker needed here).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import { createLogger } from '../../src/shared/logger.ts';
import { WindowAggregate } from '../../src/shared/proto.ts';
import { AggregateSink, type SinkConsumer } from '../../src/sink/aggregate-sink.ts';
import type { SinkMessage, TopicPartitionOffset } from '../../src/sink/batch.ts';
import { DB, migrate } from '../../src/store/migrations.ts';
import { openStore } from '../../src/store/open-store.ts';
import { storeQueryRepository } from '../../src/store/query-repository.ts';
import type { Store } from '../../src/store/store.ts';
import { startClickHouseServer } from '../helpers/clickhouse-server.ts';

const logger = createLogger('test', 'silent');
const dataDir = mkdtempSync(join(tmpdir(), 'adclick-sink-store-'));
let store: Store;

before(async () => {
  store = await openStore({ clickhouseUrl: '', dataDir }, logger);
  await migrate(store, logger);
});
after(async () => {
  await store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

// An hour-aligned time a day ago: inside raw_clicks' 7-day TTL, long closed.
const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 26 * 3_600_000;
const MIN = 60_000;

function agg(offset: number, adv: number, camp: number, ad: number, clicks: number, final = true, partition = 0): SinkMessage {
  const value = Buffer.from(WindowAggregate.encode({ granularity: 1, adId: ad, campaignId: camp, advertiserId: adv, windowStartMs: T0, windowEndMs: T0 + MIN, clicks, final, emittedAtMs: T0 + MIN }).finish());
  return { topic: 'click-aggregates', partition, offset: String(offset), key: Buffer.from(String(ad)), value };
}

function injected() {
  let deliver!: (m: SinkMessage[]) => void;
  const commits: TopicPartitionOffset[][] = [];
  const consumer: SinkConsumer = {
    async start(d) { deliver = d; },
    async commit(o) { commits.push(o); },
    pause() {}, resume() {},
    async stop() {},
  };
  return { consumer, commits, deliver: (m: SinkMessage[]) => deliver(m) };
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: () => Promise<string> | string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms: ${await what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const range = { granularity: '1m' as const, fromMs: T0, toMs: T0 + MIN };

async function largeCounts(store: Store, adv: number): Promise<void> {
  const c = injected();
  const registry = new Registry();
  const sink = new AggregateSink({ store, consumer: c.consumer, logger, registry, maxWaitMs: 10, retryInitialMs: 5, retryMaxMs: 50 });
  await sink.start();
  const repo = storeQueryRepository(store);
  try {
    // One window growing past 2^31 (it used to freeze at its last count below), and windows of
    // 2^32+1 and 2^53-1 clicks.
    c.deliver([agg(0, adv, 1, 11, 2 ** 31 - 1, false), agg(1, adv, 1, 11, 2 ** 31 + 5, true), agg(2, adv, 2, 12, 2 ** 32 + 1), agg(3, adv, 3, 13, 2 ** 53 - 1)]);
    await until(() => c.commits.length > 0, 10_000, () => 'no commit');
    assert.deepEqual(await repo.series({ advertiserId: adv, campaignId: 1, ...range }), [{ windowStartMs: T0, clicks: 2 ** 31 + 5, revised: false }]);
    assert.deepEqual(await repo.series({ advertiserId: adv, campaignId: 2, ...range }), [{ windowStartMs: T0, clicks: 2 ** 32 + 1, revised: false }]);
    assert.deepEqual(await repo.series({ advertiserId: adv, campaignId: 3, adId: 13, ...range }), [{ windowStartMs: T0, clicks: 2 ** 53 - 1, revised: false }]);
    assert.deepEqual(await repo.campaignTotals(adv), [{ campaignId: 1, clicks: 2 ** 31 + 5 }, { campaignId: 2, clicks: 2 ** 32 + 1 }, { campaignId: 3, clicks: 2 ** 53 - 1 }]);
    const dl = await store.query(`SELECT reason FROM ${DB}.dead_letters WHERE source_topic = 'click-aggregates' AND offset <= 3`);
    assert.deepEqual(dl, [], 'nothing dead-lettered');

    // Above 2^53-1 the sink cannot hold the count exactly: a dead letter with a clear reason,
    // the offsets committed, the served count unchanged (not rounded).
    c.deliver([agg(4, adv, 3, 13, 2 ** 60)]);
    await until(() => c.commits.length > 1, 10_000, () => 'no second commit');
    const [d] = await store.query<{ reason: string; detail: string; stage: string }>(`SELECT reason, detail, stage FROM ${DB}.dead_letters WHERE source_topic = 'click-aggregates' AND offset = 4`);
    assert.equal(d?.reason, 'COUNT_OUT_OF_RANGE');
    assert.equal(d?.stage, 'sink');
    assert.match(d!.detail, /2\^53/);
    assert.deepEqual(await repo.series({ advertiserId: adv, campaignId: 3, adId: 13, ...range }), [{ windowStartMs: T0, clicks: 2 ** 53 - 1, revised: false }]);
  } finally {
    await sink.stop();
  }
}

test('chdb: counts at and above 2^31 up to 2^53-1 are stored and served exactly; above 2^53-1 a dead letter, not a frozen count', () => largeCounts(store, 7001));

test('clickhouse-server (Debian 18.16 here): the same large counts over HTTP, exactly', async () => {
  const server = await startClickHouseServer();
  const s = await openStore({ clickhouseUrl: server.url, dataDir: '/nonexistent' }, logger);
  try {
    await migrate(s, logger);
    await largeCounts(s, 7003);
  } finally {
    await s.close();
    await server.stop();
  }
});

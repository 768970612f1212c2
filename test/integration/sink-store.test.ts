// The sink against a real ClickHouse (embedded chdb; Debian's 18.16 server): large counts
// are stored and served exactly, and a row ClickHouse refuses for good is quarantined
// instead of stalling every table. The consumer is injected (no broker needed here).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import { createLogger } from '../../src/shared/logger.ts';
import { ClickEvent, WindowAggregate, WindowAudit } from '../../src/shared/proto.ts';
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

test('a row ClickHouse refuses for good is quarantined: the other rows of every table are stored, offsets committed', async () => {
  // A real refusal by the engine: a CHECK constraint (as an operator might add) that the
  // sink's own validation does not know about. ClickHouse answers VIOLATED_CONSTRAINT (469).
  await store.command(`ALTER TABLE ${DB}.click_aggregates ADD CONSTRAINT refuse_ad_666 CHECK ad_id != 666`);
  const c = injected();
  const registry = new Registry();
  const sink = new AggregateSink({ store, consumer: c.consumer, logger, registry, maxWaitMs: 10, retryInitialMs: 5, retryMaxMs: 50 });
  await sink.start();
  const repo = storeQueryRepository(store);
  const adv = 7002;
  const bad = agg(21, adv, 1, 666, 2, true, 1);
  const raw: SinkMessage = {
    topic: 'clicks-deduped', partition: 0, offset: '40', key: Buffer.from('601'),
    value: Buffer.from(ClickEvent.encode({ impressionId: 'imp_quarantine_1', eventType: 'click', adId: 601, campaignId: 1, advertiserId: adv, eventTimeMs: T0 + 1000, receivedAtMs: T0 + 1100 }).finish()),
  };
  const audit: SinkMessage = {
    topic: 'click-audit', partition: 0, offset: '9', key: null,
    value: Buffer.from(WindowAudit.encode({ windowStartMs: T0 + 59 * MIN, bucket: 3, accepted: 5, duplicates: 0, rejected: 0, version: 5, emittedAtMs: T0 + 60 * MIN }).finish()),
  };
  try {
    c.deliver([agg(20, adv, 1, 601, 3, true, 1), bad, agg(22, adv, 1, 602, 4, true, 1), raw, audit]);
    const stored = async () => {
      const [a] = await store.query<{ n: number }>(`SELECT count() AS n FROM ${DB}.click_aggregates WHERE advertiser_id = ${adv}`);
      const [w] = await store.query<{ n: number }>(`SELECT count() AS n FROM ${DB}.window_audit WHERE bucket = 3`);
      return `commits ${c.commits.length}, aggregates of adv ${adv}: ${a?.n}, window_audit rows: ${w?.n}, write failures ${(await registry.getSingleMetric('adclick_sink_write_failures_total')?.get())?.values[0]?.value}`;
    };
    await until(() => c.commits.length > 0, 15_000, stored);
    assert.deepEqual(c.commits[0], [
      { topic: 'click-aggregates', partition: 1, offset: '23' },
      { topic: 'clicks-deduped', partition: 0, offset: '41' },
      { topic: 'click-audit', partition: 0, offset: '10' },
    ]);
    // The good rows, in every table.
    assert.deepEqual(await repo.campaignTotals(adv), [{ campaignId: 1, clicks: 7 }]);
    const [w] = await store.query<{ accepted: number }>(`SELECT accepted FROM ${DB}.window_audit WHERE bucket = 3 AND window_start = toDateTime(${(T0 + 59 * MIN) / 1000})`);
    assert.equal(w?.accepted, 5);
    const [r] = await store.query<{ n: number }>(`SELECT count() AS n FROM ${DB}.raw_clicks WHERE impression_id = 'imp_quarantine_1'`);
    assert.equal(r?.n, 1);
    // The refused one, in quarantine: replayable from its coordinates or its payload.
    const q = await store.query<{ stage: string; source_topic: string; partition: number; offset: number; reason: string; detail: string; key: string; payload: string }>(
      `SELECT stage, source_topic, partition, offset, reason, detail, key, payload FROM ${DB}.dead_letters WHERE reason = 'STORE_REFUSED'`);
    assert.equal(q.length, 1);
    assert.deepEqual({ ...q[0], detail: undefined }, {
      stage: 'sink', source_topic: 'click-aggregates', partition: 1, offset: 21, reason: 'STORE_REFUSED', detail: undefined,
      key: bad.key!.toString('base64'), payload: bad.value!.toString('base64'),
    });
    assert.match(q[0]!.detail, /click_aggregates/);
    assert.match(q[0]!.detail, /469|VIOLATED_CONSTRAINT/);
    const metrics = await registry.metrics();
    assert.match(metrics, /adclick_sink_quarantined_total\{table="click_aggregates"\} 1/);
    assert.equal(sink.healthy(), true);
    // Later batches keep flowing.
    c.deliver([agg(23, adv, 1, 603, 1, true, 1)]);
    await until(() => c.commits.length > 1, 10_000, stored);
    assert.deepEqual(await repo.campaignTotals(adv), [{ campaignId: 1, clicks: 8 }]);
  } finally {
    await sink.stop();
    await store.command(`ALTER TABLE ${DB}.click_aggregates DROP CONSTRAINT refuse_ad_666`);
  }
});

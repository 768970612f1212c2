import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { createLogger } from '../../../src/shared/logger.ts';
import { ClickEvent, WatermarkProgress, WindowAggregate } from '../../../src/shared/proto.ts';
import { AggregateSink, type SinkConsumer } from '../../../src/sink/aggregate-sink.ts';
import type { SinkMessage, TopicPartitionOffset } from '../../../src/sink/batch.ts';
import { clickhouseErrorCode, isPermanentRefusal } from '../../../src/sink/store-refusal.ts';
import { pipelineLines } from '../../../src/stack/status-figures.ts';
import type { Store } from '../../../src/store/store.ts';

const logger = createLogger('test', 'silent');
const T0 = Date.UTC(2026, 10, 27, 10, 0);

function aggMsg(offset: number, ad: number, clicks = 1): SinkMessage {
  const value = Buffer.from(WindowAggregate.encode({ granularity: 1, adId: ad, campaignId: 2, advertiserId: 3, windowStartMs: T0, windowEndMs: T0 + 60_000, clicks, emittedAtMs: T0 }).finish());
  return { topic: 'click-aggregates', partition: 0, offset: String(offset), key: Buffer.from(`k${ad}`), value };
}

function rawMsg(offset: number, imp: string): SinkMessage {
  const value = Buffer.from(ClickEvent.encode({ impressionId: imp, eventType: 'click', adId: 9, campaignId: 2, advertiserId: 3, eventTimeMs: T0 + 5, receivedAtMs: T0 + 6 }).finish());
  return { topic: 'clicks-deduped', partition: 2, offset: String(offset), key: null, value };
}

const chError = (code: number, name: string) => new Error(`Code: ${code}. DB::Exception: refused (${name}): (at row 1)\n: While executing ParallelParsingBlockInputFormat. (${name})`);

/**
 * A store that refuses every insert holding a row `refuse` picks (with `error`), like
 * ClickHouse refusing a whole insert block for one bad row, and can fail inserts into one
 * table a number of times.
 */
function refusingStore(refuse: (table: string, row: Record<string, unknown>) => Error | null, failTable?: { table: string; times: number; error: Error }) {
  const stored = new Map<string, Record<string, unknown>[]>();
  let inserts = 0;
  const store: Store = {
    storagePolicy: '', kind: 'server',
    capabilities: { version: 'fake', serverParams: true, ttl: true, storagePolicies: true, insertDedupToken: true, projections: true },
    async query() { return []; },
    async insert(table, rows) {
      inserts++;
      if (failTable && failTable.table === table && failTable.times > 0) { failTable.times--; throw failTable.error; }
      for (const r of rows) { const e = refuse(table, r); if (e) throw e; }
      stored.set(table, [...(stored.get(table) ?? []), ...rows]);
    },
    async command() {}, async ping() { return true; }, async close() {},
  };
  return { store, stored, inserts: () => inserts };
}

class FakeConsumer implements SinkConsumer {
  deliver!: (m: SinkMessage[]) => void;
  commits: TopicPartitionOffset[][] = [];
  async start(deliver: (m: SinkMessage[]) => void) { this.deliver = deliver; }
  async commit(o: TopicPartitionOffset[]) { this.commits.push(o); }
  pause() {} resume() {}
  async stop() {}
}

const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timeout');
    await new Promise((r) => setTimeout(r, 5));
  }
};
const metric = async (r: Registry, name: string) => (await r.getSingleMetric(name)!.get()).values;

test('ClickHouse error codes: bad data is permanent; engine trouble and anything unknown is transient', () => {
  assert.equal(clickhouseErrorCode(chError(469, 'VIOLATED_CONSTRAINT')), 469);
  const server = Object.assign(new Error('Unknown element'), { code: '691', type: 'UNKNOWN_ELEMENT_OF_ENUM' });
  assert.equal(clickhouseErrorCode(server), 691);
  for (const [code, name] of [[469, 'VIOLATED_CONSTRAINT'], [53, 'TYPE_MISMATCH'], [72, 'CANNOT_PARSE_NUMBER'], [131, 'TOO_LARGE_STRING_SIZE'], [321, 'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE'], [27, 'CANNOT_PARSE_INPUT_ASSERTION_FAILED']] as const) {
    assert.equal(isPermanentRefusal(chError(code, name)), true, name);
  }
  for (const [code, name] of [[252, 'TOO_MANY_PARTS'], [241, 'MEMORY_LIMIT_EXCEEDED'], [159, 'TIMEOUT_EXCEEDED'], [209, 'SOCKET_TIMEOUT'], [210, 'NETWORK_ERROR'], [60, 'UNKNOWN_TABLE'], [16, 'NO_SUCH_COLUMN_IN_TABLE'], [36, 'BAD_ARGUMENTS'], [999, 'KEEPER_EXCEPTION']] as const) {
    assert.equal(isPermanentRefusal(chError(code, name)), false, name);
  }
  assert.equal(isPermanentRefusal(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' })), false);
  assert.equal(isPermanentRefusal(new Error('Timeout error.')), false);
  assert.equal(isPermanentRefusal('Code: 469. DB::Exception: not an Error'), false);
});

test('a permanently refused row is isolated and quarantined; every other row of every table is stored and the batch committed', async () => {
  const c = new FakeConsumer();
  const registry = new Registry();
  const { store, stored } = refusingStore((table, r) => (table === 'adclick.click_aggregates' && r.ad_id === 666 ? chError(469, 'VIOLATED_CONSTRAINT') : null));
  const sink = new AggregateSink({ store, consumer: c, logger, registry, maxRows: 1000, maxWaitMs: 10, retryInitialMs: 5 });
  await sink.start();
  const msgs = [...Array.from({ length: 40 }, (_, i) => aggMsg(i, i === 17 ? 666 : 100 + i)), aggMsg(40, 666, 5), rawMsg(7, 'imp_q1')];
  c.deliver(msgs);
  await until(() => c.commits.length === 1);
  assert.deepEqual(c.commits[0], [{ topic: 'click-aggregates', partition: 0, offset: '41' }, { topic: 'clicks-deduped', partition: 2, offset: '8' }]);
  const aggs = stored.get('adclick.click_aggregates')!;
  assert.deepEqual(aggs.map((r) => r.ad_id).sort(), Array.from({ length: 40 }, (_, i) => 100 + i).filter((a) => a !== 117).sort());
  assert.equal(stored.get('adclick.raw_clicks')!.length, 1);
  // ad 666 has two records in the batch: the newest (5 clicks, offset 40) is the row, so its record is the one quarantined.
  const dl = stored.get('adclick.dead_letters')!;
  assert.equal(dl.length, 1);
  assert.deepEqual({ ...dl[0], detail: undefined, detected_at_ms: undefined }, {
    stage: 'sink', source_topic: 'click-aggregates', partition: 0, offset: 40, reason: 'STORE_REFUSED', detail: undefined, detected_at_ms: undefined,
    key: msgs[40]!.key!.toString('base64'), payload: msgs[40]!.value!.toString('base64'),
  });
  assert.match(String(dl[0]!.detail), /click_aggregates: Code 469 \(VIOLATED_CONSTRAINT\)/);
  assert.deepEqual((await metric(registry, 'adclick_sink_quarantined_total')).filter((v) => v.value > 0).map((v) => [v.labels.table, v.value]), [['click_aggregates', 1]]);
  assert.match(pipelineLines(await registry.metrics()).find((l) => l.startsWith('sink'))!, /QUARANTINED 1 rows \(dead_letters reason STORE_REFUSED/);
  assert.equal((await metric(registry, 'adclick_sink_dead_letters_total'))[0]!.value, 1);
  assert.equal((await metric(registry, 'adclick_sink_write_failures_total'))[0]!.value, 0);
  assert.equal(sink.healthy(), true);
  await sink.stop();
});

test('a transient failure (too many parts) is retried as before: nothing quarantined, nothing committed until it passes', async () => {
  const c = new FakeConsumer();
  const registry = new Registry();
  const failTable = { table: 'adclick.click_aggregates', times: 3, error: chError(252, 'TOO_MANY_PARTS') };
  const { store, stored } = refusingStore(() => null, failTable);
  const sink = new AggregateSink({ store, consumer: c, logger, registry, maxRows: 1000, maxWaitMs: 10, retryInitialMs: 5, retryMaxMs: 10 });
  await sink.start();
  c.deliver([aggMsg(0, 1), aggMsg(1, 2)]);
  await until(() => c.commits.length === 1);
  assert.equal(failTable.times, 0);
  assert.equal(stored.get('adclick.click_aggregates')!.length, 2);
  assert.equal(stored.get('adclick.dead_letters'), undefined);
  assert.equal((await metric(registry, 'adclick_sink_write_failures_total'))[0]!.value, 3);
  assert.deepEqual((await metric(registry, 'adclick_sink_quarantined_total')).filter((v) => v.value > 0), []);
  assert.match(pipelineLines(await registry.metrics()).find((l) => l.startsWith('sink'))!, /, quarantined 0(,|$)/);
  await sink.stop();
});

test('a transient failure while isolating refused rows: retried, the tables already done are not written again', async () => {
  const c = new FakeConsumer();
  const refusals: string[] = [];
  let flaky = 2;
  const { store, stored } = refusingStore((table, r) => {
    if (table !== 'adclick.click_aggregates') return null;
    if (r.ad_id === 666) { refusals.push(table); return chError(53, 'TYPE_MISMATCH'); }
    // The first inserts of a half without the bad row time out.
    return flaky-- > 0 ? Object.assign(new Error('Timeout error.'), { code: 'ETIMEDOUT' }) : null;
  });
  const sink = new AggregateSink({ store, consumer: c, logger, maxRows: 1000, maxWaitMs: 10, retryInitialMs: 5, retryMaxMs: 10 });
  await sink.start();
  c.deliver([rawMsg(0, 'imp_a'), aggMsg(0, 666), aggMsg(1, 5), aggMsg(2, 6), aggMsg(3, 7)]);
  await until(() => c.commits.length === 1);
  assert.equal(stored.get('adclick.raw_clicks')!.length, 1, 'raw_clicks written once');
  assert.deepEqual(stored.get('adclick.click_aggregates')!.map((r) => r.ad_id).sort(), [5, 6, 7]);
  assert.deepEqual(stored.get('adclick.dead_letters')!.map((d) => [d.reason, d.offset]), [['STORE_REFUSED', 0]]);
  await sink.stop();
});

test('never lost: when dead_letters refuses too, the batch is retried and nothing is committed', async () => {
  const c = new FakeConsumer();
  const registry = new Registry();
  const failTable = { table: 'adclick.dead_letters', times: 4, error: chError(469, 'VIOLATED_CONSTRAINT') };
  const { store, stored } = refusingStore((table, r) => (table === 'adclick.click_aggregates' && r.ad_id === 666 ? chError(469, 'VIOLATED_CONSTRAINT') : null), failTable);
  const sink = new AggregateSink({ store, consumer: c, logger, registry, maxRows: 1000, maxWaitMs: 10, retryInitialMs: 5, retryMaxMs: 10 });
  await sink.start();
  c.deliver([aggMsg(0, 1), aggMsg(1, 666)]);
  await until(() => failTable.times === 2);
  assert.equal(c.commits.length, 0, 'no commit while the quarantine is not stored');
  await until(() => c.commits.length === 1);
  assert.deepEqual(stored.get('adclick.dead_letters')!.map((d) => [d.reason, d.offset]), [['STORE_REFUSED', 1]]);
  assert.deepEqual((await metric(registry, 'adclick_sink_quarantined_total')).filter((v) => v.value > 0).map((v) => v.value), [1]);
  assert.equal((await metric(registry, 'adclick_sink_write_failures_total'))[0]!.value, 4);
  await sink.stop();
});

test('a dead letter the store refuses is never bisected away: the batch waits until dead_letters takes it', async () => {
  const c = new FakeConsumer();
  const failTable = { table: 'adclick.dead_letters', times: 3, error: chError(131, 'TOO_LARGE_STRING_SIZE') };
  const { store, stored } = refusingStore(() => null, failTable);
  const sink = new AggregateSink({ store, consumer: c, logger, maxRows: 1000, maxWaitMs: 10, retryInitialMs: 5, retryMaxMs: 10 });
  await sink.start();
  c.deliver([{ topic: 'click-aggregates', partition: 0, offset: '3', key: null, value: Buffer.from([0xff, 0xff]) }, aggMsg(4, 1)]);
  await until(() => c.commits.length === 1);
  assert.equal(failTable.times, 0);
  assert.deepEqual(stored.get('adclick.dead_letters')!.map((d) => d.reason), ['PROTOBUF_DECODE_FAILED']);
  await sink.stop();
});

test('with the watermark fence: a watermark row refused for good is quarantined, later watermarks are still stored', async () => {
  const c = new FakeConsumer();
  const registry = new Registry();
  const { store, stored } = refusingStore((table, r) => (table === 'adclick.pipeline_watermarks' && r.subtask === 0 && r.watermark_ms === T0 ? chError(321, 'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE') : null));
  const sink = new AggregateSink({ store, consumer: c, logger, registry, maxRows: 1000, maxWaitMs: 10, retryInitialMs: 5, fenceEnds: async () => new Map(), fenceCheckMs: 1, fenceSettleMs: 1 });
  await sink.start();
  const wm = (offset: number, subtask: number, watermarkMs: number): SinkMessage => ({
    topic: 'click-watermarks', partition: 0, offset: String(offset), key: Buffer.from(`s${subtask}`),
    value: Buffer.from(WatermarkProgress.encode({ subtask, parallelism: 2, watermarkMs, emittedAtMs: T0 + offset }).finish()),
  });
  const wmRows = () => (stored.get('adclick.pipeline_watermarks') ?? []).map((r) => [r.subtask, r.watermark_ms]);
  try {
    c.deliver([wm(0, 0, T0), wm(1, 1, T0 + 1000)]);
    await until(() => wmRows().length === 1);
    assert.deepEqual(wmRows(), [[1, T0 + 1000]]);
    await until(() => (stored.get('adclick.dead_letters') ?? []).length === 1);
    assert.deepEqual(stored.get('adclick.dead_letters')!.map((d) => [d.reason, d.source_topic, d.offset]), [['STORE_REFUSED', 'click-watermarks', 0]]);
    assert.equal((await metric(registry, 'adclick_sink_quarantined_total')).find((v) => v.labels.table === 'pipeline_watermarks')?.value, 1);
    // The next watermarks are not held behind the refused one.
    c.deliver([wm(2, 0, T0 + 2000), wm(3, 1, T0 + 3000)]);
    await until(() => wmRows().length === 3);
    assert.deepEqual(wmRows().slice(1).sort(), [[0, T0 + 2000], [1, T0 + 3000]]);
    assert.equal(sink.status().heldWatermarks, 0);
  } finally {
    await sink.stop();
  }
});

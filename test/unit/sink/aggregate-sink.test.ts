import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../../src/shared/logger.ts';
import { WindowAggregate } from '../../../src/shared/proto.ts';
import { AggregateSink, type SinkConsumer } from '../../../src/sink/aggregate-sink.ts';
import { buildBatch, type SinkMessage, type TopicPartitionOffset } from '../../../src/sink/batch.ts';
import { fakeStore } from './fake-store.ts';

const logger = createLogger('test', 'silent');
const T0 = Date.UTC(2026, 10, 27, 10, 0);

function aggMsg(partition: number, offset: number, ad: number, clicks: number): SinkMessage {
  const value = Buffer.from(WindowAggregate.encode({ granularity: 1, adId: ad, campaignId: 2, advertiserId: 3, windowStartMs: T0, windowEndMs: T0 + 60_000, clicks, emittedAtMs: T0 }).finish());
  return { topic: 'click-aggregates', partition, offset: String(offset), key: null, value };
}

class FakeConsumer implements SinkConsumer {
  deliver!: (m: SinkMessage[]) => void;
  events: string[] = [];
  commits: TopicPartitionOffset[][] = [];
  async start(deliver: (m: SinkMessage[]) => void) { this.deliver = deliver; }
  async commit(o: TopicPartitionOffset[]) { this.events.push('commit'); this.commits.push(o); }
  pause() { this.events.push('pause'); }
  resume() { this.events.push('resume'); }
  async stop() { this.events.push('stop'); }
}

const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timeout');
    await new Promise((r) => setTimeout(r, 5));
  }
};

test('batch → insert → commit: offsets committed only after every insert, as last+1 per partition', async () => {
  const c = new FakeConsumer();
  const { store, inserted } = fakeStore(c.events);
  const sink = new AggregateSink({ store, consumer: c, logger, maxRows: 1000, maxWaitMs: 20 });
  await sink.start();
  c.deliver([aggMsg(0, 10, 1, 1), aggMsg(1, 7, 2, 1), aggMsg(0, 11, 1, 3)]);
  await until(() => c.commits.length === 1);
  assert.deepEqual(c.events, ['insert:adclick.ad_owners', 'insert:adclick.click_aggregates', 'commit']);
  assert.deepEqual(c.commits[0], [{ topic: 'click-aggregates', partition: 0, offset: '12' }, { topic: 'click-aggregates', partition: 1, offset: '8' }]);
  // in-batch superseded emission dropped: one row per (ad, window), the newest
  const aggs = inserted.find((i) => i.table === 'adclick.click_aggregates')!.rows;
  assert.deepEqual(aggs.map((r) => [r.ad_id, r.clicks]), [[1, 3], [2, 1]]);
  await sink.stop();
  assert.equal(c.events.at(-1), 'stop');
});

test('ClickHouse down: no commit, consumption paused, the same batch retried until it succeeds', async () => {
  const c = new FakeConsumer();
  const { store, inserted } = fakeStore(c.events, 3);
  const sink = new AggregateSink({ store, consumer: c, logger, maxRows: 1000, maxWaitMs: 10, retryInitialMs: 5, retryMaxMs: 20 });
  await sink.start();
  c.deliver([aggMsg(0, 0, 1, 1), aggMsg(0, 1, 1, 2)]);
  await until(() => c.commits.length === 1);
  assert.deepEqual(c.events, ['insert-failed', 'pause', 'insert-failed', 'insert-failed', 'insert:adclick.ad_owners', 'insert:adclick.click_aggregates', 'commit', 'resume']);
  assert.deepEqual(c.commits[0], [{ topic: 'click-aggregates', partition: 0, offset: '2' }]);
  assert.equal(inserted.length, 2);
  assert.equal(sink.healthy(), true);
  await sink.stop();
});

test('maxRows splits batches; backpressure pauses at twice maxRows; stop flushes and commits the rest', async () => {
  const c = new FakeConsumer();
  const { store } = fakeStore(c.events);
  const sink = new AggregateSink({ store, consumer: c, logger, maxRows: 2, maxWaitMs: 60_000 });
  await sink.start();
  c.deliver([aggMsg(0, 0, 1, 1), aggMsg(0, 1, 2, 1), aggMsg(0, 2, 3, 1), aggMsg(0, 3, 4, 1), aggMsg(0, 4, 5, 1)]);
  assert.equal(c.events[0], 'pause');
  await until(() => c.commits.length === 2);
  assert.deepEqual(c.commits.map((x) => x[0]!.offset), ['2', '4']);
  // one record below maxRows waits for maxWait (60 s) — stop must flush it now
  await sink.stop();
  assert.deepEqual(c.commits.map((x) => x[0]!.offset), ['2', '4', '5']);
  // records delivered after stop are not taken (they stay uncommitted, re-delivered later)
  c.deliver([aggMsg(0, 5, 6, 1)]);
  assert.equal(c.commits.length, 3);
});

test('undecodable records become dead letters and their offsets are committed (no stalled partition)', async () => {
  const c = new FakeConsumer();
  const { store, inserted } = fakeStore(c.events);
  const sink = new AggregateSink({ store, consumer: c, logger, maxRows: 1000, maxWaitMs: 10 });
  await sink.start();
  c.deliver([{ topic: 'click-aggregates', partition: 0, offset: '5', key: null, value: Buffer.from([0xff, 0xff, 0xff]) }, aggMsg(0, 6, 1, 1)]);
  await until(() => c.commits.length === 1);
  const dl = inserted.find((i) => i.table === 'adclick.dead_letters')!.rows;
  assert.equal(dl.length, 1);
  assert.equal(dl[0]!.reason, 'PROTOBUF_DECODE_FAILED');
  assert.equal(dl[0]!.stage, 'sink');
  assert.deepEqual(c.commits[0], [{ topic: 'click-aggregates', partition: 0, offset: '7' }]);
  assert.equal((await sink.metrics.deadLetters.get()).values[0]!.value, 1);
  await sink.stop();
});

test('stop gives up on a batch ClickHouse never accepts, without committing', async () => {
  const c = new FakeConsumer();
  const { store } = fakeStore(c.events, 1e9);
  const sink = new AggregateSink({ store, consumer: c, logger, maxRows: 1000, maxWaitMs: 5, retryInitialMs: 5, retryMaxMs: 5, stopTimeoutMs: 50 });
  await sink.start();
  c.deliver([aggMsg(0, 0, 1, 1)]);
  await until(() => c.events.includes('insert-failed'));
  await sink.stop();
  assert.equal(c.commits.length, 0);
});

test('buildBatch is deterministic (re-delivery gives identical rows)', () => {
  const msgs = [aggMsg(0, 0, 1, 1), aggMsg(0, 1, 1, 4)];
  assert.deepEqual(buildBatch(msgs, undefined, 1), buildBatch(msgs, undefined, 1));
});

// Several sink instances in one consumer group (issue 18): each stores and commits only the
// partitions it holds, yet a watermark row vouches for every data partition of the group.
// Fake consumer here (what one member sees of the group); the real group of processes is
// test/integration/sink-group.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../../src/shared/logger.ts';
import { ClickEvent, WatermarkProgress } from '../../../src/shared/proto.ts';
import { AggregateSink, type SinkConsumer } from '../../../src/sink/aggregate-sink.ts';
import type { SinkMessage, TopicPartitionOffset } from '../../../src/sink/batch.ts';
import { partitionKey } from '../../../src/sink/watermark-fence.ts';
import { fakeStore } from './fake-store.ts';

const logger = createLogger('test', 'silent');
const T0 = Date.UTC(2026, 10, 27, 10, 0);
const K = (t: string, p: number) => partitionKey(t, p);
const RAW = 'clicks-deduped';

/** One member of a group: holds `assigned`, sees the group's committed offsets in `group`. */
class MemberConsumer implements SinkConsumer {
  deliver!: (m: SinkMessage[]) => void;
  commits: TopicPartitionOffset[][] = [];
  readonly pos = new Map<string, { offset: number; at: number }>();
  readonly group = new Map<string, number>();
  groupReads = 0;
  constructor(public assignedKeys: Set<string>) {}
  positions() { return this.pos; }
  assigned() { return this.assignedKeys; }
  async groupCommitted(keys: readonly string[]) {
    this.groupReads++;
    return new Map(keys.filter((k) => this.group.has(k)).map((k) => [k, this.group.get(k)!]));
  }
  async start(deliver: (m: SinkMessage[]) => void) { this.deliver = deliver; }
  async commit(o: TopicPartitionOffset[]) { this.commits.push(o); }
  pause() {}
  resume() {}
  async stop() {}
}

const watermarkMsg = (offset: number, wm: number): SinkMessage => ({
  topic: 'click-watermarks', partition: 0, offset: String(offset), key: null,
  value: Buffer.from(WatermarkProgress.encode({ subtask: 0, parallelism: 1, watermarkMs: wm, emittedAtMs: T0 + offset }).finish()),
});
const rawMsg = (partition: number, offset: number): SinkMessage => ({
  topic: RAW, partition, offset: String(offset), key: null,
  value: Buffer.from(ClickEvent.encode({ impressionId: `imp_${partition}_${offset}`, eventType: 'click', adId: 1, campaignId: 2, advertiserId: 3, userId: 'u', eventTimeMs: T0 + offset, receivedAtMs: T0 + offset }).finish()),
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timeout');
    await sleep(5);
  }
};
const watermarksStored = (inserted: { table: string }[]) => inserted.some((i) => i.table === 'adclick.pipeline_watermarks');

test('group: a watermark is stored once the other members committed their partitions up to the fence, not before', async () => {
  // This member holds raw/0 and the watermark partition; another member holds raw/1.
  const c = new MemberConsumer(new Set([K(RAW, 0), K('click-watermarks', 0)]));
  const { store, inserted } = fakeStore();
  const ends = new Map([[K(RAW, 0), 2], [K(RAW, 1), 5]]);
  const sink = new AggregateSink({ store, consumer: c, logger, maxRows: 1000, maxWaitMs: 5, fenceEnds: async () => ends, fenceCheckMs: 1, fenceSettleMs: 20 });
  await sink.start();
  c.deliver([rawMsg(0, 0), rawMsg(0, 1), watermarkMsg(0, T0 + 60_000)]);
  await until(() => c.commits.length === 1);
  await sleep(60);
  assert.ok(!watermarksStored(inserted), 'raw/1 (the other member) is not known stored: held');
  c.group.set(K(RAW, 1), 4);
  await sleep(60);
  assert.ok(!watermarksStored(inserted), 'raw/1 committed up to 4 < fence 5: held');
  assert.ok(c.groupReads > 0, 'the group offsets were asked for');
  c.group.set(K(RAW, 1), 5);
  await until(() => watermarksStored(inserted));
  await sink.stop();
});

test('group: offsets of partitions this member no longer holds are not committed (a revoked batch never moves the new owner\'s offset)', async () => {
  const c = new MemberConsumer(new Set([K(RAW, 0), K(RAW, 1)]));
  const { store, inserted } = fakeStore();
  const sink = new AggregateSink({ store, consumer: c, logger, maxRows: 1000, maxWaitMs: 30 });
  await sink.start();
  c.deliver([rawMsg(0, 0), rawMsg(1, 0), rawMsg(1, 1)]);
  c.assignedKeys = new Set([K(RAW, 0)]); // raw/1 revoked while its records wait in the buffer
  await until(() => c.commits.length === 1);
  assert.equal(inserted.find((i) => i.table === 'adclick.raw_clicks')!.rows.length, 3, 'stored anyway (a re-delivery to the new owner collapses)');
  assert.deepEqual(c.commits[0], [{ topic: RAW, partition: 0, offset: '1' }]);
  await sink.stop();
});

test('group: an owner commits its position past commit markers once everything delivered is stored (so other members\' fences pass)', async () => {
  const c = new MemberConsumer(new Set([K(RAW, 0)]));
  const { store } = fakeStore();
  const sink = new AggregateSink({ store, consumer: c, logger, maxRows: 1000, maxWaitMs: 5, fenceEnds: async () => new Map(), fenceCheckMs: 1, fenceSettleMs: 20 });
  await sink.start();
  c.deliver([rawMsg(0, 0), rawMsg(0, 1)]);
  await until(() => c.commits.length === 1);
  assert.deepEqual(c.commits[0], [{ topic: RAW, partition: 0, offset: '2' }]);
  // The transaction's commit marker is at 2: the consumer's position moves to 3.
  c.pos.set(K(RAW, 0), { offset: 3, at: Date.now() });
  await until(() => c.commits.length === 2);
  assert.deepEqual(c.commits[1], [{ topic: RAW, partition: 0, offset: '3' }]);
  await sleep(50);
  assert.equal(c.commits.length, 2, 'committed once');
  await sink.stop();
});

test('group: the position of a partition this member no longer holds does not count as caught up', async () => {
  // Held raw/1 before a rebalance: delivered and stored up to 2, the position (records in
  // the client's cache, dropped at the revoke) was 6. The new owner has stored nothing yet.
  const c = new MemberConsumer(new Set([K(RAW, 1), K('click-watermarks', 0)]));
  const { store, inserted } = fakeStore();
  const ends = new Map([[K(RAW, 1), 6]]);
  const sink = new AggregateSink({ store, consumer: c, logger, maxRows: 1000, maxWaitMs: 5, fenceEnds: async () => ends, fenceCheckMs: 1, fenceSettleMs: 20 });
  await sink.start();
  c.deliver([rawMsg(1, 0), rawMsg(1, 1)]);
  await until(() => c.commits.length === 1);
  c.pos.set(K(RAW, 1), { offset: 6, at: Date.now() });
  c.assignedKeys = new Set([K('click-watermarks', 0)]);
  c.deliver([watermarkMsg(0, T0 + 60_000)]);
  await until(() => c.commits.length === 2);
  await sleep(100);
  assert.ok(!watermarksStored(inserted), 'records 2..5 of raw/1 may be unstored: held');
  c.group.set(K(RAW, 1), 6);
  await until(() => watermarksStored(inserted));
  await sink.stop();
});

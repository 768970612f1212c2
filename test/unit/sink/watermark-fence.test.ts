// The sink holds the job's watermark until the rows it vouches for are stored: a backfill
// during sink lag must never see a watermark ahead of raw_clicks (issue #15, defect 4).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../../src/shared/logger.ts';
import { ClickEvent, WatermarkProgress } from '../../../src/shared/proto.ts';
import { AggregateSink, type SinkConsumer } from '../../../src/sink/aggregate-sink.ts';
import type { SinkMessage, TopicPartitionOffset } from '../../../src/sink/batch.ts';
import { passedFence, partitionKey, WatermarkFence } from '../../../src/sink/watermark-fence.ts';
import { fakeStore } from './fake-store.ts';

const logger = createLogger('test', 'silent');
const T0 = Date.UTC(2026, 10, 27, 10, 0);
const K = (t: string, p: number) => partitionKey(t, p);

test('passedFence: stored past the fence, or caught up (only markers / aborted records left below it)', () => {
  const fence = new Map([[K('d', 0), 10], [K('d', 1), 0]]);
  const never = () => false;
  assert.equal(passedFence(fence, new Map([[K('d', 0), 10]]), never), true, 'stored up to the fence');
  assert.equal(passedFence(fence, new Map([[K('d', 0), 8]]), never), false, 'records at 8 and 9 may be unstored');
  assert.equal(passedFence(fence, new Map([[K('d', 0), 8]]), (k, f) => k === K('d', 0) && f === 10), true, 'caught up: 8 and 9 are markers');
  assert.equal(passedFence(fence, new Map(), never), false, 'nothing known stored');
  assert.equal(passedFence(new Map([[K('d', 0), 0]]), new Map(), never), true, 'an empty partition fences nothing');
});

test('WatermarkFence: rows are released in order once their fence is passed; unreadable ends release nothing', async () => {
  let ends = new Map<string, number>([[K('d', 0), 5]]);
  let broken = false;
  const f = new WatermarkFence(async () => {
    if (broken) throw new Error('broker down');
    return ends;
  });
  const wm = (ms: number, at: number) => ({ subtask: 0, parallelism: 1, watermark_ms: ms, emitted_at_ms: at });
  f.hold([wm(100, 1)]);
  assert.deepEqual(await f.release(new Map([[K('d', 0), 3]])), [], 'fence taken now: 5');
  ends = new Map([[K('d', 0), 9]]);
  f.hold([wm(200, 2)]);
  broken = true;
  await assert.rejects(f.release(new Map([[K('d', 0), 9]])), /broker down/, 'the second fence cannot be taken');
  assert.equal(f.pending, 2);
  broken = false;
  assert.deepEqual(await f.release(new Map([[K('d', 0), 3]])), [], 'fence of the second: 9');
  assert.deepEqual(await f.release(new Map([[K('d', 0), 5]])), [wm(100, 1)], 'the first fence (5) is passed, the second (9) not');
  assert.deepEqual(await f.release(new Map([[K('d', 0), 9]])), [wm(200, 2)]);
  assert.equal(f.pending, 0);
});

class FakeConsumer implements SinkConsumer {
  deliver!: (m: SinkMessage[]) => void;
  commits: TopicPartitionOffset[][] = [];
  readonly pos = new Map<string, { offset: number; at: number }>();
  positions() { return this.pos; }
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
const rawMsg = (offset: number): SinkMessage => ({
  topic: 'clicks-deduped', partition: 0, offset: String(offset), key: null,
  value: Buffer.from(ClickEvent.encode({ impressionId: `imp_${offset}`, eventType: 'click', adId: 1, campaignId: 2, advertiserId: 3, userId: 'u', eventTimeMs: T0 + offset, receivedAtMs: T0 + offset }).finish()),
});

const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timeout');
    await new Promise((r) => setTimeout(r, 5));
  }
};

test('sink: a watermark read ahead of a raw-clicks backlog is stored only after the backlog (what the backfill bound relies on)', async () => {
  const c = new FakeConsumer();
  const { store, inserted } = fakeStore();
  // clicks-deduped/0 holds records 0..3 and its commit marker at 4 (high = 5).
  const ends = new Map<string, number>([[K('clicks-deduped', 0), 5], [K('click-aggregates', 0), 0]]);
  const sink = new AggregateSink({ store, consumer: c, logger, maxRows: 1000, maxWaitMs: 10, fenceEnds: async () => ends, fenceCheckMs: 1, fenceSettleMs: 20 });
  await sink.start();
  const tables = () => inserted.map((i) => i.table);
  c.deliver([watermarkMsg(0, T0 + 10 * 60_000), rawMsg(0)]);
  await until(() => c.commits.length === 1);
  assert.ok(tables().includes('adclick.raw_clicks'));
  assert.ok(!tables().includes('adclick.pipeline_watermarks'), 'the watermark must wait: raw clicks 1..3 are not stored yet');
  c.deliver([rawMsg(1), rawMsg(2)]);
  await until(() => c.commits.length === 2);
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(!tables().includes('adclick.pipeline_watermarks'), 'still one raw click unstored');
  c.deliver([rawMsg(3)]);
  await until(() => c.commits.length === 3);
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(!tables().includes('adclick.pipeline_watermarks'), 'every raw click stored, but the marker at 4 is not known to be one yet');
  // The consumer's position passes the marker (librdkafka's app offset does).
  c.pos.set(K('clicks-deduped', 0), { offset: 5, at: Date.now() });
  await until(() => tables().includes('adclick.pipeline_watermarks'));
  const wmRows = inserted.filter((i) => i.table === 'adclick.pipeline_watermarks').flatMap((i) => i.rows);
  assert.deepEqual(wmRows.map((r) => r.watermark_ms), [T0 + 10 * 60_000]);
  // Stored after every raw click of the fence.
  const lastRaw = inserted.map((i) => i.table).lastIndexOf('adclick.raw_clicks');
  assert.ok(inserted.findIndex((i) => i.table === 'adclick.pipeline_watermarks') > lastRaw);
  assert.equal(sink.status().heldWatermarks, 0);
  await sink.stop();
});

test('sink: a held watermark is released while idle once the consumer position passed the markers left below the fence', async () => {
  const c = new FakeConsumer();
  const { store, inserted } = fakeStore();
  // Raw clicks 0..1, then two producers' commit markers at 2 and 3 (high = 4).
  const ends = new Map<string, number>([[K('clicks-deduped', 0), 4]]);
  const sink = new AggregateSink({ store, consumer: c, logger, maxRows: 1000, maxWaitMs: 10, fenceEnds: async () => ends, fenceCheckMs: 1, fenceSettleMs: 30 });
  await sink.start();
  c.deliver([rawMsg(0), rawMsg(1), watermarkMsg(0, T0 + 60_000)]);
  await until(() => c.commits.length === 1);
  await new Promise((r) => setTimeout(r, 80));
  assert.ok(!inserted.some((i) => i.table === 'adclick.pipeline_watermarks'), 'position unknown: held');
  c.pos.set(K('clicks-deduped', 0), { offset: 3, at: Date.now() - 1000 });
  await new Promise((r) => setTimeout(r, 80));
  assert.ok(!inserted.some((i) => i.table === 'adclick.pipeline_watermarks'), 'position 3 < fence 4: held');
  c.pos.set(K('clicks-deduped', 0), { offset: 4, at: Date.now() });
  await until(() => inserted.some((i) => i.table === 'adclick.pipeline_watermarks'));
  await sink.stop();
});

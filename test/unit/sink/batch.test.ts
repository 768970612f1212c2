import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LateClick, WindowAggregate } from '../../../src/shared/proto.ts';
import { buildBatch, type SinkMessage } from '../../../src/sink/batch.ts';

const T0 = Date.UTC(2026, 10, 27, 10, 0);
const T1 = T0 + 7 * 60_000 + 30_250; // 1m window 10:07, 5m window 10:05, 1h window 10:00
const START = { 1: T0 + 7 * 60_000, 2: T0 + 5 * 60_000, 3: T0 } as const;

let offset = 0;
function lateMsg(imp: string, g: 0 | 1 | 2 | 3, windowStartMs: number = g ? START[g] : 0): SinkMessage {
  const value = Buffer.from(LateClick.encode({
    click: { impressionId: imp, eventType: 'click', adId: 1, campaignId: 2, advertiserId: 3, eventTimeMs: T1, receivedAtMs: T1 + 5 },
    watermarkMs: T1 + 9e5, detectedAtMs: T1 + 9e5, granularity: g, windowStartMs,
  }).finish());
  return { topic: 'clicks-late', partition: 0, offset: String(offset++), key: Buffer.from(`x|1|${windowStartMs}`), value };
}

test('late clicks: one row per (granularity, impression, event type); re-delivery in a batch collapses', () => {
  const b = buildBatch([lateMsg('imp_a', 1), lateMsg('imp_a', 2), lateMsg('imp_a', 1), lateMsg('imp_b', 1), lateMsg('imp_a', 2)], undefined, 1);
  assert.deepEqual(b.deadLetters, []);
  assert.deepEqual(b.late.map((r) => [r.granularity, r.impression_id, r.window_start * 1000]).sort(), [
    ['1m', 'imp_a', START[1]],
    ['1m', 'imp_b', START[1]],
    ['5m', 'imp_a', START[2]],
  ]);
  assert.deepEqual(b.owners, [{ ad_id: 1, campaign_id: 2, advertiser_id: 3 }]);
});

test('a late click without granularity goes to dead_letters as INVALID_FIELD, is not stored, and its offset is committed', () => {
  const first = offset;
  const msgs = [lateMsg('imp_c', 0, START[1]), lateMsg('imp_d', 0, 0), lateMsg('imp_e', 2, START[1]), lateMsg('imp_f', 3)];
  const b = buildBatch(msgs, undefined, 42);
  assert.deepEqual(b.late.map((r) => [r.granularity, r.impression_id]), [['1h', 'imp_f']]);
  assert.deepEqual(b.deadLetters.map((d) => [d.stage, d.source_topic, d.offset, d.reason, d.detected_at_ms]), [
    ['sink', 'clicks-late', first, 'INVALID_FIELD', 42],
    ['sink', 'clicks-late', first + 1, 'INVALID_FIELD', 42],
    ['sink', 'clicks-late', first + 2, 'INVALID_FIELD', 42],
  ]);
  assert.match(b.deadLetters[0]!.detail, /granularity/);
  assert.match(b.deadLetters[2]!.detail, /window_start_ms/);
  // the original record is kept verbatim for replay
  assert.equal(b.deadLetters[0]!.payload, msgs[0]!.value!.toString('base64'));
  assert.deepEqual(b.commits, [{ topic: 'clicks-late', partition: 0, offset: String(first + 4) }]);
});

test('an ad seen under two owners in one batch keeps an ad_owners row for each (a moved ad, a click claiming another advertiser)', () => {
  const agg = (ad: number, camp: number, adv: number) => ({
    topic: 'click-aggregates', partition: 0, offset: String(offset++), key: null,
    value: Buffer.from(WindowAggregate.encode({ granularity: 1, adId: ad, campaignId: camp, advertiserId: adv, windowStartMs: T0, windowEndMs: T0 + 60_000, clicks: 1, final: false, watermarkMs: T0, emittedAtMs: T0, maxReceivedAtMs: T0 }).finish()),
  });
  const b = buildBatch([agg(5, 50, 7), agg(5, 51, 7), agg(5, 60, 8), agg(5, 50, 7)], undefined, 1);
  assert.deepEqual(b.owners.map((o) => [o.ad_id, o.campaign_id, o.advertiser_id]).sort(), [[5, 50, 7], [5, 51, 7], [5, 60, 8]]);
});

test('buildBatchYielding: the same batch as buildBatch, with turns of the event loop between slices (issue 17: the admin port answers meanwhile)', async () => {
  const { buildBatchYielding } = await import('../../../src/sink/batch.ts');
  const msgs: SinkMessage[] = [];
  for (let i = 0; i < 1000; i++) {
    const value = Buffer.from(WindowAggregate.encode({ granularity: 1, adId: 1 + (i % 37), campaignId: 5, advertiserId: 7, windowStartMs: T0 + Math.floor(i / 37) * 60_000, windowEndMs: T0 + Math.floor(i / 37) * 60_000 + 60_000, clicks: i + 1, final: false, emittedAtMs: T0 + i }).finish());
    msgs.push({ topic: 'click-aggregates', partition: i % 3, offset: String(i), key: null, value });
  }
  msgs.push({ topic: 'click-aggregates', partition: 0, offset: '5000', key: null, value: Buffer.from([0xff, 0xff]) }); // a dead letter too
  let turns = 0;
  const ticker = setInterval(() => turns++, 0);
  const yielded = await buildBatchYielding(msgs, undefined, T0, 100);
  clearInterval(ticker);
  const plain = buildBatch(msgs, undefined, T0);
  assert.deepEqual({ ...yielded, sources: null }, { ...plain, sources: null });
  assert.equal(yielded.sources.size, plain.sources.size);
  assert.ok(turns >= 3, `timers ran while 1001 records were decoded 100 at a time (${turns} turns)`);
});

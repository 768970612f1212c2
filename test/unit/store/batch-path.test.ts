import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTime } from '../../../src/batch-command.ts';
import { ClickEvent } from '../../../src/shared/proto.ts';
import { buildBatch } from '../../../src/sink/batch.ts';
import { backfillVersion, GENERATION_FACTOR, generationOf, planRange, windowsInside } from '../../../src/store/batch-path.ts';
import { aggregateRow, aggregateVersion } from '../../../src/store/rows.ts';

const T0 = Date.UTC(2026, 10, 27, 10, 0);
const MIN = 60_000;
const HOUR = 3_600_000;

test('windows fully inside a range, per granularity', () => {
  assert.deepEqual(windowsInside('1m', T0, T0 + HOUR), { first: T0, end: T0 + HOUR });
  assert.deepEqual(windowsInside('1m', T0 + 1, T0 + 2 * MIN + 59_999), { first: T0 + MIN, end: T0 + 2 * MIN });
  assert.deepEqual(windowsInside('5m', T0 + 30_000, T0 + HOUR - 1), { first: T0 + 5 * MIN, end: T0 + 55 * MIN });
  assert.equal(windowsInside('1h', T0 + 30_000, T0 + HOUR), null);
  assert.equal(windowsInside('1m', T0 + 1, T0 + MIN), null);
});

test('backfill versions beat every streaming emission and older generations, even with fewer clicks', () => {
  const streamingMax = aggregateVersion(2 ** 53 - 1, true);
  assert.ok(streamingMax < GENERATION_FACTOR);
  assert.ok(backfillVersion(1, 0) > streamingMax);
  assert.ok(backfillVersion(2, 0) > backfillVersion(1, 2 ** 53 - 1));
  assert.equal(generationOf(backfillVersion(7, 12)), 7);
  assert.equal(generationOf(aggregateVersion(12, true)), 0);
  assert.equal(generationOf(aggregateVersion(2 ** 53 - 1, true)), 0);
  // Exact from ClickHouse's decimal string; from a (rounded) JS number while the count is far below 2^53.
  assert.equal(generationOf(String(backfillVersion(1023, 2 ** 53 - 1))), 1023);
  assert.equal(generationOf(Number(backfillVersion(1023, 2 ** 40))), 1023);
  assert.ok(backfillVersion(1023, 2 ** 53 - 1) < 2n ** 64n, 'fits UInt64');
  assert.throws(() => backfillVersion(0, 1));
  assert.throws(() => backfillVersion(2 ** 10, 1));
  // A streaming count of 2^53-1 is kept exactly; above it the sink dead-letters the record.
  const agg = { granularity: 1, adId: 1, campaignId: 2, advertiserId: 3, windowStartMs: T0, windowEndMs: T0 + MIN, emittedAtMs: T0 };
  assert.equal(aggregateRow({ ...agg, clicks: 2 ** 53 - 1 }).version, String(2n ** 54n - 2n));
  assert.throws(() => aggregateRow({ ...agg, clicks: 2 ** 53 }), /2\^53/);
});

test('planRange clamps to closed windows and refuses what cannot be recomputed', () => {
  const now = T0 + 2 * HOUR;
  const opts = { closedBeforeMs: T0 + HOUR + 30 * MIN, nowMs: now, checkRetention: true };
  assert.deepEqual(planRange(T0, T0 + HOUR, opts), { fromMs: T0, toMs: T0 + HOUR });
  const c = planRange(T0, T0 + 2 * HOUR, opts);
  assert.equal(c.toMs, T0 + HOUR + 30 * MIN);
  assert.match(c.clampedBy!, /still open/);
  assert.throws(() => planRange(T0, T0 + HOUR, { ...opts, closedBeforeMs: null }), /no watermark/);
  assert.throws(() => planRange(T0 + HOUR + 31 * MIN, T0 + 2 * HOUR, opts), /no complete window/);
  assert.throws(() => planRange(now - 8 * 24 * HOUR, T0, opts), /older than the raw clicks kept/);
  assert.doesNotThrow(() => planRange(now - 8 * 24 * HOUR, T0, { ...opts, checkRetention: false }));
  assert.throws(() => planRange(T0, T0, opts), /after from/);
});

test('deduplicated clicks become raw_clicks rows (and owners); re-delivery collapses; bad ones are dead letters', () => {
  const click = (imp: string, ad = 5) => ClickEvent.encode({ impressionId: imp, eventType: 'click', adId: ad, campaignId: 6, advertiserId: 7, eventTimeMs: T0 + 1234, receivedAtMs: T0 + 2000 }).finish();
  const m = (value: Uint8Array, offset: number) => ({ topic: 'clicks-deduped', partition: 1, offset: String(offset), key: Buffer.from('5'), value: Buffer.from(value) });
  const b = buildBatch([m(click('a'), 1), m(click('a'), 2), m(click('b'), 3), m(click('', 5), 4), m(Buffer.from([0xff, 0xff]), 5)], undefined, 1);
  assert.deepEqual(b.raw, [
    { impression_id: 'a', event_type: 'click', ad_id: 5, campaign_id: 6, advertiser_id: 7, event_time: Math.floor((T0 + 1234) / 1000), event_time_ms: T0 + 1234, received_at_ms: T0 + 2000 },
    { impression_id: 'b', event_type: 'click', ad_id: 5, campaign_id: 6, advertiser_id: 7, event_time: Math.floor((T0 + 1234) / 1000), event_time_ms: T0 + 1234, received_at_ms: T0 + 2000 },
  ]);
  assert.deepEqual(b.owners, [{ ad_id: 5, campaign_id: 6, advertiser_id: 7 }]);
  assert.deepEqual(b.deadLetters.map((d) => [d.offset, d.reason]), [[4, 'INVALID_RAW_CLICK'], [5, 'PROTOBUF_DECODE_FAILED']]);
  assert.deepEqual(b.commits, [{ topic: 'clicks-deduped', partition: 1, offset: '6' }]);
});

test('CLI times: ISO 8601 with a zone or epoch ms', () => {
  assert.equal(parseTime('2026-11-27T10:00:00Z'), T0);
  assert.equal(parseTime('2026-11-27T11:00+01:00'), T0);
  assert.equal(parseTime(String(T0)), T0);
  assert.equal(parseTime('2026-11-27T10:00:00'), null, 'no zone: ambiguous');
  assert.equal(parseTime('yesterday'), null);
  assert.equal(parseTime(undefined), null);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WindowAggregate } from '../../../src/shared/proto.ts';
import { aggregateRow, aggregateVersion, isNewerAggregate, lateClickRow, RecordError, watermarkRow } from '../../../src/store/rows.ts';
import { COMPLETE_BEFORE_FLOOR_SUBTASK, completeBeforeOf } from '../../../src/store/reads.ts';

const T0 = Date.UTC(2026, 10, 27, 10, 0);
const base = { granularity: 1, adId: 1, campaignId: 2, advertiserId: 3, windowStartMs: T0, windowEndMs: T0 + 60_000, clicks: 5, final: false, watermarkMs: T0, emittedAtMs: T0 + 61_000, maxReceivedAtMs: T0 + 100 };

test('version: more clicks is newer; at equal clicks final beats provisional; deterministic', () => {
  assert.equal(aggregateVersion(5, false), 10n);
  assert.equal(aggregateVersion(5, true), 11n);
  assert.ok(aggregateVersion(6, false) > aggregateVersion(5, true));
  assert.deepEqual(aggregateRow(base), aggregateRow({ ...base }));
});

test('aggregate row mapping', () => {
  const r = aggregateRow({ ...base, granularity: 3, windowStartMs: T0, windowEndMs: T0 + 3_600_000, final: true });
  assert.deepEqual(r, { granularity: '1h', advertiser_id: 3, campaign_id: 2, ad_id: 1, window_start: T0 / 1000, clicks: 5, final: 1, version: '11', watermark_ms: T0, emitted_at_ms: T0 + 61_000, max_received_at_ms: T0 + 100 });
  assert.equal(aggregateRow({ ...base, watermarkMs: -9223372036854775808 }).watermark_ms, -1);
});

test('invalid aggregates are refused with a reason', () => {
  for (const bad of [{ granularity: 0 }, { granularity: 4 }, { adId: 0 }, { advertiserId: 2 ** 53 }, { windowStartMs: T0 + 1 }, { windowEndMs: T0 + 1 }, { clicks: -1 }, { granularity: 2, windowStartMs: T0 + 60_000, windowEndMs: T0 + 360_000 }]) {
    assert.throws(() => aggregateRow({ ...base, ...bad } as never), (e: unknown) => e instanceof RecordError && e.reason === 'INVALID_AGGREGATE', JSON.stringify(bad));
  }
});

test('watermark and late-click rows', () => {
  assert.deepEqual(watermarkRow({ subtask: 1, parallelism: 2, watermarkMs: 5, emittedAtMs: 6 }), { subtask: 1, parallelism: 2, watermark_ms: 5, emitted_at_ms: 6 });
  assert.throws(() => watermarkRow({ subtask: 2, parallelism: 2, watermarkMs: 5, emittedAtMs: 6 }), RecordError);
  const l = lateClickRow({ click: { impressionId: 'imp_1234', eventType: '', adId: 1, campaignId: 2, advertiserId: 3, eventTimeMs: T0 + 1500 }, watermarkMs: T0 + 9e5, detectedAtMs: T0 + 9e5, granularity: 1, windowStartMs: T0 });
  assert.equal(l.event_type, 'click');
  assert.equal(l.event_time, T0 / 1000 + 1);
  assert.equal(l.granularity, '1m');
  assert.equal(l.window_start, T0 / 1000);
  assert.throws(() => lateClickRow({ watermarkMs: 1 }), RecordError);
  assert.throws(() => lateClickRow({ click: { impressionId: '', adId: 1, campaignId: 2, advertiserId: 3 } }), RecordError);
});

// T1 = 10:07:30.250Z: its 1m, 5m and 1h windows all start at different instants.
const T1 = T0 + 7 * 60_000 + 30_250;
const lateClick = { click: { impressionId: 'imp_1234', eventType: 'click', adId: 1, campaignId: 2, advertiserId: 3, eventTimeMs: T1, receivedAtMs: T1 + 5 }, watermarkMs: T1 + 9e5, detectedAtMs: T1 + 9e5 };

test('late-click row: granularity and window come from the record, one row per granularity', () => {
  const starts = { 1: T0 + 7 * 60_000, 2: T0 + 5 * 60_000, 3: T0 } as const;
  const names = { 1: '1m', 2: '5m', 3: '1h' } as const;
  for (const g of [1, 2, 3] as const) {
    const r = lateClickRow({ ...lateClick, granularity: g, windowStartMs: starts[g] });
    assert.deepEqual(r, {
      granularity: names[g], window_start: starts[g] / 1000, impression_id: 'imp_1234', event_type: 'click', ad_id: 1, campaign_id: 2, advertiser_id: 3,
      event_time: Math.floor(T1 / 1000), event_time_ms: T1, received_at_ms: T1 + 5, watermark_ms: T1 + 9e5, detected_at_ms: T1 + 9e5,
    });
  }
});

test('late click without a known granularity, or with a window not its own, is INVALID_FIELD (never guessed)', () => {
  const cases: Record<string, unknown>[] = [
    {}, // neither field (a pre-change producer)
    { windowStartMs: T0 + 7 * 60_000 }, // granularity 0 = unspecified
    { granularity: 0, windowStartMs: T0 + 7 * 60_000 },
    { granularity: 4, windowStartMs: T0 + 7 * 60_000 },
    { granularity: 1 }, // window missing
    { granularity: 1, windowStartMs: T0 + 6 * 60_000 }, // aligned, but not the click's window
    { granularity: 2, windowStartMs: T0 + 7 * 60_000 }, // the 1m window given as the 5m one
    { granularity: 3, windowStartMs: T0 + 5 * 60_000 },
    { granularity: 1, windowStartMs: T0 + 7 * 60_000 + 1 },
  ];
  for (const c of cases) {
    assert.throws(() => lateClickRow({ ...lateClick, ...c } as never), (e: unknown) => e instanceof RecordError && e.reason === 'INVALID_FIELD', JSON.stringify(c));
  }
});

test('complete_before: min of newest per subtask, only when all report', () => {
  assert.equal(completeBeforeOf([]), null);
  assert.equal(completeBeforeOf([{ subtask: 0, parallelism: 2, watermark_ms: 10, emitted_at_ms: 1 }]), null);
  assert.equal(completeBeforeOf([{ subtask: 0, parallelism: 2, watermark_ms: 10, emitted_at_ms: 1 }, { subtask: 1, parallelism: 2, watermark_ms: 7, emitted_at_ms: 2 }]), 7);
  // rescaled down to 1: the stale subtask 1 is ignored
  assert.equal(completeBeforeOf([{ subtask: 0, parallelism: 1, watermark_ms: 10, emitted_at_ms: 3 }, { subtask: 1, parallelism: 2, watermark_ms: 7, emitted_at_ms: 2 }]), 10);
  assert.equal(completeBeforeOf([{ subtask: 0, parallelism: 1, watermark_ms: -1, emitted_at_ms: 3 }]), null);
  // The floor row (the highest complete_before reported so far) is never undercut, and never a subtask.
  const floor = { subtask: COMPLETE_BEFORE_FLOOR_SUBTASK, parallelism: 0, watermark_ms: 50, emitted_at_ms: 50 };
  assert.equal(completeBeforeOf([floor, { subtask: 0, parallelism: 1, watermark_ms: 20, emitted_at_ms: 99 }]), 50, 'a restored job reporting lower');
  assert.equal(completeBeforeOf([floor, { subtask: 0, parallelism: 1, watermark_ms: 70, emitted_at_ms: 99 }]), 70);
  assert.equal(completeBeforeOf([floor, { subtask: 0, parallelism: 2, watermark_ms: 70, emitted_at_ms: 99 }]), 50, 'a rescaled job not fully reported yet');
  assert.equal(completeBeforeOf([floor]), 50);
});

test('counts of any size up to 2^53-1 map exactly; the version (clicks·2 + final) is written as a decimal UInt64', () => {
  for (const clicks of [2 ** 31, 2 ** 32 + 1, 2 ** 53 - 1, 2 ** 31 - 1]) {
    for (const final of [false, true]) {
      const r = aggregateRow({ ...base, clicks, final });
      assert.equal(r.clicks, clicks);
      assert.equal(r.version, String(BigInt(clicks) * 2n + (final ? 1n : 0n)), `clicks ${clicks}`);
    }
  }
  // Through the wire as the sink gets it (uint64 decoded without Long).
  const wire = WindowAggregate.decode(WindowAggregate.encode({ ...base, clicks: 2 ** 53 - 1 }).finish());
  assert.equal(aggregateRow(wire).clicks, 2 ** 53 - 1);
});

test('a count above 2^53-1 (not exact in the sink) is a COUNT_OUT_OF_RANGE dead letter, never a rounded count', () => {
  for (const clicks of [2 ** 53, 2 ** 53 + 2, 2 ** 60, 2 ** 63]) {
    const wire = WindowAggregate.decode(WindowAggregate.encode({ ...base, clicks }).finish());
    assert.throws(() => aggregateRow(wire), (e: unknown) => e instanceof RecordError && e.reason === 'COUNT_OUT_OF_RANGE' && /2\^53/.test(e.message), String(clicks));
  }
});

test('newer emission: more clicks, then final over provisional (the version order without big numbers)', () => {
  const a = aggregateRow({ ...base, clicks: 2 ** 53 - 1, final: false });
  const b = aggregateRow({ ...base, clicks: 2 ** 53 - 1, final: true });
  const c = aggregateRow({ ...base, clicks: 2 ** 53 - 2, final: true });
  assert.equal(isNewerAggregate(b, a), true);
  assert.equal(isNewerAggregate(a, b), false);
  assert.equal(isNewerAggregate(a, c), true);
  assert.equal(isNewerAggregate(a, a), false);
});

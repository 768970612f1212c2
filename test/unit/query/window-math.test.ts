import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alignDown, alignUp, denseFill, windowCount } from '../../../src/shared/window-math.ts';

const T = Date.UTC(2026, 10, 27, 10, 0, 0);

test('alignDown/alignUp round to UTC window boundaries', () => {
  assert.equal(alignDown(T + 59_999, '1m'), T);
  assert.equal(alignUp(T + 1, '1m'), T + 60_000);
  assert.equal(alignUp(T, '1m'), T, 'aligned values stay');
  assert.equal(alignDown(T + 7 * 60_000 + 5, '5m'), T + 5 * 60_000);
  assert.equal(alignUp(T + 7 * 60_000, '5m'), T + 10 * 60_000);
  assert.equal(alignDown(T + 59 * 60_000, '1h'), T);
  assert.equal(alignUp(T + 1, '1h'), T + 3_600_000);
  assert.equal(alignDown(0, '1h'), 0);
});

test('windowCount counts half-open windows', () => {
  assert.equal(windowCount(T, T + 3_600_000, '1m'), 60);
  assert.equal(windowCount(T, T + 3_600_000, '5m'), 12);
  assert.equal(windowCount(T, T, '1m'), 0);
});

test('denseFill orders, fills zeros, sums duplicates and drops strays', () => {
  const rows = [
    { windowStartMs: T + 120_000, clicks: 5 },
    { windowStartMs: T, clicks: 2 },
    { windowStartMs: T + 120_000, clicks: 1 }, // same window: summed
    { windowStartMs: T + 30_000, clicks: 100 }, // misaligned: dropped
    { windowStartMs: T - 60_000, clicks: 100 }, // before range
    { windowStartMs: T + 240_000, clicks: 100 }, // at `to` (exclusive)
  ];
  assert.deepEqual(denseFill(rows, T, T + 240_000, '1m'), [
    { windowStartMs: T, clicks: 2, revised: false },
    { windowStartMs: T + 60_000, clicks: 0, revised: false },
    { windowStartMs: T + 120_000, clicks: 6, revised: false },
    { windowStartMs: T + 180_000, clicks: 0, revised: false },
  ]);
});

test('denseFill marks a window revised when any of its rows is', () => {
  const pts = denseFill([{ windowStartMs: T, clicks: 2 }, { windowStartMs: T, clicks: 1, revised: true }, { windowStartMs: T + 60_000, clicks: 3, revised: false }], T, T + 120_000, '1m');
  assert.deepEqual(pts.map((p) => p.revised), [true, false]);
});

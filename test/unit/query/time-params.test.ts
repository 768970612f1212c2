import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatInstant, parseInstant, resolveRange } from '../../../src/query/time-params.ts';
import { parseId, parseLimit } from '../../../src/query/request-params.ts';
import { isAppError } from '../../../src/shared/errors.ts';

const T = Date.UTC(2026, 10, 27, 10, 0, 0);
const opts = { defaultGranularity: '1m' as const, defaultRangeMs: 3_600_000, maxWindows: 10_000 };

function rejects(fn: () => unknown, code: string, field?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isAppError(err), `expected AppError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.field, field);
    return true;
  });
}

test('parseInstant accepts epoch ms and ISO-8601 with Z or an offset', () => {
  assert.equal(parseInstant(String(T)), T);
  assert.equal(parseInstant('2026-11-27T10:00:00Z'), T);
  assert.equal(parseInstant('2026-11-27T10:00:00.250Z'), T + 250);
  assert.equal(parseInstant('2026-11-27T10:00:00.123456789Z'), T + 123);
  assert.equal(parseInstant('2026-11-27T11:00:00+01:00'), T);
  assert.equal(parseInstant('2026-11-27T05:30:00-0430'), T);
  assert.equal(parseInstant('2026-11-27T11:00+01:00'), T);
  assert.equal(parseInstant('2026-11-27T11:00:00 01:00'), T, "a '+' decoded to a space still reads as +");
  assert.equal(parseInstant('0'), 0);
});

test('parseInstant rejects everything else', () => {
  for (const bad of [
    '', ' ', 'now', '-1', '1.5', '1e12', '0x10', '2026-11-27', '2026-11-27T10:00:00', // no offset
    '2026-13-01T00:00:00Z', '2026-02-29T00:00:00Z', '2026-11-31T00:00:00Z', '2026-11-27T24:00:00Z',
    '2026-11-27T10:60:00Z', '2026-11-27T10:00:60Z', '2026-11-27T10:00:00+24:00', '1969-12-31T23:59:59Z',
    '10000-01-01T00:00:00Z', '9999999999999999', ' 1764237600000',
  ]) {
    assert.equal(parseInstant(bad), null, bad);
  }
  assert.equal(parseInstant('2028-02-29T00:00:00Z'), Date.UTC(2028, 1, 29), 'leap day is fine');
});

test('formatInstant is UTC without milliseconds', () => {
  assert.equal(formatInstant(T), '2026-11-27T10:00:00Z');
  assert.equal(formatInstant(T + 1999), '2026-11-27T10:00:01Z');
});

test('resolveRange rounds from down and to up', () => {
  const r = resolveRange({ from: String(T + 61_000), to: String(T + 179_000), granularity: '1m' }, T, opts);
  assert.deepEqual(r, { granularity: '1m', fromMs: T + 60_000, toMs: T + 180_000, windows: 2 });
  const h = resolveRange({ from: '2026-11-27T10:10:00Z', to: '2026-11-27T10:10:01Z', granularity: '1h' }, T, opts);
  assert.deepEqual(h, { granularity: '1h', fromMs: T, toMs: T + 3_600_000, windows: 1 });
});

test('resolveRange defaults: 1m, last hour ending now', () => {
  const now = T + 30_000;
  assert.deepEqual(resolveRange({}, now, opts), { granularity: '1m', fromMs: T - 3_600_000, toMs: T + 60_000, windows: 61 });
  // Only `to`: the hour before it.
  assert.deepEqual(resolveRange({ to: String(T) }, now, opts), { granularity: '1m', fromMs: T - 3_600_000, toMs: T, windows: 60 });
});

test('resolveRange errors name the field', () => {
  rejects(() => resolveRange({ from: 'yesterday' }, T, opts), 'INVALID_FIELD', 'from');
  rejects(() => resolveRange({ to: '2026-11-27T10:00:00' }, T, opts), 'INVALID_FIELD', 'to');
  rejects(() => resolveRange({ granularity: '10m' }, T, opts), 'INVALID_FIELD', 'granularity');
  rejects(() => resolveRange({ granularity: ['1m', '5m'] }, T, opts), 'INVALID_FIELD', 'granularity');
  rejects(() => resolveRange({ from: [String(T), String(T)] }, T, opts), 'INVALID_FIELD', 'from');
  rejects(() => resolveRange({ from: String(T), to: String(T) }, T, opts), 'INVALID_FIELD', 'to');
  rejects(() => resolveRange({ from: String(T + 1), to: String(T) }, T, opts), 'INVALID_FIELD', 'to');
});

test('resolveRange allows exactly maxWindows and rejects one more', () => {
  const to = T + 10_000 * 60_000;
  assert.equal(resolveRange({ from: String(T), to: String(to) }, T, opts).windows, 10_000);
  rejects(() => resolveRange({ from: String(T), to: String(to + 1) }, T, opts), 'RANGE_TOO_LARGE');
  assert.equal(resolveRange({ from: String(T), to: String(to + 1), granularity: '1h' }, T, opts).windows, 167);
});

test('parseId accepts positive integers below 2^53 only', () => {
  assert.equal(parseId('1'), 1);
  assert.equal(parseId('9007199254740991'), 9007199254740991);
  for (const bad of ['0', '-1', '01', '1.0', '1e3', 'abc', '', '9007199254740992', '99999999999999999', undefined]) {
    assert.equal(parseId(bad), null, String(bad));
  }
});

test('parseLimit: 1..max, default when absent', () => {
  assert.equal(parseLimit(undefined, 10, 1000), 10);
  assert.equal(parseLimit('1', 10, 1000), 1);
  assert.equal(parseLimit('1000', 10, 1000), 1000);
  for (const bad of ['0', '1001', '-1', '2.5', 'ten', '', ['5', '6']]) {
    rejects(() => parseLimit(bad, 10, 1000), 'INVALID_FIELD', 'limit');
  }
});

test('formatInstant equals toISOString without milliseconds, across days, edges and out-of-range years', () => {
  const reference = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const day = 86_400_000;
  const cases = [0, 1, 999, 1000, day - 1, day, day + 1, -1, -1000, -day - 1, 951_782_400_000 /* 2000-02-29 */,
    253_402_300_799_999, 253_402_300_800_000, 8.64e15, -8.64e15, 1_780_000_000_123];
  let x = 0x2545f491;
  for (let i = 0; i < 5000; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    cases.push((x >>> 0) * 1000 + (i % 1000), 1_700_000_000_000 + (x >>> 0) % (40 * day)); // interleaved days: the cached day switches
  }
  for (let m = 1_780_000_000_000; m < 1_780_000_000_000 + 2 * day; m += 60_000) cases.push(m);
  for (const ms of cases) assert.equal(formatInstant(ms), reference(ms), String(ms));
});

// Parsing of the time-range query parameters (`from`, `to`, `granularity`) and the
// response time format. Pure: "now" is passed in.
import { AppError } from '../shared/errors.ts';
import { alignDown, alignUp, isGranularity, windowCount, type Granularity } from '../shared/window-math.ts';

/** 9999-12-31T23:59:59.999Z: the last instant with a 4-digit ISO year. */
export const MAX_TIME_MS = 253_402_300_799_999;

const EPOCH_MS = /^\d{1,15}$/;
// RFC 3339 date-time with a mandatory offset. A space where the offset sign should be is
// read as '+': an unencoded '+' in a query string arrives decoded as a space.
const ISO = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+\- ])(\d{2}):?(\d{2}))$/;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * Epoch milliseconds (plain non-negative integer) or ISO-8601 with `Z` or an offset.
 * Returns null when the text is neither; fractional seconds beyond ms are truncated.
 */
export function parseInstant(raw: string): number | null {
  let ms: number;
  if (EPOCH_MS.test(raw)) {
    ms = Number(raw);
  } else {
    const m = ISO.exec(raw);
    if (!m) return null;
    const [, y, mo, d, h, mi, s, frac, z, sign, oh, om] = m;
    const year = Number(y), month = Number(mo), day = Number(d);
    const hour = Number(h), minute = Number(mi), second = Number(s ?? '0');
    if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
    if (hour > 23 || minute > 59 || second > 59) return null;
    let offsetMin = 0;
    if (!z) {
      const offH = Number(oh), offM = Number(om);
      if (offH > 23 || offM > 59) return null;
      offsetMin = (sign === '-' ? -1 : 1) * (offH * 60 + offM);
    }
    const millis = frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0;
    // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear avoids that quirk.
    const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, millis));
    date.setUTCFullYear(year);
    ms = date.getTime() - offsetMin * 60_000;
  }
  return Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_TIME_MS ? ms : null;
}

/** `2026-11-27T10:00:00Z`: UTC, whole seconds (sub-second parts are floored). */
export function formatInstant(ms: number): string {
  const s = Math.floor(ms / 1000) * 1000;
  // A 24 h series formats 1,440 instants per answer: the date part is built once per day
  // (toISOString + a regex per point was the largest CPU cost of building the answer).
  if (!(s >= 0 && s < LAST_FOUR_DIGIT_YEAR_MS)) return new Date(s).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const day = s - (s % DAY_MS);
  if (day !== lastDay) {
    lastDay = day;
    lastDayPrefix = new Date(day).toISOString().slice(0, 11);
  }
  const sec = (s - day) / 1000;
  return lastDayPrefix + two(Math.floor(sec / 3600)) + ':' + two(Math.floor(sec / 60) % 60) + ':' + two(sec % 60) + 'Z';
}

const DAY_MS = 86_400_000;
/** 10000-01-01T00:00:00Z: from there toISOString writes a six-digit year. */
const LAST_FOUR_DIGIT_YEAR_MS = 253_402_300_800_000;
let lastDay = NaN;
let lastDayPrefix = '';
const two = (n: number) => (n < 10 ? '0' + n : String(n));

/** A single-valued string parameter; repeated parameters arrive as arrays and are rejected. */
function single(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new AppError('INVALID_FIELD', `${field} must be given once`, { field });
  return value;
}

export function parseGranularity(value: unknown, def: Granularity): Granularity {
  const raw = single(value, 'granularity');
  if (raw === undefined) return def;
  if (!isGranularity(raw)) throw new AppError('INVALID_FIELD', 'granularity must be one of 1m, 5m, 1h', { field: 'granularity' });
  return raw;
}

function parseTimeField(value: unknown, field: 'from' | 'to'): number | undefined {
  const raw = single(value, field);
  if (raw === undefined) return undefined;
  const ms = parseInstant(raw);
  if (ms === null) {
    throw new AppError('INVALID_FIELD', `${field} must be epoch milliseconds or ISO-8601 with an offset (e.g. 2026-11-27T10:00:00Z)`, { field });
  }
  return ms;
}

export interface RangeOptions {
  readonly defaultGranularity: Granularity;
  /** Length of the range when `from` is omitted; it ends at `to` (default: now). */
  readonly defaultRangeMs: number;
  readonly maxWindows: number;
}

export interface TimeRange {
  readonly granularity: Granularity;
  /** Aligned, inclusive. */
  readonly fromMs: number;
  /** Aligned, exclusive. */
  readonly toMs: number;
  readonly windows: number;
}

/**
 * `to` defaults to now, `from` to `to - defaultRangeMs`. Then `from` is rounded down and
 * `to` up to the granularity. `to` must be after `from` (checked before rounding, so an
 * empty range is an error, never a silent one-window answer).
 */
export function resolveRange(query: Record<string, unknown>, nowMs: number, opts: RangeOptions): TimeRange {
  const granularity = parseGranularity(query.granularity, opts.defaultGranularity);
  const toRaw = parseTimeField(query.to, 'to') ?? Math.min(nowMs, MAX_TIME_MS);
  const fromRaw = parseTimeField(query.from, 'from') ?? Math.max(0, toRaw - opts.defaultRangeMs);
  if (toRaw <= fromRaw) throw new AppError('INVALID_FIELD', 'to must be after from', { field: 'to' });
  const fromMs = alignDown(fromRaw, granularity);
  const toMs = alignUp(toRaw, granularity);
  // The window holding 9999-12-31T23:59:59Z ends in year 10000, which has no 4-digit ISO form.
  if (toMs > MAX_TIME_MS) throw new AppError('INVALID_FIELD', 'to must end before the last window of year 9999', { field: 'to' });
  const windows = windowCount(fromMs, toMs, granularity);
  if (windows > opts.maxWindows) {
    const hint = granularity === '1h' ? 'narrow the range' : 'narrow the range or use a coarser granularity';
    throw new AppError('RANGE_TOO_LARGE', `The range holds ${windows} windows of ${granularity}; at most ${opts.maxWindows} are allowed: ${hint}`);
  }
  return { granularity, fromMs, toMs, windows };
}

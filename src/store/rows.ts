// Kafka records → table rows. Pure and deterministic: a record delivered twice becomes
// the same row twice, which the ReplacingMergeTree tables collapse. A record that cannot
// become a valid row throws RecordError, whose `reason` the sink puts in dead_letters.
import type { IDeadLetter, ILateClick, IWatermarkProgress, IWindowAggregate } from '../shared/proto.ts';

import { GRANULARITY_MS, type Granularity } from '../shared/window-math.ts';

export { GRANULARITY_MS };
export type GranularityName = Granularity;

export const GRANULARITY_BY_ENUM: Readonly<Record<number, GranularityName>> = { 1: '1m', 2: '5m', 3: '1h' };

export class RecordError extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
    this.name = 'RecordError';
  }
}

export interface AggregateRow {
  granularity: GranularityName;
  advertiser_id: number;
  campaign_id: number;
  ad_id: number;
  /** epoch seconds (DateTime) */
  window_start: number;
  clicks: number;
  final: 0 | 1;
  /**
   * ReplacingMergeTree version as a decimal UInt64: clicks·2 + final reaches 2^54 − 1, past
   * what a JS number holds exactly (JSONEachRow reads a quoted UInt64 on every version).
   */
  version: string;
  watermark_ms: number;
  emitted_at_ms: number;
  max_received_at_ms: number;
}

export interface WatermarkRow { subtask: number; parallelism: number; watermark_ms: number; emitted_at_ms: number }

/**
 * One late click for ONE granularity (the window of that size it missed). Identity:
 * (granularity, impression_id, event_type) — re-delivery collapses, yet one click can
 * correct its 1m and 5m windows (two rows) while the 1h window counted it on time.
 */
export interface LateClickRow {
  granularity: GranularityName;
  /** epoch seconds (DateTime): start of the missed window of this granularity */
  window_start: number;
  impression_id: string;
  event_type: string;
  ad_id: number;
  campaign_id: number;
  advertiser_id: number;
  event_time: number;
  event_time_ms: number;
  received_at_ms: number;
  watermark_ms: number;
  detected_at_ms: number;
}

export interface DeadLetterRow {
  stage: string;
  source_topic: string;
  partition: number;
  offset: number;
  reason: string;
  detail: string;
  key: string;
  payload: string;
  detected_at_ms: number;
}

export interface AdOwnerRow { ad_id: number; campaign_id: number; advertiser_id: number }

/**
 * Replacing version of one emission. The Flink job emits the full count so far, never a
 * delta, and it never decreases within a window; so a larger count is newer, and at equal
 * count the final firing beats a provisional one. Deterministic: a re-delivered record
 * gets the same version and collapses. Below 2^54 (counts up to MAX_EXACT_COUNT); bits 54+
 * hold the backfill generation (batch-path.ts).
 */
export function aggregateVersion(clicks: number, final: boolean): bigint {
  return BigInt(clicks) * 2n + (final ? 1n : 0n);
}

/** `a` is a newer emission of its window than `b`: the order of aggregateVersion, without big numbers. */
export function isNewerAggregate(a: AggregateRow, b: AggregateRow): boolean {
  return a.clicks > b.clicks || (a.clicks === b.clicks && a.final > b.final);
}

/**
 * The largest count the sink stores and the query API serves exactly: counts are JS numbers
 * in the sink and JSON numbers in the API. A larger one is dead-lettered with
 * COUNT_OUT_OF_RANGE, never rounded.
 */
export const MAX_EXACT_COUNT = Number.MAX_SAFE_INTEGER;

function count(v: unknown, field: string, reason: string): number {
  const n = Number(v ?? 0);
  if (!Number.isInteger(n) || n < 0) throw new RecordError(reason, `${field} must be a non-negative integer, got ${String(v)}`);
  // protobufjs decodes a uint64 above 2^53 to the nearest double: the value shown is approximate.
  if (n > MAX_EXACT_COUNT) throw new RecordError('COUNT_OUT_OF_RANGE', `${field} ${String(v)} is above 2^53-1 (${MAX_EXACT_COUNT}), the largest count stored and served exactly`);
  return n;
}

/** A positive integer id below 2^53, or a RecordError with `reason`. */
export function id(v: unknown, field: string, reason: string): number {
  const n = Number(v ?? 0);
  if (!Number.isSafeInteger(n) || n <= 0) throw new RecordError(reason, `${field} must be a positive integer below 2^53, got ${String(v)}`);
  return n;
}

function nonNeg(v: unknown, field: string, reason: string): number {
  const n = Number(v ?? 0);
  if (!Number.isSafeInteger(n) || n < 0) throw new RecordError(reason, `${field} must be a non-negative integer, got ${String(v)}`);
  return n;
}

/** Watermarks start at Long.MIN_VALUE in Flink (no precise JS number); any negative means "none yet". */
function watermark(v: unknown): number {
  const n = Number(v ?? 0);
  return Number.isFinite(n) && n >= 0 && Number.isSafeInteger(n) ? n : -1;
}

/** Latest instant a ClickHouse DateTime (UInt32 seconds) can hold. */
export const MAX_DATETIME_MS = 4294967295 * 1000;

export function aggregateRow(a: IWindowAggregate): AggregateRow {
  const R = 'INVALID_AGGREGATE';
  const granularity = GRANULARITY_BY_ENUM[Number(a.granularity ?? 0)];
  if (!granularity) throw new RecordError(R, `unknown granularity ${String(a.granularity)}`);
  const step = GRANULARITY_MS[granularity];
  const start = nonNeg(a.windowStartMs, 'window_start_ms', R);
  if (start % step !== 0 || start > MAX_DATETIME_MS) throw new RecordError(R, `window_start_ms ${start} is not aligned to ${granularity}`);
  const end = Number(a.windowEndMs ?? 0);
  if (end !== 0 && end !== start + step) throw new RecordError(R, `window_end_ms ${end} does not match a ${granularity} window starting ${start}`);
  const clicks = count(a.clicks, 'clicks', R);
  const final = a.final === true;
  return {
    granularity,
    advertiser_id: id(a.advertiserId, 'advertiser_id', R),
    campaign_id: id(a.campaignId, 'campaign_id', R),
    ad_id: id(a.adId, 'ad_id', R),
    window_start: start / 1000,
    clicks,
    final: final ? 1 : 0,
    version: String(aggregateVersion(clicks, final)),
    watermark_ms: watermark(a.watermarkMs),
    emitted_at_ms: nonNeg(a.emittedAtMs, 'emitted_at_ms', R),
    max_received_at_ms: nonNeg(a.maxReceivedAtMs, 'max_received_at_ms', R),
  };
}

export function watermarkRow(w: IWatermarkProgress): WatermarkRow {
  const R = 'INVALID_WATERMARK';
  const parallelism = Number(w.parallelism ?? 0);
  const subtask = Number(w.subtask ?? 0);
  if (!Number.isInteger(parallelism) || parallelism < 1) throw new RecordError(R, `parallelism must be >= 1, got ${parallelism}`);
  if (!Number.isInteger(subtask) || subtask < 0 || subtask >= parallelism) throw new RecordError(R, `subtask ${subtask} outside 0..${parallelism - 1}`);
  return { subtask, parallelism, watermark_ms: watermark(w.watermarkMs), emitted_at_ms: nonNeg(w.emittedAtMs, 'emitted_at_ms', R) };
}

/**
 * A late click. Its granularity (and window) are never guessed: a record without a known
 * granularity, or whose window_start_ms is not the window of that granularity containing
 * the click's event time, is refused with INVALID_FIELD.
 */
export function lateClickRow(l: ILateClick): LateClickRow {
  const R = 'INVALID_LATE_CLICK';
  const F = 'INVALID_FIELD';
  const c = l.click;
  if (!c) throw new RecordError(R, 'late click without click');
  const impression = c.impressionId ?? '';
  if (impression.length === 0 || impression.length > 256) throw new RecordError(R, 'impression_id missing or too long');
  const eventTime = nonNeg(c.eventTimeMs, 'event_time_ms', R);
  if (eventTime > MAX_DATETIME_MS) throw new RecordError(R, 'event_time_ms out of range');
  const granularity = GRANULARITY_BY_ENUM[Number(l.granularity ?? 0)];
  if (!granularity) throw new RecordError(F, `granularity missing or unknown (${String(l.granularity ?? 0)}): a late click applies to one granularity`);
  const step = GRANULARITY_MS[granularity];
  const windowStart = Number(l.windowStartMs ?? 0);
  const expected = eventTime - (eventTime % step);
  if (windowStart !== expected) {
    throw new RecordError(F, `window_start_ms ${String(l.windowStartMs ?? 0)} is not the ${granularity} window of event_time_ms ${eventTime} (expected ${expected})`);
  }
  return {
    granularity,
    window_start: windowStart / 1000,
    impression_id: impression,
    event_type: c.eventType || 'click',
    ad_id: id(c.adId, 'ad_id', R),
    campaign_id: id(c.campaignId, 'campaign_id', R),
    advertiser_id: id(c.advertiserId, 'advertiser_id', R),
    event_time: Math.floor(eventTime / 1000),
    event_time_ms: eventTime,
    received_at_ms: nonNeg(c.receivedAtMs, 'received_at_ms', R),
    watermark_ms: watermark(l.watermarkMs),
    detected_at_ms: nonNeg(l.detectedAtMs, 'detected_at_ms', R),
  };
}

export interface KafkaCoordinates { topic: string; partition: number; offset: number }

/**
 * A dead letter from the Flink job (topic clicks-dlq). Its identity is the source record
 * it names; when it names none, the DLQ record's own coordinates are used, so two
 * different dead letters never collapse into one.
 */
export function deadLetterRow(d: IDeadLetter, at: KafkaCoordinates): DeadLetterRow {
  const named = (d.sourceTopic ?? '') !== '';
  return {
    stage: d.stage || 'flink',
    source_topic: named ? d.sourceTopic! : at.topic,
    partition: named ? Number(d.partition ?? 0) : at.partition,
    offset: named ? Number(d.offset ?? 0) : at.offset,
    reason: d.reason || 'UNKNOWN',
    detail: d.detail ?? '',
    key: Buffer.from(d.key ?? []).toString('base64'),
    payload: Buffer.from(d.payload ?? []).toString('base64'),
    detected_at_ms: watermark(d.detectedAtMs) < 0 ? 0 : Number(d.detectedAtMs),
  };
}

/** A record the sink itself could not use. Identity: (sink, topic, partition, offset). */
export function sinkDeadLetterRow(at: KafkaCoordinates, key: Buffer | null, value: Buffer | null, reason: string, detail: string, nowMs: number): DeadLetterRow {
  return {
    stage: 'sink',
    source_topic: at.topic,
    partition: at.partition,
    offset: at.offset,
    reason,
    detail: detail.slice(0, 2000),
    key: (key ?? Buffer.alloc(0)).toString('base64'),
    payload: (value ?? Buffer.alloc(0)).toString('base64'),
    detected_at_ms: nowMs,
  };
}

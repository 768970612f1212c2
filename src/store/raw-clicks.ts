// Deduplicated clicks (topic clicks-deduped, one ClickEvent per click that passed the
// Flink dedup) → raw_clicks rows. Pure and deterministic: a click delivered twice becomes
// the same row twice, which the ReplacingMergeTree collapses (identity = its sorting key,
// which includes impression_id and event_type).
import type { IClickEvent } from '../shared/proto.ts';
import { RecordError } from './rows.ts';

export interface RawClickRow {
  impression_id: string;
  event_type: string;
  ad_id: number;
  campaign_id: number;
  advertiser_id: number;
  /** epoch seconds (DateTime) */
  event_time: number;
  event_time_ms: number;
  received_at_ms: number;
}

const MAX_DATETIME_MS = 4294967295 * 1000;

function positiveId(v: unknown, field: string): number {
  const n = Number(v ?? 0);
  if (!Number.isSafeInteger(n) || n <= 0) throw new RecordError('INVALID_RAW_CLICK', `${field} must be a positive integer below 2^53, got ${String(v)}`);
  return n;
}

export function rawClickRow(c: IClickEvent): RawClickRow {
  const R = 'INVALID_RAW_CLICK';
  const impression = c.impressionId ?? '';
  if (impression.length === 0 || impression.length > 256) throw new RecordError(R, 'impression_id missing or too long');
  const eventTime = Number(c.eventTimeMs ?? 0);
  if (!Number.isSafeInteger(eventTime) || eventTime < 0 || eventTime > MAX_DATETIME_MS) throw new RecordError(R, `event_time_ms out of range: ${String(c.eventTimeMs)}`);
  const received = Number(c.receivedAtMs ?? 0);
  return {
    impression_id: impression,
    // Same default as the late-click rows and the Flink dedup key.
    event_type: c.eventType || 'click',
    ad_id: positiveId(c.adId, 'ad_id'),
    campaign_id: positiveId(c.campaignId, 'campaign_id'),
    advertiser_id: positiveId(c.advertiserId, 'advertiser_id'),
    event_time: Math.floor(eventTime / 1000),
    event_time_ms: eventTime,
    received_at_ms: Number.isSafeInteger(received) && received > 0 ? received : 0,
  };
}

// Deduplicated clicks (topic clicks-deduped, one ClickEvent per click that passed the
// Flink dedup) → raw_clicks rows. Pure and deterministic: a click delivered twice becomes
// the same row twice, which the ReplacingMergeTree collapses (identity = its sorting key,
// which includes impression_id and event_type).
import type { IClickEvent } from '../shared/proto.ts';
import { MAX_DATETIME_MS, RecordError, id } from './rows.ts';

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
    ad_id: id(c.adId, 'ad_id', R),
    campaign_id: id(c.campaignId, 'campaign_id', R),
    advertiser_id: id(c.advertiserId, 'advertiser_id', R),
    event_time: Math.floor(eventTime / 1000),
    event_time_ms: eventTime,
    received_at_ms: Number.isSafeInteger(received) && received > 0 ? received : 0,
  };
}

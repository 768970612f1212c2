// What the query API needs from storage. The serving process adapts the ClickHouse
// helpers in src/store to this; unit tests use an in-memory fake. Every method may
// throw when storage is unreachable: the app answers 503 UNAVAILABLE for any rejection
// (an AppError thrown on purpose keeps its own code).
import type { Granularity } from '../shared/window-math.ts';

export interface ApiKeyRecord {
  readonly advertiserId: number;
  readonly revoked: boolean;
}

export interface SeriesQuery {
  readonly advertiserId: number;
  readonly campaignId: number;
  /** Present: one ad's series; absent: the campaign's (all its ads). */
  readonly adId?: number;
  /** With adId: every campaign of the advertiser the ad has clicks under (an ad that moved); else campaignId only. */
  readonly campaignIds?: readonly number[];
  readonly granularity: Granularity;
  /** Aligned to granularity, inclusive. */
  readonly fromMs: number;
  /** Aligned to granularity, exclusive. */
  readonly toMs: number;
}

export interface AdTotalsQuery {
  readonly advertiserId: number;
  readonly campaignId: number;
  /** Which aggregate table to read; fromMs/toMs are aligned to it. */
  readonly granularity: Granularity;
  readonly fromMs: number;
  readonly toMs: number;
  readonly limit: number;
}

export interface CampaignRangeQuery {
  readonly advertiserId: number;
  /** Which aggregate table to read; fromMs/toMs are aligned to it. */
  readonly granularity: Granularity;
  readonly fromMs: number;
  readonly toMs: number;
}

export interface QueryRepository {
  /** Key by sha256 hex of the raw API key (lowercase); null when no such key. */
  findApiKey(keyHash: string): Promise<ApiKeyRecord | null>;
  /** Whether the advertiser has clicks for the campaign (ownership is per click, never "first owner wins"). */
  hasCampaign(advertiserId: number, campaignId: number): Promise<boolean>;
  /** The advertiser's campaigns of an ad, the one with the newest click as `newest`; null when it has none. */
  adCampaigns(advertiserId: number, adId: number): Promise<{ newest: number; all: readonly number[] } | null>;
  /** All-time click totals of each of the advertiser's campaigns, any order. */
  campaignTotals(advertiserId: number): Promise<{ campaignId: number; clicks: number }[]>;
  /**
   * Clicks of each of the advertiser's campaigns in [fromMs, toMs), any order; campaigns
   * without clicks in the range may be left out. For every campaign it must equal the sum
   * of series() over the same range and granularity (the API promises that equality).
   */
  campaignRangeClicks(q: CampaignRangeQuery): Promise<{ campaignId: number; clicks: number }[]>;
  /**
   * Clicks per window in [fromMs, toMs): sparse (windows without clicks may be left out),
   * any order. Rows for the same window are summed by the caller, so this must not
   * return the same (deduplicated) figure twice, e.g. two versions of one row.
   */
  /** `revised`: changed after the streaming result (late correction or backfill); absent = false. */
  series(q: SeriesQuery): Promise<{ windowStartMs: number; clicks: number; revised?: boolean }[]>;
  /** Per-ad totals in [fromMs, toMs), highest first, at most `limit` rows. */
  adTotals(q: AdTotalsQuery): Promise<{ adId: number; clicks: number }[]>;
  /** The pipeline's watermark in epoch ms: windows ending at or before it are closed. Null when unknown. */
  completeBefore(): Promise<number | null>;
  /** True when storage answers. */
  ping(): Promise<boolean>;
}

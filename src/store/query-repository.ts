// Adapts the read helpers to the query API's QueryRepository (src/query/repository.ts).
// Typed structurally: store/ does not import query/ (parts only import shared/ and store/).
import { findApiKey, getApiKeyRecord } from './api-keys.ts';
import { adTotals, advertiserAdCampaigns, advertiserHasCampaign, campaignRangeClicks, campaignTotalsAt, completeBefore, seriesForAd, seriesForCampaign } from './reads.ts';
import { capError, withLimits, type QueryLimits } from './query-limits.ts';
import type { GranularityName } from './rows.ts';
import type { Store } from './store.ts';

/**
 * With `limits`, every read runs under the ClickHouse execution caps (query-limits.ts) and
 * a cap hit rejects with the documented AppError (503 UNAVAILABLE / 400 QUERY_TOO_EXPENSIVE)
 * instead of a bare storage error.
 */
export function storeQueryRepository(raw: Store, opts: { timeoutMs?: number; limits?: QueryLimits } = {}) {
  const store = opts.limits ? withLimits(raw, opts.limits) : raw;
  const capped = async <T,>(read: () => Promise<T>): Promise<T> => {
    try {
      return await read();
    } catch (err) {
      throw capError(err) ?? err;
    }
  };
  // The campaign list asks for complete_before twice at once (its answer, and where the
  // all-time totals switch from 1h to 1m windows): reads that overlap share one statement.
  // A caller that joins a read in flight gets an answer at most one statement old, and
  // complete_before only grows: never ahead of what is stored.
  let completeBeforeInFlight: Promise<number | null> | null = null;
  const sharedCompleteBefore = () => (completeBeforeInFlight ??= completeBefore(store).finally(() => { completeBeforeInFlight = null; }));
  return {
    findApiKey: (keyHash: string) => capped(async () => {
      const r = await getApiKeyRecord(store, keyHash);
      return r ? { advertiserId: r.advertiser_id, revoked: r.revoked } : null;
    }),
    hasCampaign: (advertiserId: number, campaignId: number) => capped(() => advertiserHasCampaign(store, advertiserId, campaignId)),
    adCampaigns: (advertiserId: number, adId: number) => capped(() => advertiserAdCampaigns(store, advertiserId, adId)),
    campaignTotals: (advertiserId: number) => capped(async () =>
      (await campaignTotalsAt(store, advertiserId, await sharedCompleteBefore())).map((t) => ({ campaignId: t.campaign_id, clicks: t.total_clicks }))),
    campaignRangeClicks: (q: { advertiserId: number; granularity: GranularityName; fromMs: number; toMs: number }) => capped(async () =>
      (await campaignRangeClicks(store, { advertiserId: q.advertiserId, granularity: q.granularity, from: q.fromMs, to: q.toMs }))
        .map((t) => ({ campaignId: t.campaign_id, clicks: t.clicks }))),
    series: (q: { advertiserId: number; campaignId: number; adId?: number; campaignIds?: readonly number[]; granularity: GranularityName; fromMs: number; toMs: number }) => capped(async () => {
      const r = { advertiserId: q.advertiserId, campaignId: q.campaignId, granularity: q.granularity, from: q.fromMs, to: q.toMs };
      const pts = q.adId === undefined ? await seriesForCampaign(store, r)
        : q.campaignIds && q.campaignIds.length > 1 ? await seriesForAd(store, { ...r, campaignId: undefined, campaignIds: q.campaignIds, adId: q.adId })
        : await seriesForAd(store, { ...r, adId: q.adId });
      return pts.map((p) => ({ windowStartMs: p.window_start_ms, clicks: p.clicks, revised: p.revised }));
    }),
    adTotals: (q: { advertiserId: number; campaignId: number; granularity: GranularityName; fromMs: number; toMs: number; limit: number }) => capped(async () => {
      const rows = await adTotals(store, { advertiserId: q.advertiserId, campaignId: q.campaignId, granularity: q.granularity, from: q.fromMs, to: q.toMs, limit: q.limit });
      return rows.map((r) => ({ adId: r.ad_id, clicks: r.clicks }));
    }),
    completeBefore: () => capped(() => sharedCompleteBefore()),
    ping: () => raw.ping(),
  };
}

export { findApiKey };

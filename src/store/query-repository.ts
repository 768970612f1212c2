// Adapts the read helpers to the query API's QueryRepository (src/query/repository.ts).
// Typed structurally: store/ does not import query/ (parts only import shared/ and store/).
import { findApiKey, getApiKeyRecord } from './api-keys.ts';
import { adOwner, adTotals, campaignOwner, campaignTotals, completeBefore, seriesForAd, seriesForCampaign } from './reads.ts';
import type { GranularityName } from './rows.ts';
import type { Store } from './store.ts';

export function storeQueryRepository(store: Store, opts: { timeoutMs?: number } = {}) {
  void opts;
  return {
    async findApiKey(keyHash: string) {
      const r = await getApiKeyRecord(store, keyHash);
      return r ? { advertiserId: r.advertiser_id, revoked: r.revoked } : null;
    },
    async campaignOwner(campaignId: number) {
      const o = await campaignOwner(store, campaignId);
      return o ? { advertiserId: o.advertiser_id } : null;
    },
    async adOwner(adId: number) {
      const o = await adOwner(store, adId);
      return o ? { advertiserId: o.advertiser_id, campaignId: o.campaign_id } : null;
    },
    async campaignTotals(advertiserId: number) {
      return (await campaignTotals(store, advertiserId)).map((t) => ({ campaignId: t.campaign_id, clicks: t.total_clicks }));
    },
    async series(q: { advertiserId: number; campaignId: number; adId?: number; granularity: GranularityName; fromMs: number; toMs: number }) {
      const r = { advertiserId: q.advertiserId, campaignId: q.campaignId, granularity: q.granularity, from: q.fromMs, to: q.toMs };
      const pts = q.adId === undefined ? await seriesForCampaign(store, r) : await seriesForAd(store, { ...r, adId: q.adId });
      return pts.map((p) => ({ windowStartMs: p.window_start_ms, clicks: p.clicks, revised: p.revised }));
    },
    async adTotals(q: { advertiserId: number; campaignId: number; granularity: GranularityName; fromMs: number; toMs: number; limit: number }) {
      const rows = await adTotals(store, { advertiserId: q.advertiserId, campaignId: q.campaignId, granularity: q.granularity, from: q.fromMs, to: q.toMs, limit: q.limit });
      return rows.map((r) => ({ adId: r.ad_id, clicks: r.clicks }));
    },
    completeBefore: () => completeBefore(store),
    ping: () => store.ping(),
  };
}

export { findApiKey };

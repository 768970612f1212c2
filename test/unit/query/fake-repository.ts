// In-memory QueryRepository for unit tests of the query app. Integration tests use the
// real ClickHouse-backed repository.
import type { AdTotalsQuery, ApiKeyRecord, CampaignRangeQuery, QueryRepository, SeriesQuery } from '../../../src/query/repository.ts';
import { createHash } from 'node:crypto';
import { hashApiKey } from '../../../src/query/auth.ts';
import { noteApiKeyMinted } from '../../../src/store/api-keys.ts';
import { GRANULARITY_MS } from '../../../src/shared/window-math.ts';

export interface FakeClick {
  advertiserId: number;
  campaignId: number;
  adId: number;
  /** Event time, epoch ms. */
  atMs: number;
  count?: number;
}

/** A key in the minted format (`ak_` + 32 bytes base64url), the same for the same name. */
export function testApiKey(name: string): string {
  return 'ak_' + createHash('sha256').update(name).digest('base64url');
}

export class FakeRepository implements QueryRepository {
  readonly keys = new Map<string, ApiKeyRecord>();
  readonly campaigns = new Map<number, number>(); // campaign -> advertiser
  readonly ads = new Map<number, { advertiserId: number; campaignId: number }>();
  readonly clicks: FakeClick[] = [];
  watermarkMs: number | null = null;
  /** When set, every call rejects with it (storage down). */
  failure: Error | null = null;
  readonly calls: Record<string, number> = {};

  /** Like minting (api-keys.ts): a key added now works at once, whatever failed before. */
  addKey(rawKey: string, advertiserId: number): void {
    this.keys.set(hashApiKey(rawKey), { advertiserId, revoked: false });
    noteApiKeyMinted();
  }

  revokeKey(rawKey: string): void {
    const rec = this.keys.get(hashApiKey(rawKey));
    if (rec) this.keys.set(hashApiKey(rawKey), { ...rec, revoked: true });
  }

  addAd(advertiserId: number, campaignId: number, adId: number): void {
    this.campaigns.set(campaignId, advertiserId);
    this.ads.set(adId, { advertiserId, campaignId });
  }

  click(adId: number, atMs: number, count = 1): void {
    const ad = this.ads.get(adId);
    if (!ad) throw new Error(`unknown ad ${adId}`);
    this.clicks.push({ ...ad, adId, atMs, count });
  }

  private async step(name: string): Promise<void> {
    this.calls[name] = (this.calls[name] ?? 0) + 1;
    if (this.failure) throw this.failure;
  }

  async findApiKey(keyHash: string) {
    await this.step('findApiKey');
    return this.keys.get(keyHash) ?? null;
  }

  async hasCampaign(advertiserId: number, campaignId: number) {
    await this.step('hasCampaign');
    return this.campaigns.get(campaignId) === advertiserId;
  }

  async adCampaigns(advertiserId: number, adId: number) {
    await this.step('adCampaigns');
    const ad = this.ads.get(adId);
    return ad && ad.advertiserId === advertiserId ? { newest: ad.campaignId, all: [ad.campaignId] } : null;
  }

  async campaignTotals(advertiserId: number) {
    await this.step('campaignTotals');
    const totals = new Map<number, number>();
    for (const [campaignId, owner] of this.campaigns) if (owner === advertiserId) totals.set(campaignId, 0);
    for (const c of this.clicks) {
      if (c.advertiserId === advertiserId) totals.set(c.campaignId, (totals.get(c.campaignId) ?? 0) + (c.count ?? 1));
    }
    // Reverse order on purpose: the app must sort.
    return [...totals].map(([campaignId, clicks]) => ({ campaignId, clicks })).reverse();
  }

  async campaignRangeClicks(q: CampaignRangeQuery) {
    await this.step('campaignRangeClicks');
    const totals = new Map<number, number>();
    for (const c of this.clicks) {
      if (c.advertiserId !== q.advertiserId) continue;
      if (c.atMs < q.fromMs || c.atMs >= q.toMs) continue;
      totals.set(c.campaignId, (totals.get(c.campaignId) ?? 0) + (c.count ?? 1));
    }
    // Sparse (quiet campaigns absent) and reversed: the app must fill in zeros and order.
    return [...totals].map(([campaignId, clicks]) => ({ campaignId, clicks })).reverse();
  }

  async series(q: SeriesQuery) {
    await this.step('series');
    const size = GRANULARITY_MS[q.granularity];
    const byWindow = new Map<number, number>();
    for (const c of this.clicks) {
      if (c.advertiserId !== q.advertiserId) continue;
      if (q.adId !== undefined && q.campaignIds ? !q.campaignIds.includes(c.campaignId) : c.campaignId !== q.campaignId) continue;
      if (q.adId !== undefined && c.adId !== q.adId) continue;
      if (c.atMs < q.fromMs || c.atMs >= q.toMs) continue;
      const w = c.atMs - (c.atMs % size);
      byWindow.set(w, (byWindow.get(w) ?? 0) + (c.count ?? 1));
    }
    // Sparse and reversed: the app must fill and order.
    return [...byWindow].map(([windowStartMs, clicks]) => ({ windowStartMs, clicks })).reverse();
  }

  async adTotals(q: AdTotalsQuery) {
    await this.step('adTotals');
    const totals = new Map<number, number>();
    for (const c of this.clicks) {
      if (c.advertiserId !== q.advertiserId || c.campaignId !== q.campaignId) continue;
      if (c.atMs < q.fromMs || c.atMs >= q.toMs) continue;
      totals.set(c.adId, (totals.get(c.adId) ?? 0) + (c.count ?? 1));
    }
    return [...totals].map(([adId, clicks]) => ({ adId, clicks }));
  }

  async completeBefore() {
    await this.step('completeBefore');
    return this.watermarkMs;
  }

  async ping() {
    await this.step('ping');
    return true;
  }
}

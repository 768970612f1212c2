import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRng } from '../../../src/simulate/prng.ts';
import { buildCatalogue, TrafficModel, type TrafficModelOptions } from '../../../src/simulate/traffic-model.ts';
import { ZipfSampler } from '../../../src/simulate/zipf-sampler.ts';

const base: TrafficModelOptions = { seed: 1, runId: 'testrun', ads: 5000, campaigns: 500, advertisers: 50 };
const NOW = Date.UTC(2026, 10, 27, 10, 0, 0);

function draw(o: TrafficModelOptions, n: number) {
  const m = new TrafficModel(o);
  return Array.from({ length: n }, (_, i) => m.next(NOW + i));
}

describe('catalogue', () => {
  it('gives every ad one campaign and every campaign one advertiser, all covered', () => {
    const cat = buildCatalogue({ ads: 5000, campaigns: 500, advertisers: 50 });
    assert.equal(cat.ads.length, 5000);
    assert.equal(new Set(cat.ads.map((a) => a.ad_id)).size, 5000);
    const campaignOwner = new Map<number, number>();
    for (const a of cat.ads) {
      assert.ok(Number.isSafeInteger(a.ad_id) && a.ad_id > 0);
      assert.ok(a.campaign_id >= 1 && a.campaign_id <= 500);
      assert.ok(a.advertiser_id >= 1 && a.advertiser_id <= 50);
      const prev = campaignOwner.get(a.campaign_id);
      if (prev !== undefined) assert.equal(prev, a.advertiser_id, `campaign ${a.campaign_id} has two advertisers`);
      campaignOwner.set(a.campaign_id, a.advertiser_id);
    }
    assert.equal(campaignOwner.size, 500, 'every campaign has an ad');
    assert.equal(new Set(campaignOwner.values()).size, 50, 'every advertiser has a campaign');
  });

  it('does not depend on the seed (runs with different seeds agree on ownership)', () => {
    const a = new TrafficModel({ ...base, seed: 1 }).catalogue;
    const b = new TrafficModel({ ...base, seed: 99 }).catalogue;
    assert.deepEqual(a.ads, b.ads);
  });

  it('honours id bases', () => {
    const cat = buildCatalogue({ ads: 3, campaigns: 2, advertisers: 1, adIdBase: 1000, campaignIdBase: 50, advertiserIdBase: 7 });
    assert.deepEqual(cat.ads, [
      { ad_id: 1000, campaign_id: 50, advertiser_id: 7 },
      { ad_id: 1001, campaign_id: 51, advertiser_id: 7 },
      { ad_id: 1002, campaign_id: 50, advertiser_id: 7 },
    ]);
  });
});

describe('traffic model', () => {
  it('is reproducible per seed and differs between seeds', () => {
    assert.deepEqual(draw(base, 2000), draw(base, 2000));
    const other = draw({ ...base, seed: 2 }, 2000);
    const same = draw(base, 2000).filter((p, i) => p.click.ad_id === other[i]!.click.ad_id).length;
    assert.ok(same < 400, `seeds 1 and 2 agree on ${same}/2000 ads`);
  });

  it('makes unique, valid impression ids', () => {
    const clicks = draw({ ...base, runId: 'm3x9k2abc123' }, 5000).map((p) => p.click);
    const ids = new Set(clicks.map((c) => c.impression_id));
    assert.equal(ids.size, clicks.length);
    for (const id of ids) assert.match(id, /^[A-Za-z0-9._:-]{8,128}$/);
    for (const c of clicks) assert.match(c.user_id, /^[A-Za-z0-9._:-]{1,128}$/);
  });

  it('rejects run ids that would make invalid impression ids', () => {
    assert.throws(() => new TrafficModel({ ...base, runId: 'has space' }), /runId/);
    assert.throws(() => new TrafficModel({ ...base, runId: 'x'.repeat(41) }), /runId/);
  });

  it('skews ad popularity like Zipf(1.1): top ad share matches the analytic value', () => {
    const m = new TrafficModel(base);
    const n = 200_000;
    const hits = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const id = m.next(NOW).click.ad_id;
      hits.set(id, (hits.get(id) ?? 0) + 1);
    }
    const top = m.adAtRank(0).ad_id;
    const expected = m.rankProbability(0); // 1 / H(5000, 1.1) ≈ 0.158
    const share = hits.get(top)! / n;
    assert.ok(expected > 0.14 && expected < 0.18, `analytic top share ${expected}`);
    assert.ok(Math.abs(share - expected) < 0.01, `top ad share ${share}, expected ${expected}`);
    const sorted = [...hits.values()].sort((a, b) => b - a);
    const top1pct = sorted.slice(0, 50).reduce((s, x) => s + x, 0) / n;
    assert.ok(top1pct > 0.5, `top 1% of ads take ${top1pct}`);
    assert.equal(Math.max(...hits.values()), hits.get(top), 'rank 0 is the most clicked ad');
  });

  it('places timestamps just before now, with the configured share out of order', () => {
    const planned = draw({ ...base, maxDelayMs: 1000, outOfOrderShare: 0.05, outOfOrderMaxMs: 20_000 }, 20_000);
    let ooo = 0;
    planned.forEach((p, i) => {
      const now = NOW + i;
      const lag = now - p.click.timestamp;
      assert.ok(lag >= 0 && lag <= 21_000, `lag ${lag}`);
      if (p.outOfOrder) ooo++;
      else assert.ok(lag <= 1000, `in-order lag ${lag}`);
    });
    assert.ok(Math.abs(ooo / planned.length - 0.05) < 0.01, `out-of-order share ${ooo / planned.length}`);
  });

  it('plans the configured share of duplicate sends', () => {
    const planned = draw({ ...base, duplicateShare: 0.03, duplicateDelayMs: [10, 20] }, 20_000);
    const dups = planned.filter((p) => p.resendAfterMs !== null);
    assert.ok(Math.abs(dups.length / planned.length - 0.03) < 0.006, `dup share ${dups.length / planned.length}`);
    for (const d of dups) assert.ok(d.resendAfterMs! >= 10 && d.resendAfterMs! <= 20);
    assert.equal(draw({ ...base, duplicateShare: 0 }, 5000).filter((p) => p.resendAfterMs !== null).length, 0);
  });

  it('uses an injected event-time function', () => {
    const planned = draw({ ...base, eventTime: (seq) => 1_700_000_000_000 + seq }, 10);
    assert.deepEqual(planned.map((p) => p.click.timestamp), Array.from({ length: 10 }, (_, i) => 1_700_000_000_001 + i));
  });
});

describe('zipf sampler', () => {
  it('probabilities sum to 1 and fall with rank', () => {
    const z = new ZipfSampler(100, 1.1);
    let sum = 0;
    for (let i = 0; i < 100; i++) {
      sum += z.probability(i);
      if (i) assert.ok(z.probability(i) < z.probability(i - 1));
    }
    assert.ok(Math.abs(sum - 1) < 1e-9);
  });

  it('exponent 0 is uniform', () => {
    const z = new ZipfSampler(4, 0);
    const rng = createRng(3);
    const c = [0, 0, 0, 0];
    for (let i = 0; i < 40_000; i++) c[z.sample(rng)]!++;
    for (const x of c) assert.ok(Math.abs(x - 10_000) < 500, `bucket ${x}`);
  });
});

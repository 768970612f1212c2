import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEMO_CATALOGUE, DEMO_ID_FLOOR, isDemoId } from '../../../src/simulate/demo-catalogue.ts';
import { buildCatalogue, TrafficModel } from '../../../src/simulate/traffic-model.ts';

const SIMULATE_DEFAULTS = { ads: 5000, campaigns: 500, advertisers: 50 };

describe('demo catalogue', () => {
  it('lives entirely in the reserved range, below 2^53, and never overlaps simulate\'s defaults', () => {
    const demo = buildCatalogue(DEMO_CATALOGUE);
    const sim = buildCatalogue(SIMULATE_DEFAULTS);
    for (const a of demo.ads) {
      for (const id of [a.ad_id, a.campaign_id, a.advertiser_id]) {
        assert.ok(isDemoId(id) && Number.isSafeInteger(id), `${id}`);
      }
    }
    for (const a of sim.ads) assert.ok(![a.ad_id, a.campaign_id, a.advertiser_id].some(isDemoId));
    assert.ok(DEMO_ID_FLOOR + DEMO_CATALOGUE.ads < Number.MAX_SAFE_INTEGER);
  });

  it('simulate: the same seed and sizes give every ad the same campaign and advertiser, in every run', () => {
    const a = new TrafficModel({ ...SIMULATE_DEFAULTS, seed: 3, runId: 'a1' });
    const b = new TrafficModel({ ...SIMULATE_DEFAULTS, seed: 3, runId: 'b2' });
    const owner = new Map<number, string>();
    for (let i = 0; i < 20_000; i++) {
      for (const m of [a, b]) {
        const c = m.next(1_764_237_600_000 + i).click;
        const o = `${c.campaign_id}/${c.advertiser_id}`;
        assert.equal(owner.get(c.ad_id) ?? o, o, `ad ${c.ad_id} keeps its owner`);
        owner.set(c.ad_id, o);
      }
    }
    // And a different seed only changes popularity, never ownership.
    const c = new TrafficModel({ ...SIMULATE_DEFAULTS, seed: 99, runId: 'c3' });
    for (let i = 0; i < 5000; i++) {
      const k = c.next(1_764_237_600_000 + i).click;
      if (owner.has(k.ad_id)) assert.equal(owner.get(k.ad_id), `${k.campaign_id}/${k.advertiser_id}`);
    }
  });
});

// The pure parts of the widened chaos scenarios: the ad-moves catalogue through the
// traffic model's attribution hook, and the late-correction judgement of flink-pause.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { movingCatalogue, type ScenarioContext } from '../../../src/chaos/scenarios.ts';
import { onTimeReportedLate, type LateRow } from '../../../src/chaos/late-corrections.ts';
import { Ledger } from '../../../src/simulate/ledger.ts';
import { TrafficModel } from '../../../src/simulate/traffic-model.ts';

const ids = { advertiser: 1001, foreignAdvertiser: 5001, adIdBase: 100_001, ads: 40, campaignIdBase: 1001, campaigns: 8, trafficStartMs: 0 };

test('ad-moves: the same ad id is signed with its campaign, then (after the move) with the next one, and every 25th click for the foreign advertiser', () => {
  const ctx = { ids, state: {} as Record<string, unknown> } as unknown as ScenarioContext;
  const opts = { seed: 5, runId: 'x', ads: ids.ads, campaigns: ids.campaigns, advertisers: 1, adIdBase: ids.adIdBase, campaignIdBase: ids.campaignIdBase, advertiserIdBase: ids.advertiser };
  const plain = new TrafficModel(opts);
  const moving = new TrafficModel({ ...opts, attribution: movingCatalogue(ctx) });
  const owners = new Map<number, Set<string>>();
  for (let i = 0; i < 4000; i++) {
    if (i === 2000) ctx.state.moved = true;
    const a = plain.next(1_000_000 + i).click;
    const b = moving.next(1_000_000 + i).click;
    // The hook never draws from the model's stream: same ads, users, times.
    assert.deepEqual([b.ad_id, b.user_id, b.timestamp, b.impression_id], [a.ad_id, a.user_id, a.timestamp, a.impression_id]);
    const seq = i + 1;
    if (seq % 25 === 0) {
      assert.equal(b.advertiser_id, ids.foreignAdvertiser);
      assert.equal(b.campaign_id, seq % 50 === 0 ? a.campaign_id : ids.campaignIdBase + 900);
    } else if (i >= 2000 && (a.ad_id - ids.adIdBase) % 2 === 0) {
      assert.equal(b.advertiser_id, a.advertiser_id);
      assert.equal(b.campaign_id, ids.campaignIdBase + ((a.campaign_id - ids.campaignIdBase + 1) % ids.campaigns));
    } else {
      assert.deepEqual(b, a);
    }
    const s = owners.get(b.ad_id) ?? new Set<string>();
    s.add(`${b.advertiser_id}/${b.campaign_id}`);
    owners.set(b.ad_id, s);
  }
  // Popular even ads were seen under both campaigns of the advertiser and under the foreign one.
  assert.ok([...owners.values()].some((s) => s.size >= 3), 'some ad was signed for three owners');
});

test('flink-pause: a late correction of a click that was on time at the gateway is a problem line; a click late at the gateway is not', () => {
  const ledger = Ledger.inMemory();
  const recv = 10_000_000;
  const add = (id: string, ts: number) => ledger.record({ impression_id: id, event_type: 'click', ad_id: 1, campaign_id: 1, advertiser_id: 1, timestamp: ts });
  add('on-time', recv - 3000);
  add('edge', recv - 120_000);
  add('late', recv - 120_001);
  const row = (id: string, ts: number, g = '1m'): LateRow => ({ granularity: g, impression_id: id, event_type: 'click', event_time_ms: ts, received_at_ms: recv, watermark_ms: recv + 60_000 });
  const r = onTimeReportedLate([row('on-time', recv - 3000), row('on-time', recv - 3000, '5m'), row('edge', recv - 120_000), row('late', recv - 120_001), row('stranger', recv)], ledger, 120_000);
  assert.equal(r.rows, 5);
  assert.equal(r.onTimeClicks, 2);
  assert.equal(r.unknown, 1);
  assert.equal(r.lines.length, 2);
  assert.match(r.lines[0]!, /on-time click on-time .*received 3000 ms after it.*\(1m\/5m;/);
  const many = onTimeReportedLate(Array.from({ length: 5 }, (_, i) => (add(`m${i}`, recv), row(`m${i}`, recv))), ledger, 120_000, 3);
  assert.deepEqual([many.lines.length, many.onTimeClicks], [4, 5]);
  assert.match(many.lines[3]!, /2 more on-time clicks .* \(5 in all\)/);
});

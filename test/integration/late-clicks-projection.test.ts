// Migration 10 (late_clicks' owner-first projection) on an existing embedded data directory:
// the reads answer the same numbers before and after it, the engine reads the projection,
// and late clicks stored after it land in it too. Real chdb; a temp dir removed at the end.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createLogger } from '../../src/shared/logger.ts';
import { EmbeddedStore } from '../../src/store/embedded-store.ts';
import { DB, LATE_CLICKS_BY_OWNER, MIGRATIONS, migrate } from '../../src/store/migrations.ts';
import { adTotals, allTimeCampaignTotals, campaignRangeClicks, seriesForAd, seriesForCampaign } from '../../src/store/reads.ts';

const logger = createLogger('test', 'silent');
const dir = mkdtempSync(join(tmpdir(), 'adclick-late-proj-'));
let store: EmbeddedStore | undefined;
after(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const H = 3_600_000;
const BASE = Math.floor(Date.now() / H) * H - 48 * H;

/** Late clicks of 5 advertisers x 4 campaigns x 3 ads over 30 hours, every granularity, each stored twice (a re-delivery). */
async function insertLate(store: EmbeddedStore, salt: number, rows: number): Promise<void> {
  await store.command(`INSERT INTO ${DB}.late_clicks
  (granularity, window_start, impression_id, event_type, ad_id, campaign_id, advertiser_id, event_time, event_time_ms, received_at_ms, watermark_ms, detected_at_ms)
SELECT g, multiIf(g = '1m', toStartOfMinute(t), g = '5m', toStartOfFiveMinutes(t), toStartOfHour(t)),
  concat('imp-', toString(${salt}), '-', toString(n)), 'click', ad, intDiv(ad - 1, 3) + 1, intDiv(ad - 1, 12) + 1,
  t, toInt64(toUInt32(t)) * 1000, 0, 0, 0
FROM (SELECT number AS n, number % 60 + 1 AS ad, toDateTime(${BASE / 1000} + (cityHash64(number, ${salt}) % (30 * 3600)), 'UTC') AS t,
  ['1m', '5m', '1h'][number % 3 + 1] AS g FROM numbers(${rows})) ARRAY JOIN [1, 2] AS copy`);
}

async function reads(store: EmbeddedStore) {
  const out: unknown[] = [];
  for (const adv of [1, 3, 5]) {
    for (const g of ['1m', '5m', '1h'] as const) {
      const r = { advertiserId: adv, granularity: g, from: BASE + 2 * H + 17 * 60_000, to: BASE + 27 * H + 43 * 60_000 };
      out.push(await campaignRangeClicks(store, r));
      out.push(await seriesForCampaign(store, { ...r, campaignId: (adv - 1) * 4 + 2 }));
      out.push(await seriesForAd(store, { ...r, campaignId: (adv - 1) * 4 + 2, adId: ((adv - 1) * 4 + 1) * 3 + 1 }));
      out.push(await adTotals(store, { ...r, campaignId: (adv - 1) * 4 + 3, limit: 10 }));
    }
    out.push(await allTimeCampaignTotals(store, adv, BASE + 20 * H));
  }
  return out;
}

test('late_clicks projection: built on an existing data directory, same answers, used by the reads', async () => {
  store = await EmbeddedStore.open({ path: join(dir, 'clickhouse'), logger });
  // A data directory from before migration 10, holding late clicks and aggregates.
  const before = await migrate(store, logger, {}, MIGRATIONS.filter((m) => m.id < 10));
  assert.ok(!before.applied.includes(10));
  await insertLate(store, 1, 300_000);
  await store.command(`INSERT INTO ${DB}.click_aggregates (granularity, advertiser_id, campaign_id, ad_id, window_start, clicks, final, version, watermark_ms, emitted_at_ms, max_received_at_ms)
SELECT g, intDiv(ad - 1, 12) + 1, intDiv(ad - 1, 3) + 1, ad, w, 3, 1, 7, 0, 0, 0 FROM (
  SELECT number % 60 + 1 AS ad, ['1m', '5m', '1h'][intDiv(number, 60) % 3 + 1] AS g,
    toDateTime(${BASE / 1000} + intDiv(number, 180) * 3600, 'UTC') AS w FROM numbers(180 * 30))`);
  const old = await reads(store);
  assert.ok(JSON.stringify(old).length > 2000, 'the reads have late clicks to count');

  const r = await migrate(store, logger);
  assert.deepEqual(r.applied, [10]);
  const [parts] = await store.query<{ n: number }>(
    `SELECT count() AS n FROM system.projection_parts WHERE database = '${DB}' AND table = 'late_clicks' AND name = '${LATE_CLICKS_BY_OWNER}' AND active`);
  assert.ok(Number(parts?.n) > 0, 'parts stored before the migration got the projection');
  assert.deepEqual(await reads(store), old, 'same answers through the projection');

  // The reads' shape of statement is answered from the projection.
  const plan = await store.query<{ explain: string }>(`EXPLAIN indexes = 1 SELECT campaign_id, uniqExact(impression_id, event_type) FROM ${DB}.late_clicks
WHERE advertiser_id = 3 AND granularity = '1m' AND window_start >= toDateTime(${(BASE + 2 * H) / 1000}) GROUP BY campaign_id`);
  assert.match(plan.map((p) => p.explain).join('\n'), new RegExp(`ReadFromMergeTree \\(${LATE_CLICKS_BY_OWNER}\\)`));

  // Late clicks stored afterwards: the same numbers with and without the projection.
  await insertLate(store, 2, 10_000);
  const sql = `SELECT campaign_id, granularity, toUInt32(window_start) AS ws, uniqExact(impression_id, event_type) AS c FROM ${DB}.late_clicks
WHERE advertiser_id = {adv:UInt64} AND window_start >= {from:DateTime} GROUP BY campaign_id, granularity, ws ORDER BY campaign_id, granularity, ws`;
  for (const adv of [2, 4]) {
    const p = { adv, from: BASE + 5 * H };
    const viaTable: Record<string, unknown>[] = await store.query(sql, p, { settings: { optimize_use_projections: 0 } });
    const viaProjection: Record<string, unknown>[] = await store.query(sql, p);
    assert.ok(viaTable.length > 100);
    assert.deepEqual(viaProjection, viaTable);
  }
  // A second start: nothing to apply.
  assert.deepEqual((await migrate(store, logger)).applied, []);
});

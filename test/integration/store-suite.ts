// One behavioural suite, run against every real engine (chdb; a ClickHouse server).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../src/shared/logger.ts';
import { ClickEvent, DeadLetter, LateClick, WatermarkProgress, WindowAggregate, WindowAudit } from '../../src/shared/proto.ts';
import { conservation } from '../../src/store/audit.ts';
import { buildBatch, writeBatch, type SinkMessage } from '../../src/sink/batch.ts';
import { createApiKey, findApiKey, getApiKeyRecord, hashApiKey, revokeApiKey } from '../../src/store/api-keys.ts';
import { DB, migrate, MIGRATIONS } from '../../src/store/migrations.ts';
import { backfill, generationOf, reconcile } from '../../src/store/batch-path.ts';
import { adTotals, advanceCompleteBefore, advertiserAdCampaigns, allTimeCampaignTotals, closedHoursEnd, advertiserHasCampaign, campaignRangeClicks, campaignTotals, completeBefore, seriesForAd as seriesForAdWithFlags, seriesForCampaign as seriesForCampaignWithFlags, type SeriesPoint } from '../../src/store/reads.ts';

// Most assertions here are about counts; the `revised` flag is asserted on its own below.
const counts = (pts: SeriesPoint[]) => pts.map(({ window_start_ms, clicks }) => ({ window_start_ms, clicks }));
const seriesForAd = async (...a: Parameters<typeof seriesForAdWithFlags>) => counts(await seriesForAdWithFlags(...a));
const seriesForCampaign = async (...a: Parameters<typeof seriesForCampaignWithFlags>) => counts(await seriesForCampaignWithFlags(...a));
import type { Store } from '../../src/store/store.ts';
import { buildQueryApp } from '../../src/query/app.ts';
import { storeQueryRepository } from '../../src/store/query-repository.ts';

const logger = createLogger('test', 'silent');
// An hour-aligned time a day ago: inside raw_clicks' 7-day TTL whatever the date (a fixed
// date stopped working a week after it was written), and long closed.
const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 26 * 3_600_000;
const MIN = 60_000;

let offset = 0;
function msg(topic: string, value: Uint8Array, partition = 0): SinkMessage {
  return { topic, partition, offset: String(offset++), key: null, value: Buffer.from(value) };
}
function agg(p: { g?: number; ad: number; camp: number; adv: number; ws: number; clicks: number; final?: boolean }): SinkMessage {
  const step = p.g === 3 ? 3_600_000 : p.g === 2 ? 300_000 : MIN;
  return msg('click-aggregates', WindowAggregate.encode({
    granularity: p.g ?? 1, adId: p.ad, campaignId: p.camp, advertiserId: p.adv, windowStartMs: p.ws, windowEndMs: p.ws + step,
    clicks: p.clicks, final: p.final ?? false, watermarkMs: p.ws, emittedAtMs: p.ws + step, maxReceivedAtMs: p.ws + 1,
  }).finish());
}
const STEP: Record<number, number> = { 1: MIN, 2: 5 * MIN, 3: 60 * MIN };
/** One LateClick record for one granularity (as the Flink job writes them); g 0 = unspecified. */
function late(p: { imp: string; ad: number; camp: number; adv: number; t: number; g: number; ws?: number }): SinkMessage {
  const ws = p.ws ?? (p.g ? p.t - (p.t % STEP[p.g]!) : 0);
  return msg('clicks-late', LateClick.encode({
    click: { impressionId: p.imp, eventType: 'click', adId: p.ad, campaignId: p.camp, advertiserId: p.adv, userId: 'u', eventTimeMs: p.t, receivedAtMs: p.t + 5 },
    watermarkMs: p.t + 10 * MIN, detectedAtMs: p.t + 10 * MIN, granularity: p.g, windowStartMs: ws,
  }).finish());
}
/** The records for a click late for each of the given granularities. */
function lateFor(gs: number[], p: { imp: string; ad: number; camp: number; adv: number; t: number }): SinkMessage[] {
  return gs.map((g) => late({ ...p, g }));
}
/** One record of clicks-deduped (a click that passed the Flink dedup). */
function raw(p: { imp: string; ad: number; camp: number; adv: number; t: number }): SinkMessage {
  return msg('clicks-deduped', ClickEvent.encode({
    impressionId: p.imp, eventType: 'click', adId: p.ad, campaignId: p.camp, advertiserId: p.adv, userId: 'u', eventTimeMs: p.t, receivedAtMs: p.t + 5,
  }).finish());
}
function wm(subtask: number, parallelism: number, w: number, at: number): SinkMessage {
  return msg('click-watermarks', WatermarkProgress.encode({ subtask, parallelism, watermarkMs: w, emittedAtMs: at }).finish());
}

export function storeSuite(name: string, open: () => Promise<Store>, close: (s: Store) => Promise<void>, extra?: (get: () => Store) => void): void {
  let store: Store;

  test(`${name}: open and migrate twice`, async () => {
    store = await open();
    const first = await migrate(store, logger);
    assert.deepEqual(first.applied, MIGRATIONS.map((m) => m.id));
    const second = await migrate(store, logger);
    assert.deepEqual(second.applied, []);
    assert.deepEqual(second.skipped, MIGRATIONS.map((m) => m.id));
    const tables = (await store.query<{ name: string }>(`SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name`, { db: DB })).map((r) => r.name);
    assert.deepEqual(tables, ['ad_owners', 'api_keys', 'backfill_runs', 'click_aggregates', 'dead_letters', 'late_clicks', 'pipeline_watermarks', 'raw_clicks', 'schema_migrations', 'window_audit']);
    const lateCols = (await store.query<{ name: string }>(
      `SELECT name FROM system.columns WHERE database = {db:String} AND table = 'late_clicks' AND name IN ('granularity', 'window_start') ORDER BY name`, { db: DB })).map((r) => r.name);
    assert.deepEqual(lateCols, ['granularity', 'window_start'], 'late_clicks carries its granularity and window');
    const recorded = await store.query<{ n: number }>(`SELECT count() AS n FROM ${DB}.schema_migrations FINAL`);
    assert.equal(recorded[0]!.n, MIGRATIONS.length);
    assert.equal(typeof recorded[0]!.n, 'number');
  });

  test(`${name}: aggregates collapse on re-delivery, newer emission wins, late clicks fold in`, async () => {
    const adv = 7, camp = 55;
    const batch1 = [
      agg({ ad: 1, camp, adv, ws: T0, clicks: 3 }),
      agg({ ad: 1, camp, adv, ws: T0, clicks: 5 }), // superseding provisional
      agg({ ad: 2, camp, adv, ws: T0, clicks: 4, final: true }),
      agg({ ad: 1, camp, adv, ws: T0 + MIN, clicks: 2, final: true }),
      agg({ ad: 9, camp: 56, adv, ws: T0, clicks: 100, final: true }), // other campaign
      agg({ g: 3, ad: 1, camp, adv, ws: T0, clicks: 7 }), // 1h window: never summed with 1m
      agg({ ad: 3, camp: 99, adv: 8, ws: T0, clicks: 11, final: true }), // other advertiser
      ...lateFor([1, 2, 3], { imp: 'imp_late_0001', ad: 1, camp, adv, t: T0 + 30_000 }),
      ...lateFor([1, 2, 3], { imp: 'imp_late_0001', ad: 1, camp, adv, t: T0 + 30_000 }), // duplicate late
      ...lateFor([1, 2, 3], { imp: 'imp_late_0002', ad: 2, camp, adv, t: T0 + 2 * MIN + 1 }),
    ];
    await writeBatch(store, buildBatch(batch1));
    await writeBatch(store, buildBatch(batch1)); // the whole batch re-delivered
    // Separate inserts: re-delivery of an old emission and a final at equal count, across parts.
    await writeBatch(store, buildBatch([agg({ ad: 1, camp, adv, ws: T0, clicks: 3 })]));
    await writeBatch(store, buildBatch([agg({ ad: 1, camp, adv, ws: T0, clicks: 6, final: true })]));
    await writeBatch(store, buildBatch([late({ imp: 'imp_late_0001', ad: 1, camp, adv, t: T0 + 30_000, g: 1 })]));

    const s = await seriesForCampaign(store, { advertiserId: adv, campaignId: camp, granularity: '1m', from: T0, to: T0 + 10 * MIN });
    assert.deepEqual(s, [
      { window_start_ms: T0, clicks: 6 + 4 + 1 },
      { window_start_ms: T0 + MIN, clicks: 2 },
      { window_start_ms: T0 + 2 * MIN, clicks: 1 },
    ]);
    const a1 = await seriesForAd(store, { advertiserId: adv, adId: 1, granularity: '1m', from: T0, to: T0 + 10 * MIN });
    assert.deepEqual(a1, [{ window_start_ms: T0, clicks: 7 }, { window_start_ms: T0 + MIN, clicks: 2 }]);
    const a1c = await seriesForAd(store, { advertiserId: adv, adId: 1, campaignId: camp, granularity: '1m', from: T0, to: T0 + MIN });
    assert.deepEqual(a1c, [{ window_start_ms: T0, clicks: 7 }]);
    // Only the window with a late correction is marked revised.
    const flags = await seriesForCampaignWithFlags(store, { advertiserId: adv, campaignId: camp, granularity: '1m', from: T0, to: T0 + 10 * MIN });
    assert.deepEqual(flags.map((p) => p.revised), [true, false, true]);
    // Another advertiser sees nothing of it.
    assert.deepEqual(await seriesForAd(store, { advertiserId: 8, adId: 1, granularity: '1m', from: T0, to: T0 + 10 * MIN }), []);
    // 1h series: the 1h row plus the late clicks recorded for that hour.
    const h = await seriesForCampaign(store, { advertiserId: adv, campaignId: camp, granularity: '1h', from: T0, to: T0 + 3_600_000 });
    assert.deepEqual(h, [{ window_start_ms: T0, clicks: 7 + 2 }]);

    const totals = await campaignTotals(store, adv);
    assert.deepEqual(totals, [{ campaign_id: 55, total_clicks: 6 + 4 + 2 + 2 }, { campaign_id: 56, total_clicks: 100 }]);
    const ranged = await campaignTotals(store, adv, T0 + MIN, T0 + 2 * MIN);
    assert.deepEqual(ranged, [{ campaign_id: 55, total_clicks: 2 }]);
    const ads = await adTotals(store, { advertiserId: adv, campaignId: camp, from: T0, to: T0 + 10 * MIN, limit: 10 });
    assert.deepEqual(ads, [{ ad_id: 1, clicks: 9 }, { ad_id: 2, clicks: 5 }]);
    assert.deepEqual(await adTotals(store, { advertiserId: adv, campaignId: camp, from: T0, to: T0 + 10 * MIN, limit: 1 }), [{ ad_id: 1, clicks: 9 }]);

    assert.equal(await advertiserHasCampaign(store, 7, 55), true);
    assert.equal(await advertiserHasCampaign(store, 8, 55), false);
    assert.deepEqual(await advertiserAdCampaigns(store, 8, 3), { newest: 99, all: [99] });
    assert.equal(await advertiserAdCampaigns(store, 7, 3), null);
    assert.equal(await advertiserHasCampaign(store, 7, 12345), false);
    assert.equal(await advertiserAdCampaigns(store, 7, 12345), null);
  });

  test(`${name}: a late click corrects only the granularities it was late for, once`, async () => {
    // One ad, 6 real clicks in hour T0. Per granularity, what the windows counted on time
    // plus what was late for that granularity must give 6 every time:
    //   3 clicks on time everywhere; A late for 1m only; B late for 1m, 5m and 1h;
    //   C (in the 10:03 minute) late for 1m and 5m, on time for 1h.
    const adv = 21, camp = 210, ad = 2100;
    const base = { ad, camp, adv };
    const aggs = [
      agg({ g: 1, ...base, ws: T0, clicks: 3, final: true }),
      agg({ g: 2, ...base, ws: T0, clicks: 3 + 1, final: true }), // + A
      agg({ g: 3, ...base, ws: T0, clicks: 3 + 1 + 1, final: true }), // + A + C
    ];
    const A = lateFor([1], { ...base, imp: 'imp_only_1m', t: T0 + 10_000 });
    const B = lateFor([1, 2, 3], { ...base, imp: 'imp_all_three', t: T0 + 20_000 });
    const C = lateFor([1, 2], { ...base, imp: 'imp_1m_5m', t: T0 + 3 * MIN + 5_000 });
    const read = async () => ({
      m1: await seriesForCampaign(store, { advertiserId: adv, campaignId: camp, granularity: '1m', from: T0, to: T0 + 60 * MIN }),
      m5: await seriesForAd(store, { advertiserId: adv, adId: ad, granularity: '5m', from: T0, to: T0 + 60 * MIN }),
      h1: await seriesForAd(store, { advertiserId: adv, adId: ad, campaignId: camp, granularity: '1h', from: T0, to: T0 + 60 * MIN }),
      camp: await campaignTotals(store, adv),
      ads1m: await adTotals(store, { advertiserId: adv, campaignId: camp, from: T0, to: T0 + 60 * MIN, limit: 10 }),
      ads1h: await adTotals(store, { advertiserId: adv, campaignId: camp, from: T0, to: T0 + 60 * MIN, limit: 10, granularity: '1h' }),
    });
    const pt = (ws: number, clicks: number) => ({ window_start_ms: ws, clicks });
    const expect = (m1: [number, number][], m5: number, h1: number) => ({
      m1: m1.map(([ws, c]) => pt(ws, c)), m5: [pt(T0, m5)], h1: [pt(T0, h1)],
      camp: [{ campaign_id: camp, total_clicks: m1.reduce((s, [, c]) => s + c, 0) }],
      ads1m: [{ ad_id: ad, clicks: m1.reduce((s, [, c]) => s + c, 0) }],
      ads1h: [{ ad_id: ad, clicks: h1 }],
    });

    await writeBatch(store, buildBatch(aggs));
    assert.deepEqual(await read(), expect([[T0, 3]], 4, 5), 'aggregates alone');
    await writeBatch(store, buildBatch(A));
    assert.deepEqual(await read(), expect([[T0, 4]], 4, 5), 'late for 1m only: only the 1m series changes');
    await writeBatch(store, buildBatch(B));
    assert.deepEqual(await read(), expect([[T0, 5]], 5, 6), 'late for all three: each changes once');
    await writeBatch(store, buildBatch(C));
    const truth = expect([[T0, 5], [T0 + 3 * MIN, 1]], 6, 6);
    assert.deepEqual(await read(), truth, 'late for 1m and 5m: in its own 1m window, and the 5m window; 1h unchanged');

    // Re-delivery of everything, as one batch and record by record: nothing changes.
    const all = [...aggs, ...A, ...B, ...C];
    await writeBatch(store, buildBatch(all));
    for (const m of [...A, ...B, ...C]) await writeBatch(store, buildBatch([m]));
    assert.deepEqual(await read(), truth, 're-delivery changes nothing');

    // Stored rows: one per (granularity, click), whatever was delivered, each with its window.
    const rows = await store.query<{ g: string; imp: string; ws: number; n: number }>(
      `SELECT toString(granularity) AS g, impression_id AS imp, toUInt32(window_start) AS ws, count() AS n FROM ${DB}.late_clicks FINAL
WHERE advertiser_id = {adv:UInt64} GROUP BY g, imp, ws ORDER BY g, imp`, { adv });
    assert.deepEqual(rows.map((r) => [r.g, r.imp, Number(r.ws) * 1000, Number(r.n)]), [
      ['1h', 'imp_all_three', T0, 1],
      ['1m', 'imp_1m_5m', T0 + 3 * MIN, 1],
      ['1m', 'imp_all_three', T0, 1],
      ['1m', 'imp_only_1m', T0, 1],
      ['5m', 'imp_1m_5m', T0, 1],
      ['5m', 'imp_all_three', T0, 1],
    ]);
  });

  test(`${name}: complete_before only when every subtask reported`, async () => {
    await writeBatch(store, buildBatch([wm(0, 2, T0 + 5 * MIN, T0 + 6 * MIN)]));
    assert.equal(await completeBefore(store), null);
    await writeBatch(store, buildBatch([wm(1, 2, T0 + 3 * MIN, T0 + 6 * MIN), wm(0, 2, T0 + 8 * MIN, T0 + 9 * MIN)]));
    assert.equal(await completeBefore(store), T0 + 3 * MIN);
    await writeBatch(store, buildBatch([wm(1, 2, T0 + 9 * MIN, T0 + 10 * MIN)]));
    await writeBatch(store, buildBatch([wm(1, 2, T0 + 9 * MIN, T0 + 10 * MIN)]));
    assert.equal(await completeBefore(store), T0 + 8 * MIN);
    assert.equal(await advanceCompleteBefore(store), T0 + 8 * MIN);
    // A restored job reports lower watermarks (newer emissions): complete_before never goes back.
    await writeBatch(store, buildBatch([wm(0, 2, T0 + 4 * MIN, T0 + 20 * MIN), wm(1, 2, T0 + 4 * MIN, T0 + 20 * MIN)]));
    assert.equal(await completeBefore(store), T0 + 8 * MIN, 'complete_before went backwards after a restore');
    // Rescaled to 3 subtasks, not all reported yet: still the floor, not null.
    await writeBatch(store, buildBatch([wm(2, 3, T0 + 12 * MIN, T0 + 21 * MIN)]));
    assert.equal(await completeBefore(store), T0 + 8 * MIN);
    await writeBatch(store, buildBatch([wm(0, 3, T0 + 10 * MIN, T0 + 22 * MIN), wm(1, 3, T0 + 11 * MIN, T0 + 22 * MIN)]));
    assert.equal(await advanceCompleteBefore(store), T0 + 10 * MIN);
    assert.equal(await completeBefore(store), T0 + 10 * MIN);
  });

  test(`${name}: undecodable and invalid records become dead letters, idempotently`, async () => {
    const bad = [
      { topic: 'click-aggregates', partition: 3, offset: '41', key: Buffer.from('k'), value: Buffer.from([0xff, 0xff, 0xff, 0xff]) },
      { topic: 'click-aggregates', partition: 3, offset: '42', key: null, value: Buffer.from(WindowAggregate.encode({ granularity: 9 as never, adId: 1 }).finish()) },
      { topic: 'clicks-dlq', partition: 0, offset: '5', key: null, value: Buffer.from(DeadLetter.encode({ sourceTopic: 'clicks', partition: 1, offset: 77, reason: 'INVALID_CLICK', detail: 'x', payload: Buffer.from('raw'), detectedAtMs: T0, stage: 'flink' }).finish()) },
      // a late click without granularity: never guessed, never folded into any series
      { ...late({ imp: 'imp_no_granularity', ad: 31, camp: 310, adv: 30, t: T0 + 1_000, g: 0, ws: T0 }), partition: 1, offset: '9' },
    ];
    const b = buildBatch(bad);
    assert.deepEqual(b.commits, [{ topic: 'click-aggregates', partition: 3, offset: '43' }, { topic: 'clicks-dlq', partition: 0, offset: '6' }, { topic: 'clicks-late', partition: 1, offset: '10' }]);
    await writeBatch(store, b);
    await writeBatch(store, buildBatch(bad));
    const rows = await store.query<{ stage: string; source_topic: string; partition: number; offset: number; reason: string; payload: string }>(
      `SELECT stage, source_topic, partition, offset, reason, payload FROM ${DB}.dead_letters FINAL ORDER BY stage, source_topic, offset`);
    assert.deepEqual(rows.map((r) => [r.stage, r.source_topic, r.partition, r.offset, r.reason]), [
      ['flink', 'clicks', 1, 77, 'INVALID_CLICK'],
      ['sink', 'click-aggregates', 3, 41, 'PROTOBUF_DECODE_FAILED'],
      ['sink', 'click-aggregates', 3, 42, 'INVALID_AGGREGATE'],
      ['sink', 'clicks-late', 1, 9, 'INVALID_FIELD'],
    ]);
    assert.equal(Buffer.from(rows[1]!.payload, 'base64').toString('hex'), 'ffffffff');
    for (const g of ['1m', '5m', '1h'] as const) {
      assert.deepEqual(await seriesForAd(store, { advertiserId: 30, adId: 31, granularity: g, from: T0, to: T0 + 60 * MIN }), [], g);
    }
    const stored = await store.query<{ n: number }>(`SELECT count() AS n FROM ${DB}.late_clicks WHERE advertiser_id = 30`);
    assert.equal(Number(stored[0]!.n), 0);
  });

  test(`${name}: api keys create, find, revoke`, async () => {
    const { api_key, key_hash } = await createApiKey(store, 7);
    assert.match(api_key, /^ak_[A-Za-z0-9_-]{43}$/);
    assert.equal(key_hash, hashApiKey(api_key));
    const found = await findApiKey(store, key_hash);
    assert.equal(found?.advertiser_id, 7);
    assert.equal(await findApiKey(store, hashApiKey('ak_nope')), null);
    assert.equal(await findApiKey(store, "' OR 1=1 --"), null);
    const now = Date.now();
    assert.equal(await revokeApiKey(store, api_key, now), true);
    assert.equal(await findApiKey(store, key_hash), null);
    assert.equal((await getApiKeyRecord(store, key_hash))?.revoked, true);
    assert.equal(await revokeApiKey(store, api_key), true); // idempotent
    assert.equal(await revokeApiKey(store, 'ak_unknown'), false);
    const other = await createApiKey(store, 8);
    assert.equal((await findApiKey(store, other.key_hash))?.advertiser_id, 8);
  });

  test(`${name}: parameters round-trip hostile strings and never inject`, async () => {
    const hostile = ["'; DROP TABLE adclick.api_keys; --", "a\\'b", 'back\\slash\\', "new\nline\ttab\u0000nul", '{x:String}', 'ünï©ødé 🎯', "''''", '\\'];
    for (const s of hostile) {
      const r = await store.query<{ s: string }>('SELECT {s:String} AS s', { s });
      assert.equal(r[0]!.s, s);
    }
    const r = await store.query<{ n: number }>(`SELECT count() AS n FROM ${DB}.api_keys WHERE key_hash = {h:String}`, { h: "x' OR '1'='1" });
    assert.equal(r[0]!.n, 0);
    const ids = await store.query<{ n: number }>('SELECT count() AS n FROM numbers(10) WHERE has({ids:Array(UInt64)}, number)', { ids: [1, 2, 3] });
    assert.equal(ids[0]!.n, 3);
    const t = await store.query<{ t: number }>('SELECT toUInt32({t:DateTime}) AS t', { t: new Date(T0 + 999) });
    assert.equal(t[0]!.t, T0 / 1000);
    await assert.rejects(store.query('SELECT {n:UInt64} AS n', { n: -1 }));
    await assert.rejects(store.query('SELECT {n:UInt64} AS n', { n: '1 OR 1=1' as unknown as number }));
    const still = await store.query(`SELECT name FROM system.tables WHERE database = 'adclick' AND name = 'api_keys'`);
    assert.equal(still.length, 1);
  });

  test(`${name}: backfill recounts from raw clicks as a new version; reconcile finds what differs`, async () => {
    const H = T0 + 3 * 3_600_000; // an hour no other test writes to
    const HOUR = 3_600_000;
    const adv = 41, camp = 410, base = { camp, adv };
    // Raw (deduplicated) clicks. ad 4101: 10:00:10, 10:00:20, 10:01:10 and L (10:00:30, late for
    // 1m only); ad 4102: two at 10:06.
    const raws = [
      raw({ ...base, imp: 'r1', ad: 4101, t: H + 10_000 }), raw({ ...base, imp: 'r2', ad: 4101, t: H + 20_000 }),
      raw({ ...base, imp: 'r3', ad: 4101, t: H + 70_000 }), raw({ ...base, imp: 'rL', ad: 4101, t: H + 30_000 }),
      raw({ ...base, imp: 'r4', ad: 4102, t: H + 6 * MIN }), raw({ ...base, imp: 'r5', ad: 4102, t: H + 6 * MIN + 1 }),
    ];
    // What the stream stored: L missed its 1m window (a correction), everything else on time.
    const streaming = [
      agg({ g: 1, ...base, ad: 4101, ws: H, clicks: 2, final: true }), agg({ g: 1, ...base, ad: 4101, ws: H + MIN, clicks: 1, final: true }),
      agg({ g: 1, ...base, ad: 4102, ws: H + 6 * MIN, clicks: 2, final: true }),
      agg({ g: 2, ...base, ad: 4101, ws: H, clicks: 4, final: true }), agg({ g: 2, ...base, ad: 4102, ws: H + 5 * MIN, clicks: 2, final: true }),
      agg({ g: 3, ...base, ad: 4101, ws: H, clicks: 4, final: true }), agg({ g: 3, ...base, ad: 4102, ws: H, clicks: 2, final: true }),
      ...lateFor([1], { ...base, imp: 'rL', ad: 4101, t: H + 30_000 }),
    ];
    await writeBatch(store, buildBatch([...streaming, ...raws]));
    await writeBatch(store, buildBatch(raws)); // re-delivered raw clicks collapse
    const range = { fromMs: H, toMs: H + HOUR };
    const served = async () => {
      const out: Record<string, [number, number][]> = {};
      for (const g of ['1m', '5m', '1h'] as const) {
        for (const ad of [4101, 4102, 4103]) {
          const pts = await seriesForAd(store, { advertiserId: adv, adId: ad, granularity: g, from: H, to: H + HOUR });
          out[`${g}/${ad}`] = pts.map((p) => [(p.window_start_ms - H) / MIN, p.clicks]);
        }
      }
      return { series: out, totals: await campaignTotals(store, adv) };
    };
    const truth = {
      series: {
        '1m/4101': [[0, 3], [1, 1]], '1m/4102': [[6, 2]], '1m/4103': [],
        '5m/4101': [[0, 4]], '5m/4102': [[5, 2]], '5m/4103': [],
        '1h/4101': [[0, 4]], '1h/4102': [[0, 2]], '1h/4103': [],
      },
      totals: [{ campaign_id: camp, total_clicks: 6 }],
    };
    assert.deepEqual(await served(), truth, 'streaming result plus corrections');
    const clean = await reconcile(store, range);
    assert.deepEqual(clean.differences, [], 'a healthy pipeline reconciles clean');
    assert.equal(clean.windowsCompared, 3 + 2 + 2);

    // Corrupt two windows with wrong streaming rows of a higher version: one with raw clicks
    // (too high), one where no raw click exists at all.
    await writeBatch(store, buildBatch([agg({ g: 1, ...base, ad: 4102, ws: H + 6 * MIN, clicks: 9, final: true })]));
    await writeBatch(store, buildBatch([agg({ g: 1, ...base, ad: 4103, ws: H + 20 * MIN, clicks: 5, final: true })]));
    const bad = await reconcile(store, range);
    assert.deepEqual(bad.differences, [
      { granularity: '1m', advertiser_id: adv, campaign_id: camp, ad_id: 4102, window_start_ms: H + 6 * MIN, stored: 9, recomputed: 2 },
      { granularity: '1m', advertiser_id: adv, campaign_id: camp, ad_id: 4103, window_start_ms: H + 20 * MIN, stored: 5, recomputed: 0 },
    ]);
    assert.notDeepEqual(await served(), truth);

    // Backfill: counts equal raw again (one LOWERED below the streaming row), reconcile clean.
    const b1 = await backfill(store, { ...range, watermarkMs: H + 2 * HOUR });
    assert.ok(b1.generation >= 1);
    assert.deepEqual(b1.windows, { '1m': 4, '5m': 2, '1h': 2 });
    assert.deepEqual(await served(), truth, 'after backfill');
    assert.deepEqual((await reconcile(store, range)).differences, []);
    const versions = await store.query<{ v: number }>(
      `SELECT max(version) AS v FROM ${DB}.click_aggregates WHERE advertiser_id = {adv:UInt64} AND ad_id = 4102 AND granularity = '1m'`, { adv });
    assert.equal(generationOf(Number(versions[0]!.v)), b1.generation);

    // A second backfill changes nothing that is served.
    const b2 = await backfill(store, range);
    assert.equal(b2.generation, b1.generation + 1);
    assert.deepEqual(await served(), truth, 'after a second backfill');
    assert.deepEqual((await reconcile(store, range)).differences, []);

    // A streaming row arriving after the backfill no longer overrides it; a late click arriving
    // after the backfill (raw + correction) is counted exactly once.
    await writeBatch(store, buildBatch([agg({ g: 1, ...base, ad: 4101, ws: H, clicks: 7, final: true })]));
    await writeBatch(store, buildBatch([...lateFor([1, 2, 3], { ...base, imp: 'rL2', ad: 4101, t: H + 40_000 }), raw({ ...base, imp: 'rL2', ad: 4101, t: H + 40_000 })]));
    const after = await served();
    assert.deepEqual(after.series['1m/4101'], [[0, 4], [1, 1]]);
    assert.deepEqual(after.series['5m/4101'], [[0, 5]]);
    assert.deepEqual(after.series['1h/4101'], [[0, 5]]);
    assert.deepEqual((await reconcile(store, range)).differences, []);
    await backfill(store, range);
    assert.deepEqual(await served(), after, 'backfill after a late click: still counted once');

    // Only windows fully inside the range are touched.
    const b3 = await backfill(store, range);
    const partial = await backfill(store, { fromMs: H + 30_000, toMs: H + HOUR - 1 });
    assert.deepEqual(partial.windows, { '1m': 3, '5m': 1 }); // 1m: 4101@10:01, 4102@10:06, 4103@10:20; 5m: 4102@10:05
    const gens = await store.query<{ g: string; ad: number; ws: number; v: number }>(
      `SELECT toString(granularity) AS g, ad_id AS ad, toUInt32(window_start) AS ws, max(version) AS v FROM ${DB}.click_aggregates
WHERE advertiser_id = {adv:UInt64} GROUP BY g, ad, ws ORDER BY g, ad, ws`, { adv });
    assert.deepEqual(gens.map((r) => [r.g, r.ad, (Number(r.ws) * 1000 - H) / MIN, generationOf(Number(r.v))]), [
      ['1h', 4101, 0, b3.generation], ['1h', 4102, 0, b3.generation],
      ['1m', 4101, 0, b3.generation], ['1m', 4101, 1, partial.generation], ['1m', 4102, 6, partial.generation], ['1m', 4103, 20, partial.generation],
      ['5m', 4101, 0, b3.generation], ['5m', 4102, 5, partial.generation],
    ]);
    assert.deepEqual(await served(), after);
  });

  test(`${name}: campaign clicks in a range (one query for all campaigns) = each campaign's summed series`, async () => {
    // Its own hour and ids. After the backfill test: this one runs a backfill over its own hour.
    const H = T0 + 6 * 3_600_000;
    const HOUR = 3_600_000;
    const adv = 51;
    const c0 = { adv, camp: 510 }, c1 = { adv, camp: 511 }, c2 = { adv, camp: 512 };
    await writeBatch(store, buildBatch([
      // campaign 510: an emission superseded by a bigger one, re-delivered afterwards below
      agg({ g: 1, ...c0, ad: 5101, ws: H, clicks: 3 }), agg({ g: 1, ...c0, ad: 5101, ws: H, clicks: 5, final: true }),
      agg({ g: 1, ...c0, ad: 5102, ws: H, clicks: 2, final: true }), agg({ g: 1, ...c0, ad: 5101, ws: H + MIN, clicks: 4, final: true }),
      agg({ g: 2, ...c0, ad: 5101, ws: H, clicks: 9, final: true }), agg({ g: 2, ...c0, ad: 5102, ws: H, clicks: 2, final: true }),
      agg({ g: 3, ...c0, ad: 5101, ws: H, clicks: 9, final: true }), agg({ g: 3, ...c0, ad: 5102, ws: H, clicks: 2, final: true }),
      // campaign 511
      agg({ g: 1, ...c1, ad: 5111, ws: H + 2 * MIN, clicks: 7, final: true }),
      agg({ g: 2, ...c1, ad: 5111, ws: H, clicks: 7, final: true }), agg({ g: 3, ...c1, ad: 5111, ws: H, clicks: 7, final: true }),
      // campaign 512: only after the first hour
      agg({ g: 1, ...c2, ad: 5121, ws: H + 70 * MIN, clicks: 1, final: true }),
      agg({ g: 2, ...c2, ad: 5121, ws: H + 70 * MIN, clicks: 1, final: true }), agg({ g: 3, ...c2, ad: 5121, ws: H + HOUR, clicks: 1, final: true }),
      // another advertiser in the same windows
      agg({ g: 1, ad: 5201, camp: 520, adv: 52, ws: H, clicks: 100, final: true }),
      // late corrections: L1 late for every granularity (delivered twice), L2 for 1m only
      ...lateFor([1, 2, 3], { ...c0, imp: 'imp_range_L1', ad: 5101, t: H + 30_000 }),
      ...lateFor([1, 2, 3], { ...c0, imp: 'imp_range_L1', ad: 5101, t: H + 30_000 }),
      ...lateFor([1], { ...c1, imp: 'imp_range_L2', ad: 5111, t: H + 2 * MIN + 1_000 }),
    ]));
    await writeBatch(store, buildBatch([agg({ g: 1, ...c0, ad: 5101, ws: H, clicks: 3 })])); // old emission re-delivered

    const ranges: [string, '1m' | '5m' | '1h', number, number][] = [
      ['hour 1m', '1m', H, H + HOUR], ['hour 5m', '5m', H, H + HOUR], ['hour 1h', '1h', H, H + HOUR],
      ['two minutes', '1m', H + MIN, H + 3 * MIN], ['two hours', '1h', H, H + 2 * HOUR], ['unaligned 5m', '5m', H + 61_000, H + 64 * MIN + 1],
    ];
    const perCampaign = async (g: '1m' | '5m' | '1h', from: number, to: number) =>
      Object.fromEntries((await campaignRangeClicks(store, { advertiserId: adv, granularity: g, from, to })).map((r) => [r.campaign_id, r.clicks]));
    /** The promise: for every campaign, the sum of its series points over the same range. */
    const assertEqualsSeries = async (label: string) => {
      const campaigns = (await campaignTotals(store, adv)).map((t) => t.campaign_id);
      assert.deepEqual(campaigns, [510, 511, 512]);
      for (const [what, g, from, to] of ranges) {
        const got = await perCampaign(g, from, to);
        for (const campaignId of campaigns) {
          const pts = await seriesForCampaign(store, { advertiserId: adv, campaignId, granularity: g, from, to });
          assert.equal(got[campaignId] ?? 0, pts.reduce((n, p) => n + p.clicks, 0), `${label}, ${what}: campaign ${campaignId}`);
        }
        assert.ok(!(520 in got), `${label}, ${what}: another advertiser's campaign`);
      }
    };

    assert.deepEqual(await perCampaign('1m', H, H + HOUR), { 510: 5 + 2 + 4 + 1, 511: 7 + 1 }, 'argMax per (ad, window) plus 1m corrections');
    assert.deepEqual(await perCampaign('5m', H, H + HOUR), { 510: 9 + 2 + 1, 511: 7 });
    assert.deepEqual(await perCampaign('1h', H, H + HOUR), { 510: 9 + 2 + 1, 511: 7 });
    assert.deepEqual(await perCampaign('1m', H + MIN, H + 3 * MIN), { 510: 4, 511: 8 });
    assert.deepEqual(await perCampaign('1h', H, H + 2 * HOUR), { 510: 12, 511: 7, 512: 1 });
    assert.deepEqual(await perCampaign('1m', H - HOUR, H), {}, 'quiet campaigns are absent, not an error');
    assert.deepEqual(await campaignRangeClicks(store, { advertiserId: 52, granularity: '1m', from: H, to: H + HOUR }), [{ campaign_id: 520, clicks: 100 }]);
    await assertEqualsSeries('streaming + corrections');

    // A backfill from raw clicks LOWERS campaign 511's minute (the stream said 7, raw has 6 +
    // the late L2): argMax by version must pick the backfilled row, not the bigger count.
    const raws: SinkMessage[] = [];
    const rawN = (n: number, p: { ad: number; camp: number; t: number }, tag: string) => {
      for (let i = 0; i < n; i++) raws.push(raw({ adv, ...p, imp: `imp_range_${tag}_${i}`, t: p.t + i }));
    };
    rawN(5, { ad: 5101, camp: 510, t: H + 1_000 }, 'a');
    rawN(4, { ad: 5101, camp: 510, t: H + MIN + 1_000 }, 'b');
    rawN(2, { ad: 5102, camp: 510, t: H + 2_000 }, 'c');
    rawN(6, { ad: 5111, camp: 511, t: H + 2 * MIN + 2_000 }, 'd');
    raws.push(raw({ ...c0, imp: 'imp_range_L1', ad: 5101, t: H + 30_000 }), raw({ ...c1, imp: 'imp_range_L2', ad: 5111, t: H + 2 * MIN + 1_000 }));
    await writeBatch(store, buildBatch(raws));
    await backfill(store, { fromMs: H, toMs: H + HOUR, watermarkMs: H + 3 * HOUR });
    assert.deepEqual(await perCampaign('1m', H, H + HOUR), { 510: 12, 511: 7 }, 'after backfill');
    assert.deepEqual(await perCampaign('1h', H, H + 2 * HOUR), { 510: 12, 511: 7, 512: 1 }, 'after backfill');
    await assertEqualsSeries('after backfill');

    // Through the query API on this engine: one request, each campaign's clicks equal to its
    // series' total_clicks for the same query string, quiet campaigns with 0.
    const { api_key } = await createApiKey(store, adv);
    const app = buildQueryApp({ repo: storeQueryRepository(store), logger, clock: () => H + 3 * HOUR });
    try {
      const auth = { authorization: `Bearer ${api_key}` };
      for (const [what, g, from, to] of ranges) {
        const qs = `from=${from}&to=${to}&granularity=${g}`;
        const res = await app.inject({ url: `/v1/campaigns?${qs}`, headers: auth });
        assert.equal(res.statusCode, 200, res.body);
        const body = res.json() as { campaigns: { campaign_id: number; total_clicks: number; clicks: number }[]; granularity: string };
        assert.equal(body.granularity, g);
        assert.deepEqual(body.campaigns.map((c) => c.campaign_id), [510, 511, 512], what);
        for (const c of body.campaigns) {
          const series = (await app.inject({ url: `/v1/campaigns/${c.campaign_id}/clicks?${qs}`, headers: auth })).json() as { total_clicks: number };
          assert.equal(c.clicks, series.total_clicks, `API ${what}: campaign ${c.campaign_id}`);
        }
      }
      const hour = (await app.inject({ url: `/v1/campaigns?from=${H}&to=${H + HOUR}`, headers: auth })).json() as { campaigns: { clicks: number }[] };
      assert.deepEqual(hour.campaigns.map((c) => c.clicks), [12, 7, 0]);
    } finally {
      await app.close();
    }
  });

  extra?.(() => store);

  test(`${name}: a click signed for another owner never hides an ad or campaign from its owner; a moved ad counts for each campaign it was signed with`, async () => {
    // Advertiser 31 owns campaign 3100 with ad 31001. One click claims ad 31001 for
    // advertiser 32 / campaign 3200 (an issuer bug), one claims campaign 3100 for advertiser
    // 33, and advertiser 31 moved ad 31002 from campaign 3100 to 3101 mid-hour.
    const W = T0 + 6 * 3_600_000;
    await writeBatch(store, buildBatch([
      agg({ ad: 31001, camp: 3100, adv: 31, ws: W, clicks: 40, final: true }),
      agg({ ad: 31001, camp: 3200, adv: 32, ws: W, clicks: 1, final: true }),
      agg({ ad: 33001, camp: 3100, adv: 33, ws: W, clicks: 1, final: true }),
      agg({ ad: 31002, camp: 3100, adv: 31, ws: W, clicks: 5, final: true }),
      agg({ ad: 31002, camp: 3101, adv: 31, ws: W + MIN, clicks: 7, final: true }),
      // The move happened inside a window: both campaigns have a row for the same (ad, window).
      agg({ ad: 31002, camp: 3101, adv: 31, ws: W + 2 * MIN, clicks: 2, final: true }),
      agg({ ad: 31002, camp: 3100, adv: 31, ws: W + 2 * MIN, clicks: 4, final: true }),
    ]));
    const keys = { 31: (await createApiKey(store, 31)).api_key, 32: (await createApiKey(store, 32)).api_key, 33: (await createApiKey(store, 33)).api_key };
    const app = buildQueryApp({ repo: storeQueryRepository(store), logger, clock: () => W + 3_600_000 });
    const get = async (adv: 31 | 32 | 33, url: string) => {
      const res = await app.inject({ url, headers: { authorization: `Bearer ${keys[adv]}` } });
      return { status: res.statusCode, body: res.json() as { total_clicks?: number; campaign_id?: number } };
    };
    const qs = `from=${W}&to=${W + 10 * MIN}&granularity=1m`;
    try {
      for (let round = 0; round < 3; round++) {
        // Each owner sees exactly the clicks signed for it, whatever another click claims.
        assert.deepEqual([(await get(31, `/v1/campaigns/3100/clicks?${qs}`)).status, (await get(31, `/v1/campaigns/3100/clicks?${qs}`)).body.total_clicks], [200, 49], 'campaign 3100 for its owner');
        assert.deepEqual([(await get(33, `/v1/campaigns/3100/clicks?${qs}`)).status, (await get(33, `/v1/campaigns/3100/clicks?${qs}`)).body.total_clicks], [200, 1], 'what advertiser 33 signed for campaign 3100');
        assert.equal((await get(32, `/v1/campaigns/3100/clicks?${qs}`)).status, 404, 'no click of advertiser 32 for campaign 3100');
        const ad31 = await get(31, `/v1/ads/31001/clicks?${qs}`);
        assert.deepEqual([ad31.status, ad31.body.total_clicks, ad31.body.campaign_id], [200, 40, 3100], 'ad 31001 for its owner');
        const ad32 = await get(32, `/v1/ads/31001/clicks?${qs}`);
        assert.deepEqual([ad32.status, ad32.body.total_clicks, ad32.body.campaign_id], [200, 1, 3200], 'what advertiser 32 signed for ad 31001');
        assert.equal((await get(33, `/v1/ads/31001/clicks?${qs}`)).status, 404);
        // The moved ad: all of the advertiser's clicks for it, reported under its newest campaign.
        const moved = await get(31, `/v1/ads/31002/clicks?${qs}`);
        assert.deepEqual([moved.status, moved.body.total_clicks, moved.body.campaign_id], [200, 18, 3101], 'moved ad: each owner row of a shared window counts');
        assert.equal((await get(31, `/v1/campaigns/3101/clicks?${qs}`)).body.total_clicks, 9);
        assert.equal((await get(31, `/v1/campaigns/3100/clicks?${qs}`)).body.total_clicks, 49);
      }
    } finally {
      await app.close();
    }
  });

  test(`${name}: all-time campaign totals from closed 1h windows + 1m after them = the old all-1m sum`, async () => {
    // Consistent rows as the pipeline writes them (every granularity counts each click once,
    // as an aggregate or as a late correction of that granularity), on their own day and ids.
    const HA = T0 - 2 * 86_400_000, HOUR = 60 * MIN;
    const adv = 96, c0 = { adv, camp: 960 }, c1 = { adv, camp: 961 };
    await writeBatch(store, buildBatch([
      // Hour HA, ad 9600: 3 clicks at :00 (an older streaming emission too), 2 at :05, one
      // late for 1m only at :07 (on time for 5m and 1h), one late for every granularity at :20.
      agg({ g: 1, ...c0, ad: 9600, ws: HA, clicks: 1 }), agg({ g: 1, ...c0, ad: 9600, ws: HA, clicks: 3, final: true }),
      agg({ g: 1, ...c0, ad: 9600, ws: HA + 5 * MIN, clicks: 2, final: true }),
      agg({ g: 2, ...c0, ad: 9600, ws: HA, clicks: 3, final: true }), agg({ g: 2, ...c0, ad: 9600, ws: HA + 5 * MIN, clicks: 3, final: true }),
      agg({ g: 3, ...c0, ad: 9600, ws: HA, clicks: 4 }), agg({ g: 3, ...c0, ad: 9600, ws: HA, clicks: 6, final: true }),
      ...lateFor([1], { ...c0, ad: 9600, imp: 'alltime-late-1m', t: HA + 7 * MIN + 1_000 }),
      ...lateFor([1, 2, 3], { ...c0, ad: 9600, imp: 'alltime-late-all', t: HA + 20 * MIN + 1_000 }),
      // Hour HA+1h: ad 9601 moves from campaign 960 (4 clicks at :00) to 961 (5 clicks at :30).
      agg({ g: 1, ...c0, ad: 9601, ws: HA + HOUR, clicks: 4, final: true }), agg({ g: 1, ...c1, ad: 9601, ws: HA + HOUR + 30 * MIN, clicks: 5, final: true }),
      agg({ g: 2, ...c0, ad: 9601, ws: HA + HOUR, clicks: 4, final: true }), agg({ g: 2, ...c1, ad: 9601, ws: HA + HOUR + 30 * MIN, clicks: 5, final: true }),
      agg({ g: 3, ...c0, ad: 9601, ws: HA + HOUR, clicks: 4, final: true }), agg({ g: 3, ...c1, ad: 9601, ws: HA + HOUR, clicks: 5, final: true }),
      // Hour HA+2h, still open for 1h: its 1m window is final, the 1h row an early emission.
      agg({ g: 1, ...c0, ad: 9600, ws: HA + 2 * HOUR + 3 * MIN, clicks: 2, final: true }), agg({ g: 3, ...c0, ad: 9600, ws: HA + 2 * HOUR, clicks: 1 }),
    ]));
    const old = await campaignTotals(store, adv, HA - HOUR, HA + 4 * HOUR); // the 1m path
    assert.deepEqual(old, [{ campaign_id: 960, total_clicks: 7 + 4 + 2 }, { campaign_id: 961, total_clicks: 5 }]);
    for (const split of [HA, HA + HOUR, HA + 2 * HOUR]) {
      assert.deepEqual(await allTimeCampaignTotals(store, adv, split), old, `split at HA + ${(split - HA) / HOUR} h`);
    }
    // Past an hour still open for 1h, its early 1h emission would count: why the split is
    // complete_before rounded down to the hour, never later.
    assert.notDeepEqual(await allTimeCampaignTotals(store, adv, HA + 3 * HOUR), old);
    // Once the watermark passes the hour its final 1h row is stored; the all-time path splits
    // at this store's complete_before (other tests set it; none: all from 1m).
    await writeBatch(store, buildBatch([agg({ g: 3, ...c0, ad: 9600, ws: HA + 2 * HOUR, clicks: 2, final: true })]));
    assert.deepEqual(await campaignTotals(store, adv), old, 'the all-time path at whatever complete_before is');
    assert.equal(closedHoursEnd(null), 0);
    assert.equal(closedHoursEnd(HA + HOUR - 1), HA);
    assert.equal(closedHoursEnd(HA + HOUR), HA + HOUR);
  });

  test(`${name}: conservation per window: accepted = served (streaming + late) + duplicates + rejected`, async () => {
    // Its own day and ids, far from the other tests' windows.
    const base = T0 - 3 * 86_400_000;
    const A = 9100, C = 910, V = 91;
    const audit = (ws: number, bucket: number, a: number, d: number, r: number, at = Date.now()) => msg('click-audit', WindowAudit.encode({
      windowStartMs: ws, bucket, accepted: a, duplicates: d, rejected: r, version: a + d + r, emittedAtMs: at }).finish());
    // Minute 0: 10 accepted over two buckets (an older, smaller emission of bucket 0 first),
    // 2 duplicates; served 7 streaming + 1 late (late for 1m only). Minute 1: 5 accepted, all counted.
    // Dead letters: window 0, 3 accepted = 3 rejected.
    const batch = buildBatch([
      audit(base, 0, 4, 1, 0), audit(base, 0, 6, 1, 0, Date.now() + 1), audit(base, 3, 4, 1, 0),
      audit(base + MIN, 1, 5, 0, 0),
      audit(0, 2, 3, 0, 3),
      agg({ ad: A, camp: C, adv: V, ws: base, clicks: 4 }), agg({ ad: A + 1, camp: C, adv: V, ws: base, clicks: 3 }),
      ...lateFor([1], { imp: 'cons-late-1', ad: A, camp: C, adv: V, t: base + 30_000 }),
      agg({ ad: A, camp: C, adv: V, ws: base + MIN, clicks: 5 }),
      agg({ g: 2, ad: A, camp: C, adv: V, ws: base, clicks: 9 }), agg({ g: 2, ad: A + 1, camp: C, adv: V, ws: base, clicks: 3 }),
    ]);
    assert.equal(batch.deadLetters.length, 0, JSON.stringify(batch.deadLetters));
    assert.equal(batch.audit.length, 4, 'newest emission per (window, bucket) kept');
    await writeBatch(store, batch);
    await writeBatch(store, batch); // re-delivery changes nothing
    const r = await conservation(store, { fromMs: base, toMs: base + 5 * MIN });
    const m1 = r.windows.filter((w) => w.granularity === '1m');
    assert.deepEqual(m1.map((w) => [w.window_start_ms - base, w.accepted, w.served, w.late, w.duplicates, w.rejected, w.imbalance]), [
      [0, 10, 8, 1, 2, 0, 0],
      [MIN, 5, 5, 0, 0, 0, 0],
    ]);
    const m5 = r.windows.filter((w) => w.granularity === '5m');
    assert.deepEqual(m5.map((w) => [w.accepted, w.served, w.late, w.duplicates, w.imbalance]), [[15, 12, 0, 2, 1]],
      '5m streaming count is 12 of 13 unique: the imbalance shows the missing click');
    assert.equal(r.imbalanced, 1);
    assert.deepEqual(r.unattributed, { accepted: 3, rejected: 3 });
    assert.deepEqual(r.totals, { accepted: 15, served: 13, late: 1, duplicates: 2, rejected: 0 });
    // A corrupted window is found: one aggregate silently loses a click.
    await writeBatch(store, buildBatch([agg({ ad: A, camp: C, adv: V, ws: base + MIN, clicks: 4 })]));
    const again = await conservation(store, { fromMs: base, toMs: base + 2 * MIN });
    // (versions: clicks·2+final — the smaller count has the lower version, so store a higher one)
    assert.equal(again.imbalanced, 0, 'a lower streaming version never replaces a higher one');
    await writeBatch(store, buildBatch([agg({ ad: A + 2, camp: C, adv: V, ws: base + MIN, clicks: 1 })]));
    const third = await conservation(store, { fromMs: base, toMs: base + 2 * MIN });
    assert.deepEqual(third.windows.filter((w) => w.imbalance !== 0).map((w) => [w.granularity, w.window_start_ms - base, w.imbalance]), [['1m', MIN, -1]],
      'a click counted that the job never accepted shows as a negative imbalance');
  });

  test(`${name}: close`, async () => {
    await close(store);
  });
}

// Typed reads for the query API. None depends on merges having happened: an
// (ad, window) may still have several emissions on disk; argMax(clicks, version) per
// (advertiser, campaign, ad, window) is the one the ReplacingMergeTree keeps. A window has
// one row per owner its clicks were signed with (an ad moved between campaigns has two),
// so every read takes argMax per owner row and sums them, never one row per ad. For streaming rows (version =
// clicks·2 + final, the Flink job emits full, non-decreasing counts) that is the largest
// count; a backfill (batch-path.ts) writes version = generation·2^54 + clicks·2 + 1, so its
// row wins over every streaming row and earlier backfill, even with a LOWER count.
// Late clicks are added per window as corrections,
// only those recorded for the granularity being read (lateness is per granularity), and
// counted by distinct (impression_id, event_type) so re-delivered ones count once.
import { DB } from './migrations.ts';
import { GRANULARITY_MS, type GranularityName } from './rows.ts';
import type { QueryParams, Store } from './store.ts';

/** `revised`: the window's number changed after the streaming result — a late correction or a backfill. */
export interface SeriesPoint { window_start_ms: number; clicks: number; revised: boolean }
export interface CampaignTotal { campaign_id: number; total_clicks: number }
export interface AdTotal { ad_id: number; clicks: number }
export interface Owner { advertiser_id: number; campaign_id: number }

export interface SeriesRange {
  readonly advertiserId: number;
  readonly granularity: GranularityName;
  /** Inclusive, epoch ms or Date; rounded down to the granularity. */
  readonly from: number | Date;
  /** Exclusive, epoch ms or Date; rounded up to the granularity. */
  readonly to: number | Date;
}

const ms = (t: number | Date) => (t instanceof Date ? t.getTime() : t);

function alignedRange(granularity: GranularityName, from: number | Date, to: number | Date): { from: number; to: number; step: number } {
  const step = GRANULARITY_MS[granularity];
  if (!step) throw new Error(`unknown granularity ${String(granularity)}`);
  const f = Math.floor(ms(from) / step) * step;
  const t = Math.ceil(ms(to) / step) * step;
  return { from: f, to: Math.max(f, t), step };
}

function mergeSeries(agg: { ws: number; clicks: number; backfilled: number }[], late: { ws: number; clicks: number }[]): SeriesPoint[] {
  const m = new Map<number, { clicks: number; revised: boolean }>();
  const add = (ws: number, clicks: number, revised: boolean) => {
    const cur = m.get(ws) ?? { clicks: 0, revised: false };
    m.set(ws, { clicks: cur.clicks + clicks, revised: cur.revised || revised });
  };
  for (const r of agg) add(Number(r.ws), Number(r.clicks), Number(r.backfilled) > 0);
  for (const r of late) add(Number(r.ws), Number(r.clicks), Number(r.clicks) > 0);
  return [...m.entries()]
    .filter(([, v]) => v.clicks > 0)
    .sort((x, y) => x[0] - y[0])
    .map(([ws, v]) => ({ window_start_ms: ws * 1000, clicks: v.clicks, revised: v.revised }));
}

async function series(store: Store, filter: string, params: QueryParams, r: SeriesRange): Promise<SeriesPoint[]> {
  const { from, to } = alignedRange(r.granularity, r.from, r.to);
  const p: QueryParams = { ...params, adv: r.advertiserId, g: r.granularity, from, to };
  const [agg, late] = await Promise.all([
    // A backfilled row's version holds a generation above clicks·2 + final (batch-path.ts;
    // true of both the generation-at-bit-54 rows and older ones at bit 32).
    store.query<{ ws: number; clicks: number; backfilled: number }>(
      `SELECT toUInt32(window_start) AS ws, sum(c) AS clicks, max(bf) AS backfilled FROM (
  SELECT window_start, campaign_id, ad_id, argMax(clicks, version) AS c, argMax(version > clicks * 2 + 1, version) AS bf FROM ${DB}.click_aggregates
  WHERE advertiser_id = {adv:UInt64} AND ${filter} AND granularity = {g:String}
    AND window_start >= {from:DateTime} AND window_start < {to:DateTime}
  GROUP BY window_start, campaign_id, ad_id
) GROUP BY ws ORDER BY ws`, p),
    store.query<{ ws: number; clicks: number }>(
      `SELECT toUInt32(window_start) AS ws, uniqExact(impression_id, event_type) AS clicks
FROM ${DB}.late_clicks
WHERE advertiser_id = {adv:UInt64} AND ${filter} AND granularity = {g:String}
  AND window_start >= {from:DateTime} AND window_start < {to:DateTime}
GROUP BY ws ORDER BY ws`, p),
  ]);
  return mergeSeries(agg, late);
}

/** Sparse per-window clicks of one campaign (windows without clicks are absent). */
export function seriesForCampaign(store: Store, r: SeriesRange & { readonly campaignId: number }): Promise<SeriesPoint[]> {
  return series(store, 'campaign_id = {cid:UInt64}', { cid: r.campaignId }, r);
}

/** Sparse per-window clicks of one ad. Pass campaignId when known: it narrows the scan. */
export function seriesForAd(store: Store, r: SeriesRange & { readonly adId: number; readonly campaignId?: number; readonly campaignIds?: readonly number[] }): Promise<SeriesPoint[]> {
  if (r.campaignId !== undefined) {
    return series(store, 'campaign_id = {cid:UInt64} AND ad_id = {ad:UInt64}', { cid: r.campaignId, ad: r.adId }, r);
  }
  if (r.campaignIds !== undefined) {
    return series(store, 'has({cids:Array(UInt64)}, campaign_id) AND ad_id = {ad:UInt64}', { cids: [...r.campaignIds], ad: r.adId }, r);
  }
  return series(store, 'ad_id = {ad:UInt64}', { ad: r.adId }, r);
}

function timeFilter(column: string, from: number | Date | undefined, to: number | Date | undefined, step: number): { sql: string; params: QueryParams } {
  const parts: string[] = [];
  const params: QueryParams = {};
  // Totals are summed from ONE granularity (1m unless asked), never several together.
  if (from !== undefined) {
    parts.push(`${column} >= {from:DateTime}`);
    params.from = Math.floor(ms(from) / step) * step;
  }
  if (to !== undefined) {
    parts.push(`${column} < {to:DateTime}`);
    params.to = Math.ceil(ms(to) / step) * step;
  }
  return { sql: parts.length ? ' AND ' + parts.join(' AND ') : '', params };
}

async function totalsBy(store: Store, key: 'campaign_id' | 'ad_id', where: string, params: QueryParams, from?: number | Date, to?: number | Date, granularity: GranularityName = '1m'): Promise<Map<number, number>> {
  // Aggregates and late corrections from the same granularity and the same windows.
  const t = timeFilter('window_start', from, to, GRANULARITY_MS[granularity]);
  const p: QueryParams = { ...params, ...t.params, g: granularity };
  const [agg, late] = await Promise.all([
    store.query<{ k: number; clicks: number }>(
      `SELECT ${key} AS k, sum(c) AS clicks FROM (
  SELECT ${key === 'campaign_id' ? 'campaign_id' : 'campaign_id, ad_id'}, window_start, argMax(clicks, version) AS c FROM ${DB}.click_aggregates
  WHERE ${where} AND granularity = {g:String}${t.sql}
  GROUP BY campaign_id, ad_id, window_start
) GROUP BY k`, p),
    store.query<{ k: number; clicks: number }>(
      `SELECT ${key} AS k, uniqExact(impression_id, event_type) AS clicks FROM ${DB}.late_clicks
WHERE ${where} AND granularity = {g:String}${t.sql} GROUP BY k`, p),
  ]);
  const m = new Map<number, number>();
  for (const r of [...agg, ...late]) m.set(Number(r.k), (m.get(Number(r.k)) ?? 0) + Number(r.clicks));
  return m;
}

/** Total clicks per campaign of one advertiser, optionally within [from, to) (1m windows). Sorted by campaign_id. */
export async function campaignTotals(store: Store, advertiserId: number, from?: number | Date, to?: number | Date): Promise<CampaignTotal[]> {
  if (from === undefined && to === undefined) return campaignTotalsAt(store, advertiserId, await completeBefore(store));
  const m = await totalsBy(store, 'campaign_id', 'advertiser_id = {adv:UInt64}', { adv: advertiserId }, from, to);
  return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([campaign_id, total_clicks]) => ({ campaign_id, total_clicks }));
}

/** All-time totals per campaign given the pipeline's complete_before (completeBefore()); null: every 1m window. */
export async function campaignTotalsAt(store: Store, advertiserId: number, completeBeforeMs: number | null): Promise<CampaignTotal[]> {
  const split = closedHoursEnd(completeBeforeMs);
  if (split > 0) return allTimeCampaignTotals(store, advertiserId, split);
  const m = await totalsBy(store, 'campaign_id', 'advertiser_id = {adv:UInt64}', { adv: advertiserId });
  return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([campaign_id, total_clicks]) => ({ campaign_id, total_clicks }));
}

/** End of the closed hours: complete_before rounded down to the hour (a 1h window [s, s+1h) is closed when s+1h <= it); 0 when unknown. */
export function closedHoursEnd(completeBeforeMs: number | null): number {
  const step = GRANULARITY_MS['1h'];
  return completeBeforeMs === null || completeBeforeMs <= 0 ? 0 : Math.floor(completeBeforeMs / step) * step;
}

/**
 * All-time totals per campaign, counted from 1h windows before `splitMs` (closed hours) and
 * 1m windows from it on: the same number as summing every 1m window, from ~60x fewer rows
 * (a month of 1m rows is what made the campaign list slow). Each granularity on its own
 * counts every click once (aggregate + the late corrections recorded for that
 * granularity), and a 1m window lies in exactly one side of an hour-aligned split, so the
 * sides add up. Caveat: a backfill over part of an hour recomputes that hour's 1m windows
 * but not its 1h window; if the two then disagree the all-time total follows the 1h one.
 */
export async function allTimeCampaignTotals(store: Store, advertiserId: number, splitMs: number): Promise<CampaignTotal[]> {
  const side = (g: GranularityName, cmp: '<' | '>=') => `SELECT campaign_id AS k, argMax(clicks, version) AS c FROM ${DB}.click_aggregates
  WHERE advertiser_id = {adv:UInt64} AND granularity = '${g}' AND window_start ${cmp} {split:DateTime}
  GROUP BY campaign_id, ad_id, window_start
  UNION ALL
  SELECT campaign_id AS k, uniqExact(impression_id, event_type) AS c FROM ${DB}.late_clicks
  WHERE advertiser_id = {adv:UInt64} AND granularity = '${g}' AND window_start ${cmp} {split:DateTime}
  GROUP BY campaign_id`;
  const rows = await store.query<{ k: number; clicks: number }>(
    `SELECT k, sum(c) AS clicks FROM (
  ${side('1h', '<')}
  UNION ALL
  ${side('1m', '>=')}
) GROUP BY k ORDER BY k`, { adv: advertiserId, split: splitMs });
  return rows.map((r) => ({ campaign_id: Number(r.k), total_clicks: Number(r.clicks) }));
}

/** Clicks of one campaign within a range, as the series endpoints count them. */
export interface CampaignRangeClicks { campaign_id: number; clicks: number }

/**
 * Clicks per campaign of one advertiser in [from, to) at one granularity, in ONE query for
 * all campaigns: for each campaign exactly the sum of its series points over the same range
 * (seriesForCampaign) — argMax(clicks, version) per (ad, window), plus the late corrections
 * recorded for that granularity counted distinct per window, as the series counts them.
 * Campaigns without clicks in the range are absent. Sorted by campaign_id.
 *
 * UNION ALL inside FROM, Enum-to-String comparison and GROUP BY on an alias all work on
 * ClickHouse 18.16 (client-side parameters) as on chdb; both branches yield UInt64 `c`.
 */
export async function campaignRangeClicks(store: Store, r: SeriesRange): Promise<CampaignRangeClicks[]> {
  const { from, to } = alignedRange(r.granularity, r.from, r.to);
  const rows = await store.query<{ k: number; clicks: number }>(
    `SELECT campaign_id AS k, sum(c) AS clicks FROM (
  SELECT campaign_id, argMax(clicks, version) AS c FROM ${DB}.click_aggregates
  WHERE advertiser_id = {adv:UInt64} AND granularity = {g:String}
    AND window_start >= {from:DateTime} AND window_start < {to:DateTime}
  GROUP BY campaign_id, window_start, ad_id
  UNION ALL
  SELECT campaign_id, uniqExact(impression_id, event_type) AS c FROM ${DB}.late_clicks
  WHERE advertiser_id = {adv:UInt64} AND granularity = {g:String}
    AND window_start >= {from:DateTime} AND window_start < {to:DateTime}
  GROUP BY campaign_id, window_start
) GROUP BY k ORDER BY k`,
    { adv: r.advertiserId, g: r.granularity, from, to },
  );
  return rows.map((x) => ({ campaign_id: Number(x.k), clicks: Number(x.clicks) }));
}

/** Per-ad totals of one campaign within [from, to), highest first, ties by ad_id; summed from one granularity (default 1m). */
export async function adTotals(store: Store, r: { advertiserId: number; campaignId: number; from: number | Date; to: number | Date; limit: number; granularity?: GranularityName }): Promise<AdTotal[]> {
  const m = await totalsBy(store, 'ad_id', 'advertiser_id = {adv:UInt64} AND campaign_id = {cid:UInt64}', { adv: r.advertiserId, cid: r.campaignId }, r.from, r.to, r.granularity ?? '1m');
  return [...m.entries()]
    .filter(([, c]) => c > 0)
    .sort((a, b) => b[1] - a[1] || a[0] - b[0])
    .slice(0, Math.max(0, r.limit))
    .map(([ad_id, clicks]) => ({ ad_id, clicks }));
}

/**
 * Whether the advertiser has any stored click for the campaign. Ownership is per click (a
 * click counts for exactly the advertiser, campaign and ad it was signed with), so a click
 * of another advertiser claiming the same campaign id never hides it from this one.
 */
export async function advertiserHasCampaign(store: Store, advertiserId: number, campaignId: number): Promise<boolean> {
  const rows = await store.query<{ n: number }>(
    `SELECT count() AS n FROM ${DB}.ad_owners WHERE campaign_id = {cid:UInt64} AND advertiser_id = {adv:UInt64}`, { cid: campaignId, adv: advertiserId });
  return Number(rows[0]?.n ?? 0) > 0;
}

/**
 * The advertiser's campaigns of an ad (several when the ad moved between campaigns), the
 * one with the newest click first; null when the advertiser has no stored click for it.
 */
export async function advertiserAdCampaigns(store: Store, advertiserId: number, adId: number): Promise<{ newest: number; all: number[] } | null> {
  const rows = await store.query<{ campaign_id: number }>(
    `SELECT DISTINCT campaign_id FROM ${DB}.ad_owners WHERE ad_id = {ad:UInt64} AND advertiser_id = {adv:UInt64} ORDER BY campaign_id`, { ad: adId, adv: advertiserId });
  const all = rows.map((r) => Number(r.campaign_id));
  if (all.length === 0) return null;
  if (all.length === 1) return { newest: all[0]!, all };
  const newest = await store.query<{ campaign_id: number }>(
    `SELECT campaign_id FROM (
  SELECT campaign_id, max(window_start) AS w FROM ${DB}.click_aggregates
  WHERE advertiser_id = {adv:UInt64} AND has({cids:Array(UInt64)}, campaign_id) AND ad_id = {ad:UInt64} AND granularity = '1h'
  GROUP BY campaign_id
  UNION ALL
  SELECT campaign_id, max(window_start) AS w FROM ${DB}.late_clicks
  WHERE advertiser_id = {adv:UInt64} AND has({cids:Array(UInt64)}, campaign_id) AND ad_id = {ad:UInt64} AND granularity = '1h'
  GROUP BY campaign_id
) ORDER BY w DESC, campaign_id DESC LIMIT 1`, { adv: advertiserId, cids: all, ad: adId });
  return { newest: Number(newest[0]?.campaign_id ?? all[all.length - 1]), all };
}

/** pipeline_watermarks row that holds the highest complete_before ever stored (never a job subtask). */
export const COMPLETE_BEFORE_FLOOR_SUBTASK = 4294967295;

/**
 * The pipeline's watermark: the minimum over subtasks of each one's newest watermark,
 * only when every subtask of the newest reported parallelism has reported, and never below
 * what was already reported (the floor row, see advanceCompleteBefore). Epoch ms or null.
 */
export async function completeBefore(store: Store): Promise<number | null> {
  const rows = await store.query<{ subtask: number; p: number; wm: number; at: number }>(
    `SELECT subtask, argMax(parallelism, emitted_at_ms) AS p, argMax(watermark_ms, emitted_at_ms) AS wm, max(emitted_at_ms) AS at
FROM ${DB}.pipeline_watermarks GROUP BY subtask`);
  return completeBeforeOf(rows.map((r) => ({ subtask: r.subtask, parallelism: r.p, watermark_ms: r.wm, emitted_at_ms: r.at })));
}

/**
 * Store the current complete_before as the floor when it is higher than the floor: after a
 * restore (the job restarts from a checkpoint taken before its last reported watermark) or a
 * rescale, the subtasks' newest watermarks can be lower than what was already reported,
 * and complete_before must never go backwards (windows once final stay final; their rows
 * are stored, and a replay re-emits the same final counts). Returns the value.
 */
export async function advanceCompleteBefore(store: Store): Promise<number | null> {
  const rows = await store.query<{ subtask: number; p: number; wm: number; at: number }>(
    `SELECT subtask, argMax(parallelism, emitted_at_ms) AS p, argMax(watermark_ms, emitted_at_ms) AS wm, max(emitted_at_ms) AS at
FROM ${DB}.pipeline_watermarks GROUP BY subtask`);
  const typed = rows.map((r) => ({ subtask: Number(r.subtask), parallelism: Number(r.p), watermark_ms: Number(r.wm), emitted_at_ms: Number(r.at) }));
  const cb = completeBeforeOf(typed);
  const floor = typed.find((r) => r.subtask === COMPLETE_BEFORE_FLOOR_SUBTASK)?.watermark_ms ?? -1;
  if (cb !== null && cb > floor) {
    // ReplacingMergeTree(emitted_at_ms): the floor row with the highest value is the one kept.
    await store.insert(`${DB}.pipeline_watermarks`, [{ subtask: COMPLETE_BEFORE_FLOOR_SUBTASK, parallelism: 0, watermark_ms: cb, emitted_at_ms: cb }]);
  }
  return cb;
}

export function completeBeforeOf(rows: readonly { subtask: number; parallelism: number; watermark_ms: number; emitted_at_ms: number }[]): number | null {
  const floorRow = rows.find((r) => Number(r.subtask) === COMPLETE_BEFORE_FLOOR_SUBTASK);
  const floor = floorRow && Number(floorRow.watermark_ms) >= 0 ? Number(floorRow.watermark_ms) : null;
  const jobRows = rows.filter((r) => Number(r.subtask) !== COMPLETE_BEFORE_FLOOR_SUBTASK);
  if (jobRows.length === 0) return floor;
  const newest = jobRows.reduce((a, b) => (Number(b.emitted_at_ms) > Number(a.emitted_at_ms) ? b : a));
  const p = Number(newest.parallelism);
  const current = jobRows.filter((r) => Number(r.subtask) < p);
  if (current.length !== p) return floor;
  const min = Math.min(...current.map((r) => Number(r.watermark_ms)));
  const now = min >= 0 ? min : null;
  return now === null ? floor : floor === null ? now : Math.max(now, floor);
}

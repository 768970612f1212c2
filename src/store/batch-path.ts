// The batch path: recount aggregates from raw_clicks INSIDE ClickHouse (backfill) and
// compare them with what the query API serves (reconcile).
//
// Versions. click_aggregates is ReplacingMergeTree(version) and every read takes
// argMax(clicks, version) per (granularity, ad, window) (reads.ts). Streaming rows have
// version = clicks·2 + final (< 2^54: the sink holds counts up to 2^53 − 1 exactly and
// dead-letters larger ones). A backfill run claims a generation G ≥ 1 (a row in
// backfill_runs, written BEFORE any aggregate) and writes version = G·2^54 + clicks·2 + 1.
// So a backfilled row beats every streaming emission and every earlier backfill of its
// window, also with a LOWER count, and merges keep exactly the row reads pick. UInt64 leaves
// 10 bits for G (at most 1023 runs). Versions pass the 2^53 of JS numbers: they are
// computed in ClickHouse or as BigInt, never as JS numbers.
// Before counts of 2^31 and more were accepted, generations sat at bit 32 (G·2^32 + …):
// such rows still beat the streaming rows of their time (< 2^32) and lose to every newer
// backfill (≥ 2^54); reads tell backfilled rows by version > clicks·2 + 1, true of both.
//
// Late corrections. Reads add late_clicks (per granularity, distinct clicks) on top of the
// aggregate row. raw_clicks holds every deduplicated click, late ones included, so the
// backfill stores, per window, the raw clicks that are NOT recorded as late corrections for
// that granularity: served = backfilled + late = |raw ∪ late| = the true count, and a late
// click arriving after the backfill is still added at read time, exactly once.
// Limit: a late click that already is in raw_clicks while its late_clicks row is not yet
// stored (the sink writes late_clicks before raw_clicks within a batch, but two topics
// can lag differently) would be counted by the backfill AND later by its correction;
// reconcile shows such a window (stored > recomputed) and the next backfill repairs it.
//
// Windows. Only windows lying fully inside [from, to) are recomputed or compared, per
// granularity. The admin surface additionally clamps `to` to windows that are closed for
// good (see planRange), because a window the stream may still update would keep the
// backfilled value (newer generation) and ignore later streaming emissions. "Closed" comes
// from the stored watermark, which the sink stores only once every raw click, late
// correction and aggregate the job wrote before it is stored (sink/watermark-fence.ts): a
// backfill during sink lag never recounts a window from a partial raw_clicks.
import { DB, RAW_CLICKS_RETENTION_DAYS } from './migrations.ts';
import { GRANULARITY_MS, type GranularityName } from './rows.ts';
import type { QueryParams, Store } from './store.ts';

export const GENERATION_FACTOR = 2n ** 54n;
export const MAX_GENERATION = 2 ** 10 - 1;
const GRANULARITIES: readonly GranularityName[] = ['1m', '5m', '1h'];
const ENUM: Record<GranularityName, number> = { '1m': 1, '5m': 2, '1h': 3 };

/** Version of a backfilled row: beats any streaming row (< 2^54) and any older generation. */
export function backfillVersion(generation: number, clicks: number): bigint {
  if (!Number.isInteger(generation) || generation < 1 || generation > MAX_GENERATION) throw new Error(`generation ${generation} outside 1..${MAX_GENERATION}`);
  if (!Number.isSafeInteger(clicks) || clicks < 0) throw new Error(`clicks ${clicks} out of range`);
  return BigInt(generation) * GENERATION_FACTOR + BigInt(clicks) * 2n + 1n;
}

/**
 * The generation a stored version belongs to (0 = a streaming emission). Exact for a bigint
 * or ClickHouse's decimal string; a version read as a JS number is rounded (to 2^12 near
 * the top), which only crosses a generation boundary for counts within 2^11 of 2^53.
 */
export function generationOf(version: number | bigint | string): number {
  return Number(BigInt(version) / GENERATION_FACTOR);
}

/** Window starts [first, end) of granularity g whose windows lie fully inside [fromMs, toMs); null if none. */
export function windowsInside(g: GranularityName, fromMs: number, toMs: number): { first: number; end: number } | null {
  const step = GRANULARITY_MS[g];
  const first = Math.ceil(fromMs / step) * step;
  const end = Math.floor(toMs / step) * step; // last window start + step ≤ toMs
  return end > first ? { first, end } : null;
}

export interface RangePlan {
  readonly fromMs: number;
  /** `to` after clamping (≤ the requested one). */
  readonly toMs: number;
  /** Why `to` was lowered, if it was. */
  readonly clampedBy?: string;
}

/**
 * Validate and clamp a requested range for the admin surface. `closedBeforeMs`: windows
 * ending at or before it are final for good (backfill: watermark − allowed lateness;
 * reconcile: watermark); null = the pipeline reported no watermark yet. Throws a
 * RangeError with a readable message when nothing remains or the range reaches further
 * back than raw clicks are kept.
 */
export function planRange(fromMs: number, toMs: number, opts: { closedBeforeMs: number | null; nowMs: number; checkRetention: boolean }): RangePlan {
  if (!Number.isSafeInteger(fromMs) || !Number.isSafeInteger(toMs) || fromMs < 0) throw new RangeError('from and to must be epoch milliseconds');
  if (toMs <= fromMs) throw new RangeError('to must be after from');
  if (opts.checkRetention) {
    const oldest = opts.nowMs - RAW_CLICKS_RETENTION_DAYS * 86_400_000 + 3_600_000;
    if (fromMs < oldest) {
      throw new RangeError(`from ${new Date(fromMs).toISOString()} is older than the raw clicks kept (${RAW_CLICKS_RETENTION_DAYS} days, with 1 h margin: not before ${new Date(oldest).toISOString()}); a backfill there would erase counts`);
    }
  }
  let to = toMs;
  let clampedBy: string | undefined;
  if (opts.closedBeforeMs === null) throw new RangeError('the pipeline has reported no watermark yet: no window is closed');
  if (to > opts.closedBeforeMs) {
    to = opts.closedBeforeMs;
    clampedBy = `windows still open, within allowed lateness, or not all stored yet (closed before ${new Date(opts.closedBeforeMs).toISOString()}: the stored watermark, which the sink stores only after every raw, late and aggregate record it covers)`;
  }
  if (!GRANULARITIES.some((g) => windowsInside(g, fromMs, to))) {
    throw new RangeError(`no complete window lies inside [${new Date(fromMs).toISOString()}, ${new Date(to).toISOString()})${clampedBy ? ` (to clamped: ${clampedBy})` : ''}`);
  }
  return { fromMs, toMs: to, ...(clampedBy ? { clampedBy } : {}) };
}

interface Branch { g: GranularityName; step: number; f: string; t: string }

/** One branch per granularity that has windows inside the range, with its param names. */
function branches(fromMs: number, toMs: number, params: QueryParams): Branch[] {
  const out: Branch[] = [];
  for (const g of GRANULARITIES) {
    const w = windowsInside(g, fromMs, toMs);
    if (!w) continue;
    const n = ENUM[g];
    params[`f${n}`] = w.first;
    params[`t${n}`] = w.end;
    out.push({ g, step: GRANULARITY_MS[g] / 1000, f: `{f${n}:DateTime}`, t: `{t${n}:DateTime}` });
  }
  return out;
}

// SQL pieces; every column typed explicitly so UNION ALL branches agree on old servers too.
const KEYS = 'advertiser_id, campaign_id, ad_id';
const rawWs = (b: Branch) => `toUInt32(intDiv(toUInt32(event_time), ${b.step}) * ${b.step})`;

function storedSql(b: Branch): string {
  return `SELECT '${b.g}' AS g, ${KEYS}, toUInt32(window_start) AS ws, argMax(clicks, version) AS stored, toUInt64(0) AS recomputed
FROM ${DB}.click_aggregates WHERE granularity = '${b.g}' AND window_start >= ${b.f} AND window_start < ${b.t}
GROUP BY ${KEYS}, ws`;
}

function lateSql(b: Branch): string {
  return `SELECT '${b.g}' AS g, ${KEYS}, toUInt32(window_start) AS ws, toUInt64(uniqExact(impression_id, event_type)) AS stored, toUInt64(0) AS recomputed
FROM ${DB}.late_clicks WHERE granularity = '${b.g}' AND window_start >= ${b.f} AND window_start < ${b.t}
GROUP BY ${KEYS}, ws`;
}

function rawSql(b: Branch): string {
  return `SELECT '${b.g}' AS g, ${KEYS}, ${rawWs(b)} AS ws, toUInt64(0) AS stored, toUInt64(uniqExact(impression_id, event_type)) AS recomputed
FROM ${DB}.raw_clicks WHERE event_time >= ${b.f} AND event_time < ${b.t}
GROUP BY ${KEYS}, ws`;
}

export interface WindowDifference {
  granularity: GranularityName;
  advertiser_id: number;
  campaign_id: number;
  ad_id: number;
  window_start_ms: number;
  /** What the query API serves: the aggregate row (argMax by version) plus late corrections. */
  stored: number;
  /** Distinct raw (deduplicated) clicks of the window. */
  recomputed: number;
}

export interface ReconcileResult {
  readonly fromMs: number;
  readonly toMs: number;
  readonly windowsCompared: number;
  readonly differences: WindowDifference[];
  /** True when more differences exist than returned (limit). */
  readonly truncated: boolean;
}

/** Per-window differences between what the API serves and a recount from raw_clicks. */
export async function reconcile(store: Store, r: { fromMs: number; toMs: number; limit?: number }): Promise<ReconcileResult> {
  const params: QueryParams = {};
  const bs = branches(r.fromMs, r.toMs, params);
  const limit = Math.max(1, Math.min(r.limit ?? 10_000, 1_000_000));
  if (bs.length === 0) return { fromMs: r.fromMs, toMs: r.toMs, windowsCompared: 0, differences: [], truncated: false };
  const union = bs.flatMap((b) => [storedSql(b), lateSql(b), rawSql(b)]).join('\nUNION ALL\n');
  const grouped = `SELECT g, ${KEYS}, ws, sum(stored) AS stored, sum(recomputed) AS recomputed FROM (
${union}
) GROUP BY g, ${KEYS}, ws`;
  const [count] = await store.query<{ n: number; d: number }>(
    `SELECT count() AS n, countIf(stored != recomputed) AS d FROM (${grouped})`, params);
  const rows = await store.query<{ g: GranularityName; advertiser_id: number; campaign_id: number; ad_id: number; ws: number; stored: number; recomputed: number }>(
    `SELECT * FROM (${grouped}) WHERE stored != recomputed ORDER BY g, advertiser_id, campaign_id, ad_id, ws LIMIT ${limit}`, params);
  const differences = rows.map((x) => ({
    granularity: x.g, advertiser_id: Number(x.advertiser_id), campaign_id: Number(x.campaign_id), ad_id: Number(x.ad_id),
    window_start_ms: Number(x.ws) * 1000, stored: Number(x.stored), recomputed: Number(x.recomputed),
  }));
  return { fromMs: r.fromMs, toMs: r.toMs, windowsCompared: Number(count?.n ?? 0), differences, truncated: Number(count?.d ?? 0) > differences.length };
}

export interface BackfillResult {
  readonly generation: number;
  readonly fromMs: number;
  readonly toMs: number;
  /** Rows written per granularity (windows recomputed). */
  readonly windows: Partial<Record<GranularityName, number>>;
}

let running: Promise<unknown> = Promise.resolve();

/**
 * Recompute the 1m/5m/1h aggregates of every window fully inside [fromMs, toMs) from
 * raw_clicks, inside ClickHouse (INSERT … SELECT … GROUP BY), as a new generation. Windows
 * that have an aggregate row but no raw click are rewritten as 0. Runs one at a time per
 * process (the generation is claimed as max + 1).
 */
export function backfill(store: Store, r: { fromMs: number; toMs: number; watermarkMs?: number | null; nowMs?: number }): Promise<BackfillResult> {
  const run = running.then(() => backfillNow(store, r), () => backfillNow(store, r));
  running = run.catch(() => undefined);
  return run;
}

async function backfillNow(store: Store, r: { fromMs: number; toMs: number; watermarkMs?: number | null; nowMs?: number }): Promise<BackfillResult> {
  const now = r.nowMs ?? Date.now();
  const params: QueryParams = {};
  const bs = branches(r.fromMs, r.toMs, params);
  const [last] = await store.query<{ g: number }>(`SELECT max(generation) AS g FROM ${DB}.backfill_runs`);
  const generation = Number(last?.g ?? 0) + 1;
  if (generation > MAX_GENERATION) throw new Error(`backfill generations exhausted (${MAX_GENERATION})`);
  // Claim the generation before writing: a crash after this leaves the number used, never reused.
  await store.insert(`${DB}.backfill_runs`, [{ generation, from_ms: r.fromMs, to_ms: r.toMs, started_at_ms: now }]);
  const windows: Partial<Record<GranularityName, number>> = {};
  for (const b of bs) {
    const p: QueryParams = { ...params, gen: generation, wm: r.watermarkMs ?? -1, now };
    // Per window: raw clicks not recorded as late corrections of this granularity (those
    // are added at read time), plus a 0 for windows with an aggregate row but no raw click.
    await store.command(`INSERT INTO ${DB}.click_aggregates
  (granularity, advertiser_id, campaign_id, ad_id, window_start, clicks, final, version, watermark_ms, emitted_at_ms, max_received_at_ms)
SELECT CAST('${b.g}' AS Enum8('1m' = 1, '5m' = 2, '1h' = 3)), ${KEYS}, toDateTime(ws), sum(n), toUInt8(1),
  {gen:UInt64} * ${GENERATION_FACTOR} + sum(n) * 2 + 1, {wm:Int64}, {now:UInt64}, max(mr)
FROM (
  SELECT ${KEYS}, ${rawWs(b)} AS ws, toUInt64(uniqExact(impression_id, event_type)) AS n, toUInt64(max(received_at_ms)) AS mr
  FROM ${DB}.raw_clicks
  WHERE event_time >= ${b.f} AND event_time < ${b.t}
    AND (impression_id, event_type) NOT IN (
      SELECT impression_id, event_type FROM ${DB}.late_clicks
      WHERE granularity = '${b.g}' AND window_start >= ${b.f} AND window_start < ${b.t})
  GROUP BY ${KEYS}, ws
  UNION ALL
  SELECT ${KEYS}, toUInt32(window_start) AS ws, toUInt64(0) AS n, toUInt64(0) AS mr
  FROM ${DB}.click_aggregates
  WHERE granularity = '${b.g}' AND window_start >= ${b.f} AND window_start < ${b.t}
  GROUP BY ${KEYS}, ws
) GROUP BY ${KEYS}, ws`, p);
    windows[b.g] = await countRows(store, b, p);
  }
  return { generation, fromMs: r.fromMs, toMs: r.toMs, windows };
}

/** Rows of this run's generation in the branch's windows (to report how many were written). */
async function countRows(store: Store, b: Branch, p: QueryParams): Promise<number> {
  const [x] = await store.query<{ n: number }>(
    `SELECT count() AS n FROM ${DB}.click_aggregates WHERE granularity = '${b.g}' AND window_start >= ${b.f} AND window_start < ${b.t}
  AND intDiv(version, ${GENERATION_FACTOR}) = {gen:UInt64}`, p);
  return Number(x?.n ?? 0);
}

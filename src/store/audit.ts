// Conservation per window. The Flink job counts, per 1-minute event-time window (bucketed),
// every record it read from `clicks` (accepted), every duplicate its dedup dropped and
// every record it dead-lettered (topic click-audit → table window_audit). Independently,
// the query API serves streaming counts plus late corrections. Per window of any
// granularity (1m audits summed):
//
//     accepted = served + duplicates + rejected,   served = streaming + late corrections
//
// `imbalance` = accepted − served − duplicates − rejected; zero for a closed window once the
// sink has caught up. A non-zero value means a click was lost or double counted somewhere
// between the job's input and the API. Dead letters carry no trustworthy event time; they
// are audited under window 0 ("unattributed") where accepted = rejected must hold.
//
// Gateway-level outcomes that never reach Kafka (edge duplicates answered `duplicate`,
// 4xx rejects) are counted by the gateway's metrics, not here: they have no window.
import { WindowAudit } from '../shared/proto.ts';
import { DB } from './migrations.ts';
import { GRANULARITY_MS, MAX_DATETIME_MS, type GranularityName } from './rows.ts';
import type { QueryParams, Store } from './store.ts';
import { windowsInside } from './batch-path.ts';

export interface WindowAuditRow {
  window_start: number; // seconds (DateTime)
  bucket: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  version: number;
  emitted_at_ms: number;
}

const MAX_COUNT = 2 ** 53 - 1;

/** One click-audit record as a row; throws on values no honest job writes. */
export function auditRow(a: WindowAudit): WindowAuditRow {
  const ws = Number(a.windowStartMs);
  if (!Number.isSafeInteger(ws) || ws < 0 || ws % 60_000 !== 0 || ws > MAX_DATETIME_MS) throw new Error(`window_start_ms ${ws} is not a 1-minute boundary within DateTime range`);
  if (!Number.isInteger(a.bucket) || a.bucket < 0 || a.bucket > 255) throw new Error(`bucket ${a.bucket} out of range`);
  const n = (v: unknown, name: string) => {
    const x = Number(v);
    if (!Number.isSafeInteger(x) || x < 0 || x > MAX_COUNT) throw new Error(`${name} ${String(v)} out of range`);
    return x;
  };
  const accepted = n(a.accepted, 'accepted');
  const duplicates = n(a.duplicates, 'duplicates');
  const rejected = n(a.rejected, 'rejected');
  const version = n(a.version, 'version');
  if (version !== accepted + duplicates + rejected) throw new Error(`version ${version} is not accepted + duplicates + rejected`);
  return { window_start: ws / 1000, bucket: a.bucket, accepted, duplicates, rejected, version, emitted_at_ms: n(a.emittedAtMs, 'emitted_at_ms') };
}

export interface ConservationRow {
  granularity: GranularityName;
  window_start_ms: number;
  /** Records the job read (what the gateway wrote to Kafka, retries included). */
  accepted: number;
  /** What the query API serves for the window, summed over all ads (streaming + late). */
  served: number;
  /** Late corrections included in `served`. */
  late: number;
  duplicates: number;
  rejected: number;
  /** accepted − served − duplicates − rejected: 0 when every click is accounted for. */
  imbalance: number;
}

export interface ConservationResult {
  readonly windows: ConservationRow[];
  /** Windows (any granularity) whose imbalance is not 0. */
  readonly imbalanced: number;
  /** Dead letters without a window: accepted and rejected there must be equal. */
  readonly unattributed: { accepted: number; rejected: number };
  readonly totals: { accepted: number; served: number; late: number; duplicates: number; rejected: number };
}

const GS: readonly GranularityName[] = ['1m', '5m', '1h'];

/** Per-window conservation for every window of each granularity lying fully inside [fromMs, toMs). */
export async function conservation(store: Store, r: { fromMs: number; toMs: number }): Promise<ConservationResult> {
  const windows: ConservationRow[] = [];
  for (const g of GS) {
    const w = windowsInside(g, r.fromMs, r.toMs);
    if (!w) continue;
    const step = GRANULARITY_MS[g] / 1000;
    const p: QueryParams = { f: Math.floor(w.first / 1000), t: Math.floor(w.end / 1000) };
    const rows = await store.query<{ ws: number; accepted: number; duplicates: number; rejected: number; stream: number; late: number }>(
      `SELECT ws, sum(accepted) AS accepted, sum(duplicates) AS duplicates, sum(rejected) AS rejected, sum(stream) AS stream, sum(late) AS late FROM (
  SELECT toUInt32(intDiv(toUInt32(window_start), ${step}) * ${step}) AS ws,
    toUInt64(argMax(accepted, version)) AS accepted, toUInt64(argMax(duplicates, version)) AS duplicates, toUInt64(argMax(rejected, version)) AS rejected,
    toUInt64(0) AS stream, toUInt64(0) AS late
  FROM ${DB}.window_audit WHERE window_start >= toDateTime({f:UInt32}) AND window_start < toDateTime({t:UInt32})
  GROUP BY window_start, bucket
  UNION ALL
  SELECT toUInt32(window_start) AS ws, toUInt64(0) AS accepted, toUInt64(0) AS duplicates, toUInt64(0) AS rejected,
    toUInt64(argMax(clicks, version)) AS stream, toUInt64(0) AS late
  FROM ${DB}.click_aggregates WHERE granularity = '${g}' AND window_start >= toDateTime({f:UInt32}) AND window_start < toDateTime({t:UInt32})
  GROUP BY advertiser_id, campaign_id, ad_id, window_start
  UNION ALL
  SELECT toUInt32(window_start) AS ws, toUInt64(0) AS accepted, toUInt64(0) AS duplicates, toUInt64(0) AS rejected,
    toUInt64(0) AS stream, toUInt64(uniqExact(impression_id, event_type)) AS late
  FROM ${DB}.late_clicks WHERE granularity = '${g}' AND window_start >= toDateTime({f:UInt32}) AND window_start < toDateTime({t:UInt32})
  GROUP BY window_start
) GROUP BY ws ORDER BY ws`, p);
    for (const x of rows) {
      const accepted = Number(x.accepted), duplicates = Number(x.duplicates), rejected = Number(x.rejected), late = Number(x.late);
      const served = Number(x.stream) + late;
      windows.push({ granularity: g, window_start_ms: Number(x.ws) * 1000, accepted, served, late, duplicates, rejected, imbalance: accepted - served - duplicates - rejected });
    }
  }
  const [u] = await store.query<{ accepted: number; rejected: number }>(
    `SELECT sum(a) AS accepted, sum(r) AS rejected FROM (
  SELECT argMax(accepted, version) AS a, argMax(rejected, version) AS r FROM ${DB}.window_audit WHERE window_start = toDateTime(0) GROUP BY bucket)`);
  const totals = { accepted: 0, served: 0, late: 0, duplicates: 0, rejected: 0 };
  for (const x of windows.filter((w) => w.granularity === '1m')) {
    totals.accepted += x.accepted; totals.served += x.served; totals.late += x.late; totals.duplicates += x.duplicates; totals.rejected += x.rejected;
  }
  return {
    windows,
    imbalanced: windows.filter((w) => w.imbalance !== 0).length,
    unattributed: { accepted: Number(u?.accepted ?? 0), rejected: Number(u?.rejected ?? 0) },
    totals,
  };
}

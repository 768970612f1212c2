// Which of a scenario's clicks the store holds as late corrections (late_clicks), read
// straight from the ClickHouse server (server stacks only: the embedded store lives in
// the serving process). A click that was on time at the gateway (event time within the
// allowed lateness of its gateway receive time) must never be one: it was late only
// because the pipeline was behind, which is the pipeline's problem, not the click's.
import type { Ledger } from '../simulate/ledger.ts';
import type { ChaosStack } from './stack.ts';

export interface LateRow {
  granularity: string;
  impression_id: string;
  event_type: string;
  event_time_ms: number;
  received_at_ms: number;
  watermark_ms: number;
}

export async function lateCorrections(stack: ChaosStack, r: { advertiserIds: readonly number[]; adIdFrom: number; adIdTo: number }): Promise<LateRow[]> {
  const ch = stack.clickhouse;
  if (!ch) throw new Error('late corrections can only be read on a server stack (ClickHouse server)');
  const sql = `SELECT toString(granularity) AS granularity, impression_id, event_type, event_time_ms, received_at_ms, watermark_ms
FROM adclick.late_clicks FINAL
WHERE advertiser_id IN (${r.advertiserIds.map((a) => Math.trunc(a)).join(', ')}) AND ad_id >= ${Math.trunc(r.adIdFrom)} AND ad_id < ${Math.trunc(r.adIdTo)}
FORMAT JSONEachRow`;
  const res = await fetch(`${ch.url}/?query=${encodeURIComponent(sql)}`, { signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`late_clicks query failed: ${res.status} ${text.slice(0, 300)}`);
  return text.split('\n').filter(Boolean).map((l) => {
    const o = JSON.parse(l) as Record<string, string | number>;
    return {
      granularity: String(o.granularity), impression_id: String(o.impression_id), event_type: String(o.event_type),
      event_time_ms: Number(o.event_time_ms), received_at_ms: Number(o.received_at_ms), watermark_ms: Number(o.watermark_ms),
    };
  });
}

export interface OnTimeLate {
  /** One line per on-time click reported late (at most `maxLines`, then a summary line). */
  lines: string[];
  onTimeClicks: number;
  rows: number;
  /** Rows whose click is not in the ledger (never accepted, or of another scenario). */
  unknown: number;
}

/** Judges late-correction rows against the ledger: the ledger's event time, the gateway's receive time. */
export function onTimeReportedLate(rows: readonly LateRow[], ledger: Ledger, allowedLatenessMs: number, maxLines = 100): OnTimeLate {
  const byClick = new Map<string, { row: LateRow; gs: string[] }>();
  let unknown = 0;
  for (const row of rows) {
    const e = ledger.get(row.impression_id, row.event_type);
    if (!e) {
      unknown++;
      continue;
    }
    if (e.timestamp < row.received_at_ms - allowedLatenessMs) continue; // late at the gateway already: a fair correction
    const k = `${row.impression_id}\u0000${row.event_type}`;
    const c = byClick.get(k) ?? { row, gs: [] };
    c.gs.push(row.granularity);
    byClick.set(k, c);
  }
  const lines: string[] = [];
  for (const { row, gs } of byClick.values()) {
    if (lines.length >= maxLines) break;
    lines.push(`on-time click ${row.impression_id} (event ${new Date(row.event_time_ms).toISOString()}, received ${row.received_at_ms - row.event_time_ms} ms after it) reported as a late correction (${gs.sort().join('/')}; watermark ${row.watermark_ms - row.event_time_ms} ms past its event time)`);
  }
  if (byClick.size > lines.length) lines.push(`... ${byClick.size - lines.length} more on-time clicks reported as late corrections (${byClick.size} in all)`);
  return { lines, onTimeClicks: byClick.size, rows: rows.length, unknown };
}

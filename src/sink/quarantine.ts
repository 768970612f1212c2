// Quarantine: rows ClickHouse refuses for good (store-refusal.ts) are set aside as dead
// letters instead of blocking every table behind them. A refused insert is bisected to the
// offending rows, every other row is written, and each offending row's source record goes
// to dead_letters (stage 'sink', reason STORE_REFUSED) with its Kafka coordinates and
// payload, so it can be replayed once the cause is fixed. Re-inserting a half that was
// already written is harmless: every table collapses re-written rows.
import type { Store } from '../store/store.ts';
import { sinkDeadLetterRow, type DeadLetterRow } from '../store/rows.ts';
import type { SinkMessage } from './batch.ts';
import { isPermanentRefusal, refusalSummary } from './store-refusal.ts';

export const STORE_REFUSED = 'STORE_REFUSED';

export interface RefusedRow {
  readonly table: string;
  readonly row: Record<string, unknown>;
  readonly err: unknown;
}

/**
 * Insert `rows`; when ClickHouse refuses them for good, insert halves until each refused
 * row stands alone, and return those. A transient failure at any step is thrown (the
 * caller retries; written halves collapse when written again). Cost: about
 * 2·(refused rows)·log2(rows) inserts, only on a refusal.
 */
export async function insertIsolating(
  store: Store, table: string, rows: readonly Record<string, unknown>[], onWritten?: (rows: number) => void,
): Promise<RefusedRow[]> {
  try {
    await store.insert(table, rows);
    onWritten?.(rows.length);
    return [];
  } catch (err) {
    if (!isPermanentRefusal(err)) throw err;
    if (rows.length === 1) return [{ table, row: rows[0]!, err }];
    const mid = rows.length >>> 1;
    const left = await insertIsolating(store, table, rows.slice(0, mid), onWritten);
    const right = await insertIsolating(store, table, rows.slice(mid), onWritten);
    return [...left, ...right];
  }
}

/**
 * One dead letter per source record of the refused rows (a record whose rows were refused
 * in two tables is one dead letter naming both). `sources` maps each row to the record it
 * was built from (SinkBatch.sources).
 */
export function quarantineDeadLetters(refused: readonly RefusedRow[], sources: { get(row: object): SinkMessage | undefined }, nowMs: number): DeadLetterRow[] {
  const byRecord = new Map<string, { m: SinkMessage; tables: string[]; why: string }>();
  for (const r of refused) {
    const m = sources.get(r.row);
    // Every row is built from a record; a row without one is a bug, and must not vanish.
    if (!m) throw new Error(`quarantine: no source record for a row refused by ${r.table}`);
    const k = `${m.topic}\u0000${m.partition}\u0000${m.offset}`;
    const cur = byRecord.get(k);
    if (cur) {
      if (!cur.tables.includes(r.table)) cur.tables.push(r.table);
    } else {
      byRecord.set(k, { m, tables: [r.table], why: refusalSummary(r.err) });
    }
  }
  return [...byRecord.values()].map(({ m, tables, why }) => sinkDeadLetterRow(
    { topic: m.topic, partition: m.partition, offset: Number(m.offset) }, m.key, m.value, STORE_REFUSED,
    `ClickHouse refused the row for ${tables.join(', ')}: ${why}`, nowMs));
}

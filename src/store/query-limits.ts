// Execution caps for the query API's ClickHouse reads: every read runs with
// max_execution_time, max_result_rows and (optionally) max_rows_to_read, overflow mode
// 'throw', as per-query settings (HTTP URL parameters on a server — 18.16 has them all —
// and a SETTINGS clause on embedded chdb). A cap hit becomes a documented API error, never
// a 500: too slow → 503 UNAVAILABLE (retry later, like any storage timeout); too many rows
// → 400 QUERY_TOO_EXPENSIVE (narrow the range; the same request will hit the cap again).
import { AppError } from '../shared/errors.ts';
import type { QueryParams, QuerySettings, Store } from './store.ts';

export interface QueryLimits {
  /** ClickHouse max_execution_time in seconds; 0 = no cap. */
  readonly maxExecutionSec: number;
  /** ClickHouse max_result_rows; 0 = no cap. */
  readonly maxResultRows: number;
  /** ClickHouse max_rows_to_read; 0 = no cap. */
  readonly maxRowsToRead: number;
}

export function limitSettings(l: QueryLimits): QuerySettings {
  const s: Record<string, string | number> = {};
  if (l.maxExecutionSec > 0) Object.assign(s, { max_execution_time: l.maxExecutionSec, timeout_overflow_mode: 'throw' });
  if (l.maxResultRows > 0) Object.assign(s, { max_result_rows: l.maxResultRows, result_overflow_mode: 'throw' });
  if (l.maxRowsToRead > 0) Object.assign(s, { max_rows_to_read: l.maxRowsToRead, read_overflow_mode: 'throw' });
  return s;
}

/** The same store, every query() carrying the caps (inserts and commands are not capped). */
export function withLimits(store: Store, limits: QueryLimits): Store {
  const settings = limitSettings(limits);
  if (Object.keys(settings).length === 0) return store;
  return {
    kind: store.kind,
    capabilities: store.capabilities,
    storagePolicy: store.storagePolicy,
    query: <T,>(sql: string, params?: QueryParams, opts: { timeoutMs?: number; settings?: QuerySettings } = {}) =>
      store.query<T>(sql, params, { ...opts, settings: { ...settings, ...opts.settings } }),
    insert: (table, rows) => store.insert(table, rows),
    command: (sql, params) => store.command(sql, params),
    ping: () => store.ping(),
    close: () => store.close(),
  };
}

// ClickHouse error codes (src/Common/ErrorCodes.cpp): stable across versions.
const TIME_CODES = new Set([159 /* TIMEOUT_EXCEEDED */, 160 /* TOO_SLOW: estimated to exceed max_execution_time */]);
const SIZE_CODES = new Set([158 /* TOO_MANY_ROWS */, 307 /* TOO_MANY_BYTES */, 396 /* TOO_MANY_ROWS_OR_BYTES */]);

/** The ClickHouse error code of a failed query (server client, chdb, or the text of either), else undefined. */
export function clickhouseErrorCode(err: unknown): number | undefined {
  if (!(err instanceof Error)) return undefined;
  const e = err as Error & { code?: unknown; clickhouseCode?: unknown };
  for (const c of [e.clickhouseCode, e.code]) {
    if (typeof c === 'number' && Number.isInteger(c)) return c;
    if (typeof c === 'string' && /^\d+$/.test(c)) return Number(c);
  }
  const m = /Code: (\d+)/.exec(e.message);
  return m ? Number(m[1]) : undefined;
}

/** The API error for a query that hit a cap, or undefined when `err` is something else. */
export function capError(err: unknown): AppError | undefined {
  const code = clickhouseErrorCode(err);
  if (code === undefined) return undefined;
  if (TIME_CODES.has(code)) return new AppError('UNAVAILABLE', 'The query ran into the execution time limit; retry later or narrow the range', { cause: err });
  if (SIZE_CODES.has(code)) return new AppError('QUERY_TOO_EXPENSIVE', undefined, { cause: err });
  return undefined;
}

// The ClickHouse access contract shared by the sink and the query API. Two transports
// implement it: embedded (chdb, in-process, the local default) and server (HTTP via
// @clickhouse/client, for any ClickHouse server or cluster, CLICKHOUSE_URL).

export type StoreKind = 'embedded' | 'server';

/** What the connected engine can do; detected at start-up, logged, never assumed. */
export interface StoreCapabilities {
  readonly version: string;
  /** Server-side `{name:Type}` parameters (query_params). Without it the transport binds client-side, type-checked and escaped. */
  readonly serverParams: boolean;
  /** Table TTL clauses (ClickHouse >= 19.6). */
  readonly ttl: boolean;
  /** Storage policies / multiple volumes (>= 19.15). */
  readonly storagePolicies: boolean;
  /** insert_deduplication_token (>= 22.2). */
  readonly insertDedupToken: boolean;
  /** Projections on a ReplacingMergeTree (deduplicate_merge_projection_mode, >= 24.8). */
  readonly projections: boolean;
}

/**
 * Query parameters use ClickHouse's `{name:Type}` placeholders in the SQL text, e.g.
 * `WHERE advertiser_id = {adv:UInt64} AND window_start >= {from:DateTime}`. Values are
 * JS numbers, strings, or Dates (bound as UTC DateTime). Never interpolate user input
 * into SQL any other way.
 */
export type QueryParams = Record<string, string | number | Date | readonly (string | number)[]>;

/** Per-query ClickHouse settings (e.g. the query API's caps, query-limits.ts): names `[a-z_]+`, plain values. */
export type QuerySettings = Readonly<Record<string, string | number>>;

export interface Store {
  readonly kind: StoreKind;
  readonly capabilities: StoreCapabilities;
  /**
   * Storage policy (a hot volume, then one named `cold`) the aggregates live under, verified to
   * exist in the engine at open; '' when the engine has one tier only.
   */
  readonly storagePolicy: string;
  /**
   * Server mode on a ClickHouse cluster (ADCLICK_CLICKHOUSE_CLUSTER): the remote_servers
   * cluster whose Distributed tables the store reads and writes; migrations then create the
   * schema ON CLUSTER (cluster-ddl.ts). Absent for the embedded engine and a single server.
   */
  readonly cluster?: string;
  /** Rows as objects; 64-bit integers are normalised to JS numbers (quoted or not on the wire). */
  query<T = Record<string, unknown>>(sql: string, params?: QueryParams, opts?: { timeoutMs?: number; settings?: QuerySettings }): Promise<T[]>;
  /** Insert rows (JSONEachRow semantics: keys are column names). One call = one insert block. */
  insert(table: string, rows: readonly Record<string, unknown>[]): Promise<void>;
  /** DDL and other statements without a result. */
  command(sql: string, params?: QueryParams): Promise<void>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

// Numbered schema migrations, applied at start-up in order and recorded in
// `adclick.schema_migrations`. Every statement is idempotent on its own (IF NOT EXISTS),
// so a crash between a statement and its record, or two processes starting at once,
// only repeats harmless work. A migration's SQL may depend on the engine's
// capabilities; what a variant leaves out is logged as a notice, never silently.
import type { Logger } from '../shared/logger.ts';
import { policyNameProblem } from './capabilities.ts';
import { clusterStatements } from './cluster-ddl.ts';
import type { Store, StoreCapabilities } from './store.ts';

export const DB = 'adclick';

/** How long raw deduplicated clicks are kept (table TTL where supported); bounds backfill ranges. */
export const RAW_CLICKS_RETENTION_DAYS = 7;

export interface MigrationOptions {
  /**
   * Storage policy with a `cold` volume for aggregates older than 30 days (server
   * config must define it). Empty: no tiering.
   */
  readonly storagePolicy?: string;
  /** Set by migrate() from the store: the ON CLUSTER form only rewrites CREATE statements. */
  readonly cluster?: string;
}

/** The late_clicks projection the reads use: ordered like the aggregates (owner first). */
export const LATE_CLICKS_BY_OWNER = 'late_by_owner';

export interface Migration {
  readonly id: number;
  readonly name: string;
  /** Statements for this engine, plus notices naming what this variant skips. */
  plan(caps: StoreCapabilities, opts: MigrationOptions): { statements: string[]; notices: string[] };
}

/** Aggregates older than this move from the hot to the cold volume. */
export const HOT_DAYS = 30;

/** The aggregates' TTL under a tiering policy: hot for HOT_DAYS, then cold, deleted after 2 years. */
export function tieredTtl(column: string): string {
  return `TTL ${column} + INTERVAL ${HOT_DAYS} DAY TO VOLUME 'cold', ${column} + INTERVAL 2 YEAR DELETE`;
}

/** TTL clause for tables that must live as long as the aggregates (2 years). */
function retention(caps: StoreCapabilities, column: string, table: string, opts: MigrationOptions, notices: string[], tiered = false): string {
  if (!caps.ttl) {
    notices.push(`${table}: TTL ${column} + 2 years skipped (engine ${caps.version} has no table TTL)`);
    return '';
  }
  if (tiered && opts.storagePolicy) {
    if (!caps.storagePolicies) {
      notices.push(`${table}: storage policy "${opts.storagePolicy}" skipped (engine ${caps.version} has no storage policies)`);
    } else {
      return tieredTtl(column);
    }
  } else if (tiered) {
    notices.push(`${table}: hot/cold TTL MOVE skipped (no storage policy configured)`);
  }
  return `TTL ${column} + INTERVAL 2 YEAR`;
}

function policySetting(caps: StoreCapabilities, opts: MigrationOptions): string {
  return opts.storagePolicy && caps.storagePolicies ? `SETTINGS storage_policy = '${opts.storagePolicy}'` : '';
}

export const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: 'click_aggregates',
    plan(caps, opts) {
      const notices: string[] = [];
      const ttl = retention(caps, 'window_start', 'click_aggregates', opts, notices, true);
      return {
        notices,
        statements: [
          `CREATE TABLE IF NOT EXISTS ${DB}.click_aggregates (
  granularity Enum8('1m' = 1, '5m' = 2, '1h' = 3),
  advertiser_id UInt64,
  campaign_id UInt64,
  ad_id UInt64,
  window_start DateTime('UTC'),
  clicks UInt64,
  final UInt8,
  version UInt64,
  watermark_ms Int64,
  emitted_at_ms UInt64,
  max_received_at_ms UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (advertiser_id, campaign_id, granularity, window_start, ad_id)
${ttl}
${policySetting(caps, opts)}`,
        ],
      };
    },
  },
  {
    id: 2,
    name: 'pipeline_watermarks',
    plan() {
      return {
        notices: [],
        statements: [
          `CREATE TABLE IF NOT EXISTS ${DB}.pipeline_watermarks (
  subtask UInt32,
  parallelism UInt32,
  watermark_ms Int64,
  emitted_at_ms UInt64
) ENGINE = ReplacingMergeTree(emitted_at_ms)
ORDER BY subtask`,
        ],
      };
    },
  },
  {
    id: 3,
    name: 'late_clicks',
    // One row per (granularity, click): lateness is per granularity (a click can miss its
    // 1m window yet count on time in its 1h window), so a correction names the one
    // granularity and window it applies to. Edited in place (not a new migration) because
    // no release ever created the earlier per-click shape; a data dir migrated before this
    // change must be recreated.
    plan(caps, opts) {
      const notices: string[] = [];
      const ttl = retention(caps, 'window_start', 'late_clicks', opts, notices);
      return {
        notices,
        statements: [
          `CREATE TABLE IF NOT EXISTS ${DB}.late_clicks (
  granularity Enum8('1m' = 1, '5m' = 2, '1h' = 3),
  window_start DateTime('UTC'),
  impression_id String,
  event_type String,
  ad_id UInt64,
  campaign_id UInt64,
  advertiser_id UInt64,
  event_time DateTime('UTC'),
  event_time_ms Int64,
  received_at_ms UInt64,
  watermark_ms Int64,
  detected_at_ms UInt64
) ENGINE = ReplacingMergeTree()
ORDER BY (granularity, impression_id, event_type)
${ttl}`,
        ],
      };
    },
  },
  {
    id: 4,
    name: 'dead_letters',
    plan() {
      return {
        notices: [],
        statements: [
          `CREATE TABLE IF NOT EXISTS ${DB}.dead_letters (
  stage String,
  source_topic String,
  partition Int32,
  offset Int64,
  reason String,
  detail String,
  key String,
  payload String,
  detected_at_ms UInt64
) ENGINE = ReplacingMergeTree()
ORDER BY (stage, source_topic, partition, offset)`,
        ],
      };
    },
  },
  {
    id: 5,
    name: 'api_keys',
    plan() {
      return {
        notices: [],
        statements: [
          `CREATE TABLE IF NOT EXISTS ${DB}.api_keys (
  key_hash String,
  advertiser_id UInt64,
  created_at DateTime('UTC'),
  revoked UInt8,
  updated_at UInt64
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY key_hash`,
        ],
      };
    },
  },
  {
    id: 6,
    name: 'ad_owners',
    plan() {
      // One row per ad: which campaign and advertiser it belongs to. Lets ownership
      // checks avoid scanning the aggregates (whose key starts with advertiser_id).
      return {
        notices: [],
        statements: [
          `CREATE TABLE IF NOT EXISTS ${DB}.ad_owners (
  ad_id UInt64,
  campaign_id UInt64,
  advertiser_id UInt64
) ENGINE = ReplacingMergeTree()
ORDER BY (ad_id, campaign_id, advertiser_id)`,
        ],
      };
    },
  },
  {
    id: 7,
    name: 'raw_clicks',
    // Every click that passed the Flink dedup (topic clicks-deduped), for audit and the batch
    // path (backfill / reconcile recount from it). Identity = the whole sorting key, which
    // includes (impression_id, event_type) and is fully determined by the click, so a
    // re-delivered click collapses; reads count uniqExact(impression_id, event_type) and
    // never depend on merges. Kept 7 days (TTL where the engine has it).
    plan(caps) {
      const notices: string[] = [];
      let ttl = '';
      if (caps.ttl) ttl = `TTL event_time + INTERVAL ${RAW_CLICKS_RETENTION_DAYS} DAY`;
      else notices.push(`raw_clicks: TTL event_time + ${RAW_CLICKS_RETENTION_DAYS} days skipped (engine ${caps.version} has no table TTL); raw clicks are kept until dropped by hand`);
      return {
        notices,
        statements: [
          `CREATE TABLE IF NOT EXISTS ${DB}.raw_clicks (
  impression_id String,
  event_type String,
  ad_id UInt64,
  campaign_id UInt64,
  advertiser_id UInt64,
  event_time DateTime('UTC'),
  event_time_ms Int64,
  received_at_ms UInt64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (advertiser_id, campaign_id, event_time, ad_id, impression_id, event_type)
${ttl}`,
        ],
      };
    },
  },
  {
    id: 8,
    name: 'backfill_runs',
    // One row per backfill run; its id is the generation written into the versions of the
    // aggregates it recomputed (see batch-path.ts). Claimed before the run writes anything.
    plan() {
      return {
        notices: [],
        statements: [
          `CREATE TABLE IF NOT EXISTS ${DB}.backfill_runs (
  generation UInt32,
  from_ms Int64,
  to_ms Int64,
  started_at_ms UInt64
) ENGINE = ReplacingMergeTree()
ORDER BY generation`,
        ],
      };
    },
  },
  {
    id: 9,
    name: 'window_audit',
    // Cumulative per-(1m window, bucket) counts from the Flink job (click-audit topic): the
    // accepted side of the conservation check (audit.ts). Newest version wins in reads.
    plan(caps, opts) {
      const notices: string[] = [];
      // Window 0 holds the dead letters without a time: it ages by its last emission instead.
      const ttl = retention(caps, "if(toUInt32(window_start) = 0, toDateTime(intDiv(emitted_at_ms, 1000), 'UTC'), window_start)", 'window_audit', opts, notices);
      return {
        notices,
        statements: [
          `CREATE TABLE IF NOT EXISTS ${DB}.window_audit (
  window_start DateTime('UTC'),
  bucket UInt8,
  accepted UInt64,
  duplicates UInt64,
  rejected UInt64,
  version UInt64,
  emitted_at_ms UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, bucket)
${ttl}`,
        ],
      };
    },
  },
  {
    id: 10,
    name: 'late_clicks_by_owner',
    // late_clicks is ordered by (granularity, impression_id, event_type): its identity, what
    // the ReplacingMergeTree collapses on. Every read (series, totals, the campaign list)
    // asks for one advertiser's windows, so without help it scans every late click of the
    // granularity. A projection keeps a second copy of each part ordered like the
    // aggregates; the engine picks it for reads that filter by owner, the table keeps its
    // identity. Reads count uniqExact(impression_id, event_type), so they never depend on
    // which copy collapsed what. MATERIALIZE builds it for parts already stored (existing
    // data directories); re-running any statement is harmless.
    plan(caps, opts) {
      if (!caps.projections) {
        return { statements: [], notices: [`late_clicks: projection ${LATE_CLICKS_BY_OWNER} skipped (engine ${caps.version} has no projections on ReplacingMergeTree); late-correction reads scan every late click of a granularity`] };
      }
      if (opts.cluster) {
        return { statements: [], notices: [`late_clicks: projection ${LATE_CLICKS_BY_OWNER} skipped on cluster ${opts.cluster} (ALTER ... ON CLUSTER of the local tables is not built)`] };
      }
      return {
        notices: [],
        statements: [
          `ALTER TABLE ${DB}.late_clicks MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'`,
          `ALTER TABLE ${DB}.late_clicks ADD PROJECTION IF NOT EXISTS ${LATE_CLICKS_BY_OWNER} (SELECT * ORDER BY advertiser_id, campaign_id, granularity, window_start, ad_id)`,
          `ALTER TABLE ${DB}.late_clicks MATERIALIZE PROJECTION ${LATE_CLICKS_BY_OWNER} SETTINGS mutations_sync = 1`,
        ],
      };
    },
  },
];

export interface MigrationReport {
  readonly applied: number[];
  readonly skipped: number[];
  readonly notices: string[];
}

export async function migrate(store: Store, logger: Logger, options: MigrationOptions = {}, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationReport> {
  const opts: MigrationOptions = { ...options, cluster: store.cluster || undefined };
  const log = logger.child({ module: 'migrations' });
  const badPolicy = opts.storagePolicy ? policyNameProblem(opts.storagePolicy) : null;
  if (badPolicy) throw new Error(badPolicy);
  const ids = migrations.map((m) => m.id);
  if (new Set(ids).size !== ids.length || ids.some((id, i) => i > 0 && id <= ids[i - 1]!)) {
    throw new Error('migration ids must be unique and increasing');
  }
  // On a cluster each statement becomes its ON CLUSTER form (replicated local + Distributed).
  const run = async (sql: string) => {
    for (const s of store.cluster ? clusterStatements(sql, store.cluster) : [sql]) await store.command(s);
  };
  await run(`CREATE DATABASE IF NOT EXISTS ${DB}`);
  await run(`CREATE TABLE IF NOT EXISTS ${DB}.schema_migrations (
  id UInt32,
  name String,
  applied_at_ms UInt64,
  engine_version String
) ENGINE = ReplacingMergeTree(applied_at_ms)
ORDER BY id`);
  const done = new Set((await store.query<{ id: number }>(`SELECT DISTINCT id FROM ${DB}.schema_migrations`)).map((r) => Number(r.id)));
  const applied: number[] = [];
  const skipped: number[] = [];
  const notices: string[] = [];
  for (const m of migrations) {
    if (done.has(m.id)) {
      skipped.push(m.id);
      continue;
    }
    const plan = m.plan(store.capabilities, opts);
    for (const n of plan.notices) log.warn({ migration: m.id, name: m.name }, `migration notice: ${n}`);
    notices.push(...plan.notices);
    for (const sql of plan.statements) await run(sql);
    await store.insert(`${DB}.schema_migrations`, [
      { id: m.id, name: m.name, applied_at_ms: Date.now(), engine_version: store.capabilities.version },
    ]);
    applied.push(m.id);
    log.info({ migration: m.id, name: m.name }, 'migration applied');
  }
  log.info({ applied, alreadyApplied: skipped.length }, 'schema up to date');
  return { applied, skipped, notices };
}

/**
 * Puts the aggregates under the tiering policy, also for tables created before it was
 * configured (migration 1 only sets it on creation). Idempotent; runs at every start.
 * Changing a table's policy is allowed because every tiering policy keeps the
 * `default` disk in its hot volume; MODIFY TTL then moves parts already past HOT_DAYS.
 */
export async function ensureTiering(store: Store, logger: Logger, policy: string): Promise<'tiered' | 'unchanged' | 'one-tier'> {
  const log = logger.child({ module: 'migrations' });
  if (!policy || !store.capabilities.storagePolicies) return 'one-tier';
  // The ALTERs below address one table on one server; on a cluster they would need their
  // ON CLUSTER form against the local tables, which is not built yet.
  if (store.cluster) throw new Error('CLICKHOUSE_STORAGE_POLICY is not supported together with ADCLICK_CLICKHOUSE_CLUSTER yet');
  const badPolicy = policyNameProblem(policy);
  if (badPolicy) throw new Error(badPolicy);
  const [t] = await store.query<{ storage_policy: string; engine_full: string }>(
    `SELECT storage_policy, engine_full FROM system.tables WHERE database = {db:String} AND name = 'click_aggregates'`, { db: DB });
  if (!t) throw new Error(`${DB}.click_aggregates is missing; run migrations first`);
  let changed = false;
  if (t.storage_policy !== policy) {
    await store.command(`ALTER TABLE ${DB}.click_aggregates MODIFY SETTING storage_policy = '${policy}'`);
    log.info({ from: t.storage_policy, to: policy }, 'aggregates moved under the tiering storage policy');
    changed = true;
  }
  if (!/TO VOLUME 'cold'/.test(t.engine_full)) {
    await store.command(`ALTER TABLE ${DB}.click_aggregates MODIFY ${tieredTtl('window_start')}`);
    log.info({ hotDays: HOT_DAYS }, 'aggregates TTL set: hot, then the cold volume, deleted after 2 years');
    changed = true;
  }
  return changed ? 'tiered' : 'unchanged';
}

/** Where the aggregates' active parts live: rows per disk, for `adclick status` and tests. */
export async function aggregatesByDisk(store: Store): Promise<{ disk_name: string; parts: number; rows: number; min_window: string; max_window: string }[]> {
  return store.query(
    `SELECT disk_name, count() AS parts, sum(rows) AS rows, toString(min(min_time)) AS min_window, toString(max(max_time)) AS max_window
FROM system.parts WHERE database = {db:String} AND table = 'click_aggregates' AND active GROUP BY disk_name ORDER BY disk_name`, { db: DB });
}

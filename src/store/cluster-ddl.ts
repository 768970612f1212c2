// The schema on a ClickHouse cluster (ADCLICK_CLICKHOUSE_CLUSTER): every table of the single-
// server schema becomes a Replicated* local table in `adclick_local` on every replica (ON
// CLUSTER, so it is created once per cluster, and IF NOT EXISTS, so a re-run is harmless)
// plus a Distributed table under the name the store reads and writes (`adclick.<table>`),
// sharded by campaign where the table has one, else by the row's identity (the sorting key)
// so that the rows a ReplacingMergeTree collapses always meet on one shard. The reads do not
// depend on merges (argMax per key), so a read through the Distributed table equals the
// single-server read. Migrations keep their single-server SQL; this module rewrites it.
import { DB } from './migrations.ts';

export const LOCAL_DB = 'adclick_local';

/**
 * Sharding key per table. A table missing here fails the migration on a cluster: whoever
 * adds a table decides where its rows live.
 */
export const SHARDING_KEYS: Readonly<Record<string, string>> = {
  click_aggregates: 'campaign_id',
  late_clicks: 'campaign_id',
  raw_clicks: 'campaign_id',
  ad_owners: 'campaign_id',
  pipeline_watermarks: 'subtask',
  dead_letters: 'cityHash64(stage, source_topic, partition, offset)',
  api_keys: 'cityHash64(key_hash)',
  backfill_runs: 'generation',
  window_audit: 'cityHash64(window_start, bucket)',
  schema_migrations: 'id',
};

const CLUSTER_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function clusterNameProblem(cluster: string): string | null {
  return CLUSTER_NAME.test(cluster) ? null : `ADCLICK_CLICKHOUSE_CLUSTER must be a plain identifier (a cluster of remote_servers), got "${cluster}"`;
}

/** The ZooKeeper path of a replicated table: one per shard, macros filled in by each server. */
export function replicaPath(cluster: string, table: string): string {
  return `/clickhouse/${cluster}/tables/{shard}/${DB}/${table}`;
}

/**
 * The cluster form of one single-server statement: `CREATE DATABASE` for both databases,
 * `CREATE TABLE … ENGINE = <X>MergeTree(args)` as a replicated local table plus its
 * Distributed table. Anything else (an ALTER, a statement this module does not know) is
 * refused rather than run against one replica only.
 */
export function clusterStatements(sql: string, cluster: string): string[] {
  const bad = clusterNameProblem(cluster);
  if (bad) throw new Error(bad);
  const on = `ON CLUSTER ${cluster}`;
  if (new RegExp(`^\\s*CREATE DATABASE IF NOT EXISTS ${DB}\\s*$`).test(sql)) {
    return [`CREATE DATABASE IF NOT EXISTS ${LOCAL_DB} ${on}`, `CREATE DATABASE IF NOT EXISTS ${DB} ${on}`];
  }
  const head = new RegExp(`^\\s*CREATE TABLE IF NOT EXISTS ${DB}\\.(\\w+)\\s*\\(`).exec(sql);
  if (!head) throw new Error(`cannot run on a cluster (only CREATE DATABASE/TABLE IF NOT EXISTS ${DB}.… are rewritten): ${sql.slice(0, 80)}`);
  const table = head[1]!;
  const key = SHARDING_KEYS[table];
  if (!key) throw new Error(`table ${DB}.${table} has no sharding key for the cluster form (src/store/cluster-ddl.ts SHARDING_KEYS)`);
  const engine = /ENGINE\s*=\s*(\w*MergeTree)\(([^)]*)\)/.exec(sql);
  if (!engine) throw new Error(`table ${DB}.${table}: no MergeTree engine to replicate`);
  const args = [`'${replicaPath(cluster, table)}'`, `'{replica}'`, ...(engine[2]!.trim() ? [engine[2]!.trim()] : [])];
  const local = sql
    .replace(head[0], `CREATE TABLE IF NOT EXISTS ${LOCAL_DB}.${table} ${on} (`)
    .replace(engine[0], `ENGINE = Replicated${engine[1]}(${args.join(', ')})`);
  const distributed = `CREATE TABLE IF NOT EXISTS ${DB}.${table} ${on} AS ${LOCAL_DB}.${table}
ENGINE = Distributed(${cluster}, ${LOCAL_DB}, ${table}, ${key})`;
  return [local, distributed];
}

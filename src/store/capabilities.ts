// What a ClickHouse version can do, from its version string. Thresholds are the
// releases that introduced each feature; anything unparsable is treated as old.
import type { StoreCapabilities } from './store.ts';

export function parseVersion(version: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(version.trim());
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

function atLeast(v: [number, number], major: number, minor: number): boolean {
  return v[0] > major || (v[0] === major && v[1] >= minor);
}

export function capabilitiesFor(version: string): StoreCapabilities {
  const v = parseVersion(version);
  return Object.freeze({
    version,
    serverParams: atLeast(v, 19, 11),
    ttl: atLeast(v, 19, 6),
    storagePolicies: atLeast(v, 19, 15),
    insertDedupToken: atLeast(v, 22, 2),
    projections: atLeast(v, 24, 8),
  });
}

/** The capabilities this engine lacks, for one start-up notice. */
export function missingCapabilities(c: StoreCapabilities): string[] {
  const missing: string[] = [];
  if (!c.serverParams) missing.push('server-side query parameters (binding client-side, type-checked)');
  if (!c.ttl) missing.push('table TTL (retention not enforced by the engine)');
  if (!c.storagePolicies) missing.push('storage policies (no hot/cold volumes)');
  if (!c.insertDedupToken) missing.push('insert_deduplication_token (row-level idempotency only)');
  if (!c.projections) missing.push('projections on ReplacingMergeTree (late_clicks reads scan every late click of a granularity)');
  return missing;
}

/** Null when `policy` can be spliced into DDL as a bare identifier; else why not. */
export function policyNameProblem(policy: string): string | null {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(policy) ? null : `storage policy name "${policy}" is not a plain identifier`;
}

/**
 * Null when `policy` exists in the engine with a `cold` volume; else why not. `rows` is
 * the answer of STORAGE_POLICY_QUERY (system.storage_policies).
 */
export function storagePolicyProblem(policy: string, rows: readonly { policy_name: string; volume_name: string }[]): string | null {
  const bad = policyNameProblem(policy);
  if (bad) return bad;
  const volumes = rows.filter((r) => r.policy_name === policy).map((r) => r.volume_name);
  if (volumes.length === 0) return `storage policy "${policy}" is not defined in the ClickHouse configuration`;
  if (!volumes.includes('cold')) return `storage policy "${policy}" has no volume named "cold" (has: ${volumes.join(', ')})`;
  return null;
}

export const STORAGE_POLICY_QUERY = 'SELECT policy_name, volume_name FROM system.storage_policies';

/** The cluster definitions a server knows (remote_servers), one row per replica. */
export const CLUSTER_QUERY = 'SELECT cluster, shard_num, replica_num, host_address, port FROM system.clusters';
export interface ClusterRow { cluster: string; shard_num: number; replica_num: number; host_address: string; port: number }

/**
 * Null when the server at the store's URL defines `cluster` with at least `insertQuorum`
 * replicas in every shard; else why not (a typo in the name would otherwise surface as
 * every ON CLUSTER statement failing, a quorum above the replica count as every insert failing).
 */
export function clusterProblem(cluster: string, insertQuorum: number, rows: readonly ClusterRow[]): string | null {
  const mine = rows.filter((r) => r.cluster === cluster);
  if (mine.length === 0) {
    const known = [...new Set(rows.map((r) => r.cluster))];
    return `cluster "${cluster}" is not defined in the server's remote_servers (defines: ${known.join(', ') || 'none'})`;
  }
  const perShard = new Map<number, number>();
  for (const r of mine) perShard.set(Number(r.shard_num), (perShard.get(Number(r.shard_num)) ?? 0) + 1);
  const smallest = Math.min(...perShard.values());
  if (insertQuorum > smallest) return `ADCLICK_CLICKHOUSE_INSERT_QUORUM ${insertQuorum} exceeds the replicas of the smallest shard (${smallest})`;
  return null;
}

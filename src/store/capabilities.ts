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
  });
}

/** The capabilities this engine lacks, for one start-up notice. */
export function missingCapabilities(c: StoreCapabilities): string[] {
  const missing: string[] = [];
  if (!c.serverParams) missing.push('server-side query parameters (binding client-side, type-checked)');
  if (!c.ttl) missing.push('table TTL (retention not enforced by the engine)');
  if (!c.storagePolicies) missing.push('storage policies (no hot/cold volumes)');
  if (!c.insertDedupToken) missing.push('insert_deduplication_token (row-level idempotency only)');
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

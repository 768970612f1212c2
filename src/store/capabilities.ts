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

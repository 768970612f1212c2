// An in-memory Store for the sink's unit tests: records every insert (and the order of
// inserts and failures in `events`), can fail the first N inserts.
import type { Store } from '../../../src/store/store.ts';

export function fakeStore(events: string[] = [], failTimes = 0) {
  const inserted: { table: string; rows: readonly Record<string, unknown>[] }[] = [];
  let failures = failTimes;
  const store: Store = {
    storagePolicy: '',
    kind: 'server',
    capabilities: { version: 'fake', serverParams: true, ttl: true, storagePolicies: true, insertDedupToken: true, projections: true },
    async query() { return []; },
    async insert(table, rows) {
      if (failures > 0) { failures--; events.push('insert-failed'); throw new Error('ClickHouse down'); }
      events.push(`insert:${table}`);
      inserted.push({ table, rows });
    },
    async command() {},
    async ping() { return true; },
    async close() {},
  };
  return { store, inserted };
}


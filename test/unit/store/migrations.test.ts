import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../../src/shared/logger.ts';
import { capabilitiesFor } from '../../../src/store/capabilities.ts';
import { migrate, MIGRATIONS } from '../../../src/store/migrations.ts';
import type { Store } from '../../../src/store/store.ts';

// Records statements; remembers schema_migrations inserts like the real table would.
function recordingStore(version: string) {
  const commands: string[] = [];
  const recorded: number[] = [];
  const store: Store = {
    storagePolicy: '',
    kind: 'server',
    capabilities: capabilitiesFor(version),
    async query<T>(sql: string) {
      assert.match(sql, /schema_migrations/);
      return recorded.map((id) => ({ id })) as T[];
    },
    async insert(table, rows) {
      assert.equal(table, 'adclick.schema_migrations');
      for (const r of rows) recorded.push(Number(r.id));
    },
    async command(sql) { commands.push(sql); },
    async ping() { return true; },
    async close() {},
  };
  return { store, commands, recorded };
}

const logger = createLogger('test', 'silent');

test('applying twice runs each migration once, in order', async () => {
  const { store, commands, recorded } = recordingStore('26.7.2');
  const first = await migrate(store, logger);
  assert.deepEqual(first.applied, MIGRATIONS.map((m) => m.id));
  const n = commands.length;
  const second = await migrate(store, logger);
  assert.deepEqual(second.applied, []);
  assert.deepEqual(recorded, MIGRATIONS.map((m) => m.id));
  // The second run only re-issues the two bootstrap statements (both IF NOT EXISTS).
  assert.equal(commands.length, n + 2);
  for (const c of commands) assert.match(c, /IF NOT EXISTS|^ALTER TABLE adclick\.late_clicks (MODIFY SETTING|MATERIALIZE PROJECTION) /);
});

test('late_clicks projection: built on engines that have it, skipped with a notice on 18.16 and on a cluster', async () => {
  const modern = recordingStore('26.7.2');
  await migrate(modern.store, logger);
  const alters = modern.commands.filter((c) => /^ALTER TABLE adclick\.late_clicks/.test(c));
  assert.equal(alters.length, 3);
  assert.match(alters[0]!, /deduplicate_merge_projection_mode = 'rebuild'/);
  assert.match(alters[1]!, /ADD PROJECTION IF NOT EXISTS late_by_owner \(SELECT \* ORDER BY advertiser_id, campaign_id, granularity, window_start, ad_id\)/);
  assert.match(alters[2]!, /MATERIALIZE PROJECTION late_by_owner/);
  for (const version of ['18.16.1', '24.3.1']) {
    const old = recordingStore(version);
    const r = await migrate(old.store, logger);
    assert.ok(!old.commands.some((c) => /PROJECTION/.test(c)), version);
    assert.ok(r.notices.some((n) => /late_clicks: projection late_by_owner skipped \(engine/.test(n)), version);
    assert.ok(r.applied.includes(10), `${version}: recorded as applied (skipped variant), not retried at every start`);
  }
});

test('capability variants: TTL only where supported, with a notice otherwise', async () => {
  const modern = recordingStore('26.7.2');
  const r1 = await migrate(modern.store, logger);
  assert.ok(modern.commands.some((c) => /click_aggregates[\s\S]*TTL window_start \+ INTERVAL 2 YEAR/.test(c)));
  assert.ok(r1.notices.some((n) => /hot\/cold/.test(n)));
  const old = recordingStore('18.16.1');
  const r2 = await migrate(old.store, logger);
  assert.ok(!old.commands.some((c) => /\bTTL\b/.test(c)));
  assert.ok(r2.notices.some((n) => /click_aggregates: TTL .* skipped/.test(n)));
  const tiered = recordingStore('24.3.1');
  await migrate(tiered.store, logger, { storagePolicy: 'hot_cold' });
  assert.ok(tiered.commands.some((c) => /TO VOLUME 'cold'/.test(c) && /storage_policy = 'hot_cold'/.test(c)));
  await assert.rejects(migrate(recordingStore('24.3').store, logger, { storagePolicy: "x'; DROP" }), /identifier/);
});

test('migration ids are unique and increasing', () => {
  const ids = MIGRATIONS.map((m) => m.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
  assert.equal(new Set(ids).size, ids.length);
});

test('capabilities from versions', () => {
  assert.deepEqual(capabilitiesFor('18.16.1'), { version: '18.16.1', serverParams: false, ttl: false, storagePolicies: false, insertDedupToken: false, projections: false });
  assert.deepEqual(capabilitiesFor('19.11.3.11'), { version: '19.11.3.11', serverParams: true, ttl: true, storagePolicies: false, insertDedupToken: false, projections: false });
  assert.equal(capabilitiesFor('26.7.2.1').insertDedupToken, true);
  assert.equal(capabilitiesFor('garbage').ttl, false);
});

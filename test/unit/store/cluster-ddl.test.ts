// The cluster form of the schema (cluster-ddl.ts) and the cluster checks at open
// (capabilities.ts clusterProblem), without a server: the statements are checked as text
// here; test/cluster/clickhouse-cluster.test.ts runs them on a real 2×2 cluster.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterProblem, capabilitiesFor } from '../../../src/store/capabilities.ts';
import { clusterStatements, LOCAL_DB, SHARDING_KEYS } from '../../../src/store/cluster-ddl.ts';
import { DB, migrate, MIGRATIONS } from '../../../src/store/migrations.ts';
import { clusterSettings } from '../../../src/store/server-store.ts';
import type { Store } from '../../../src/store/store.ts';
import { createLogger } from '../../../src/shared/logger.ts';

const caps = capabilitiesFor('18.16.1');

test('every migrated table has a sharding key; the aggregates, late and raw clicks and owners are sharded by campaign', () => {
  for (const m of MIGRATIONS) {
    for (const sql of m.plan(caps, {}).statements) {
      const t = /CREATE TABLE IF NOT EXISTS adclick\.(\w+)/.exec(sql)?.[1];
      assert.ok(t && SHARDING_KEYS[t], `${m.name}: ${t}`);
    }
  }
  for (const t of ['click_aggregates', 'late_clicks', 'raw_clicks', 'ad_owners']) assert.equal(SHARDING_KEYS[t], 'campaign_id');
});

test('a CREATE TABLE becomes a replicated local table ON CLUSTER plus a Distributed table under the same name', () => {
  const sql = MIGRATIONS[0]!.plan(caps, {}).statements[0]!;
  const [local, dist] = clusterStatements(sql, 'c1');
  assert.match(local!, new RegExp(`^CREATE TABLE IF NOT EXISTS ${LOCAL_DB}\\.click_aggregates ON CLUSTER c1 \\(`));
  assert.match(local!, /ENGINE = ReplicatedReplacingMergeTree\('\/clickhouse\/c1\/tables\/\{shard\}\/adclick\/click_aggregates', '\{replica\}', version\)/);
  assert.match(local!, /ORDER BY \(advertiser_id, campaign_id, granularity, window_start, ad_id\)/, 'the rest of the statement is kept');
  assert.equal(dist, `CREATE TABLE IF NOT EXISTS ${DB}.click_aggregates ON CLUSTER c1 AS ${LOCAL_DB}.click_aggregates\nENGINE = Distributed(c1, ${LOCAL_DB}, click_aggregates, campaign_id)`);
  // An engine without a version column keeps no extra argument.
  const lateSql = MIGRATIONS.find((m) => m.name === 'late_clicks')!.plan(caps, {}).statements[0]!;
  assert.match(clusterStatements(lateSql, 'c1')[0]!, /ReplicatedReplacingMergeTree\('[^']+', '\{replica\}'\)/);
});

test('CREATE DATABASE creates both databases on the cluster; anything else, or a bad name, is refused', () => {
  assert.deepEqual(clusterStatements(`CREATE DATABASE IF NOT EXISTS ${DB}`, 'c1'), [`CREATE DATABASE IF NOT EXISTS ${LOCAL_DB} ON CLUSTER c1`, `CREATE DATABASE IF NOT EXISTS ${DB} ON CLUSTER c1`]);
  assert.throws(() => clusterStatements(`ALTER TABLE ${DB}.click_aggregates MODIFY TTL x`, 'c1'), /cannot run on a cluster/);
  assert.throws(() => clusterStatements(`CREATE TABLE IF NOT EXISTS ${DB}.new_table (a UInt8) ENGINE = MergeTree() ORDER BY a`, 'c1'), /no sharding key/);
  assert.throws(() => clusterStatements(`CREATE DATABASE IF NOT EXISTS ${DB}`, 'c1; DROP'), /plain identifier/);
});

/** A Store that records statements (unit level: what migrate sends). */
function recorder(cluster?: string, capabilities = caps): Store & { sent: string[] } {
  const sent: string[] = [];
  return {
    kind: 'server', capabilities, storagePolicy: '', cluster, sent,
    async query() { return [] as never[]; },
    async insert(table) { sent.push(`INSERT ${table}`); },
    async command(sql) { sent.push(sql); },
    async ping() { return true; },
    async close() {},
  };
}

test('migrate on a single server sends the single-server SQL unchanged; on a cluster, the ON CLUSTER form', async () => {
  const log = createLogger('test', 'silent');
  const single = recorder();
  await migrate(single, log);
  assert.ok(single.sent.every((s) => !/ON CLUSTER|Replicated|Distributed|adclick_local/.test(s)), single.sent.join('\n'));
  assert.equal(single.sent.filter((s) => s.startsWith('CREATE TABLE')).length, 10);
  const onCluster = recorder('c1');
  await migrate(onCluster, log);
  const creates = onCluster.sent.filter((s) => s.startsWith('CREATE'));
  assert.equal(creates.length, 2 + 2 * 10);
  assert.ok(creates.every((s) => s.includes('ON CLUSTER c1')));
  assert.equal(onCluster.sent.filter((s) => s.startsWith('INSERT')).length, MIGRATIONS.length, 'one record per migration, through the Distributed table');
  // A cluster of servers that have projections: the late_clicks projection (an ALTER) is left out, with a notice.
  const modern = recorder('c1', capabilitiesFor('26.7.2'));
  const r = await migrate(modern, log);
  assert.ok(!modern.sent.some((s) => s.startsWith('ALTER')));
  assert.ok(r.notices.some((n) => /late_clicks: projection late_by_owner skipped on cluster c1/.test(n)));
});

test('clusterProblem: unknown cluster, a quorum above the replicas of a shard; none for a 2×2 cluster', () => {
  const rows = [1, 2].flatMap((s) => [1, 2].map((r) => ({ cluster: 'c1', shard_num: s, replica_num: r, host_address: `10.0.0.${s}${r}`, port: 9000 })));
  assert.equal(clusterProblem('c1', 1, rows), null);
  assert.equal(clusterProblem('c1', 2, rows), null);
  assert.match(clusterProblem('c1', 3, rows)!, /exceeds the replicas of the smallest shard \(2\)/);
  assert.match(clusterProblem('nope', 1, rows)!, /"nope" is not defined .*defines: c1/);
});

test('cluster settings: synchronous distributed inserts, replicas in order, global IN; insert_quorum only above 1', () => {
  assert.deepEqual(clusterSettings(1), { insert_distributed_sync: 1, load_balancing: 'in_order', distributed_product_mode: 'global' });
  assert.equal((clusterSettings(2) as Record<string, unknown>).insert_quorum, 2);
});

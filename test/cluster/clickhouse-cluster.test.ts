// The ClickHouse tier of the cluster form on real engines: 3 ZooKeeper JVMs, 2 shards × 2
// replicas of clickhouse-server, each in its own network namespace. The store's behavioural
// suite (the one chdb and a single server pass) runs through the cluster's Distributed
// tables; then migrations once per cluster, the sink's writes against a ledger, and a
// replica killed with -9 while writes and reads go on, restarted, and caught up.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { buildBatch, writeBatch, type SinkMessage } from '../../src/sink/batch.ts';
import { WindowAggregate } from '../../src/shared/proto.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { LOCAL_DB } from '../../src/store/cluster-ddl.ts';
import { DB, migrate, MIGRATIONS } from '../../src/store/migrations.ts';
import { openStore } from '../../src/store/open-store.ts';
import { storeQueryRepository } from '../../src/store/query-repository.ts';
import type { Store } from '../../src/store/store.ts';
import { storeSuite } from '../integration/store-suite.ts';
import { startTestClickHouseCluster, TEST_CH_CLUSTER, type TestClickHouseCluster } from './test-ch-cluster.ts';

const logger = createLogger('test', 'silent');
// Top level, as the Kafka cluster test does: `after` registered here runs once the file's
// tests are done (registered inside a `before` hook it would run right after that hook).
const cluster: TestClickHouseCluster = await startTestClickHouseCluster({ after });
console.log(`# ClickHouse cluster up: ZooKeeper quorum in ${(cluster.zkStartMs / 1000).toFixed(1)} s, 4 servers answering in ${(cluster.chStartMs / 1000).toFixed(1)} s`);

/** The store as `serving` opens it: one node's URL and the cluster name. */
async function openClusterStore(node = 'ch-1-1'): Promise<Store> {
  return openStore({ clickhouseUrl: cluster.clickhouse.url(node), clickhouseCluster: TEST_CH_CLUSTER, clickhouseTimeoutMs: 300_000, dataDir: '/nonexistent' }, logger);
}

/** One replica on its own (no cluster): what its local tables hold. */
async function openReplica(node: string): Promise<Store> {
  return openStore({ clickhouseUrl: cluster.clickhouse.url(node), clickhouseTimeoutMs: 60_000, dataDir: '/nonexistent' }, logger);
}

storeSuite('clickhouse cluster (2 shards × 2 replicas)', () => openClusterStore(), (s) => s.close());

test('a cluster name the server does not define, or a quorum above its replicas, is refused at open with the reason', async () => {
  const url = cluster.clickhouse.url('ch-1-1');
  await assert.rejects(openStore({ clickhouseUrl: url, clickhouseCluster: 'adclick_tset', dataDir: '/nonexistent' }, logger),
    /ADCLICK_CLICKHOUSE_CLUSTER: cluster "adclick_tset" is not defined in the server's remote_servers \(defines: .*adclick_test/);
  await assert.rejects(openStore({ clickhouseUrl: url, clickhouseCluster: TEST_CH_CLUSTER, clickhouseInsertQuorum: 3, dataDir: '/nonexistent' }, logger),
    /INSERT_QUORUM 3 exceeds the replicas of the smallest shard \(2\)/);
});

test('migrations run once per cluster: a second node migrating finds them applied; every replica has every table', async () => {
  const other = await openClusterStore('ch-2-2');
  try {
    const again = await migrate(other, logger);
    assert.deepEqual(again.applied, [], 'the suite above already migrated the cluster through ch-1-1');
    assert.deepEqual(again.skipped, MIGRATIONS.map((m) => m.id));
  } finally {
    await other.close();
  }
  const expected = ['ad_owners', 'api_keys', 'backfill_runs', 'click_aggregates', 'dead_letters', 'late_clicks', 'pipeline_watermarks', 'raw_clicks', 'schema_migrations', 'window_audit'];
  for (const r of cluster.clickhouse.layout) {
    const s = await openReplica(r.node.name);
    try {
      const rows = await s.query<{ database: string; name: string; engine: string }>(
        `SELECT database, name, engine FROM system.tables WHERE database IN ({a:String}, {b:String}) ORDER BY database, name`, { a: DB, b: LOCAL_DB });
      const dist = rows.filter((x) => x.database === DB);
      const local = rows.filter((x) => x.database === LOCAL_DB);
      assert.deepEqual(dist.map((x) => x.name), expected, `${r.node.name}: Distributed tables`);
      assert.ok(dist.every((x) => x.engine === 'Distributed'), `${r.node.name}: ${JSON.stringify(dist)}`);
      assert.deepEqual(local.map((x) => x.name), expected, `${r.node.name}: local tables`);
      assert.ok(local.every((x) => x.engine === 'ReplicatedReplacingMergeTree'), `${r.node.name}: ${JSON.stringify(local)}`);
      // 18.16 has no getMacro(); system.macros is there.
      const macros = await s.query<{ macro: string; substitution: string }>(`SELECT macro, substitution FROM system.macros ORDER BY macro`);
      assert.deepEqual(macros, [{ macro: 'replica', substitution: r.node.name }, { macro: 'shard', substitution: String(r.shard) }]);
      // Each local table is a replica of its shard's table, both replicas registered in ZooKeeper.
      const reps = await s.query<{ table: string; zookeeper_path: string; total_replicas: number; is_readonly: number }>(
        `SELECT table, zookeeper_path, total_replicas, is_readonly FROM system.replicas WHERE database = {db:String} ORDER BY table`, { db: LOCAL_DB });
      assert.deepEqual(reps.map((x) => x.table), expected);
      for (const x of reps) {
        assert.equal(x.zookeeper_path, `/clickhouse/${TEST_CH_CLUSTER}/tables/${r.shard}/${DB}/${x.table}`);
        assert.equal(Number(x.total_replicas), 2, `${r.node.name} ${x.table}`);
        assert.equal(Number(x.is_readonly), 0, `${r.node.name} ${x.table}`);
      }
    } finally {
      await s.close();
    }
  }
});

// ---- the sink's writes against a ledger -------------------------------------------------

const MIN = 60_000;
const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3 * 3_600_000;
let offset = 1_000_000;

function aggMsg(p: { adv: number; camp: number; ad: number; ws: number; clicks: number; final: boolean }): SinkMessage {
  return {
    topic: 'click-aggregates', partition: 0, offset: String(offset++), key: null,
    value: Buffer.from(WindowAggregate.encode({
      granularity: 1, adId: p.ad, campaignId: p.camp, advertiserId: p.adv, windowStartMs: p.ws, windowEndMs: p.ws + MIN,
      clicks: p.clicks, final: p.final, watermarkMs: p.ws, emittedAtMs: p.ws + MIN, maxReceivedAtMs: p.ws + 1,
    }).finish()),
  };
}

/**
 * Ground truth: the final count per (campaign, ad, 1m window). Every window is emitted as the
 * Flink job does: provisional counts growing, then the final one; some emissions are
 * re-delivered (the sink's at-least-once writes).
 */
class Ledger {
  readonly finals = new Map<string, { camp: number; ad: number; clicks: number }>();
  constructor(readonly adv: number) {}
  /** The messages of `windows` fresh windows spread over `camps` campaigns × `ads` ads. */
  batch(round: number, camps: number, ads: number, windows: number): SinkMessage[] {
    const out: SinkMessage[] = [];
    for (let w = 0; w < windows; w++) {
      const camp = 1000 + ((round * 7 + w) % camps);
      const ad = camp * 100 + ((round + w) % ads);
      const ws = T0 + (round * windows + w) * MIN;
      const final = 1 + ((round * 31 + w * 17) % 50);
      const provisional = Math.max(1, Math.floor(final / 2));
      out.push(this.msg(camp, ad, ws, provisional, false), this.msg(camp, ad, ws, final, false), this.msg(camp, ad, ws, final, true));
      if (w % 5 === 0) out.push(this.msg(camp, ad, ws, provisional, false)); // a stale re-delivery: must not win
      this.finals.set(`${camp}/${ad}/${ws}`, { camp, ad, clicks: final });
    }
    return out;
  }
  private msg(camp: number, ad: number, ws: number, clicks: number, final: boolean): SinkMessage {
    return aggMsg({ adv: this.adv, camp, ad, ws, clicks, final });
  }
  campaignTotals(): Map<number, number> {
    const m = new Map<number, number>();
    for (const v of this.finals.values()) m.set(v.camp, (m.get(v.camp) ?? 0) + v.clicks);
    return m;
  }
  adTotals(camp: number): Map<number, number> {
    const m = new Map<number, number>();
    for (const v of this.finals.values()) if (v.camp === camp) m.set(v.ad, (m.get(v.ad) ?? 0) + v.clicks);
    return m;
  }
  get clicks(): number {
    let n = 0;
    for (const v of this.finals.values()) n += v.clicks;
    return n;
  }
}

type Repo = ReturnType<typeof storeQueryRepository>;

async function readCampaignTotals(repo: Repo, adv: number): Promise<Map<number, number>> {
  return new Map((await repo.campaignTotals(adv)).map((t) => [t.campaignId, t.clicks]));
}

function sameMap(a: Map<number, number>, b: Map<number, number>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
}

test('the sink\'s writes through the cluster equal a ledger: campaign and ad totals, each campaign on one shard', async () => {
  const ledger = new Ledger(910_001);
  const store = await openClusterStore();
  try {
    const repo = storeQueryRepository(store);
    for (let round = 0; round < 6; round++) await writeBatch(store, buildBatch(ledger.batch(round, 8, 3, 40)));
    const got = await readCampaignTotals(repo, ledger.adv);
    assert.deepEqual([...got].sort((a, b) => a[0] - b[0]), [...ledger.campaignTotals()].sort((a, b) => a[0] - b[0]));
    for (const camp of ledger.campaignTotals().keys()) {
      const ads = await repo.adTotals({ advertiserId: ledger.adv, campaignId: camp, granularity: '1m', fromMs: T0, toMs: T0 + 6 * 40 * MIN, limit: 100 });
      assert.deepEqual(new Map(ads.map((a) => [a.adId, a.clicks])), ledger.adTotals(camp), `campaign ${camp}`);
    }
    // Sharded by campaign: each campaign's rows live on exactly one shard, both shards are used.
    const shardOf = new Map<number, Set<number>>();
    for (const r of cluster.clickhouse.layout.filter((x) => x.replica === 1)) {
      const s = await openReplica(r.node.name);
      try {
        const rows = await s.query<{ c: number }>(`SELECT DISTINCT campaign_id AS c FROM ${LOCAL_DB}.click_aggregates WHERE advertiser_id = {adv:UInt64}`, { adv: ledger.adv });
        for (const x of rows) shardOf.set(Number(x.c), new Set([...(shardOf.get(Number(x.c)) ?? []), r.shard]));
      } finally {
        await s.close();
      }
    }
    assert.equal(shardOf.size, 8);
    assert.ok([...shardOf.values()].every((s) => s.size === 1), JSON.stringify([...shardOf].map(([k, v]) => [k, [...v]])));
    assert.equal(new Set([...shardOf.values()].map((s) => [...s][0])).size, 2, 'both shards hold campaigns');
    console.log(`# ledger: ${ledger.finals.size} windows, ${ledger.clicks} clicks over 8 campaigns; cluster totals equal`);
  } finally {
    await store.close();
  }
});

/** count and an order-independent checksum of one replica's local aggregates. */
async function localDigest(node: string): Promise<{ rows: number; sum: string }> {
  const s = await openReplica(node);
  try {
    const [r] = await s.query<{ rows: number; sum: string }>(
      `SELECT count() AS rows, toString(sum(cityHash64(granularity, advertiser_id, campaign_id, ad_id, window_start, clicks, final, version))) AS sum FROM ${LOCAL_DB}.click_aggregates`);
    return { rows: Number(r!.rows), sum: String(r!.sum) };
  } finally {
    await s.close();
  }
}

test('kill -9 a replica: writes and reads keep going through its peer; restarted, it catches up', async () => {
  const ledger = new Ledger(910_002);
  const victim = 'ch-2-1';
  const peer = 'ch-2-2';
  const store = await openClusterStore('ch-1-1');
  const repo = storeQueryRepository(store);
  const counts = { writesBefore: 0, writesDuring: 0, writeErrors: 0, reads: 0, readErrors: 0, readsEqual: 0, readsDiffer: 0 };
  let round = 0;
  // As the sink does: a failed batch is written again (bounded here) until it is stored.
  const writeStored = async (windows: number): Promise<number> => {
    const batch = buildBatch(ledger.batch(round++, 8, 3, windows));
    for (let attempt = 1; ; attempt++) {
      try {
        await writeBatch(store, batch);
        return attempt;
      } catch (err) {
        if (attempt >= 10) throw err;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };
  const writeAndRead = async () => {
    counts.writeErrors += (await writeStored(10)) - 1;
    counts.reads++;
    try {
      const got = await readCampaignTotals(repo, ledger.adv);
      if (sameMap(got, ledger.campaignTotals())) counts.readsEqual++; else counts.readsDiffer++;
    } catch {
      counts.readErrors++;
    }
  };
  let inFlightAttempts = 0;
  try {
    for (let i = 0; i < 5; i++) { await writeAndRead(); counts.writesBefore++; }
    // The kill lands while a larger batch (200 windows) is being written.
    const inFlight = writeStored(200);
    await new Promise((r) => setTimeout(r, 30));
    await cluster.clickhouse.kill(victim);
    inFlightAttempts = await inFlight;
    assert.equal(await cluster.clickhouse.answers(victim), false, 'the victim is down');
    const faultStart = Date.now();
    // Bounded: 20 rounds, 2 minutes at most.
    for (let i = 0; i < 20 && Date.now() - faultStart < 120_000; i++) { await writeAndRead(); counts.writesDuring++; }
    const t0 = Date.now();
    await cluster.clickhouse.startReplica(victim);
    const restartMs = Date.now() - t0;
    // Catch-up: the victim's local table equals its peer's (no writes meanwhile).
    const deadline = Date.now() + 180_000;
    let v = await localDigest(victim);
    let p = await localDigest(peer);
    while ((v.rows !== p.rows || v.sum !== p.sum) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      [v, p] = [await localDigest(victim), await localDigest(peer)];
    }
    const catchUpMs = Date.now() - t0 - restartMs;
    console.log(`# replica fault: ${counts.writesBefore} batches before; the batch in flight at the kill stored on attempt ${inFlightAttempts}; ${counts.writesDuring} during (${counts.writeErrors} failed attempts); ${counts.reads} reads, ${counts.readErrors} failed, ${counts.readsEqual} equal to the ledger, ${counts.readsDiffer} not; restart ${(restartMs / 1000).toFixed(1)} s, catch-up ${(catchUpMs / 1000).toFixed(1)} s after /ping (${v.rows} rows on ${victim}, ${p.rows} on ${peer})`);
    assert.deepEqual(v, p, `${victim} caught up with ${peer}`);
    assert.ok(p.rows > 0);
    assert.equal(counts.writeErrors, 0, 'writes kept going through the surviving replica');
    assert.equal(counts.readErrors, 0, 'reads kept answering');
    // After the catch-up the cluster answers exactly the ledger, through either entry node.
    assert.deepEqual(await readCampaignTotals(repo, ledger.adv), ledger.campaignTotals());
    const other = await openClusterStore(victim);
    try {
      assert.deepEqual(await readCampaignTotals(storeQueryRepository(other), ledger.adv), ledger.campaignTotals());
    } finally {
      await other.close();
    }
  } finally {
    await store.close();
  }
});

test('ADCLICK_CLICKHOUSE_INSERT_QUORUM=2: with a replica of a shard down its writes are refused, not acknowledged; back up, the retried batch is stored', async () => {
  const ledger = new Ledger(910_003);
  const c = cluster.clickhouse;
  const store = await openStore({ clickhouseUrl: c.url('ch-1-1'), clickhouseCluster: TEST_CH_CLUSTER, clickhouseInsertQuorum: 2, clickhouseTimeoutMs: 120_000, dataDir: '/nonexistent' }, logger);
  try {
    await migrate(store, logger); // idempotent; lets this test run alone (--test-name-pattern)
    await writeBatch(store, buildBatch(ledger.batch(0, 8, 3, 10)));
    await c.kill('ch-1-2');
    // The quorum counts replicas active in ZooKeeper: the killed one leaves when its session expires.
    const s11 = await openReplica('ch-1-1');
    const t0 = Date.now();
    try {
      for (;;) {
        const [r] = await s11.query<{ a: number }>(`SELECT min(active_replicas) AS a FROM system.replicas WHERE database = {db:String}`, { db: LOCAL_DB });
        if (Number(r!.a) < 2) break;
        if (Date.now() - t0 > 120_000) assert.fail('ch-1-2 still active in ZooKeeper after 120 s');
        await new Promise((r) => setTimeout(r, 1000));
      }
    } finally {
      await s11.close();
    }
    const sessionGoneMs = Date.now() - t0;
    const batch = buildBatch(ledger.batch(1, 8, 3, 10));
    const err = await writeBatch(store, batch).then(() => undefined, (e: Error) => e);
    assert.ok(err, 'a write to a shard below its quorum is refused');
    assert.match(err.message, /quorum/i);
    const t1 = Date.now();
    await c.startReplica('ch-1-2');
    // As the sink does: the refused batch is retried until stored (bounded).
    let attempts = 0;
    for (;;) {
      attempts++;
      try {
        await writeBatch(store, batch);
        break;
      } catch (e) {
        if (Date.now() - t1 > 180_000) throw e;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    const storedMs = Date.now() - t1;
    assert.deepEqual(await readCampaignTotals(storeQueryRepository(store), ledger.adv), ledger.campaignTotals());
    console.log(`# insert quorum 2: ch-1-2 left ZooKeeper ${(sessionGoneMs / 1000).toFixed(1)} s after the kill; the write was refused (${err.message.split('\n')[0]!.slice(0, 140)}); stored on attempt ${attempts}, ${(storedMs / 1000).toFixed(1)} s after the restart; totals equal the ledger`);
  } finally {
    await store.close();
  }
});

// The ClickHouse tier of `adclick cluster up|status`: the ZooKeeper ensemble, then 2 shards ×
// 2 replicas of clickhouse-server, then the schema migrated once through one node (ON
// CLUSTER). cluster-command.ts only adds these node names to the topology and calls
// start/status; everything else about the tier lives here and in its modules.
import { join } from 'node:path';
import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { httpProbe } from '../stack/health.ts';
import { migrate } from '../store/migrations.ts';
import { openStore } from '../store/open-store.ts';
import { CH_HTTP_PORT, ClickHouseCluster, clickhouseNodeNames } from './clickhouse-cluster.ts';
import type { ClusterNode, Topology } from './topology.ts';
import { ensureZooKeeperDist, ZooKeeperEnsemble, zookeeperMode } from './zookeeper.ts';

const ZK_NODES = ['zk-1', 'zk-2', 'zk-3'];
/** Node names this tier adds to the cluster topology, in order. */
export const CLICKHOUSE_TIER_NODES: readonly string[] = [...ZK_NODES, ...clickhouseNodeNames(2, 2)];

/** The cluster name `cluster up` declares: ADCLICK_CLICKHOUSE_CLUSTER, or `adclick`. */
export function tierClusterName(config: Pick<Config, 'clickhouseCluster'>): string {
  return config.clickhouseCluster || 'adclick';
}

const isZk = (n: ClusterNode) => ZK_NODES.includes(n.name);
const isCh = (n: ClusterNode) => /^ch-\d+-\d+$/.test(n.name);

export interface ClickHouseTier {
  readonly zookeeper: ZooKeeperEnsemble;
  readonly clickhouse: ClickHouseCluster;
  /** What the serving processes set: CLICKHOUSE_URL and ADCLICK_CLICKHOUSE_CLUSTER. */
  readonly clientEnv: string;
  stop(): Promise<void>;
  killNow(): void;
  render(): string[];
}

/**
 * Construct the tier (nothing started) so the caller's stop and exit hooks can reach it
 * before start() begins; start() brings up ZooKeeper, the servers and the schema.
 */
export function clickhouseTier(o: { config: Config; topology: Topology; stateDir: string; logger: Logger }): ClickHouseTier & { start(): Promise<void> } {
  const cluster = tierClusterName(o.config);
  const zkNodes = o.topology.nodes.filter(isZk);
  const chNodes = o.topology.nodes.filter(isCh);
  let zookeeper: ZooKeeperEnsemble | undefined;
  const clickhouse = new ClickHouseCluster({ stateDir: o.stateDir, nodes: chNodes, zookeeper: zkNodes, cluster, network: o.topology.subnet, logger: o.logger, readyTimeoutMs: 300_000 });
  const nsOf = (name: string) => o.topology.nodes.find((n) => n.name === name)?.netns ?? '-';
  const clientEnv = `CLICKHOUSE_URL=${clickhouse.url()} ADCLICK_CLICKHOUSE_CLUSTER=${cluster}`;
  const tier = {
    get zookeeper() {
      if (!zookeeper) throw new Error('ZooKeeper not started');
      return zookeeper;
    },
    clickhouse,
    clientEnv,
    async start() {
      const dist = await ensureZooKeeperDist({ cacheDir: join(o.config.dataDir, 'cache'), version: o.config.zookeeperVersion, logger: o.logger });
      zookeeper = new ZooKeeperEnsemble({ dist, stateDir: o.stateDir, nodes: zkNodes, logger: o.logger, readyTimeoutMs: 300_000 });
      await zookeeper.start();
      await clickhouse.start();
      // Once per cluster: ON CLUSTER DDL through one node; idempotent on every later `up`.
      const store = await openStore({ ...o.config, clickhouseUrl: clickhouse.url(), clickhouseCluster: cluster, clickhouseTimeoutMs: Math.max(o.config.clickhouseTimeoutMs, 300_000) }, o.logger);
      try {
        await migrate(store, o.logger);
      } finally {
        await store.close();
      }
    },
    async stop() {
      await clickhouse.stop();
      await zookeeper?.stop();
    },
    killNow() {
      clickhouse.killNow();
      zookeeper?.killNow();
    },
    render() {
      return [
        ...(zookeeper?.status() ?? []).map((n) => `  ${n.name.padEnd(8)} ${n.address.padEnd(15)} ${nsOf(n.name).padEnd(22)} pid ${n.pid ?? '-'}  zookeeper`),
        ...clickhouse.status().map((n) => `  ${n.name.padEnd(8)} ${n.address.padEnd(15)} ${nsOf(n.name).padEnd(22)} pid ${n.pid ?? '-'}  clickhouse shard ${n.shard} replica ${n.replica}`),
        `  ClickHouse: cluster ${cluster}, 2 shards × 2 replicas (ReplicatedReplacingMergeTree + Distributed, sharded by campaign), schema migrated`,
        `  serving: ${clientEnv}`,
      ];
    },
  };
  return tier;
}

/** One status word per node of this tier; undefined for nodes of other tiers. */
export async function clickhouseTierNodeStatus(n: ClusterNode): Promise<{ answers: boolean; text: string } | undefined> {
  if (isZk(n)) {
    const mode = await zookeeperMode(n.address);
    return { answers: !!mode, text: mode ? `zookeeper ${mode}` : 'zookeeper not answering' };
  }
  if (isCh(n)) {
    const ok = await httpProbe(`http://${n.address}:${CH_HTTP_PORT}/ping`, 2000);
    return { answers: ok, text: ok ? 'clickhouse answering' : 'clickhouse not answering' };
  }
  return undefined;
}

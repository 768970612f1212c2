// A throwaway ClickHouse cluster for the cluster tests: 3 ZooKeeper JVMs and 2 shards × 2
// replicas of clickhouse-server, each in its own namespace on a random private /24 (so it
// can run next to `adclick cluster up` or another test), torn down in the caller's `after`
// hook, as a last resort on exit or a signal, and otherwise by the next run (testStateDir).
import { rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ClickHouseCluster, clickhouseNodeNames } from '../../src/cluster/clickhouse-cluster.ts';
import { createNetwork, destroyNetwork, destroyNetworkSync, planTopology, type Topology } from '../../src/cluster/topology.ts';
import { ensureZooKeeperDist, ZooKeeperEnsemble } from '../../src/cluster/zookeeper.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { onExitOrSignal, randomTopologyName, testStateDir } from './test-cluster.ts';

export const TEST_CH_CLUSTER = 'adclick_test';

export interface TestClickHouseCluster {
  readonly zookeeper: ZooKeeperEnsemble;
  readonly clickhouse: ClickHouseCluster;
  readonly topology: Topology;
  readonly stateDir: string;
  /** Milliseconds from spawning the ZooKeeper JVMs to all of them in a quorum. */
  readonly zkStartMs: number;
  /** Milliseconds from spawning the four servers to all four answering /ping. */
  readonly chStartMs: number;
  stop(): Promise<void>;
}

export async function startTestClickHouseCluster(hooks: { after(fn: () => unknown): void }): Promise<TestClickHouseCluster> {
  const config = loadConfig();
  const log = createLogger('test-ch-cluster', 'warn');
  const dist = await ensureZooKeeperDist({ cacheDir: join(config.dataDir, 'cache'), version: config.zookeeperVersion });
  const stateDir = await testStateDir('clickhouse');
  const stateFile = join(stateDir, 'network.json');
  const zkNames = ['zk-1', 'zk-2', 'zk-3'];
  const topology = planTopology({ ...randomTopologyName(), nodes: [...zkNames, ...clickhouseNodeNames(2, 2)] });
  const zkNodes = topology.nodes.filter((n) => zkNames.includes(n.name));
  const chNodes = topology.nodes.filter((n) => !zkNames.includes(n.name));
  const zookeeper = new ZooKeeperEnsemble({ dist, stateDir, nodes: zkNodes, logger: log, readyTimeoutMs: 240_000 });
  const clickhouse = new ClickHouseCluster({ stateDir, nodes: chNodes, zookeeper: zkNodes, cluster: TEST_CH_CLUSTER, network: topology.subnet, logger: log, readyTimeoutMs: 240_000 });
  const lastResort = () => {
    clickhouse.killNow();
    zookeeper.killNow();
    destroyNetworkSync(stateFile);
  };
  const unhook = onExitOrSignal(lastResort);
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= (async () => {
    try {
      await clickhouse.stop();
      await zookeeper.stop();
      await destroyNetwork(stateFile);
    } finally {
      unhook();
      if (!process.env.ADCLICK_KEEP_TEST_STATE) await rm(stateDir, { recursive: true, force: true });
    }
  })());
  hooks.after(stop);
  try {
    await createNetwork(topology, stateFile);
    const t0 = Date.now();
    await zookeeper.start();
    const t1 = Date.now();
    await clickhouse.start();
    return { zookeeper, clickhouse, topology, stateDir, zkStartMs: t1 - t0, chStartMs: Date.now() - t1, stop };
  } catch (err) {
    lastResort();
    unhook();
    rmSync(stateDir, { recursive: true, force: true });
    throw err;
  }
}

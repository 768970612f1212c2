// A throwaway cluster for the Flink tests: 3 Kafka nodes, one ZooKeeper node (Flink's HA
// services) and a Flink session cluster (2 JobManagers, leader and standby, + 2 TaskManagers),
// eight namespaces on one random private /24, torn down in the caller's `after` hook and as a
// last resort on exit or signal (see test-cluster.ts).
import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FlinkCluster } from '../../src/cluster/flink-cluster.ts';
import { ensureFlinkDist, flinkVersionOf } from '../../src/cluster/flink-dist.ts';
import { KafkaCluster } from '../../src/cluster/kafka-cluster.ts';
import { createNetwork, destroyNetwork, destroyNetworkSync, planTopology, type Topology } from '../../src/cluster/topology.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { ensureFlinkJar } from '../../src/stack/flink-jar.ts';
import { ensureKafkaDist } from '../../src/stack/kafka-dist.ts';
import { kafkaDurability } from '../../src/stack/topics.ts';
import { ensureZooKeeperDist, ZooKeeperEnsemble } from '../../src/cluster/zookeeper.ts';
import { onExitOrSignal, randomTopologyName, testStateDir } from './test-cluster.ts';

export const repoRoot = join(import.meta.dirname, '../..');

export interface TestFlinkCluster {
  readonly kafka: KafkaCluster;
  readonly flink: FlinkCluster;
  readonly zookeeper: ZooKeeperEnsemble;
  readonly topology: Topology;
  readonly stateDir: string;
  readonly jar: string;
  /** ms from spawning the Kafka JVMs to every Flink slot registered */
  readonly startMs: number;
  stop(): Promise<void>;
}

export async function startTestFlinkCluster(hooks: { after(fn: () => unknown): void }): Promise<TestFlinkCluster> {
  const config = loadConfig();
  const logger = createLogger('test-flink-cluster', 'warn');
  const cacheDir = join(config.dataDir, 'cache');
  const [kdist, fdist, zdist, jar] = [
    await ensureKafkaDist({ cacheDir, version: config.kafkaVersion }),
    await ensureFlinkDist({ cacheDir, version: flinkVersionOf(repoRoot) }),
    await ensureZooKeeperDist({ cacheDir, version: config.zookeeperVersion }),
    await ensureFlinkJar(repoRoot, logger),
  ];
  const stateDir = await testStateDir('flink');
  const stateFile = join(stateDir, 'network.json');
  const topology = planTopology({ ...randomTopologyName(), nodes: ['kafka-1', 'kafka-2', 'kafka-3', 'flink-jm', 'flink-tm-1', 'flink-tm-2', 'flink-jm-2', 'zk-1'] });
  const [k1, k2, k3, jm, tm1, tm2, jm2, zk1] = topology.nodes;
  const kafka = new KafkaCluster({
    dist: kdist, stateDir, nodes: [k1!, k2!, k3!], port: 9092, controllerPort: 9093,
    durability: kafkaDurability({ kafkaReplicationFactor: 0, kafkaMinInsyncReplicas: 0 }, 'cluster', 3),
    heapMax: '512m', logger, readyTimeoutMs: 300_000,
  });
  // A single ZooKeeper node (standalone) in its own namespace: the HA services' coordination.
  const zookeeper = new ZooKeeperEnsemble({ dist: zdist, stateDir, nodes: [zk1!], logger, readyTimeoutMs: 300_000 });
  const flink = new FlinkCluster({
    dist: fdist, stateDir, jobManagers: [jm!, jm2!], taskManagers: [tm1!, tm2!], ha: { zookeeper: [zk1!.address], clusterId: 'test' },
    logger, readyTimeoutMs: 300_000,
  });
  const lastResort = () => {
    flink.killNow();
    kafka.killNow();
    zookeeper.killNow();
    destroyNetworkSync(stateFile);
  };
  const unhook = onExitOrSignal(lastResort);
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= (async () => {
    try {
      await flink.stop();
      await kafka.stop();
      await zookeeper.stop();
      await destroyNetwork(stateFile);
    } finally {
      unhook();
      if (process.env.ADCLICK_TEST_KEEP_STATE !== '1') await rm(stateDir, { recursive: true, force: true });
    }
  })());
  hooks.after(stop);
  const t0 = Date.now();
  try {
    await createNetwork(topology, stateFile);
    await Promise.all([kafka.start(), zookeeper.start().then(() => flink.start())]);
  } catch (err) {
    lastResort();
    unhook();
    if (process.env.ADCLICK_TEST_KEEP_STATE !== '1') rmSync(stateDir, { recursive: true, force: true });
    throw err;
  }
  return { kafka, flink, zookeeper, topology, stateDir, jar, startMs: Date.now() - t0, stop };
}

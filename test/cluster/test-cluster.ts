// A throwaway 3-node Kafka cluster for the cluster tests: its own private /24 and tag (so it
// can run next to `adclick cluster up` or another test), torn down in the caller's `after`
// hook, and, as a last resort, when the process exits.
//   const cluster = await startTestCluster({ after });   // top level of the test file
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KafkaCluster } from '../../src/cluster/kafka-cluster.ts';
import { listLinks, listNamespaces } from '../../src/cluster/netns.ts';
import { createNetwork, destroyNetwork, destroyNetworkSync, planTopology, type Topology } from '../../src/cluster/topology.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { ensureKafkaDist } from '../../src/stack/kafka-dist.ts';
import { kafkaDurability } from '../../src/stack/topics.ts';

export interface TestCluster {
  readonly kafka: KafkaCluster;
  readonly topology: Topology;
  readonly stateDir: string;
  readonly stateFile: string;
  /** Milliseconds from spawning the three JVMs to all three answering metadata. */
  readonly startMs: number;
  /** Stop the brokers and remove the network (idempotent; the after hook calls it too). */
  stop(): Promise<void>;
}

/** A tag and a 10.231.x.0/24 no other test run is likely to hold at the same moment. */
export function randomTopologyName(): { tag: string; subnet: string } {
  const b = randomBytes(3);
  return { tag: `t${b.toString('hex').slice(0, 5)}`, subnet: `10.231.${100 + (b[0]! % 150)}.0/24` };
}

/** Names of ours still present on the host (namespaces and links carrying the topology's tag). */
export async function leftovers(t: Topology): Promise<string[]> {
  const ours = (name: string) => name === t.bridge || t.nodes.some((n) => n.netns === name || n.hostVeth === name);
  return [...(await listNamespaces()), ...(await listLinks())].filter(ours);
}

export async function startTestCluster(hooks: { after(fn: () => unknown): void }, opts: { keepStateDir?: boolean } = {}): Promise<TestCluster> {
  const config = loadConfig();
  const dist = await ensureKafkaDist({ cacheDir: join(config.dataDir, 'cache'), version: config.kafkaVersion });
  const stateDir = await mkdtemp(join(tmpdir(), 'adclick-cluster-'));
  const stateFile = join(stateDir, 'network.json');
  const topology = planTopology({ ...randomTopologyName(), nodes: ['kafka-1', 'kafka-2', 'kafka-3'] });
  const kafka = new KafkaCluster({
    dist, stateDir, nodes: topology.nodes, port: 9092, controllerPort: 9093,
    durability: kafkaDurability({ kafkaReplicationFactor: 0, kafkaMinInsyncReplicas: 0 }, 'cluster', 3),
    heapMax: '512m', logger: createLogger('test-cluster', 'warn'), readyTimeoutMs: 240_000,
  });
  const lastResort = () => {
    kafka.killNow();
    destroyNetworkSync(stateFile);
  };
  process.once('exit', lastResort);
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= (async () => {
    try {
      await kafka.stop();
      await destroyNetwork(stateFile);
    } finally {
      process.off('exit', lastResort);
      if (!opts.keepStateDir) await rm(stateDir, { recursive: true, force: true });
    }
  })());
  hooks.after(stop);

  const t0 = Date.now();
  try {
    await createNetwork(topology, stateFile);
    await kafka.start();
  } catch (err) {
    lastResort();
    process.off('exit', lastResort);
    if (!opts.keepStateDir) rmSync(stateDir, { recursive: true, force: true });
    throw err;
  }
  return { kafka, topology, stateDir, stateFile, startMs: Date.now() - t0, stop };
}

// A throwaway 3-node Kafka cluster for the cluster tests: its own private /24 and tag (so it
// can run next to `adclick cluster up` or another test), torn down in the caller's `after`
// hook, as a last resort when the process exits or is interrupted, and otherwise by the next
// test run (state under `<data dir>/cluster-tests/`, see testStateDir).
//   const cluster = await startTestCluster({ after });   // top level of the test file
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { KafkaCluster } from '../../src/cluster/kafka-cluster.ts';
import { listLinks, listNamespaces } from '../../src/cluster/netns.ts';
import { createNetwork, destroyNetwork, destroyNetworkSync, planTopology, type Topology } from '../../src/cluster/topology.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { ensureKafkaDist } from '../../src/stack/kafka-dist.ts';
import { isAlive } from '../../src/stack/pid-files.ts';
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

const execFileP = promisify(execFile);

/**
 * Configs as a broker reports them (Kafka's ConfigCommand, every value incl. defaults):
 * `topics`/name or `brokers`/node id.
 */
export async function describeConfigs(cluster: TestCluster, entityType: 'topics' | 'brokers', entityName: string): Promise<Record<string, string>> {
  const dist = cluster.kafka.options.dist;
  const { stdout } = await execFileP('java', [
    '-Xmx128m', `-Dlog4j2.configurationFile=${join(cluster.stateDir, 'kafka-1', 'log4j2-tools.properties')}`, '-cp', dist.classpath,
    'kafka.admin.ConfigCommand', '--bootstrap-server', cluster.kafka.bootstrap,
    '--entity-type', entityType, '--entity-name', entityName, '--describe', '--all',
  ], { timeout: 120_000 });
  const out: Record<string, string> = {};
  for (const m of stdout.matchAll(/^\s+([\w.]+)=(.*?) sensitive=/gm)) out[m[1]!] = m[2]!;
  return out;
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

/**
 * A state dir for one test run under `<data dir>/cluster-tests/`, after removing what runs
 * whose process died without cleaning up (SIGKILL, a crash) left there: their network state
 * files name their namespaces and links.
 */
export async function testStateDir(prefix: string): Promise<string> {
  const parent = join(loadConfig().dataDir, 'cluster-tests');
  await mkdir(parent, { recursive: true });
  for (const name of await readdir(parent)) {
    const dir = join(parent, name);
    const owner = Number((await readFile(join(dir, 'owner.pid'), 'utf8').catch(() => '')).trim());
    if (owner && isAlive(owner)) continue;
    // Network state files: the run's own (*.json) or a `cluster up` data dir's (cluster/network.json).
    const files = [...(await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')), join('cluster', 'network.json')];
    for (const f of files) await destroyNetwork(join(dir, f)).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  const dir = await mkdtemp(join(parent, `${prefix}-`));
  await writeFile(join(dir, 'owner.pid'), `${process.pid}\n`);
  return dir;
}

/** Ctrl-C ends a test process without 'exit' hooks: run the last resort on signals too. */
export function onExitOrSignal(fn: () => void): () => void {
  const onSignal = (sig: NodeJS.Signals) => {
    fn();
    process.kill(process.pid, sig);
  };
  process.once('exit', fn);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.off('exit', fn);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

export async function startTestCluster(hooks: { after(fn: () => unknown): void }, opts: { keepStateDir?: boolean } = {}): Promise<TestCluster> {
  const config = loadConfig();
  const dist = await ensureKafkaDist({ cacheDir: join(config.dataDir, 'cache'), version: config.kafkaVersion });
  const stateDir = await testStateDir('kafka');
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
  const unhook = onExitOrSignal(lastResort);
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= (async () => {
    try {
      await kafka.stop();
      await destroyNetwork(stateFile);
    } finally {
      unhook();
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
    unhook();
    if (!opts.keepStateDir) rmSync(stateDir, { recursive: true, force: true });
    throw err;
  }
  return { kafka, topology, stateDir, stateFile, startMs: Date.now() - t0, stop };
}

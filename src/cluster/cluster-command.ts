// `adclick cluster up|down|status`: the cluster form on one machine, each node a host of its
// own (network namespace, own address on a private bridge). Tiers: Kafka (3 KRaft nodes,
// pipeline topics with replication factor 3 and min.insync.replicas 2), then Flink (a session
// cluster with JobManager HA on the ZooKeeper ensemble, 2 JobManagers + 2 TaskManagers, running the job; flink-tier.ts).
//   up      foreground; Ctrl-C (or `adclick cluster down` elsewhere) stops it and removes the network
//   down    stops a running `cluster up` and removes whatever a crashed one left (from the state file)
//   status  each node: namespace, address, process, cut or not, answering or not; partitions' ISR
import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { configToEnv, loadConfig, type Config } from '../shared/config.ts';
import { createLogger } from '../shared/logger.ts';
import { tcpProbe } from '../stack/health.ts';
import { kafkaAnswersMetadata } from '../stack/kafka-admin.ts';
import { ensureKafkaDist } from '../stack/kafka-dist.ts';
import { ensurePrivateDir, isAlive } from '../stack/pid-files.ts';
import { ensureTopics, kafkaDurability, pipelineTopics } from '../stack/topics.ts';
import { DEFAULT_REPO_ROOT } from '../stack/up.ts';
import { FLINK_NODES, flinkTierStatus, isFlinkNode, prepareFlinkTier, renderFlinkTier, startFlinkTier } from './flink-tier.ts';
import { CLICKHOUSE_TIER_NODES, clickhouseTier, clickhouseTierNodeStatus, tierClusterName } from './clickhouse-tier.ts';
import { describePartitions, KafkaCluster } from './kafka-cluster.ts';
import { CUT_TABLE, listNamespaces, namespacePids, nftRuleset } from './netns.ts';
import { createNetwork, destroyNetwork, parseSubnet, planTopology, readNetworkState, type Topology } from './topology.ts';
import { BALANCER_NODE, GATEWAY_NODES, QUERY_NODES, SINK_NODES, StatelessTier } from './balancer.ts';
import { REDIS_NODE, REDIS_PORT, RedisNode } from './redis-node.ts';

const USAGE = `usage: adclick cluster up | down | status

  up       start 3 Kafka nodes (KRaft broker+controller), each in its own network namespace
           with its own address in ADCLICK_CLUSTER_SUBNET, create the pipeline topics with
           replication factor 3 / min.insync.replicas 2; then 3 ZooKeeper nodes and
           ClickHouse 2 shards x 2 replicas (schema migrated ON CLUSTER), then a Flink session
           cluster with JobManager HA on that ZooKeeper (2 JobManagers, leader and standby, + 2
           TaskManagers, each in its own namespace) and submit the job through the leader's REST
           API once (unless Flink recovered it from its HA store); print the nodes; with
           ADCLICK_SIGNING_KEYS also the stateless tiers, each instance in its own namespace:
           Redis, 2 gateways and 2 query APIs behind HAProxy, 2 sinks in one consumer group
           writing to the ClickHouse cluster (every serving instance has the replica list and
           fails over); runs in the foreground until Ctrl-C, then stops the nodes and removes
           the network
  down     stop a running \`cluster up\`; remove namespaces, links and rules a crashed one left
  status   each node's namespace, address, process, cut or not, and whether it answers:
           Kafka, ZooKeeper, ClickHouse, the Flink JobManagers (which one leads), the
           TaskManagers and the job's state, Redis, gateways, query APIs, sinks and the balancer
`;

const KAFKA_NODES = ['kafka-1', 'kafka-2', 'kafka-3'];
// ClickHouse tier (clickhouse-tier.ts): zk-1..3, ch-<shard>-<replica>; Flink tier (flink-tier.ts).
const NODES = [...KAFKA_NODES, ...FLINK_NODES, ...CLICKHOUSE_TIER_NODES];

interface UpRecord {
  readonly pid: number;
  readonly bootstrap: string;
  readonly startedAt: string;
}

function paths(config: Config) {
  const dir = join(config.dataDir, 'cluster');
  return { dir, stateFile: join(dir, 'network.json'), upFile: join(dir, 'up.json') };
}

/**
 * The names carry the subnet (10.231.0.0/24 → tag `ce700`, namespaces `adclick-ce700-kafka-1`…),
 * so clusters on different subnets (a second data dir, a test) never share a name.
 */
export function clusterTopology(config: Pick<Config, 'clusterSubnet'> & Partial<Pick<Config, 'signingKeys'>>): Topology {
  const { base } = parseSubnet(config.clusterSubnet);
  const tag = `c${base[1].toString(16).padStart(2, '0')}${base[2].toString(16).padStart(2, '0')}`;
  return planTopology({ tag, subnet: config.clusterSubnet, nodes: [...NODES, ...statelessNodes(config)] });
}

// --- stateless tier hook (balancer.ts) ---------------------------------------------------
// The stateless tiers, each instance in a namespace of its own, after every other node:
// two gateways and two query APIs behind HAProxy, two sinks in one consumer group, Redis.
// Only with ADCLICK_SIGNING_KEYS: a gateway on a non-loopback address refuses the public
// development key. With the default node list: .25 gw-1, .26 gw-2, .27 lb, .28 query-1,
// .29 query-2, .30 sink-1, .31 sink-2, .32 redis.
function statelessNodes(config: Partial<Pick<Config, 'signingKeys'>>): string[] {
  return config.signingKeys ? [...GATEWAY_NODES, BALANCER_NODE, ...QUERY_NODES, ...SINK_NODES, REDIS_NODE] : [];
}

export interface StatelessTiers { readonly tier: StatelessTier; readonly redis: RedisNode }

/**
 * The stateless tiers on a topology planned by clusterTopology (nothing started). Exported
 * so the whole-pipeline cluster test starts exactly what `cluster up` starts.
 */
export function statelessTiers(config: Config, topology: Topology, bootstrap: string, clickhouseUrls: readonly string[], flinkRestUrls: readonly string[], dir: string, log: ReturnType<typeof createLogger>): StatelessTiers | null {
  if (!config.signingKeys) return null;
  const node = topology.nodes.find((n) => n.name === REDIS_NODE);
  if (!node) throw new Error(`the stateless tiers need a node named ${REDIS_NODE} in the topology`);
  const redis = new RedisNode({ node, stateDir: join(dir, 'stateless'), logger: log });
  const tier = new StatelessTier({
    config, nodes: topology.nodes, kafkaBootstrap: bootstrap, stateDir: join(dir, 'stateless'), logger: log,
    // The instances get this config (configToEnv), not just the caller's environment; only addresses differ.
    clickhouseUrls, clickhouseCluster: tierClusterName(config), env: { ...configToEnv(config), REDIS_URL: redis.url, ADCLICK_FLINK_REST_URL: flinkRestUrls.join(',') },
  });
  return { tier, redis };
}
// --- end of the stateless tier hook ------------------------------------------------------

export async function runCluster(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (rest.length) {
    process.stderr.write(`adclick cluster ${sub}: unexpected arguments ${rest.join(' ')}\n\n${USAGE}`);
    return 2;
  }
  switch (sub) {
    case 'up': return clusterUp(loadConfig());
    case 'down': return clusterDown(loadConfig());
    case 'status': return clusterStatus(loadConfig());
    case 'help': case '--help': case '-h':
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`${sub ? `unknown cluster command "${sub}"` : 'missing cluster command'}\n\n${USAGE}`);
      return 2;
  }
}

async function readUp(upFile: string): Promise<UpRecord | undefined> {
  try {
    return JSON.parse(await readFile(upFile, 'utf8')) as UpRecord;
  } catch {
    return undefined;
  }
}

/** Every tier of the cluster form, built (nothing started) by prepareClusterForm. */
export interface ClusterForm {
  readonly topology: Topology;
  readonly kafka: KafkaCluster;
  readonly clickhouse: ReturnType<typeof clickhouseTier>;
  readonly flink: Awaited<ReturnType<typeof prepareFlinkTier>>['flink'];
  readonly stateless: StatelessTiers | null;
  readonly durability: { replicationFactor: number; minInsyncReplicas: number };
  /** Network, Kafka + topics, ZooKeeper + ClickHouse, Flink + job, Redis, the stateless instances; what `cluster up` prints. */
  start(): Promise<string>;
  /** Stops what started, in reverse, and removes the network (idempotent). */
  stop(): Promise<void>;
}

/**
 * What `cluster up` starts, as objects: `up` runs it in the foreground, the whole-pipeline
 * cluster test (test/cluster/pipeline-cluster.test.ts) holds the handles to inject faults.
 * `stateFile` records the network for `down` and for clean-up after a crash.
 */
export async function prepareClusterForm(config: Config, stateFile: string, log: ReturnType<typeof createLogger>): Promise<ClusterForm> {
  const dir = dirname(stateFile);
  const durability = kafkaDurability(config, 'cluster', KAFKA_NODES.length);
  const topology = clusterTopology(config);
  const dist = await ensureKafkaDist({ cacheDir: join(config.dataDir, 'cache'), version: config.kafkaVersion, logger: log });
  const kafka = new KafkaCluster({
    dist, stateDir: dir, nodes: topology.nodes.filter((n) => KAFKA_NODES.includes(n.name)), port: config.kafkaPort, controllerPort: config.kafkaControllerPort,
    durability, heapMax: config.kafkaHeapMax, readyTimeoutMs: Math.max(config.kafkaReadyTimeoutMs, 180_000), logger: log,
  });
  const { flink, jar } = await prepareFlinkTier({ config, topology, stateDir: dir, repoRoot: DEFAULT_REPO_ROOT, logger: log });
  const chTier = clickhouseTier({ config, topology, stateDir: dir, logger: log });
  const tiers = statelessTiers(config, topology, kafka.bootstrap, chTier.clickhouse.status().map((r) => r.url),
    // Every JobManager's: serving moves to the standby's REST API when the leader dies (HA).
    flink.restUrls, dir, log);
  let stopping: Promise<void> | undefined;
  return {
    topology, kafka, clickhouse: chTier, flink, stateless: tiers, durability,
    async start() {
      await createNetwork(topology, stateFile);
      const t0 = Date.now();
      await kafka.start();
      await ensureTopics(kafka.bootstrap, pipelineTopics(config, durability), log);
      await chTier.start();
      const job = await startFlinkTier(flink, jar, config, kafka.bootstrap, log);
      await tiers?.redis.start();
      await tiers?.tier.start();
      let text = renderNodes(topology, kafka, Date.now() - t0, durability, [...chTier.render(), ...renderFlinkTier(flink, job)]);
      if (tiers) {
        const t = tiers.tier;
        text += t.status().map((x) => `  ${x.name.padEnd(8)} ${x.address.padEnd(15)} ${x.role} pid ${x.pid ?? '-'}`).join('\n') +
          `\n  ${REDIS_NODE.padEnd(8)} ${tiers.redis.url.padEnd(15)} redis pid ${tiers.redis.pid ?? '-'}` +
          `\n  clicks: ${t.gatewayUrl}/v1/clicks, queries: ${t.queryUrl}/v1/… (HAProxy, health checks on /readyz); sinks: consumer group ${config.sinkGroupId}\n`;
      }
      return text;
    },
    stop: () => (stopping ??= (async () => {
      await tiers?.tier.stop();
      await tiers?.redis.stop();
      await flink.stop();
      await chTier.stop();
      await kafka.stop();
      await destroyNetwork(stateFile);
    })()),
  };
}

export async function clusterUp(config: Config, print: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const log = createLogger('cluster', config.logLevel);
  const { dir, stateFile, upFile } = paths(config);
  await ensurePrivateDir(config.dataDir);
  await ensurePrivateDir(dir);
  const running = await readUp(upFile);
  if (running && running.pid !== process.pid && isAlive(running.pid)) {
    throw new Error(`a cluster is already running (pid ${running.pid}); run \`adclick cluster down\` first`);
  }
  const form = await prepareClusterForm(config, stateFile, log);
  const stop = async () => {
    await form.stop();
    await rm(upFile, { force: true });
  };
  // Signals during start-up stop the half-started cluster too: nothing outlives `up`.
  let signalled: NodeJS.Signals | undefined;
  let wake: () => void = () => undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    signalled = sig;
    log.info({ signal: sig }, 'stopping the cluster');
    void stop().finally(() => wake());
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await writeFile(upFile, JSON.stringify({ pid: process.pid, bootstrap: form.kafka.bootstrap, startedAt: new Date().toISOString() } satisfies UpRecord) + '\n', { mode: 0o600 });
    print(await form.start());
    if (!signalled) await new Promise<void>((resolve) => { wake = resolve; });
    await stop();
    return 0;
  } catch (err) {
    await stop().catch((e: unknown) => log.error({ err: e }, 'cleanup after a failed start failed; run `adclick cluster down`'));
    if (signalled) return 130;
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function renderNodes(t: Topology, kafka: KafkaCluster, startMs: number, d: { replicationFactor: number; minInsyncReplicas: number }, more: readonly string[] = []): string {
  const rows = kafka.status().map((n) => `  ${n.name.padEnd(8)} ${n.address.padEnd(15)} ${n.netns.padEnd(22)} pid ${n.pid ?? '-'}`);
  return [
    `AdClick cluster (Kafka, ZooKeeper, ClickHouse, Flink) up in ${(startMs / 1000).toFixed(0)} s on ${t.subnet} (host side ${t.bridgeAddress} on ${t.bridge}):`,
    ...rows,
    `  topics: replication factor ${d.replicationFactor}, min.insync.replicas ${d.minInsyncReplicas}, unclean leader election off`,
    `  clients: KAFKA_BROKERS=${kafka.bootstrap}`,
    ...more,
    '  Ctrl-C or `adclick cluster down` stops it and removes its namespaces.',
    '',
  ].join('\n');
}

export async function clusterDown(config: Config, print: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const { stateFile, upFile } = paths(config);
  const up = await readUp(upFile);
  if (up && up.pid !== process.pid && isAlive(up.pid)) {
    process.kill(up.pid, 'SIGTERM');
    const deadline = Date.now() + config.stopTimeoutMs + 60_000;
    while (isAlive(up.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    if (isAlive(up.pid)) print(`cluster up (pid ${up.pid}) did not stop in time; removing its network anyway\n`);
  }
  // Whatever a crashed `up` left: the state file names it.
  const res = await destroyNetwork(stateFile, config.stopTimeoutMs);
  await rm(upFile, { force: true });
  print(res.namespaces.length || res.killed.length
    ? `removed ${res.namespaces.length} namespace(s), ${res.links.length} link(s)${res.killed.length ? `, stopped ${res.killed.length} leftover process(es)` : ''}\n`
    : up ? 'cluster stopped\n' : 'no cluster was running\n');
  return 0;
}

export async function clusterStatus(config: Config, print: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const { stateFile } = paths(config);
  const state = await readNetworkState(stateFile);
  if (!state) {
    print('no cluster (nothing recorded in ' + stateFile + ')\n');
    return 1;
  }
  const present = new Set(await listNamespaces());
  let healthy = true;
  const lines: string[] = [`cluster on ${state.topology.subnet} (bridge ${state.bridge ?? '-'} ${state.topology.bridgeAddress})`];
  const answering: string[] = [];
  const flinkState = await flinkTierStatus(config, state.topology);
  for (const n of state.topology.nodes) {
    const exists = present.has(n.netns);
    const pids = exists ? await namespacePids(n.netns) : [];
    const cut = exists && (await nftRuleset(n.netns)).includes(CUT_TABLE);
    if (isFlinkNode(n.name)) {
      const st = !exists ? 'no namespace' : cut ? 'CUT OFF' : flinkState.nodeState.get(n.name) ?? 'unknown';
      lines.push(`  ${n.name.padEnd(10)} ${n.address.padEnd(15)} ${n.netns.padEnd(26)} pids ${pids.join(',') || '-'}  ${st}`);
      continue;
    }
    if (!NODES.includes(n.name)) {
      // A stateless node: its process, and whether its port answers. A sink serves no port
      // (its admin surface is on the namespace's loopback): its process is what shows.
      if (SINK_NODES.includes(n.name as never)) {
        healthy &&= exists && !cut && pids.length > 0;
        lines.push(`  ${n.name.padEnd(8)} ${n.address.padEnd(15)} ${n.netns.padEnd(22)} pids ${pids.join(',') || '-'}  ${!exists ? 'no namespace' : cut ? 'CUT OFF' : pids.length ? `sink running (group ${config.sinkGroupId})` : 'no process'}`);
        continue;
      }
      const port = n.name === REDIS_NODE ? REDIS_PORT : n.name === BALANCER_NODE || GATEWAY_NODES.includes(n.name as never) ? config.gatewayPort : config.queryPort;
      const answers = exists && !cut && (await tcpProbe(n.address, port, 1000));
      const lbQuery = n.name === BALANCER_NODE && answers && (await tcpProbe(n.address, config.queryPort, 1000));
      healthy &&= answers && (n.name !== BALANCER_NODE || lbQuery);
      const what = n.name === BALANCER_NODE ? `ports ${port}+${config.queryPort}` : `port ${port}`;
      lines.push(`  ${n.name.padEnd(8)} ${n.address.padEnd(15)} ${n.netns.padEnd(22)} pids ${pids.join(',') || '-'}  ${!exists ? 'no namespace' : cut ? 'CUT OFF' : answers && (n.name !== BALANCER_NODE || lbQuery) ? `${what} answering` : pids.length ? `${what} not answering` : 'no process'}`);
      continue;
    }
    if (!KAFKA_NODES.includes(n.name)) {
      const other = exists && !cut ? await clickhouseTierNodeStatus(n) : undefined;
      healthy &&= !!other?.answers;
      const st = !exists ? 'no namespace' : cut ? 'CUT OFF' : other?.text ?? 'unknown node';
      lines.push(`  ${n.name.padEnd(8)} ${n.address.padEnd(15)} ${n.netns.padEnd(22)} pids ${pids.join(',') || '-'}  ${st}`);
      continue;
    }
    const bootstrap = `${n.address}:${config.kafkaPort}`;
    const answers = exists && !cut && (await tcpProbe(n.address, config.kafkaPort, 1000)) && (await kafkaAnswersMetadata(bootstrap, 3000));
    if (answers) answering.push(bootstrap);
    healthy &&= answers;
    const st = !exists ? 'no namespace' : cut ? 'CUT OFF' : answers ? 'kafka answering' : pids.length ? 'kafka not answering' : 'no process';
    lines.push(`  ${n.name.padEnd(8)} ${n.address.padEnd(15)} ${n.netns.padEnd(22)} pids ${pids.join(',') || '-'}  ${st}`);
  }
  if (answering.length) {
    try {
      const topics = pipelineTopics(config).map((t) => t.name);
      const parts = await describePartitions(answering.join(','), topics);
      const under = parts.filter((p) => p.isr.length < p.replicas.length);
      const leaderless = parts.filter((p) => p.leader < 0);
      lines.push(`  partitions of the pipeline topics: ${parts.length}, under-replicated ${under.length}, without leader ${leaderless.length}`);
      for (const p of [...leaderless, ...under].slice(0, 10)) lines.push(`    ${p.topic}/${p.partition}: leader ${p.leader}, replicas ${p.replicas.join(',')}, isr ${p.isr.join(',')}`);
      healthy &&= under.length === 0 && leaderless.length === 0;
    } catch (err) {
      lines.push(`  partitions: cannot describe (${(err as Error).message})`);
      healthy = false;
    }
  }
  lines.push(...flinkState.lines);
  healthy &&= flinkState.healthy;
  print(lines.join('\n') + '\n');
  return healthy ? 0 : 1;
}

// What `adclick cluster up|status` does for the Flink tier: two JobManagers (leader and standby,
// Flink's ZooKeeper HA on the cluster's ZooKeeper ensemble) and the TaskManagers on their own
// nodes of the cluster topology, the job submitted once through the leader's REST API with the
// single-box launcher's flags (up.ts flinkJobFlags) against the cluster's Kafka; from then on
// Flink recovers it by itself (a new leader, or the next `cluster up`, takes it from the HA store).
import { join } from 'node:path';
import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { ensureFlinkJar } from '../stack/flink-jar.ts';
import { httpProbe } from '../stack/health.ts';
import { flinkJobFlags } from '../stack/up.ts';
import { FlinkCluster, readLeaderRestUrl, type FlinkHa } from './flink-cluster.ts';
import { ensureFlinkDist, flinkVersionOf } from './flink-dist.ts';
import type { ClusterNode, Topology } from './topology.ts';

// flink-jm-2 (the standby JobManager) last, so the TaskManagers keep their addresses.
export const FLINK_NODES = ['flink-jm', 'flink-tm-1', 'flink-tm-2', 'flink-jm-2'] as const;
export const FLINK_JOBMANAGERS = ['flink-jm', 'flink-jm-2'] as const;
export const isFlinkNode = (name: string): boolean => name.startsWith('flink-');
const isJobManager = (name: string): boolean => (FLINK_JOBMANAGERS as readonly string[]).includes(name);

/** The HA services of the cluster form: the ClickHouse tier's ZooKeeper ensemble (zk-*), cluster id `cluster`. */
export function clusterFlinkHa(topology: Topology): FlinkHa {
  const zookeeper = topology.nodes.filter((n) => /^zk-\d+$/.test(n.name)).map((n) => n.address);
  if (!zookeeper.length) throw new Error('the cluster topology has no ZooKeeper node (zk-*) for Flink\'s HA services');
  return { zookeeper, clusterId: 'cluster' };
}

/** The tier's cluster object (jars fetched and the job jar built first: both are slow once). */
export async function prepareFlinkTier(o: { config: Config; topology: Topology; stateDir: string; repoRoot: string; logger: Logger }): Promise<{ flink: FlinkCluster; jar: string }> {
  const node = (name: string): ClusterNode => {
    const n = o.topology.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`the cluster topology has no node ${name}`);
    return n;
  };
  const dist = await ensureFlinkDist({ cacheDir: join(o.config.dataDir, 'cache'), version: flinkVersionOf(o.repoRoot), logger: o.logger });
  const jar = await ensureFlinkJar(o.repoRoot, o.logger);
  const flink = new FlinkCluster({
    dist, stateDir: o.stateDir, jobManagers: FLINK_JOBMANAGERS.map(node), taskManagers: [node('flink-tm-1'), node('flink-tm-2')], ha: clusterFlinkHa(o.topology),
    restPort: o.config.clusterFlinkRestPort, slotsPerTaskManager: o.config.clusterFlinkSlots,
    jobManagerMemory: o.config.clusterFlinkJmMemory, taskManagerMemory: o.config.clusterFlinkTmMemory,
    readyTimeoutMs: 300_000, restartOnFailure: true, logger: o.logger,
  });
  return { flink, jar };
}

/**
 * Start the JVMs; if the leader recovered the job from the HA store (an earlier `cluster up`
 * on this data dir), keep it; otherwise submit it (from the newest retained checkpoint, if any:
 * HA metadata removed by hand). Wait until all its tasks run. From then on a node whose JVM dies
 * is started again (a JobManager rejoins as a standby) and Flink recovers the job by itself.
 */
export async function startFlinkTier(flink: FlinkCluster, jar: string, config: Config, kafkaBootstrap: string, logger: Logger): Promise<{ jobId: string; restoredFrom?: string; recovered?: boolean }> {
  const submission = { jar, args: flinkJobFlags(config, kafkaBootstrap, flink.checkpointDir) };
  await flink.start();
  const live = (await flink.jobs()).filter((j) => !['FAILED', 'CANCELED', 'FINISHED'].includes(j.state));
  if (live.length) {
    logger.warn({ jobs: live }, 'Flink job recovered from the HA store (an earlier cluster up); not submitting another');
    await flink.waitJobRunning(live[0]!.jid, 300_000);
    return { jobId: live[0]!.jid, recovered: true };
  }
  const res = await flink.submitFromLatest(submission);
  await flink.waitJobRunning(res.jobId, 300_000);
  return { jobId: res.jobId, restoredFrom: res.restoredFrom };
}

export function renderFlinkTier(flink: FlinkCluster, job: { jobId: string; restoredFrom?: string; recovered?: boolean }): string[] {
  const from = job.recovered ? ' (recovered by Flink from its HA store)' : job.restoredFrom ? ` (restored from ${job.restoredFrom})` : ' (no earlier checkpoint)';
  return [
    ...flink.status().map((n) => `  ${n.name.padEnd(10)} ${n.address.padEnd(15)} ${n.netns.padEnd(26)} pid ${n.pid ?? '-'}  ${n.role}`),
    `  Flink job ${job.jobId} RUNNING${from}; web UI / REST ${flink.restUrl} (the leader)`,
    `  JobManager HA: ZooKeeper ${flink.options.ha.zookeeper.join(',')} path /adclick-flink/${flink.options.ha.clusterId}, storage ${flink.haDir}`,
    `  checkpoints and savepoints: ${flink.checkpointDir}, ${flink.savepointDir}`,
  ];
}

async function getJson<T>(url: string): Promise<T | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return res.ok ? (await res.json()) as T : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Status of the Flink nodes: each JobManager answering or not and which one leads (per
 * ZooKeeper, `leaderUrl`), each TaskManager registered (by its address) and the jobs with their
 * state, as the leader reports them.
 */
export async function flinkTierStatus(config: Pick<Config, 'clusterFlinkRestPort'>, topology: Topology,
  leaderUrl: () => Promise<string | undefined> = () => readLeaderRestUrl(clusterFlinkHa(topology))): Promise<{ nodeState: Map<string, string>; lines: string[]; healthy: boolean }> {
  const jms = topology.nodes.filter((n) => isJobManager(n.name));
  const nodeState = new Map<string, string>();
  if (!jms.length) return { nodeState, lines: [], healthy: true };
  const urlOf = (address: string) => `http://${address}:${config.clusterFlinkRestPort}`;
  const leader = await leaderUrl().catch(() => undefined);
  const leaderNode = jms.find((n) => urlOf(n.address) === leader);
  // Only our own nodes' addresses are ever asked, whatever ZooKeeper says.
  const rest = urlOf((leaderNode ?? jms[0]!).address);
  const overview = await getJson<{ taskmanagers: number; 'slots-total': number; 'slots-available': number }>(`${rest}/overview`);
  const tms = await getJson<{ taskmanagers: { id: string; path?: string; slotsNumber: number; freeSlots: number }[] }>(`${rest}/taskmanagers`);
  const jobs = await getJson<{ jobs: { jid: string; name: string; state: string }[] }>(`${rest}/jobs/overview`);
  for (const n of jms) {
    const answers = n === leaderNode ? !!overview : await httpProbe(`${urlOf(n.address)}/overview`, 3000);
    nodeState.set(n.name, !answers ? 'jobmanager not answering' : n === leaderNode ? 'jobmanager answering, leader' : 'jobmanager answering, standby');
  }
  for (const n of topology.nodes.filter((x) => x.name.startsWith('flink-tm'))) {
    const tm = tms?.taskmanagers.find((t) => t.id.startsWith(`${n.address}:`) || (t.path ?? '').includes(`@${n.address}:`));
    nodeState.set(n.name, tm ? `taskmanager registered (${tm.slotsNumber - tm.freeSlots}/${tm.slotsNumber} slots used)` : overview ? 'taskmanager not registered' : 'unknown (no jobmanager)');
  }
  const running = jobs?.jobs.filter((j) => j.state === 'RUNNING') ?? [];
  const lines = [
    !leaderNode ? `  flink: no JobManager leads${leader ? ` (ZooKeeper names ${leader}, not a node of this cluster)` : ''}` : overview
      ? `  flink: leader ${leaderNode.name}; ${overview.taskmanagers} taskmanager(s), ${overview['slots-total']} slots (${overview['slots-available']} free); web UI ${rest}`
      : `  flink: leader ${leaderNode.name} at ${rest} not answering`,
    ...(jobs?.jobs ?? []).map((j) => `    job ${j.jid} ${j.name} ${j.state}`),
  ];
  const healthy = !!leaderNode && !!overview && [...nodeState.values()].every((s) => /answering|registered/.test(s) && !/not/.test(s)) && running.length === 1;
  return { nodeState, lines, healthy };
}

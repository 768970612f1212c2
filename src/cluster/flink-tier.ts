// What `adclick cluster up|status` does for the Flink tier: the JobManager and TaskManagers
// on their own nodes of the cluster topology, the job submitted through the JobManager's REST
// API with the single-box launcher's flags (up.ts flinkJobFlags) against the cluster's
// Kafka, from the newest retained checkpoint of an earlier run when there is one.
import { join } from 'node:path';
import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { ensureFlinkJar } from '../stack/flink-jar.ts';
import { flinkJobFlags } from '../stack/up.ts';
import { FlinkCluster } from './flink-cluster.ts';
import { ensureFlinkDist, flinkVersionOf } from './flink-dist.ts';
import type { ClusterNode, Topology } from './topology.ts';

export const FLINK_NODES = ['flink-jm', 'flink-tm-1', 'flink-tm-2'] as const;
export const isFlinkNode = (name: string): boolean => name.startsWith('flink-');

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
    dist, stateDir: o.stateDir, jobManager: node('flink-jm'), taskManagers: [node('flink-tm-1'), node('flink-tm-2')],
    restPort: o.config.clusterFlinkRestPort, slotsPerTaskManager: o.config.clusterFlinkSlots,
    jobManagerMemory: o.config.clusterFlinkJmMemory, taskManagerMemory: o.config.clusterFlinkTmMemory,
    readyTimeoutMs: 300_000, restartOnFailure: true, logger: o.logger,
  });
  return { flink, jar };
}

/**
 * Start the JVMs, submit the job (from the newest retained checkpoint, if any), wait until all
 * its tasks run. From then on a node whose JVM dies is started again, and a JobManager started
 * again gets the job resubmitted from the newest retained checkpoint.
 */
export async function startFlinkTier(flink: FlinkCluster, jar: string, config: Config, kafkaBootstrap: string, logger: Logger): Promise<{ jobId: string; restoredFrom?: string }> {
  const submission = { jar, args: flinkJobFlags(config, kafkaBootstrap, flink.checkpointDir) };
  await flink.start();
  const res = await flink.submitFromLatest(submission);
  await flink.waitJobRunning(res.jobId, 300_000);
  flink.keepJobRunning(submission, (r) => {
    if (r instanceof Error) logger.error({ err: r }, 'resubmitting the Flink job after the JobManager restarted failed');
    else logger.warn({ jobId: r.jobId, restoredFrom: r.restoredFrom }, 'JobManager restarted: Flink job resubmitted from its newest retained checkpoint');
  });
  return { jobId: res.jobId, restoredFrom: res.restoredFrom };
}

export function renderFlinkTier(flink: FlinkCluster, job: { jobId: string; restoredFrom?: string }): string[] {
  return [
    ...flink.status().map((n) => `  ${n.name.padEnd(10)} ${n.address.padEnd(15)} ${n.netns.padEnd(26)} pid ${n.pid ?? '-'}  ${n.role}`),
    `  Flink job ${job.jobId} RUNNING${job.restoredFrom ? ` (restored from ${job.restoredFrom})` : ' (no earlier checkpoint)'}; web UI / REST ${flink.restUrl}`,
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
 * Status of the Flink nodes as their JobManager reports them: the JobManager answering, each
 * TaskManager registered (by its address), and the jobs with their state.
 */
export async function flinkTierStatus(config: Pick<Config, 'clusterFlinkRestPort'>, topology: Topology): Promise<{ nodeState: Map<string, string>; lines: string[]; healthy: boolean }> {
  const jm = topology.nodes.find((n) => n.name === 'flink-jm');
  const nodeState = new Map<string, string>();
  if (!jm) return { nodeState, lines: [], healthy: true };
  const rest = `http://${jm.address}:${config.clusterFlinkRestPort}`;
  const overview = await getJson<{ taskmanagers: number; 'slots-total': number; 'slots-available': number }>(`${rest}/overview`);
  const tms = await getJson<{ taskmanagers: { id: string; path?: string; slotsNumber: number; freeSlots: number }[] }>(`${rest}/taskmanagers`);
  const jobs = await getJson<{ jobs: { jid: string; name: string; state: string }[] }>(`${rest}/jobs/overview`);
  nodeState.set('flink-jm', overview ? 'jobmanager answering' : 'jobmanager not answering');
  for (const n of topology.nodes.filter((x) => x.name.startsWith('flink-tm'))) {
    const tm = tms?.taskmanagers.find((t) => t.id.startsWith(`${n.address}:`) || (t.path ?? '').includes(`@${n.address}:`));
    nodeState.set(n.name, tm ? `taskmanager registered (${tm.slotsNumber - tm.freeSlots}/${tm.slotsNumber} slots used)` : overview ? 'taskmanager not registered' : 'unknown (no jobmanager)');
  }
  const running = jobs?.jobs.filter((j) => j.state === 'RUNNING') ?? [];
  const lines = [
    overview ? `  flink: ${overview.taskmanagers} taskmanager(s), ${overview['slots-total']} slots (${overview['slots-available']} free); web UI ${rest}` : `  flink: jobmanager at ${rest} not answering`,
    ...(jobs?.jobs ?? []).map((j) => `    job ${j.jid} ${j.name} ${j.state}`),
  ];
  const healthy = !!overview && [...nodeState.values()].every((s) => /answering$|registered/.test(s) && !/not/.test(s)) && running.length === 1;
  return { nodeState, lines, healthy };
}

// The whole pipeline on the cluster form, under cluster faults (issue 18), run by
// pipeline-cluster.test.ts (kill -9 a sink, a query API, a ClickHouse replica).
//
// The cluster is started by the code `adclick cluster up` runs (prepareClusterForm): 3 Kafka,
// ZooKeeper + ClickHouse 2×2, the Flink session cluster with the job, Redis, 2 gateways and
// 2 query APIs behind HAProxy, 2 sinks in one consumer group, each in its own namespace on
// a random private /24 of the test's own. Signed clicks go through the balancer's gateway
// frontend (the simulator, bounded by count and time, recording a ground-truth ledger); counts
// are read back through the balancer's query frontend and compared with the ledger at 1m, 5m
// and 1h, per ad and per campaign (src/chaos/checker.ts). Each fault gets a phase of its own
// (own advertisers, ads, campaigns and ledger) so its line of the table is its own; at the end
// the whole run is checked again and conservation (src/store/audit.ts) must balance.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { drainAndCheck, type CheckResult } from '../../src/chaos/checker.ts';
import { prepareClusterForm, type ClusterForm } from '../../src/cluster/cluster-command.ts';
import { busiestLeader, describePartitions, waitFullyInSync } from '../../src/cluster/kafka-cluster.ts';
import { cutOff, heal } from '../../src/cluster/netns.ts';
import type { ServerState } from '../../src/cluster/haproxy.ts';
import { destroyNetworkSync } from '../../src/cluster/topology.ts';
import { loadConfig, type Config } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { Ledger } from '../../src/simulate/ledger.ts';
import { simulate } from '../../src/simulate/simulator.ts';
import { createApiKey } from '../../src/store/api-keys.ts';
import { conservation } from '../../src/store/audit.ts';
import { openStore } from '../../src/store/open-store.ts';
import type { Store } from '../../src/store/store.ts';
import { leftovers, onExitOrSignal, randomTopologyName, testStateDir } from './test-cluster.ts';

export type FaultName = 'kill-sink' | 'kill-query' | 'kill-clickhouse-replica'
  | 'kill-kafka-leader' | 'cut-kafka-broker' | 'kill-taskmanager' | 'kill-jobmanager';
export const FAULT_NAMES: readonly FaultName[] = ['kill-sink', 'kill-query', 'kill-clickhouse-replica', 'kill-kafka-leader', 'cut-kafka-broker', 'kill-taskmanager', 'kill-jobmanager'];

export interface FaultLine {
  fault: FaultName;
  sent: number;
  accepted: number;
  unknown: number;
  counted: number;
  lost: number;
  duplicated: number;
  queryErrors: number;
  recovery: string;
  /**
   * Reads through the balancer during the phase that got no answer from a query API: network
   * errors, no answer in 30 s, 502/504 (HAProxy found no server). A 503 with Retry-After (the
   * API shedding load) is an answer. `readStatuses` has every outcome.
   */
  readFailures: number;
  reads: number;
  readStatuses: Record<string, number>;
  /** Clicks accepted after the fault was injected (traffic flowed through it). */
  acceptedAfterFault: number;
}

export interface PipelineRunOptions {
  readonly faults: readonly FaultName[];
  /**
   * Each phase sends at `rate` for `phaseMs` (at most rate × phaseMs distinct clicks; fewer
   * when the gateways cannot keep up on a loaded box); the fault comes a third of the way in,
   * so traffic flows before, during and after it.
   */
  readonly phaseMs: number;
  readonly rate: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const MINUTE = 60_000;
const HOUR = 3_600_000;

export interface PipelineRun {
  lines: FaultLine[];
  whole: CheckResult & { drainMs: number };
  imbalanced: number;
  startMs: number;
  totalMs: number;
}

/** Hooks of node:test (`after`), so the cluster goes away whatever happens. */
export async function runPipelineOnCluster(hooks: { after(fn: () => unknown): void }, o: PipelineRunOptions, note: (s: string) => void): Promise<PipelineRun> {
  const t0 = Date.now();
  const dataDir = await testStateDir('pipe');
  // The Kafka, Flink and ZooKeeper jars are large: share the project's cache.
  await mkdir(join(loadConfig().dataDir, 'cache'), { recursive: true });
  await symlink(join(loadConfig().dataDir, 'cache'), join(dataDir, 'cache'));
  await mkdir(join(dataDir, 'cluster'), { recursive: true, mode: 0o700 });
  const { subnet } = randomTopologyName();
  const [keyId, secret] = ['pipetest', randomBytes(32).toString('hex')];
  // Limits far above the test's traffic: every click comes from the host's bridge address.
  const config: Config = loadConfig(process.env, {
    dataDir, clusterSubnet: subnet, signingKeys: `${keyId}:${secret}`, logLevel: 'warn',
    rateLimitPerSec: 1_000_000, rateLimitBurst: 1_000_000,
    queryRateLimitPerSec: 100_000, queryRateLimitBurst: 100_000, queryIpRateLimitPerSec: 100_000, queryIpRateLimitBurst: 100_000,
  });
  const logger = createLogger('cluster-test', 'warn');
  const stateFile = join(dataDir, 'cluster', 'network.json');
  const form: ClusterForm = await prepareClusterForm(config, stateFile, logger);
  let store: Store | undefined;
  // Last resort (the process dies): kill whatever runs in our namespaces, delete them.
  const unhook = onExitOrSignal(() => destroyNetworkSync(stateFile));
  hooks.after(async () => {
    await store?.close().catch(() => undefined);
    await form.stop();
    unhook();
    const left = await leftovers(form.topology);
    await rm(dataDir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'no namespace or link of the test is left');
  });

  const printed = await form.start();
  const startMs = Date.now() - t0;
  note(`cluster started in ${(startMs / 1000).toFixed(0)} s:\n${printed}`);
  const tiers = form.stateless!;
  const tier = tiers.tier;
  const waitState = async (server: string, want: (s: string) => boolean, timeoutMs: number): Promise<void> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const s = (await tier.serverStates().catch(() => [] as ServerState[])).find((x) => x.server === server);
      if (s && want(s.status)) return;
      if (Date.now() > end) throw new Error(`${server} never reached the wanted state (last: ${s?.status ?? 'unknown'}); logs in ${dataDir}/cluster/stateless`);
      await sleep(200);
    }
  };
  for (const s of ['gw-1', 'gw-2', 'query-1', 'query-2']) await waitState(s, (x) => x === 'UP', 300_000);

  // The host reaches every replica through the bridge; keys and the conservation audit use the same failover list.
  const replicas = form.clickhouse.clickhouse.status();
  store = await openStore({ ...config, clickhouseUrl: replicas.map((r) => r.url).join(','), clickhouseCluster: 'adclick' }, logger);
  const apiUrl = tier.queryUrl!;
  const keys = new Map<number, string>();
  const wholeLedger = Ledger.inMemory();
  const lines: FaultLine[] = [];
  const allAds: number[] = [];
  const allCampaigns: number[] = [];

  for (const [phase, fault] of o.faults.entries()) {
    const advertiserIdBase = 7000 + phase * 10;
    const adIdBase = 700_000 + phase * 1000;
    const campaignIdBase = 70_000 + phase * 100;
    const [ads, campaigns, advertisers] = [40, 8, 2];
    for (let a = 0; a < advertisers; a++) keys.set(advertiserIdBase + a, (await createApiKey(store, advertiserIdBase + a)).api_key);
    const adIds = Array.from({ length: ads }, (_, i) => adIdBase + i);
    const campaignIds = Array.from({ length: campaigns }, (_, i) => campaignIdBase + i);
    allAds.push(...adIds);
    allCampaigns.push(...campaignIds);
    const ledger = Ledger.inMemory();
    const phaseStart = Date.now();

    // Reads through the balancer all along (one every 200 ms): they must keep answering.
    let reads = 0;
    let readFailures = 0;
    const readStatuses: Record<string, number> = {};
    let reading = true;
    const reader = (async () => {
      const key = keys.get(advertiserIdBase)!;
      while (reading) {
        reads++;
        try {
          const res = await fetch(`${apiUrl}/v1/campaigns/${campaignIdBase}/clicks?from=${Math.floor(phaseStart / HOUR) * HOUR}&to=${Math.ceil((phaseStart + 1) / HOUR) * HOUR + HOUR}&granularity=1m`,
            { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(30_000) });
          await res.arrayBuffer();
          readStatuses[res.status] = (readStatuses[res.status] ?? 0) + 1;
          if (res.status === 502 || res.status === 504) readFailures++;
        } catch (err) {
          const kind = (err as Error).name === 'TimeoutError' ? 'timeout' : 'network';
          readStatuses[kind] = (readStatuses[kind] ?? 0) + 1;
          readFailures++;
        }
        await sleep(200);
      }
    })();

    let generated = 0;
    const traffic = simulate({
      url: tier.gatewayUrl, keyId, secret, rate: o.rate, durationMs: o.phaseMs,
      seed: 1000 + phase, ads, campaigns, advertisers, adIdBase, campaignIdBase, advertiserIdBase,
      ledger, concurrency: 16, maxAttempts: 30, requestTimeoutMs: 10_000, backoffMaxMs: 2000, drainTimeoutMs: 120_000,
      onProgress: (p) => { generated = p.generated; }, progressIntervalMs: 200,
    });
    await sleep(o.phaseMs / 3);
    const acceptedBeforeFault = ledger.size;

    let recovery = '';
    let countsExactS = '?';
    let after: () => Promise<void> = async () => undefined;
    const faultAt = Date.now();
    if (fault === 'kill-sink') {
      tier.kill('sink-1');
      note(`phase ${phase + 1}: kill -9 sink-1 after ${generated} clicks generated; sink-2 must take its partitions`);
      after = async () => {
        const alive = tier.status().find((s) => s.name === 'sink-1')!.alive;
        assert.equal(alive, false, 'sink-1 stayed dead while its partitions were counted by sink-2');
        tier.startInstance('sink-1');
      };
    } else if (fault === 'kill-query') {
      tier.kill('query-1');
      note(`phase ${phase + 1}: kill -9 query-1 after ${generated} clicks; reads go on through the balancer`);
      await waitState('query-1', (s) => s.startsWith('DOWN'), 60_000);
      const outMs = Date.now() - faultAt;
      after = async () => {
        const restartAt = Date.now();
        tier.startInstance('query-1');
        await waitState('query-1', (s) => s === 'UP', 300_000);
        recovery = `out of rotation ${(outMs / 1000).toFixed(1)} s after the kill; back ${((Date.now() - restartAt) / 1000).toFixed(1)} s after its restart`;
      };
    } else if (fault === 'kill-kafka-leader' || fault === 'cut-kafka-broker') {
      // The broker leading the most partitions of the clicks topic: the gateways' producers,
      // the Flink source and its transactional producers all lose it at once.
      const topics = [config.clicksTopic];
      const victim = busiestLeader(await describePartitions(form.kafka.bootstrap, topics));
      const ns = form.kafka.node(victim).netns;
      if (fault === 'kill-kafka-leader') {
        await form.kafka.kill(victim);
        note(`phase ${phase + 1}: kill -9 Kafka broker ${victim} (busiest leader of ${topics[0]}) after ${generated} clicks; restarted 10 s later`);
        await sleep(10_000);
        await form.kafka.restart(victim);
      } else {
        await cutOff(ns);
        note(`phase ${phase + 1}: Kafka broker ${victim} (busiest leader of ${topics[0]}) cut off from every node after ${generated} clicks; healed 30 s later`);
        await sleep(30_000);
        await heal(ns);
      }
      const inSync = waitFullyInSync(form.kafka.bootstrap, topics, 300_000).then(() => Date.now() - faultAt);
      inSync.catch(() => undefined);
      after = async () => {
        const inSyncMs = await inSync;
        recovery = `broker ${victim} ${fault === 'kill-kafka-leader' ? 'down 10 s' : 'cut 30 s'}; every partition of ${topics[0]} in sync ${(inSyncMs / 1000).toFixed(1)} s after the fault; counts exact ${countsExactS} s after it`;
      };
    } else if (fault === 'kill-taskmanager' || fault === 'kill-jobmanager') {
      // The supervisor of `cluster up` starts a killed Flink JVM again (a TaskManager
      // re-registers; a JobManager rejoins as standby). The job restores from its latest
      // checkpoint: its transactional output is read_committed downstream, so exact.
      const leaderBefore = fault === 'kill-jobmanager' ? await form.flink.waitLeader(120_000) : undefined;
      const victim = leaderBefore?.name ?? 'flink-tm-1';
      await form.flink.kill(victim);
      note(`phase ${phase + 1}: kill -9 Flink ${victim}${leaderBefore ? ' (the leading JobManager)' : ''} after ${generated} clicks`);
      let leaderMs = 0;
      if (leaderBefore) {
        const next = await form.flink.waitLeader(300_000, victim);
        leaderMs = Date.now() - faultAt;
        note(`  ${next.name} leads ${(leaderMs / 1000).toFixed(1)} s after the kill`);
      }
      after = async () => {
        recovery = `${leaderBefore ? `new leader in ${(leaderMs / 1000).toFixed(1)} s; ` : ''}counts exact ${countsExactS} s after the kill`;
      };
    } else {
      // The replica the first serving instance starts on: shard 1's first replica, which
      // load_balancing in_order prefers for shard 1's reads and writes.
      const victim = replicas[0]!.name;
      await form.clickhouse.clickhouse.kill(victim);
      note(`phase ${phase + 1}: kill -9 ClickHouse ${victim} after ${generated} clicks; restarted 20 s later`);
      await sleep(20_000);
      const restartAt = Date.now();
      await form.clickhouse.clickhouse.startReplica(victim);
      const backMs = Date.now() - restartAt;
      after = async () => {
        // Caught up: its replication queue is empty and it holds as many aggregate rows as its peer.
        const peer = replicas.find((r) => r.shard === replicas[0]!.shard && r.name !== victim)!;
        const count = async (url: string) => Number((await (await fetch(`${url}/?query=${encodeURIComponent('SELECT count() FROM adclick_local.click_aggregates')}`)).text()).trim());
        const end = Date.now() + 300_000;
        let caughtUp = false;
        let lastText = '';
        while (Date.now() < end) {
          const [mine, theirs] = await Promise.all([count(replicas[0]!.url).catch(() => -1), count(peer.url).catch(() => -2)]);
          lastText = `${victim} ${mine} rows, ${peer.name} ${theirs}`;
          if (mine === theirs && mine > 0) { caughtUp = true; break; }
          await sleep(1000);
        }
        recovery = `down 20 s; answering ${(backMs / 1000).toFixed(1)} s after its restart; ${caughtUp ? 'caught up' : 'NOT caught up'} (${lastText}) ${((Date.now() - restartAt) / 1000).toFixed(1)} s after it`;
        assert.ok(caughtUp, `the restarted replica caught up with its peer: ${lastText}`);
      };
    }
    const sim = await traffic;
    const acceptedAfterFault = ledger.size - acceptedBeforeFault;
    for (const e of ledger) wholeLedger.record(e);
    const checked = await drainAndCheck(() => ({ apiUrl, apiKey: keys.get(advertiserIdBase)!, keys, ledger, adIds, campaignIds, fromMs: phaseStart - 2 * MINUTE, toMs: Date.now() + MINUTE }),
      { timeoutMs: 300_000, stableMs: 90_000, note });
    countsExactS = ((Date.now() - faultAt) / 1000).toFixed(1);
    if (fault === 'kill-sink') recovery = `counts exact ${countsExactS} s after the kill (drain ${(checked.drainMs / 1000).toFixed(1)} s)`;
    await after();
    reading = false;
    await reader;
    const line: FaultLine = {
      fault, sent: sim.generated, accepted: ledger.size, unknown: sim.unknown.length, counted: checked.counted, lost: checked.lost, duplicated: checked.duplicated,
      queryErrors: checked.errors, recovery, readFailures, reads, readStatuses, acceptedAfterFault,
    };
    lines.push(line);
    note(`  ${JSON.stringify(line)}${checked.samples.length ? `\n  samples: ${checked.samples.join('; ')}` : ''}`);
  }

  // The whole run once more, and conservation over every window it touched.
  const whole = await drainAndCheck(() => ({ apiUrl, apiKey: keys.values().next().value!, keys, ledger: wholeLedger, adIds: allAds, campaignIds: allCampaigns, fromMs: t0 - 2 * MINUTE, toMs: Date.now() + MINUTE }),
    { timeoutMs: 300_000, stableMs: 90_000, note });
  const audit = await conservation(store, { fromMs: Math.floor((t0 - 2 * MINUTE) / MINUTE) * MINUTE, toMs: Math.floor(Date.now() / MINUTE) * MINUTE });
  if (audit.imbalanced) note(`conservation: ${audit.imbalanced} window(s) unbalanced: ${JSON.stringify(audit.windows.filter((w) => w.imbalance !== 0).slice(0, 5))}`);
  return { lines, whole, imbalanced: audit.imbalanced, startMs, totalMs: Date.now() - t0 };
}


export function renderFaultTable(lines: readonly FaultLine[]): string {
  const head = 'fault                    sent  accepted  unknown  counted  lost  duplicated  reads(failed)  recovery';
  return [head, ...lines.map((l) => `${l.fault.padEnd(23)} ${String(l.sent).padStart(5)} ${String(l.accepted).padStart(9)} ${String(l.unknown).padStart(8)} ${String(l.counted).padStart(8)} ${String(l.lost).padStart(5)} ${String(l.duplicated).padStart(11)}  ${`${l.reads}(${l.readFailures})`.padStart(13)}  ${l.recovery}`)].join('\n');
}

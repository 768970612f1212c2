// The Flink job on a standalone session cluster with JobManager HA (2 JobManagers on Flink's
// ZooKeeper HA services, 2 TaskManagers, each a JVM in its own namespace) reading and writing
// the 3-node Kafka cluster, submitted once through the leader's REST API (/jars/upload,
// /jars/:id/run). A ledger of clicks written straight to the clicks topic must come out
// exactly: every click once in clicks-deduped, and the 1-minute counts adding up to the ledger,
// also when a TaskManager is killed with SIGKILL mid-stream, when the leading JobManager is
// (the standby recovers the job by itself; the killed one rejoins as standby), and when the job
// is rescaled from 2 to 4 subtasks with stop-with-savepoint while clicks flow.
//   node --import tsx --test test/cluster/flink-cluster.test.ts
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startLedgerProducer, type LedgerResult } from '../../src/cluster/kafka-ledger.ts';
import { readLeaderRestUrl } from '../../src/cluster/flink-cluster.ts';
import { clickRecord, settle, watchJobOutput, type JobLedgerCheck } from '../../src/cluster/flink-ledger.ts';
import { flinkTierStatus } from '../../src/cluster/flink-tier.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { ensureTopics, kafkaDurability, pipelineTopics } from '../../src/stack/topics.ts';
import { flinkJobFlags } from '../../src/stack/up.ts';
import { leftovers } from './test-cluster.ts';
import { startTestFlinkCluster } from './test-flink-cluster.ts';

const RATE = 40;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const config = loadConfig();
const logger = createLogger('flink-cluster-test', 'warn');

const cluster = await startTestFlinkCluster({ after });
const { kafka, flink, topology } = cluster;
const bootstrap = kafka.bootstrap;
console.log(`# cluster up in ${cluster.startMs} ms: ${[...kafka.status(), ...flink.status()].map((n) => `${n.name}@${n.address} pid ${n.pid}`).join(', ')}`);
after(async () => {
  await cluster.stop();
  assert.deepEqual(await leftovers(topology), [], 'no namespace or link of the test cluster is left');
});

await ensureTopics(bootstrap, pipelineTopics(config, kafkaDurability(config, 'cluster', 3)), logger);
const submission = { jar: cluster.jar, args: flinkJobFlags(config, bootstrap, flink.checkpointDir) };
const output = await watchJobOutput(bootstrap, { deduped: 'clicks-deduped', aggregates: 'click-aggregates' });
after(() => output.stop());
let jobId = '';

function report(name: string, r: LedgerResult, c: JobLedgerCheck, extra: Record<string, unknown>): void {
  console.log(`# ${name}: sent ${r.sent}, acked ${c.acked}, failed ${r.failed.length}, counted ${c.counted}, ` +
    `lost ${c.lost.length}, duplicated ${c.duplicated.length} ${JSON.stringify(extra)}`);
}

/** Writes ledger clicks for `beforeMs`, runs `fault` (its result is reported), writes on for `afterMs`. */
async function ledgerAround(adIds: number[], beforeMs: number, fault: () => Promise<Record<string, unknown>>, afterMs: number) {
  const producer = await startLedgerProducer({
    bootstrap, topic: config.clicksTopic, acks: -1, idempotent: true, ratePerSec: RATE, maxRecords: RATE * 600,
    message: (id) => clickRecord(id, adIds),
  });
  await sleep(beforeMs);
  let extra: Record<string, unknown> = {};
  let r: LedgerResult;
  try {
    extra = await fault();
    await sleep(afterMs);
  } finally {
    r = await producer.stop();
  }
  assert.ok(r.acked.length > 0 && r.failed.length === 0, `every ledger click acknowledged (failed ${r.failed.length}: ${r.firstError})`);
  const prefix = r.acked[0]!.split('-')[0]! + '-';
  const c = await settle(r.acked, output, adIds, prefix, 300_000);
  return { r, c, extra };
}

test('the job submitted through the REST API runs on both TaskManagers and the JobManager survives it', async () => {
  const jmPid = flink.pid('flink-jm');
  jobId = await flink.submit(submission);
  const ms = await flink.waitJobRunning(jobId, 300_000);
  // Long enough for the program's main (still running in the JobManager after submission) to end.
  await sleep(15_000);
  assert.equal(flink.pid('flink-jm'), jmPid, 'the JobManager JVM still runs after the submission');
  assert.equal((await flink.jobState(jobId)).state, 'RUNNING');
  const tms = await flink.rest<{ taskmanagers: { id: string; slotsNumber: number; freeSlots: number }[] }>('/taskmanagers');
  assert.equal(tms.taskmanagers.length, 2);
  for (const tm of tms.taskmanagers) assert.ok(tm.freeSlots < tm.slotsNumber, `TaskManager ${tm.id} runs part of the job`);
  console.log(`# submitted ${jobId}, all tasks running ${ms} ms after /jars/run answered`);
});

test('kill -9 a TaskManager mid-stream: the job recovers and the counts are exact', async () => {
  assert.ok(jobId, 'needs the job of the first test');
  const { r, c, extra } = await ledgerAround([2001, 2002, 2003, 2004], 20_000, async () => {
    const t0 = Date.now();
    await flink.kill('flink-tm-1');
    // The TaskManager is started again at once; the job does not wait for it (free slots on tm-2).
    const back = flink.restartTaskManager('flink-tm-1').then(() => Date.now() - t0);
    // Recovered = a checkpoint completed after the kill (output commits at checkpoints).
    while (((await flink.latestCheckpoint(jobId).catch(() => undefined))?.completedAtMs ?? 0) <= t0) await sleep(500);
    const recoveredMs = Date.now() - t0;
    const tmBackMs = await back;
    await flink.waitJobRunning(jobId, 300_000);
    return { firstCheckpointAfterKillMs: recoveredMs, tmBackMs };
  }, 20_000);
  report('kill -9 TaskManager', r, c, extra);
  assert.deepEqual(c.lost, [], 'no acknowledged click lost');
  assert.deepEqual(c.duplicated, [], 'no click counted twice');
  assert.equal(c.counted, c.acked, 'the 1-minute counts add up to the ledger');
});

test('kill -9 the leading JobManager mid-stream: the standby takes over, recovers the same job from its checkpoint by itself, counts exact; the killed one rejoins as standby', async () => {
  assert.ok(jobId, 'needs the job of the first test');
  const leaderBefore = await flink.waitLeader(60_000);
  const standby = flink.options.jobManagers.find((n) => n.name !== leaderBefore.name)!;
  // The standby's REST endpoint serves through the leader: it must be up before the fault.
  assert.ok(await flink.rest('/overview'), 'the leader answers');
  let before = await flink.latestCheckpoint(jobId);
  while (!before) { await sleep(1000); before = await flink.latestCheckpoint(jobId); }
  const { r, c, extra } = await ledgerAround([3001, 3002, 3003, 3004], 20_000, async () => {
    const t0 = Date.now();
    await flink.kill(leaderBefore.name);
    const newLeader = await flink.waitLeader(300_000, leaderBefore.name);
    const leaderMs = Date.now() - t0;
    // The same job, recovered by the new leader from the HA store (not resubmitted by us).
    const runningMs = (await flink.waitJobRunning(jobId, 300_000)) + leaderMs;
    let cp = await flink.latestCheckpoint(jobId).catch(() => undefined);
    while ((cp?.completedAtMs ?? 0) <= t0) { await sleep(500); cp = await flink.latestCheckpoint(jobId).catch(() => undefined); }
    const recoveredMs = Date.now() - t0;
    const restored = (await flink.rest<{ latest?: { restored?: { id: number; external_path: string } | null } }>(`/jobs/${jobId}/checkpoints`)).latest?.restored;
    const t1 = Date.now();
    await flink.restartJobManager(leaderBefore.name);
    const rejoinMs = Date.now() - t1;
    return { killed: leaderBefore.name, newLeader: newLeader.name, leaderElectedMs: leaderMs, jobRunningMs: runningMs, firstCheckpointAfterKillMs: recoveredMs, firstCheckpointAfterKillId: cp!.id, restoredFrom: restored?.external_path, restoredId: restored?.id, checkpointBeforeKill: before!.id, rejoinedMs: rejoinMs };
  }, 20_000);
  report('kill -9 leading JobManager (HA)', r, c, extra);
  assert.equal(extra.newLeader, standby.name, 'the standby leads');
  assert.ok(typeof extra.restoredId === 'number' && extra.restoredId >= before!.id && String(extra.restoredFrom).includes('chk-'),
    `the job restored its own latest checkpoint (restored ${String(extra.restoredId)} ${String(extra.restoredFrom)}, latest before the kill ${before!.id})`);
  const jobs = await flink.jobs();
  assert.deepEqual(jobs.map((j) => [j.jid, j.state]), [[jobId, 'RUNNING']], 'one job, the same id: recovered, not resubmitted');
  // The killed JobManager is back as a standby: it answers, the leader did not move back.
  assert.equal((await flink.leader())?.name, standby.name, 'leadership stays with the new leader');
  assert.ok(flink.pid(leaderBefore.name), 'the killed JobManager runs again');
  const st = await flinkTierStatus({ clusterFlinkRestPort: flink.restPort }, topology, () => readLeaderRestUrl(flink.options.ha));
  assert.equal(st.nodeState.get(standby.name), 'jobmanager answering, leader', st.lines.join('\n'));
  assert.equal(st.nodeState.get(leaderBefore.name), 'jobmanager answering, standby', st.lines.join('\n'));
  assert.deepEqual(c.lost, [], 'no acknowledged click lost');
  assert.deepEqual(c.duplicated, [], 'no click counted twice');
  assert.equal(c.counted, c.acked, 'the 1-minute counts add up to the ledger');
});

test('rescale 2 → 4 with stop-with-savepoint while clicks flow: the counts are exact', async () => {
  assert.ok(jobId, 'needs the job of the earlier tests');
  const { r, c, extra } = await ledgerAround([4001, 4002, 4003, 4004], 20_000, async () => {
    const t0 = Date.now();
    const savepoint = await flink.stopWithSavepoint(jobId);
    const stoppedMs = Date.now() - t0;
    const args = flinkJobFlags({ ...config, flinkParallelism: 4 }, bootstrap, flink.checkpointDir);
    jobId = await flink.submit({ ...submission, args, restoreFrom: savepoint });
    await flink.waitJobRunning(jobId, 300_000);
    const runningMs = Date.now() - t0;
    const j = await flink.rest<{ vertices: { parallelism: number }[] }>(`/jobs/${jobId}`);
    while (((await flink.latestCheckpoint(jobId).catch(() => undefined))?.completedAtMs ?? 0) <= t0) await sleep(500);
    return { savepoint, parallelism: Math.max(...j.vertices.map((v) => v.parallelism)), stoppedMs, jobRunningMs: runningMs, firstCheckpointMs: Date.now() - t0 };
  }, 20_000);
  report('rescale 2 → 4 (stop-with-savepoint)', r, c, extra);
  assert.equal(extra.parallelism, 4, 'the job runs with parallelism 4 after the rescale');
  const o = await flink.overview();
  assert.equal(o['slots-available'], 0, 'all 4 slots of the 2 TaskManagers are in use');
  assert.deepEqual(c.lost, [], 'no acknowledged click lost');
  assert.deepEqual(c.duplicated, [], 'no click counted twice');
  assert.equal(c.counted, c.acked, 'the 1-minute counts add up to the ledger');
});

// The Flink job on a standalone session cluster (JobManager + 2 TaskManagers, each a JVM in
// its own namespace) reading and writing the 3-node Kafka cluster, submitted through the
// JobManager's REST API (/jars/upload, /jars/:id/run) as on any session cluster. A ledger of
// clicks written straight to the clicks topic must come out exactly: every click once in
// clicks-deduped, and the 1-minute counts adding up to the ledger, also when a TaskManager
// and then the JobManager is killed with SIGKILL mid-stream and started again, and when the job
// is rescaled from 2 to 4 subtasks with stop-with-savepoint while clicks flow.
//   node --import tsx --test test/cluster/flink-cluster.test.ts
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startLedgerProducer, type LedgerResult } from '../../src/cluster/kafka-ledger.ts';
import { clickRecord, settle, watchJobOutput, type JobLedgerCheck } from '../../src/cluster/flink-ledger.ts';
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

test('kill -9 the JobManager mid-stream: restarted, the job resumes from its checkpoint and the counts are exact', async () => {
  assert.ok(jobId, 'needs the job of the first test');
  const before = await flink.latestCheckpoint(jobId);
  const { r, c, extra } = await ledgerAround([3001, 3002, 3003, 3004], 20_000, async () => {
    const t0 = Date.now();
    await flink.kill('flink-jm');
    const res = await flink.restartJobManager(submission);
    const submittedMs = Date.now() - t0;
    jobId = res.jobId;
    await flink.waitJobRunning(jobId, 300_000);
    const runningMs = Date.now() - t0;
    while (!(await flink.latestCheckpoint(jobId))) await sleep(500);
    return { restoredFrom: res.restoredFrom, resubmittedMs: submittedMs, jobRunningMs: runningMs, firstCheckpointAfterKillMs: Date.now() - t0 };
  }, 20_000);
  report('kill -9 JobManager', r, c, extra);
  assert.ok(before && typeof extra.restoredFrom === 'string' && extra.restoredFrom.includes('chk-'), `restored from a retained checkpoint (${String(extra.restoredFrom)})`);
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

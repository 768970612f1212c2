// The real Flink job (the jar `adclick up` runs) on a real Kafka broker:
// - W3C trace context: a traceparent on a click in `clicks` comes out, same trace id and a
//   new span id, on the job's deduped, aggregate and dead-letter records, and the sink's
//   real consumer reads it (SinkMessage.traceId);
// - pipeline metrics: the serving poller reads the job's REST API (up, checkpoints, the
//   dedup/dead-letter counters) and the sink group's lag from the broker;
// - `adclick status`'s outside health check for the job answers healthy;
// - the sinks' Kafka transactions: timeout = the broker's maximum, ids from a bounded pool.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { Registry } from 'prom-client';
import { PipelinePoller } from '../../src/observability/pipeline-poller.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { ClickEvent } from '../../src/shared/proto.ts';
import type { SinkMessage } from '../../src/sink/batch.ts';
import { createConsumerLagReader } from '../../src/sink/consumer-lag.ts';
import { createKafkaSinkConsumer } from '../../src/sink/kafka-consumer.ts';
import { parseTraceparent } from '../../src/sink/trace-context.ts';
import { ensureFlinkJar } from '../../src/stack/flink-jar.ts';
import { TRANSACTION_MAX_TIMEOUT_MS } from '../../src/stack/kafka-broker.ts';
import { httpProbe } from '../../src/stack/health.ts';
import { ensureTopics, pipelineTopics } from '../../src/stack/topics.ts';
import { sumMetric } from '../../src/stack/status-figures.ts';
import { freePort, startTestKafka } from '../helpers/kafka.ts';

const require = createRequire(import.meta.url);
const execFileP = promisify(execFile);
const { KafkaJS } = require('@confluentinc/kafka-javascript');
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const logger = createLogger('test', 'warn');

const TRACE_A = '0af7651916cd43dd8448eb211c80319c';
const TRACE_RETRY = '1af7651916cd43dd8448eb211c80319d';
const TRACE_POISON = '2af7651916cd43dd8448eb211c80319e';
const parent = (trace: string) => `00-${trace}-b7ad6b7169203331-01`;

test('trace context and pipeline metrics through the real Flink job', { timeout: 420_000 }, async () => {
  const jar = await ensureFlinkJar(repoRoot, logger);
  const kafka = await startTestKafka({ after });
  await ensureTopics(kafka.bootstrap, pipelineTopics(loadConfig({}, { clicksPartitions: 1 })), logger);

  const dir = mkdtempSync(join(tmpdir(), 'adclick-obs-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const restPort = await freePort();
  const job = spawn('java', [
    '-Xmx768m', '-cp', jar, 'io.adclick.flink.ClickAggregationJob',
    '--bootstrap-servers', kafka.bootstrap, '--checkpoint-dir', pathToFileURL(join(dir, 'checkpoints')).href,
    '--checkpoint-interval-ms', '1000', '--early-fire-interval-ms', '500', '--parallelism', '1',
    '--web-ui-port', String(restPort), '--transactional-id-prefix', `obs-${restPort}`, '--group-id', `obs-${restPort}`,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  job.stderr.on('data', (b: Buffer) => { stderr.push(b.toString()); if (stderr.length > 400) stderr.shift(); });
  after(() => { if (job.exitCode === null) job.kill('SIGKILL'); });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Flink job not ready:\n${stderr.join('').slice(-3000)}`)), 180_000);
    job.stdout.on('data', (b: Buffer) => { if (b.toString().includes('ADCLICK_FLINK_READY')) { clearTimeout(timer); resolve(); } });
    job.once('exit', (c) => { clearTimeout(timer); reject(new Error(`Flink job exited ${c}:\n${stderr.join('').slice(-3000)}`)); });
  });
  const rest = `http://127.0.0.1:${restPort}`;
  // (The REST server's first answers can take seconds on a busy machine: a few tries.)
  let healthy = false;
  for (let i = 0; i < 10 && !healthy; i++) healthy = await httpProbe(`${rest}/jobs/overview`, 3000, '"state":"RUNNING"');
  assert.equal(healthy, true, 'status re-checks the job from outside');
  const stopped = await httpProbe(`${rest}/jobs/overview`, 3000, '"state":"NO_SUCH_STATE"');
  assert.equal(stopped, false, 'the body check can fail');

  // One click, its retry (another request: another trace) and a poison record, each with a traceparent.
  const now = Date.now();
  const click = Buffer.from(ClickEvent.encode({ impressionId: 'imp_trace_0001', eventType: 'click', adId: 42, campaignId: 5, advertiserId: 7, userId: 'u1', eventTimeMs: now, receivedAtMs: now, keyId: 'dev', gatewayId: 'gw' }).finish());
  const producer = new KafkaJS.Kafka({ kafkaJS: { brokers: [kafka.bootstrap], logLevel: KafkaJS.logLevel.NOTHING } }).producer({ kafkaJS: { idempotent: true } });
  await producer.connect();
  await producer.send({ topic: 'clicks', messages: [
    { key: '42', value: click, headers: { traceparent: parent(TRACE_A) } },
    { key: '42', value: click, headers: { traceparent: parent(TRACE_RETRY) } },
    { key: '42', value: Buffer.from([0x0a, 0xff, 0x7f]), headers: { traceparent: parent(TRACE_POISON) } },
  ] });
  await producer.disconnect();

  // The sink's own consumer (read_committed) on the job's output topics.
  const got: SinkMessage[] = [];
  const consumer = createKafkaSinkConsumer({ brokers: kafka.bootstrap, topics: ['clicks-deduped', 'click-aggregates', 'clicks-dlq'], groupId: 'obs-sink', logger });
  await consumer.start((msgs) => { got.push(...msgs); });
  after(() => consumer.stop());
  const has = (topic: string, trace: string) => got.some((m) => m.topic === topic && m.traceId === trace);
  const done = () => (has('clicks-deduped', TRACE_A) || has('clicks-deduped', TRACE_RETRY)) && got.some((m) => m.topic === 'click-aggregates') && has('clicks-dlq', TRACE_POISON);
  for (let i = 0; i < 600 && !done(); i++) {
    await new Promise((r) => setTimeout(r, 200));
  }
  const deduped = got.filter((m) => m.topic === 'clicks-deduped');
  assert.equal(deduped.length, 1, 'one click passed the dedup');
  const kept = deduped[0]!.traceId;
  assert.ok(kept === TRACE_A || kept === TRACE_RETRY, `the deduped click carries the trace of one of its records: ${kept}`);
  const aggs = got.filter((m) => m.topic === 'click-aggregates');
  assert.ok(aggs.length >= 1, 'aggregates emitted');
  for (const a of aggs) assert.equal(a.traceId, kept, 'an aggregate carries the trace of the click that changed it');
  assert.ok(has('clicks-dlq', TRACE_POISON), 'the dead letter carries the trace of the poison record');

  // Pipeline metrics: the poller against the real REST API and broker.
  const registry = new Registry();
  // As a sink that committed offset 0 everywhere (nothing consumed yet).
  const committedZero = new Map<string, number>();
  for (const t of ['clicks-deduped', 'clicks-dlq']) for (let p = 0; p < 8; p++) committedZero.set(`${t}\u0000${p}`, 0);
  const lag = createConsumerLagReader({ brokers: kafka.bootstrap, groupId: 'obs-unconsumed', topics: ['clicks-deduped', 'clicks-dlq'], committed: () => committedZero });
  after(() => lag.close());
  const poller = new PipelinePoller({ registry, logger, flinkRestUrl: rest, watermark: async () => null, consumerLag: () => lag.read() });
  let text = '';
  for (let i = 0; i < 60; i++) {
    await poller.pollOnce();
    text = await registry.metrics();
    if ((sumMetric(text, 'adclick_flink_duplicates_dropped') ?? 0) >= 1 && (sumMetric(text, 'adclick_flink_dead_letters') ?? 0) >= 1 && (sumMetric(text, 'adclick_flink_checkpoints', { state: 'completed' }) ?? 0) >= 1
      && sumMetric(text, 'adclick_flink_restarts') !== null) break; // Flink's REST metrics appear with a fetch delay
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.equal(sumMetric(text, 'adclick_flink_up'), 1, text);
  assert.ok((sumMetric(text, 'adclick_flink_checkpoints', { state: 'completed' }) ?? 0) >= 1, 'checkpoints completed');
  assert.ok((sumMetric(text, 'adclick_flink_checkpoint_duration_seconds') ?? -1) >= 0, 'checkpoint duration');
  assert.equal(sumMetric(text, 'adclick_flink_duplicates_dropped'), 1, 'the retry was dropped by the Flink dedup');
  assert.equal(sumMetric(text, 'adclick_flink_dead_letters'), 1, 'the poison record was dead-lettered');
  const jid = ((await (await fetch(`${rest}/jobs/overview`)).json()) as { jobs: { jid: string }[] }).jobs[0]!.jid;
  assert.equal(sumMetric(text, 'adclick_flink_restarts'), 0, await fetch(`${rest}/jobs/${jid}/metrics`).then((r) => r.text()));
  // Committed 0: lag = every committed record (plus transaction markers) on those topics.
  assert.ok((sumMetric(text, 'adclick_sink_consumer_group_lag', { topic: 'clicks-deduped' }) ?? 0) >= 1, text);
  assert.ok((sumMetric(text, 'adclick_sink_consumer_group_lag', { topic: 'clicks-dlq' }) ?? 0) >= 1, text);

  // Issue #15, defects 6 and 7 on the real job and broker. The sinks' transaction timeout is the
  // broker's maximum (read at start), and the committer counters the poller turns into the
  // commit-failure alarm are found on the real job (a failure counter only exists beside them).
  assert.match(stderr.join(''), new RegExp(`Kafka transaction timeout ${TRANSACTION_MAX_TIMEOUT_MS} ms \\(broker maximum ${TRANSACTION_MAX_TIMEOUT_MS} ms\\), transactional ids: pooling`));
  assert.ok((sumMetric(text, 'adclick_flink_committables_committed') ?? 0) >= 1, `committer metrics read: ${text.split('\n').filter((l) => l.includes('commit')).join(' | ')}`);
  assert.equal(sumMetric(text, 'adclick_flink_commit_failures_total'), 0);
  // Transactional ids stay bounded: a pool per sink and subtask, reused checkpoint after checkpoint.
  // One id per checkpoint (the old naming) would leave 6 sinks x (completed checkpoints) ids.
  const countIds = async () => JSON.parse((await execFileP('java', ['-cp', jar, 'io.adclick.flink.tools.TransactionCount', kafka.bootstrap, `obs-${restPort}`], { timeout: 60_000 })).stdout) as { withPrefix: number };
  const checkpoints = async () => (await poller.pollOnce(), sumMetric(await registry.metrics(), 'adclick_flink_checkpoints', { state: 'completed' }) ?? 0);
  const cp1 = await checkpoints();
  const ids1 = (await countIds()).withPrefix;
  for (let i = 0; i < 120 && (await checkpoints()) < cp1 + 15; i++) await new Promise((r) => setTimeout(r, 1000));
  const cp2 = await checkpoints();
  const ids2 = (await countIds()).withPrefix;
  assert.ok(cp2 >= cp1 + 15, `15 more checkpoints (${cp1} -> ${cp2})`);
  assert.ok(ids2 <= 6 * 4, `transactional ids bounded: ${ids2} after ${cp2} checkpoints (one per checkpoint would be >= ${6 * cp2})`);
  assert.ok(ids2 - ids1 <= 6, `flat: ${ids1} -> ${ids2} ids over ${cp2 - cp1} checkpoints`);

  // Flink down: up 0, no throw.
  job.kill('SIGKILL');
  await new Promise((r) => job.once('exit', r));
  await poller.pollOnce();
  assert.equal(sumMetric(await registry.metrics(), 'adclick_flink_up'), 0);
  assert.ok(parseTraceparent(parent(TRACE_A)));
});

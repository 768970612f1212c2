// Real broker (test/helpers/kafka.ts) → real consumer → chdb: offsets committed after the
// write; a second sink in the same group re-reads nothing and counts stay exact.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createLogger } from '../../src/shared/logger.ts';
import { ClickEvent, WatermarkProgress, WindowAggregate } from '../../src/shared/proto.ts';
import { AggregateSink } from '../../src/sink/aggregate-sink.ts';
import { createPartitionEndsReader } from '../../src/sink/consumer-lag.ts';
import { createKafkaSinkConsumer } from '../../src/sink/kafka-consumer.ts';
import { migrate } from '../../src/store/migrations.ts';
import { openStore } from '../../src/store/open-store.ts';
import { campaignTotals } from '../../src/store/reads.ts';
import { startTestKafka } from '../helpers/kafka.ts';

const require = createRequire(import.meta.url);
const { KafkaJS } = require('@confluentinc/kafka-javascript');
const dataDir = mkdtempSync(join(tmpdir(), 'adclick-sinkkafka-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));
const logger = createLogger('test', 'silent');

/** A real broker with the sink's six topics (2 partitions each, fresh names) and a client. */
async function brokerWithSinkTopics() {
  const kafka = await startTestKafka({ after });
  const topics = { aggregates: kafka.uniqueTopic('agg'), watermarks: kafka.uniqueTopic('wm'), late: kafka.uniqueTopic('late'), dlq: kafka.uniqueTopic('dlq'), deduped: kafka.uniqueTopic('deduped'), audit: kafka.uniqueTopic('audit') };
  const client = new KafkaJS.Kafka({ kafkaJS: { brokers: [kafka.bootstrap], logLevel: KafkaJS.logLevel.NOTHING } });
  const admin = client.admin();
  await admin.connect();
  await admin.createTopics({ topics: Object.values(topics).map((topic) => ({ topic, numPartitions: 2 })) });
  await admin.disconnect();
  return { kafka, topics, client };
}

test('sink against a real Kafka broker', { timeout: 180_000 }, async () => {
  const { kafka, topics, client } = await brokerWithSinkTopics();
  const producer = client.producer({ kafkaJS: { idempotent: true } });
  await producer.connect();
  // An hour-aligned time a day ago: inside raw_clicks' 7-day TTL whatever the date (a fixed
  // date stopped working a week after it was written), and long closed.
  const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 26 * 3_600_000;
  const enc = (ad: number, clicks: number) => Buffer.from(WindowAggregate.encode({ granularity: 1, adId: ad, campaignId: 55, advertiserId: 7, windowStartMs: T0, windowEndMs: T0 + 60_000, clicks, emittedAtMs: T0 }).finish());
  await producer.send({ topic: topics.aggregates, messages: [
    { key: '1', value: enc(1, 2) }, { key: '1', value: enc(1, 5) }, { key: '2', value: enc(2, 4) }, { key: '2', value: enc(2, 4) }, { key: 'x', value: Buffer.from([0xff, 0xff]) },
  ] });
  await producer.disconnect();

  const store = await openStore({ clickhouseUrl: '', dataDir }, logger);
  await migrate(store, logger);
  const run = async () => {
    const consumer = createKafkaSinkConsumer({ brokers: kafka.bootstrap, topics: Object.values(topics), groupId: 'adclick-sink-test', logger });
    const sink = new AggregateSink({ store, consumer, logger, topics, maxWaitMs: 50 });
    await sink.start();
    return sink;
  };
  let sink = await run();
  for (let i = 0; i < 600; i++) {
    const t = await campaignTotals(store, 7);
    if (t[0]?.total_clicks === 9 && sink.status().batches > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await sink.stop();
  assert.deepEqual(await campaignTotals(store, 7), [{ campaign_id: 55, total_clicks: 9 }]);
  const dl = await store.query<{ n: number }>("SELECT count() AS n FROM adclick.dead_letters FINAL WHERE reason = 'PROTOBUF_DECODE_FAILED'");
  assert.equal(dl[0]!.n, 1);
  // Same group again: committed offsets mean nothing is re-read.
  sink = await run();
  await new Promise((r) => setTimeout(r, 3000));
  const batches = sink.status().batches;
  await sink.stop();
  assert.equal(batches, 0);
  assert.deepEqual(await campaignTotals(store, 7), [{ campaign_id: 55, total_clicks: 9 }]);
  await store.close();
});

test('watermark fence on a real broker: a watermark read ahead of a transactional raw-clicks backlog is stored after it, also when only commit markers are left', { timeout: 240_000 }, async () => {
  const { kafka, topics, client } = await brokerWithSinkTopics();
  const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 26 * 3_600_000;
  // As the job writes: raw clicks in transactions (each ends with a commit marker), then the
  // watermark in its own transaction. The backlog is many sink batches long.
  const N = 20_000;
  // A fresh broker creates its transaction-state topic on first use: "Not coordinator" until then.
  let producer;
  for (let attempt = 1; ; attempt++) {
    producer = client.producer({ kafkaJS: { transactionalId: `fence-test-${process.pid}`, idempotent: true, maxInFlightRequests: 1 } });
    try {
      await producer.connect();
      break;
    } catch (err) {
      await producer.disconnect().catch(() => undefined);
      if (attempt >= 30) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  for (let start = 0; start < N; start += 5_000) {
    const tx = await producer.transaction();
    const messages = [];
    for (let i = start; i < start + 5_000; i++) {
      messages.push({ key: String(i % 7), value: Buffer.from(ClickEvent.encode({ impressionId: `imp_fence_${i}`, eventType: 'click', adId: 1 + (i % 7), campaignId: 55, advertiserId: 8, userId: 'u', eventTimeMs: T0 + (i % 60) * 1000, receivedAtMs: T0 }).finish()) });
    }
    await tx.send({ topic: topics.deduped, messages });
    await tx.commit();
  }
  const tx = await producer.transaction();
  await tx.send({ topic: topics.watermarks, messages: [{ key: '0', value: Buffer.from(WatermarkProgress.encode({ subtask: 0, parallelism: 1, watermarkMs: T0 + 3_600_000, emittedAtMs: Date.now() }).finish()) }] });
  await tx.commit();
  await producer.disconnect();

  const dir = mkdtempSync(join(tmpdir(), 'adclick-fence-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await openStore({ clickhouseUrl: '', dataDir: dir }, logger);
  await migrate(store, logger);
  const ends = createPartitionEndsReader({ brokers: kafka.bootstrap, topics: [topics.aggregates, topics.late, topics.deduped] });
  const consumer = createKafkaSinkConsumer({ brokers: kafka.bootstrap, topics: Object.values(topics), groupId: 'adclick-sink-fence', logger, fetchBatchSize: 200 });
  // Batches of 5,000 rows: without the fence the watermark is stored with about half the
  // backlog (measured: 11,000 of 20,000). (With 500-row batches the consumer, paused and
  // resumed through the client on every batch, used to stop delivering a partition for
  // minutes; the sink no longer pauses through the client, and 500-row batches pass in
  // 11 s: test/integration/sink-consumer-pause.test.ts.) count() without FINAL: a batch
  // delivered twice (each pause used to re-deliver one) fails it too.
  const sink = new AggregateSink({ store, consumer, logger, topics, maxRows: 5_000, maxWaitMs: 20, fenceEnds: () => ends.read(), fenceCheckMs: 50 });
  await sink.start();
  const count = async (sql: string) => Number((await store.query<{ n: number }>(sql))[0]?.n ?? 0);
  let rawWhenWatermark = -1;
  // (embedded ClickHouse answers on this thread: poll gently, the sink shares it)
  for (const end = Date.now() + 150_000; rawWhenWatermark < 0 && Date.now() < end;) {
    await new Promise((r) => setTimeout(r, 250));
    // Raw first, then the watermark: if the watermark is there, the raw count read before it is a lower bound of what was stored then.
    const raw = await count('SELECT count() AS n FROM adclick.raw_clicks');
    if ((await count('SELECT count() AS n FROM adclick.pipeline_watermarks')) > 0) rawWhenWatermark = raw;
  }
  await sink.stop();
  await ends.close();
  assert.equal(rawWhenWatermark, N, `the watermark was stored when ${rawWhenWatermark} of ${N} raw clicks were (must be all)`);
  await store.close();
});

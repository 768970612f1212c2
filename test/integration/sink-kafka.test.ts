// Real broker (test/helpers/kafka.ts) → real consumer → chdb: offsets committed after the
// write; a second sink in the same group re-reads nothing and counts stay exact.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createLogger } from '../../src/shared/logger.ts';
import { WindowAggregate } from '../../src/shared/proto.ts';
import { AggregateSink } from '../../src/sink/aggregate-sink.ts';
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

test('sink against a real Kafka broker', { timeout: 180_000 }, async () => {
  const kafka = await startTestKafka({ after });
  const topics = { aggregates: kafka.uniqueTopic('agg'), watermarks: kafka.uniqueTopic('wm'), late: kafka.uniqueTopic('late'), dlq: kafka.uniqueTopic('dlq'), deduped: kafka.uniqueTopic('deduped'), audit: kafka.uniqueTopic('audit') };
  const client = new KafkaJS.Kafka({ kafkaJS: { brokers: [kafka.bootstrap], logLevel: KafkaJS.logLevel.NOTHING } });
  const admin = client.admin();
  await admin.connect();
  await admin.createTopics({ topics: Object.values(topics).map((topic) => ({ topic, numPartitions: 2 })) });
  await admin.disconnect();
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

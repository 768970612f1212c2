// The launcher's Kafka part against a real broker: start, topics, produce/consume, stop.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import kafkaJavascript from '@confluentinc/kafka-javascript';
import { loadConfig } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { isAlive } from '../../src/stack/pid-files.ts';
import { withAdmin } from '../../src/stack/kafka-admin.ts';
import { ensureTopics, pipelineTopics } from '../../src/stack/topics.ts';
import { startTestKafka, type TestKafka } from '../helpers/kafka.ts';

const { Kafka, logLevel } = kafkaJavascript.KafkaJS;
const DAY = 24 * 3600 * 1000;
const logger = createLogger('stack-kafka-test', 'warn');
// Non-default values, so the test sees that config drives the topics.
const config = loadConfig({}, { clicksTopic: 'clicks', clicksPartitions: 6, clicksRetentionMs: 8 * DAY });

// Top level, not inside before(): node:test runs an after() registered inside a hook as
// soon as that hook finishes.
const kafka: TestKafka = await startTestKafka({ after });
console.log(`# broker ready in ${kafka.startMs} ms at ${kafka.bootstrap}`);

test('creates the pipeline topics with their partitions and configs, idempotently', async () => {
  const first = await ensureTopics(kafka.bootstrap, pipelineTopics(config), logger);
  assert.deepEqual([...first.created].sort(), ['click-aggregates', 'click-audit', 'click-watermarks', 'clicks', 'clicks-deduped', 'clicks-dlq', 'clicks-late']);

  const meta = await withAdmin(kafka.bootstrap, (a) =>
    a.fetchTopicMetadata({ topics: ['clicks', 'click-aggregates', 'click-watermarks', 'clicks-late', 'clicks-dlq', 'clicks-deduped'] }));
  const partitions = Object.fromEntries(meta.map((m) => [m.name, m.partitions.length]));
  assert.deepEqual(partitions, { clicks: 6, 'click-aggregates': 4, 'click-watermarks': 1, 'clicks-late': 2, 'clicks-dlq': 1, 'clicks-deduped': 4 });

  const clicks = await kafka.describeTopicConfigs('clicks');
  assert.equal(clicks['retention.ms'], String(8 * DAY));
  assert.equal(clicks['cleanup.policy'], 'delete');
  assert.equal(clicks['min.insync.replicas'], '1');
  assert.equal((await kafka.describeTopicConfigs('clicks-late'))['retention.ms'], String(30 * DAY));
  assert.equal((await kafka.describeTopicConfigs('click-watermarks'))['retention.ms'], String(DAY));
  assert.equal((await kafka.describeTopicConfigs('clicks-deduped'))['retention.ms'], String(7 * DAY));

  const second = await ensureTopics(kafka.bootstrap, pipelineTopics(config), logger);
  assert.deepEqual(second.created, []);
  assert.equal(second.existing.length, 7);
  assert.deepEqual(second.underPartitioned, []);
});

test('an existing topic with fewer partitions is reported, not an error', async () => {
  const name = kafka.uniqueTopic('narrow');
  await ensureTopics(kafka.bootstrap, [{ name, partitions: 1, configs: {} }], logger);
  const res = await ensureTopics(kafka.bootstrap, [{ name, partitions: 3, configs: {} }], logger);
  assert.deepEqual(res.underPartitioned, [{ name, partitions: 1, wanted: 3 }]);
});

test('a record produced to clicks is consumed back', async () => {
  const client = new Kafka({ kafkaJS: { brokers: [kafka.bootstrap], logLevel: logLevel.NOTHING } });
  const producer = client.producer({ kafkaJS: { idempotent: true, acks: -1 } });
  const consumer = client.consumer({ kafkaJS: { groupId: kafka.uniqueTopic('g'), fromBeginning: true } });
  await producer.connect();
  await consumer.connect();
  try {
    const value = `hello-${Date.now()}`;
    await producer.send({ topic: 'clicks', messages: [{ key: '1234', value }] });
    await consumer.subscribe({ topics: ['clicks'] });
    const got = await new Promise<{ key: string; value: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no record consumed within 30 s')), 30_000);
      void consumer.run({
        eachMessage: async ({ message }) => {
          if (message.value?.toString() === value) {
            clearTimeout(timer);
            resolve({ key: message.key!.toString(), value: message.value.toString() });
          }
        },
      });
    });
    assert.deepEqual(got, { key: '1234', value });
  } finally {
    await consumer.disconnect();
    await producer.disconnect();
  }
});

test('stop() ends the broker JVM', async () => {
  const pid = kafka.broker.pid;
  assert.ok(pid, 'broker has a pid while running');
  assert.ok(isAlive(pid, 'java'));
  const t0 = Date.now();
  await kafka.stop();
  console.log(`# broker stopped in ${Date.now() - t0} ms`);
  assert.equal(kafka.broker.pid, undefined);
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
});

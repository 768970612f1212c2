// The sink's consumer on a real broker, paused and resumed as the sink's back-pressure does
// it (from inside the delivery of a batch, aggregate-sink.ts): every record is delivered
// once, none twice, none skipped. One member, no rebalance, plain (non-transactional)
// topics: offsets are contiguous, so a gap is a lost record and a repeat a re-delivery.
// The client library re-delivers a batch paused during its own delivery (it marks it
// stale and seeks back to its first record); found as 20,200 raw rows of 20,000 in the
// watermark-fence test. Second test: a delivery that waits too long (a store down) gets
// the consumer replaced, and nothing is skipped.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, test } from 'node:test';
import { Registry } from 'prom-client';
import { createLogger } from '../../src/shared/logger.ts';
import type { SinkMessage } from '../../src/sink/batch.ts';
import { createKafkaSinkConsumer } from '../../src/sink/kafka-consumer.ts';
import { startTestKafka } from '../helpers/kafka.ts';

const require = createRequire(import.meta.url);
const { KafkaJS } = require('@confluentinc/kafka-javascript');
const logger = createLogger('test', 'silent');
const kafka = await startTestKafka({ after });

/** Creates `topic` with `partitions` partitions of `perPartition` plain records each (offsets 0..perPartition-1). */
async function filledTopic(topic: string, partitions: number, perPartition: number): Promise<void> {
  const client = new KafkaJS.Kafka({ kafkaJS: { brokers: [kafka.bootstrap], logLevel: KafkaJS.logLevel.NOTHING } });
  const admin = client.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] });
  await admin.disconnect();
  const producer = client.producer({ kafkaJS: { idempotent: true } });
  await producer.connect();
  for (let p = 0; p < partitions; p++) {
    for (let start = 0; start < perPartition; start += 5_000) {
      const n = Math.min(5_000, perPartition - start);
      await producer.send({ topic, messages: Array.from({ length: n }, (_, i) => ({ partition: p, value: Buffer.from(`${topic}/${p}/${start + i}`) })) });
    }
  }
  await producer.disconnect();
}

test('sink consumer paused and resumed from inside deliveries: each record exactly once', { timeout: 240_000 }, async () => {
  // A busy topic and a quiet one (as aggregates beside watermarks): the quiet one's few
  // records sit fetched but undelivered when a pause comes.
  const busy = kafka.uniqueTopic('pause-busy');
  const quiet = kafka.uniqueTopic('pause-quiet');
  const expected = new Map<string, number>();
  for (const [topic, partitions, perPartition] of [[busy, 4, 15_000], [quiet, 3, 40]] as const) {
    await filledTopic(topic, partitions, perPartition);
    for (let p = 0; p < partitions; p++) expected.set(`${topic}/${p}`, perPartition);
  }
  const total = [...expected.values()].reduce((a, b) => a + b, 0);

  const seen = new Map<string, number[]>();
  let deliveries = 0;
  let pauses = 0;
  const unique = new Set<string>();
  const consumer = createKafkaSinkConsumer({ brokers: kafka.bootstrap, topics: [busy, quiet], groupId: `pause-test-${process.pid}`, logger, fetchBatchSize: 200 });
  let resumeTimer: NodeJS.Timeout | undefined;
  await consumer.start((msgs: SinkMessage[]) => {
    for (const m of msgs) {
      const key = `${m.topic}/${m.partition}`;
      let list = seen.get(key);
      if (!list) seen.set(key, (list = []));
      list.push(Number(m.offset));
      unique.add(`${key}@${m.offset}`);
    }
    // Every third delivery pauses everything from inside it, as the sink does when its
    // buffer is full, and resumes a moment later.
    if (++deliveries % 3 === 0 && !resumeTimer) {
      consumer.pause();
      pauses++;
      resumeTimer = setTimeout(() => {
        resumeTimer = undefined;
        consumer.resume();
      }, 15);
    }
  });
  try {
    // Until every record came (or 150 s), then a further 3 s for repeats to show.
    for (const end = Date.now() + 150_000; unique.size < total && Date.now() < end;) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 3_000));
  } finally {
    clearTimeout(resumeTimer);
    await consumer.stop();
  }
  assert.ok(pauses >= 20, `the consumer was paused ${pauses} times (the test needs many)`);
  const problems: string[] = [];
  for (const [key, n] of expected) {
    const offsets = seen.get(key) ?? [];
    const counts = new Map<number, number>();
    for (const o of offsets) counts.set(o, (counts.get(o) ?? 0) + 1);
    const repeated = [...counts.values()].filter((c) => c > 1).length;
    let missing = 0;
    for (let o = 0; o < n; o++) if (!counts.has(o)) missing++;
    if (repeated || missing) problems.push(`${key}: ${missing} of ${n} never delivered, ${repeated} delivered more than once`);
  }
  assert.deepEqual(problems, [], `after ${pauses} pauses: ${problems.join('; ')}`);
});

test('sink consumer whose delivery waits past maxWaitForRoomMs (a store down) is replaced by a fresh one, which goes on from the committed offsets: nothing skipped', { timeout: 240_000 }, async () => {
  const topic = kafka.uniqueTopic('pause-replace');
  const perPartition = 4_000;
  await filledTopic(topic, 3, perPartition);

  const registry = new Registry();
  const consumer = createKafkaSinkConsumer({ brokers: kafka.bootstrap, topics: [topic], groupId: `pause-replace-${process.pid}`, logger, fetchBatchSize: 200, maxWaitForRoomMs: 1_500, registry });
  const seen = new Map<number, Set<number>>();
  const next = new Map<number, number>();
  let deliveries = 0;
  let outage = false;
  await consumer.start((msgs: SinkMessage[]) => {
    for (const m of msgs) {
      let s = seen.get(m.partition);
      if (!s) seen.set(m.partition, (s = new Set()));
      s.add(Number(m.offset));
      next.set(m.partition, Number(m.offset) + 1);
    }
    // Once, after some records: the store "goes down" for 6 s (the sink stays full).
    if (++deliveries === 10 && !outage) {
      outage = true;
      consumer.pause();
      setTimeout(() => consumer.resume(), 6_000);
    }
  });
  // The sink commits what it stored: here, every delivered record, a second at a time.
  const committer = setInterval(() => {
    void consumer.commit([...next].map(([partition, offset]) => ({ topic, partition, offset: String(offset) }))).catch(() => undefined);
  }, 1_000);
  const complete = () => [0, 1, 2].every((p) => (seen.get(p)?.size ?? 0) >= perPartition);
  try {
    for (const end = Date.now() + 150_000; !complete() && Date.now() < end;) await new Promise((r) => setTimeout(r, 200));
  } finally {
    clearInterval(committer);
    await consumer.stop();
  }
  const replaced = (await registry.getSingleMetric('adclick_sink_consumer_replacements_total')?.get())?.values[0]?.value ?? 0;
  assert.ok(outage, 'the outage happened');
  assert.ok(replaced >= 1, `the consumer was replaced (${replaced})`);
  const missing = [0, 1, 2].map((p) => perPartition - (seen.get(p)?.size ?? 0));
  assert.deepEqual(missing, [0, 0, 0], `records never delivered per partition: ${missing.join(', ')}`);
});

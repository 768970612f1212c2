// The real SinkConsumer: @confluentinc/kafka-javascript (librdkafka) through its
// KafkaJS-compatible API. read_committed (the Flink job writes transactionally), no
// auto-commit (the sink commits after ClickHouse acknowledged), earliest offset for a
// new group (nothing the job emitted may be skipped).
import { createRequire } from 'node:module';
import type { KafkaJS as KafkaJSTypes } from '@confluentinc/kafka-javascript';
import type { Logger } from '../shared/logger.ts';
import type { SinkMessage, TopicPartitionOffset } from './batch.ts';
import type { SinkConsumer } from './aggregate-sink.ts';
import { traceIdFromHeaders } from './trace-context.ts';

const require = createRequire(import.meta.url);
const { KafkaJS } = require('@confluentinc/kafka-javascript') as { KafkaJS: typeof KafkaJSTypes };

export interface KafkaSinkConsumerOptions {
  readonly brokers: string;
  readonly topics: readonly string[];
  /** default `adclick-sink` */
  readonly groupId?: string;
  readonly clientId?: string;
  readonly logger: Logger;
  /** Records per eachBatch call (js.consumer.max.batch.size), default 1000. */
  readonly fetchBatchSize?: number;
}

export function createKafkaSinkConsumer(opts: KafkaSinkConsumerOptions): SinkConsumer {
  const log = opts.logger.child({ module: 'sink-consumer' });
  const kafka = new KafkaJS.Kafka({
    kafkaJS: {
      brokers: opts.brokers.split(',').map((b) => b.trim()).filter(Boolean),
      clientId: opts.clientId ?? 'adclick-sink',
      logLevel: KafkaJS.logLevel.WARN,
    },
  });
  const consumer = kafka.consumer({
    kafkaJS: {
      groupId: opts.groupId ?? 'adclick-sink',
      autoCommit: false,
      fromBeginning: true,
      readUncommitted: false,
    },
    'js.consumer.max.batch.size': opts.fetchBatchSize ?? 1000,
    // A sink that died (kill -9) holds its partitions until its session times out; the
    // restarted process waits for that. librdkafka's 45 s default made recovery after a
    // serving crash take ~30-45 s (found by the chaos suite); 10 s keeps it short.
    'session.timeout.ms': 10_000,
    'heartbeat.interval.ms': 2_000,
  });
  const topicList = opts.topics.map((topic) => ({ topic }));
  let connected = false;

  return {
    async start(deliver) {
      await consumer.connect();
      connected = true;
      await consumer.subscribe({ topics: [...opts.topics] });
      await consumer.run({
        eachBatch: async ({ batch }) => {
          const msgs: SinkMessage[] = batch.messages.map((m) => ({
            topic: batch.topic,
            partition: batch.partition,
            offset: m.offset,
            key: m.key ?? null,
            value: m.value ?? null,
            traceId: traceIdFromHeaders(m.headers),
          }));
          let lag: { topic: string; partition: number; lag: number } | undefined;
          const last = batch.messages[batch.messages.length - 1];
          const hw = Number(batch.highWatermark);
          if (last && Number.isFinite(hw) && hw >= 0) lag = { topic: batch.topic, partition: batch.partition, lag: Math.max(0, hw - Number(last.offset) - 1) };
          deliver(msgs, lag);
        },
      });
      log.info({ topics: opts.topics, groupId: opts.groupId ?? 'adclick-sink' }, 'consumer running');
    },
    async commit(offsets: TopicPartitionOffset[]) {
      if (offsets.length) await consumer.commitOffsets(offsets);
    },
    pause() {
      if (connected) consumer.pause(topicList);
    },
    resume() {
      if (connected) consumer.resume(topicList);
    },
    async stop() {
      if (!connected) return;
      connected = false;
      await consumer.disconnect();
    },
  };
}

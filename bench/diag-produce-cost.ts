// DIAGNOSTIC (not the benchmark): CPU this process spends per Kafka message in the
// gateway's client (@confluentinc/kafka-javascript over librdkafka): produce() plus its
// delivery report, main thread and librdkafka threads together, in batches of 500 as the
// batch route produces them. Variants show what the per-record parts cost: the key
// (copied back into every delivery report), the opaque (a persistent handle per record)
// and the traceparent header. Rounds alternate (A B C ... A B C) against one broker.
// Run: node --import tsx bench/diag-produce-cost.ts [records per round=100000] [rounds=3]
import KafkaJs from '@confluentinc/kafka-javascript';
import { createLogger } from '../src/shared/logger.ts';
import { ensureTopics } from '../src/stack/topics.ts';
import { startTestKafka } from '../test/helpers/kafka.ts';

const N = Number(process.argv[2] ?? 100_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const BATCH = 500;
const cleanups: (() => unknown)[] = [];
const kafka = await startTestKafka({ after: (fn) => void cleanups.push(fn) });
try {
  await ensureTopics(kafka.bootstrap, [{ name: 'cost', partitions: 4, configs: {} }], createLogger('diag', 'warn'));
  // The gateway's producer settings (click-publisher.ts), linger aside.
  const p = new KafkaJs.Producer({
    'bootstrap.servers': kafka.bootstrap, 'enable.idempotence': true, acks: -1, 'linger.ms': 5, 'compression.codec': 'lz4',
    'batch.num.messages': 10000, 'queue.buffering.max.messages': 1_000_000, partitioner: 'murmur2_random', 'socket.nagle.disable': true, dr_cb: true,
  });
  await new Promise<void>((resolve, reject) => p.connect({}, (err) => (err ? reject(err) : resolve())));
  p.setPollInBackground(true);
  let pending = 0;
  let drained: (() => void) | undefined;
  p.on('delivery-report', (err) => {
    if (err) throw err;
    if (--pending === 0) drained?.();
  });

  const value = Buffer.alloc(100, 7); // about one encoded ClickEvent
  const keys = Array.from({ length: 977 }, (_, i) => String(1000 + i));
  const headers = [{ traceparent: '00-0123456789abcdef0123456789abcdef-0123456789abcdef-01' }];
  const variants: Record<string, (j: number) => void> = {
    'as the gateway (key, opaque, header)': (j) => p.produce('cost', null, value, keys[j % keys.length], null, { j }, headers),
    'no header': (j) => p.produce('cost', null, value, keys[j % keys.length], null, { j }, undefined),
    'no header, no opaque': (j) => p.produce('cost', null, value, keys[j % keys.length], null, undefined, undefined),
    'no header, no opaque, no key': (j) => p.produce('cost', null, value, null, null, undefined, undefined),
  };
  const totals = new Map<string, number[]>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, produce] of Object.entries(variants)) {
      const before = process.cpuUsage();
      for (let i = 0; i < N; i += BATCH) {
        pending += BATCH;
        const all = new Promise<void>((resolve) => (drained = resolve));
        for (let j = 0; j < BATCH; j++) produce(i + j);
        await all;
      }
      const used = process.cpuUsage(before);
      totals.set(name, [...(totals.get(name) ?? []), (used.user + used.system) / N]);
    }
  }
  console.log(`CPU µs per record (this process, all threads), ${ROUNDS} alternating rounds of ${N} records, batches of ${BATCH}:`);
  for (const [name, v] of totals) console.log(`  ${name.padEnd(40)} ${v.map((x) => x.toFixed(2)).join('  ')}   median ${[...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!.toFixed(2)}`);
  await new Promise<void>((resolve) => p.disconnect(() => resolve()));
} finally {
  for (const f of cleanups.reverse()) await f();
}
process.exit(0);

// DIAGNOSTIC (not the benchmark): the gateway's Kafka path alone — idempotent acks=all
// producer, closed loop of C callers each waiting for its delivery report — for several
// producer settings measured in ALTERNATING rounds (A B C A B C ...), so background load
// on a shared machine falls on every setting alike. Prints throughput, latency, the
// broker JVM's and this process's librdkafka thread CPU per setting.
// Run: node --import tsx bench/diag-producer.ts '[{"linger.ms":1},{"linger.ms":2}]' [C=50] [rounds=4] [secs=2]
// Pseudo-settings (not librdkafka's): "x.producers": N spreads the callers' records over N
// producer instances (record n → producer n mod N); "x.partitions": P sets the topic's partitions
// (one topic per distinct P).
import { readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import KafkaJs from '@confluentinc/kafka-javascript';
import { createLogger } from '../src/shared/logger.ts';
import { ensureTopics } from '../src/stack/topics.ts';
import { startTestKafka } from '../test/helpers/kafka.ts';

const log = createLogger('diag', 'warn');
const cleanups: (() => unknown)[] = [];
const configs = JSON.parse(process.argv[2] ?? '[{"linger.ms":1}]') as Record<string, unknown>[];
const C = Number(process.argv[3] ?? 50);
const ROUNDS = Number(process.argv[4] ?? 4);
const SECS = Number(process.argv[5] ?? 2);

function cpuSec(statPath: string): number {
  const s = readFileSync(statPath, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}
function threads(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const comm = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim().replace(/\d+$/, '#');
      out[comm] = (out[comm] ?? 0) + cpuSec(`/proc/self/task/${tid}/stat`);
    } catch { /* thread gone */ }
  }
  return out;
}

const kafka = await startTestKafka({ after: (fn) => void cleanups.push(fn) });
try {
  const partitionCounts = [...new Set(configs.map((c) => Number(c['x.partitions'] ?? 4)))];
  await ensureTopics(kafka.bootstrap, partitionCounts.map((p) => ({ name: `clicks-${p}`, partitions: p, configs: { 'min.insync.replicas': '1' } })), log);
  const value = randomBytes(100);
  type P = InstanceType<typeof KafkaJs.Producer>;
  interface Slot { ps: P[]; topic: string; name: string; lat: number[]; secs: number; kafka: number; rdk: Record<string, number> }
  const producers: Slot[] = [];
  for (const cfg of configs) {
    const { 'x.producers': nProducers = 1, 'x.partitions': partitions = 4, ...extra } = cfg as Record<string, unknown>;
    const ps: P[] = [];
    for (let i = 0; i < Number(nProducers); i++) {
      const p = new KafkaJs.Producer({ 'bootstrap.servers': kafka.bootstrap, 'enable.idempotence': true, acks: -1, 'compression.codec': 'lz4', 'batch.num.messages': 10000, partitioner: 'murmur2_random', dr_cb: true, ...extra } as never);
      p.on('delivery-report', (_e, r) => (r.opaque as () => void)());
      await new Promise<void>((res, rej) => p.connect({ timeout: 10000 }, (e) => (e ? rej(e) : res())));
      p.setPollInBackground(true);
      ps.push(p);
    }
    producers.push({ ps, topic: `clicks-${Number(partitions)}`, name: JSON.stringify(cfg), lat: [], secs: 0, kafka: 0, rdk: {} });
  }
  let n = 0;
  const run = async (x: Slot, secs: number, record: boolean) => {
    const one = () => new Promise<void>((res) => { const k = ++n; x.ps[k % x.ps.length]!.produce(x.topic, null, value, String(k % 1000), null, res); });
    const end = performance.now() + secs * 1000;
    await Promise.all(Array.from({ length: C }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await one();
        if (record) x.lat.push(performance.now() - t);
      }
    }));
  };
  for (const x of producers) await run(x, 1, false); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    for (const x of producers) {
      const t0 = threads(); const k0 = cpuSec(`/proc/${kafka.broker.pid}/stat`); const w0 = performance.now();
      await run(x, SECS, true);
      const secs = (performance.now() - w0) / 1000; const t1 = threads();
      x.secs += secs;
      x.kafka += cpuSec(`/proc/${kafka.broker.pid}/stat`) - k0;
      for (const [k, v] of Object.entries(t1)) x.rdk[k] = (x.rdk[k] ?? 0) + v - (t0[k] ?? 0);
    }
  }
  console.log(`closed loop C=${C}, ${ROUNDS} alternating rounds of ${SECS} s per setting`);
  for (const x of producers) {
    x.lat.sort((a, b) => a - b);
    const q = (p: number) => x.lat[Math.min(x.lat.length - 1, Math.ceil(p * x.lat.length) - 1)]!.toFixed(2);
    const th = Object.entries(x.rdk).filter(([, v]) => v / x.secs >= 0.01).map(([k, v]) => `${k} ${(v / x.secs).toFixed(2)}`).join(', ');
    console.log(`${x.name.padEnd(56)} ${Math.round(x.lat.length / x.secs).toString().padStart(6)}/s  p50 ${q(0.5)} ms  p99 ${q(0.99)} ms | broker JVM ${(x.kafka / x.secs).toFixed(2)} cores | ${th}`);
  }
  for (const x of producers) for (const p of x.ps) await new Promise<void>((r) => p.disconnect(() => r()));
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
process.exit(0);

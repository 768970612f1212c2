import { readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import KafkaJs from '@confluentinc/kafka-javascript';
import { createLogger } from '../src/shared/logger.ts';
import { ensureTopics } from '../src/stack/topics.ts';
import { startTestKafka } from '../test/helpers/kafka.ts';

const log = createLogger('diag', 'warn');
const cleanups: (() => unknown)[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function threads(pid: number | string = 'self') {
  const out: Record<string, number> = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim().replace(/\d+$/, '#');
      const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      out[comm] = (out[comm] ?? 0) + (Number(f[11]) + Number(f[12])) / 100;
    } catch {}
  }
  return out;
}
function procCpu(pid: number) { const s = readFileSync(`/proc/${pid}/stat`, 'utf8'); const f = s.slice(s.lastIndexOf(')') + 2).split(' '); return (Number(f[11]) + Number(f[12])) / 100; }

const kafka = await startTestKafka({ after: (fn) => void cleanups.push(fn) });
try {
  await ensureTopics(kafka.bootstrap, [{ name: 'clicks', partitions: 4, configs: { 'min.insync.replicas': '1' } }], log);
  const value = randomBytes(100);
  const configs = JSON.parse(process.argv[2] ?? '[{"linger.ms":1}]') as Record<string, unknown>[];
  for (const extra of configs) {
    const p = new KafkaJs.Producer({ 'bootstrap.servers': kafka.bootstrap, 'enable.idempotence': true, acks: -1, 'compression.codec': 'lz4', 'batch.num.messages': 10000, partitioner: 'murmur2_random', dr_cb: true, ...extra } as never);
    const waiters = new Map<number, () => void>();
    p.on('delivery-report', (_e, r) => { const w = r.opaque as () => void; w(); });
    await new Promise<void>((res, rej) => p.connect({ timeout: 10000 }, (e) => (e ? rej(e) : res())));
    p.setPollInBackground(true);
    let n = 0;
    const one = () => new Promise<void>((res) => p.produce('clicks', null, value, String(++n % 1000), null, res));
    for (const C of [1, 50]) {
      const lat: number[] = [];
      const run = async (secs: number, rec: boolean) => { const end = performance.now() + secs * 1000; await Promise.all(Array.from({ length: C }, async () => { while (performance.now() < end) { const t = performance.now(); await one(); if (rec) lat.push(performance.now() - t); } })); };
      await run(1, false);
      const t0 = threads(); const k0 = procCpu(kafka.broker.pid!); const w0 = performance.now();
      await run(4, true);
      const secs = (performance.now() - w0) / 1000; const t1 = threads(); const k1 = procCpu(kafka.broker.pid!);
      lat.sort((a, b) => a - b);
      const q = (x: number) => lat[Math.min(lat.length - 1, Math.ceil(x * lat.length) - 1)]!.toFixed(2);
      const th = Object.entries(t1).map(([k, v]) => [k, (v - (t0[k] ?? 0)) / secs] as const).filter(([, v]) => v >= 0.01).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
      console.log(`${JSON.stringify(extra).padEnd(60)} C=${String(C).padEnd(3)} ${Math.round(lat.length / secs).toString().padStart(6)}/s p50 ${q(0.5)} p99 ${q(0.99)} | kafka ${((k1 - k0) / secs).toFixed(2)} | ${th}`);
    }
    await new Promise<void>((r) => p.disconnect(() => r()));
  }
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
process.exit(0);

// DIAGNOSTIC (not the benchmark): where a single click's latency goes outside HTTP.
// Closed loops of C concurrent callers against (a) the gateway's real ClickPublisher on a
// throwaway broker, per producer setting, and (b) the gateway's Redis calls.
// Run: node --import tsx bench/diag-latency.ts
import { randomBytes } from 'node:crypto';
import { createOptionalRedis } from '../src/shared/redis.ts';
import { createLogger } from '../src/shared/logger.ts';
import { createClickPublisher } from '../src/gateway/click-publisher.ts';
import { createRateLimiter } from '../src/gateway/rate-limiter.ts';
import { createEdgeDedup } from '../src/gateway/edge-dedup.ts';
import { ensureTopics } from '../src/stack/topics.ts';
import { startTestKafka } from '../test/helpers/kafka.ts';

const log = createLogger('diag', 'warn');
const cleanups: (() => unknown)[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function closedLoop(concurrency: number, seconds: number, op: () => Promise<unknown>) {
  const lat: number[] = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      await op();
      lat.push(performance.now() - t);
    }
  }));
  lat.sort((a, b) => a - b);
  const p = (q: number) => lat[Math.min(lat.length - 1, Math.ceil(q * lat.length) - 1)]!.toFixed(2);
  return `${Math.round(lat.length / seconds).toLocaleString('en-US').padStart(8)} ops/s  p50 ${p(0.5).padStart(7)} ms  p99 ${p(0.99).padStart(7)} ms`;
}

try {
  const kafka = await startTestKafka({ after: (fn) => void cleanups.push(fn) });
  await ensureTopics(kafka.bootstrap, [{ name: 'clicks', partitions: 4, configs: {} }], log);
  const value = randomBytes(100);
  for (const [label, lingerMs, compression] of [['linger 5, lz4', 5, 'lz4'], ['linger 0, lz4', 0, 'lz4'], ['linger 1, lz4 (gateway default)', 1, 'lz4'], ['linger 1, none', 1, 'none']] as const) {
    const pub = await createClickPublisher({ brokers: kafka.bootstrap, topic: 'clicks', lingerMs, compression, produceTimeoutMs: 5000, maxInflight: 50_000, breakerFailures: 5, breakerOpenMs: 2000, clientId: 'diag', logger: log });
    for (let i = 0; i < 200 && !pub.ready(); i++) await sleep(50);
    let n = 0;
    const one = () => pub.publish([{ key: String(++n % 1000), value }]);
    await closedLoop(50, 1, one); // warm
    for (const c of [1, 50, 200]) console.log(`kafka publish+ack  ${label.padEnd(32)} C=${String(c).padEnd(4)}${await closedLoop(c, 3, one)}`);
    await pub.close();
  }
  const redis = createOptionalRedis('redis://127.0.0.1:6379', log)!;
  await new Promise((r) => redis.once('ready', r));
  const rl = createRateLimiter(redis, { perSecond: 1_000_000, burst: 1_000_000 });
  const dd = createEdgeDedup(redis, 60, () => {});
  let k = 0;
  const tag = randomBytes(4).toString('hex');
  for (const c of [1, 50]) {
    console.log(`redis GCRA eval                                     C=${String(c).padEnd(4)}${await closedLoop(c, 2, () => rl.check('127.0.0.1'))}`);
    console.log(`redis dedup get+set                                 C=${String(c).padEnd(4)}${await closedLoop(c, 2, async () => { const key = `adclick:seen:diag:${tag}:${++k}`; await dd.seen([key]); await dd.mark([key]); })}`);
  }
  redis.disconnect();
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
process.exit(0);

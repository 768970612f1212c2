// A real, throwaway single-node Kafka for integration tests: free ports, temp state dir,
// killed in the caller's `after` hook (and, as a last resort, when the process exits).
//
//   import { after, test } from 'node:test';
//   import { startTestKafka } from '../helpers/kafka.ts';
//   const kafka = await startTestKafka({ after });   // top level of the test file
//   test('...', async () => { /* kafka.bootstrap, kafka.uniqueTopic('t') */ });
//
// Per-test use works too: `const kafka = await startTestKafka(t)` (t.after is used).
// Do NOT call it inside before(): node:test runs an after() registered inside a hook as
// soon as that hook ends, which would stop the broker before the first test.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import KafkaJs from '@confluentinc/kafka-javascript';
import { ClickEvent, PartitionTick } from '../../src/shared/proto.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { KafkaBroker } from '../../src/stack/kafka-broker.ts';
import { ensureKafkaDist, type KafkaDist } from '../../src/stack/kafka-dist.ts';

export interface TestKafka {
  readonly bootstrap: string;
  readonly broker: KafkaBroker;
  readonly dist: KafkaDist;
  readonly stateDir: string;
  /** Broker output, kept for post-mortems while the test runs. */
  readonly logFile: string;
  /** Milliseconds from spawn to the first metadata answer. */
  readonly startMs: number;
  /** A topic name no other test uses. */
  uniqueTopic(prefix: string): string;
  /** Topic configs as the broker reports them (Kafka's ConfigCommand, all values incl. defaults). */
  describeTopicConfigs(topic: string): Promise<Record<string, string>>;
  /** Stop the broker now (idempotent; the after hook calls it too). */
  stop(): Promise<void>;
}

export interface TestKafkaOptions {
  readonly extraProperties?: Readonly<Record<string, string>>;
  /** Keep the temp dir after the run (for debugging). */
  readonly keepStateDir?: boolean;
}

/** A port that was free a moment ago (bind 0, read, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

const execFileP = promisify(execFile);

export async function startTestKafka(hooks: { after(fn: () => unknown): void }, opts: TestKafkaOptions = {}): Promise<TestKafka> {
  // Jars are cached under the project's data dir so each run does not re-resolve them.
  const cacheDir = join(loadConfig().dataDir, 'cache');
  const dist = await ensureKafkaDist({ cacheDir, version: loadConfig().kafkaVersion });
  const stateDir = await mkdtemp(join(tmpdir(), 'adclick-kafka-'));
  const logFile = join(stateDir, 'broker.log');
  const log = createWriteStream(logFile);
  const [port, controllerPort] = [await freePort(), await freePort()];
  const broker = new KafkaBroker({
    dist, stateDir, port, controllerPort, heapMax: '512m',
    extraProperties: opts.extraProperties,
    logger: createLogger('test-kafka', 'warn'),
    output: (line) => log.write(line + '\n'),
    readyTimeoutMs: 120_000,
  });

  const lastResort = () => broker.killNow();
  process.once('exit', lastResort);
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= (async () => {
    try {
      await broker.stop();
    } finally {
      process.off('exit', lastResort);
      log.end();
      if (!opts.keepStateDir) await rm(stateDir, { recursive: true, force: true });
    }
  })());
  // Registered before start, so a failed start is cleaned up as well.
  hooks.after(stop);

  const t0 = Date.now();
  try {
    await broker.start();
  } catch (err) {
    broker.killNow();
    process.off('exit', lastResort);
    if (!opts.keepStateDir) rmSync(stateDir, { recursive: true, force: true });
    throw err;
  }
  const startMs = Date.now() - t0;

  return {
    bootstrap: broker.bootstrap,
    broker,
    dist,
    stateDir,
    logFile,
    startMs,
    uniqueTopic: (prefix) => `${prefix}-${randomBytes(4).toString('hex')}`,
    async describeTopicConfigs(topic) {
      const { stdout } = await execFileP('java', [
        '-Xmx128m', `-Dlog4j2.configurationFile=${join(stateDir, 'log4j2-tools.properties')}`, '-cp', dist.classpath,
        'kafka.admin.ConfigCommand', '--bootstrap-server', broker.bootstrap,
        '--entity-type', 'topics', '--entity-name', topic, '--describe', '--all',
      ], { timeout: 60_000 });
      const out: Record<string, string> = {};
      for (const m of stdout.matchAll(/^\s+([\w.]+)=(.*?) sensitive=/gm)) out[m[1]!] = m[2]!;
      return out;
    },
    stop,
  };
}

/** Every click record currently in the topic (read_committed, from the beginning), decoded, with its key and headers. */
export async function readClicks(bootstrap: string, topic: string, expectAtLeast: number, timeoutMs = 20_000) {
  return (await readClicksAndTicks(bootstrap, topic, expectAtLeast, timeoutMs)).clicks;
}

/**
 * The topic's records split into clicks and gateway progress ticks (header
 * `adclick-record: tick`, see src/gateway/partition-ticks.ts). Ticks keep arriving while a
 * gateway runs, so only clicks count as growth for the final quiet second.
 */
export async function readClicksAndTicks(bootstrap: string, topic: string, expectAtLeast: number, timeoutMs = 20_000) {
  const consumer = new KafkaJs.KafkaJS.Kafka({ kafkaJS: { brokers: [bootstrap], logLevel: KafkaJs.KafkaJS.logLevel.NOTHING } }).consumer({
    kafkaJS: { groupId: `it-${randomBytes(4).toString('hex')}`, fromBeginning: true, autoCommit: false },
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic] });
  const out: { key: string; value: ReturnType<typeof ClickEvent.decode>; headers: Record<string, string> }[] = [];
  const ticks: { partition: number; value: ReturnType<typeof PartitionTick.decode> }[] = [];
  let lastGrowth = Date.now();
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(Array.isArray(v) ? v[0] : v);
      if (headers['adclick-record'] === 'tick') {
        ticks.push({ partition, value: PartitionTick.decode(message.value!) });
        return;
      }
      out.push({ key: message.key!.toString(), value: ClickEvent.decode(message.value!), headers });
      lastGrowth = Date.now();
    },
  });
  const deadline = Date.now() + timeoutMs;
  // Wait for the expected count, then a quiet second to catch anything extra.
  while (Date.now() < deadline && (out.length < expectAtLeast || Date.now() - lastGrowth < 1500)) await new Promise((r) => setTimeout(r, 100));
  await consumer.disconnect();
  return { clicks: out, ticks };
}

/**
 * A stand-in for one of the pipeline's consumer groups: reads `topic` in `group` from the
 * beginning, hands each batch's records to `onRecords` (if any) and commits after every
 * batch, until `stop()` (also called by the `after` hook).
 */
export async function committingConsumer(
  o: { bootstrap: string; group: string; topic: string; after(fn: () => unknown): void; onRecords?: (messages: readonly KafkaJs.KafkaJS.KafkaMessage[]) => void },
): Promise<{ stop(): Promise<void>; batches(): number }> {
  const consumer = new KafkaJs.KafkaJS.Kafka({ kafkaJS: { brokers: [o.bootstrap], logLevel: KafkaJs.KafkaJS.logLevel.NOTHING } }).consumer({
    kafkaJS: { groupId: o.group, fromBeginning: true, autoCommit: false },
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [o.topic] });
  let batches = 0;
  await consumer.run({
    eachBatch: async ({ batch }) => {
      o.onRecords?.(batch.messages);
      const last = batch.messages.at(-1);
      if (last) await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(Number(last.offset) + 1) }]);
      batches++;
    },
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await consumer.disconnect();
  };
  o.after(stop);
  return { stop, batches: () => batches };
}

// Fault injectors. Each records when the fault began (`at`) and when it was cleared
// (`clearedAt`: the process the supervisor restarted is healthy again, or the paused /
// stopped engine was resumed / restarted); recovery is measured from those by the driver.
import { readFileSync } from 'node:fs';
import kafkaJavascript from '@confluentinc/kafka-javascript';
import { latestCheckpoint } from '../stack/checkpoints.ts';
import { withAdmin } from '../stack/kafka-admin.ts';
import { ClickEvent, DeadLetter } from '../shared/proto.ts';
import type { ChaosStack } from './stack.ts';
import { signal, sleep, waitFor } from './util.ts';

const { Kafka, logLevel } = kafkaJavascript.KafkaJS;

export interface FaultRecord {
  what: string;
  at: number;
  clearedAt: number;
  /** Filled in by the driver from the progress samples. */
  recoveryMs?: number | null;
}

export type Service = 'kafka' | 'flink' | 'serving' | 'gateway';

export function pidOf(stack: ChaosStack, name: Service): number {
  const pid = stack.stack.supervisor.get(name)?.pid;
  if (!pid) throw new Error(`${name} has no running process`);
  return pid;
}

/** Wait until the supervisor runs `name` as a new, healthy process (not `oldPid`). */
export async function waitRestarted(stack: ChaosStack, name: Service, oldPid: number, timeoutMs = 300_000): Promise<number> {
  let pid = 0;
  await waitFor(`${name} to be restarted and healthy`, () => {
    const p = stack.stack.supervisor.get(name);
    pid = p?.pid ?? 0;
    if (p?.state === 'failed') throw new Error(`the supervisor gave up restarting ${name}`);
    return pid !== 0 && pid !== oldPid && p?.state === 'healthy';
  }, timeoutMs, 100);
  return pid;
}

/** kill -9 a supervised process and wait until it is back and healthy. */
export async function killAndWait(stack: ChaosStack, name: Service, what = `kill -9 ${name}`): Promise<FaultRecord & { newPid: number }> {
  const pid = pidOf(stack, name);
  const at = Date.now();
  signal(pid, 'SIGKILL');
  const newPid = await waitRestarted(stack, name, pid);
  return { what, at, clearedAt: Date.now(), newPid };
}

export function latestCheckpointId(stack: ChaosStack): number {
  return latestCheckpoint(stack.checkpointDir)?.id ?? -1;
}

export function latestCheckpointPath(stack: ChaosStack): string | undefined {
  return latestCheckpoint(stack.checkpointDir)?.path;
}

/** Resolves right after the next checkpoint completed (its `_metadata` appeared). */
export async function nextCheckpoint(stack: ChaosStack, timeoutMs = 120_000): Promise<void> {
  const before = latestCheckpointPath(stack);
  await waitFor('a new completed checkpoint', () => latestCheckpointPath(stack) !== before, timeoutMs, 20);
}

/** The command line of a live process (Linux). */
export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** Committed offsets of a consumer group, as `topic/partition=offset` strings. */
export async function committedOffsets(stack: ChaosStack, groupId: string, topics: string[]): Promise<string> {
  return withAdmin(stack.stack.context.kafkaBootstrap, async (admin) => {
    const res = await admin.fetchOffsets({ groupId, topics, timeout: 10_000 });
    return res.flatMap((t) => t.partitions.map((p) => `${t.topic}/${p.partition}=${p.offset}`)).sort().join(' ');
  });
}

/** Poison records written straight into the clicks topic (bypassing the gateway). */
export function poisonRecords(tag: string): { key: string; value: Buffer; kind: string }[] {
  const garbage = Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0x13, 0x37]), Buffer.from(`chaos-garbage-${tag}`), Buffer.from([0x0a, 0xff, 0xff, 0xff])]);
  // Decodes as a ClickEvent but is not a valid click: no impression id, ad id 0, unknown event type.
  const invalid = Buffer.from(ClickEvent.encode(ClickEvent.create({ impressionId: '', eventType: `chaos-${tag}`, adId: 0, campaignId: 0, advertiserId: 0, eventTimeMs: Date.now() })).finish());
  return [
    { key: `chaos-poison-garbage-${tag}`, value: garbage, kind: 'garbage bytes' },
    { key: `chaos-poison-invalid-${tag}`, value: invalid, kind: 'valid protobuf, invalid click' },
  ];
}

export async function producePoison(stack: ChaosStack, topic: string, records: { key: string; value: Buffer }[]): Promise<void> {
  const client = new Kafka({ kafkaJS: { brokers: [stack.stack.context.kafkaBootstrap], logLevel: logLevel.NOTHING } });
  const producer = client.producer({ kafkaJS: { idempotent: true, acks: -1 } });
  await producer.connect();
  try {
    await producer.send({ topic, messages: records.map((r) => ({ key: r.key, value: r.value })) });
  } finally {
    await producer.disconnect();
  }
}

/** Reads the dead-letter topic (read_committed) until every key is found or the timeout; returns key → reason. */
export async function findDeadLetters(stack: ChaosStack, topic: string, keys: string[], timeoutMs: number): Promise<Map<string, { reason: string; detail: string; payloadMatches: boolean }>> {
  const client = new Kafka({ kafkaJS: { brokers: [stack.stack.context.kafkaBootstrap], logLevel: logLevel.NOTHING } });
  const consumer = client.consumer({ kafkaJS: { groupId: `chaos-dlq-${Date.now()}-${Math.random().toString(36).slice(2)}`, fromBeginning: true, readUncommitted: false, autoCommit: false } });
  const found = new Map<string, { reason: string; detail: string; payloadMatches: boolean }>();
  const want = new Set(keys);
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic] });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      void consumer.run({
        eachMessage: async ({ message }) => {
          let d: ReturnType<typeof DeadLetter.decode>;
          try {
            d = DeadLetter.decode(message.value ?? Buffer.alloc(0));
          } catch {
            return;
          }
          const key = message.key?.toString() ?? Buffer.from(d.key ?? []).toString();
          if (!want.has(key)) return;
          found.set(key, { reason: String(d.reason ?? ''), detail: String(d.detail ?? ''), payloadMatches: (d.payload?.length ?? 0) > 0 });
          if (found.size === want.size) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
  return found;
}

export { signal, sleep };

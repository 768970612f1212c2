// Proof of Kafka's durability under faults with real clients: a producer writes numbered
// records at a bounded rate and keeps a ledger of the ones the cluster acknowledged; a
// read_committed consumer reads the topic back to its end; the comparison names every
// acknowledged record that is missing (lost) and every record read more than once
// (duplicated). The same check judges the safe settings and the negative control.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { KafkaJS as KafkaJSTypes } from '@confluentinc/kafka-javascript';
import { withAdmin } from '../stack/kafka-admin.ts';

const require = createRequire(import.meta.url);
const { KafkaJS } = require('@confluentinc/kafka-javascript') as { KafkaJS: typeof KafkaJSTypes };

export interface LedgerProducerOptions {
  readonly bootstrap: string;
  readonly topic: string;
  /** -1 (all in-sync replicas) or 1 (the leader alone: the negative control). */
  readonly acks: -1 | 1;
  readonly idempotent: boolean;
  /** Records per second (bounded traffic). */
  readonly ratePerSec: number;
  /** Hard bound on records, whatever the duration. */
  readonly maxRecords: number;
  /** How long a record may wait for its ack (librdkafka message.timeout.ms). */
  readonly deliveryTimeoutMs?: number;
  /** The record for ledger id `id` (default: key and value both the id), e.g. a ClickEvent for the Flink job. */
  readonly message?: (id: string) => { key: string; value: string | Buffer };
}

export interface LedgerResult {
  readonly sent: number;
  /** Ids the cluster acknowledged, in ack order. */
  readonly acked: readonly string[];
  /** Sends that failed: in doubt (written or not), so they may be read back or not. */
  readonly failed: readonly string[];
  readonly firstError?: string;
  /** Ack times (ms since epoch), parallel to `acked`. */
  readonly ackTimes: readonly number[];
}

export interface LedgerProducer {
  /** Stop sending, wait for every record in flight, disconnect. */
  stop(): Promise<LedgerResult>;
  readonly ackedCount: number;
}

export async function startLedgerProducer(o: LedgerProducerOptions): Promise<LedgerProducer> {
  const producer = new KafkaJS.Kafka({
    kafkaJS: { brokers: o.bootstrap.split(','), clientId: 'adclick-ledger', logLevel: KafkaJS.logLevel.NOTHING },
  }).producer({
    kafkaJS: { acks: o.acks, idempotent: o.idempotent, ...(o.idempotent ? {} : { maxInFlightRequests: 5 }) },
    'message.timeout.ms': o.deliveryTimeoutMs ?? 180_000,
    'linger.ms': 5,
  } as never);
  await producer.connect();
  const run = randomBytes(3).toString('hex');
  const acked: string[] = [];
  const ackTimes: number[] = [];
  const failed: string[] = [];
  let firstError: string | undefined;
  let sent = 0;
  let stopping = false;
  const inflight = new Set<Promise<void>>();
  const t0 = Date.now();

  const loop = (async () => {
    while (!stopping && sent < o.maxRecords) {
      // Paced by elapsed time, so a stall (a broker fault) does not turn into a burst after.
      const due = Math.min(o.maxRecords, Math.floor(((Date.now() - t0) / 1000) * o.ratePerSec) + 1);
      while (sent < due && !stopping) {
        const id = `${run}-${String(sent).padStart(7, '0')}`;
        sent++;
        const p = producer.send({ topic: o.topic, messages: [o.message ? o.message(id) : { key: id, value: id }] }).then(
          () => { acked.push(id); ackTimes.push(Date.now()); },
          (err: unknown) => { failed.push(id); firstError ??= String((err as Error)?.message ?? err); },
        );
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();

  return {
    get ackedCount() { return acked.length; },
    async stop() {
      stopping = true;
      await loop;
      await Promise.allSettled([...inflight]);
      await producer.disconnect().catch(() => undefined);
      return { sent, acked, failed, firstError, ackTimes };
    },
  };
}

/**
 * How often each record id was read (read_committed, from the beginning to an end mark).
 * The end is not the partitions' high watermarks: on a transactional topic the last offsets
 * are commit/abort markers, which a consumer never delivers, and whether a marker is already
 * in the log when the watermarks are taken is a race with the coordinator. Instead an end
 * mark (a plain acks=all record with a key of its own) is written to every partition first,
 * and a partition is read when its mark is; marks are not counted.
 */
export async function readBack(bootstrap: string, topic: string, timeoutMs = 120_000): Promise<Map<string, number>> {
  const endKey = `adclick-ledger-end-mark-${randomBytes(4).toString('hex')}`;
  const partitions = (await withAdmin(bootstrap, (admin) => admin.fetchTopicOffsets(topic))).map((e) => e.partition);
  const kafka = new KafkaJS.Kafka({ kafkaJS: { brokers: bootstrap.split(','), clientId: 'adclick-ledger-check', logLevel: KafkaJS.logLevel.NOTHING } });
  const marker = kafka.producer({ kafkaJS: { acks: -1, idempotent: true } });
  const want = new Map<number, number>();
  await marker.connect();
  try {
    for (const partition of partitions) {
      const [meta] = await marker.send({ topic, messages: [{ key: endKey, value: '', partition }] });
      want.set(partition, Number(meta!.baseOffset ?? meta!.offset) + 1);
    }
  } finally {
    await marker.disconnect().catch(() => undefined);
  }
  const consumer = kafka.consumer({
    kafkaJS: { groupId: `ledger-check-${randomBytes(4).toString('hex')}`, fromBeginning: true, autoCommit: false, readUncommitted: false },
  });
  const seen = new Map<string, number>();
  const reached = new Map<number, number>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic] });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const id = message.key?.toString() ?? '';
        if (id !== endKey) seen.set(id, (seen.get(id) ?? 0) + 1);
        reached.set(partition, Number(message.offset) + 1);
      },
    });
    const done = () => [...want].every(([p, end]) => (reached.get(p) ?? 0) >= end);
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`read-back of ${topic} did not reach its end marks ${JSON.stringify([...want])} in ${timeoutMs} ms (at ${JSON.stringify([...reached])})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
  return seen;
}

export interface LedgerCheck {
  readonly acked: number;
  readonly read: number;
  /** Acknowledged, never read. */
  readonly lost: readonly string[];
  /** Read more than once. */
  readonly duplicated: readonly string[];
  /** Read, never acknowledged (only possible for failed sends: in doubt). */
  readonly unacknowledged: readonly string[];
}

export function checkLedger(result: Pick<LedgerResult, 'acked'>, seen: ReadonlyMap<string, number>): LedgerCheck {
  const acked = new Set(result.acked);
  return {
    acked: acked.size,
    read: [...seen.values()].reduce((a, b) => a + b, 0),
    lost: result.acked.filter((id) => !seen.has(id)),
    duplicated: [...seen].filter(([, n]) => n > 1).map(([id]) => id),
    unacknowledged: [...seen.keys()].filter((id) => !acked.has(id)),
  };
}

/** Longest gap between two consecutive acks (ms): how long the producer saw the topic stall. */
export function longestAckGapMs(ackTimes: readonly number[]): number {
  const sorted = [...ackTimes].sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < sorted.length; i++) gap = Math.max(gap, sorted[i]! - sorted[i - 1]!);
  return gap;
}

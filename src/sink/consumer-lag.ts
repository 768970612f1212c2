// The sink consumer group's lag per partition: the offset this sink last committed against
// the partition's end (read_committed: the last stable offset). The committed offsets come
// from the sink itself, not from the admin API: `admin.fetchOffsets` (OffsetFetch) crashes
// the process with SIGSEGV in @confluentinc/kafka-javascript 1.10.1 as built here (seen in
// every call, existing group or not), so it is never used. Unlike the per-fetch figure in metrics.ts it keeps growing while the sink is
// stuck (paused, ClickHouse down) — which is when it matters. A transactional producer
// leaves one commit marker after its records, so an idle, caught-up partition can show 1.
import { createRequire } from 'node:module';
import type { KafkaJS as KafkaJSTypes } from '@confluentinc/kafka-javascript';

const require = createRequire(import.meta.url);
const { KafkaJS } = require('@confluentinc/kafka-javascript') as { KafkaJS: typeof KafkaJSTypes & { IsolationLevel: { READ_COMMITTED: number } } };

export interface PartitionLag { readonly topic: string; readonly partition: number; readonly lag: number }

/**
 * Lag per partition: end − committed; a partition the group never committed counts from
 * its low watermark (the group starts from the earliest offset).
 */
export function lagOf(
  committed: readonly { topic: string; partitions: readonly { partition: number; offset: string }[] }[],
  ends: readonly { topic: string; partitions: readonly { partition: number; high: string; low: string }[] }[],
): PartitionLag[] {
  const done = new Map<string, number>();
  for (const t of committed) for (const p of t.partitions) done.set(`${t.topic}\u0000${p.partition}`, Number(p.offset));
  const out: PartitionLag[] = [];
  for (const t of ends) {
    for (const p of t.partitions) {
      const high = Number(p.high);
      const low = Number(p.low);
      if (!Number.isFinite(high)) continue;
      const c = done.get(`${t.topic}\u0000${p.partition}`);
      const from = c !== undefined && Number.isFinite(c) && c >= 0 ? c : Number.isFinite(low) ? low : 0;
      out.push({ topic: t.topic, partition: p.partition, lag: Math.max(0, high - from) });
    }
  }
  return out.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
}

export interface ConsumerLagReader {
  read(): Promise<PartitionLag[]>;
  close(): Promise<void>;
}

/**
 * One admin connection, opened on first use and again after a failure: `use` runs a call
 * on it and drops the connection when the call throws.
 */
function lazyAdmin(brokers: string, clientId: string, timeout: number) {
  let admin: KafkaJSTypes.Admin | null = null;
  const drop = async () => {
    const a = admin;
    admin = null;
    await a?.disconnect().catch(() => undefined);
  };
  return {
    async use<T>(call: (a: KafkaJSTypes.Admin) => Promise<T>): Promise<T> {
      try {
        if (!admin) {
          admin = new KafkaJS.Kafka({ kafkaJS: { brokers: brokers.split(',').map((b) => b.trim()).filter(Boolean), clientId, logLevel: KafkaJS.logLevel.NOTHING, connectionTimeout: timeout, requestTimeout: timeout } }).admin();
          await admin.connect();
        }
        return await call(admin);
      } catch (err) {
        await drop();
        throw err;
      }
    },
    close: drop,
  };
}

/** The sink group's lag, over one admin connection (lazyAdmin). */
export function createConsumerLagReader(opts: { brokers: string; groupId: string; topics: readonly string[]; timeoutMs?: number; committed: () => ReadonlyMap<string, number> }): ConsumerLagReader {
  const timeout = opts.timeoutMs ?? 3000;
  const admin = lazyAdmin(opts.brokers, 'adclick-sink-lag', timeout);
  return {
    read: () => admin.use(async (a) => {
      const mine = opts.committed();
      const committed = opts.topics.map((topic) => ({
        topic,
        partitions: [...mine].filter(([k]) => k.startsWith(`${topic}\u0000`)).map(([k, offset]) => ({ partition: Number(k.slice(topic.length + 1)), offset: String(offset) })),
      }));
      const ends = await Promise.all(opts.topics.map(async (topic) => ({
        topic,
        partitions: await a.fetchTopicOffsets(topic, { timeout, isolationLevel: KafkaJS.IsolationLevel.READ_COMMITTED as never }),
      })));
      // Only partitions this sink has committed: after a restart, before the first commit,
      // the figure would be a guess (the admin API that knows is unusable, see above).
      return lagOf(committed, ends).filter((l) => mine.has(`${l.topic}\u0000${l.partition}`));
    }),
    close: admin.close,
  };
}

/**
 * The high watermark (read_uncommitted end) of every partition of `topics`, for the sink's
 * watermark fence (watermark-fence.ts). One admin connection, reopened after a failure; a
 * failure throws (the fence then waits).
 */
export function createPartitionEndsReader(opts: { brokers: string; topics: readonly string[]; timeoutMs?: number }): { read(): Promise<Map<string, number>>; close(): Promise<void> } {
  const timeout = opts.timeoutMs ?? 3000;
  const admin = lazyAdmin(opts.brokers, 'adclick-sink-fence', timeout);
  const levels = KafkaJS.IsolationLevel as unknown as { READ_UNCOMMITTED: number };
  return {
    read: () => admin.use(async (a) => {
      const out = new Map<string, number>();
      await Promise.all(opts.topics.map(async (topic) => {
        for (const h of await a.fetchTopicOffsets(topic, { timeout, isolationLevel: levels.READ_UNCOMMITTED as never })) {
          const hi = Number(h.high);
          if (!Number.isFinite(hi)) throw new Error(`no end for ${topic}/${h.partition}`);
          out.set(`${topic}\u0000${h.partition}`, hi);
        }
      }));
      return out;
    }),
    close: admin.close,
  };
}

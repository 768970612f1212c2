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

export interface GroupLag { readonly group: string; readonly topic: string; readonly lag: number; readonly partitions: number }

/**
 * The committed lag of other processes' consumer groups (gateway back-pressure): per watched
 * `group@topic`, the sum over the topic's partitions of end (read_committed) − the group's
 * committed offset. The committed offsets are read by a consumer of that group that never
 * subscribes (so it never joins the group, takes no partition and commits nothing):
 * `consumer.committed()` is an OffsetFetch like the admin call that crashes (see the top),
 * through the consumer path that works. A group with no committed offset on the topic is
 * left out (a stack without that consumer, or one that has not checkpointed yet); its
 * partitions never committed while others are count from the low watermark (lagOf).
 */
export function createGroupLagReader(opts: { brokers: string; watch: readonly { group: string; topic: string }[]; timeoutMs?: number }): { read(): Promise<GroupLag[]>; close(): Promise<void> } {
  const timeout = opts.timeoutMs ?? 3000;
  const admin = lazyAdmin(opts.brokers, 'adclick-gateway-lag', timeout);
  const brokers = opts.brokers.split(',').map((b) => b.trim()).filter(Boolean);
  const consumers = new Map<string, KafkaJSTypes.Consumer>();
  const consumerOf = async (group: string): Promise<KafkaJSTypes.Consumer> => {
    let c = consumers.get(group);
    if (!c) {
      c = new KafkaJS.Kafka({ kafkaJS: { brokers, clientId: 'adclick-gateway-lag', logLevel: KafkaJS.logLevel.NOTHING, connectionTimeout: timeout, requestTimeout: timeout } })
        .consumer({ kafkaJS: { groupId: group, autoCommit: false, fromBeginning: true } });
      consumers.set(group, c);
      try {
        await c.connect();
      } catch (err) {
        consumers.delete(group);
        await c.disconnect().catch(() => undefined);
        throw err;
      }
    }
    return c;
  };
  const drop = async (group: string) => {
    const c = consumers.get(group);
    consumers.delete(group);
    await c?.disconnect().catch(() => undefined);
  };
  return {
    read: () => admin.use(async (a) => {
      const topics = [...new Set(opts.watch.map((w) => w.topic))];
      const ends = new Map(await Promise.all(topics.map(async (topic) =>
        [topic, await a.fetchTopicOffsets(topic, { timeout, isolationLevel: KafkaJS.IsolationLevel.READ_COMMITTED as never })] as const)));
      const out: GroupLag[] = [];
      for (const w of opts.watch) {
        const parts = ends.get(w.topic)!;
        let committed: { partition: number; offset: string }[];
        try {
          const c = await consumerOf(w.group);
          const got = await c.committed(parts.map((p) => ({ topic: w.topic, partition: p.partition })), timeout);
          committed = got.filter((g) => g.offset !== null && g.offset !== undefined && Number(g.offset) >= 0).map((g) => ({ partition: g.partition, offset: String(g.offset) }));
        } catch (err) {
          await drop(w.group);
          throw err;
        }
        if (committed.length === 0) continue;
        const lags = lagOf([{ topic: w.topic, partitions: committed }], [{ topic: w.topic, partitions: parts }]);
        out.push({ group: w.group, topic: w.topic, lag: lags.reduce((s, l) => s + l.lag, 0), partitions: lags.length });
      }
      return out;
    }),
    async close() {
      await Promise.all([...consumers.keys()].map(drop));
      await admin.close();
    },
  };
}

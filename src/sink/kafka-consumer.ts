// The real SinkConsumer: @confluentinc/kafka-javascript (librdkafka) through its
// KafkaJS-compatible API. read_committed (the Flink job writes transactionally), no
// auto-commit (the sink commits after ClickHouse acknowledged), earliest offset for a
// new group (nothing the job emitted may be skipped). Several sinks may share the group
// (issue 18): librdkafka's default round-robin assignor with the classic (eager) protocol
// splits the partitions; `assigned()` and `groupCommitted()` are what the sink needs to
// stay exact across members (aggregate-sink.ts, watermark-fence.ts).
import { createRequire } from 'node:module';
import type { KafkaJS as KafkaJSTypes } from '@confluentinc/kafka-javascript';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../shared/logger.ts';
import type { SinkMessage, TopicPartitionOffset } from './batch.ts';
import type { SinkConsumer } from './aggregate-sink.ts';
import { traceIdFromHeaders, type KafkaHeaders } from './trace-context.ts';
import { yieldToLoop } from '../shared/yield-to-loop.ts';

const require = createRequire(import.meta.url);
const { KafkaJS } = require('@confluentinc/kafka-javascript') as { KafkaJS: typeof KafkaJSTypes };

/** The part of the KafkaJS-compatible consumer this module uses (a seam for unit tests). */
export type GroupConsumer = Pick<KafkaJSTypes.Consumer, 'connect' | 'subscribe' | 'run' | 'commitOffsets' | 'disconnect' | 'assignment'> &
  Partial<Pick<KafkaJSTypes.Consumer, 'committed'>>;

export interface KafkaSinkConsumerOptions {
  readonly brokers: string;
  readonly topics: readonly string[];
  /** default `adclick-sink` */
  readonly groupId?: string;
  readonly clientId?: string;
  readonly logger: Logger;
  /** Records per eachBatch call (js.consumer.max.batch.size), default 1000. */
  readonly fetchBatchSize?: number;
  /** A consumer that has held no partition this long is replaced by a new one (default 30 s). */
  readonly rejoinAfterMs?: number;
  /** Longest a delivery waits for room in a full sink before the consumer is replaced by a fresh one (default 60 s; well below max.poll.interval.ms). */
  readonly maxWaitForRoomMs?: number;
  /** How often membership is checked (default 5 s). */
  readonly checkEveryMs?: number;
  /** Where `adclick_sink_assigned_partitions` and `adclick_sink_consumer_replacements_total` go (none: not exported). */
  readonly registry?: Registry;
  /** Tests: builds the underlying consumer (default: a librdkafka consumer with the settings below). */
  readonly makeConsumer?: () => GroupConsumer;
  readonly now?: () => number;
}

/**
 * A record as the sink gets it. Its trace id is read from the `traceparent` header only
 * when asked (log lines about failed batches and dead letters): parsing it for every
 * record cost ~4% of the serving process's CPU at 10,000 clicks/s (issue 17).
 */
export class DeliveredMessage implements SinkMessage {
  #traceId: string | undefined | null = null;
  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly offset: string,
    readonly key: Buffer | null,
    readonly value: Buffer | null,
    private readonly headers: KafkaHeaders | undefined,
  ) {}

  get traceId(): string | undefined {
    if (this.#traceId === null) this.#traceId = traceIdFromHeaders(this.headers);
    return this.#traceId;
  }
}

function deferred(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

export function createKafkaSinkConsumer(opts: KafkaSinkConsumerOptions): SinkConsumer {
  const log = opts.logger.child({ module: 'sink-consumer' });
  let positions = new Map<string, { offset: number; at: number }>();
  const onStats = (ev: { message?: string }) => {
    try {
      const at = Date.now();
      const stats = JSON.parse(ev.message ?? '{}') as { topics?: Record<string, { partitions?: Record<string, { app_offset?: number }> }> };
      // Replaced whole: a partition that left this member (rebalance) leaves the map too.
      const next = new Map<string, { offset: number; at: number }>();
      for (const [topic, t] of Object.entries(stats.topics ?? {})) {
        for (const [p, x] of Object.entries(t.partitions ?? {})) {
          if (p === '-1' || typeof x.app_offset !== 'number' || x.app_offset < 0) continue;
          next.set(`${topic}\u0000${p}`, { offset: x.app_offset, at });
        }
      }
      positions = next;
    } catch {
      /* a malformed stats event only delays the fence */
    }
  };
  const groupId = opts.groupId ?? 'adclick-sink';
  const make =
    opts.makeConsumer ??
    (() =>
      new KafkaJS.Kafka({
        kafkaJS: {
          brokers: opts.brokers.split(',').map((b) => b.trim()).filter(Boolean),
          clientId: opts.clientId ?? 'adclick-sink',
          logLevel: KafkaJS.logLevel.WARN,
        },
      }).consumer({
        kafkaJS: {
          groupId,
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
        // The consumer's position per partition (librdkafka's app offset: past commit/abort
        // markers), for the sink's watermark fence (watermark-fence.ts).
        'statistics.interval.ms': 1_000,
        stats_cb: onStats,
      } as never));
  const rejoinAfterMs = opts.rejoinAfterMs ?? 30_000;
  const maxWaitForRoomMs = opts.maxWaitForRoomMs ?? 60_000;
  const now = opts.now ?? Date.now;
  const registers = opts.registry ? [opts.registry] : [];
  const assignedGauge = new Gauge({ name: 'adclick_sink_assigned_partitions', help: 'Partitions this sink consumer holds (checked every few seconds; the members of the group hold all between them)', registers });
  const replacements = new Counter({ name: 'adclick_sink_consumer_replacements_total', help: 'Sink consumers replaced by a fresh one: after holding no partition too long (a wedged group membership) or after a delivery waited too long for room (a store failing)', registers });
  let consumer = make();
  let connected = false;
  let paused = false;
  let stopped = false;
  let deliverTo: Parameters<SinkConsumer['start']>[0] | undefined;
  let watchdog: NodeJS.Timeout | undefined;
  let unassignedSince: number | undefined;
  let replacing: Promise<void> | null = null;

  // Back-pressure without the client's pause(): while the sink is full (or its writes
  // fail) the delivery of the next batch waits here, so the client fetches nothing more
  // (librdkafka's prefetch stops at queued.max.messages.kbytes). Pausing through the client
  // (pause/resume from inside or outside a delivery, as this module did) left partitions
  // undelivered for minutes and then stopped the whole consumer, and re-delivered the batch
  // being delivered at each pause (20,200 raw rows of 20,000 in the fence test); measured
  // on @confluentinc/kafka-javascript 1.10.1 by test/integration/sink-consumer-pause.test.ts.
  let gate = deferred();
  const openGate = () => {
    const g = gate;
    gate = deferred();
    g.open();
  };

  const runOn = async (c: GroupConsumer) => {
    await c.connect();
    await c.subscribe({ topics: [...opts.topics] });
    await c.run({
      eachBatch: async ({ batch, resolveOffset, isStale }) => {
        // At most maxWaitForRoomMs (a store failing for that long): then this consumer is
        // replaced by a fresh one, which starts at the group's committed offsets (what is
        // read again collapses). Waiting on would stop the client's polls for good: past
        // max.poll.interval.ms it drops its prefetched records without seeking back (lost;
        // confluent-kafka-javascript#528) and leaves the group, and until then a rebalance
        // of the group waits for this member. Handing the batch back unresolved instead
        // (the client seeks back to it) wedged the consumer like pause() did (measured).
        const until = now() + maxWaitForRoomMs;
        while (paused && !stopped && c === consumer) {
          const left = until - now();
          if (left <= 0) {
            if (!replacing) startReplacing(`a delivery waited ${maxWaitForRoomMs} ms for room in the sink`);
            return;
          }
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([gate.promise, new Promise<void>((r) => (timer = setTimeout(r, left)))]);
          clearTimeout(timer);
        }
        // Stopped, replaced, or revoked or sought while it waited: not delivered (nor
        // resolved: the client re-reads it from the partition's position, a later run from
        // the committed offset).
        if (stopped || c !== consumer || isStale?.()) return;
        const msgs: SinkMessage[] = batch.messages.map((m) => new DeliveredMessage(batch.topic, batch.partition, m.offset, m.key ?? null, m.value ?? null, m.headers));
        let lag: { topic: string; partition: number; lag: number } | undefined;
        const last = batch.messages[batch.messages.length - 1];
        const hw = Number(batch.highWatermark);
        if (last && Number.isFinite(hw) && hw >= 0) lag = { topic: batch.topic, partition: batch.partition, lag: Math.max(0, hw - Number(last.offset) - 1) };
        // The batch is the sink's from here on (it commits what it stored itself).
        if (last) resolveOffset?.(last.offset);
        deliverTo!(msgs, lag);
        // A macrotask turn per batch (js.consumer.max.batch.size records): the client's
        // fetch loop is a chain of promises, and with a big prefetched backlog it would hand
        // over ~100,000 records (until the sink pauses it) without letting the loop serve
        // /healthz, /metrics or the query API (measured: 3 s stalls; issue 17).
        await yieldToLoop();
      },
    });
  };

  // Seen in the chaos suite: after the broker was paused past its session timeout, the
  // consumer's group-coordinator requests kept timing out for minutes, across even a broker
  // restart, with no partition assigned and nothing consumed. A member of a group with at
  // least as many partitions as members always holds some (round-robin over all six
  // topics); holding none for rejoinAfterMs (whatever the cause) gets a fresh consumer.
  // Records taken but not yet committed are committed through the new one if it holds
  // their partitions by then, or re-delivered — rows collapse.
  const replace = async (why: string) => {
    log.error({ why, groupId }, 'replacing the sink consumer with a new one');
    replacements.inc();
    const old = consumer;
    consumer = make();
    openGate(); // a delivery of the old consumer waiting for room gives up (not delivered)
    await Promise.race([old.disconnect().catch((err: unknown) => log.warn({ err }, 'disconnecting the old consumer failed')), new Promise((r) => setTimeout(r, 10_000).unref())]);
    try {
      await runOn(consumer);
      log.info({ groupId }, 'replacement sink consumer running');
    } catch (err) {
      log.error({ err }, 'replacement sink consumer could not start; will try again');
    }
  };
  const check = () => {
    if (!connected || replacing) return;
    let held = 0;
    try {
      held = consumer.assignment().length;
    } catch {
      held = 0; // not connected: counts as holding nothing
    }
    assignedGauge.set(held);
    if (held > 0) {
      unassignedSince = undefined;
      return;
    }
    unassignedSince ??= now();
    const heldNoneMs = now() - unassignedSince;
    if (heldNoneMs < rejoinAfterMs) return;
    startReplacing(`it has held no partition for ${heldNoneMs} ms`);
  };
  // Synchronously up to the new consumer taking over (replace's first await), so a delivery
  // of the old one that starts it sees it replaced.
  const startReplacing = (why: string) => {
    replacing = replace(why).finally(() => {
      replacing = null;
      unassignedSince = undefined;
    });
  };

  return {
    async start(deliver) {
      deliverTo = deliver;
      await runOn(consumer);
      connected = true;
      watchdog = setInterval(check, opts.checkEveryMs ?? 5_000);
      watchdog.unref();
      log.info({ topics: opts.topics, groupId }, 'consumer running');
    },
    async commit(offsets: TopicPartitionOffset[]) {
      if (offsets.length) await consumer.commitOffsets(offsets);
    },
    positions() {
      return positions;
    },
    assigned() {
      if (!connected || replacing) return new Set<string>();
      try {
        return new Set(consumer.assignment().map((tp) => `${tp.topic}\u0000${tp.partition}`));
      } catch {
        return new Set<string>(); // not connected: holds nothing it may commit
      }
    },
    async groupCommitted(keys) {
      if (!consumer.committed) throw new Error('this consumer cannot read the group\'s committed offsets');
      const tps = keys.map((k) => {
        const i = k.lastIndexOf('\u0000');
        return { topic: k.slice(0, i), partition: Number(k.slice(i + 1)) };
      });
      const out = new Map<string, number>();
      for (const c of await consumer.committed(tps, 5_000)) {
        const o = c.offset === null || c.offset === undefined ? NaN : Number(c.offset);
        if (Number.isFinite(o) && o >= 0) out.set(`${c.topic}\u0000${c.partition}`, o);
      }
      return out;
    },
    // The flag survives a replacement: a new consumer's deliveries wait too while the sink is full.
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      openGate();
    },
    async stop() {
      if (!connected) return;
      connected = false;
      stopped = true;
      openGate(); // a delivery waiting for room returns undelivered: disconnect waits for it
      clearInterval(watchdog);
      await replacing;
      await consumer.disconnect();
    },
  };
}

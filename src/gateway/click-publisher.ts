// Writes encoded clicks to Kafka and resolves each one only when the broker acknowledged
// it with acks=all from an idempotent producer (no duplicates from producer retries,
// order kept per partition). Fails fast instead of queueing without bound: a circuit
// breaker opens after consecutive delivery failures, and in-flight clicks are capped.
//
// Self-healing: librdkafka's idempotent producer can wedge after a broker stall (every
// message times out although the broker is back: seen here after a 9 s SIGSTOP of the
// broker with thousands of clicks in flight, and reported upstream, e.g.
// confluent-kafka-dotnet#2519). When no delivery has succeeded for `stuckAfterMs` while
// deliveries keep failing, the producer is replaced by a fresh instance (new producer id).
// Safe for exactness: a click is only ever acknowledged on its own delivery report, the
// old instance's remaining clicks still get theirs (success or failure) before it is
// closed, and a failed click the broker did write is answered 503, retried, and removed
// again by the job's dedup on impression_id.
import KafkaJs from '@confluentinc/kafka-javascript';
import type { Logger } from '../shared/logger.ts';
import { AppError } from '../shared/errors.ts';
import { CircuitBreaker, type BreakerState } from './circuit-breaker.ts';

export interface OutRecord {
  key: string;
  value: Buffer;
  /** Kafka headers in the client's shape, one `{name: value}` per header (may be shared by records). */
  headers?: readonly Record<string, string>[];
  /** An explicit partition (progress ticks); default: the key's partition (murmur2, as Java clients). */
  partition?: number;
}

export interface ClickPublisher {
  /**
   * Produces the records and resolves once every one has its delivery report: `true` at
   * index i when record i was acknowledged (acks=all), `false` when it was not. One
   * promise per call, not per record: a 1000-click batch costs one allocation chain.
   * Throws AppError UNAVAILABLE synchronously when Kafka is not connected, the breaker is
   * open or the in-flight cap is reached — then nothing was produced.
   */
  publish(records: readonly OutRecord[]): Promise<boolean[]>;
  /** The topic's partition count as the broker reports it now (metadata request). */
  partitionCount(): Promise<number>;
  ready(): boolean;
  inflight(): number;
  breakerState(): BreakerState;
  close(): Promise<void>;
}

export interface PublisherOptions {
  brokers: string;
  topic: string;
  lingerMs: number;
  compression: string;
  produceTimeoutMs: number;
  maxInflight: number;
  breakerFailures: number;
  breakerOpenMs: number;
  clientId: string;
  logger: Logger;
  onBreakerChange?: (s: BreakerState) => void;
  /** Replace the producer after this long without a successful delivery while deliveries fail (default 15 s). */
  stuckAfterMs?: number;
  /** Called when a wedged producer was replaced (for a metric). */
  onReplace?: () => void;
  /** Tests only: builds the producer (default: librdkafka's). */
  createProducer?: (conf: Record<string, unknown>) => ProducerLike;
  /** Tests only: the clock. */
  now?: () => number;
}

/** The part of the librdkafka producer this module uses (a fake stands in for it in unit tests). */
export interface ProducerLike {
  on(event: 'delivery-report', fn: (err: { code: number; message: string } | null | undefined, report: { opaque?: unknown }) => void): unknown;
  on(event: 'event.error', fn: (err: unknown) => void): unknown;
  on(event: 'disconnected', fn: () => void): unknown;
  connect(opts: { timeout: number }, cb: (err: unknown) => void): unknown;
  setPollInBackground(on: boolean): unknown;
  produce(topic: string, partition: number | null, value: Buffer, key: string, timestamp: null, opaque: unknown, headers?: Record<string, string>[]): unknown;
  flush(timeoutMs: number, cb: (err?: unknown) => void): unknown;
  disconnect(cb: () => void): unknown;
  getMetadata?(opts: { topic: string; timeout: number }, cb: (err: unknown, md: { topics: { name: string; partitions: unknown[] }[] }) => void): unknown;
}

/** Delivery bookkeeping of one publish() call; each record's opaque is (call, index). */
class PendingCall {
  readonly acked: boolean[];
  private remaining: number;
  constructor(n: number, private readonly done: (acked: boolean[]) => void) {
    this.acked = new Array<boolean>(n).fill(false);
    this.remaining = n;
  }
  settle(i: number, ok: boolean): void {
    this.acked[i] = ok;
    if (--this.remaining === 0) this.done(this.acked);
  }
}

interface Opaque {
  call: PendingCall;
  index: number;
  /** The breaker generation the record was produced in (see `generation`). */
  gen: number;
}

/** One producer instance; a wedged one is retired and replaced by a fresh one. */
interface Instance {
  readonly id: number;
  readonly producer: ProducerLike;
  connected: boolean;
  inflight: number;
  retiring: boolean;
}

export async function createClickPublisher(o: PublisherOptions): Promise<ClickPublisher> {
  const log = o.logger.child({ module: 'click-publisher' });
  const now = o.now ?? Date.now;
  const stuckAfterMs = o.stuckAfterMs ?? 15_000;
  const conf: Record<string, unknown> = {
    'bootstrap.servers': o.brokers,
    'client.id': o.clientId,
    'enable.idempotence': true,
    acks: -1,
    'linger.ms': o.lingerMs,
    'compression.codec': o.compression,
    'batch.num.messages': 10000,
    'message.timeout.ms': o.produceTimeoutMs,
    'request.timeout.ms': Math.min(o.produceTimeoutMs, 30000),
    'queue.buffering.max.messages': Math.max(o.maxInflight * 2, 100000),
    // Same partition for the same key as Java clients (Flink, Kafka tools) would pick.
    partitioner: 'murmur2_random',
    'socket.keepalive.enable': true,
    // TCP_NODELAY, as the Java client: with Nagle on, a small produce request waits for
    // the ACK of the one before it (bench/diag-producer.ts, alternating rounds, C=50:
    // +17% and +46% acks/s, lower p50 and p99 with it off).
    'socket.nagle.disable': true,
    dr_cb: true,
  };
  const makeProducer = o.createProducer ?? ((c) => new KafkaJs.Producer(c as ConstructorParameters<typeof KafkaJs.Producer>[0]) as unknown as ProducerLike);
  let inflight = 0; // over every instance
  let closing = false;
  // The last delivery failure, so the breaker's state changes say why it opened.
  let lastDeliveryError: { code: number; message: string } | null = null;
  let lastSuccessAt = now();
  let failuresSinceSuccess = 0;
  let lastReplacedAt = now();
  let instances = 0;
  // Bumped whenever the breaker opens. A record's failure counts against the breaker only
  // when it was produced in the current generation: clicks produced before the breaker
  // opened keep timing out for up to message.timeout.ms, and must not re-open it while
  // the half-open trial (produced after) is deciding whether Kafka is back.
  let generation = 0;
  const breaker = new CircuitBreaker(o.breakerFailures, o.breakerOpenMs, now, (s) => {
    if (s === 'open') generation++;
    log.warn({ state: s, lastDeliveryError: s === 'closed' ? undefined : lastDeliveryError ?? undefined }, 'kafka circuit breaker changed state');
    o.onBreakerChange?.(s);
  });

  const connectLoop = async (inst: Instance) => {
    while (!inst.connected && !closing && !inst.retiring) {
      try {
        await new Promise<void>((resolve, reject) => {
          inst.producer.connect({ timeout: 10000 }, (err) => (err ? reject(err) : resolve()));
        });
        inst.producer.setPollInBackground(true);
        inst.connected = true;
        log.info({ brokers: o.brokers, producer: inst.id }, 'kafka producer connected');
      } catch (err) {
        log.warn({ err: String(err), producer: inst.id }, 'kafka producer could not connect; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };

  /** The instances not yet shut down: the current one and any retiring one. */
  const live = new Set<Instance>();
  const shutDown = async (inst: Instance) => {
    if (!live.delete(inst) || !inst.connected) return;
    await new Promise<void>((resolve) => inst.producer.flush(Math.max(o.produceTimeoutMs, 5000), () => resolve()));
    await new Promise<void>((resolve) => inst.producer.disconnect(() => resolve()));
  };

  const start = (): Instance => {
    const id = ++instances;
    // Replacements get their own client.id, so broker logs and quotas tell them apart.
    const inst: Instance = { id, producer: makeProducer({ ...conf, 'client.id': id === 1 ? o.clientId : `${o.clientId}-r${id - 1}` }), connected: false, inflight: 0, retiring: false };
    live.add(inst);
    inst.producer.on('delivery-report', (err, report) => {
      const { call, index, gen } = report.opaque as Opaque;
      inflight--;
      inst.inflight--;
      if (err) {
        lastDeliveryError = { code: err.code, message: err.message };
        failuresSinceSuccess++;
        if (gen === generation) breaker.failure();
        if (inst === current) maybeReplace();
      } else {
        lastSuccessAt = now();
        failuresSinceSuccess = 0;
        breaker.success();
      }
      call.settle(index, !err);
      if (inst.retiring && inst.inflight === 0) void shutDown(inst);
    });
    inst.producer.on('event.error', (err) => log.warn({ err, producer: inst.id }, 'kafka producer error'));
    inst.producer.on('disconnected', () => {
      inst.connected = false;
    });
    // Start serving at once; connect (and reconnect) in the background so /readyz and the
    // 503 answers reflect reality while the broker is not there yet.
    connecting = connectLoop(inst);
    return inst;
  };

  /** A wedged producer: connected, deliveries failing, none succeeding for stuckAfterMs. */
  const maybeReplace = () => {
    const t = now();
    if (closing || !current.connected || failuresSinceSuccess === 0) return;
    if (t - lastSuccessAt < stuckAfterMs || t - lastReplacedAt < stuckAfterMs) return;
    const old = current;
    old.retiring = true;
    lastReplacedAt = t;
    log.warn({ producer: old.id, sinceLastSuccessMs: t - lastSuccessAt, failuresSinceSuccess, lastDeliveryError, inflight: old.inflight }, 'kafka producer delivers nothing although connected: replacing it with a fresh instance');
    o.onReplace?.();
    current = start();
    if (old.inflight === 0) void shutDown(old);
    else {
      // Every queued message gets its delivery report within message.timeout.ms; close
      // the old instance then at the latest.
      setTimeout(() => void shutDown(old), o.produceTimeoutMs + 5000).unref();
    }
  };

  let connecting: Promise<void> = Promise.resolve();
  let current = start();

  return {
    publish(records) {
      const inst = current;
      if (!inst.connected) throw new AppError('UNAVAILABLE', 'Kafka is not connected');
      if (inflight + records.length > o.maxInflight) throw new AppError('UNAVAILABLE', 'too many clicks awaiting Kafka acknowledgement');
      if (!breaker.allow()) throw new AppError('UNAVAILABLE', 'Kafka circuit breaker is open');
      return new Promise<boolean[]>((resolve) => {
        const call = new PendingCall(records.length, resolve);
        const gen = generation;
        records.forEach((r, index) => {
          try {
            inst.producer.produce(o.topic, r.partition ?? null, r.value, r.key, null, { call, index, gen } satisfies Opaque, r.headers as Record<string, string>[] | undefined);
            inflight++;
            inst.inflight++;
          } catch (err) {
            breaker.failure();
            log.warn({ err: String(err) }, 'Kafka producer queue refused a click');
            call.settle(index, false);
          }
        });
      });
    },
    partitionCount() {
      const inst = current;
      const get = inst.producer.getMetadata;
      if (!inst.connected || !get) return Promise.reject(new AppError('UNAVAILABLE', 'Kafka is not connected'));
      return new Promise<number>((resolve, reject) => {
        get.call(inst.producer, { topic: o.topic, timeout: 5000 }, (err, md) => {
          const n = md?.topics.find((t) => t.name === o.topic)?.partitions.length ?? 0;
          if (err || n === 0) reject(new Error(`no metadata for topic ${o.topic}: ${String(err ?? 'no partitions')}`));
          else resolve(n);
        });
      });
    },
    ready: () => current.connected && breaker.state !== 'open',
    inflight: () => inflight,
    breakerState: () => breaker.state,
    async close() {
      closing = true;
      await connecting;
      await Promise.all([...live].map((inst) => shutDown(inst)));
    },
  };
}

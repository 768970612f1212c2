// Progress ticks: every `intervalMs`, one PartitionTick record to EVERY partition of the
// clicks topic, through the same idempotent producer as the clicks. Kafka keeps one
// producer's order per partition, so a tick stamped T follows every click this worker
// handed to the producer before T. The Flink job advances a partition's watermark by its
// ticks as by a click with event time T and never counts them.
//
// Why: the job used to call a partition idle after 10 s without a record and let its
// watermark jump to the clock. A partition that is merely behind (back-pressure, a slow
// fetch, a job that was stopped) also goes 10 s without a record, and its backlog then
// became late corrections (issue #15, defect 2). With ticks, a partition's watermark
// moves only with what was read from it: quiet partitions keep moving while a gateway
// is up, a partition with a backlog waits until its records are read.
import type { Logger } from 'pino';
import { PartitionTick } from '../shared/proto.ts';
import type { ClickPublisher, OutRecord } from './click-publisher.ts';

/** Kafka header that marks a tick (clicks carry no such header). */
export const RECORD_KIND_HEADER = 'adclick-record';
export const TICK_KIND = 'tick';
const TICK_HEADERS: readonly Record<string, string>[] = [{ [RECORD_KIND_HEADER]: TICK_KIND }];

export interface PartitionTicker {
  /** Ticks produced and acknowledged so far (all partitions). */
  readonly acked: () => number;
  /** One round now (tests); resolves when every tick of the round has its delivery report. */
  tickOnce(): Promise<boolean>;
  stop(): void;
}

export interface TickerOptions {
  publisher: Pick<ClickPublisher, 'publish' | 'partitionCount' | 'ready'>;
  gatewayId: string;
  intervalMs: number;
  /** How often the partition count is re-read from the broker (partitions can be added). */
  metadataRefreshMs?: number;
  logger: Logger;
  now?: () => number;
}

export function tickRecords(partitions: number, atMs: number, gatewayId: string): OutRecord[] {
  const value = Buffer.from(PartitionTick.encode({ atMs, gatewayId }).finish());
  return Array.from({ length: partitions }, (_, partition) => ({ key: TICK_KIND, value, headers: TICK_HEADERS, partition }));
}

export function startPartitionTicker(o: TickerOptions): PartitionTicker {
  const log = o.logger.child({ module: 'partition-ticks' });
  const now = o.now ?? Date.now;
  const refreshMs = o.metadataRefreshMs ?? 30_000;
  let partitions = 0;
  let readAt = -Infinity;
  let acked = 0;
  let running = false;
  let failing = false;

  const tickOnce = async (): Promise<boolean> => {
    if (running || !o.publisher.ready()) return false;
    running = true;
    try {
      if (partitions === 0 || now() - readAt >= refreshMs) {
        const n = await o.publisher.partitionCount();
        if (n !== partitions && partitions !== 0) log.info({ from: partitions, to: n }, 'clicks topic partition count changed');
        partitions = n;
        readAt = now();
      }
      // Stamped after the metadata round trip, right before produce: every click this
      // worker produced before this point is ahead of the tick in its partition.
      const results = await o.publisher.publish(tickRecords(partitions, now(), o.gatewayId));
      const ok = results.filter(Boolean).length;
      acked += ok;
      if (ok === results.length && failing) log.info('partition ticks delivered again');
      failing = ok !== results.length;
      return !failing;
    } catch (err) {
      // Kafka unavailable: no tick, the partitions' watermarks wait (as they must).
      if (!failing) log.warn({ err: String(err) }, 'partition ticks not produced; retrying every interval');
      failing = true;
      return false;
    } finally {
      running = false;
    }
  };

  const timer = o.intervalMs > 0 ? setInterval(() => void tickOnce(), o.intervalMs) : undefined;
  timer?.unref();
  return {
    acked: () => acked,
    tickOnce,
    stop: () => {
      if (timer) clearInterval(timer);
    },
  };
}

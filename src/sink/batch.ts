// One sink batch: Kafka records → rows per table, plus the offsets to commit once the
// rows are stored. Pure: the same records always give the same rows, so writing a batch
// again (after a crash before the commit) collapses in the ReplacingMergeTree tables.
import { ClickEvent, DeadLetter, LateClick, WatermarkProgress, WindowAggregate, WindowAudit } from '../shared/proto.ts';
import { auditRow, type WindowAuditRow } from '../store/audit.ts';
import { DB } from '../store/migrations.ts';
import { rawClickRow, type RawClickRow } from '../store/raw-clicks.ts';
import {
  aggregateRow, deadLetterRow, isNewerAggregate, lateClickRow, RecordError, sinkDeadLetterRow, watermarkRow,
  type AdOwnerRow, type AggregateRow, type DeadLetterRow, type LateClickRow, type WatermarkRow,
} from '../store/rows.ts';
import type { Store } from '../store/store.ts';
import { insertIsolating, type RefusedRow } from './quarantine.ts';
import { yieldToLoop } from '../shared/yield-to-loop.ts';

export const SINK_TOPICS = {
  aggregates: 'click-aggregates',
  watermarks: 'click-watermarks',
  late: 'clicks-late',
  dlq: 'clicks-dlq',
  deduped: 'clicks-deduped',
  audit: 'click-audit',
} as const;

export type SinkTopics = { readonly [K in keyof typeof SINK_TOPICS]: string };

export interface SinkMessage {
  readonly topic: string;
  readonly partition: number;
  /** Kafka offset as a decimal string (as KafkaJS gives it). */
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** W3C trace id from the record's `traceparent` header (trace-context.ts); for log lines only. */
  readonly traceId?: string;
}

export interface TopicPartitionOffset { topic: string; partition: number; offset: string }

export interface SinkBatch {
  readonly aggregates: AggregateRow[];
  readonly owners: AdOwnerRow[];
  readonly watermarks: WatermarkRow[];
  readonly late: LateClickRow[];
  /** Every click that passed the Flink dedup (raw_clicks). */
  readonly raw: RawClickRow[];
  readonly deadLetters: DeadLetterRow[];
  /** Trace ids of the records that became dead letters (either stage), for log lines. */
  readonly deadLetterTraceIds: string[];
  /** Per-window audit counts from the job (conservation). */
  readonly audit: WindowAuditRow[];
  /** Next offset (last + 1) per partition, to commit after the write. */
  readonly commits: TopicPartitionOffset[];
  readonly records: number;
  /** The record each row was built from (the newest one for a collapsed row): what a quarantined row's dead letter names. */
  readonly sources: ReadonlyMap<object, SinkMessage>;
}

type Decoder<T> = { decode(b: Uint8Array): T };

function decode<T>(d: Decoder<T>, m: SinkMessage): T {
  try {
    return d.decode(m.value ?? new Uint8Array(0));
  } catch (err) {
    throw new RecordError('PROTOBUF_DECODE_FAILED', (err as Error).message);
  }
}

export function buildBatch(messages: readonly SinkMessage[], topics: SinkTopics = SINK_TOPICS, nowMs = Date.now()): SinkBatch {
  const steps = batchSteps(messages, topics, nowMs, Infinity);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Records decoded between two turns of the event loop by buildBatchYielding. */
export const BUILD_SLICE = 2000;

/**
 * buildBatch for the sink's own batches (up to ADCLICK_SINK_MAX_ROWS records): the same
 * rows, decoded `slice` records at a time with a turn of the event loop between slices, so
 * a 50,000-record batch (hundreds of ms of decoding, seconds on a starved CPU) never holds
 * the loop that answers /healthz and /metrics (issue 17).
 */
export async function buildBatchYielding(messages: readonly SinkMessage[], topics: SinkTopics = SINK_TOPICS, nowMs = Date.now(), slice = BUILD_SLICE): Promise<SinkBatch> {
  const steps = batchSteps(messages, topics, nowMs, slice);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await yieldToLoop();
  }
}

/** The batch, built record by record; pauses (yields) after every `slice` records. */
/** Where a record sits, for its dead letter (built only when one is written). */
const recordAt = (m: SinkMessage, offset: bigint) => ({ topic: m.topic, partition: m.partition, offset: Number(offset) });

function* batchSteps(messages: readonly SinkMessage[], topics: SinkTopics, nowMs: number, slice: number): Generator<void, SinkBatch> {
  const aggregates = new Map<string, AggregateRow>();
  // Keyed by the whole (ad, campaign, advertiser): an ad seen under two owners in one batch
  // (moved between campaigns, or a click claiming another advertiser) keeps both rows.
  const owners = new Map<string, AdOwnerRow>();
  const watermarks = new Map<number, WatermarkRow>();
  const late = new Map<string, LateClickRow>();
  const raw = new Map<string, RawClickRow>();
  const deadLetters: DeadLetterRow[] = [];
  const deadLetterTraceIds: string[] = [];
  const audit = new Map<string, WindowAuditRow>();
  // Next offset per partition: bigint while building (Kafka offsets are int64; numbers lose
  // them above 2^53), strings in the result. Records come in runs of one partition: the
  // entry is looked up only when the partition changes.
  const next = new Map<string, { topic: string; partition: number; offset: bigint }>();
  let current: { topic: string; partition: number; offset: bigint } | undefined;
  const sources = new Map<object, SinkMessage>();
  const setOwner = (m: SinkMessage, r: AdOwnerRow) => {
    const k = `${r.ad_id}|${r.campaign_id}|${r.advertiser_id}`;
    const cur = owners.get(k);
    if (cur) sources.delete(cur);
    owners.set(k, r);
    sources.set(r, m);
  };
  const keep = <R extends object>(rows: Map<string | number, R>, key: string | number, row: R, m: SinkMessage) => {
    const cur = rows.get(key);
    if (cur) sources.delete(cur);
    rows.set(key, row);
    sources.set(row, m);
  };

  let sinceYield = 0;
  for (const m of messages) {
    if (++sinceYield > slice) {
      sinceYield = 1;
      yield;
    }
    const offset = BigInt(m.offset);
    if (!current || current.partition !== m.partition || current.topic !== m.topic) {
      const k = `${m.topic}\u0000${m.partition}`;
      current = next.get(k);
      if (!current) next.set(k, (current = { topic: m.topic, partition: m.partition, offset: offset + 1n }));
    }
    if (current.offset <= offset) current.offset = offset + 1n;
    try {
      switch (m.topic) {
        case topics.aggregates: {
          const row = aggregateRow(decode(WindowAggregate, m));
          const key = `${row.granularity}|${row.advertiser_id}|${row.campaign_id}|${row.ad_id}|${row.window_start}`;
          const cur = aggregates.get(key);
          if (!cur || isNewerAggregate(row, cur)) keep(aggregates, key, row, m);
          setOwner(m, { ad_id: row.ad_id, campaign_id: row.campaign_id, advertiser_id: row.advertiser_id });
          break;
        }
        case topics.watermarks: {
          const row = watermarkRow(decode(WatermarkProgress, m));
          const cur = watermarks.get(row.subtask);
          if (!cur || cur.emitted_at_ms <= row.emitted_at_ms) keep(watermarks, row.subtask, row, m);
          break;
        }
        case topics.late: {
          // One row per (granularity, click): the same click late for 1m and 5m is two corrections.
          const row = lateClickRow(decode(LateClick, m));
          keep(late, `${row.granularity}\u0000${row.impression_id}\u0000${row.event_type}`, row, m);
          setOwner(m, { ad_id: row.ad_id, campaign_id: row.campaign_id, advertiser_id: row.advertiser_id });
          break;
        }
        case topics.deduped: {
          const row = rawClickRow(decode(ClickEvent, m));
          keep(raw, `${row.impression_id}\u0000${row.event_type}`, row, m);
          setOwner(m, { ad_id: row.ad_id, campaign_id: row.campaign_id, advertiser_id: row.advertiser_id });
          break;
        }
        case topics.audit: {
          let row: WindowAuditRow;
          try {
            row = auditRow(decode(WindowAudit, m));
          } catch (err) {
            if (err instanceof RecordError) throw err;
            throw new RecordError('INVALID_FIELD', (err as Error).message);
          }
          const key = `${row.window_start}|${row.bucket}`;
          const cur = audit.get(key);
          if (!cur || cur.version < row.version) keep(audit, key, row, m);
          break;
        }
        case topics.dlq:
          deadLetters.push(deadLetterRow(decode(DeadLetter, m), recordAt(m, offset)));
          sources.set(deadLetters.at(-1)!, m);
          if (m.traceId) deadLetterTraceIds.push(m.traceId);
          break;
        default:
          throw new RecordError('UNKNOWN_TOPIC', `no handler for topic ${m.topic}`);
      }
    } catch (err) {
      const reason = err instanceof RecordError ? err.reason : 'SINK_RECORD_FAILED';
      deadLetters.push(sinkDeadLetterRow(recordAt(m, offset), m.key, m.value, reason, (err as Error).message, nowMs));
      sources.set(deadLetters.at(-1)!, m);
      if (m.traceId) deadLetterTraceIds.push(m.traceId);
    }
  }
  return {
    aggregates: [...aggregates.values()],
    owners: [...owners.values()],
    watermarks: [...watermarks.values()],
    late: [...late.values()],
    raw: [...raw.values()],
    deadLetters,
    deadLetterTraceIds,
    audit: [...audit.values()],
    commits: [...next.values()].map((c) => ({ topic: c.topic, partition: c.partition, offset: String(c.offset) })),
    records: messages.length,
    sources,
  };
}

export const SINK_TABLES = ['dead_letters', 'late_clicks', 'raw_clicks', 'ad_owners', 'click_aggregates', 'window_audit', 'pipeline_watermarks'] as const;
export type SinkTable = (typeof SINK_TABLES)[number];

/** What a flush has done so far: a retry after a transient failure resumes after it. */
export interface WriteProgress {
  /** Tables whose rows are all stored or quarantined. */
  readonly done: Set<SinkTable>;
  /** Rows ClickHouse refused for good (to quarantine; quarantine.ts). */
  readonly refused: RefusedRow[];
}

/**
 * One insert per table. Order matters for readers, not for correctness: owners before
 * aggregates (a visible count always has an owner), watermarks last (complete_before
 * never runs ahead of the counts it vouches for), late corrections before raw clicks (so
 * within a batch a late click is never in raw_clicks without its correction; see
 * batch-path.ts on why a backfill cares).
 *
 * With `progress`, rows ClickHouse refuses for good are isolated and collected in it
 * instead of failing the batch; dead_letters is never bisected (a refused dead letter has
 * nowhere else to go: the batch is retried until it is stored).
 */
export async function writeBatch(store: Store, b: SinkBatch, onTable?: (table: SinkTable, rows: number) => void, progress?: WriteProgress): Promise<void> {
  const plan: [SinkTable, readonly Record<string, unknown>[]][] = [
    ['dead_letters', b.deadLetters as unknown as Record<string, unknown>[]],
    ['late_clicks', b.late as unknown as Record<string, unknown>[]],
    ['raw_clicks', b.raw as unknown as Record<string, unknown>[]],
    ['ad_owners', b.owners as unknown as Record<string, unknown>[]],
    ['click_aggregates', b.aggregates as unknown as Record<string, unknown>[]],
    ['window_audit', b.audit as unknown as Record<string, unknown>[]],
    ['pipeline_watermarks', b.watermarks as unknown as Record<string, unknown>[]],
  ];
  for (const [table, rows] of plan) {
    if (rows.length === 0 || progress?.done.has(table)) continue;
    if (progress && table !== 'dead_letters') {
      const refused = await insertIsolating(store, `${DB}.${table}`, rows, (n) => onTable?.(table, n));
      for (const r of refused) progress.refused.push({ ...r, table });
    } else {
      await store.insert(`${DB}.${table}`, rows);
      onTable?.(table, rows.length);
    }
    progress?.done.add(table);
  }
}

// Kafka → ClickHouse sink. Records (read_committed, auto-commit off) accumulate into large
// batches (maxRows or maxWaitMs, whichever first); each batch is written with one insert
// per table, and only after ClickHouse acknowledged are the batch's offsets (last + 1)
// committed. A failed write is retried with back-off, consumption paused, nothing
// committed; except rows ClickHouse refuses for good (bad values, not a bad engine): those
// are quarantined in dead_letters and the rest of the batch goes on (quarantine.ts). Rows have deterministic identity, so a batch written twice (crash between
// insert and commit) collapses instead of adding.
//
// Several instances may share one consumer group (issue 18): partitions are split between
// them and move at rebalances. Nothing is lost because every member commits an offset only
// after the rows below it are stored, and a new owner starts at the committed offset;
// nothing is double-counted because rows are idempotent upserts (ReplacingMergeTree keyed
// by the row's identity; an aggregate's version grows with its count, so an older emission
// written again, e.g. by the previous owner's last batch, never replaces a newer one). A
// member commits only the partitions it holds when the commit is made: a revoked
// partition's in-flight batch is stored but not committed, so it cannot move the group's
// offset back under the new owner (the broker accepts any member's commit for any
// partition; measured). The watermark's fence across members: watermark-fence.ts.
import { existsSync, rmSync } from 'node:fs';
import { Registry } from 'prom-client';
import type { Logger } from '../shared/logger.ts';
import type { Store } from '../store/store.ts';
import { buildBatchYielding, SINK_TABLES, SINK_TOPICS, writeBatch, type SinkMessage, type SinkTopics, type TopicPartitionOffset, type WriteProgress } from './batch.ts';
import { insertIsolating, quarantineDeadLetters, STORE_REFUSED, type RefusedRow } from './quarantine.ts';
import { createSinkMetrics, type SinkMetrics } from './metrics.ts';
import { traceSummary } from './trace-context.ts';
import { partitionKey, WatermarkFence, type PartitionEnds } from './watermark-fence.ts';
import { DB } from '../store/migrations.ts';
import type { DeadLetterRow, WatermarkRow } from '../store/rows.ts';
import { advanceCompleteBefore } from '../store/reads.ts';

/** The part of a Kafka consumer the sink needs; see kafka-consumer.ts for the real one. */
export interface SinkConsumer {
  /** Subscribe and start delivering records, in partition order, to `deliver`. */
  start(deliver: (messages: SinkMessage[], lag?: { topic: string; partition: number; lag: number }) => void): Promise<void>;
  commit(offsets: TopicPartitionOffset[]): Promise<void>;
  /**
   * The consumer's position per `topic\u0000partition` (the next offset it hands to the
   * application, past commit/abort markers and aborted records) and when it was sampled.
   */
  positions?(): ReadonlyMap<string, { offset: number; at: number }>;
  /** The partitions (`topic\u0000partition`) this member holds now; undefined: not known (then all count as held). */
  assigned?(): ReadonlySet<string> | undefined;
  /**
   * The group's committed offsets for these partitions, whichever member committed them
   * (Kafka OffsetFetch); partitions never committed are left out. Throws when unreadable.
   */
  groupCommitted?(keys: readonly string[]): Promise<ReadonlyMap<string, number>>;
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

export interface AggregateSinkOptions {
  readonly store: Store;
  readonly consumer: SinkConsumer;
  readonly logger: Logger;
  readonly registry?: Registry;
  /** Most Kafka records per batch (default 50,000). */
  readonly maxRows?: number;
  /** Longest a record waits in the buffer before its batch is written (default 200 ms). */
  readonly maxWaitMs?: number;
  /** Retry back-off after a failed write: initial and ceiling (default 100 ms → 10 s). */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /** On stop, how long to keep retrying the last batch before giving up uncommitted (default 10 s). */
  readonly stopTimeoutMs?: number;
  readonly topics?: SinkTopics;
  readonly now?: () => number;
  /**
   * Fault injection (chaos tests only; ADCLICK_FAULT_SINK_CRASH_FILE): when this file
   * exists, it is deleted and the process SIGKILLs itself between the two steps of the
   * next batch (normally: after the ClickHouse insert, before the offset commit).
   */
  readonly faultCrashFile?: string;
  /** UNSAFE (negative control only; ADCLICK_FAULT_UNSAFE_SINK_COMMIT_FIRST): commit offsets before writing. */
  readonly unsafeCommitFirst?: boolean;
  /**
   * Ends of every partition of the topics a watermark vouches for (aggregates, late
   * corrections, raw clicks); with it, watermark rows are held until the sink has stored
   * those partitions up to where they ended when the watermark was read
   * (watermark-fence.ts). Without it (unit tests), watermarks are stored as read.
   */
  readonly fenceEnds?: () => Promise<PartitionEnds>;
  /** Least time between two attempts to release held watermarks (default 250 ms). */
  readonly fenceCheckMs?: number;
  /**
   * How long after the consumer's position passed a fence every record below it has
   * surely been delivered to the sink, if the consumer was not paused (default 1 s).
   */
  readonly fenceSettleMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class AggregateSink {
  readonly metrics: SinkMetrics;
  private readonly log: Logger;
  private readonly maxRows: number;
  private readonly maxWaitMs: number;
  private buffer: SinkMessage[] = [];
  private firstAt = 0;
  private wake: (() => void) | null = null;
  private loopDone: Promise<void> | null = null;
  private running = false;
  private stopping = false;
  private stopDeadline = Infinity;
  private paused = false;
  private failing = false;
  private batches = 0;
  private lastSuccessAt = 0;
  private readonly fence: WatermarkFence | null;
  /** Released by the fence but not yet written (a failed insert): written first next time. */
  private releasedUnwritten: WatermarkRow[] = [];
  private lastFenceCheck = 0;
  /** Next offset per `topic\u0000partition` whose records are all stored (written, committed or not). */
  private readonly stored = new Map<string, number>();
  /** Next offset per partition after the records delivered so far (stored or still buffered). */
  private readonly delivered = new Map<string, number>();
  /** When consumption last resumed (a paused consumer delivers nothing). */
  private resumedAt = 0;

  constructor(private readonly opts: AggregateSinkOptions) {
    this.log = opts.logger.child({ module: 'sink' });
    this.metrics = createSinkMetrics(opts.registry ?? new Registry());
    this.maxRows = Math.max(1, opts.maxRows ?? 50_000);
    this.maxWaitMs = Math.max(1, opts.maxWaitMs ?? 200);
    this.fence = opts.fenceEnds ? new WatermarkFence(opts.fenceEnds) : null;
    // Zero samples from the start: an alert on increase() and `adclick status` see the first quarantine.
    for (const table of SINK_TABLES) if (table !== 'dead_letters') this.metrics.quarantined.inc({ table }, 0);
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
    await this.opts.consumer.start((msgs, lag) => this.deliver(msgs, lag));
    this.log.info({ maxRows: this.maxRows, maxWaitMs: this.maxWaitMs, topics: this.opts.topics ?? SINK_TOPICS }, 'sink started');
  }

  /** True while writes succeed (for /readyz). */
  healthy(): boolean {
    return this.running && !this.failing;
  }

  status() {
    return { running: this.running, buffered: this.buffer.length, paused: this.paused, failing: this.failing, batches: this.batches, lastSuccessAt: this.lastSuccessAt,
      heldWatermarks: this.fence?.pending ?? 0 };
  }

  private deliver(msgs: SinkMessage[], lag?: { topic: string; partition: number; lag: number }): void {
    // After stop began nothing new is taken: uncommitted records are re-delivered later.
    if (this.stopping || msgs.length === 0) return;
    if (this.buffer.length === 0) this.firstAt = this.now();
    for (const m of msgs) this.buffer.push(m);
    // The fence's "everything delivered is stored": one update per partition of the call
    // (the consumer delivers one partition's records in order per call), not per record.
    if (this.fence) {
      let last: SinkMessage | undefined;
      for (const m of msgs) {
        if (last && (m.topic !== last.topic || m.partition !== last.partition)) this.noteDelivered(last);
        last = m;
      }
      if (last) this.noteDelivered(last);
    }
    if (lag) this.metrics.consumerLag.set({ topic: lag.topic, partition: String(lag.partition) }, lag.lag);
    if (this.buffer.length >= this.maxRows) {
      // Backpressure: at most ~2 batches in memory.
      if (this.buffer.length >= 2 * this.maxRows) this.setPaused(true);
      this.kick();
    }
  }

  private noteDelivered(m: SinkMessage): void {
    const key = partitionKey(m.topic, m.partition);
    const next = Number(m.offset) + 1;
    if ((this.delivered.get(key) ?? -1) < next) this.delivered.set(key, next);
  }

  private setPaused(p: boolean): void {
    if (this.paused === p) return;
    this.paused = p;
    this.metrics.paused.set(p ? 1 : 0);
    try {
      if (p) this.opts.consumer.pause();
      else {
        this.opts.consumer.resume();
        this.resumedAt = this.now();
      }
    } catch (err) {
      this.log.warn({ err, paused: p }, 'pause/resume failed');
    }
  }

  private kick(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private waitFor(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = null; resolve(); }, Math.max(1, ms));
      this.wake = () => { clearTimeout(t); resolve(); };
    });
  }

  private async loop(): Promise<void> {
    for (;;) {
      if (this.buffer.length === 0) {
        if (this.stopping) return;
        await this.commitSettledPositions();
        this.scheduleRelease();
        await this.waitFor(this.maxWaitMs);
        continue;
      }
      const age = this.now() - this.firstAt;
      if (!this.stopping && this.buffer.length < this.maxRows && age < this.maxWaitMs) {
        await this.waitFor(this.maxWaitMs - age);
        continue;
      }
      const take = this.buffer.splice(0, this.maxRows);
      if (this.buffer.length) this.firstAt = this.now();
      const ok = await this.flush(take);
      if (!ok) return; // stop deadline passed: leave uncommitted
      await this.commitSettledPositions();
      if (this.buffer.length < this.maxRows) this.setPaused(false);
    }
  }

  /** Write one batch until ClickHouse acknowledges, then commit. False if abandoned at stop. */
  private async flush(messages: SinkMessage[]): Promise<boolean> {
    const started = process.hrtime.bigint();
    // Decoded a slice at a time: the admin port and the query API answer meanwhile (issue 17).
    const built = await buildBatchYielding(messages, this.opts.topics ?? SINK_TOPICS, this.now());
    // With a fence, watermark rows wait in memory for the rows they vouch for (their
    // records' offsets are committed with the batch: after a crash the job's next
    // emission, every second or so, stands in for them).
    const batch = this.fence ? { ...built, watermarks: [] } : built;
    const sinkDead = batch.deadLetters.filter((d) => d.stage === 'sink').length;
    // Trace ids of the batch's records (bounded: first 5 + how many were traced) for every log line about it.
    // Read only for a log line (a failed or abandoned write): parsing every record's header costs.
    const traces = () => traceSummary(messages.map((m) => m.traceId));
    if (this.opts.unsafeCommitFirst) {
      await this.commit(batch.commits);
      this.crashIfAsked('after the offset commit, before the ClickHouse insert (UNSAFE order)');
    }
    let delay = this.opts.retryInitialMs ?? 100;
    // Rows ClickHouse refuses for good are isolated and quarantined (quarantine.ts); the
    // progress keeps a retry after a transient failure from redoing tables already done.
    const progress: WriteProgress = { done: new Set(), refused: [] };
    let quarantined: DeadLetterRow[] | null = null;
    for (let attempt = 1; ; attempt++) {
      try {
        await writeBatch(this.opts.store, batch, (table, rows) => this.metrics.rowsTotal.inc({ table }, rows), progress);
        if (progress.refused.length && !quarantined) {
          const rows = quarantineDeadLetters(progress.refused, batch.sources, this.now());
          // Never lost: until dead_letters takes them, the batch is retried and nothing committed.
          await this.opts.store.insert(`${DB}.dead_letters`, rows as unknown as Record<string, unknown>[]);
          this.metrics.rowsTotal.inc({ table: 'dead_letters' }, rows.length);
          quarantined = rows;
        }
        break;
      } catch (err) {
        this.metrics.writeFailures.inc();
        this.failing = true;
        this.setPaused(true);
        if (this.stopping && this.now() >= this.stopDeadline) {
          this.log.error({ err, records: batch.records, ...traces() }, 'giving up on the last batch at shutdown; offsets not committed, it will be re-delivered');
          return false;
        }
        this.log.warn({ err, attempt, retryInMs: delay, records: batch.records, ...traces() }, 'ClickHouse write failed; retrying the same batch, offsets not committed');
        await sleep(delay);
        delay = Math.min(delay * 2, this.opts.retryMaxMs ?? 10_000);
      }
    }
    if (this.failing) this.log.info('ClickHouse writes recovered');
    this.failing = false;
    for (const c of batch.commits) this.stored.set(partitionKey(c.topic, c.partition), Number(c.offset));
    if (sinkDead) this.metrics.deadLetters.inc(sinkDead);
    if (quarantined) this.reportQuarantine(progress.refused, quarantined);
    if (batch.deadLetters.length) {
      // Rejected records: the sink's own (undecodable/invalid) and the job's (clicks-dlq), with their traces.
      const dl = traceSummary(batch.deadLetterTraceIds);
      this.log.warn({ deadLetters: sinkDead, jobDeadLetters: batch.deadLetters.length - sinkDead, trace_ids: dl.trace_ids, traced: dl.traced }, 'records written to dead_letters');
    }
    if (!this.opts.unsafeCommitFirst) {
      this.crashIfAsked('after the ClickHouse insert, before the offset commit');
      await this.commit(batch.commits);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.metrics.batchRows.observe(batch.records);
    this.metrics.batchSeconds.observe(seconds);
    this.batches++;
    this.lastSuccessAt = this.now();
    this.countRecords(messages);
    if (this.fence) {
      for (const w of built.watermarks) {
        const m = built.sources.get(w);
        if (m) this.watermarkSources.set(w, m);
      }
      this.fence.hold(built.watermarks);
      this.scheduleRelease();
    }
    if (this.log.isLevelEnabled?.('debug') !== false) {
      this.log.debug({ records: batch.records, aggregates: batch.aggregates.length, late: batch.late.length, watermarks: batch.watermarks.length, seconds, ...traces() }, 'batch stored and committed');
    }
    return true;
  }

  private reportQuarantine(refused: readonly RefusedRow[], deadLetters: readonly DeadLetterRow[]): void {
    const byTable = new Map<string, number>();
    for (const r of refused) byTable.set(r.table, (byTable.get(r.table) ?? 0) + 1);
    for (const [table, n] of byTable) this.metrics.quarantined.inc({ table }, n);
    this.metrics.deadLetters.inc(deadLetters.length);
    this.log.error({
      quarantined: Object.fromEntries(byTable), reason: STORE_REFUSED,
      records: deadLetters.slice(0, 10).map((d) => `${d.source_topic}/${d.partition}@${d.offset}`), detail: deadLetters[0]?.detail,
    }, 'ClickHouse refused rows for good: their records are quarantined in dead_letters (stage sink, reason STORE_REFUSED), the rest of the batch is stored and committed; the windows they belong to may be incomplete until replayed');
  }

  /**
   * Store the held watermark rows whose fence the stored offsets have passed. Failures
   * (Kafka ends unreadable, ClickHouse down) only delay them: complete_before then lags,
   * it never runs ahead.
   */
  private scheduleRelease(): void {
    if (!this.fence || this.releasing || (this.fence.pending === 0 && this.releasedUnwritten.length === 0)) return;
    if (this.now() - this.lastFenceCheck < (this.opts.fenceCheckMs ?? 250)) return;
    this.lastFenceCheck = this.now();
    // Off the write path: reading partition ends is a few broker round trips. Bounded, so a
    // broker call that never answers cannot hold every later release back.
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.log.warn({ held: this.fence?.pending }, 'releasing held watermarks timed out; trying again');
        resolve();
      }, 15_000);
      timer.unref?.();
    });
    this.releasing = Promise.race([this.releaseWatermarks(), bound]).finally(() => {
      clearTimeout(timer);
      this.releasing = null;
    });
  }

  private releasing: Promise<void> | null = null;
  /** The record each held watermark row came from, for its dead letter if ClickHouse refuses it. */
  private readonly watermarkSources = new WeakMap<object, SinkMessage>();

  private async releaseWatermarks(): Promise<void> {
    if (!this.fence) return;
    try {
      const group = this.opts.consumer.groupCommitted?.bind(this.opts.consumer);
      const rows = [...this.releasedUnwritten, ...(await this.fence.release(this.stored, (key, f) => this.caughtUp(key, f), group))];
      this.releasedUnwritten = rows;
      if (rows.length === 0) return;
      // A watermark row refused for good would otherwise hold complete_before for good.
      const refused = await insertIsolating(this.opts.store, `${DB}.pipeline_watermarks`, rows as unknown as Record<string, unknown>[],
        (n) => this.metrics.rowsTotal.inc({ table: 'pipeline_watermarks' }, n));
      if (refused.length) {
        const table = 'pipeline_watermarks';
        const dead = quarantineDeadLetters(refused.map((r) => ({ ...r, table })), this.watermarkSources, this.now());
        await this.opts.store.insert(`${DB}.dead_letters`, dead as unknown as Record<string, unknown>[]);
        this.metrics.rowsTotal.inc({ table: 'dead_letters' }, dead.length);
        this.reportQuarantine(refused.map((r) => ({ ...r, table })), dead);
      }
      this.releasedUnwritten = [];
      // complete_before never goes backwards (a restore or rescale can report lower watermarks).
      await advanceCompleteBefore(this.opts.store);
    } catch (err) {
      this.log.warn({ err, held: this.fence.pending }, 'held watermarks not released yet');
    }
  }

  /**
   * Only markers or aborted records are left below `fence` on the partition: the consumer's
   * position passed it at least fenceSettleMs ago while consuming (not paused), so every
   * record below it was delivered by now, and everything delivered is stored. A partition
   * nothing was delivered from in this process resumed at its committed offset, written
   * only after the rows before it were stored.
   */
  private caughtUp(key: string, fence: number): boolean {
    // A partition this member no longer holds: its position may be past records the client
    // fetched but dropped at the revoke, which nobody stored yet.
    if (!this.holds(key)) return false;
    const pos = this.opts.consumer.positions?.().get(key);
    const seenKey = `${key}\u0000${fence}`;
    if (!pos || pos.offset < fence || this.paused) {
      this.positionPassedAt.delete(seenKey);
      return false;
    }
    // When the position was first seen past this fence (samples come every second).
    let since = this.positionPassedAt.get(seenKey);
    // A sighting from before the last resume does not count (a paused consumer delivers
    // nothing): observe again from a sample taken since.
    if (since !== undefined && since < this.resumedAt) {
      since = undefined;
      this.positionPassedAt.delete(seenKey);
      if (pos.at < this.resumedAt) return false;
    }
    if (since === undefined) {
      since = pos.at;
      if (this.positionPassedAt.size > 10_000) this.positionPassedAt.clear();
      this.positionPassedAt.set(seenKey, since);
    }
    if (since < this.resumedAt || this.now() - since < (this.opts.fenceSettleMs ?? 1000)) return false;
    const delivered = this.delivered.get(key);
    return delivered === undefined || (this.stored.get(key) ?? -1) >= delivered;
  }

  /** `topic\u0000partition\u0000fence` → when the consumer's position was first seen past that fence. */
  private readonly positionPassedAt = new Map<string, number>();

  /** Whether this member holds the partition now (true when the consumer cannot say). */
  private holds(key: string): boolean {
    const mine = this.opts.consumer.assigned?.();
    return mine === undefined || mine.has(key);
  }

  private lastPositionCommit = 0;

  /**
   * Commit the consumer's position on held partitions where it settled past the last
   * stored record (only commit markers or aborted records between, see caughtUp): without
   * it an idle transactional partition's committed offset stays short of every fence, and
   * other members, who see this partition only through the group's offsets, would hold
   * their watermarks for good. Only with a fence (nothing else needs it); throttled.
   */
  private async commitSettledPositions(): Promise<void> {
    if (!this.fence || this.stopping || !this.opts.consumer.positions || !this.opts.consumer.assigned) return;
    if (this.now() - this.lastPositionCommit < (this.opts.fenceCheckMs ?? 250)) return;
    this.lastPositionCommit = this.now();
    const mine = this.opts.consumer.assigned();
    if (!mine) return;
    const out: TopicPartitionOffset[] = [];
    for (const [key, pos] of this.opts.consumer.positions()) {
      if (!mine.has(key) || pos.offset <= (this.committed.get(key) ?? -1)) continue;
      if (!this.caughtUp(key, pos.offset)) continue;
      const [topic, partition] = key.split('\u0000');
      out.push({ topic: topic!, partition: Number(partition), offset: String(pos.offset) });
    }
    if (out.length) {
      this.log.debug({ commits: out }, 'committing positions settled past commit markers');
      await this.commit(out);
    }
  }

  /** adclick_sink_records_total by kind (the topic's role), once per stored batch. */
  private countRecords(messages: readonly SinkMessage[]): void {
    const kindOf = new Map<string, string>(Object.entries(this.opts.topics ?? SINK_TOPICS).map(([kind, topic]) => [topic, kind]));
    const counts = new Map<string, number>();
    for (const m of messages) {
      const kind = kindOf.get(m.topic) ?? 'unknown';
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
    for (const [kind, n] of counts) this.metrics.recordsTotal.inc({ kind }, n);
  }

  /** The next offset this sink committed per `topic\u0000partition` (for the group-lag metric). */
  private readonly committed = new Map<string, number>();

  /** Offsets committed by this process so far: partition → next offset. */
  committedOffsets(): ReadonlyMap<string, number> {
    return this.committed;
  }

  private async commit(all: TopicPartitionOffset[]): Promise<void> {
    // Only partitions held now (see the header): a revoked partition's offset is the new owner's.
    const mine = this.opts.consumer.assigned?.(); // once per call: a Set built from the client's assignment
    const commits = all.filter((c) => mine === undefined || mine.has(partitionKey(c.topic, c.partition)));
    if (commits.length < all.length) {
      this.metrics.revokedCommitsSkipped.inc(all.length - commits.length);
      this.log.info({ skipped: all.filter((c) => !commits.includes(c)) }, 'not committing offsets of partitions this sink no longer holds (stored; the new owner re-reads them, rows collapse)');
    }
    if (commits.length === 0) return;
    try {
      await this.opts.consumer.commit(commits);
      for (const c of commits) this.committed.set(`${c.topic}\u0000${c.partition}`, Number(c.offset));
    } catch (err) {
      // The rows are stored; a lost commit only means re-delivery, which collapses.
      this.metrics.commitFailures.inc();
      this.log.warn({ err, commits }, 'offset commit failed after a successful write; records will be re-delivered');
    }
  }

  /** Fault injection: SIGKILL this process now if the crash file exists (deleting it first). */
  private crashIfAsked(where: string): void {
    const file = this.opts.faultCrashFile;
    if (!file || !existsSync(file)) return;
    try {
      rmSync(file, { force: true });
    } catch { /* ignore */ }
    this.log.warn({ where }, 'FAULT INJECTION: killing this process (SIGKILL)');
    process.kill(process.pid, 'SIGKILL');
  }

  /** Stop consuming, write and commit what is buffered, disconnect. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.stopDeadline = this.now() + (this.opts.stopTimeoutMs ?? 10_000);
    this.setPaused(true);
    this.kick();
    await this.loopDone;
    await this.releasing;
    try {
      await this.opts.consumer.stop();
    } catch (err) {
      this.log.warn({ err }, 'consumer disconnect failed');
    }
    this.running = false;
    this.log.info({ batches: this.batches, leftUncommitted: this.buffer.length }, 'sink stopped');
  }
}

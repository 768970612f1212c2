// Pipeline figures for the serving process's /metrics, polled every few seconds from
// their sources: Flink's REST API (job up, checkpoints, restarts, and the job's own
// counters: duplicates dropped by dedup, late clicks, dead letters), the pipeline
// watermark the sink stores (watermark delay) and the sink group's committed offsets
// (consumer lag per partition). Every source is optional and bounded by a timeout; a
// source that fails leaves its figures unknown (NaN, or no series for labelled ones;
// Flink: adclick_flink_up 0) and never throws out of the poller.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../shared/logger.ts';

export interface PartitionLag { readonly topic: string; readonly partition: number; readonly lag: number }

export interface PipelinePollerOptions {
  readonly registry: Registry;
  readonly logger: Logger;
  /**
   * Base URL of Flink's REST API (e.g. http://127.0.0.1:8082), or every JobManager's under HA
   * (tried in order, see FlinkRestClient); empty: not polled.
   */
  readonly flinkRestUrl?: string | readonly string[];
  /** The pipeline watermark in epoch ms (null: unknown). */
  readonly watermark?: () => Promise<number | null>;
  readonly consumerLag?: () => Promise<readonly PartitionLag[]>;
  /** Default 5000 ms. */
  readonly intervalMs?: number;
  /** Per request, default 2000 ms. */
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
}

/** Flink counters the job registers (ClickDeserializationSchema, DedupFunction, LateClickFunction). */
export const FLINK_COUNTERS = {
  deadLetters: 'deadLetters', duplicatesDropped: 'duplicatesDropped', lateClicks: 'lateClicks',
  // Flink's own sink committer counters (SinkCommitterMetricGroup), one per Kafka sink.
  commitFailures: 'failedCommittables', commitsDone: 'successfulCommittables',
} as const;

interface FlinkJobOverview { jobs?: { jid: string; name?: string; state: string; 'start-time'?: number }[] }
interface FlinkJob { vertices?: { id: string; name: string }[] }
interface FlinkCheckpoints {
  counts?: { completed?: number; failed?: number; in_progress?: number; restored?: number };
  latest?: {
    completed?: { id: number; end_to_end_duration?: number; latest_ack_timestamp?: number; state_size?: number; checkpointed_size?: number } | null;
    failed?: { id: number; failure_timestamp?: number; failure_message?: string } | null;
  };
}
type FlinkMetricList = { id: string; sum?: number | string; value?: string }[];

export interface FlinkFigures {
  readonly jobId: string;
  readonly state: string;
  readonly checkpoints?: { completed: number; failed: number; inProgress: number; lastDurationMs?: number; lastAckMs?: number; lastSizeBytes?: number };
  readonly restarts?: number;
  /** Sum over subtasks per metric id (e.g. `dedup-impression-event.duplicatesDropped`). */
  readonly counters: Readonly<Record<string, number>>;
}

export interface PipelineMetrics {
  flinkUp: Gauge;
  flinkCheckpoints: Gauge<'state'>;
  flinkCheckpointDuration: Gauge;
  flinkCheckpointAge: Gauge;
  flinkCheckpointSize: Gauge;
  flinkRestarts: Gauge;
  flinkDuplicatesDropped: Gauge;
  flinkLateClicks: Gauge<'granularity'>;
  flinkDeadLetters: Gauge;
  flinkCommitted: Gauge;
  flinkCommitFailures: Counter;
  watermarkDelay: Gauge;
  groupLag: Gauge<'topic' | 'partition'>;
  pollErrors: Counter<'source'>;
}

export function createPipelineMetrics(registry: Registry): PipelineMetrics {
  const registers = [registry];
  return {
    flinkUp: new Gauge({ name: 'adclick_flink_up', help: "1 when Flink's REST API answers and the job is RUNNING, else 0", registers }),
    flinkCheckpoints: new Gauge({ name: 'adclick_flink_checkpoints', help: 'Checkpoints of the running job by state (completed, failed, in_progress), as counted by Flink since the job started', labelNames: ['state'], registers }),
    flinkCheckpointDuration: new Gauge({ name: 'adclick_flink_checkpoint_duration_seconds', help: 'End-to-end duration of the latest completed checkpoint', registers }),
    flinkCheckpointAge: new Gauge({ name: 'adclick_flink_checkpoint_age_seconds', help: 'Time since the latest completed checkpoint (results become visible at checkpoints)', registers }),
    flinkCheckpointSize: new Gauge({ name: 'adclick_flink_checkpoint_size_bytes', help: 'Checkpointed size of the latest completed checkpoint (incremental)', registers }),
    flinkRestarts: new Gauge({ name: 'adclick_flink_restarts', help: 'Restarts of the job since it was submitted (Flink numRestarts)', registers }),
    flinkDuplicatesDropped: new Gauge({ name: 'adclick_flink_duplicates_dropped', help: 'Clicks dropped by the Flink dedup (sum over subtasks since they last started)', registers }),
    flinkLateClicks: new Gauge({ name: 'adclick_flink_late_clicks', help: 'Clicks later than the allowed lateness, sent to clicks-late, by granularity (since the subtasks last started)', labelNames: ['granularity'], registers }),
    flinkDeadLetters: new Gauge({ name: 'adclick_flink_dead_letters', help: 'Records of topic clicks the job could not use, sent to clicks-dlq (since the subtasks last started)', registers }),
    flinkCommitted: new Gauge({ name: 'adclick_flink_committables_committed', help: "Kafka transactions of completed checkpoints the job's sinks committed (since the subtasks last started)", registers }),
    flinkCommitFailures: new Counter({ name: 'adclick_flink_commit_failures_total', help: 'Kafka transactions of completed checkpoints that Flink could NOT commit (aborted by the broker, fenced): their records may be lost. Counted across job restarts while serving polls; any increase is logged as an error and shown by adclick status', registers }),
    watermarkDelay: new Gauge({ name: 'adclick_pipeline_watermark_delay_seconds', help: 'Now minus the pipeline watermark stored by the sink (complete_before): how far closed windows trail the clock', registers }),
    groupLag: new Gauge({ name: 'adclick_sink_consumer_group_lag', help: "Records between the sink group's committed offset and the partition end (read_committed)", labelNames: ['topic', 'partition'], registers }),
    pollErrors: new Counter({ name: 'adclick_pipeline_poll_errors_total', help: 'Failed polls of a pipeline figure source (flink, watermark, lag)', labelNames: ['source'], registers }),
  };
}

/**
 * Reads Flink's REST API; null when it does not answer or no job is known.
 *
 * Given several base URLs (every JobManager under HA: a standby's REST handlers reach the
 * leader through leader retrieval) it asks the one that answered last, and moves on to the
 * next on a connection error, a timeout or a 5xx (a JobManager that is gone, or between
 * leaders). An endpoint that failed is not asked again in the same figures() call, so a
 * call costs at most one pass over the list, each request within the timeout.
 */
export class FlinkRestClient {
  /** Metric ids per vertex of a job, once discovered (metrics appear when tasks run). */
  private metricIds = new Map<string, { ids: string[]; listings: number; nextListingAt: number }>();
  /**
   * Every vertex is listed again after 1 s, 2 s, 4 s, … up to this, not on every poll: a
   * listing is every metric id of the vertex, and these requests were a visible share of the
   * job's CPU in a JFR profile (issue 17). Not only while a vertex shows none of our
   * counters: Flink's metric snapshot can be taken while a task is still opening its chained
   * operators, so a first listing may hold some of a vertex's counters and miss others (a
   * fresh `npm start` showed late clicks but never the dedup's duplicates).
   */
  static readonly RELIST_MAX_MS = 60_000;
  private vertices: { jid: string; list: { id: string; name: string }[] } | null = null;
  private readonly baseUrls: readonly string[];
  private current = 0;
  /** Endpoints that failed during the current figures() call. */
  private failed = new Set<number>();

  constructor(baseUrl: string | readonly string[], private readonly timeoutMs = 2000, private readonly fetchFn: typeof fetch = fetch) {
    this.baseUrls = (typeof baseUrl === 'string' ? [baseUrl] : baseUrl).map((u) => u.replace(/\/$/, ''));
    if (this.baseUrls.length === 0) throw new Error('FlinkRestClient needs at least one base URL');
  }

  private async get<T>(path: string): Promise<T> {
    let lastErr: unknown;
    for (let k = 0; k < this.baseUrls.length; k++) {
      const i = (this.current + k) % this.baseUrls.length;
      if (this.failed.has(i)) continue;
      let res: Response;
      try {
        res = await this.fetchFn(`${this.baseUrls[i]}${path}`, { signal: AbortSignal.timeout(this.timeoutMs) });
      } catch (err) {
        this.failed.add(i);
        lastErr = err;
        continue;
      }
      if (res.status >= 500) {
        await res.body?.cancel().catch(() => undefined);
        this.failed.add(i);
        lastErr = new Error(`Flink REST ${this.baseUrls[i]}${path}: HTTP ${res.status}`);
        continue;
      }
      this.current = i;
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        throw new Error(`Flink REST ${path}: HTTP ${res.status}`);
      }
      return (await res.json()) as T;
    }
    throw lastErr ?? new Error(`Flink REST ${path}: no endpoint left to try (${this.baseUrls.join(', ')} failed in this poll)`);
  }

  /** The number of endpoints; a call may try each once. */
  get endpoints(): number {
    return this.baseUrls.length;
  }

  async figures(): Promise<FlinkFigures | null> {
    this.failed.clear();
    const overview = await this.get<FlinkJobOverview>('/jobs/overview');
    const jobs = overview.jobs ?? [];
    const job = jobs.find((j) => j.state === 'RUNNING') ?? [...jobs].sort((a, b) => (b['start-time'] ?? 0) - (a['start-time'] ?? 0))[0];
    if (!job) return null;
    const jid = encodeURIComponent(job.jid);
    const [cp, restarts, counters] = await Promise.all([
      this.get<FlinkCheckpoints>(`/jobs/${jid}/checkpoints`).catch(() => null),
      this.get<FlinkMetricList>(`/jobs/${jid}/metrics?get=numRestarts`).then((l) => num(l.find((m) => m.id === 'numRestarts')?.value)).catch(() => undefined),
      job.state === 'RUNNING' ? this.counters(job.jid).catch(() => ({})) : Promise.resolve({}),
    ]);
    const last = cp?.latest?.completed ?? undefined;
    return {
      jobId: job.jid,
      state: job.state,
      checkpoints: cp?.counts ? {
        completed: cp.counts.completed ?? 0, failed: cp.counts.failed ?? 0, inProgress: cp.counts.in_progress ?? 0,
        lastDurationMs: last?.end_to_end_duration, lastAckMs: last?.latest_ack_timestamp, lastSizeBytes: last?.checkpointed_size ?? last?.state_size,
      } : undefined,
      restarts,
      counters,
    };
  }

  /** Sums over subtasks of the job's own counters (FLINK_COUNTERS), keyed by metric id. */
  private async counters(jid: string): Promise<Record<string, number>> {
    const q = encodeURIComponent(jid);
    if (this.vertices?.jid !== jid) {
      const job = await this.get<FlinkJob>(`/jobs/${q}`);
      this.vertices = { jid, list: job.vertices ?? [] };
      this.metricIds.clear();
    }
    const wanted = Object.values(FLINK_COUNTERS).map((n) => `.${n}`);
    const out: Record<string, number> = {};
    await Promise.all(this.vertices.list.map(async (v) => {
      const path = `/jobs/${q}/vertices/${encodeURIComponent(v.id)}/subtasks/metrics`;
      const known = this.metricIds.get(v.id);
      let ids = known?.ids;
      if (!known || Date.now() >= known.nextListingAt) {
        // Operator metrics appear once its tasks run, not all at the same instant.
        ids = (await this.get<FlinkMetricList>(path)).map((m) => m.id).filter((id) => wanted.some((w) => id.endsWith(w)));
        const listings = (known?.listings ?? 0) + 1;
        this.metricIds.set(v.id, { ids, listings, nextListingAt: Date.now() + Math.min(FlinkRestClient.RELIST_MAX_MS, 1000 * 2 ** (listings - 1)) });
      }
      if (!ids?.length) return;
      const values = await this.get<FlinkMetricList>(`${path}?get=${ids.map(encodeURIComponent).join(',')}&agg=sum`);
      for (const m of values) {
        const n = num(m.sum);
        if (n !== undefined) out[m.id] = (out[m.id] ?? 0) + n;
      }
    }));
    return out;
  }
}

function num(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** Sum of the counters whose metric id ends with `.${name}`, grouped by `group(id)`. */
export function sumCounters(counters: Readonly<Record<string, number>>, name: string, group: (id: string) => string = () => ''): Map<string, number> {
  const out = new Map<string, number>();
  for (const [id, v] of Object.entries(counters)) {
    if (!id.endsWith(`.${name}`)) continue;
    const g = group(id);
    out.set(g, (out.get(g) ?? 0) + v);
  }
  return out;
}

/** `late-clicks-1m.lateClicks` → `1m` (the LateClickFunction operators are named per granularity). */
export function granularityOf(metricId: string): string {
  return /late-clicks-(\w+)\./.exec(metricId)?.[1] ?? 'all';
}

export class PipelinePoller {
  readonly metrics: PipelineMetrics;
  private readonly log: Logger;
  private readonly flink: FlinkRestClient | null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private lastLagKeys = new Set<string>();
  private lastLateKeys = new Set<string>();
  private failing = new Set<string>();
  /** Commit failures Flink reported for the current job run (its counters restart with the subtasks). */
  private commitFailuresSeen = 0;

  constructor(private readonly opts: PipelinePollerOptions) {
    this.metrics = createPipelineMetrics(opts.registry);
    this.log = opts.logger.child({ module: 'pipeline-poller' });
    const urls = (typeof opts.flinkRestUrl === 'string' ? [opts.flinkRestUrl] : opts.flinkRestUrl ?? []).filter(Boolean);
    this.flink = urls.length ? new FlinkRestClient(urls, opts.timeoutMs ?? 2000, opts.fetch ?? fetch) : null;
    this.metrics.flinkUp.set(0);
  }

  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.running ??= this.pollOnce().finally(() => { this.running = null; });
    };
    tick();
    this.timer = setInterval(tick, this.opts.intervalMs ?? 5000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One round over every source; never rejects. */
  async pollOnce(): Promise<void> {
    await Promise.all([this.pollFlink(), this.pollWatermark(), this.pollLag()]);
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** Logs a source's failure once, and its recovery. */
  private outcome(source: string, err?: unknown): void {
    if (err === undefined) {
      if (this.failing.delete(source)) this.log.info({ source }, 'pipeline figure source answers again');
      return;
    }
    this.metrics.pollErrors.inc({ source });
    if (!this.failing.has(source)) {
      this.failing.add(source);
      this.log.warn({ source, err: (err as Error)?.message ?? String(err) }, 'pipeline figure source does not answer; its metrics are absent until it does');
    }
  }

  private async pollFlink(): Promise<void> {
    if (!this.flink) return;
    const m = this.metrics;
    let f: FlinkFigures | null = null;
    try {
      // One pass over the endpoints may take a timeout per dead one before the answer.
      f = await this.bounded(this.flink.figures(), this.flink.endpoints + 2);
      this.outcome('flink');
    } catch (err) {
      this.outcome('flink', err);
    }
    m.flinkUp.set(f?.state === 'RUNNING' ? 1 : 0);
    const cp = f?.checkpoints;
    if (cp) {
      m.flinkCheckpoints.set({ state: 'completed' }, cp.completed);
      m.flinkCheckpoints.set({ state: 'failed' }, cp.failed);
      m.flinkCheckpoints.set({ state: 'in_progress' }, cp.inProgress);
      setOrReset(m.flinkCheckpointDuration, cp.lastDurationMs === undefined ? undefined : cp.lastDurationMs / 1000);
      setOrReset(m.flinkCheckpointAge, cp.lastAckMs ? Math.max(0, (this.now() - cp.lastAckMs) / 1000) : undefined);
      setOrReset(m.flinkCheckpointSize, cp.lastSizeBytes);
    } else {
      m.flinkCheckpoints.reset();
      for (const g of [m.flinkCheckpointDuration, m.flinkCheckpointAge, m.flinkCheckpointSize]) setOrReset(g, undefined);
    }
    setOrReset(m.flinkRestarts, f?.restarts);
    const counters = f?.counters ?? {};
    setOrReset(m.flinkDuplicatesDropped, sumCounters(counters, FLINK_COUNTERS.duplicatesDropped).get(''));
    setOrReset(m.flinkDeadLetters, sumCounters(counters, FLINK_COUNTERS.deadLetters).get(''));
    setOrReset(m.flinkCommitted, sumCounters(counters, FLINK_COUNTERS.commitsDone).get(''));
    this.noteCommitFailures(sumCounters(counters, FLINK_COUNTERS.commitFailures).get(''));
    const late = sumCounters(counters, FLINK_COUNTERS.lateClicks, granularityOf);
    for (const g of this.lastLateKeys) if (!late.has(g)) m.flinkLateClicks.remove({ granularity: g });
    for (const [g, v] of late) m.flinkLateClicks.set({ granularity: g }, v);
    this.lastLateKeys = new Set(late.keys());
  }

  /**
   * Issue #15, defect 6: Flink's Kafka committer only logs a transaction it could not commit
   * (aborted after a recovery longer than the transaction timeout, fenced) and goes on: the
   * records of a completed checkpoint are then gone. Made loud here: a counter that survives job
   * restarts (Flink's restarts with the subtasks; a lower sum means a new run) and an error line.
   */
  private noteCommitFailures(sum: number | undefined): void {
    if (sum === undefined) return;
    const fresh = sum < this.commitFailuresSeen ? sum : sum - this.commitFailuresSeen;
    this.commitFailuresSeen = sum;
    if (fresh <= 0) return;
    this.metrics.flinkCommitFailures.inc(fresh);
    this.log.error({ failedCommits: fresh, sinceJobStart: sum }, 'Flink could not commit Kafka transactions of completed checkpoints: their records may be LOST (aborted by the broker after a recovery longer than the transaction timeout, or fenced). Compare the conservation figures and the Flink log ("Unable to commit transaction")');
  }

  private async pollWatermark(): Promise<void> {
    if (!this.opts.watermark) return;
    try {
      const wm = await this.bounded(this.opts.watermark());
      setOrReset(this.metrics.watermarkDelay, wm === null ? undefined : Math.max(0, (this.now() - wm) / 1000));
      this.outcome('watermark');
    } catch (err) {
      setOrReset(this.metrics.watermarkDelay, undefined);
      this.outcome('watermark', err);
    }
  }

  private async pollLag(): Promise<void> {
    if (!this.opts.consumerLag) return;
    try {
      const lags = await this.bounded(this.opts.consumerLag());
      const keys = new Set<string>();
      for (const l of lags) {
        const labels = { topic: l.topic, partition: String(l.partition) };
        keys.add(`${labels.topic}\u0000${labels.partition}`);
        this.metrics.groupLag.set(labels, l.lag);
      }
      for (const k of this.lastLagKeys) {
        if (keys.has(k)) continue;
        const [topic, partition] = k.split('\u0000') as [string, string];
        this.metrics.groupLag.remove({ topic, partition });
      }
      this.lastLagKeys = keys;
      this.outcome('lag');
    } catch (err) {
      this.metrics.groupLag.reset();
      this.lastLagKeys.clear();
      this.outcome('lag', err);
    }
  }

  /** Bounds a source that does not honour its own timeout (e.g. a hung ClickHouse query). */
  private bounded<T>(p: Promise<T>, timeouts = 3): Promise<T> {
    const ms = (this.opts.timeoutMs ?? 2000) * timeouts;
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      p,
      new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms); }),
    ]).finally(() => clearTimeout(timer));
  }
}

/** Unknown figures read NaN (prom-client resets an unlabelled gauge to 0, which would look like a real value). */
function setOrReset(g: Gauge, v: number | undefined): void {
  g.set(v === undefined || !Number.isFinite(v) ? NaN : v);
}

// The chaos scenarios. Each runs while the driver keeps signed traffic flowing, records
// its faults, and may add checks of its own (`problems`). Scenarios of one stack kind
// share a stack; each gets its own advertiser/campaign/ad id range.
import { writeFileSync } from 'node:fs';
import type { ChaosStack, StackKind } from './stack.ts';
import {
  cmdline, committedOffsets, findDeadLetters, killAndWait, latestCheckpointPath, nextCheckpoint, pidOf, poisonRecords, producePoison, waitRestarted,
  type FaultRecord,
} from './faults.ts';
import { signal, sleep } from './util.ts';
import { adminRequest } from '../shared/admin-client.ts';
import { sumMetric } from '../stack/status-figures.ts';
import { sendAllDirect, tally } from './direct-clicks.ts';
import { lateCorrections, onTimeReportedLate } from './late-corrections.ts';
import type { AttributionFn, EventTimeFn } from '../simulate/traffic-model.ts';
import type { Ledger } from '../simulate/ledger.ts';
import type { Config } from '../shared/config.ts';

/** One scenario's id ranges (disjoint from every other scenario's). */
export interface ScenarioIds {
  readonly advertiser: number;
  /** An advertiser id of this scenario's own that the catalogue never uses (foreign-signed clicks). */
  readonly foreignAdvertiser: number;
  readonly adIdBase: number;
  readonly ads: number;
  readonly campaignIdBase: number;
  readonly campaigns: number;
  /** When the scenario's traffic began (epoch ms). */
  readonly trafficStartMs: number;
}

export interface ScenarioContext {
  readonly stack: ChaosStack;
  /** The scenario's ground truth (the simulator records into it; so may the scenario's own sends). */
  readonly ledger: Ledger;
  readonly ids: ScenarioIds;
  /** CI form: shorter pauses, fewer repetitions. */
  readonly short: boolean;
  readonly faults: FaultRecord[];
  /** Scenario-specific failures (empty = fine). */
  readonly problems: string[];
  /** Scenario-specific facts for the report. */
  readonly notes: string[];
  /** Scratch space shared by inject() and verify(). */
  readonly state: Record<string, unknown>;
  note(line: string): void;
}

export interface Scenario {
  readonly name: string;
  readonly stack: StackKind;
  readonly description: string;
  /** The negative control: passes only when the checker reports a difference. */
  readonly expectDifference?: boolean;
  /** Traffic before the first fault (ms). */
  readonly warmupMs?: number;
  /** Event times of the scenario's clicks (default: the simulator's, now minus up to ~21 s). */
  readonly eventTime?: EventTimeFn;
  /** How far before the traffic started the ledger's event times reach (the check's range; default 10 min). */
  readonly lookbackMs?: number;
  /** Longest drain of the long form (default 300 s); the short form always has 150 s. */
  readonly drainTimeoutMs?: number;
  /** Long form: how long unchanged counts end the drain early (default 60 s). */
  readonly drainStableMs?: number;
  /** Re-signs the traffic's clicks (a catalogue that changes mid-stream); default: the catalogue's owners. */
  attribution?(ctx: ScenarioContext): AttributionFn;
  /**
   * Stack configuration this scenario needs (e.g. compressed time). Scenarios with equal
   * overrides share a stack; others get their own.
   */
  readonly stackConfig?: Partial<Config>;
  inject(ctx: ScenarioContext): Promise<void>;
  /** After the drain: extra checks (e.g. the dead-letter topic). */
  verify?(ctx: ScenarioContext): Promise<void>;
}

const pause = (ctx: ScenarioContext, shortMs: number, longMs: number) => sleep(ctx.short ? shortMs : longMs);

/** adclick_sink_consumer_replacements_total from the serving process's /metrics. */
async function sinkConsumerReplacements(stack: ScenarioContext['stack']): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${stack.config.adminPort}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const value = res.ok ? sumMetric(await res.text(), 'adclick_sink_consumer_replacements_total') : null;
  if (value === null) throw new Error(`no adclick_sink_consumer_replacements_total on the serving process's /metrics (HTTP ${res.status})`);
  return value;
}

/**
 * Traffic beyond the happy envelope: 80 % current clicks (up to 1 s old), 10 % 3–20
 * minutes late (past the 2-minute allowed lateness: late corrections), 10 % 1–3 hours late
 * (well inside the accepted age). Right after a restore these are what a window operator
 * without the pre-restart watermark would count as fresh windows (issue #15, defect 1).
 */
export const mixedLateness: EventTimeFn = (_seq, nowMs, rng) => {
  const r = rng.next();
  if (r < 0.8) return Math.floor(nowMs - rng.next() * 1000);
  if (r < 0.9) return Math.floor(nowMs - 180_000 - rng.next() * 17 * 60_000);
  return Math.floor(nowMs - 3_600_000 - rng.next() * 2 * 3_600_000);
};

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'poison-record',
    stack: 'embedded',
    description: 'garbage bytes and a valid-protobuf-but-invalid click written straight into `clicks`: both land in `clicks-dlq` with a reason; nothing stalls',
    async inject(ctx) {
      const recs = poisonRecords(`${ctx.stack.dataDir.split('-').pop()}`);
      ctx.state.poison = recs;
      const at = Date.now();
      await producePoison(ctx.stack, ctx.stack.config.clicksTopic, recs);
      ctx.faults.push({ what: `${recs.length} poison records into ${ctx.stack.config.clicksTopic}`, at, clearedAt: Date.now() });
      await pause(ctx, 3000, 10_000);
    },
    async verify(ctx) {
      const recs = (ctx.state.poison as ReturnType<typeof poisonRecords> | undefined) ?? [];
      const found = await findDeadLetters(ctx.stack, 'clicks-dlq', recs.map((r) => r.key), 60_000);
      for (const r of recs) {
        const d = found.get(r.key);
        if (!d) ctx.problems.push(`poison record (${r.kind}) not found in clicks-dlq`);
        else if (!d.reason) ctx.problems.push(`poison record (${r.kind}) in clicks-dlq without a reason`);
        else ctx.notes.push(`${r.kind} → clicks-dlq, reason "${d.reason}"`);
      }
    },
  },
  {
    name: 'redis-down',
    stack: 'embedded',
    description: 'Redis killed (-9) for a while, then started again empty: the gateway fails open, Flink dedup keeps counts exact',
    async inject(ctx) {
      const at = Date.now();
      await ctx.stack.redis.kill();
      await pause(ctx, 6000, 20_000);
      await ctx.stack.redis.start();
      ctx.faults.push({ what: 'redis down', at, clearedAt: Date.now() });
      await pause(ctx, 2000, 5000);
    },
  },
  {
    name: 'gateway-kill',
    stack: 'embedded',
    description: 'kill -9 the gateway under load, twice',
    async inject(ctx) {
      for (let i = 0; i < 2; i++) {
        ctx.faults.push(await killAndWait(ctx.stack, 'gateway'));
        await pause(ctx, 3000, 8000);
      }
    },
  },
  {
    name: 'serving-kill',
    stack: 'embedded',
    description: 'kill -9 the serving process (sink + query API) mid-stream, then make it die right after a ClickHouse insert and before the offset commit',
    async inject(ctx) {
      ctx.faults.push(await killAndWait(ctx.stack, 'serving'));
      await pause(ctx, 3000, 8000);
      // Crash between insert and commit: the sink deletes the trigger file and SIGKILLs itself.
      const pid = pidOf(ctx.stack, 'serving');
      writeFileSync(ctx.stack.sinkCrashFile, '1');
      const at = Date.now();
      const newPid = await waitRestarted(ctx.stack, 'serving', pid);
      ctx.faults.push({ what: 'sink crash after insert, before commit', at, clearedAt: Date.now() });
      ctx.notes.push(`serving pid ${pid} → ${newPid} after the injected insert/commit crash`);
      await pause(ctx, 3000, 8000);
    },
  },
  {
    name: 'flink-kill',
    stack: 'embedded',
    description: 'kill -9 the Flink job process mid-stream, several times in a row (each restart must restore from the latest retained checkpoint), while a fifth of the clicks are minutes late (beyond the allowed lateness) or hours late',
    eventTime: mixedLateness,
    lookbackMs: 3 * 3_600_000 + 10 * 60_000,
    async inject(ctx) {
      const kills = 3;
      for (let i = 0; i < kills; i++) {
        // A few checkpoints apart; the kill lands just after one, mid-way to the next.
        for (let c = 0; c < (ctx.short ? 2 : 3); c++) await nextCheckpoint(ctx.stack);
        await sleep(Math.floor(ctx.stack.config.flinkCheckpointIntervalMs / 2));
        const restoreFrom = latestCheckpointPath(ctx.stack);
        const f = await killAndWait(ctx.stack, 'flink', `kill -9 flink #${i + 1}`);
        ctx.faults.push(f);
        const args = cmdline(f.newPid);
        const i2 = args.indexOf('--restore-from');
        if (i2 < 0) ctx.problems.push(`flink restart #${i + 1} did not get --restore-from (latest checkpoint was ${restoreFrom ?? 'none'})`);
        else ctx.notes.push(`restart #${i + 1} restored from ${args[i2 + 1]!.split('/').slice(-2).join('/')}`);
      }
      await pause(ctx, 3000, 8000);
    },
  },
  {
    name: 'kafka-stop',
    stack: 'embedded',
    description: 'SIGSTOP the Kafka broker right after a checkpoint completed (around its transaction commits), for longer than a checkpoint interval, then SIGCONT',
    async inject(ctx) {
      const pid = pidOf(ctx.stack, 'kafka');
      await nextCheckpoint(ctx.stack);
      const at = Date.now();
      signal(pid, 'SIGSTOP');
      try {
        await pause(ctx, Math.max(8000, 3 * ctx.stack.config.flinkCheckpointIntervalMs), 20_000);
      } finally {
        signal(pid, 'SIGCONT');
      }
      ctx.faults.push({ what: `SIGSTOP kafka ${Date.now() - at} ms`, at, clearedAt: Date.now() });
      await pause(ctx, 5000, 10_000);
    },
  },
  {
    name: 'kafka-kill',
    stack: 'embedded',
    description: 'kill -9 the Kafka broker; the supervisor restarts it on the same log dir',
    async inject(ctx) {
      ctx.faults.push(await killAndWait(ctx.stack, 'kafka'));
      await pause(ctx, 5000, 10_000);
    },
  },
  {
    name: 'clickhouse-down',
    stack: 'server',
    description: 'ClickHouse server stopped for longer than the sink waits for room (server mode): the sink must not commit offsets meanwhile, its Kafka consumer is replaced by a fresh one from the committed offsets, then it catches up',
    async inject(ctx) {
      const ch = ctx.stack.clickhouse!;
      const topics = ['click-aggregates', 'click-watermarks', 'clicks-late', 'clicks-dlq', 'clicks-deduped'];
      const replacedBefore = await sinkConsumerReplacements(ctx.stack);
      const at = Date.now();
      await ch.down();
      await sleep(3000); // a commit already under way may still land
      const before = await committedOffsets(ctx.stack, ctx.stack.config.sinkGroupId, topics);
      // Down for longer than the sink's wait for room (the server stack's is 5 s): deliveries
      // wait, then the consumer is replaced, the fresh one re-reads from the committed offsets.
      const waitMs = ctx.stack.config.sinkMaxWaitForRoomMs;
      await sleep(Math.max(ctx.short ? 9000 : 20_000, 2 * waitMs + 4000));
      const after = await committedOffsets(ctx.stack, ctx.stack.config.sinkGroupId, topics);
      if (before !== after) ctx.problems.push(`sink committed offsets while ClickHouse was down: ${before} → ${after}`);
      else ctx.notes.push('no offset commit while ClickHouse was down');
      const replaced = (await sinkConsumerReplacements(ctx.stack)) - replacedBefore;
      if (replaced < 1) ctx.problems.push(`ClickHouse down for ${Math.round((Date.now() - at) / 1000)} s, longer than the sink's wait for room (${waitMs} ms), but its consumer was not replaced`);
      else ctx.notes.push(`sink consumer replaced ${replaced} time(s) while ClickHouse was down (wait for room ${waitMs} ms)`);
      await ch.up();
      ctx.faults.push({ what: 'clickhouse-server down', at, clearedAt: Date.now() });
      await pause(ctx, 5000, 10_000);
    },
  },
  {
    name: 'ad-moves',
    stack: 'embedded',
    description: 'the catalogue changes mid-stream: half the ads move to another campaign of the same advertiser, and 4 % of clicks claim the ad for another advertiser (half under the same campaign id); then kill -9 Flink. Each click counts for the owner it was signed with, per (ad, window) and (campaign, window), and each advertiser sees only its own clicks',
    attribution: (ctx) => movingCatalogue(ctx),
    async inject(ctx) {
      await pause(ctx, 10_000, 30_000);
      const at = Date.now();
      ctx.state.moved = true;
      ctx.faults.push({ what: 'catalogue change: even-numbered ads moved to the next campaign', at, clearedAt: at });
      // State written with both owners in open windows, then restored.
      await pause(ctx, 6000, 20_000);
      await nextCheckpoint(ctx.stack);
      ctx.faults.push(await killAndWait(ctx.stack, 'flink', 'kill -9 flink after the move'));
      await pause(ctx, 3000, 8000);
    },
    async verify(ctx) {
      await campaignListsMatch(ctx);
    },
  },
  {
    name: 'flink-pause',
    stack: 'server',
    description: 'SIGSTOP the Flink job for 5 minutes (short form: 75 s) while the gateway keeps accepting, then SIGCONT: exact, and no click that was on time at the gateway becomes a late correction',
    // Found by this long form (fixed in 616dc0d): after 5 minutes stopped the job's Kafka
    // producers expired their batches (2 min delivery timeout), the MiniCluster lost its
    // only TaskManager and got no slots for ~3 min until the process exited. Now the sinks
    // wait 10 min and a watchdog restarts a TaskManager-less job at once; on SIGCONT the
    // job still restarts in-job (heartbeats timed out), during which counts do not move,
    // so "unchanged for 60 s" must not end the drain; then five minutes of backlog to read.
    drainTimeoutMs: 900_000,
    drainStableMs: 420_000,
    async inject(ctx) {
      await nextCheckpoint(ctx.stack);
      const pid = pidOf(ctx.stack, 'flink');
      const at = Date.now();
      signal(pid, 'SIGSTOP');
      try {
        await pause(ctx, 75_000, 300_000);
      } finally {
        signal(pid, 'SIGCONT');
      }
      ctx.faults.push({ what: `SIGSTOP flink ${Date.now() - at} ms`, at, clearedAt: Date.now() });
      await pause(ctx, 5000, 10_000);
    },
    async verify(ctx) {
      await noOnTimeLateCorrections(ctx);
    },
  },
  {
    name: 'backfill-lag',
    stack: 'server',
    description: 'backfills racing late clicks (a fifth of the traffic minutes or hours late), then the serving process SIGSTOPped so the sink falls behind, and backfills right after SIGCONT while it catches up: exact afterwards, and every backfill reports the windows it skipped (not closed for good yet)',
    eventTime: mixedLateness,
    lookbackMs: 3 * 3_600_000 + 10 * 60_000,
    async inject(ctx) {
      const from = ctx.ids.trafficStartMs - (3 * 3_600_000 + 10 * 60_000);
      // A backfill before the pipeline stored any watermark is refused (nothing is closed
      // for good): on a fresh stack, wait for the first one.
      await firstWatermark(ctx);
      for (let i = 1; i <= 3; i++) {
        await checkedBackfill(ctx, `racing late clicks #${i}`, from);
        await pause(ctx, 3000, 10_000);
      }
      const pid = pidOf(ctx.stack, 'serving');
      const at = Date.now();
      signal(pid, 'SIGSTOP');
      try {
        await pause(ctx, 20_000, 60_000);
      } finally {
        signal(pid, 'SIGCONT');
      }
      ctx.faults.push({ what: `SIGSTOP serving ${Date.now() - at} ms (sink behind)`, at, clearedAt: Date.now() });
      for (let i = 1; i <= 3; i++) {
        await checkedBackfill(ctx, `sink behind #${i}`, from);
        await sleep(1000);
      }
      await pause(ctx, 3000, 8000);
    },
    async verify(ctx) {
      // Stopping the sink must not make Flink judge on-time clicks late; the minutes- and
      // hours-late clicks of this traffic are fair corrections (and show the read works).
      await noOnTimeLateCorrections(ctx);
    },
  },
  {
    name: 'retry-after-a-day',
    stack: 'embedded',
    description: 'a retry of clicks accepted a (compressed) day earlier, sent while Flink has been stopped for most of that day and after Redis lost the edge-dedup keys: counted once; one more day later the gateway refuses them',
    // Time compressed by configuration: a "day" (ADCLICK_MAX_CLICK_AGE_MS) is 90 s, the
    // clock skew 5 s, the edge-dedup TTL 100 s (>= age + skew, as loadConfig demands). The
    // Flink dedup horizon follows (the launcher passes age + skew + 1 h: its 1 h margin is
    // not compressed). Flink is stopped from right after the first sends until past the
    // day (~90 s): the retries wait ~75 s, "18 hours", in Kafka before Flink reads them.
    stackConfig: { maxClickAgeMs: 90_000, maxClockSkewMs: 5_000, dedupTtlSec: 100 },
    async inject(ctx) {
      const cfg = ctx.stack.config;
      const n = ctx.short ? 200 : 1000;
      const t0 = Date.now();
      const clicks = Array.from({ length: n }, (_, i) => ({
        impression_id: `imp_dayold_${ctx.ids.advertiser}_${t0.toString(36)}_${i}`, event_type: 'click',
        ad_id: ctx.ids.adIdBase + (i % ctx.ids.ads), campaign_id: ctx.ids.campaignIdBase + ((i % ctx.ids.ads) % ctx.ids.campaigns), advertiser_id: ctx.ids.advertiser,
        user_id: `u_dayold_${i}`, timestamp: t0,
      }));
      const first = await sendAllDirect(ctx.stack, ctx.ledger, clicks);
      ctx.notes.push(`${n} clicks with event time ${new Date(t0).toISOString()}: ${tally(first)}`);
      if (first.some((a) => a.status !== 202)) ctx.problems.push(`first sends not all accepted: ${tally(first)}`);
      // Flink stops right away (not after a checkpoint: waiting for one took ~55 s of the
      // 90 s day on a loaded box), so the retries are read after most of a day of lag.
      const pid = pidOf(ctx.stack, 'flink');
      const at = Date.now();
      signal(pid, 'SIGSTOP');
      try {
        // The edge forgets (Redis restarted empty), so the retries reach Kafka and only
        // Flink's dedup can drop them.
        await ctx.stack.redis.kill();
        await ctx.stack.redis.start();
        await sleep(Math.max(0, t0 + cfg.maxClickAgeMs - 15_000 - Date.now()));
        const retry = await sendAllDirect(ctx.stack, ctx.ledger, clicks);
        ctx.notes.push(`retry ${Math.round((Date.now() - t0) / 1000)} s (of a ${cfg.maxClickAgeMs / 1000} s day) later, Flink stopped for ${Math.round((Date.now() - at) / 1000)} s by then: ${tally(retry)}`);
        if (retry.some((a) => a.status !== 202)) ctx.problems.push(`retries within the day not all answered 202: ${tally(retry)}`);
        await sleep(Math.max(0, t0 + cfg.maxClickAgeMs + 2000 - Date.now()));
        const tooOld = await sendAllDirect(ctx.stack, ctx.ledger, clicks.slice(0, 20));
        ctx.notes.push(`retry of 20 after more than a day: ${tally(tooOld)}`);
        if (tooOld.some((a) => a.outcome !== 'TIMESTAMP_OUT_OF_RANGE')) ctx.problems.push(`retries older than the max click age not refused: ${tally(tooOld)}`);
      } finally {
        signal(pid, 'SIGCONT');
      }
      ctx.faults.push({ what: `SIGSTOP flink ${Date.now() - at} ms, redis restarted empty, day-old retries`, at, clearedAt: Date.now() });
      await pause(ctx, 5000, 10_000);
    },
  },
  {
    name: 'negative-control',
    stack: 'negative',
    expectDifference: true,
    description: 'UNSAFE gateway (ADCLICK_FAULT_UNSAFE_GATEWAY_ACK_FIRST: 202 before the Kafka ack) + Kafka paused past the produce timeout: the checker MUST report lost clicks',
    async inject(ctx) {
      const pid = pidOf(ctx.stack, 'kafka');
      const at = Date.now();
      signal(pid, 'SIGSTOP');
      try {
        await sleep(ctx.stack.config.produceTimeoutMs + 4000);
      } finally {
        signal(pid, 'SIGCONT');
      }
      ctx.faults.push({ what: 'SIGSTOP kafka (unsafe gateway)', at, clearedAt: Date.now() });
      await pause(ctx, 3000, 5000);
    },
  },
];

/**
 * The ad-moves catalogue: once `ctx.state.moved` is set, even-numbered ads are signed with
 * the next campaign of the same advertiser; every 25th click claims its ad for the
 * scenario's foreign advertiser, alternately under the ad's own campaign id and under a
 * campaign id of the foreign advertiser's own.
 */
export function movingCatalogue(ctx: ScenarioContext): AttributionFn {
  const { ids } = ctx;
  const foreignCampaign = ids.campaignIdBase + 900;
  return (ad, seq) => {
    if (seq % 25 === 0) return { ad_id: ad.ad_id, campaign_id: seq % 50 === 0 ? ad.campaign_id : foreignCampaign, advertiser_id: ids.foreignAdvertiser };
    if (ctx.state.moved === true && (ad.ad_id - ids.adIdBase) % 2 === 0) {
      return { ...ad, campaign_id: ids.campaignIdBase + ((ad.campaign_id - ids.campaignIdBase + 1) % ids.campaigns) };
    }
    return ad;
  };
}

/** GET /v1/campaigns of every advertiser in the ledger: exactly its own campaigns, with the ledger's totals. */
async function campaignListsMatch(ctx: ScenarioContext): Promise<void> {
  const want = new Map<number, Map<number, number>>();
  for (const e of ctx.ledger) {
    const m = want.get(e.advertiser_id) ?? new Map<number, number>();
    m.set(e.campaign_id, (m.get(e.campaign_id) ?? 0) + 1);
    want.set(e.advertiser_id, m);
  }
  for (const [adv, campaigns] of want) {
    const res = await fetch(`${ctx.stack.apiUrl}/v1/campaigns`, { headers: { authorization: `Bearer ${await ctx.stack.apiKey(adv)}` }, signal: AbortSignal.timeout(15_000) });
    const body = (await res.json()) as { campaigns: { campaign_id: number; total_clicks: number }[] };
    const got = new Map(body.campaigns.map((c) => [c.campaign_id, c.total_clicks]));
    const fmt = (m: Map<number, number>) => [...m].sort((a, b) => a[0] - b[0]).map(([c, n]) => `${c}:${n}`).join(' ');
    if (fmt(got) !== fmt(campaigns)) ctx.problems.push(`advertiser ${adv} GET /v1/campaigns: api ${fmt(got)} ledger ${fmt(campaigns)}`);
    else ctx.notes.push(`advertiser ${adv} sees exactly its own ${campaigns.size} campaigns (${[...campaigns.values()].reduce((a, b) => a + b, 0)} clicks)`);
  }
}

/** No click of the scenario that was on time at the gateway is stored as a late correction. */
async function noOnTimeLateCorrections(ctx: ScenarioContext): Promise<void> {
  const advertisers = [...new Set([...ctx.ledger].map((e) => e.advertiser_id))];
  const rows = await lateCorrections(ctx.stack, { advertiserIds: advertisers.length ? advertisers : [ctx.ids.advertiser], adIdFrom: ctx.ids.adIdBase, adIdTo: ctx.ids.adIdBase + ctx.ids.ads });
  const r = onTimeReportedLate(rows, ctx.ledger, ctx.stack.config.flinkAllowedLatenessMs);
  ctx.notes.push(`late_clicks rows of the scenario: ${r.rows} (${r.onTimeClicks} clicks on time at the gateway among them, ${r.unknown} not in the ledger)`);
  ctx.problems.push(...r.lines);
  if (r.unknown) ctx.problems.push(`${r.unknown} late_clicks rows of clicks the ledger does not have`);
}

/** Waits until the query API reports a complete_before (the sink stored a watermark). */
async function firstWatermark(ctx: ScenarioContext, timeoutMs = 180_000): Promise<void> {
  const t0 = Date.now();
  const key = await ctx.stack.apiKey(ctx.ids.advertiser);
  for (;;) {
    try {
      const res = await fetch(`${ctx.stack.apiUrl}/v1/campaigns/${ctx.ids.campaignIdBase}/clicks?granularity=1h`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(10_000) });
      const body = (await res.json()) as { complete_before?: string | null };
      if (res.status === 200 && body.complete_before) {
        ctx.notes.push(`first stored watermark ${Math.round((Date.now() - ctx.ids.trafficStartMs) / 1000)} s after the traffic began (complete_before ${body.complete_before})`);
        return;
      }
    } catch { /* not yet */ }
    if (Date.now() - t0 > timeoutMs) throw new Error(`no stored watermark within ${timeoutMs / 1000} s`);
    await sleep(1000);
  }
}

/**
 * One backfill over [fromMs, now) through the admin surface. It may only recount windows
 * closed for good (the stored watermark minus the allowed lateness); the rest of the
 * requested range must be reported as skipped (`to_ms` < `requested_to_ms`, `clamped_by`).
 */
async function checkedBackfill(ctx: ScenarioContext, label: string, fromMs: number): Promise<void> {
  const requested = Date.now();
  let a: Record<string, unknown>;
  try {
    a = await adminRequest(ctx.stack.config, '/admin/backfill', { from_ms: fromMs, to_ms: requested });
  } catch (err) {
    ctx.problems.push(`backfill ${label}: ${(err as Error).message}`);
    return;
  }
  const to = Number(a.to_ms);
  const cb = a.complete_before_ms === null ? null : Number(a.complete_before_ms);
  const closed = cb === null ? null : cb - ctx.stack.config.flinkAllowedLatenessMs;
  const iso = (ms: number) => new Date(ms).toISOString();
  if (closed !== null && to > closed) ctx.problems.push(`backfill ${label} recounted windows up to ${iso(to)}, past the closed-for-good bound ${iso(closed)}`);
  if (to < Number(a.requested_to_ms)) {
    if (!a.clamped_by) ctx.problems.push(`backfill ${label} skipped [${iso(to)}, ${iso(Number(a.requested_to_ms))}) without saying why`);
    else ctx.notes.push(`backfill ${label}: recounted ${JSON.stringify(a.windows)} windows in [${iso(Number(a.from_ms))}, ${iso(to)}), skipped [${iso(to)}, ${iso(Number(a.requested_to_ms))}) (${String(a.clamped_by).split(' (')[0]})`);
  } else {
    ctx.problems.push(`backfill ${label} reports no skipped windows though it was asked up to now (${iso(requested)})`);
  }
}

export function scenarioNames(): string[] {
  return SCENARIOS.map((s) => s.name);
}

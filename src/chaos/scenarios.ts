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
import type { EventTimeFn } from '../simulate/traffic-model.ts';

export interface ScenarioContext {
  readonly stack: ChaosStack;
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
  inject(ctx: ScenarioContext): Promise<void>;
  /** After the drain: extra checks (e.g. the dead-letter topic). */
  verify?(ctx: ScenarioContext): Promise<void>;
}

const pause = (ctx: ScenarioContext, shortMs: number, longMs: number) => sleep(ctx.short ? shortMs : longMs);

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
    description: 'ClickHouse server stopped for a while (server mode): the sink must not commit offsets meanwhile, then catches up',
    async inject(ctx) {
      const ch = ctx.stack.clickhouse!;
      const topics = ['click-aggregates', 'click-watermarks', 'clicks-late', 'clicks-dlq', 'clicks-deduped'];
      const at = Date.now();
      await ch.down();
      await sleep(3000); // a commit already under way may still land
      const before = await committedOffsets(ctx.stack, ctx.stack.config.sinkGroupId, topics);
      await pause(ctx, 5000, 20_000);
      const after = await committedOffsets(ctx.stack, ctx.stack.config.sinkGroupId, topics);
      if (before !== after) ctx.problems.push(`sink committed offsets while ClickHouse was down: ${before} → ${after}`);
      else ctx.notes.push('no offset commit while ClickHouse was down');
      await ch.up();
      ctx.faults.push({ what: 'clickhouse-server down', at, clearedAt: Date.now() });
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

export function scenarioNames(): string[] {
  return SCENARIOS.map((s) => s.name);
}

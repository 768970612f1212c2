// One step of the pipeline benchmark: the generator (its own process) offers `rate`
// clicks/s for the hold time to the step's own advertiser, ads and campaigns; meanwhile
// the serving process's /metrics are sampled (sink group lag, watermark delay); CPU of
// every process tree is read before and after; then the drain waits until every count
// equals the step's ledger (the chaos checker, per ad and campaign at 1m/5m/1h).
//
// Held = accepted ≥ offered × (1 − tolerance), the lag and the delay not growing (mean
// of the last third of the step minus the mean of the first third within a slack; the
// first 10% of the step is the ramp and is skipped), and the counts exact with no click
// of unknown outcome.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { drainAndCheck } from '../../src/chaos/checker.ts';
import { samples, sumMetric } from '../../src/stack/status-figures.ts';
import type { GeneratorMessage, GeneratorOptions, GeneratorSummary, Shape } from './generator.ts';
import type { SimulateProgress } from '../../src/simulate/simulator.ts';
import { microsPerClick, snapshot, type CpuSnapshot } from './proc-cpu.ts';
import type { PipelineBenchOptions } from './options.ts';
import { pct, probeFreshness, type ProbeResult } from '../freshness-probe.ts';
import { startAdminProbe, type Responsiveness } from './admin-probe.ts';

export interface StepContext {
  gatewayUrl: string;
  apiUrl: string;
  adminMetricsUrl: string;
  /** Health and admin endpoints probed once a second during each step (name → URL). */
  adminProbes: Record<string, string>;
  keyId: string;
  secret: string;
  /** Query API key for an advertiser (made on first use). */
  apiKey(advertiserId: number): Promise<string>;
  /** Pids of the measured process trees, read at each snapshot (a restarted process has a new pid). */
  pids(): Record<string, number | undefined>;
  /** Register / unregister the running generator, so a Ctrl-C can kill it. */
  track(child: ChildProcess | undefined): void;
  note(line: string): void;
  options: PipelineBenchOptions;
}

export interface Trend { first: number | null; last: number | null; max: number | null; growing: boolean }

export interface Freshness { probes: number; accepted: number; p50Ms: Record<string, number>; p99Ms: Record<string, number>; finalP50Ms: number; finalP99Ms: number }

export interface StepResult {
  shape: Shape;
  kind: 'warmup' | 'ladder' | 'freshness';
  index: number;
  rate: number;
  advertiserId: number;
  generator: GeneratorSummary;
  /** Distinct clicks accepted per second of generation. */
  acceptedPerSec: number;
  sinkLag: Trend;
  watermarkDelayS: Trend;
  /** /metrics polls of the serving process that failed or timed out (2 s) during the step. */
  adminUnanswered: number;
  /** Health/admin probes of every part during the step (admin-probe.ts). */
  responsiveness: Responsiveness;
  exact: boolean;
  lost: number;
  duplicated: number;
  queryErrors: number;
  drainMs: number;
  cpuSeconds: Record<string, number>;
  cpuMicrosPerClick: Record<string, number>;
  held: boolean;
  why: string[];
  freshness?: Freshness;
}

const GENERATOR = fileURLToPath(new URL('./generator.ts', import.meta.url));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function metrics(url: string): Promise<{ lag: number | null; delay: number | null; loopMaxS: number | null } | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) return null;
    const text = await res.text();
    const lag = samples(text, 'adclick_sink_consumer_group_lag');
    return { lag: lag.length ? lag.reduce((a, s) => a + s.value, 0) : null, delay: sumMetric(text, 'adclick_pipeline_watermark_delay_seconds'),
      loopMaxS: sumMetric(text, 'nodejs_eventloop_lag_max_seconds') };
  } catch {
    return null;
  }
}

/** Mean of the first and the last third of (t, v) samples after the ramp; growing when last − first > slack. */
export function trend(xs: readonly { t: number; v: number | null }[], fromT: number, toT: number, slack: number): Trend {
  const vals = xs.filter((x) => x.v !== null && x.t >= fromT && x.t <= toT) as { t: number; v: number }[];
  if (vals.length < 3) return { first: null, last: null, max: null, growing: false };
  const span = toT - fromT;
  const mean = (ys: { v: number }[]) => (ys.length ? ys.reduce((a, y) => a + y.v, 0) / ys.length : NaN);
  const first = mean(vals.filter((x) => x.t < fromT + span / 3));
  const last = mean(vals.filter((x) => x.t >= toT - span / 3));
  // A third without samples (e.g. no watermark stored yet on a fresh stack) cannot be judged.
  if (Number.isNaN(first) || Number.isNaN(last)) return { first: null, last: null, max: Math.max(...vals.map((x) => x.v)), growing: false };
  return { first, last, max: Math.max(...vals.map((x) => x.v)), growing: last - first > slack };
}

function runGenerator(ctx: StepContext, o: GeneratorOptions, onProgress: (p: SimulateProgress) => void): { child: ChildProcess; done: Promise<Extract<GeneratorMessage, { type: 'done' }>> } {
  // Own heap limit: the ledger of a long fast step holds millions of entries.
  const child = fork(GENERATOR, [], { execArgv: ['--import', 'tsx', '--max-old-space-size=8192'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  ctx.track(child);
  const done = new Promise<Extract<GeneratorMessage, { type: 'done' }>>((resolve, reject) => {
    let result: Extract<GeneratorMessage, { type: 'done' }> | undefined;
    child.on('message', (m: GeneratorMessage) => {
      if (m.type === 'progress') onProgress(m.progress);
      else if (m.type === 'done') result = m;
      else if (m.type === 'error') reject(new Error(`generator failed: ${m.message}`));
    });
    child.once('exit', (code, sig) => {
      ctx.track(undefined);
      if (result) resolve(result);
      else reject(new Error(`generator exited (${sig ?? `code ${code}`}) without a result`));
    });
  });
  child.send({ type: 'start', options: o });
  return { child, done };
}

export async function runStep(ctx: StepContext, shape: Shape, kind: StepResult['kind'], index: number, rate: number, seconds: number): Promise<StepResult> {
  const o = ctx.options;
  // Each step has ids of its own, so its counts can be checked against its own ledger alone.
  const ids = { advertiserId: 9000 + index, adIdBase: index * 100_000 + 1, campaignIdBase: index * 1000 + 1 };
  const apiKey = await ctx.apiKey(ids.advertiserId);
  const stepStart = Date.now();
  const series: { t: number; lag: number | null; delay: number | null; loopMaxS: number | null }[] = [];
  const probe0 = startAdminProbe(ctx.adminProbes);
  let unanswered = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const m = await metrics(ctx.adminMetricsUrl);
      if (m) series.push({ t: Date.now(), ...m });
      else unanswered++;
      await sleep(2000);
    }
  })();

  const cpu0: CpuSnapshot = snapshot(ctx.pids());
  // When the generator really began (a forked tsx process takes seconds to start on a busy box).
  let genStart: number | undefined;
  const gen = runGenerator(ctx, {
    url: ctx.gatewayUrl, keyId: ctx.keyId, secret: ctx.secret, rate, durationMs: seconds * 1000,
    batchSize: o.batch, concurrency: o.concurrency, seed: index * 7919, ads: o.ads, campaigns: o.campaigns,
    ...ids, advertiserIdBase: ids.advertiserId, shape,
  }, (p) => { genStart ??= Date.now() - p.elapsedMs; });
  let probe: Promise<ProbeResult> | undefined;
  if (kind === 'freshness') {
    // The probe has an advertiser, campaign and ad of its own: its clicks stay out of the step's ledger.
    const probeAdv = 9500 + index;
    const probeKey = await ctx.apiKey(probeAdv);
    probe = probeFreshness({
      gatewayUrl: ctx.gatewayUrl, apiUrl: ctx.apiUrl, apiKey: probeKey, keyId: ctx.keyId, secret: ctx.secret,
      adId: ids.adIdBase + 99_000, campaignId: ids.campaignIdBase + 900, advertiserId: probeAdv, seconds: seconds + 20,
    });
  }
  let done: Awaited<typeof gen.done>;
  try {
    done = await gen.done;
  } catch (err) {
    sampling = false;
    await sampler;
    await probe0.stop();
    throw err;
  }
  const genEnd = Date.now();
  // CPU is counted until the sink has caught up with the step (at most 30 s more).
  const lagBefore = series.find((s) => s.lag !== null)?.lag ?? 0;
  for (let waited = 0; waited < 30_000; waited += 2000) {
    const last = series.at(-1);
    if (last && last.t > genEnd && last.lag !== null && last.lag <= Math.max(lagBefore, rate)) break;
    await sleep(2000);
  }
  const cpu1: CpuSnapshot = snapshot(ctx.pids());
  sampling = false;
  await sampler;
  const responsiveness = await probe0.stop();
  const loopMaxes = series.map((x) => x.loopMaxS).filter((v): v is number => v !== null);
  responsiveness.servingLoopMaxMs = loopMaxes.length ? Math.round(Math.max(...loopMaxes) * 1000) : null;
  const fresh = probe ? await probe : undefined;

  const s = done.summary;
  const genSeconds = s.sendElapsedMs / 1000;
  const acceptedPerSec = genSeconds > 0 ? s.ledgered / genSeconds : 0;
  const t0 = genStart ?? stepStart;
  const rampEnd = t0 + Math.min(15_000, seconds * 100);
  const trendEnd = t0 + s.sendElapsedMs;
  const sinkLag = trend(series.map((x) => ({ t: x.t, v: x.lag })), rampEnd, trendEnd, o.lagSlackS * rate);
  const watermarkDelayS = trend(series.map((x) => ({ t: x.t, v: x.delay })), rampEnd, trendEnd, o.delaySlackS);

  ctx.note(`  ${shape} ${rate}/s: generated ${s.generated}, accepted ${s.ledgered} (${Math.round(acceptedPerSec)}/s), batch p99 ${Math.round(s.batchP99Ms)} ms; checking counts against the ledger`);
  const adIds = Array.from({ length: o.ads }, (_, i) => ids.adIdBase + i);
  const campaignIds = Array.from({ length: o.campaigns }, (_, i) => ids.campaignIdBase + i);
  const check = await drainAndCheck(
    () => ({ apiUrl: ctx.apiUrl, apiKey, advertiserId: ids.advertiserId, ledger: done.counts, adIds, campaignIds, fromMs: stepStart - 120_000, toMs: Date.now() + 600_000, concurrency: 2 }),
    { timeoutMs: o.drainS * 1000, stableMs: Math.min(60_000, o.drainS * 1000), note: ctx.note },
  );
  const exact = check.lost === 0 && check.duplicated === 0 && check.errors === 0 && s.unknown === 0;

  const why: string[] = [];
  if (acceptedPerSec < rate * (1 - o.tolerance)) {
    // Say which side fell short: the generator sends less when the gateway's answers are
    // slow (its requests in flight are bounded) but also when it is starved of CPU itself.
    const generatedPerSec = genSeconds > 0 ? s.generated / genSeconds : 0;
    why.push(generatedPerSec < rate * (1 - o.tolerance)
      ? `accepted ${Math.round(acceptedPerSec)}/s < offered ${rate}/s: the generator reached only ${Math.round(generatedPerSec)}/s (batch p99 ${Math.round(s.batchP99Ms)} ms, generator CPU ${s.cpuSeconds.toFixed(1)} s in ${genSeconds.toFixed(0)} s)`
      : `accepted ${Math.round(acceptedPerSec)}/s < offered ${rate}/s (generated ${Math.round(generatedPerSec)}/s; rejected ${s.rejected}, failed ${s.failed})`);
  }
  if (sinkLag.growing) why.push(`sink lag growing (${Math.round(sinkLag.first!)} → ${Math.round(sinkLag.last!)} records)`);
  if (watermarkDelayS.growing) why.push(`watermark delay growing (${watermarkDelayS.first!.toFixed(1)} → ${watermarkDelayS.last!.toFixed(1)} s)`);
  if (sinkLag.first === null) why.push('no sink lag samples');
  if (!exact) {
    // Out of time while the counts were still moving is a pipeline too slow to drain; a
    // stable difference is a wrong count.
    const what = check.drainMs >= o.drainS * 1000 ? `counts not equal to the ledger within ${o.drainS} s of draining` : 'counts wrong';
    why.push(`${what} (lost ${check.lost}, duplicated ${check.duplicated}, query errors ${check.errors}, unknown outcome ${s.unknown})`);
  }
  // The generator measures itself (it starts after the first snapshot and is gone by the second).
  const cpuSeconds = { ...Object.fromEntries(Object.keys(cpu1).map((k) => [k, cpu1[k]! - (cpu0[k] ?? 0)])), generator: s.cpuSeconds };
  const cpuMicrosPerClick = { ...microsPerClick(cpu0, cpu1, s.ledgered), generator: s.ledgered ? (s.cpuSeconds * 1e6) / s.ledgered : NaN };
  return {
    shape, kind, index, rate, advertiserId: ids.advertiserId, generator: s, acceptedPerSec,
    sinkLag, watermarkDelayS, adminUnanswered: unanswered, responsiveness,
    exact, lost: check.lost, duplicated: check.duplicated, queryErrors: check.errors, drainMs: check.drainMs,
    cpuSeconds, cpuMicrosPerClick,
    held: why.length === 0, why,
    ...(fresh ? { freshness: freshnessOf(fresh) } : {}),
  };
}

function freshnessOf(r: ProbeResult): Freshness {
  const p = (q: number) => Object.fromEntries([...r.visible].map(([g, xs]) => [g, pct(xs, q)]));
  return { probes: r.sent, accepted: r.accepted, p50Ms: p(50), p99Ms: p(99), finalP50Ms: pct(r.finals, 50), finalP99Ms: pct(r.finals, 99) };
}

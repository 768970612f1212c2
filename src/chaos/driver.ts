// The chaos driver: for each stack kind it starts one whole stack, then runs that kind's
// scenarios one after another. Per scenario: signed traffic from the simulator (its own
// id range and ledger; duplicates, retries, out-of-order real-time event times) flows
// before, during and after the fault; then the drain waits until every (ad, window) and
// (campaign, window) count at 1m/5m/1h, as each advertiser sees it, equals the ledger (or
// stops changing), and the checker reports.
//
// Time to recover (per fault): from the moment the fault was injected until the
// scenario's total count in the query API first grows beyond the highest value seen
// before the fault was cleared (cleared = the killed process is healthy again under the
// supervisor, or the paused/stopped engine was resumed/restarted). The scenario reports
// its slowest fault.
import { simulate, type SimulateResult } from '../simulate/simulator.ts';
import { Ledger } from '../simulate/ledger.ts';
import { adminRequest } from '../shared/admin-client.ts';
import { drainAndCheck, type CheckResult, type GranularityDiff } from './checker.ts';
import type { FaultRecord } from './faults.ts';
import { SCENARIOS, type Scenario, type ScenarioContext } from './scenarios.ts';
import { startChaosStack, type ChaosStack, type StackKind } from './stack.ts';
import { sleep } from './util.ts';
import type { Config } from '../shared/config.ts';

export interface ChaosRunOptions {
  /** Scenario names, in any order (run grouped by stack kind). */
  readonly scenarios: readonly string[];
  /** Distinct clicks per scenario, at least (traffic also lasts as long as the faults). */
  readonly clicks: number;
  /** Distinct clicks per second. */
  readonly rate: number;
  /** CI form: shorter pauses and drains. */
  readonly short: boolean;
  /** Keep temp dirs (logs, state); failing stacks are always kept. */
  readonly keep?: boolean;
  readonly note?: (line: string) => void;
  /** Called as each scenario finishes. */
  readonly onResult?: (r: ScenarioResult) => void;
}

export interface ScenarioResult {
  name: string;
  stack: StackKind;
  description: string;
  expectDifference: boolean;
  /** Distinct clicks generated. */
  sent: number;
  /** HTTP click sends incl. planned duplicates and retries. */
  sends: number;
  duplicateSends: number;
  retries: number;
  /** Distinct clicks the gateway answered 202 (accepted or duplicate): the ledger. */
  accepted: number;
  counted: number;
  lost: number;
  duplicated: number;
  /** Clicks without a definite answer (would make the ledger inexact). */
  unknown: number;
  rejected: number;
  failed: number;
  /** Slowest fault's time to recover, ms (null: did not recover while measured). */
  recoveryMs: number | null;
  faults: FaultRecord[];
  perGranularity: GranularityDiff[];
  samples: string[];
  queryErrors: number;
  trafficMs: number;
  drainMs: number;
  problems: string[];
  notes: string[];
  passed: boolean;
  error?: string;
  logFile?: string;
}

const STACK_ORDER: StackKind[] = ['embedded', 'server', 'negative'];
const ADS_PER_SCENARIO = 40;
const CAMPAIGNS_PER_SCENARIO = 8;
/** Scenario i's foreign advertiser is this + i (the catalogue's advertisers are 1000 + i). */
const FOREIGN_ADVERTISER_BASE = 5000;

export async function runChaosScenarios(o: ChaosRunOptions): Promise<ScenarioResult[]> {
  const note = o.note ?? (() => undefined);
  const chosen = o.scenarios.map((n) => {
    const s = SCENARIOS.find((x) => x.name === n);
    if (!s) throw new Error(`unknown scenario "${n}" (known: ${SCENARIOS.map((x) => x.name).join(', ')})`);
    return s;
  });
  const results: ScenarioResult[] = [];
  const groups: { kind: StackKind; config?: Partial<Config>; scenarios: Scenario[] }[] = [];
  for (const kind of STACK_ORDER) {
    for (const s of chosen.filter((x) => x.stack === kind)) {
      const same = groups.find((g) => g.kind === kind && JSON.stringify(g.config ?? {}) === JSON.stringify(s.stackConfig ?? {}));
      if (same) same.scenarios.push(s);
      else groups.push({ kind, config: s.stackConfig, scenarios: [s] });
    }
  }
  for (const { kind, config, scenarios: group } of groups) {
    note(`starting the ${kind} stack${config ? ` (with ${JSON.stringify(config)})` : ''} for: ${group.map((s) => s.name).join(', ')}`);
    let stack: ChaosStack;
    try {
      stack = await startChaosStack({ kind, keep: o.keep, note, config });
    } catch (err) {
      for (const s of group) {
        const r = failedResult(s, `stack did not start: ${(err as Error).message.slice(0, 2000)}`);
        results.push(r);
        o.onResult?.(r);
      }
      continue;
    }
    let anyFailed = false;
    const stackStart = Date.now();
    try {
      for (const s of group) {
        const index = SCENARIOS.indexOf(s) + 1;
        let r: ScenarioResult;
        try {
          r = await runScenario(stack, s, index, o, note);
        } catch (err) {
          r = failedResult(s, (err as Error).stack ?? String(err));
        }
        r.logFile = stack.logFile;
        anyFailed ||= !r.passed;
        if (s === group[group.length - 1] && kind !== 'negative') {
          // Conservation over every closed window the stack saw, all scenarios together: the
          // job's audit (accepted, duplicates, rejected) against what the API serves. The
          // negative control is skipped: its clicks are lost BEFORE Kafka, where only the
          // ledger can see them.
          await conservationCheck(stack, stackStart, r, note);
          anyFailed ||= !r.passed;
        }
        results.push(r);
        o.onResult?.(r);
      }
    } finally {
      if (anyFailed) note(`keeping ${stack.dataDir} for inspection (a scenario failed)`);
      await stack.stop(anyFailed || o.keep);
    }
  }
  return results;
}

async function conservationCheck(stack: ChaosStack, fromMs: number, r: ScenarioResult, note: (l: string) => void): Promise<void> {
  type Answer = { conservation?: { windows_checked: number; imbalanced: number; windows: unknown[]; unattributed: { accepted: number; rejected: number }; totals: Record<string, number> } };
  let last: Answer['conservation'];
  let lastError: Error | null = null;
  const from = Math.floor(fromMs / 60_000) * 60_000;
  // Until the stored watermark has closed a window and the audit has caught up (the sink
  // may still be draining after the last fault); bounded.
  for (let i = 0; i < 40; i++) {
    try {
      const a = (await adminRequest(stack.config, '/admin/reconcile', { from_ms: from, to_ms: Date.now() })) as Answer;
      last = a.conservation;
      lastError = null;
      if (last && last.windows_checked > 0 && last.imbalanced === 0 && last.unattributed.accepted === last.unattributed.rejected) break;
    } catch (err) {
      lastError = err as Error; // e.g. no complete window behind the watermark yet
    }
    await sleep(3000);
  }
  if (lastError && !last) {
    r.problems.push(`conservation check failed: ${lastError.message}`);
    r.passed = false;
    return;
  }
  if (!last) {
    r.problems.push('conservation check: no answer');
    r.passed = false;
    return;
  }
  const line = `conservation over ${last.windows_checked} closed windows of this stack: ${JSON.stringify(last.totals)}, dead letters ${last.unattributed.accepted}/${last.unattributed.rejected}`;
  note(line);
  r.notes.push(line);
  if (last.imbalanced > 0 || last.unattributed.accepted !== last.unattributed.rejected) {
    r.problems.push(`conservation: ${last.imbalanced} unbalanced windows, e.g. ${JSON.stringify(last.windows.slice(0, 3))}`);
    r.passed = false;
  }
  if (last.windows_checked === 0) {
    r.problems.push('conservation: no closed window to check');
    r.passed = false;
  }
}

function failedResult(s: Scenario, error: string): ScenarioResult {
  return {
    name: s.name, stack: s.stack, description: s.description, expectDifference: Boolean(s.expectDifference),
    sent: 0, sends: 0, duplicateSends: 0, retries: 0, accepted: 0, counted: 0, lost: 0, duplicated: 0, unknown: 0, rejected: 0, failed: 0,
    recoveryMs: null, faults: [], perGranularity: [], samples: [], queryErrors: 0, trafficMs: 0, drainMs: 0,
    problems: [error], notes: [], passed: false, error,
  };
}

async function campaignTotal(apiUrl: string, key: string): Promise<number | null> {
  try {
    const res = await fetch(`${apiUrl}/v1/campaigns`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(3000) });
    if (res.status !== 200) return null;
    const body = (await res.json()) as { campaigns: { total_clicks: number }[] };
    return body.campaigns.reduce((a, c) => a + c.total_clicks, 0);
  } catch {
    return null;
  }
}

async function runScenario(stack: ChaosStack, s: Scenario, index: number, o: ChaosRunOptions, note: (l: string) => void): Promise<ScenarioResult> {
  const advertiser = 1000 + index;
  const adIdBase = index * 100_000 + 1;
  const adIds = Array.from({ length: ADS_PER_SCENARIO }, (_, i) => adIdBase + i);
  const campaignIdBase = index * 1000 + 1;
  const apiKey = await stack.apiKey(advertiser);
  const ledger = Ledger.inMemory();
  const ids = {
    advertiser, foreignAdvertiser: FOREIGN_ADVERTISER_BASE + index, adIdBase, ads: ADS_PER_SCENARIO, campaignIdBase, campaigns: CAMPAIGNS_PER_SCENARIO,
    trafficStartMs: Date.now(),
  };
  const ctx: ScenarioContext = {
    stack, ledger, ids, short: o.short, faults: [], problems: [], notes: [], state: {},
    note: (l) => note(`  [${s.name}] ${l}`),
  };
  note(`scenario ${s.name}: ${s.description}`);

  // Progress samples for the time to recover.
  const samples: { t: number; total: number }[] = [];
  let monitoring = true;
  const monitor = (async () => {
    while (monitoring) {
      const total = await campaignTotal(stack.apiUrl, apiKey);
      if (total !== null) samples.push({ t: Date.now(), total });
      await sleep(250);
    }
  })();

  const started = Date.now();
  const stopTraffic = new AbortController();
  let generated = 0;
  const sim: Promise<SimulateResult> = simulate({
    url: stack.gatewayUrl, keyId: stack.keyId, secret: stack.secret, ledger,
    rate: o.rate, durationMs: 30 * 60_000, batchSize: 20, concurrency: 32,
    seed: index * 7919, ads: ADS_PER_SCENARIO, campaigns: CAMPAIGNS_PER_SCENARIO, advertisers: 1,
    adIdBase, campaignIdBase, advertiserIdBase: advertiser,
    duplicateShare: 0.05, maxAttempts: 100_000, ...(s.eventTime ? { eventTime: s.eventTime } : {}), ...(s.attribution ? { attribution: s.attribution(ctx) } : {}), requestTimeoutMs: 5000, backoffMaxMs: 2000, maxRetryAfterMs: 5000,
    drainTimeoutMs: 300_000, signal: stopTraffic.signal,
    onProgress: (p) => { generated = p.generated; }, progressIntervalMs: 200,
  });
  sim.catch(() => undefined);
  let result: SimulateResult;
  try {
    // Warm-up: the scenario's ads are flowing end to end before the fault.
    await sleep(s.warmupMs ?? (o.short ? 3000 : 8000));
    try {
      await s.inject(ctx);
    } catch (err) {
      ctx.problems.push(`fault injection failed: ${(err as Error).message}`);
    }
    const faultsDone = Date.now();
    const postMs = o.short ? 3000 : 8000;
    while ((generated < o.clicks || Date.now() - faultsDone < postMs) && Date.now() - started < 25 * 60_000) await sleep(100);
  } finally {
    stopTraffic.abort();
  }
  result = await sim;
  const trafficMs = Date.now() - started;
  note(`  [${s.name}] traffic done: ${result.generated} clicks in ${trafficMs} ms, ${ledger.size} accepted, ${result.counters.retries} retries, ${result.unknown.length} unknown; draining`);

  const from = started - (s.lookbackMs ?? 10 * 60_000);
  // Every advertiser the scenario's clicks were signed with is checked through its own key.
  const keys = new Map<number, string>();
  for (const e of ledger) if (e.advertiser_id !== advertiser && !keys.has(e.advertiser_id)) keys.set(e.advertiser_id, await stack.apiKey(e.advertiser_id));
  const campaignIds = Array.from({ length: CAMPAIGNS_PER_SCENARIO }, (_, i) => campaignIdBase + i);
  const check: CheckResult & { drainMs: number } = await drainAndCheck(
    () => ({ apiUrl: stack.apiUrl, apiKey, advertiserId: advertiser, keys, ledger, adIds, campaignIds, fromMs: from, toMs: Date.now() + 10 * 60_000 }),
    { timeoutMs: o.short ? 150_000 : s.drainTimeoutMs ?? 300_000, stableMs: s.expectDifference ? 20_000 : o.short ? 60_000 : s.drainStableMs ?? 60_000, note },
  );
  await sleep(600);
  monitoring = false;
  await monitor;

  for (const f of ctx.faults) {
    const before = samples.filter((x) => x.t <= f.clearedAt).reduce((m, x) => Math.max(m, x.total), -1);
    const after = samples.find((x) => x.t >= f.clearedAt && x.total > before);
    f.recoveryMs = after ? Math.max(0, after.t - f.at) : null;
  }
  if (s.verify) {
    try {
      await s.verify(ctx);
    } catch (err) {
      ctx.problems.push(`verification failed: ${(err as Error).message}`);
    }
  }
  const recoveries = ctx.faults.map((f) => f.recoveryMs);
  const recoveryMs = recoveries.length === 0 || recoveries.some((x) => x === null || x === undefined) ? null : Math.max(...(recoveries as number[]));
  const exact = check.lost === 0 && check.duplicated === 0;
  // The negative control is detected when acknowledged clicks are missing: that is what
  // its unsafe setting causes. Clicks of unknown outcome are outside the ledger (they are
  // reported below), so they cannot fake a loss.
  const passed = s.expectDifference
    ? check.lost > 0
    : exact && check.errors === 0 && result.unknown.length === 0 && ctx.problems.length === 0 && ctx.faults.length > 0 && recoveryMs !== null;
  if (!s.expectDifference && recoveryMs === null && ctx.faults.length) ctx.problems.push('no progress measured after a fault was cleared');
  if (result.unknown.length) ctx.problems.push(`${result.unknown.length} clicks without a definite answer (ledger inexact)`);
  return {
    name: s.name, stack: s.stack, description: s.description, expectDifference: Boolean(s.expectDifference),
    sent: result.generated, sends: result.counters.clicksSent, duplicateSends: result.duplicateSends, retries: result.counters.retries,
    accepted: ledger.size, counted: check.counted, lost: check.lost, duplicated: check.duplicated,
    unknown: result.unknown.length, rejected: result.rejected, failed: result.failed,
    recoveryMs, faults: ctx.faults, perGranularity: check.perGranularity, samples: check.samples, queryErrors: check.errors,
    trafficMs, drainMs: check.drainMs, problems: ctx.problems, notes: ctx.notes, passed,
  };
}

/** The report table. */
export function renderTable(results: readonly ScenarioResult[]): string {
  const head = ['scenario', 'sent', 'accepted', 'counted', 'lost', 'duplicated', 'recovery', 'result'];
  const rows = results.map((r) => [
    r.name, String(r.sent), String(r.accepted), String(r.counted), String(r.lost), String(r.duplicated),
    r.recoveryMs === null ? '-' : `${(r.recoveryMs / 1000).toFixed(1)} s`,
    r.expectDifference ? (r.passed ? 'DETECTED (ok)' : 'NOT DETECTED') : r.passed ? 'PASS' : 'FAIL',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  const out = [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)];
  for (const r of results) {
    const extra = [...r.notes.map((n) => `note: ${n}`), ...r.problems.map((p) => `PROBLEM: ${p}`), ...(r.passed && !r.expectDifference ? [] : r.samples.map((x) => `diff: ${x}`))];
    if (r.faults.length) extra.unshift(`faults: ${r.faults.map((f) => `${f.what} (${f.recoveryMs == null ? 'no recovery measured' : `${(f.recoveryMs / 1000).toFixed(1)} s`})`).join('; ')}`);
    if (extra.length) out.push(`\n${r.name}:`, ...extra.map((e) => `  ${e}`));
  }
  return out.join('\n') + '\n';
}

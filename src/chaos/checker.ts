// The checker: every (ad, window) count of one scenario's id range at 1m, 5m and 1h, as
// the query API reports it, against that scenario's ground-truth ledger.
//   lost       = Σ over windows of max(0, ledger − api)
//   duplicated = Σ over windows of max(0, api − ledger)
//   counted    = Σ of api counts (1m windows; each click counted once per granularity)
// Open windows are compared too (early firings carry full provisional counts), so the
// drain polls until everything is equal, or until nothing has changed for a while.
import type { Ledger } from '../simulate/ledger.ts';
import { windowStartMs, type Granularity } from '../shared/window-math.ts';
import { sleep } from './util.ts';

export const GRANULARITIES: Granularity[] = ['1m', '5m', '1h'];
const HOUR = 3_600_000;

export interface GranularityDiff {
  granularity: Granularity;
  expected: number;
  counted: number;
  lost: number;
  duplicated: number;
  windowsDiffering: number;
}

export interface CheckResult {
  /** Σ ledger (= accepted distinct clicks). */
  expected: number;
  /** Σ API at 1m. */
  counted: number;
  /** Worst over the three granularities. */
  lost: number;
  duplicated: number;
  perGranularity: GranularityDiff[];
  /** First few differing windows, for the report. */
  samples: string[];
  /** Query failures (HTTP status other than 200, network errors). */
  errors: number;
}

export interface CheckTarget {
  apiUrl: string;
  apiKey: string;
  ledger: Ledger;
  /** The scenario's ad ids (the whole range, also ads with no accepted click). */
  adIds: readonly number[];
  /** Query range [fromMs, toMs), hour-aligned by the checker. */
  fromMs: number;
  toMs: number;
}

async function getJson(url: string, key: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, body: await res.json().catch(() => null) };
}

export async function check(t: CheckTarget): Promise<CheckResult> {
  const from = Math.floor(t.fromMs / HOUR) * HOUR;
  const to = Math.ceil(t.toMs / HOUR) * HOUR;
  const perGranularity: GranularityDiff[] = [];
  const samples: string[] = [];
  let errors = 0;
  for (const g of GRANULARITIES) {
    const want = new Map<string, number>();
    for (const e of t.ledger) {
      const k = `${e.ad_id}|${windowStartMs(e.timestamp, g)}`;
      want.set(k, (want.get(k) ?? 0) + 1);
    }
    const got = new Map<string, number>();
    await Promise.all(chunked(t.adIds, 8).map(async (ads) => {
      for (const ad of ads) {
        try {
          const { status, body } = await getJson(`${t.apiUrl}/v1/ads/${ad}/clicks?from=${from}&to=${to}&granularity=${g}`, t.apiKey);
          if (status === 404) continue; // an ad the store has never seen: no clicks
          if (status !== 200) { errors++; continue; }
          for (const p of body.points as { window_start: string; clicks: number }[]) {
            if (p.clicks) got.set(`${ad}|${Date.parse(p.window_start)}`, p.clicks);
          }
        } catch {
          errors++;
        }
      }
    }));
    const d: GranularityDiff = { granularity: g, expected: 0, counted: 0, lost: 0, duplicated: 0, windowsDiffering: 0 };
    for (const [k, n] of want) {
      d.expected += n;
      const a = got.get(k) ?? 0;
      if (a < n) d.lost += n - a;
      if (a > n) d.duplicated += a - n;
      if (a !== n) {
        d.windowsDiffering++;
        if (samples.length < 8) samples.push(`${g} ad|window ${k}: api ${a} ledger ${n}`);
      }
    }
    for (const [k, a] of got) {
      d.counted += a;
      if (want.has(k)) continue;
      d.duplicated += a;
      d.windowsDiffering++;
      if (samples.length < 8) samples.push(`${g} ad|window ${k}: api ${a} ledger 0`);
    }
    perGranularity.push(d);
  }
  return {
    expected: t.ledger.size,
    counted: perGranularity[0]!.counted,
    lost: Math.max(...perGranularity.map((d) => d.lost)),
    duplicated: Math.max(...perGranularity.map((d) => d.duplicated)),
    perGranularity,
    samples,
    errors,
  };
}

function chunked<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = Array.from({ length: n }, () => []);
  xs.forEach((x, i) => out[i % n]!.push(x));
  return out.filter((c) => c.length);
}

export interface DrainOptions {
  /** Give up after this long. */
  timeoutMs: number;
  /** Stop early when counts have not changed for this long (a stable difference is final). */
  stableMs: number;
  everyMs?: number;
  note?: (line: string) => void;
}

/** Re-checks until exact, stable, or timed out; returns the last result and how long it took. */
export async function drainAndCheck(t: () => CheckTarget, o: DrainOptions): Promise<CheckResult & { drainMs: number }> {
  const t0 = Date.now();
  let last: CheckResult | undefined;
  let lastSig = '';
  let sigSince = Date.now();
  for (;;) {
    const r = await check(t());
    const sig = r.perGranularity.map((d) => `${d.counted}`).join('/');
    if (sig !== lastSig || r.errors) {
      lastSig = sig;
      sigSince = Date.now();
    }
    last = r;
    const exact = r.lost === 0 && r.duplicated === 0 && r.errors === 0;
    if (exact) break;
    if (Date.now() - sigSince >= o.stableMs) break;
    if (Date.now() - t0 >= o.timeoutMs) break;
    o.note?.(`  draining: expected ${r.expected}, counted ${r.counted}, lost ${r.lost}, duplicated ${r.duplicated}${r.errors ? `, ${r.errors} query errors` : ''}`);
    await sleep(o.everyMs ?? 3000);
  }
  return { ...last, drainMs: Date.now() - t0 };
}

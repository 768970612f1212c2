// The checker: one scenario's counts as the query API reports them, against that
// scenario's ground-truth ledger, at 1m, 5m and 1h, along two dimensions:
//   per (ad, window)        GET /v1/ads/{id}/clicks
//   per (campaign, window)  GET /v1/campaigns/{id}/clicks
// and always as one advertiser sees them: each advertiser's key asks for every ad and
// campaign id of the scenario, and must see exactly the ledger's clicks signed with that
// advertiser id (docs/operations.md, "Attribution"). Per ad alone misses a click counted
// under the wrong campaign of the right ad (equal per-ad totals); per campaign alone
// misses two ads of one campaign trading clicks. The numbers per dimension:
//   lost       = Σ over windows of max(0, ledger − api)
//   duplicated = Σ over windows of max(0, api − ledger)
//   counted    = Σ of api counts (per ad, 1m windows; each click counted once per granularity)
// Open windows are compared too (early firings carry full provisional counts), so the
// drain polls until everything is equal, or until nothing has changed for a while.
import type { LedgerEntry } from '../simulate/ledger.ts';
import { windowStartMs, type Granularity } from '../shared/window-math.ts';
import { sleep } from './util.ts';

export const GRANULARITIES: Granularity[] = ['1m', '5m', '1h'];
export type Dimension = 'ad' | 'campaign';
export const DIMENSIONS: Dimension[] = ['ad', 'campaign'];
const HOUR = 3_600_000;
const MAX_SAMPLES = 8;

export interface GranularityDiff {
  granularity: Granularity;
  dimension: Dimension;
  expected: number;
  counted: number;
  lost: number;
  duplicated: number;
  windowsDiffering: number;
}

export interface CheckResult {
  /** Σ ledger (= accepted distinct clicks). */
  expected: number;
  /** Σ API per ad at 1m, over every advertiser's view. */
  counted: number;
  /** Worst over the granularities and dimensions. */
  lost: number;
  duplicated: number;
  perGranularity: GranularityDiff[];
  /** First few differing windows, for the report. */
  samples: string[];
  /** Query failures (HTTP status other than 200 and 404, network errors). */
  errors: number;
}

export interface CheckTarget {
  apiUrl: string;
  /** The scenario's advertiser's API key. */
  apiKey: string;
  /** Further advertisers' keys (advertiser id → key): every advertiser the ledger has clicks for needs one. */
  keys?: ReadonlyMap<number, string>;
  /** The advertiser `apiKey` belongs to (default: the ledger's only advertiser, if there is one). */
  advertiserId?: number;
  /** The ledger, or its counts made once by countLedger (e.g. in another process). */
  ledger: Iterable<LedgerEntry> | LedgerCounts;
  /** The scenario's ad ids (the whole range, also ads with no accepted click). */
  adIds: readonly number[];
  /** The scenario's campaign ids (the whole range); ids the ledger names are added. */
  campaignIds?: readonly number[];
  /** Query range [fromMs, toMs), hour-aligned by the checker. */
  fromMs: number;
  toMs: number;
  /** Queries in flight at once (default 8); an embedded store answers one at a time. */
  concurrency?: number;
}

/** A 503 (the store is busy: the API sheds load) is retried after its Retry-After, a few times. */
async function getJson(url: string, key: string): Promise<{ status: number; body: any }> {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(url, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(15_000) });
    if (res.status !== 503 || attempt >= 5) return { status: res.status, body: await res.json().catch(() => null) };
    await res.arrayBuffer().catch(() => undefined);
    await sleep(Math.min(5000, 1000 * Math.max(1, Number(res.headers.get('retry-after')) || 1)));
  }
}

interface View { advertiser: number; key: string }

/**
 * What the checker compares with, made from a ledger in one pass: the expected clicks per
 * `${advertiser}|${id}|${window_start}` for each `${dimension}|${granularity}`. Plain JSON,
 * so a generator process with millions of ledger entries can send just this.
 */
export interface LedgerCounts {
  readonly kind: 'counts';
  readonly total: number;
  readonly advertisers: readonly number[];
  readonly adIds: readonly number[];
  readonly campaignIds: readonly number[];
  readonly want: Readonly<Record<string, readonly (readonly [string, number])[]>>;
}

export function countLedger(ledger: Iterable<LedgerEntry>): LedgerCounts {
  const maps = new Map<string, Map<string, number>>();
  for (const dim of DIMENSIONS) for (const g of GRANULARITIES) maps.set(`${dim}|${g}`, new Map());
  const advertisers = new Set<number>();
  const ads = new Set<number>();
  const campaigns = new Set<number>();
  let total = 0;
  for (const e of ledger) {
    total++;
    advertisers.add(e.advertiser_id);
    ads.add(e.ad_id);
    campaigns.add(e.campaign_id);
    for (const dim of DIMENSIONS) {
      for (const g of GRANULARITIES) {
        const m = maps.get(`${dim}|${g}`)!;
        const k = `${e.advertiser_id}|${dim === 'ad' ? e.ad_id : e.campaign_id}|${windowStartMs(e.timestamp, g)}`;
        m.set(k, (m.get(k) ?? 0) + 1);
      }
    }
  }
  return {
    kind: 'counts', total, advertisers: [...advertisers], adIds: [...ads], campaignIds: [...campaigns],
    want: Object.fromEntries([...maps].map(([k, m]) => [k, [...m]])),
  };
}

const isCounts = (l: CheckTarget['ledger']): l is LedgerCounts => (l as LedgerCounts).kind === 'counts';

function viewsOf(t: CheckTarget, inLedger: ReadonlySet<number>): { views: View[]; unkeyed: number[] } {
  const keys = new Map(t.keys ?? []);
  let own = t.advertiserId;
  if (own === undefined) {
    const notKeyed = [...inLedger].filter((a) => !keys.has(a));
    own = notKeyed.length === 1 ? notKeyed[0] : inLedger.size === 0 ? -1 : undefined;
  }
  if (own !== undefined) keys.set(own, t.apiKey);
  const unkeyed = [...inLedger].filter((a) => !keys.has(a));
  return { views: [...keys].map(([advertiser, key]) => ({ advertiser, key })), unkeyed };
}

export async function check(t: CheckTarget): Promise<CheckResult> {
  const from = Math.floor(t.fromMs / HOUR) * HOUR;
  const to = Math.ceil(t.toMs / HOUR) * HOUR;
  const counts = isCounts(t.ledger) ? t.ledger : countLedger(t.ledger);
  const { views, unkeyed } = viewsOf(t, new Set(counts.advertisers));
  const ids: Record<Dimension, number[]> = {
    ad: [...new Set([...t.adIds, ...counts.adIds])],
    campaign: [...new Set([...(t.campaignIds ?? []), ...counts.campaignIds])],
  };
  const perGranularity: GranularityDiff[] = [];
  // A driver bug, not a pipeline fault: the clicks of an advertiser nobody asks for would go unchecked.
  if (unkeyed.length) throw new Error(`the ledger has clicks of advertiser(s) ${unkeyed.join(', ')} but the check has no API key for them`);
  const samples: string[] = [];
  let errors = 0;
  for (const dim of DIMENSIONS) {
    for (const g of GRANULARITIES) {
      // Keys: advertiser|id|window_start.
      const want = new Map<string, number>(counts.want[`${dim}|${g}`]);
      const got = new Map<string, number>();
      const jobs = views.flatMap((v) => ids[dim].map((id) => ({ v, id })));
      await Promise.all(chunked(jobs, t.concurrency ?? 8).map(async (mine) => {
        for (const { v, id } of mine) {
          try {
            const path = dim === 'ad' ? 'ads' : 'campaigns';
            const { status, body } = await getJson(`${t.apiUrl}/v1/${path}/${id}/clicks?from=${from}&to=${to}&granularity=${g}`, v.key);
            if (status === 404) continue; // nothing of this advertiser under that id: no clicks
            if (status !== 200) { errors++; continue; }
            for (const p of body.points as { window_start: string; clicks: number }[]) {
              if (p.clicks) got.set(`${v.advertiser}|${id}|${Date.parse(p.window_start)}`, p.clicks);
            }
          } catch {
            errors++;
          }
        }
      }));
      const d: GranularityDiff = { granularity: g, dimension: dim, expected: 0, counted: 0, lost: 0, duplicated: 0, windowsDiffering: 0 };
      const sample = (k: string, api: number, ledger: number) => {
        if (samples.length < MAX_SAMPLES) samples.push(`${g} advertiser|${dim}|window ${k}: api ${api} ledger ${ledger}`);
      };
      for (const [k, n] of want) {
        d.expected += n;
        const a = got.get(k) ?? 0;
        if (a < n) d.lost += n - a;
        if (a > n) d.duplicated += a - n;
        if (a !== n) {
          d.windowsDiffering++;
          sample(k, a, n);
        }
      }
      for (const [k, a] of got) {
        d.counted += a;
        if (want.has(k)) continue;
        d.duplicated += a;
        d.windowsDiffering++;
        sample(k, a, 0);
      }
      perGranularity.push(d);
    }
  }
  return {
    expected: counts.total,
    counted: perGranularity.find((d) => d.dimension === 'ad' && d.granularity === '1m')!.counted,
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

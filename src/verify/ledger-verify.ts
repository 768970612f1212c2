// Compares ground-truth ledgers with what the public query API serves: every
// (campaign, window) and (ad, window) count at 1m, 5m and 1h over the ledgers' time span,
// each read with the API key of the advertiser the clicks were signed for. Windows the
// ledger has no click in must serve 0, so extra clicks are found as well as missing ones.
// Only the public API is used: what this says is what an advertiser would see.
import type { LedgerEntry } from '../simulate/ledger.ts';
import { GRANULARITY_MS, windowStartMs, type Granularity } from '../shared/window-math.ts';

export const VERIFY_GRANULARITIES: readonly Granularity[] = ['1m', '5m', '1h'];
const HOUR = 3_600_000;
/** API.md: at most 10,000 windows per response. */
const MAX_WINDOWS = 10_000;

export interface Mismatch {
  readonly kind: 'campaign' | 'ad';
  readonly id: number;
  readonly advertiserId: number;
  readonly granularity: Granularity;
  /** ISO window start; absent when the whole series could not be read. */
  readonly windowStart?: string;
  /** Served count; null when the series could not be read (status in `problem`). */
  readonly api: number | null;
  readonly ledger: number;
  /** Window ends at or before complete_before (the pipeline has closed it). */
  readonly final?: boolean;
  readonly problem?: string;
}

export interface VerifyReport {
  readonly clicks: number;
  readonly advertisers: number;
  readonly campaigns: number;
  readonly ads: number;
  /** Every (campaign|ad, granularity, window) compared. */
  readonly windowsCompared: number;
  /** Of those, windows still open (after complete_before): they may still change. */
  readonly windowsOpen: number;
  readonly mismatches: readonly Mismatch[];
  /** Ledger clicks in mismatching windows minus served (≥ 0 sums, over every granularity). */
  readonly missing: number;
  readonly extra: number;
  readonly fromMs: number;
  readonly toMs: number;
  /** Lowest complete_before seen (ISO), if any answer carried one. */
  readonly completeBefore: string | null;
}

export type ApiGet = (path: string, apiKey: string) => Promise<{ status: number; body: unknown; retryAfterMs?: number }>;

export interface VerifyOptions {
  readonly entries: Iterable<LedgerEntry>;
  /** API key of an advertiser (every advertiser in the ledger needs one). */
  readonly keyFor: (advertiserId: number) => string;
  readonly get: ApiGet;
  readonly granularities?: readonly Granularity[];
  /** Requests in flight at once (default 8). */
  readonly concurrency?: number;
  /** Tries per request on 429/503/network errors (default 8). */
  readonly maxAttempts?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

interface Series {
  kind: 'campaign' | 'ad';
  id: number;
  advertiserId: number;
  /** window key `${g}|${windowStartMs}` → ledger count */
  want: Map<string, number>;
}

/** One HTTP GET through fetch, with the answer's Retry-After (seconds) in ms. */
export function fetchGet(apiUrl: string, timeoutMs = 15_000): ApiGet {
  const base = apiUrl.replace(/\/+$/, '');
  return async (path, apiKey) => {
    const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${apiKey}` }, signal: AbortSignal.timeout(timeoutMs) });
    const ra = Number(res.headers.get('retry-after'));
    return { status: res.status, body: await res.json().catch(() => null), retryAfterMs: Number.isFinite(ra) && ra > 0 ? ra * 1000 : undefined };
  };
}

export async function verifyLedger(o: VerifyOptions): Promise<VerifyReport> {
  const gs = o.granularities ?? VERIFY_GRANULARITIES;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const series = new Map<string, Series>();
  let clicks = 0;
  let minTs = Infinity;
  let maxTs = -Infinity;
  const add = (kind: Series['kind'], id: number, adv: number, e: LedgerEntry) => {
    const k = `${kind}|${adv}|${id}`;
    let s = series.get(k);
    if (!s) series.set(k, (s = { kind, id, advertiserId: adv, want: new Map() }));
    for (const g of gs) {
      const wk = `${g}|${windowStartMs(e.timestamp, g)}`;
      s.want.set(wk, (s.want.get(wk) ?? 0) + 1);
    }
  };
  for (const e of o.entries) {
    clicks++;
    minTs = Math.min(minTs, e.timestamp);
    maxTs = Math.max(maxTs, e.timestamp);
    add('campaign', e.campaign_id, e.advertiser_id, e);
    add('ad', e.ad_id, e.advertiser_id, e);
  }
  const all = [...series.values()];
  const empty = { clicks, advertisers: 0, campaigns: 0, ads: 0, windowsCompared: 0, windowsOpen: 0, mismatches: [], missing: 0, extra: 0, fromMs: 0, toMs: 0, completeBefore: null };
  if (clicks === 0) return empty;
  const fromMs = Math.floor(minTs / HOUR) * HOUR;
  const toMs = (Math.floor(maxTs / HOUR) + 1) * HOUR;

  // Each (series, granularity, chunk of ≤ 10,000 hour-aligned windows) is one request.
  const jobs: { s: Series; g: Granularity; from: number; to: number }[] = [];
  for (const s of all) {
    for (const g of gs) {
      const step = Math.floor((MAX_WINDOWS * GRANULARITY_MS[g]) / HOUR) * HOUR;
      for (let f = fromMs; f < toMs; f += step) jobs.push({ s, g, from: f, to: Math.min(toMs, f + step) });
    }
  }

  const mismatches: Mismatch[] = [];
  let windowsCompared = 0;
  let windowsOpen = 0;
  let missing = 0;
  let extra = 0;
  let completeBefore: number | null = null;
  const attempts = o.maxAttempts ?? 8;

  const runJob = async ({ s, g, from, to }: (typeof jobs)[number]) => {
    const path = `/v1/${s.kind === 'campaign' ? 'campaigns' : 'ads'}/${s.id}/clicks?from=${from}&to=${to}&granularity=${g}`;
    let key: string;
    try {
      key = o.keyFor(s.advertiserId);
    } catch (err) {
      mismatches.push({ kind: s.kind, id: s.id, advertiserId: s.advertiserId, granularity: g, api: null, ledger: sumWant(s, g, from, to), problem: (err as Error).message });
      return;
    }
    let answer: Awaited<ReturnType<ApiGet>> | undefined;
    let problem = '';
    for (let i = 1; i <= attempts; i++) {
      try {
        answer = await o.get(path, key);
      } catch (err) {
        answer = undefined;
        problem = (err as Error).message;
      }
      if (answer && answer.status !== 429 && answer.status !== 503) break;
      if (answer) problem = `HTTP ${answer.status}`;
      if (i < attempts) await sleep(Math.min(10_000, answer?.retryAfterMs ?? 250 * 2 ** (i - 1)));
    }
    if (!answer || answer.status !== 200) {
      const code = (answer?.body as { error?: { code?: string } } | null)?.error?.code;
      mismatches.push({
        kind: s.kind, id: s.id, advertiserId: s.advertiserId, granularity: g, api: null, ledger: sumWant(s, g, from, to),
        problem: answer ? `HTTP ${answer.status}${code ? ` ${code}` : ''}` : problem || 'no answer',
      });
      return;
    }
    const body = answer.body as { points?: { window_start: string; clicks: number }[]; complete_before?: string | null };
    const cb = body.complete_before ? Date.parse(body.complete_before) : NaN;
    if (Number.isFinite(cb)) completeBefore = completeBefore === null ? cb : Math.min(completeBefore, cb);
    const seen = new Set<string>();
    for (const p of body.points ?? []) {
      const ws = Date.parse(p.window_start);
      const wk = `${g}|${ws}`;
      seen.add(wk);
      const want = s.want.get(wk) ?? 0;
      const final = Number.isFinite(cb) && ws + GRANULARITY_MS[g] <= cb;
      windowsCompared++;
      if (!final) windowsOpen++;
      if (p.clicks !== want) {
        if (p.clicks < want) missing += want - p.clicks;
        else extra += p.clicks - want;
        mismatches.push({ kind: s.kind, id: s.id, advertiserId: s.advertiserId, granularity: g, windowStart: p.window_start, api: p.clicks, ledger: want, final });
      }
    }
    // A dense series must hold every window of the range; one the API left out is a difference too.
    for (const [wk, want] of s.want) {
      const [wg, wsRaw] = wk.split('|');
      const ws = Number(wsRaw);
      if (wg !== g || ws < from || ws >= to || seen.has(wk)) continue;
      missing += want;
      mismatches.push({ kind: s.kind, id: s.id, advertiserId: s.advertiserId, granularity: g, windowStart: new Date(ws).toISOString().replace('.000Z', 'Z'), api: null, ledger: want, problem: 'window missing from the series' });
    }
  };

  let next = 0;
  const worker = async () => {
    while (next < jobs.length) await runJob(jobs[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency ?? 8, jobs.length)) }, worker));

  mismatches.sort((a, b) => a.kind.localeCompare(b.kind) || a.id - b.id || a.granularity.localeCompare(b.granularity) || (a.windowStart ?? '').localeCompare(b.windowStart ?? ''));
  return {
    clicks,
    advertisers: new Set(all.map((s) => s.advertiserId)).size,
    campaigns: all.filter((s) => s.kind === 'campaign').length,
    ads: all.filter((s) => s.kind === 'ad').length,
    windowsCompared, windowsOpen, mismatches, missing, extra, fromMs, toMs,
    completeBefore: completeBefore === null ? null : new Date(completeBefore).toISOString().replace('.000Z', 'Z'),
  };
}

function sumWant(s: Series, g: Granularity, from: number, to: number): number {
  let n = 0;
  for (const [wk, c] of s.want) {
    const [wg, ws] = wk.split('|');
    if (wg === g && Number(ws) >= from && Number(ws) < to) n += c;
  }
  return n;
}

export function formatMismatch(m: Mismatch): string {
  const what = `${m.kind} ${m.id} (advertiser ${m.advertiserId}) ${m.granularity}`;
  if (m.windowStart === undefined) return `${what}: ${m.problem ?? 'unreadable'} (ledger ${m.ledger} clicks in range)`;
  const api = m.api === null ? m.problem ?? 'none' : String(m.api);
  return `${what} ${m.windowStart}: api ${api}, ledger ${m.ledger}${m.api !== null ? ` (${m.api > m.ledger ? '+' : ''}${m.api - m.ledger})` : ''}${m.final === false ? ' [window still open]' : ''}`;
}

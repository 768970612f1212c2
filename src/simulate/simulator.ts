// The programmatic simulator: paced, bounded generation of signed clicks, sent through
// the retrying client, with every accepted click written once to the ledger. The e2e
// suite calls `simulate()` directly; `adclick simulate` wraps it.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../shared/logger.ts';
import { signClick } from '../shared/signature.ts';
import { ClickClient, type ClickOutcome, type ClientCounters, type OutgoingClick } from './click-client.ts';
import { Ledger } from './ledger.ts';
import { TokenBucket } from './token-bucket.ts';
import { newRunId, TrafficModel, type AttributionFn, type ClickPayload, type EventTimeFn } from './traffic-model.ts';

export interface SimulateOptions {
  /** Gateway base URL. */
  url: string;
  keyId: string;
  secret: string;
  /** Distinct clicks per second (duplicates and retries come on top). Default 500. */
  rate?: number;
  /** Stop generating after this long. Default 60 s when `count` is not given either. */
  durationMs?: number;
  /** Stop after this many distinct clicks. With durationMs too, whichever comes first. */
  count?: number;
  /** 0 (default): POST /v1/clicks per click; N: POST /v1/clicks/batch with up to N clicks. */
  batchSize?: number;
  /** Longest a partial batch waits for more clicks. Default: time to fill it at `rate`, 20–1000 ms. */
  batchLingerMs?: number;
  seed?: number; // default 1
  /** Goes into every impression id; default fresh per run (see newRunId). */
  runId?: string;
  ads?: number; // 5000
  campaigns?: number; // 500
  advertisers?: number; // 50
  adIdBase?: number;
  campaignIdBase?: number;
  advertiserIdBase?: number;
  zipfExponent?: number; // 1.1
  users?: number; // 100 000
  maxDelayMs?: number; // 1000
  outOfOrderShare?: number; // 0.05
  outOfOrderMaxMs?: number; // 20 000
  duplicateShare?: number; // 0.03
  duplicateDelayMs?: readonly [number, number]; // [50, 3000]
  /** Overrides event times, e.g. `(seq) => windowStart + seq` to fill a chosen window. */
  eventTime?: EventTimeFn;
  /** Re-signs a picked ad for another campaign or advertiser (see AttributionFn). */
  attribution?: AttributionFn;
  /** Wall clock handed to the traffic model (event times). Default Date.now. */
  now?: () => number;
  /** Ledger to record into (kept open). Else `ledgerPath` is opened (and closed at the end), else in memory. */
  ledger?: Ledger;
  ledgerPath?: string;
  concurrency?: number; // 64
  maxAttempts?: number; // 8
  requestTimeoutMs?: number; // 5000
  backoffBaseMs?: number; // 100
  backoffMaxMs?: number; // 5000
  maxRetryAfterMs?: number; // 30 000
  /** Most clicks sent-but-unresolved at once; generation waits beyond it. */
  maxPending?: number;
  /** Generation time saved up while the loop did not run (a busy box), made up at once later. Default 50 ms. */
  burstMs?: number;
  /** After generation stops, how long retries may still run. Default 30 s. */
  drainTimeoutMs?: number;
  /** Stops generation early (then drains as usual). */
  signal?: AbortSignal;
  onProgress?: (p: SimulateProgress) => void;
  progressIntervalMs?: number; // 500
  logger?: Logger;
}

export interface SimulateProgress {
  elapsedMs: number;
  generated: number;
  /** Click sends per second over the last interval (retries and duplicates included). */
  sendRate: number;
  accepted: number;
  duplicate: number;
  rejected: number;
  retries: number;
  errors: number;
  pending: number;
  p99Ms: number;
}

export interface SimulateResult {
  runId: string;
  seed: number;
  url: string;
  batchSize: number;
  ledger: Ledger;
  ledgerPath: string | null;
  /** Distinct clicks generated. */
  generated: number;
  /** Planned duplicate sends made (identical body sent a second time). */
  duplicateSends: number;
  /** Distinct clicks this run added to the ledger. */
  ledgered: number;
  /** Distinct clicks that ended rejected / failed (definitely not accepted). */
  rejected: number;
  failed: number;
  /** Clicks that may or may not have been accepted (no clear answer before giving up).
   * The ledger cannot be exact while this is non-empty. */
  unknown: ClickPayload[];
  counters: ClientCounters;
  latency: { count: number; p50Ms: number; p99Ms: number; maxMs: number; meanMs: number };
  stoppedBy: 'duration' | 'count' | 'signal';
  /** Generation phase, then the whole run including the drain. */
  sendElapsedMs: number;
  elapsedMs: number;
  /** generated / sendElapsed. */
  clicksPerSec: number;
  requestsPerSec: number;
}

interface Scheduled {
  dueAt: number;
  item: OutgoingClick;
}

/** Min-heap on dueAt (duplicate sends waiting for their time). */
class DueHeap {
  private readonly a: Scheduled[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): Scheduled | undefined {
    return this.a[0];
  }
  push(s: Scheduled): void {
    const a = this.a;
    a.push(s);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.dueAt <= a[i]!.dueAt) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): Scheduled | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]!.dueAt < a[m]!.dueAt) m = l;
        if (r < a.length && a[r]!.dueAt < a[m]!.dueAt) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

export function signedBody(click: ClickPayload, keyId: string, secret: string): string {
  const signature = signClick({ ...click, key_id: keyId }, secret);
  return JSON.stringify({ ...click, key_id: keyId, signature });
}

function positiveInt(name: string, v: number | undefined, min = 1): void {
  if (v !== undefined && !(Number.isSafeInteger(v) && v >= min)) throw new Error(`${name} must be an integer >= ${min}, got ${v}`);
}

export async function simulate(opts: SimulateOptions): Promise<SimulateResult> {
  const rate = opts.rate ?? 500;
  if (!(rate > 0 && Number.isFinite(rate))) throw new Error(`rate must be a positive number, got ${rate}`);
  positiveInt('count', opts.count, 0);
  positiveInt('batchSize', opts.batchSize, 0);
  if (opts.durationMs !== undefined && !(opts.durationMs >= 0 && Number.isFinite(opts.durationMs))) {
    throw new Error(`durationMs must be a finite number >= 0, got ${opts.durationMs}`);
  }
  // Every load loop stops by itself: with neither bound, a minute.
  const durationMs = opts.durationMs ?? (opts.count === undefined ? 60_000 : undefined);
  const batchSize = opts.batchSize ?? 0;
  const wallNow = opts.now ?? Date.now;
  const seed = opts.seed ?? 1;
  const runId = opts.runId ?? newRunId(Date.now());
  const model = new TrafficModel({
    seed,
    runId,
    ads: opts.ads ?? 5000,
    campaigns: opts.campaigns ?? 500,
    advertisers: opts.advertisers ?? 50,
    adIdBase: opts.adIdBase,
    campaignIdBase: opts.campaignIdBase,
    advertiserIdBase: opts.advertiserIdBase,
    zipfExponent: opts.zipfExponent,
    users: opts.users,
    maxDelayMs: opts.maxDelayMs,
    outOfOrderShare: opts.outOfOrderShare,
    outOfOrderMaxMs: opts.outOfOrderMaxMs,
    duplicateShare: opts.duplicateShare,
    duplicateDelayMs: opts.duplicateDelayMs,
    eventTime: opts.eventTime,
    attribution: opts.attribution,
  });
  const client = new ClickClient({
    url: opts.url,
    concurrency: opts.concurrency,
    maxAttempts: opts.maxAttempts,
    requestTimeoutMs: opts.requestTimeoutMs,
    backoffBaseMs: opts.backoffBaseMs,
    backoffMaxMs: opts.backoffMaxMs,
    maxRetryAfterMs: opts.maxRetryAfterMs,
  });
  const ownsLedger = !opts.ledger && opts.ledgerPath !== undefined;
  const ledger = opts.ledger ?? (opts.ledgerPath !== undefined ? await Ledger.open(opts.ledgerPath) : Ledger.inMemory());
  const concurrency = opts.concurrency ?? 64;
  const maxPending = opts.maxPending ?? Math.max(1000, concurrency * Math.max(1, batchSize) * 4);
  const linger = opts.batchLingerMs ?? Math.min(1000, Math.max(20, (1000 * batchSize) / rate));
  const drainTimeoutMs = opts.drainTimeoutMs ?? 30_000;
  const log = opts.logger?.child({ module: 'simulate' });

  const sizeBefore = ledger.size;
  let pendingClicks = 0;
  const inFlight = new Set<Promise<void>>();
  const maybeAccepted = new Map<string, ClickPayload>();
  const rejectedIds = new Set<string>();
  const failedIds = new Set<string>();
  let duplicateSends = 0;
  let firstError: unknown = null;

  const settle = (item: OutgoingClick, o: ClickOutcome): void => {
    const c = item.click;
    try {
      if (o.status === 'accepted' || o.status === 'duplicate') {
        ledger.record(c);
        maybeAccepted.delete(c.impression_id);
        rejectedIds.delete(c.impression_id);
        failedIds.delete(c.impression_id);
      } else if (!ledger.has(c.impression_id, c.event_type)) {
        if (o.status === 'unknown') maybeAccepted.set(c.impression_id, c);
        else if (o.status === 'rejected') rejectedIds.add(c.impression_id);
        else failedIds.add(c.impression_id);
      }
    } catch (err) {
      firstError ??= err;
    }
  };

  const track = (p: Promise<void>, n: number): void => {
    pendingClicks += n;
    const t = p
      .catch((err: unknown) => {
        firstError ??= err;
      })
      .finally(() => {
        pendingClicks -= n;
        inFlight.delete(t);
      });
    inFlight.add(t);
  };

  let buffer: OutgoingClick[] = [];
  let bufferSince = 0;
  const flush = (): void => {
    if (!buffer.length) return;
    const items = buffer;
    buffer = [];
    track(
      client.sendBatch(items).then((outs) => outs.forEach((o, i) => settle(items[i]!, o))),
      items.length,
    );
  };
  const dispatch = (item: OutgoingClick, now: number): void => {
    if (batchSize === 0) {
      track(client.send(item).then((o) => settle(item, o)), 1);
      return;
    }
    if (!buffer.length) bufferSince = now;
    buffer.push(item);
    if (buffer.length >= batchSize) flush();
  };

  const t0 = performance.now();
  const endAt = durationMs !== undefined ? t0 + durationMs : Infinity;
  const burst = Math.max(1, Math.ceil((rate * (opts.burstMs ?? 50)) / 1000));
  const bucket = new TokenBucket(rate, burst, t0);
  const dueDups = new DueHeap();

  let lastSent = 0;
  let lastTick = t0;
  const progress = (): void => {
    if (!opts.onProgress) return;
    const now = performance.now();
    const c = client.counters;
    const dt = Math.max(1, now - lastTick);
    opts.onProgress({
      elapsedMs: now - t0,
      generated: model.generated,
      sendRate: ((c.clicksSent - lastSent) * 1000) / dt,
      accepted: c.accepted,
      duplicate: c.duplicate,
      rejected: c.rejected,
      retries: c.retries,
      errors: c.errors,
      pending: pendingClicks,
      p99Ms: client.latency.quantile(0.99),
    });
    lastSent = c.clicksSent;
    lastTick = now;
  };
  const timer = opts.onProgress ? setInterval(progress, opts.progressIntervalMs ?? 500) : null;
  timer?.unref();

  let stoppedBy: SimulateResult['stoppedBy'] = 'duration';
  try {
    for (;;) {
      const now = performance.now();
      if (opts.signal?.aborted) {
        stoppedBy = 'signal';
        break;
      }
      if (now >= endAt) {
        stoppedBy = 'duration';
        break;
      }
      if (opts.count !== undefined && model.generated >= opts.count) {
        stoppedBy = 'count';
        break;
      }
      while ((dueDups.peek()?.dueAt ?? Infinity) <= now) {
        duplicateSends++;
        dispatch(dueDups.pop()!.item, now);
      }
      const room = maxPending - pendingClicks - buffer.length;
      const left = opts.count !== undefined ? opts.count - model.generated : Infinity;
      const n = room > 0 ? bucket.take(now, Math.min(room, left)) : 0;
      for (let i = 0; i < n; i++) {
        const planned = model.next(wallNow());
        const item: OutgoingClick = { click: planned.click, body: signedBody(planned.click, opts.keyId, opts.secret) };
        if (planned.resendAfterMs !== null) dueDups.push({ dueAt: now + planned.resendAfterMs, item });
        dispatch(item, now);
      }
      if (buffer.length && now - bufferSince >= linger) flush();

      let wait = room > 0 ? bucket.msUntilNext(now) : 5;
      wait = Math.min(wait, endAt - now, (dueDups.peek()?.dueAt ?? Infinity) - now, 50);
      if (buffer.length) wait = Math.min(wait, bufferSince + linger - now);
      await sleep(Math.max(1, wait));
    }
    flush();
    // Planned duplicates not yet due are sent now, so the run delivers its whole duplicate share.
    while (dueDups.size) {
      duplicateSends++;
      dispatch(dueDups.pop()!.item, performance.now());
    }
    flush();
    const sendEnd = performance.now();
    client.giveUpAt = sendEnd + drainTimeoutMs;
    while (inFlight.size) await Promise.all([...inFlight]);
    const end = performance.now();
    if (timer) {
      clearInterval(timer);
      progress();
    }
    if (firstError) throw firstError;
    if (ownsLedger) await ledger.close();
    else await ledger.flush();

    const counters = client.counters;
    const sendElapsedMs = sendEnd - t0;
    const result: SimulateResult = {
      runId,
      seed,
      url: opts.url,
      batchSize,
      ledger,
      ledgerPath: ledger.path,
      generated: model.generated,
      duplicateSends,
      ledgered: ledger.size - sizeBefore,
      rejected: rejectedIds.size,
      failed: failedIds.size,
      unknown: [...maybeAccepted.values()],
      counters,
      latency: client.latency.summary(),
      stoppedBy,
      sendElapsedMs,
      elapsedMs: end - t0,
      clicksPerSec: sendElapsedMs > 0 ? (model.generated * 1000) / sendElapsedMs : 0,
      requestsPerSec: end > t0 ? (counters.requests * 1000) / (end - t0) : 0,
    };
    log?.info({ runId, generated: result.generated, ledgered: result.ledgered, unknown: result.unknown.length }, 'simulation finished');
    return result;
  } finally {
    if (timer) clearInterval(timer);
    client.close();
  }
}

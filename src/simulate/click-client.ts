// The sending side of a real SDK: keep-alive connections, bounded concurrency, and a
// retry policy that re-sends the SAME bytes (the idempotency key and signature are in
// the body) after Retry-After or exponential backoff, a bounded number of times.
//
// Every click ends in exactly one outcome:
//   accepted | duplicate  202 answer — the click is in the pipeline (ledger counts it once)
//   rejected              non-retryable error answer (4xx): definitely not accepted
//   failed                retries exhausted, every attempt was a definite "not accepted"
//                         (503/429/per-item retryable rejection, connection refused)
//   unknown               retries exhausted and some attempt had no clear answer
//                         (timeout, reset, 5xx other than 503): it MAY have been accepted
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { ERRORS } from '../shared/errors.ts';
import { LatencyHistogram } from './latency-histogram.ts';
import type { ClickPayload } from './traffic-model.ts';

export interface OutgoingClick {
  readonly click: ClickPayload;
  /** The signed JSON body, sent byte-for-byte identical on every attempt. */
  readonly body: string;
}

export type OutcomeStatus = 'accepted' | 'duplicate' | 'rejected' | 'failed' | 'unknown';

export interface ClickOutcome {
  status: OutcomeStatus;
  /** Error code of the last error answer (or transport error kind). */
  code?: string;
  attempts: number;
}

export interface ClickClientOptions {
  /** Gateway base URL, e.g. http://127.0.0.1:8080 (a path prefix is kept). */
  url: string;
  /** Most HTTP requests in flight at once. Default 64. */
  concurrency?: number;
  /** Attempts per click including the first. Default 8. */
  maxAttempts?: number;
  /** Per-request timeout (no answer in time = ambiguous). Default 5000 ms. */
  requestTimeoutMs?: number;
  backoffBaseMs?: number; // default 100
  backoffMaxMs?: number; // default 5000
  /** Longest Retry-After honoured; longer values are capped. Default 30 000 ms. */
  maxRetryAfterMs?: number;
  /** Source of jitter; default Math.random. */
  random?: () => number;
}

export interface ClientCounters {
  /** HTTP requests made (single or batch). */
  requests: number;
  /** Click sends, including retries (a batch of n counts n). */
  clicksSent: number;
  /** 202/per-item `accepted` answers. */
  accepted: number;
  /** 202/per-item `duplicate` answers. */
  duplicate: number;
  /** Clicks that ended rejected (non-retryable), by error code. */
  rejected: number;
  rejectedByCode: Record<string, number>;
  /** Click re-sends after a retryable answer or no answer. */
  retries: number;
  /** Retryable answers seen, by code (RATE_LIMITED, UNAVAILABLE, HTTP_500, ...). */
  retryableByCode: Record<string, number>;
  /** Requests without an answer (timeout, reset, refused). */
  errors: number;
  errorsByKind: Record<string, number>;
  /** Clicks that ended `failed` / `unknown` (see the module comment). */
  failed: number;
  unknown: number;
}

type Answer =
  | { kind: 'http'; status: number; retryAfterMs: number | null; body: string; ms: number }
  | { kind: 'error'; errorKind: string; definite: boolean };

/** What one answer means for the clicks it covered. */
type Verdict =
  | { v: 'done'; status: 'accepted' | 'duplicate' }
  | { v: 'rejected'; code: string }
  | { v: 'retry'; code: string; ambiguous: boolean; waitMs: number | null };

const TRANSPORT_DEFINITE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

export function parseRetryAfter(raw: string | string[] | undefined, nowMs = Date.now()): number | null {
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (v === undefined || v.trim() === '') return null;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

function errorCodeOf(body: string, status: number): string {
  try {
    const code = (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
    if (typeof code === 'string' && code) return code;
  } catch {
    /* not our error shape */
  }
  return `HTTP_${status}`;
}

function isRetryableCode(code: string, status: number): boolean {
  const spec = (ERRORS as Record<string, { retryable: boolean } | undefined>)[code];
  if (spec) return spec.retryable;
  return status >= 500 || status === 429 || status === 408;
}

export class ClickClient {
  readonly counters: ClientCounters = {
    requests: 0, clicksSent: 0, accepted: 0, duplicate: 0, rejected: 0, rejectedByCode: {},
    retries: 0, retryableByCode: {}, errors: 0, errorsByKind: {}, failed: 0, unknown: 0,
  };
  readonly latency = new LatencyHistogram();
  /** performance.now() after which no retry is started (set when a run drains). */
  giveUpAt = Infinity;

  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;
  private readonly host: string;
  private readonly port: number;
  private readonly prefix: string;
  private readonly concurrency: number;
  private readonly maxAttempts: number;
  private readonly timeoutMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly random: () => number;
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(o: ClickClientOptions) {
    const u = new URL(o.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`url must be http(s), got ${o.url}`);
    this.transport = u.protocol === 'https:' ? https : http;
    this.host = u.hostname.replace(/^\[|\]$/g, '');
    this.port = u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
    this.prefix = u.pathname.replace(/\/+$/, '');
    this.concurrency = o.concurrency ?? 64;
    this.maxAttempts = o.maxAttempts ?? 8;
    if (!(Number.isInteger(this.concurrency) && this.concurrency >= 1)) throw new Error('concurrency must be >= 1');
    if (!(Number.isInteger(this.maxAttempts) && this.maxAttempts >= 1)) throw new Error('maxAttempts must be >= 1');
    this.timeoutMs = o.requestTimeoutMs ?? 5000;
    this.backoffBaseMs = o.backoffBaseMs ?? 100;
    this.backoffMaxMs = o.backoffMaxMs ?? 5000;
    this.maxRetryAfterMs = o.maxRetryAfterMs ?? 30_000;
    this.random = o.random ?? Math.random;
    this.agent = new this.transport.Agent({ keepAlive: true, maxSockets: this.concurrency, keepAliveMsecs: 1000 });
  }

  /** Requests currently on the wire. */
  get inFlight(): number {
    return this.active;
  }

  /** Sends one click to POST /v1/clicks, retrying as an SDK would. */
  async send(c: OutgoingClick): Promise<ClickOutcome> {
    let ambiguous = false;
    let lastCode = '';
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1) this.counters.retries++;
      this.counters.clicksSent++;
      const verdict = this.judge(await this.post('/v1/clicks', c.body));
      if (verdict.v === 'done') return { status: verdict.status, attempts: attempt };
      if (verdict.v === 'rejected') return this.reject(verdict.code, attempt);
      ambiguous ||= verdict.ambiguous;
      lastCode = verdict.code;
      if (!(await this.backoff(attempt, verdict.waitMs))) return this.giveUp(ambiguous, lastCode, attempt);
    }
  }

  /**
   * Sends clicks to POST /v1/clicks/batch. Items answered `rejected` with a retryable
   * code, or a whole request that failed retryably, are re-sent (same item bodies, in a
   * batch of just the unresolved ones). Outcomes are in input order.
   */
  async sendBatch(clicks: readonly OutgoingClick[]): Promise<ClickOutcome[]> {
    const out: (ClickOutcome | undefined)[] = new Array(clicks.length);
    const ambiguous = new Array<boolean>(clicks.length).fill(false);
    const lastCode = new Array<string>(clicks.length).fill('');
    let pending = clicks.map((_, i) => i);
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > 1) this.counters.retries += pending.length;
      this.counters.clicksSent += pending.length;
      const body = `{"clicks":[${pending.map((i) => clicks[i]!.body).join(',')}]}`;
      const answer = await this.post('/v1/clicks/batch', body);
      const next: number[] = [];
      let waitMs: number | null = null;
      const items = answer.kind === 'http' && answer.status >= 200 && answer.status < 300 ? parseBatchResults(answer.body, pending.map((i) => clicks[i]!.click.impression_id)) : null;
      if (items) {
        pending.forEach((idx, j) => {
          const r = items[j]!;
          if (r.status === 'accepted' || r.status === 'duplicate') {
            this.counters[r.status]++;
            out[idx] = { status: r.status, attempts: attempt };
          } else if (isRetryableCode(r.code, 400)) {
            this.counters.retryableByCode[r.code] = (this.counters.retryableByCode[r.code] ?? 0) + 1;
            // Per-item UNAVAILABLE / RATE_LIMITED mean "not written"; an internal error might have been.
            ambiguous[idx] ||= r.code === 'INTERNAL';
            lastCode[idx] = r.code;
            next.push(idx);
          } else {
            out[idx] = this.reject(r.code, attempt);
          }
        });
      } else {
        const verdict = this.judge(answer, true);
        if (verdict.v === 'rejected') {
          for (const idx of pending) out[idx] = this.reject(verdict.code, attempt);
        } else {
          // 'done' is impossible for a batch without parsable results: treat as unclear.
          const v = verdict.v === 'retry' ? verdict : { code: 'BAD_BATCH_ANSWER', ambiguous: true, waitMs: null };
          for (const idx of pending) {
            ambiguous[idx] ||= v.ambiguous;
            lastCode[idx] = v.code;
            next.push(idx);
          }
          waitMs = v.waitMs;
        }
      }
      pending = next;
      if (pending.length && !(await this.backoff(attempt, waitMs))) {
        for (const idx of pending) out[idx] = this.giveUp(ambiguous[idx]!, lastCode[idx]!, attempt);
        pending = [];
      }
    }
    return out as ClickOutcome[];
  }

  close(): void {
    this.agent.destroy();
  }

  private reject(code: string, attempts: number): ClickOutcome {
    this.counters.rejected++;
    this.counters.rejectedByCode[code] = (this.counters.rejectedByCode[code] ?? 0) + 1;
    return { status: 'rejected', code, attempts };
  }

  private giveUp(ambiguous: boolean, code: string, attempts: number): ClickOutcome {
    if (ambiguous) this.counters.unknown++;
    else this.counters.failed++;
    return { status: ambiguous ? 'unknown' : 'failed', code, attempts };
  }

  /** Classifies an answer to a single click (or a whole-batch answer when `batch`). */
  private judge(a: Answer, batch = false): Verdict {
    if (a.kind === 'error') {
      this.counters.errorsByKind[a.errorKind] = (this.counters.errorsByKind[a.errorKind] ?? 0) + 1;
      return { v: 'retry', code: a.errorKind, ambiguous: !a.definite, waitMs: null };
    }
    if (a.status === 202 && !batch) {
      let status: unknown;
      try {
        status = (JSON.parse(a.body) as { status?: unknown }).status;
      } catch {
        /* fall through */
      }
      if (status === 'accepted' || status === 'duplicate') {
        this.counters[status]++;
        return { v: 'done', status };
      }
      return this.retryable('BAD_ANSWER', true, null);
    }
    if (a.status >= 200 && a.status < 300) return this.retryable('BAD_ANSWER', true, null);
    const code = errorCodeOf(a.body, a.status);
    if (!isRetryableCode(code, a.status)) return { v: 'rejected', code };
    // 503 and 429 promise "nothing was accepted"; any other failure might have been.
    const definite = a.status === 503 || a.status === 429;
    return this.retryable(code, !definite, a.retryAfterMs);
  }

  private retryable(code: string, ambiguous: boolean, waitMs: number | null): Verdict {
    this.counters.retryableByCode[code] = (this.counters.retryableByCode[code] ?? 0) + 1;
    return { v: 'retry', code, ambiguous, waitMs };
  }

  /** Waits before attempt `attempt + 1`; false when the click should be given up. */
  private async backoff(attempt: number, retryAfterMs: number | null): Promise<boolean> {
    if (attempt >= this.maxAttempts) return false;
    let wait: number;
    if (retryAfterMs !== null) {
      // Honour the server, plus a little jitter so a crowd of clients does not return at once.
      wait = Math.min(retryAfterMs, this.maxRetryAfterMs) + this.random() * Math.min(100, this.backoffBaseMs);
    } else {
      const cap = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** (attempt - 1));
      wait = cap / 2 + (this.random() * cap) / 2; // "equal jitter"
    }
    if (performance.now() + wait > this.giveUpAt) return false;
    if (wait > 0) await sleep(wait);
    return true;
  }

  private async acquire(): Promise<void> {
    if (this.active < this.concurrency) {
      this.active++;
      return;
    }
    await new Promise<void>((res) => this.waiting.push(res));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next(); // the slot passes straight to the next waiter
    else this.active--;
  }

  private async post(path: string, body: string): Promise<Answer> {
    await this.acquire();
    try {
      this.counters.requests++;
      const answer = await this.request(path, body);
      if (answer.kind === 'http') this.latency.record(answer.ms);
      else this.counters.errors++;
      return answer;
    } finally {
      this.release();
    }
  }

  private request(path: string, body: string): Promise<Answer> {
    return new Promise<Answer>((resolve) => {
      const t0 = performance.now();
      let settled = false;
      const done = (a: Answer): void => {
        if (!settled) {
          settled = true;
          resolve(a);
        }
      };
      const req = this.transport.request(
        {
          host: this.host,
          port: this.port,
          method: 'POST',
          path: this.prefix + path,
          agent: this.agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            done({
              kind: 'http',
              status: res.statusCode ?? 0,
              retryAfterMs: parseRetryAfter(res.headers['retry-after']),
              body: Buffer.concat(chunks).toString('utf8'),
              ms: performance.now() - t0,
            }),
          );
          res.on('error', (err: NodeJS.ErrnoException) => done({ kind: 'error', errorKind: err.code ?? 'RESPONSE_ERROR', definite: false }));
          res.on('aborted', () => done({ kind: 'error', errorKind: 'RESPONSE_ABORTED', definite: false }));
        },
      );
      req.setTimeout(this.timeoutMs, () => {
        req.destroy(Object.assign(new Error('request timed out'), { code: 'TIMEOUT' }));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        const kind = err.code ?? 'REQUEST_ERROR';
        done({ kind: 'error', errorKind: kind, definite: TRANSPORT_DEFINITE.has(kind) });
      });
      req.end(body);
    });
  }
}

interface BatchItem {
  status: string;
  code: string;
}

/** Per-item results, or null when the answer does not match the request item for item. */
function parseBatchResults(body: string, ids: readonly string[]): BatchItem[] | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return null;
  }
  const results = (parsed as { results?: unknown }).results;
  if (!Array.isArray(results) || results.length !== ids.length) return null;
  const out: BatchItem[] = [];
  for (let i = 0; i < results.length; i++) {
    const r = results[i] as { impression_id?: unknown; status?: unknown; error?: { code?: unknown } } | null;
    if (!r || typeof r.status !== 'string') return null;
    if (r.impression_id !== undefined && r.impression_id !== ids[i]) return null;
    const code = typeof r.error?.code === 'string' ? r.error.code : 'UNKNOWN';
    out.push({ status: r.status, code });
  }
  return out;
}

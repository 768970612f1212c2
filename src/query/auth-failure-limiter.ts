// Failed API-key lookups per client: a token bucket of failures. Each lookup of a key not
// known to be good reserves one failure up front (so a thousand concurrent junk tokens
// from one client cannot all start before the first one fails) and gets it back when the
// key turns out good. In-process, like the per-key limit: N query processes give a client
// up to N times the budget.
import type { Clock } from './auth.ts';

export interface AuthFailureLimitOptions {
  /** Failed lookups a client may cause at once. */
  readonly burst: number;
  /** Failed lookups per minute a client may cause in the long run. */
  readonly perMin: number;
  /** Bound on tracked clients; the least recently seen goes first. */
  readonly maxClients: number;
}

export type FailureDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterSec: number };

export class AuthFailureLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly clock: Clock, private readonly opts: AuthFailureLimitOptions) {}

  /** Takes one failure from the client's budget, or says how long until one is back. */
  reserve(client: string): FailureDecision {
    const now = this.clock();
    const tokens = this.tokensAt(client, now);
    if (tokens >= 1) {
      this.put(client, tokens - 1, now);
      return { allowed: true };
    }
    this.put(client, tokens, now);
    const perMs = this.opts.perMin / 60_000;
    return { allowed: false, retryAfterSec: Math.max(1, Math.ceil((1 - tokens) / perMs / 1000)) };
  }

  /** The reserved lookup did not fail: give the failure back. */
  refund(client: string): void {
    const now = this.clock();
    if (!this.buckets.has(client)) return;
    this.put(client, Math.min(this.opts.burst, this.tokensAt(client, now) + 1), now);
  }

  private tokensAt(client: string, now: number): number {
    const prev = this.buckets.get(client);
    if (!prev) return this.opts.burst;
    return Math.min(this.opts.burst, prev.tokens + (Math.max(0, now - prev.at) * this.opts.perMin) / 60_000);
  }

  private put(client: string, tokens: number, now: number): void {
    // Map order doubles as recency order.
    if (!this.buckets.delete(client)) {
      while (this.buckets.size >= this.opts.maxClients) {
        const oldest = this.buckets.keys().next();
        if (oldest.done) break;
        this.buckets.delete(oldest.value);
      }
    }
    this.buckets.set(client, { tokens, at: now });
  }
}


// In-process token bucket per API key (and per client address, app.ts). Each query
// process limits on its own: with N query processes a key gets up to N times the rate,
// which is acceptable for a guard against runaway dashboards and scripts (it is not a
// billing quota).
import { MAX_RETRY_AFTER_SEC } from '../shared/http-admission.ts';
import type { Clock } from './auth.ts';

export interface RateLimitOptions {
  /** Sustained requests per second per key. */
  readonly perSec: number;
  /** Bucket size: requests a key may make at once after being idle. */
  readonly burst: number;
  /** Bound on tracked keys; the least recently used bucket is dropped first. */
  readonly maxKeys: number;
}

export type RateDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterSec: number };

export class TokenBucketLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly clock: Clock, private readonly opts: RateLimitOptions) {}

  take(key: string): RateDecision {
    const now = this.clock();
    const { perSec, burst } = this.opts;
    const prev = this.buckets.get(key);
    let tokens = burst;
    if (prev) {
      tokens = Math.min(burst, prev.tokens + (Math.max(0, now - prev.at) / 1000) * perSec);
      this.buckets.delete(key); // re-inserted below: Map order doubles as LRU order
    } else {
      while (this.buckets.size >= this.opts.maxKeys) {
        const oldest = this.buckets.keys().next();
        if (oldest.done) break;
        this.buckets.delete(oldest.value);
      }
    }
    if (tokens >= 1) {
      this.buckets.set(key, { tokens: tokens - 1, at: now });
      return { allowed: true };
    }
    this.buckets.set(key, { tokens, at: now });
    return { allowed: false, retryAfterSec: Math.min(MAX_RETRY_AFTER_SEC, Math.max(1, Math.ceil((1 - tokens) / perSec))) };
  }

  /** Gives back one token `take` took (the work it paid for turned out free); never above the burst. */
  refund(key: string): void {
    const prev = this.buckets.get(key);
    if (!prev) return;
    const now = this.clock();
    const tokens = Math.min(this.opts.burst, prev.tokens + (Math.max(0, now - prev.at) / 1000) * this.opts.perSec + 1);
    this.buckets.set(key, { tokens, at: now });
  }
}

// Failed API-key lookups per client: a token bucket of failures. Each lookup of a key not
// known to be good reserves one failure up front (so a thousand concurrent junk tokens
// from one client cannot all start before the first one fails) and gets it back when the
// key turns out good. In-process, like the per-key limit: N query processes give a client
// up to N times the budget.
import type { Clock } from './auth.ts';
import { TokenBucketLimiter } from './rate-limit.ts';

export interface AuthFailureLimitOptions {
  /** Failed lookups a client may cause at once. */
  readonly burst: number;
  /** Failed lookups per minute a client may cause in the long run. */
  readonly perMin: number;
  /** Bound on tracked clients; the least recently seen goes first. */
  readonly maxClients: number;
}

export type FailureDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterSec: number };

/** The per-key token bucket of rate-limit.ts, counting failures instead of requests. */
export class AuthFailureLimiter {
  private readonly bucket: TokenBucketLimiter;

  constructor(clock: Clock, opts: AuthFailureLimitOptions) {
    this.bucket = new TokenBucketLimiter(clock, { perSec: opts.perMin / 60, burst: opts.burst, maxKeys: opts.maxClients });
  }

  /** Takes one failure from the client's budget, or says how long until one is back. */
  reserve(client: string): FailureDecision {
    return this.bucket.take(client);
  }

  /** The reserved lookup did not fail: give the failure back. */
  refund(client: string): void {
    this.bucket.refund(client);
  }
}

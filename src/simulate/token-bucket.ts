// Pacing: tokens refill at `ratePerSec`, at most `burst` saved up. Time is passed in, so
// the bucket is pure and tests drive it with a fake clock.
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly ratePerSec: number,
    readonly burst: number,
    nowMs: number,
    initialTokens = 1,
  ) {
    if (!(ratePerSec > 0) || !Number.isFinite(ratePerSec)) throw new Error(`rate must be a positive number, got ${ratePerSec}`);
    if (!(burst >= 1)) throw new Error(`burst must be >= 1, got ${burst}`);
    this.tokens = Math.min(burst, initialTokens);
    this.last = nowMs;
  }

  private refill(nowMs: number): void {
    if (nowMs > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.last) * this.ratePerSec) / 1000);
      this.last = nowMs;
    }
  }

  /** Takes up to `max` whole tokens; returns how many were taken. */
  take(nowMs: number, max = Infinity): number {
    this.refill(nowMs);
    const n = Math.max(0, Math.min(Math.floor(this.tokens), Math.floor(max)));
    this.tokens -= n;
    return n;
  }

  /** Milliseconds until one whole token is available (0 if one is). */
  msUntilNext(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens >= 1 ? 0 : ((1 - this.tokens) * 1000) / this.ratePerSec;
  }
}

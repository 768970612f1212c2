// Log-linear latency histogram: 16 buckets per power of two from 1 µs, so any quantile
// is within ~4.4 % of the true value, in fixed memory however long the run.
const SUB = 16;
const BUCKETS = SUB * 40; // 1 µs … ~12 days

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  private n = 0;
  private maxMs = 0;
  private sumMs = 0;

  record(ms: number): void {
    if (!(ms >= 0)) return;
    const us = Math.max(1, ms * 1000);
    const i = Math.min(BUCKETS - 1, Math.floor(Math.log2(us) * SUB));
    this.counts[i]!++;
    this.n++;
    this.sumMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  get count(): number {
    return this.n;
  }

  /** Upper edge of the bucket holding the q-quantile, in ms (0 when empty). */
  quantile(q: number): number {
    if (this.n === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.maxMs, 2 ** ((i + 1) / SUB) / 1000);
    }
    return this.maxMs;
  }

  summary(): { count: number; p50Ms: number; p99Ms: number; maxMs: number; meanMs: number } {
    const r = (x: number): number => Math.round(x * 100) / 100;
    return {
      count: this.n,
      p50Ms: r(this.quantile(0.5)),
      p99Ms: r(this.quantile(0.99)),
      maxMs: r(this.maxMs),
      meanMs: r(this.n ? this.sumMs / this.n : 0),
    };
  }
}

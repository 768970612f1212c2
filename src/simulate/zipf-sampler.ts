// Zipf-distributed ranks: P(rank k) ∝ 1 / k^s for k in 1..n. Precomputed CDF plus
// binary search: O(n) once, O(log n) per draw, exact (no rejection loop).
import type { Rng } from './prng.ts';

export class ZipfSampler {
  readonly n: number;
  readonly exponent: number;
  private readonly cdf: Float64Array;

  constructor(n: number, exponent: number) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`zipf n must be a positive integer, got ${n}`);
    if (!(exponent >= 0)) throw new Error(`zipf exponent must be >= 0, got ${exponent}`);
    this.n = n;
    this.exponent = exponent;
    this.cdf = new Float64Array(n);
    let sum = 0;
    for (let k = 1; k <= n; k++) {
      sum += 1 / k ** exponent;
      this.cdf[k - 1] = sum;
    }
    for (let i = 0; i < n; i++) this.cdf[i]! /= sum;
    this.cdf[n - 1] = 1; // guard against rounding leaving the last bucket unreachable
  }

  /** Probability of the 0-based rank `i`. */
  probability(i: number): number {
    if (i < 0 || i >= this.n) return 0;
    return this.cdf[i]! - (i === 0 ? 0 : this.cdf[i - 1]!);
  }

  /** A 0-based rank; 0 is the most popular. */
  sample(rng: Rng): number {
    const u = rng.next();
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cdf[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

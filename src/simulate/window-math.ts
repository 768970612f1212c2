// UTC-aligned tumbling windows, half-open [start, start + size). Epoch ms has no leap
// seconds and the window sizes divide a day, so plain modular arithmetic is UTC-aligned.

export type Granularity = '1m' | '5m' | '1h';

export const GRANULARITY_MS: Readonly<Record<Granularity, number>> = { '1m': 60_000, '5m': 300_000, '1h': 3_600_000 };

export function isGranularity(s: string): s is Granularity {
  return Object.prototype.hasOwnProperty.call(GRANULARITY_MS, s);
}

export function windowStartMs(timestampMs: number, g: Granularity): number {
  const size = GRANULARITY_MS[g];
  // Math.floor-based so timestamps before 1970 still land in the window below them.
  return Math.floor(timestampMs / size) * size;
}

// Window arithmetic shared by the query API, the simulator and its ledger. Windows are half-open [start, start + size),
// aligned to UTC epoch multiples (no leap seconds in epoch time, so a plain modulo works).

export const GRANULARITIES = ['1m', '5m', '1h'] as const;
export type Granularity = (typeof GRANULARITIES)[number];

export const GRANULARITY_MS: Readonly<Record<Granularity, number>> = {
  '1m': 60_000,
  '5m': 5 * 60_000,
  '1h': 3_600_000,
};

export function isGranularity(v: unknown): v is Granularity {
  return typeof v === 'string' && (GRANULARITIES as readonly string[]).includes(v);
}

/** Largest window start <= ms. Times are never negative here (the parser rejects them). */
export function alignDown(ms: number, g: Granularity): number {
  const size = GRANULARITY_MS[g];
  return ms - (((ms % size) + size) % size);
}

/** Smallest window boundary >= ms (ms itself when already aligned). */
export function alignUp(ms: number, g: Granularity): number {
  const down = alignDown(ms, g);
  return down === ms ? ms : down + GRANULARITY_MS[g];
}

/** Windows in [fromMs, toMs); both must be aligned to g. */
export function windowCount(fromMs: number, toMs: number, g: Granularity): number {
  return toMs <= fromMs ? 0 : (toMs - fromMs) / GRANULARITY_MS[g];
}

export interface DensePoint {
  readonly windowStartMs: number;
  readonly clicks: number;
  readonly revised: boolean;
}

/**
 * Every window of [fromMs, toMs) in time order, zeros included. Rows for the same window
 * are summed (a repository may return a base row and correction rows separately); rows
 * outside the range or not aligned to g are ignored rather than shifted into a window,
 * because a misaligned row means a wrong table was read and must not be billed.
 */
export function denseFill(
  rows: Iterable<{ windowStartMs: number; clicks: number; revised?: boolean }>,
  fromMs: number,
  toMs: number,
  g: Granularity,
): DensePoint[] {
  const size = GRANULARITY_MS[g];
  const n = windowCount(fromMs, toMs, g);
  const clicks = new Array<number>(n).fill(0);
  const revised = new Array<boolean>(n).fill(false);
  for (const row of rows) {
    const offset = row.windowStartMs - fromMs;
    if (offset < 0 || offset % size !== 0) continue;
    const i = offset / size;
    if (i >= n) continue;
    clicks[i] = (clicks[i] ?? 0) + row.clicks;
    if (row.revised) revised[i] = true;
  }
  return clicks.map((c, i) => ({ windowStartMs: fromMs + i * size, clicks: c, revised: revised[i]! }));
}

/** Start of the window holding `timestampMs` (the ledger and the simulator use this name). */
export const windowStartMs = (timestampMs: number, g: Granularity): number => alignDown(timestampMs, g);

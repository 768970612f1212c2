// Range and granularity arithmetic, mirroring the API's rules (API.md): windows are
// UTC-aligned, `from` rounds down, `to` rounds up, at most 10,000 windows per answer.
// Doing it here too lets the page disable granularities the API would refuse instead of
// showing an error after the fact.

export const GRANULARITY_MS = Object.freeze({ '1m': 60_000, '5m': 300_000, '1h': 3_600_000 });
export const GRANULARITIES = Object.freeze(['1m', '5m', '1h']);
export const PRESET_MS = Object.freeze({ '1h': 3_600_000, '24h': 86_400_000, '7d': 604_800_000 });
export const PRESETS = Object.freeze(['1h', '24h', '7d']);
/** API.md's cap; a server configured lower still answers RANGE_TOO_LARGE, which the page shows. */
export const MAX_WINDOWS = 10_000;

export const isGranularity = (g) => Object.hasOwn(GRANULARITY_MS, g);
export const alignDown = (ms, g) => Math.floor(ms / GRANULARITY_MS[g]) * GRANULARITY_MS[g];
export const alignUp = (ms, g) => Math.ceil(ms / GRANULARITY_MS[g]) * GRANULARITY_MS[g];

/** The unaligned [from, to) the page asks for: presets end now; custom ranges are fixed. */
export function requestedRange(range, nowMs) {
  if (range.preset) return { fromMs: nowMs - PRESET_MS[range.preset], toMs: nowMs };
  return { fromMs: range.fromMs, toMs: range.toMs };
}

export function windowCount(fromMs, toMs, g) {
  return (alignUp(toMs, g) - alignDown(fromMs, g)) / GRANULARITY_MS[g];
}

/** Granularities the API accepts for this range (fine ones drop out of long ranges). */
export function allowedGranularities(range, nowMs) {
  const { fromMs, toMs } = requestedRange(range, nowMs);
  // A preset's window count can grow by one as "now" crosses a boundary: keep a margin.
  const margin = range.preset ? 1 : 0;
  return GRANULARITIES.filter((g) => windowCount(fromMs, toMs, g) + margin <= MAX_WINDOWS);
}

/** The finest allowed granularity at or above `g` (1h always fits a 7-day range). */
export function fitGranularity(g, range, nowMs) {
  const ok = allowedGranularities(range, nowMs);
  if (ok.includes(g)) return g;
  return ok.find((c) => GRANULARITY_MS[c] >= GRANULARITY_MS[g]) ?? ok[ok.length - 1] ?? '1h';
}

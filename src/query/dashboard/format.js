// Display formatting. Times are shown in UTC because windows are UTC-aligned: a 1-hour
// window in a +05:30 zone would otherwise look like it starts at half past.

const count = new Intl.NumberFormat('en-US');

export const formatCount = (n) => count.format(n);

const pad = (n) => String(n).padStart(2, '0');

/** `2026-11-27 10:05 UTC`; seconds only when they are not zero. */
export function formatUtc(ms, withZone = true) {
  const d = new Date(ms);
  const base = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  const secs = d.getUTCSeconds() ? `:${pad(d.getUTCSeconds())}` : '';
  return base + secs + (withZone ? ' UTC' : '');
}

/** Value of an `<input type="datetime-local">` holding a UTC instant, and back. */
export function toLocalInputValue(ms) {
  return new Date(ms).toISOString().slice(0, 16);
}
export function fromLocalInputValue(value) {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(value)) return null;
  const ms = Date.parse(`${value}Z`);
  return Number.isFinite(ms) ? ms : null;
}

/** `just now`, `12 s ago`, `3 min ago`, `2 h ago`. */
export function formatAgo(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 2) return 'just now';
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

// The page's place (campaign, ad, granularity, range) lives in the URL hash so a reload or
// a shared link lands on the same view. The API key never goes here.
import { isGranularity, PRESETS } from './time-range.js';

export const DEFAULT_STATE = Object.freeze({ campaignId: null, adId: null, granularity: '1m', range: { preset: '1h' } });

function parseId(raw) {
  return raw && /^[1-9]\d{0,15}$/.test(raw) && Number.isSafeInteger(Number(raw)) ? Number(raw) : null;
}

function parseTime(raw) {
  if (!raw) return null;
  const ms = /^\d{1,15}$/.test(raw) ? Number(raw) : Date.parse(raw);
  return Number.isFinite(ms) ? ms : null;
}

/** Anything malformed falls back to the default for that part, never to an error. */
export function parseHash(hash) {
  const p = new URLSearchParams(hash.replace(/^#/, ''));
  const campaignId = parseId(p.get('campaign'));
  const adId = campaignId === null ? null : parseId(p.get('ad'));
  const g = p.get('g');
  const granularity = isGranularity(g) ? g : DEFAULT_STATE.granularity;
  let range = DEFAULT_STATE.range;
  const r = p.get('range');
  if (PRESETS.includes(r)) range = { preset: r };
  else if (r === 'custom') {
    const fromMs = parseTime(p.get('from'));
    const toMs = parseTime(p.get('to'));
    if (fromMs !== null && toMs !== null && toMs > fromMs) range = { fromMs, toMs };
  }
  return { campaignId, adId, granularity, range };
}

export function formatHash(state) {
  const p = new URLSearchParams();
  if (state.campaignId !== null) p.set('campaign', String(state.campaignId));
  if (state.campaignId !== null && state.adId !== null) p.set('ad', String(state.adId));
  p.set('g', state.granularity);
  if (state.range.preset) p.set('range', state.range.preset);
  else {
    p.set('range', 'custom');
    p.set('from', new Date(state.range.fromMs).toISOString());
    p.set('to', new Date(state.range.toMs).toISOString());
  }
  return `#${p.toString()}`;
}

// The dashboard's pure browser modules (plain JS, served as they are): the URL-hash state,
// range/granularity arithmetic that mirrors the API's rules, and display formatting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../src/query/dashboard');
// Loaded by URL: they are browser modules without type declarations.
const load = (name: string) => import(pathToFileURL(join(DIR, name)).href) as Promise<Record<string, any>>;

const T = Date.UTC(2026, 10, 27, 10, 3, 20); // 2026-11-27T10:03:20Z

test('hash state: round trip, defaults for anything malformed, never a key', async () => {
  const { parseHash, formatHash, DEFAULT_STATE } = await load('hash-state.js');
  assert.deepEqual(parseHash(''), { ...DEFAULT_STATE });
  const states = [
    { campaignId: 55, adId: null, granularity: '5m', range: { preset: '24h' } },
    { campaignId: 55, adId: 1234, granularity: '1h', range: { preset: '7d' } },
    { campaignId: null, adId: null, granularity: '1m', range: { fromMs: T - 3_600_000, toMs: T } },
  ];
  for (const s of states) assert.deepEqual(parseHash(formatHash(s)), s);
  assert.equal(formatHash(states[1]), '#campaign=55&ad=1234&g=1h&range=7d');
  // Malformed parts fall back one by one.
  assert.deepEqual(parseHash('#campaign=abc&g=2m&range=1y'), { ...DEFAULT_STATE });
  assert.deepEqual(parseHash('#campaign=0&ad=5'), { ...DEFAULT_STATE }, 'an ad without a valid campaign is ignored');
  assert.equal(parseHash('#campaign=99999999999999999999').campaignId, null, 'beyond 2^53');
  assert.deepEqual(parseHash('#range=custom&from=2026-11-27T10:00:00Z&to=2026-11-27T09:00:00Z').range, DEFAULT_STATE.range, 'to before from');
  assert.deepEqual(parseHash('#range=custom&from=1764237600000&to=2026-11-27T11:00:00Z').range, { fromMs: 1764237600000, toMs: Date.UTC(2026, 10, 27, 11) });
  assert.doesNotMatch(formatHash({ ...states[0], apiKey: 'ak_secret' }), /ak_secret|key/, 'only the view is written');
});

test('range arithmetic mirrors the API: alignment, window counts, the 10,000 cap', async () => {
  const m = await load('time-range.js');
  assert.equal(m.alignDown(T, '5m'), Date.UTC(2026, 10, 27, 10, 0));
  assert.equal(m.alignUp(T, '5m'), Date.UTC(2026, 10, 27, 10, 5));
  assert.equal(m.alignUp(Date.UTC(2026, 10, 27, 10), '1h'), Date.UTC(2026, 10, 27, 10), 'aligned stays');
  assert.deepEqual(m.requestedRange({ preset: '24h' }, T), { fromMs: T - 86_400_000, toMs: T });
  assert.deepEqual(m.requestedRange({ fromMs: 1, toMs: 2 }, T), { fromMs: 1, toMs: 2 });
  assert.equal(m.windowCount(T - 3_600_000, T, '1m'), 61, 'an unaligned hour touches 61 minutes');
  assert.deepEqual(m.allowedGranularities({ preset: '1h' }, T), ['1m', '5m', '1h']);
  assert.deepEqual(m.allowedGranularities({ preset: '7d' }, T), ['5m', '1h'], '7 days of minutes is 10,081 windows');
  assert.equal(m.fitGranularity('1m', { preset: '7d' }, T), '5m');
  assert.equal(m.fitGranularity('1h', { preset: '7d' }, T), '1h');
  assert.equal(m.fitGranularity('1m', { preset: '24h' }, T), '1m');
  const year = { fromMs: T - 365 * 86_400_000, toMs: T };
  assert.deepEqual(m.allowedGranularities(year, T), ['1h']);
  // A custom range of exactly 10,000 aligned minutes is allowed; one more is not.
  const from = Date.UTC(2026, 10, 1);
  assert.ok(m.allowedGranularities({ fromMs: from, toMs: from + 10_000 * 60_000 }, T).includes('1m'));
  assert.ok(!m.allowedGranularities({ fromMs: from, toMs: from + 10_001 * 60_000 }, T).includes('1m'));
});

test('formatting: UTC times, counts, ages, datetime-local values', async () => {
  const f = await load('format.js');
  assert.equal(f.formatUtc(Date.UTC(2026, 10, 27, 10, 5)), '2026-11-27 10:05 UTC');
  assert.equal(f.formatUtc(Date.UTC(2026, 10, 27, 10, 5, 7), false), '2026-11-27 10:05:07');
  assert.equal(f.formatCount(1234567), '1,234,567');
  assert.equal(f.formatAgo(400), 'just now');
  assert.equal(f.formatAgo(12_000), '12 s ago');
  assert.equal(f.formatAgo(5 * 60_000), '5 min ago');
  assert.equal(f.formatAgo(3 * 3_600_000), '3 h ago');
  assert.equal(f.toLocalInputValue(T), '2026-11-27T10:03');
  assert.equal(f.fromLocalInputValue('2026-11-27T10:03'), Date.UTC(2026, 10, 27, 10, 3), 'read as UTC, whatever the browser zone');
  assert.equal(f.fromLocalInputValue(''), null);
  assert.equal(f.fromLocalInputValue('yesterday'), null);
});

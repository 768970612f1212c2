// `adclick verify` against a fake query API that serves dense series computed from a list
// of clicks (the "store"): exact when the store equals the ledger, and every kind of
// difference found when it does not.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../../src/shared/config.ts';
import { GRANULARITY_MS, type Granularity } from '../../../src/shared/window-math.ts';
import type { LedgerEntry } from '../../../src/simulate/ledger.ts';
import { verifyLedger, type ApiGet } from '../../../src/verify/ledger-verify.ts';
import { runVerify } from '../../../src/verify/verify-command.ts';

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 27, 10, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');

function entries(): LedgerEntry[] {
  const out: LedgerEntry[] = [];
  for (let i = 0; i < 300; i++) {
    const ad = 1 + (i % 6);
    out.push({ impression_id: `imp_t_${i}`, event_type: 'click', ad_id: ad, campaign_id: 10 + (ad % 3), advertiser_id: ad % 3 === 0 ? 7 : 8, timestamp: T0 + i * 17_000 });
  }
  return out;
}

interface FakeApi {
  get: ApiGet;
  requests: string[];
}

/** Serves what `store` holds, scoped to the key's advertiser as the real API is; `completeBefore` for every series. */
function fakeApi(store: LedgerEntry[], o: { completeBefore?: number; throttleFirst?: number } = {}): FakeApi {
  const advertiserOfKey = (k: string) => Number(k.slice(3));
  const requests: string[] = [];
  let throttle = o.throttleFirst ?? 0;
  const get: ApiGet = async (path, key) => {
    requests.push(path);
    if (throttle-- > 0) return { status: 429, body: { error: { code: 'RATE_LIMITED' } }, retryAfterMs: 1 };
    const m = /^\/v1\/(campaigns|ads)\/(\d+)\/clicks\?from=(\d+)&to=(\d+)&granularity=(1m|5m|1h)$/.exec(path);
    if (!m) return { status: 400, body: {} };
    const [, kind, idRaw, fromRaw, toRaw, g] = m as unknown as [string, string, string, string, string, Granularity];
    const adv = advertiserOfKey(key);
    const id = Number(idRaw);
    const mine = store.filter((e) => e.advertiser_id === adv && (kind === 'campaigns' ? e.campaign_id : e.ad_id) === id);
    if (mine.length === 0 && !store.some((e) => (kind === 'campaigns' ? e.campaign_id : e.ad_id) === id && e.advertiser_id === adv)) {
      return { status: 404, body: { error: { code: 'NOT_FOUND' } } };
    }
    const size = GRANULARITY_MS[g];
    const points = [];
    for (let w = Number(fromRaw); w < Number(toRaw); w += size) {
      points.push({ window_start: iso(w), clicks: mine.filter((e) => e.timestamp >= w && e.timestamp < w + size).length });
    }
    return { status: 200, body: { points, complete_before: iso(o.completeBefore ?? T0 + 10 * H) } };
  };
  return { get, requests };
}

const keyFor = (adv: number) => `ak_${adv}`;
const noSleep = async () => undefined;

describe('verifyLedger', () => {
  it('finds nothing when the API serves exactly the ledger, over every campaign and ad at 1m, 5m and 1h', async () => {
    const e = entries();
    const api = fakeApi(e);
    const r = await verifyLedger({ entries: e, keyFor, get: api.get, sleep: noSleep });
    assert.deepEqual(r.mismatches, []);
    assert.equal(r.clicks, 300);
    assert.equal(r.campaigns, 3);
    assert.equal(r.ads, 6);
    assert.equal(r.advertisers, 2);
    // 2 hours span → [10:00, 12:00): 120 + 24 + 2 windows per series, 9 series.
    assert.equal(r.windowsCompared, 9 * (120 + 24 + 2));
    assert.equal(r.windowsOpen, 0);
  });

  it('finds a corrupted window (one click missing) at every granularity, for its ad and its campaign', async () => {
    const e = entries();
    const store = e.filter((x) => x.impression_id !== 'imp_t_100');
    const r = await verifyLedger({ entries: e, keyFor, get: fakeApi(store).get, sleep: noSleep });
    const lost = e.find((x) => x.impression_id === 'imp_t_100')!;
    assert.equal(r.mismatches.length, 6, r.mismatches.map((m) => JSON.stringify(m)).join('\n'));
    assert.equal(r.missing, 6);
    assert.equal(r.extra, 0);
    for (const m of r.mismatches) {
      assert.equal(m.api, (m.ledger ?? 0) - 1);
      assert.equal(m.id, m.kind === 'ad' ? lost.ad_id : lost.campaign_id);
      assert.equal(Date.parse(m.windowStart!) <= lost.timestamp && lost.timestamp < Date.parse(m.windowStart!) + GRANULARITY_MS[m.granularity], true);
    }
  });

  it('finds extra clicks in a window the ledger has none in, and clicks served to another advertiser', async () => {
    const e = entries();
    const stray: LedgerEntry = { ...e[0]!, impression_id: 'imp_stray', timestamp: T0 + H + 30 * 60_000 + 5 };
    const moved = e.map((x) => (x.impression_id === 'imp_t_3' ? { ...x, advertiser_id: 99 } : x));
    const r = await verifyLedger({ entries: e, keyFor, get: fakeApi([...moved, stray]).get, sleep: noSleep });
    assert.ok(r.extra >= 3, `extra clicks found: ${r.extra}`);
    assert.ok(r.missing >= 3, `the moved click is missing for its advertiser: ${r.missing}`);
  });

  it('reports a series it cannot read (404 for the advertiser) as a mismatch, never as a match', async () => {
    const e = entries();
    const r = await verifyLedger({ entries: e, keyFor: (a) => (a === 7 ? 'ak_123' : `ak_${a}`), get: fakeApi(e).get, sleep: noSleep });
    assert.ok(r.mismatches.some((m) => m.problem === 'HTTP 404 NOT_FOUND' && m.api === null && m.ledger > 0));
  });

  it('waits out 429 answers with their Retry-After', async () => {
    const e = entries().slice(0, 10);
    const api = fakeApi(e, { throttleFirst: 3 });
    const r = await verifyLedger({ entries: e, keyFor, get: api.get, sleep: noSleep, concurrency: 1 });
    assert.deepEqual(r.mismatches, []);
    assert.ok(api.requests.length > 3);
  });

  it('splits a long span into requests of at most 10,000 windows', async () => {
    const e: LedgerEntry[] = [
      { impression_id: 'imp_a', event_type: 'click', ad_id: 1, campaign_id: 1, advertiser_id: 7, timestamp: T0 },
      { impression_id: 'imp_b', event_type: 'click', ad_id: 1, campaign_id: 1, advertiser_id: 7, timestamp: T0 + 10 * 24 * H },
    ];
    const api = fakeApi(e);
    const r = await verifyLedger({ entries: e, keyFor, get: api.get, sleep: noSleep, granularities: ['1m'] });
    assert.deepEqual(r.mismatches, []);
    for (const p of api.requests) {
      const [, f, t] = /from=(\d+)&to=(\d+)/.exec(p)!;
      assert.ok((Number(t) - Number(f)) / 60_000 <= 10_000, p);
    }
    assert.ok(api.requests.length >= 4);
  });

  it('marks windows after complete_before as still open', async () => {
    const e = entries();
    const r = await verifyLedger({ entries: e, keyFor, get: fakeApi(e, { completeBefore: T0 + H }).get, sleep: noSleep });
    assert.ok(r.windowsOpen > 0 && r.windowsOpen < r.windowsCompared);
  });
});

describe('adclick verify', () => {
  const dir = mkdtempSync(join(tmpdir(), 'adclick-verify-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const e = entries();
  const half = Math.floor(e.length / 2);
  const l1 = join(dir, 'a.ndjson');
  const l2 = join(dir, 'b.ndjson');
  writeFileSync(l1, e.slice(0, half + 5).map((x) => JSON.stringify(x)).join('\n') + '\n');
  writeFileSync(l2, e.slice(half).map((x) => JSON.stringify(x)).join('\n') + '\n');
  const sink = () => {
    let buf = '';
    return { write: (s: string) => ((buf += s), true), text: () => buf };
  };

  it('exits 0 with a summary line when several ledgers (overlapping) match; creates and revokes keys', async () => {
    const out = sink();
    const created: number[] = [];
    const revoked: string[] = [];
    const code = await runVerify(['--ledger', l1, '--ledger', l2], {
      config: loadConfig({}), stdout: out, stderr: sink(), get: fakeApi(e).get, sleep: noSleep,
      createKey: async (a) => (created.push(a), `ak_${a}`), revokeKey: async (k) => void revoked.push(k),
    });
    assert.equal(code, 0, out.text());
    assert.match(out.text(), /^verify: 300 clicks from 2 ledgers .*OK, every count matches$/m);
    assert.deepEqual(created.sort(), [7, 8]);
    assert.deepEqual(revoked.sort(), ['ak_7', 'ak_8']);
  });

  it('exits 1 and prints each mismatch; --key is used instead of creating one', async () => {
    const out = sink();
    const store = e.filter((x) => x.impression_id !== 'imp_t_42');
    const code = await runVerify(['--ledger', l1, '--ledger', l2, '--key', '7=ak_7', '--key', '8=ak_8'], {
      config: loadConfig({}), stdout: out, stderr: sink(), get: fakeApi(store).get, sleep: noSleep,
      createKey: async () => assert.fail('no key should be created'), revokeKey: async () => assert.fail('nothing to revoke'),
    });
    assert.equal(code, 1);
    assert.equal(out.text().split('\n').filter((l) => l.startsWith('MISMATCH ')).length, 6, out.text());
    assert.match(out.text(), /FAILED, 6 mismatches \(6 clicks missing, 0 extra\)/);
  });

  it('--wait re-checks until the API catches up', async () => {
    const out = sink();
    let calls = 0;
    const lagging = fakeApi(e.slice(0, 250)).get;
    const caughtUp = fakeApi(e).get;
    let clock = 0;
    const code = await runVerify(['--ledger', l1, '--ledger', l2, '--wait', '1m', '--key', '7=ak_7', '--key', '8=ak_8'], {
      config: loadConfig({}), stdout: out, stderr: sink(), sleep: async (ms) => void (clock += ms), now: () => clock,
      get: async (p, k) => (++calls < 200 ? lagging(p, k) : caughtUp(p, k)),
    });
    assert.equal(code, 0, out.text());
    assert.ok(calls > 200);
  });

  it('exits 2 on usage errors', async () => {
    const err = sink();
    assert.equal(await runVerify([], { config: loadConfig({}), stdout: sink(), stderr: err }), 2);
    assert.match(err.text(), /--ledger FILE is required/);
    assert.equal(await runVerify(['--ledger', l1, '--key', 'x'], { config: loadConfig({}), stdout: sink(), stderr: sink() }), 2);
    assert.equal(await runVerify(['--ledger', join(dir, 'missing.ndjson')], { config: loadConfig({}), stdout: sink(), stderr: sink() }), 2);
  });
});

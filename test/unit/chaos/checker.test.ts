// The chaos checker against the real query app (routes, ownership scoping, dense series)
// over an in-memory store: fake store rows stand for what the pipeline stored, a ledger
// for what the gateway accepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { buildQueryApp } from '../../../src/query/app.ts';
import { check, countLedger, type LedgerCounts } from '../../../src/chaos/checker.ts';
import { Ledger } from '../../../src/simulate/ledger.ts';
import { FakeRepository, testApiKey } from '../query/fake-repository.ts';

const T = Date.UTC(2026, 10, 27, 10, 0, 0);
const KEY7 = testApiKey('advertiser7');
const KEY8 = testApiKey('advertiser8');

/** Ownership per click, as the real store reads it: an ad's campaigns are those the advertiser has clicks under. */
class PerClickRepository extends FakeRepository {
  override async adCampaigns(advertiserId: number, adId: number) {
    const mine = this.clicks.filter((c) => c.advertiserId === advertiserId && c.adId === adId).sort((a, b) => a.atMs - b.atMs);
    return mine.length ? { newest: mine[mine.length - 1]!.campaignId, all: [...new Set(mine.map((c) => c.campaignId))] } : null;
  }

  override async hasCampaign(advertiserId: number, campaignId: number) {
    return this.clicks.some((c) => c.advertiserId === advertiserId && c.campaignId === campaignId);
  }
}

async function serve(repo: FakeRepository): Promise<{ url: string; close: () => Promise<void> }> {
  const app = buildQueryApp({ repo, logger: pino({ level: 'silent' }), clock: () => T + 3_600_000, registry: new Registry(), options: { rateLimitPerSec: 1e6, rateLimitBurst: 1e6 } });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: address, close: () => app.close() };
}

function ledgerOf(rows: { adv: number; camp: number; ad: number; at: number; n: number }[]): Ledger {
  const l = Ledger.inMemory();
  let i = 0;
  for (const r of rows) {
    for (let k = 0; k < r.n; k++) l.record({ impression_id: `imp_${++i}`, event_type: 'click', ad_id: r.ad, campaign_id: r.camp, advertiser_id: r.adv, timestamp: r.at });
  }
  return l;
}

function storeRows(repo: FakeRepository, rows: { adv: number; camp: number; ad: number; at: number; n: number }[]): void {
  for (const r of rows) {
    if (!repo.campaigns.has(r.camp)) repo.campaigns.set(r.camp, r.adv);
    if (!repo.ads.has(r.ad)) repo.ads.set(r.ad, { advertiserId: r.adv, campaignId: r.camp });
    repo.clicks.push({ advertiserId: r.adv, campaignId: r.camp, adId: r.ad, atMs: r.at, count: r.n });
  }
}

test('a click counted under the wrong campaign of the right ad is caught per (campaign, window), though every per-ad total is right', async () => {
  // Ad 101 moved from campaign 10 to 11 mid-window: 3 clicks signed with 10, 2 with 11.
  // The store put all 5 under campaign 10.
  const ledger = ledgerOf([
    { adv: 7, camp: 10, ad: 101, at: T + 10_000, n: 3 },
    { adv: 7, camp: 11, ad: 101, at: T + 20_000, n: 2 },
    { adv: 7, camp: 10, ad: 102, at: T + 30_000, n: 4 },
  ]);
  const repo = new PerClickRepository();
  repo.addKey(KEY7, 7);
  storeRows(repo, [
    { adv: 7, camp: 10, ad: 101, at: T + 10_000, n: 5 },
    { adv: 7, camp: 10, ad: 102, at: T + 30_000, n: 4 },
  ]);
  const api = await serve(repo);
  try {
    const r = await check({ apiUrl: api.url, apiKey: KEY7, ledger, adIds: [101, 102], campaignIds: [10, 11], fromMs: T, toMs: T + 3_600_000 });
    assert.equal(r.errors, 0);
    for (const d of r.perGranularity.filter((x) => x.dimension === 'ad')) {
      assert.deepEqual([d.granularity, d.lost, d.duplicated], [d.granularity, 0, 0], 'per ad the counts agree');
    }
    for (const d of r.perGranularity.filter((x) => x.dimension === 'campaign')) {
      assert.deepEqual([d.granularity, d.lost, d.duplicated, d.windowsDiffering], [d.granularity, 2, 2, 2], `per campaign at ${d.granularity}`);
    }
    assert.equal(r.lost, 2);
    assert.equal(r.duplicated, 2);
    assert.equal(r.counted, 9);
    assert.ok(r.samples.some((s) => s.includes(`7|11|${T}: api 0 ledger 2`)), r.samples.join('; '));
  } finally {
    await api.close();
  }
});

test('each advertiser sees only the clicks signed with its id: a foreign click served to the ad\'s usual owner is duplicated, missing from its signer lost', async () => {
  // Advertiser 8 signed one click for advertiser 7's ad 101 (an issuer bug). The store
  // (wrongly) served it to 7 and not to 8.
  const ledger = ledgerOf([
    { adv: 7, camp: 10, ad: 101, at: T + 10_000, n: 3 },
    { adv: 8, camp: 80, ad: 101, at: T + 10_000, n: 1 },
  ]);
  const repo = new PerClickRepository();
  repo.addKey(KEY7, 7);
  repo.addKey(KEY8, 8);
  storeRows(repo, [{ adv: 7, camp: 10, ad: 101, at: T + 10_000, n: 4 }]);
  const api = await serve(repo);
  try {
    const r = await check({ apiUrl: api.url, apiKey: KEY7, advertiserId: 7, keys: new Map([[8, KEY8]]), ledger, adIds: [101], campaignIds: [10], fromMs: T, toMs: T + 3_600_000 });
    assert.equal(r.errors, 0);
    for (const d of r.perGranularity) assert.deepEqual([d.dimension, d.granularity, d.lost, d.duplicated], [d.dimension, d.granularity, 1, 1]);

    // Stored as signed: exact for both advertisers, in both dimensions.
    repo.clicks.length = 0;
    storeRows(repo, [{ adv: 7, camp: 10, ad: 101, at: T + 10_000, n: 3 }]);
    repo.clicks.push({ advertiserId: 8, campaignId: 80, adId: 101, atMs: T + 10_000, count: 1 });
    const ok = await check({ apiUrl: api.url, apiKey: KEY7, advertiserId: 7, keys: new Map([[8, KEY8]]), ledger, adIds: [101], campaignIds: [10], fromMs: T, toMs: T + 3_600_000 });
    assert.deepEqual([ok.lost, ok.duplicated, ok.errors, ok.counted], [0, 0, 0, 4], ok.samples.join('; '));
  } finally {
    await api.close();
  }
});

test('a ledger advertiser without a key is a driver error, not a silent pass', async () => {
  const ledger = ledgerOf([
    { adv: 7, camp: 10, ad: 101, at: T, n: 1 },
    { adv: 8, camp: 80, ad: 101, at: T, n: 1 },
  ]);
  await assert.rejects(check({ apiUrl: 'http://127.0.0.1:9', apiKey: KEY7, advertiserId: 7, ledger, adIds: [101], fromMs: T, toMs: T + 1 }), /advertiser\(s\) 8/);
});

test('the ledger\'s counts, sent as JSON (as the pipeline benchmark\'s generator process does), check exactly like the ledger itself', async () => {
  const rows = [
    { adv: 7, camp: 10, ad: 101, at: T + 10_000, n: 3 },
    { adv: 7, camp: 11, ad: 101, at: T + 20_000, n: 2 },
    { adv: 7, camp: 10, ad: 102, at: T + 400_000, n: 4 },
  ];
  const ledger = ledgerOf(rows);
  const counts = JSON.parse(JSON.stringify(countLedger(ledger))) as LedgerCounts;
  assert.equal(counts.total, 9);
  const repo = new PerClickRepository();
  repo.addKey(KEY7, 7);
  storeRows(repo, [rows[0]!, { ...rows[1]!, n: 1 }, rows[2]!]);
  const api = await serve(repo);
  try {
    const target = { apiUrl: api.url, apiKey: KEY7, adIds: [101, 102], campaignIds: [10, 11], fromMs: T, toMs: T + 3_600_000 };
    const fromLedger = await check({ ...target, ledger });
    const fromCounts = await check({ ...target, ledger: counts });
    assert.equal(fromLedger.lost, 1, 'one click of campaign 11 is missing');
    assert.deepEqual(fromCounts, fromLedger);
  } finally {
    await api.close();
  }
});

// End-to-end on the real stack started by the real launcher: Kafka broker, Flink job
// (MiniCluster, RocksDB, checkpoints), Redis, gateway, serving (sink + query API) on
// embedded chdb or a ClickHouse server. A simulator with a ground-truth ledger sends
// signed clicks with duplicates, retries and out-of-order times across many windows;
// afterwards every (campaign, window) and (ad, window) count at 1m, 5m and 1h read from
// the query API must equal the ledger exactly.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { adminRequest } from '../../src/shared/admin-client.ts';
import { up } from '../../src/stack/up.ts';
import { simulate } from '../../src/simulate/simulator.ts';
import { Ledger } from '../../src/simulate/ledger.ts';
import { fetchGet, formatMismatch, verifyLedger } from '../../src/verify/ledger-verify.ts';
import { testStackConfig } from '../helpers/stack-config.ts';

type G = '1m' | '5m' | '1h';
const GRANULARITIES: G[] = ['1m', '5m', '1h'];
const SIZE: Record<G, number> = { '1m': 60_000, '5m': 300_000, '1h': 3_600_000 };
const HOUR = 3_600_000;

export interface PipelineE2EOptions {
  /** ClickHouse server URL; unset: embedded chdb. */
  clickhouseUrl?: string;
  label: string;
}

export async function pipelineE2E(o: PipelineE2EOptions): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), `adclick-e2e-${o.label}-`));
  const keep = process.env.ADCLICK_E2E_KEEP === '1';
  const config: Config = await testStackConfig(dataDir, { clickhouseUrl: o.clickhouseUrl ?? '', signingKeys: 'e2e:e2e-secret-at-least-32-bytes-long' });
  const logFile = join(dataDir, 'stack.log');
  const log = createWriteStream(logFile);
  const logger = createLogger('e2e', 'warn');
  const t0 = Date.now();
  const stack = await up(config, { logger, print: (t) => log.write(t), output: (name, line) => log.write(`[${name}] ${line}\n`), color: false });
  after(async () => {
    await stack.stop();
    log.end();
    if (!keep) await rm(dataDir, { recursive: true, force: true });
  });
  process.stdout.write(`# ${o.label}: stack up in ${Date.now() - t0} ms (logs: ${logFile})\n`);

  const gateway = `http://127.0.0.1:${config.gatewayPort}`;
  const api = `http://127.0.0.1:${config.queryPort}`;
  const catalogue = { ads: 60, campaigns: 12, advertisers: 3 };
  const keys = new Map<number, string>();
  for (let adv = 1; adv <= catalogue.advertisers; adv++) keys.set(adv, (await adminRequest(config, '/admin/keys', { advertiser_id: adv })).api_key!);

  // Event times: a 70-minute stretch starting two hours ago (so 1m, 5m and 1h windows all
  // close), in order with 5% of clicks up to 30 s out of order (beyond the watermark's
  // 5 s bound, within allowed lateness: updated in place).
  const now = Date.now();
  const base = Math.floor(now / HOUR) * HOUR - 2 * HOUR;
  const span = 70 * 60_000;
  const main = 6000;
  const ledger = Ledger.inMemory();
  const common = { url: gateway, keyId: 'e2e', secret: 'e2e-secret-at-least-32-bytes-long', ...catalogue, ledger, seed: 7, duplicateShare: 0.05, maxAttempts: 20, drainTimeoutMs: 60_000 };
  const r1 = await simulate({
    ...common, count: main, rate: 3000, batchSize: 100,
    eventTime: (seq, _now, rng) => base + Math.floor((seq / main) * span) - (rng.next() < 0.05 ? Math.floor(rng.next() * 30_000) : 0),
  });
  // Some single-click requests too (the other endpoint), in the same stretch.
  const r2 = await simulate({
    ...common, count: 300, rate: 300, batchSize: 0, seed: 8,
    eventTime: (seq) => base + span - 60_000 + seq * 100,
  });
  // Current clicks: move the watermark past the stretch; their windows stay open, so
  // they are checked through provisional (early) results.
  const r3 = await simulate({ ...common, count: 200, rate: 200, batchSize: 20, seed: 9, eventTime: () => Date.now() - 1000 });
  // Late clicks, once the watermark has reached the current clicks: late by seconds (within
  // the allowed lateness: windows updated in place), by more than the allowed lateness (1m
  // and 5m get late corrections, the open 1h window counts them), and by hours (within the
  // gateway's maximum click age: corrections at every granularity).
  const wmDeadline = Date.now() + 90_000;
  const anyKey = [...keys.values()][0]!;
  for (;;) {
    const res = await fetch(`${api}/v1/campaigns?from=${Date.now() - HOUR}`, { headers: { authorization: `Bearer ${anyKey}` } });
    const wmNow = await (async () => {
      const camp = ((await res.json()) as { campaigns: { campaign_id: number }[] }).campaigns[0]?.campaign_id;
      if (camp === undefined) return 0;
      const sr = await fetch(`${api}/v1/campaigns/${camp}/clicks?granularity=1m&from=${Date.now() - HOUR}`, { headers: { authorization: `Bearer ${anyKey}` } });
      const cb = ((await sr.json()) as { complete_before?: string }).complete_before;
      return cb ? Date.parse(cb) : 0;
    })();
    if (wmNow >= Date.now() - 75_000) break;
    assert.ok(Date.now() < wmDeadline, 'the watermark reached the current clicks');
    await new Promise((r) => setTimeout(r, 1000));
  }
  const lateStart = Date.now();
  const r4 = await simulate({
    ...common, count: 300, rate: 300, batchSize: 25, seed: 10,
    eventTime: (seq, now) => seq % 3 === 0 ? now - 20_000 - (seq % 20) * 1000 // seconds
      : seq % 3 === 1 ? now - config.flinkAllowedLatenessMs - 5 * 60_000 - (seq % 10) * 30_000 // beyond allowed lateness
      : base + (seq % 60) * 60_000 + 7_000, // hours
  });
  process.stdout.write(`# ${o.label}: 300 late clicks sent ${Math.round((Date.now() - lateStart) / 1000)} s after the watermark caught up\n`);
  for (const r of [r1, r2, r3, r4]) {
    assert.equal(r.unknown.length, 0, 'every click got a definite answer');
    assert.equal(r.rejected + r.failed, 0, `nothing rejected: ${JSON.stringify(r.counters)}`);
  }
  const dupAnswers = r1.counters.duplicate + r2.counters.duplicate + r3.counters.duplicate + r4.counters.duplicate;
  assert.ok(dupAnswers > 0, 'duplicates were sent and answered as duplicates');
  process.stdout.write(`# ${o.label}: ${ledger.size} distinct accepted clicks, ${dupAnswers} duplicate answers, ${r1.counters.retries + r2.counters.retries + r3.counters.retries + r4.counters.retries} retries\n`);

  const from = base;
  const to = Math.floor(Date.now() / HOUR) * HOUR + HOUR;
  const get = async (path: string, key: string) => {
    const res = await fetch(`${api}${path}`, { headers: { authorization: `Bearer ${key}` } });
    return { status: res.status, body: (await res.json()) as any };
  };
  const advertiserOf = new Map<number, number>();
  const campaignOfAd = new Map<number, number>();
  for (const e of ledger) {
    advertiserOf.set(e.campaign_id, e.advertiser_id);
    campaignOfAd.set(e.ad_id, e.campaign_id);
  }

  /** Every mismatch between the API and the ledger right now (empty = exact): what `adclick verify` checks. */
  async function differences(): Promise<string[]> {
    const r = await verifyLedger({ entries: ledger, keyFor: (a) => keys.get(a)!, get: fetchGet(api) });
    return r.mismatches.map(formatMismatch);
  }

  let diffs: string[] = ['not checked yet'];
  const deadline = Date.now() + 240_000;
  let completeBefore = 0;
  while (Date.now() < deadline) {
    const anyAdv = [...keys.values()][0]!;
    const anyCampaign = [...advertiserOf.entries()].find(([, a]) => keys.get(a) === anyAdv)?.[0];
    const s = await get(`/v1/campaigns/${anyCampaign}/clicks?from=${from}&to=${to}&granularity=1h`, anyAdv);
    completeBefore = s.body.complete_before ? Date.parse(s.body.complete_before) : 0;
    if (completeBefore >= base + span + HOUR - ((base + span) % HOUR)) {
      diffs = await differences();
      if (diffs.length === 0) break;
    }
    await new Promise((r) => setTimeout(r, 3000));
  }
  assert.ok(completeBefore >= base + 2 * HOUR, `the watermark passed the stretch's last hour window (complete_before ${new Date(completeBefore).toISOString()})`);
  assert.deepEqual(diffs.slice(0, 20), [], `${diffs.length} (campaign|ad, window) counts differ from the ledger`);

  // Closed windows are marked final; the totals agree with the ledger per campaign.
  const [adv1, key1] = [...keys.entries()][0]!;
  const campaigns = await get('/v1/campaigns', key1);
  assert.equal(campaigns.status, 200);
  const totals = ledger.totalsByCampaign();
  for (const c of campaigns.body.campaigns) {
    assert.equal(advertiserOf.get(c.campaign_id), adv1, 'only the key owner\'s campaigns are listed');
    assert.equal(c.total_clicks, totals.get(c.campaign_id), `campaign ${c.campaign_id} total`);
  }
  const ownCampaign = campaigns.body.campaigns[0].campaign_id;
  const series = await get(`/v1/campaigns/${ownCampaign}/clicks?from=${from}&to=${base + HOUR}&granularity=5m`, key1);
  assert.ok(series.body.points.every((p: { final: boolean }) => p.final === true), 'windows before complete_before are final');

  // Object-level authorization: another advertiser's campaign/ad is a 404 identical to a missing one.
  const foreignCampaign = [...advertiserOf.entries()].find(([, a]) => a !== adv1)![0];
  const foreignAd = [...campaignOfAd.entries()].find(([, c]) => advertiserOf.get(c) !== adv1)![0];
  const missing = await get(`/v1/campaigns/987654321/clicks?from=${from}&to=${to}`, key1);
  assert.equal(missing.status, 404);
  for (const path of [`/v1/campaigns/${foreignCampaign}/clicks?from=${from}&to=${to}`, `/v1/campaigns/${foreignCampaign}/ads?from=${from}&to=${to}`, `/v1/ads/${foreignAd}/clicks?from=${from}&to=${to}`]) {
    const res = await get(path, key1);
    assert.equal(res.status, 404, path);
    assert.deepEqual(res.body, missing.body, `${path}: same body as a missing object`);
  }
  const noKey = await fetch(`${api}/v1/campaigns`);
  assert.equal(noKey.status, 401);

  // Batch path through the serving process's admin surface (as `adclick reconcile|backfill`).
  // Reconcile: served counts of every closed window equal a recount from raw_clicks. The two
  // topics feeding them commit on the same checkpoints but are consumed independently, so
  // allow the sink a moment to catch up on both.
  let rec: Record<string, any> = {};
  for (let i = 0; i < 20; i++) {
    rec = await adminRequest(config, '/admin/reconcile', { from_ms: from, to_ms: to });
    if ((rec.differences as unknown[]).length === 0) break;
    await new Promise((r) => setTimeout(r, 1500));
  }
  assert.ok(Number(rec.windows_compared) > 0, `reconcile compared windows: ${JSON.stringify(rec).slice(0, 300)}`);
  assert.deepEqual((rec.differences as unknown[]).slice(0, 20), [], 'reconcile: served = recount from raw clicks');
  // Conservation per window, from the job's audit: accepted = served + duplicates + rejected.
  // The audit and the counts travel different topics; give the sink the same moment to catch up.
  for (let i = 0; i < 20 && rec.conservation.imbalanced !== 0; i++) {
    await new Promise((r) => setTimeout(r, 1500));
    rec = await adminRequest(config, '/admin/reconcile', { from_ms: from, to_ms: to });
  }
  const cons = rec.conservation as { windows_checked: number; imbalanced: number; windows: unknown[]; unattributed: { accepted: number; rejected: number }; totals: { accepted: number; served: number; late: number; duplicates: number; rejected: number } };
  assert.ok(cons.windows_checked > 0, 'conservation checked windows');
  assert.deepEqual(cons.windows.slice(0, 10), [], `${cons.imbalanced} windows where accepted != served + duplicates + rejected`);
  const reconciledTo = Math.floor(Number(rec.to_ms) / 60_000) * 60_000; // 1m windows fully inside
  let inRange = 0;
  for (const e of ledger) if (e.timestamp >= from && e.timestamp < reconciledTo) inRange++;
  assert.equal(cons.totals.served, inRange, 'conservation: served = the ledger\'s clicks in the reconciled range');
  assert.ok(cons.totals.late > 0, `late corrections were exercised: ${JSON.stringify(cons.totals)}`);
  assert.equal(cons.totals.accepted, cons.totals.served + cons.totals.duplicates + cons.totals.rejected);
  process.stdout.write(`# ${o.label}: conservation over ${cons.windows_checked} windows: ${JSON.stringify(cons.totals)}\n`);
  // Backfill twice: every API count still equals the ledger (never double counted).
  for (let i = 1; i <= 2; i++) {
    const b = await adminRequest(config, '/admin/backfill', { from_ms: from, to_ms: to });
    const written = Object.values(b.windows as Record<string, number>).reduce((x, y) => x + y, 0);
    assert.ok(written > 0, `backfill ${i} recomputed windows: ${JSON.stringify(b)}`);
    const after = await differences();
    assert.deepEqual(after.slice(0, 20), [], `after backfill ${i}: ${after.length} counts differ from the ledger`);
    for (const c of (await get('/v1/campaigns', key1)).body.campaigns) assert.equal(c.total_clicks, totals.get(c.campaign_id), `after backfill ${i}: campaign ${c.campaign_id} total`);
  }
  const rec2 = await adminRequest(config, '/admin/reconcile', { from_ms: from, to_ms: to });
  assert.deepEqual((rec2.differences as unknown[]).slice(0, 20), [], 'reconcile after backfill');
  process.stdout.write(`# ${o.label}: reconcile compared ${String(rec.windows_compared)} windows (clean); two backfills kept every count\n`);

  // Traffic has stopped: the watermark follows the clock on quiet partitions, so windows keep
  // closing (complete_before does not stall at the last click).
  let quietCb = 0;
  const quietDeadline = Date.now() + 90_000;
  while (Date.now() < quietDeadline) {
    const s = await get(`/v1/campaigns/${ownCampaign}/clicks?from=${Date.now() - HOUR}&granularity=1m`, key1);
    quietCb = s.body.complete_before ? Date.parse(s.body.complete_before) : 0;
    if (quietCb >= Date.now() - 60_000) break;
    await new Promise((r) => setTimeout(r, 2000));
  }
  assert.ok(quietCb >= Date.now() - 62_000, `complete_before keeps up with the clock without traffic (${new Date(quietCb).toISOString()})`);
}

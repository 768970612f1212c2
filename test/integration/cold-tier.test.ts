// Hot/cold tiering on real embedded ClickHouse (chdb): aggregates older than 30 days live
// on the cold volume (a second directory standing in for object storage), recent ones on
// the hot volume, and the query API returns both tiers in one answer. Also: a table made
// before tiering was configured is put under the policy at start (ensureTiering).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildQueryApp } from '../../src/query/app.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { WindowAggregate } from '../../src/shared/proto.ts';
import { buildBatch, writeBatch, type SinkMessage } from '../../src/sink/batch.ts';
import { createApiKey } from '../../src/store/api-keys.ts';
import { EMBEDDED_STORAGE_POLICY } from '../../src/store/embedded-store.ts';
import { aggregatesByDisk, DB, ensureTiering, migrate } from '../../src/store/migrations.ts';
import { openStore } from '../../src/store/open-store.ts';
import { storeQueryRepository } from '../../src/store/query-repository.ts';

const logger = createLogger('test', 'silent');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const dataDir = mkdtempSync(join(tmpdir(), 'adclick-tier-'));
const coldPath = join(dataDir, 'object-storage-standin');
after(() => rmSync(dataDir, { recursive: true, force: true }));

let offset = 0;
function agg(ws: number, clicks: number, ad = 11, camp = 5, adv = 3): SinkMessage {
  return {
    topic: 'click-aggregates', partition: 0, offset: String(offset++), key: null,
    value: Buffer.from(WindowAggregate.encode({
      granularity: 3, adId: ad, campaignId: camp, advertiserId: adv, windowStartMs: ws, windowEndMs: ws + HOUR,
      clicks, final: true, watermarkMs: ws + 2 * HOUR, emittedAtMs: ws + 2 * HOUR, maxReceivedAtMs: ws + 1,
    }).finish()),
  };
}

test('aggregates older than 30 days live on the cold volume and the API returns both tiers', async () => {
  const store = await openStore({ clickhouseUrl: '', dataDir, clickhouseColdPath: coldPath }, logger);
  after(() => store.close());
  assert.equal(store.storagePolicy, EMBEDDED_STORAGE_POLICY);

  // Created as if by a release before tiering: one tier, no TTL move.
  await migrate(store, logger, { storagePolicy: '' });
  const [before] = await store.query<{ storage_policy: string }>(`SELECT storage_policy FROM system.tables WHERE database = '${DB}' AND name = 'click_aggregates'`);
  assert.equal(before!.storage_policy, 'default');
  assert.equal(await ensureTiering(store, logger, store.storagePolicy), 'tiered');
  assert.equal(await ensureTiering(store, logger, store.storagePolicy), 'unchanged', 'a second start changes nothing');

  const now = Date.now();
  const thisHour = Math.floor(now / HOUR) * HOUR;
  const old = [45 * DAY, 40 * DAY, 31 * DAY].map((age) => Math.floor((now - age) / HOUR) * HOUR);
  const recent = [thisHour - 2 * HOUR, thisHour - HOUR];
  const expected = new Map<number, number>();
  [...old, ...recent].forEach((ws, i) => expected.set(ws, 100 + i));
  await writeBatch(store, buildBatch([...expected].map(([ws, c]) => agg(ws, c))));

  // TTL moves run in the background; parts already past 30 days are moved within seconds.
  const deadline = Date.now() + 60_000;
  let disks = await aggregatesByDisk(store);
  while (!(disks.some((d) => d.disk_name === 'cold') && disks.some((d) => d.disk_name === 'default')) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    disks = await aggregatesByDisk(store);
  }
  const parts = await store.query<{ disk_name: string; min_ws: number; max_ws: number }>(
    `SELECT disk_name, toUnixTimestamp(min_time) * 1000 AS min_ws, toUnixTimestamp(max_time) * 1000 AS max_ws
FROM system.parts WHERE database = '${DB}' AND table = 'click_aggregates' AND active`);
  const cutoff = now - 30 * DAY;
  for (const p of parts) {
    // A part's rows share one month; every part whose newest window is past 30 days is cold,
    // every part holding a window of the last 30 days is hot.
    if (p.max_ws < cutoff) assert.equal(p.disk_name, 'cold', `part up to ${new Date(p.max_ws).toISOString()} should be cold`);
    if (p.min_ws >= cutoff) assert.equal(p.disk_name, 'default', `part from ${new Date(p.min_ws).toISOString()} should be hot`);
  }
  assert.ok(parts.some((p) => p.disk_name === 'cold'), `no cold part: ${JSON.stringify(parts)}`);
  assert.ok(parts.some((p) => p.disk_name === 'default'), `no hot part: ${JSON.stringify(parts)}`);
  // The cold volume really is the second directory.
  assert.ok(existsSync(join(coldPath, 'store')) && readdirSync(join(coldPath, 'store')).length > 0, 'cold directory holds table data');

  // The public API reads across both tiers transparently.
  const app = buildQueryApp({ repo: storeQueryRepository(store), logger });
  after(() => app.close());
  const { api_key } = await createApiKey(store, 3);
  const from = new Date(old[0]!).toISOString();
  const to = new Date(thisHour + HOUR).toISOString();
  const res = await app.inject({ url: `/v1/campaigns/5/clicks?granularity=1h&from=${from}&to=${to}`, headers: { authorization: `Bearer ${api_key}` } });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json() as { total_clicks: number; points: { window_start: string; clicks: number }[] };
  const got = new Map(body.points.filter((p) => p.clicks > 0).map((p) => [Date.parse(p.window_start), p.clicks]));
  assert.deepEqual(got, expected);
  assert.equal(body.total_clicks, [...expected.values()].reduce((a, b) => a + b, 0));
  const ad = await app.inject({ url: `/v1/ads/11/clicks?granularity=1h&from=${new Date(old[1]!).toISOString()}&to=${new Date(old[1]! + HOUR).toISOString()}`, headers: { authorization: `Bearer ${api_key}` } });
  assert.equal(ad.statusCode, 200, ad.body);
  assert.equal((ad.json() as { total_clicks: number }).total_clicks, expected.get(old[1]!));
});

// The serving process wired for real: embedded chdb, the sink fed by an injected
// consumer (no broker here), the admin surface on loopback.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadConfig } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { WindowAggregate } from '../../src/shared/proto.ts';
import { startServing } from '../../src/serving.ts';
import type { SinkConsumer } from '../../src/sink/aggregate-sink.ts';
import type { SinkMessage, TopicPartitionOffset } from '../../src/sink/batch.ts';
import { campaignTotals } from '../../src/store/reads.ts';
import { freePort } from '../helpers/kafka.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'adclick-serving-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

test('serving: sink writes to chdb then commits; admin keys need the token; clean stop', async () => {
  let deliver!: (m: SinkMessage[]) => void;
  const commits: TopicPartitionOffset[][] = [];
  const consumer: SinkConsumer = {
    async start(d) { deliver = d; },
    async commit(o) { commits.push(o); },
    pause() {}, resume() {},
    async stop() {},
  };
  const config = loadConfig({}, { dataDir, clickhouseUrl: '', queryPort: 0 });
  const s = await startServing(config, createLogger('test', 'silent'), { adminPort: 0, consumer, sinkMaxWaitMs: 10 });
  try {
    // An hour-aligned time a day ago: inside raw_clicks' 7-day TTL whatever the date (a fixed
    // date stopped working a week after it was written), and long closed.
    const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 26 * 3_600_000;
    const value = Buffer.from(WindowAggregate.encode({ granularity: 1, adId: 1, campaignId: 55, advertiserId: 7, windowStartMs: T0, windowEndMs: T0 + 60_000, clicks: 9, final: true, emittedAtMs: T0 }).finish());
    deliver([{ topic: 'click-aggregates', partition: 0, offset: '0', key: null, value }, { topic: 'click-aggregates', partition: 0, offset: '1', key: null, value }]);
    for (let i = 0; i < 200 && commits.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(commits, [[{ topic: 'click-aggregates', partition: 0, offset: '2' }]]);
    assert.deepEqual(await campaignTotals(s.store, 7), [{ campaign_id: 55, total_clicks: 9 }]);

    const base = `http://127.0.0.1:${s.adminPort}`;
    const token = readFileSync(s.adminTokenPath, 'utf8').trim();
    assert.equal(statSync(s.adminTokenPath).mode & 0o777, 0o600);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.match(await (await fetch(`${base}/metrics`)).text(), /adclick_sink_batch_rows/);
    const post = (path: string, body: unknown, auth = `Bearer ${token}`) =>
      fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json', authorization: auth }, body: JSON.stringify(body) });
    assert.equal((await post('/admin/keys', { advertiser_id: 7 }, 'Bearer wrong')).status, 401);
    assert.equal((await post('/admin/keys', { advertiser_id: -7 })).status, 400);
    const created = await post('/admin/keys', { advertiser_id: 7 });
    assert.equal(created.status, 201);
    const { api_key } = (await created.json()) as { api_key: string };
    assert.match(api_key, /^ak_/);
    assert.equal((await post('/admin/keys/revoke', { api_key })).status, 200);
    assert.equal((await post('/admin/keys/revoke', { api_key: 'ak_nope' })).status, 404);
  } finally {
    await s.stop();
  }
  assert.throws(() => statSync(s.adminTokenPath));
});

test('serving roles (ADCLICK_SERVING_ROLE): query runs no sink, sink runs no query API', async () => {
  const consumer: SinkConsumer = { async start() {}, async commit() {}, pause() {}, resume() {}, async stop() {} };
  const dir = mkdtempSync(join(tmpdir(), 'adclick-roles-'));
  try {
    const queryPort = await freePort();
    const query = await startServing(loadConfig({}, { dataDir: dir, clickhouseUrl: '', queryPort, servingRole: 'query' }), createLogger('test', 'silent'), { adminPort: 0, consumer });
    try {
      assert.equal(query.sink, null, 'role query: no sink');
      assert.equal((await fetch(`http://127.0.0.1:${queryPort}/readyz`)).status, 200, 'role query: the query API answers');
    } finally {
      await query.stop();
    }
    const sinkQueryPort = await freePort();
    const sink = await startServing(loadConfig({}, { dataDir: dir, clickhouseUrl: '', queryPort: sinkQueryPort, servingRole: 'sink' }), createLogger('test', 'silent'), { adminPort: 0, consumer });
    try {
      assert.ok(sink.sink, 'role sink: the sink runs');
      await assert.rejects(fetch(`http://127.0.0.1:${sinkQueryPort}/readyz`), 'role sink: no query API listening');
    } finally {
      await sink.stop();
    }
    assert.throws(() => loadConfig({ ADCLICK_SERVING_ROLE: 'both' }), /ADCLICK_SERVING_ROLE must be all, sink or query/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

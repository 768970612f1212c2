// `adclick reconcile` / `adclick backfill` for real: the CLI code talks to a real serving
// process (embedded chdb, sink fed by an injected consumer) over its loopback admin surface.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runBatch } from '../../src/batch-command.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { ClickEvent, WatermarkProgress, WindowAggregate, WindowAudit } from '../../src/shared/proto.ts';
import { startServing } from '../../src/serving.ts';
import type { SinkConsumer } from '../../src/sink/aggregate-sink.ts';
import type { SinkMessage, TopicPartitionOffset } from '../../src/sink/batch.ts';
import { seriesForAd } from '../../src/store/reads.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'adclick-batch-admin-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

function capture() {
  let text = '';
  return { stream: { write: (s: string) => { text += s; return true; } }, get text() { return text; } };
}

test('adclick reconcile/backfill through the serving admin surface', async () => {
  let deliver!: (m: SinkMessage[]) => void;
  const commits: TopicPartitionOffset[][] = [];
  const consumer: SinkConsumer = { async start(d) { deliver = d; }, async commit(o) { commits.push(o); }, pause() {}, resume() {}, async stop() {} };
  const config = loadConfig({}, { dataDir, clickhouseUrl: '', queryPort: 0 });
  const s = await startServing(config, createLogger('test', 'silent'), { adminPort: 0, consumer, sinkMaxWaitMs: 10 });
  const saved = { dir: process.env.ADCLICK_DATA_DIR, port: process.env.ADCLICK_ADMIN_PORT };
  process.env.ADCLICK_DATA_DIR = dataDir;
  process.env.ADCLICK_ADMIN_PORT = String(s.adminPort);
  try {
    const HOUR = 3_600_000, MIN = 60_000;
    const H = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
    let off = 0;
    const m = (topic: string, value: Uint8Array): SinkMessage => ({ topic, partition: 0, offset: String(off++), key: null, value: Buffer.from(value) });
    const raw = (imp: string, t: number) => m('clicks-deduped', ClickEvent.encode({ impressionId: imp, eventType: 'click', adId: 11, campaignId: 12, advertiserId: 13, eventTimeMs: t, receivedAtMs: t + 3 }).finish());
    const agg = (g: number, ws: number, clicks: number) => m('click-aggregates', WindowAggregate.encode({
      granularity: g, adId: 11, campaignId: 12, advertiserId: 13, windowStartMs: ws, windowEndMs: ws + [0, MIN, 5 * MIN, HOUR][g]!, clicks, final: true, emittedAtMs: ws }).finish());
    const msgs = [
      raw('a', H + 1000), raw('b', H + 2000), raw('c', H + 3000),
      agg(1, H, 3), agg(2, H, 3), agg(3, H, 3),
      agg(1, H, 8), // corrupted: a wrong, higher-version streaming row
      // The job's audit of that minute: 3 records read, all counted.
      m('click-audit', WindowAudit.encode({ windowStartMs: H, bucket: 11, accepted: 3, duplicates: 0, rejected: 0, version: 3, emittedAtMs: Date.now() }).finish()),
      m('click-watermarks', WatermarkProgress.encode({ subtask: 0, parallelism: 1, watermarkMs: H + 2 * HOUR, emittedAtMs: Date.now() }).finish()),
    ];
    deliver(msgs);
    for (let i = 0; i < 300 && commits.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(commits.length, 1);
    const args = ['--from', new Date(H).toISOString(), '--to', String(H + 4 * HOUR)];

    const o1 = capture(), e1 = capture();
    assert.equal(await runBatch('reconcile', args, o1.stream, e1.stream), 1, o1.text + e1.text);
    assert.match(o1.text, /3 windows compared, 1 differ/);
    assert.match(o1.text, /to clamped/);
    assert.match(o1.text, new RegExp(`1m\\t13\\t12\\t11\\t${new Date(H).toISOString()}\\t8\\t3\\t\\+5`));
    // Conservation finds the same window on its own: the job read 3, the API serves 8.
    assert.match(o1.text, /3 windows, 1 unbalanced/);
    assert.match(o1.text, new RegExp(`1m\\t${new Date(H).toISOString()}\\t3\\t8\\t0\\t0\\t0\\t-5`));

    const o2 = capture(), e2 = capture();
    assert.equal(await runBatch('backfill', args, o2.stream, e2.stream), 0, e2.text);
    assert.match(o2.text, /backfill generation 1 over/);
    assert.match(o2.text, /1m: 1 windows recomputed[\s\S]*5m: 1 windows[\s\S]*1h: 1 windows/);
    // The backfilled window is marked revised (additive `revised` flag of the API).
    assert.deepEqual(await seriesForAd(s.store, { advertiserId: 13, adId: 11, granularity: '1m', from: H, to: H + HOUR }), [{ window_start_ms: H, clicks: 3, revised: true }]);

    const o3 = capture();
    assert.equal(await runBatch('reconcile', args, o3.stream, capture().stream), 0, o3.text);
    assert.match(o3.text, /3 windows compared, 0 differ/);
    assert.match(o3.text, /3 windows, 0 unbalanced/);

    // Bad input never reaches the store.
    const e4 = capture();
    assert.equal(await runBatch('backfill', ['--from', 'yesterday', '--to', '1'], capture().stream, e4.stream), 2);
    const e5 = capture();
    assert.equal(await runBatch('backfill', ['--from', String(H - 30 * 24 * HOUR), '--to', String(H)], capture().stream, e5.stream), 1);
    assert.match(e5.text, /older than the raw clicks kept/);
  } finally {
    process.env.ADCLICK_DATA_DIR = saved.dir;
    process.env.ADCLICK_ADMIN_PORT = saved.port;
    if (saved.dir === undefined) delete process.env.ADCLICK_DATA_DIR;
    if (saved.port === undefined) delete process.env.ADCLICK_ADMIN_PORT;
    await s.stop();
  }
});

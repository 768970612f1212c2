// Freshness of the whole pipeline at a steady modest rate (a measurement, not a test):
//   1. click accepted at the gateway → reflected in the query API (1m, 5m and 1h series)
//   2. window end → its final count visible (the point's `final` flag turns true)
// Starts its own stack in a temp dir on free ports (like the e2e test), sends background
// traffic plus one probe click per second to a probe ad, polls the API every 100 ms
// (freshness-probe.ts, shared with bench:pipeline).
// Bounded: runs for ADCLICK_FRESHNESS_SECONDS (default 200 s) and stops by itself.
import { mkdtemp, rm } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/shared/config.ts';
import { createLogger } from '../src/shared/logger.ts';
import { adminRequest } from '../src/shared/admin-client.ts';
import { up } from '../src/stack/up.ts';
import { simulate } from '../src/simulate/simulator.ts';
import { freePort } from '../test/helpers/kafka.ts';
import { pct, probeFreshness } from './freshness-probe.ts';

const seconds = Number(process.argv[2] ?? 200);
const dataDir = await mkdtemp(join(tmpdir(), 'adclick-fresh-'));
const ports = { gatewayPort: await freePort(), queryPort: await freePort(), adminPort: await freePort(), kafkaPort: await freePort(), kafkaControllerPort: await freePort(), flinkUiPort: await freePort() };
const config = loadConfig(process.env, { ...ports, kafkaBrokers: `127.0.0.1:${ports.kafkaPort}`, dataDir, signingKeys: 'fresh:fresh-secret-at-least-32-bytes-long', logLevel: 'warn', rateLimitPerSec: 100_000, rateLimitBurst: 100_000, queryRateLimitPerSec: 10_000, queryRateLimitBurst: 10_000 });
const log = createWriteStream(join(dataDir, 'stack.log'));
const stack = await up(config, { logger: createLogger('freshness', 'warn'), print: (t) => log.write(t), output: (n, l) => log.write(`[${n}] ${l}\n`), color: false });
const stop = async () => { await stack.stop(); log.end(); await rm(dataDir, { recursive: true, force: true }); };
process.once('SIGINT', () => void stop().then(() => process.exit(130)));

try {
  const PROBE_AD = 999_001, PROBE_CAMPAIGN = 999_002, ADV = 999_003;
  const key = (await adminRequest(config, '/admin/keys', { advertiser_id: ADV })).api_key!;
  const gw = `http://127.0.0.1:${config.gatewayPort}`;
  const api = `http://127.0.0.1:${config.queryPort}`;
  const ac = new AbortController();
  const background = simulate({ url: gw, keyId: 'fresh', secret: 'fresh-secret-at-least-32-bytes-long', rate: 200, durationMs: seconds * 1000, batchSize: 20, ads: 2000, campaigns: 200, advertisers: 20, signal: ac.signal });

  const { visible, finals } = await probeFreshness({
    gatewayUrl: gw, apiUrl: api, apiKey: key, keyId: 'fresh', secret: 'fresh-secret-at-least-32-bytes-long',
    adId: PROBE_AD, campaignId: PROBE_CAMPAIGN, advertiserId: ADV, seconds,
  });
  ac.abort();
  await background;
  const rows = [...visible].map(([g, xs]) => ({ measure: `accepted → visible (${g})`, n: xs.length, p50_ms: pct(xs, 50), p99_ms: pct(xs, 99), max_ms: Math.max(...xs) }));
  rows.push({ measure: 'window end → final visible (1m)', n: finals.length, p50_ms: pct(finals, 50), p99_ms: pct(finals, 99), max_ms: Math.max(...finals) });
  console.table(rows);
  console.log(`settings: checkpoint ${config.flinkCheckpointIntervalMs} ms, early fire ${config.flinkEarlyFireMs} ms, out-of-orderness ${config.flinkOutOfOrdernessMs} ms, idleness ${config.flinkIdlenessMs} ms; probe 1 click/s + background 200 clicks/s; ${seconds} s`);
} finally {
  await stop();
}

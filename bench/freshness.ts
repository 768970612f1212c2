// Freshness of the whole pipeline at a steady modest rate (a measurement, not a test):
//   1. click accepted at the gateway → reflected in the query API (1m, 5m and 1h series)
//   2. window end → its final count visible (the point's `final` flag turns true)
// Starts its own stack in a temp dir on free ports (like the e2e test), sends background
// traffic plus one probe click per second to a probe ad, polls the API every 100 ms.
// Bounded: runs for ADCLICK_FRESHNESS_SECONDS (default 200 s) and stops by itself.
import { mkdtemp, rm } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/shared/config.ts';
import { createLogger } from '../src/shared/logger.ts';
import { adminRequest } from '../src/shared/admin-client.ts';
import { signClick } from '../src/shared/signature.ts';
import { up } from '../src/stack/up.ts';
import { simulate } from '../src/simulate/simulator.ts';
import { freePort } from '../test/helpers/kafka.ts';

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

  const accepted: { t: number; ts: number }[] = [];
  const visible = new Map<string, number[]>([['1m', []], ['5m', []], ['1h', []]]);
  const seenCount = { '1m': 0, '5m': 0, '1h': 0 } as Record<string, number>;
  const finals: number[] = [];
  const finalSeen = new Set<number>();
  const t0 = Date.now();
  let seq = 0;
  const sender = setInterval(async () => {
    if (Date.now() - t0 > (seconds - 20) * 1000) return;
    const c = { impression_id: `imp_fresh_${t0}_${++seq}`, event_type: 'click', ad_id: PROBE_AD, campaign_id: PROBE_CAMPAIGN, advertiser_id: ADV, user_id: 'probe', timestamp: Date.now(), key_id: 'fresh' };
    const body = JSON.stringify({ ...c, signature: signClick(c, 'fresh-secret-at-least-32-bytes-long') });
    const res = await fetch(`${gw}/v1/clicks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    if (res.status === 202) accepted.push({ t: Date.now(), ts: c.timestamp });
  }, 1000);

  const deadline = t0 + seconds * 1000;
  while (Date.now() < deadline) {
    const now = Date.now();
    for (const g of ['1m', '5m', '1h'] as const) {
      const res = await fetch(`${api}/v1/ads/${PROBE_AD}/clicks?from=${t0 - 3_600_000}&to=${now + 60_000}&granularity=${g}`, { headers: { authorization: `Bearer ${key}` } });
      if (res.status !== 200) continue;
      const body = (await res.json()) as { total_clicks: number; points: { window_start: string; clicks: number; final: boolean }[] };
      // Each probe click i is visible once the total reaches i+1.
      while (seenCount[g]! < body.total_clicks && seenCount[g]! < accepted.length) {
        visible.get(g)!.push(now - accepted[seenCount[g]!]!.t);
        seenCount[g]!++;
      }
      if (g === '1m') {
        for (const p of body.points) {
          const end = Date.parse(p.window_start) + 60_000;
          if (p.final && p.clicks > 0 && !finalSeen.has(end) && end > t0 + 60_000) {
            finalSeen.add(end);
            finals.push(now - end);
          }
        }
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  clearInterval(sender);
  ac.abort();
  await background;
  const pct = (xs: number[], p: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]! : NaN);
  const rows = [...visible].map(([g, xs]) => ({ measure: `accepted → visible (${g})`, n: xs.length, p50_ms: pct(xs, 50), p99_ms: pct(xs, 99), max_ms: Math.max(...xs) }));
  rows.push({ measure: 'window end → final visible (1m)', n: finals.length, p50_ms: pct(finals, 50), p99_ms: pct(finals, 99), max_ms: Math.max(...finals) });
  console.table(rows);
  console.log(`settings: checkpoint ${config.flinkCheckpointIntervalMs} ms, early fire ${config.flinkEarlyFireMs} ms, out-of-orderness ${config.flinkOutOfOrdernessMs} ms, idleness ${config.flinkIdlenessMs} ms; probe 1 click/s + background 200 clicks/s; ${seconds} s`);
} finally {
  await stop();
}

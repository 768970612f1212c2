// The whole real pipeline for the browser tests, as test/e2e/pipeline-suite.ts starts it:
// Kafka, the Flink job, serving (sink + query API on embedded chdb) and the gateway, in a
// temp dir with free ports. Simulated traffic over the last two hours with a ground-truth
// ledger, then a wait until the query API serves every accepted click.
import { testStackConfig } from '../helpers/stack-config.ts';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminRequest } from '../../src/shared/admin-client.ts';
import type { Config } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { Ledger } from '../../src/simulate/ledger.ts';
import { simulate, type SimulateOptions } from '../../src/simulate/simulator.ts';
import { up, type RunningStack } from '../../src/stack/up.ts';

export const CATALOGUE = { ads: 60, campaigns: 12, advertisers: 3 } as const;
const HOUR = 3_600_000;
const SIGNING = { keyId: 'browser', secret: 'browser-test-secret-at-least-32-bytes' };

export interface RealStack {
  readonly config: Config;
  /** Query API (and dashboard) base URL. */
  readonly api: string;
  readonly gateway: string;
  readonly ledger: Ledger;
  /** campaign id → advertiser id, from the ledger. */
  readonly advertiserOf: ReadonlyMap<number, number>;
  readonly logFile: string;
  /** Sends more clicks (recorded in the same ledger). */
  send(opts: Partial<SimulateOptions> & { count: number }): Promise<void>;
  /** A new API key for the advertiser. */
  createKey(advertiserId: number): Promise<string>;
  revokeKey(apiKey: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startRealStack(log: (line: string) => void): Promise<RealStack> {
  const dataDir = await mkdtemp(join(tmpdir(), 'adclick-browser-'));
  const keep = process.env.ADCLICK_E2E_KEEP === '1';
  const config = await testStackConfig(dataDir, { signingKeys: `${SIGNING.keyId}:${SIGNING.secret}` });
  const logFile = join(dataDir, 'stack.log');
  const out = createWriteStream(logFile);
  let stack: RunningStack | undefined;
  const stop = async () => {
    try {
      await stack?.stop();
    } finally {
      out.end();
      if (!keep) await rm(dataDir, { recursive: true, force: true });
    }
  };
  try {
    const t0 = Date.now();
    stack = await up(config, {
      logger: createLogger('browser-test', 'warn'),
      print: (t) => out.write(t),
      output: (name, line) => out.write(`[${name}] ${line}\n`),
      color: false,
    });
    log(`stack up in ${Date.now() - t0} ms (logs: ${logFile})`);
  } catch (err) {
    await stop();
    throw err;
  }

  const gateway = `http://127.0.0.1:${config.gatewayPort}`;
  const api = `http://127.0.0.1:${config.queryPort}`;
  const ledger = Ledger.inMemory();
  const advertiserOf = new Map<number, number>();
  let seed = 100;

  async function send(opts: Partial<SimulateOptions> & { count: number }): Promise<void> {
    const r = await simulate({
      url: gateway, ...SIGNING, ...CATALOGUE, ledger, seed: seed++, rate: 2000, batchSize: 100,
      duplicateShare: 0.03, maxAttempts: 20, drainTimeoutMs: 60_000, ...opts,
    });
    if (r.unknown.length || r.rejected || r.failed) {
      throw new Error(`simulated traffic not fully accepted: ${JSON.stringify(r.counters)} (${r.unknown.length} unknown)`);
    }
    for (const e of ledger) advertiserOf.set(e.campaign_id, e.advertiser_id);
  }

  return {
    config, api, gateway, ledger, advertiserOf, logFile, send, stop,
    createKey: async (advertiserId) => (await adminRequest(config, '/admin/keys', { advertiser_id: advertiserId })).api_key!,
    revokeKey: async (apiKey) => void (await adminRequest(config, '/admin/keys/revoke', { api_key: apiKey })),
  };
}

/**
 * A few thousand clicks with event times spread over the last two hours (in order, so the
 * watermark closes the older windows while the newest stay open), then waits until every
 * campaign's all-time total in the API equals the ledger.
 */
export async function seedTraffic(stack: RealStack, keys: ReadonlyMap<number, string>, log: (line: string) => void): Promise<void> {
  const count = 3000;
  const start = Date.now() - 2 * HOUR;
  const span = 2 * HOUR - 90_000;
  const t0 = Date.now();
  await stack.send({ count, eventTime: (seq) => start + Math.floor((seq / count) * span) });
  log(`${stack.ledger.size} distinct clicks accepted in ${Date.now() - t0} ms`);
  await waitUntilServed(stack, keys, 240_000);
  log(`the API serves every click ${Date.now() - t0} ms after the traffic started`);
}

/** Until GET /v1/campaigns of every advertiser equals the ledger's per-campaign totals. */
export async function waitUntilServed(stack: RealStack, keys: ReadonlyMap<number, string>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const want = stack.ledger.totalsByCampaign();
    const diffs: string[] = [];
    for (const [adv, key] of keys) {
      const res = await fetch(`${stack.api}/v1/campaigns`, { headers: { authorization: `Bearer ${key}` } });
      const body = (await res.json()) as { campaigns?: { campaign_id: number; total_clicks: number }[] };
      const got = new Map((body.campaigns ?? []).map((c) => [c.campaign_id, c.total_clicks]));
      for (const [campaign, n] of want) {
        if (stack.advertiserOf.get(campaign) === adv && got.get(campaign) !== n) diffs.push(`campaign ${campaign}: api ${got.get(campaign)} ledger ${n}`);
      }
    }
    if (diffs.length === 0) return;
    last = diffs.slice(0, 5).join('; ');
    if (Date.now() > deadline) throw new Error(`the API did not catch up with the ledger in ${timeoutMs} ms: ${last} (logs: ${stack.logFile})`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// The pipeline benchmark's traffic generator, as a process of its own so its CPU is
// measured apart from the stack and from the benchmark's own polling. It runs the
// simulator (signed batches, Zipf ads, duplicates, out-of-order event times) for one
// step and sends back only a summary and the ledger's counts (countLedger): the ledger of
// a long step holds millions of entries, the counts a few thousand.
//
// Shapes: `uniform` is the simulator's Zipf popularity; `hot` gives every second click to
// one ad (the catalogue's first: ad adIdBase of campaign campaignIdBase, so ownership
// stays consistent), i.e. about half of all clicks, the rest Zipf as before.
// Bounded: the simulator stops after durationMs or rate × duration clicks, whichever comes
// first; retries end drainTimeoutMs later; the
// process exits when the benchmark that forked it goes away.
import { countLedger, type LedgerCounts } from '../../src/chaos/checker.ts';
import { simulate, type SimulateProgress } from '../../src/simulate/simulator.ts';
import type { CatalogueAd } from '../../src/simulate/traffic-model.ts';

export type Shape = 'uniform' | 'hot';

export interface GeneratorOptions {
  url: string;
  keyId: string;
  secret: string;
  rate: number;
  durationMs: number;
  batchSize: number;
  concurrency: number;
  seed: number;
  ads: number;
  campaigns: number;
  adIdBase: number;
  campaignIdBase: number;
  advertiserIdBase: number;
  shape: Shape;
}

export interface GeneratorSummary {
  generated: number;
  ledgered: number;
  unknown: number;
  rejected: number;
  failed: number;
  retries: number;
  duplicateSends: number;
  requests: number;
  sendElapsedMs: number;
  elapsedMs: number;
  batchP50Ms: number;
  batchP99Ms: number;
  /** Share of the ledger's clicks on the busiest ad. */
  topAdShare: number;
  /** This process's CPU (all threads) while it generated and drained, seconds. */
  cpuSeconds: number;
}

export type GeneratorMessage =
  | { type: 'progress'; progress: SimulateProgress }
  | { type: 'done'; summary: GeneratorSummary; counts: LedgerCounts }
  | { type: 'error'; message: string };

/** Every second click goes to the hot ad (deterministic: never draws from the model's stream). */
export function hotAttribution(o: Pick<GeneratorOptions, 'adIdBase' | 'campaignIdBase' | 'advertiserIdBase'>): (ad: CatalogueAd, seq: number) => CatalogueAd {
  const hot: CatalogueAd = { ad_id: o.adIdBase, campaign_id: o.campaignIdBase, advertiser_id: o.advertiserIdBase };
  return (ad, seq) => (seq % 2 === 0 ? hot : ad);
}

async function run(o: GeneratorOptions): Promise<void> {
  const send = (m: GeneratorMessage) => new Promise<void>((r) => process.send!(m, undefined, {}, () => r()));
  const cpu0 = process.cpuUsage();
  const r = await simulate({
    url: o.url, keyId: o.keyId, secret: o.secret, rate: o.rate, durationMs: o.durationMs, count: Math.ceil((o.rate * o.durationMs) / 1000),
    batchSize: o.batchSize, concurrency: o.concurrency, seed: o.seed,
    ads: o.ads, campaigns: o.campaigns, advertisers: 1,
    adIdBase: o.adIdBase, campaignIdBase: o.campaignIdBase, advertiserIdBase: o.advertiserIdBase,
    ...(o.shape === 'hot' ? { attribution: hotAttribution(o) } : {}),
    // On a busy box the loop may not run for a while; the offered rate is made up afterwards
    // instead of silently lowered (the simulator's default saves only 50 ms).
    burstMs: 1000,
    drainTimeoutMs: 30_000,
    onProgress: (p) => void send({ type: 'progress', progress: p }), progressIntervalMs: 1000,
  });
  const cpu = process.cpuUsage(cpu0);
  const counts = countLedger(r.ledger);
  const perAd = counts.want['ad|1h'] ?? [];
  const byAd = new Map<string, number>();
  for (const [k, n] of perAd) {
    const ad = k.split('|')[1]!;
    byAd.set(ad, (byAd.get(ad) ?? 0) + n);
  }
  const top = Math.max(0, ...byAd.values());
  await send({
    type: 'done',
    counts,
    summary: {
      generated: r.generated, ledgered: r.ledgered, unknown: r.unknown.length, rejected: r.rejected, failed: r.failed,
      retries: r.counters.retries, duplicateSends: r.duplicateSends, requests: r.counters.requests,
      sendElapsedMs: r.sendElapsedMs, elapsedMs: r.elapsedMs, batchP50Ms: r.latency.p50Ms, batchP99Ms: r.latency.p99Ms,
      topAdShare: counts.total ? top / counts.total : 0,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    },
  });
}

if (process.send) {
  // The benchmark went away (Ctrl-C, crash): stop at once, nothing to hand back to.
  process.once('disconnect', () => process.exit(0));
  process.once('message', (m: { type: 'start'; options: GeneratorOptions }) => {
    run(m.options).then(
      () => process.exit(0),
      (err: unknown) => {
        process.send!({ type: 'error', message: String((err as Error)?.stack ?? err) } satisfies GeneratorMessage, undefined, {}, () => process.exit(1));
      },
    );
  });
}

// `adclick simulate`: realistic signed traffic against a gateway, paced and bounded, with
// a ground-truth ledger of every accepted click. See `adclick simulate --help`.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from '../shared/config.ts';
import { defaultGatewayUrl, parseDuration, parseNumber, resolveSigningKey, UsageError } from './cli-options.ts';
import { simulate, type SimulateOptions, type SimulateProgress, type SimulateResult } from './simulator.ts';

export { simulate };
export type { SimulateOptions, SimulateProgress, SimulateResult };

const HELP = `usage: adclick simulate [options]

Sends signed clicks to the gateway at a paced rate and writes a ledger (NDJSON) of every
click the gateway accepted, once per impression, however often it was sent or retried.

  --rate N             distinct clicks per second (default 500)
  --duration D         stop after D (500ms, 60s, 2m, 1h; default 60s unless --count)
  --count N            stop after N distinct clicks (with --duration: whichever first)
  --url URL            gateway base URL (default from ADCLICK_BIND_HOST/ADCLICK_GATEWAY_PORT)
  --key-id K           signing key id (default: first of ADCLICK_SIGNING_KEYS, else the dev key)
  --secret S           signing secret (with --key-id; else looked up in ADCLICK_SIGNING_KEYS)
  --batch N            0: POST /v1/clicks per click (default); N: /v1/clicks/batch, N per request
  --seed N             traffic seed, for reproducible runs (default 1)
  --run-id ID          part of every impression id (default fresh per run; reusing one makes
                       every click a duplicate of the earlier run)
  --ledger PATH        ledger file, appended to (default <ADCLICK_DATA_DIR>/ledgers/<time>.ndjson)
  --duplicates P       share of clicks sent twice with the identical body (default 0.03)
  --out-of-order P     share of clicks with an older event time (default 0.05)
  --out-of-order-max D how much older at most (default 20s)
  --ads N --campaigns N --advertisers N   catalogue size (default 5000 / 500 / 50)
  --zipf S             ad popularity exponent (default 1.1)
  --users N            distinct users (default 100000)
  --concurrency N      most requests in flight (default 64)
  --max-attempts N     sends per click including retries (default 8)
  --timeout D          per-request timeout (default 5s)
  --drain D            after generation, how long retries may continue (default 30s)
  --json               print the summary as JSON on stdout
  --quiet              no progress line

Exit status: 0 all clicks resolved; 1 some clicks were rejected or given up as not
accepted; 3 some clicks have an unknown outcome (the ledger may undercount); 2 usage error.
`;

export interface CommandIo {
  write(s: string): unknown;
  isTTY?: boolean;
}

export interface SimulateCommandDeps {
  config?: Config;
  stdout?: CommandIo;
  stderr?: CommandIo;
  /** Stops generation early; when absent, SIGINT/SIGTERM do that (a second one exits). */
  signal?: AbortSignal;
  /** Override for the programmatic entry (tests). */
  run?: (o: SimulateOptions) => Promise<SimulateResult>;
}

const OPTIONS = {
  rate: { type: 'string' },
  duration: { type: 'string' },
  count: { type: 'string' },
  url: { type: 'string' },
  'key-id': { type: 'string' },
  secret: { type: 'string' },
  batch: { type: 'string' },
  seed: { type: 'string' },
  'run-id': { type: 'string' },
  ledger: { type: 'string' },
  duplicates: { type: 'string' },
  'out-of-order': { type: 'string' },
  'out-of-order-max': { type: 'string' },
  ads: { type: 'string' },
  campaigns: { type: 'string' },
  advertisers: { type: 'string' },
  zipf: { type: 'string' },
  users: { type: 'string' },
  concurrency: { type: 'string' },
  'max-attempts': { type: 'string' },
  timeout: { type: 'string' },
  drain: { type: 'string' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Turns argv into simulator options (no I/O). */
export function parseSimulateArgs(argv: string[], config: Config, nowMs = Date.now()): { options: SimulateOptions; json: boolean; quiet: boolean; help: boolean } {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = values as Record<string, string | boolean | undefined>;
  const str = (k: string): string | undefined => v[k] as string | undefined;
  const num = (k: string, o: Parameters<typeof parseNumber>[2] = {}): number | undefined => {
    const raw = str(k);
    return raw === undefined ? undefined : parseNumber(raw, k, o);
  };
  const dur = (k: string): number | undefined => {
    const raw = str(k);
    return raw === undefined ? undefined : parseDuration(raw, k);
  };
  const key = resolveSigningKey(config, str('key-id'), str('secret'));
  const url = str('url') ?? defaultGatewayUrl(config);
  try {
    new URL(url);
  } catch {
    throw new UsageError(`--url is not a URL: "${url}"`);
  }
  const stamp = new Date(nowMs).toISOString().replace(/[:.]/g, '-');
  const options: SimulateOptions = {
    url,
    keyId: key.keyId,
    secret: key.secret,
    rate: num('rate', { min: 0.001 }),
    durationMs: dur('duration'),
    count: num('count', { min: 0, integer: true }),
    batchSize: num('batch', { min: 0, max: config.maxBatchClicks, integer: true }),
    seed: num('seed', { integer: true }),
    runId: str('run-id'),
    ledgerPath: str('ledger') ?? join(config.dataDir, 'ledgers', `${stamp}.ndjson`),
    duplicateShare: num('duplicates', { min: 0, max: 1 }),
    outOfOrderShare: num('out-of-order', { min: 0, max: 1 }),
    outOfOrderMaxMs: dur('out-of-order-max'),
    ads: num('ads', { min: 1, integer: true }),
    campaigns: num('campaigns', { min: 1, integer: true }),
    advertisers: num('advertisers', { min: 1, integer: true }),
    zipfExponent: num('zipf', { min: 0 }),
    users: num('users', { min: 1, integer: true }),
    concurrency: num('concurrency', { min: 1, integer: true }),
    maxAttempts: num('max-attempts', { min: 1, integer: true }),
    requestTimeoutMs: dur('timeout'),
    drainTimeoutMs: dur('drain'),
  };
  for (const k of Object.keys(options) as (keyof SimulateOptions)[]) if (options[k] === undefined) delete options[k];
  return { options, json: v.json === true, quiet: v.quiet === true, help: v.help === true };
}

function progressLine(p: SimulateProgress): string {
  return (
    `${(p.elapsedMs / 1000).toFixed(1)}s  sent ${Math.round(p.sendRate)}/s  accepted ${p.accepted}  dup ${p.duplicate}` +
    `  rejected ${p.rejected}  retries ${p.retries}  errors ${p.errors}  pending ${p.pending}  p99 ${p.p99Ms.toFixed(1)}ms`
  );
}

/** The summary printed at the end (JSON-safe: the ledger object and click list are left out). */
export function summarize(r: SimulateResult): Record<string, unknown> {
  const round = (x: number): number => Math.round(x * 10) / 10;
  return {
    runId: r.runId,
    seed: r.seed,
    url: r.url,
    batchSize: r.batchSize,
    ledgerPath: r.ledgerPath,
    stoppedBy: r.stoppedBy,
    generated: r.generated,
    duplicateSends: r.duplicateSends,
    ledgered: r.ledgered,
    ledgerSize: r.ledger.size,
    rejected: r.rejected,
    failed: r.failed,
    unknown: r.unknown.length,
    unknownImpressionIds: r.unknown.slice(0, 20).map((c) => c.impression_id),
    counters: r.counters,
    latency: r.latency,
    sendElapsedMs: Math.round(r.sendElapsedMs),
    elapsedMs: Math.round(r.elapsedMs),
    clicksPerSec: round(r.clicksPerSec),
    requestsPerSec: round(r.requestsPerSec),
  };
}

function humanSummary(r: SimulateResult): string {
  const c = r.counters;
  const codes = (m: Record<string, number>): string => Object.entries(m).map(([k, n]) => `${k}=${n}`).join(' ') || '-';
  return [
    `run ${r.runId} (seed ${r.seed}) → ${r.url}, ${r.batchSize ? `batches of ${r.batchSize}` : 'single clicks'}, stopped by ${r.stoppedBy}`,
    `generated ${r.generated} clicks in ${(r.sendElapsedMs / 1000).toFixed(1)}s (${r.clicksPerSec.toFixed(1)}/s), ${r.duplicateSends} duplicate sends`,
    `answers: accepted ${c.accepted}, duplicate ${c.duplicate}; requests ${c.requests} (${r.requestsPerSec.toFixed(1)}/s), retries ${c.retries}, transport errors ${c.errors} (${codes(c.errorsByKind)})`,
    `retryable answers: ${codes(c.retryableByCode)}; rejected: ${codes(c.rejectedByCode)}`,
    `latency p50 ${r.latency.p50Ms}ms p99 ${r.latency.p99Ms}ms max ${r.latency.maxMs}ms`,
    `ledger: +${r.ledgered} clicks (${r.ledger.size} total) in ${r.ledgerPath ?? '(memory)'}`,
    `not accepted: rejected ${r.rejected}, gave up ${r.failed}; unknown outcome: ${r.unknown.length}`,
    '',
  ].join('\n');
}

export async function runSimulate(argv: string[], deps: SimulateCommandDeps = {}): Promise<number> {
  const stdout = deps.stdout ?? process.stdout;
  const stderr = deps.stderr ?? process.stderr;
  let parsed;
  try {
    parsed = parseSimulateArgs(argv, deps.config ?? loadConfig());
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    stderr.write(`adclick simulate: ${err.message}\n\n${HELP}`);
    return 2;
  }
  if (parsed.help) {
    stdout.write(HELP);
    return 0;
  }
  const { options } = parsed;
  const showProgress = !parsed.quiet && stderr.isTTY === true;
  let signal = deps.signal;
  let cleanup = (): void => {};
  if (!signal) {
    const ac = new AbortController();
    signal = ac.signal;
    let stops = 0;
    const onSignal = (): void => {
      if (++stops > 1) process.exit(130);
      stderr.write('\nstopping: sending what is queued and waiting for answers (again to quit now)\n');
      ac.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    cleanup = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
  }
  let result: SimulateResult;
  try {
    result = await (deps.run ?? simulate)({
      ...options,
      signal,
      onProgress: showProgress ? (p) => stderr.write(`\r\x1b[K${progressLine(p)}`) : undefined,
    });
  } finally {
    cleanup();
    if (showProgress) stderr.write('\n');
  }
  stdout.write(parsed.json ? `${JSON.stringify(summarize(result))}\n` : humanSummary(result));
  if (result.unknown.length) return 3;
  return result.rejected || result.failed ? 1 : 0;
}

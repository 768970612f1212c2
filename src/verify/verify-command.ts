// `adclick verify --ledger FILE...`: compares simulator ledgers with the public query API
// (see ledger-verify.ts) and exits 1 on any difference. API keys: --key ADV=KEY for each
// advertiser, or created for the run through the local stack's admin port and revoked
// again at the end.
import { parseArgs } from 'node:util';
import { adminRequest } from '../shared/admin-client.ts';
import { loadConfig, type Config } from '../shared/config.ts';
import { Ledger, type LedgerEntry } from '../simulate/ledger.ts';
import { parseCommandLine, parseDuration, parseNumber, UsageError } from '../simulate/cli-options.ts';
import { fetchGet, formatMismatch, verifyLedger, type ApiGet, type VerifyReport } from './ledger-verify.ts';

const HELP = `usage: adclick verify --ledger FILE [--ledger FILE ...] [options]

Compares every (campaign, window) and (ad, window) count at 1m, 5m and 1h over the
ledgers' time span with what the query API serves to each click's advertiser. Windows
without a ledger click must serve 0. Prints each mismatch and a summary line.

  --ledger FILE      a simulator ledger (NDJSON); repeat for several (merged, deduplicated)
  --wait D           re-check every 3 s until everything matches or D passes (30s, 5m):
                     late corrections can trail complete_before
  --api URL          query API base URL (default from ADCLICK_BIND_HOST/ADCLICK_QUERY_PORT)
  --key ADV=KEY      the API key of advertiser ADV; repeat. Advertisers without one get a
                     key created through the local stack's admin port (revoked at the end)
  --max-print N      mismatch lines printed at most (default 50; the summary counts all)
  --concurrency N    requests in flight (default 8)
  --json             print the report as JSON on stdout instead

Exit status: 0 every count matches; 1 some differ (or could not be read); 2 usage error.
`;

export interface VerifyCommandDeps {
  readonly config?: Config;
  readonly stdout?: { write(s: string): unknown };
  readonly stderr?: { write(s: string): unknown };
  /** Overrides (tests). */
  readonly get?: ApiGet;
  readonly createKey?: (advertiserId: number) => Promise<string>;
  readonly revokeKey?: (apiKey: string) => Promise<void>;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

export async function runVerify(argv: readonly string[], deps: VerifyCommandDeps = {}): Promise<number> {
  const out = deps.stdout ?? process.stdout;
  const err = deps.stderr ?? process.stderr;
  const args = parseCommandLine(() => parseCli(argv), HELP, out, err);
  if (typeof args === 'number') return args;
  const config = deps.config ?? loadConfig();
  const entries: LedgerEntry[] = [];
  const seen = new Set<string>();
  for (const file of args.ledgers) {
    let ledger: Ledger;
    try {
      ledger = await Ledger.load(file);
    } catch (e) {
      err.write(`cannot read ledger ${file}: ${(e as Error).message}\n`);
      return 2;
    }
    for (const e of ledger) {
      const k = `${e.impression_id}\u0000${e.event_type}`;
      if (!seen.has(k)) {
        seen.add(k);
        entries.push(e);
      }
    }
  }

  const keys = new Map(args.keys);
  const created: string[] = [];
  const createKey = deps.createKey ?? (async (adv: number) => (await adminRequest(config, '/admin/keys', { advertiser_id: adv })).api_key!);
  const revokeKey = deps.revokeKey ?? (async (k: string) => void (await adminRequest(config, '/admin/keys/revoke', { api_key: k })));
  try {
    for (const adv of new Set(entries.map((e) => e.advertiser_id))) {
      if (keys.has(adv)) continue;
      let k: string;
      try {
        k = await createKey(adv);
      } catch (e) {
        err.write(`no --key for advertiser ${adv}, and creating one failed: ${(e as Error).message}\n`);
        return 1;
      }
      keys.set(adv, k);
      created.push(k);
    }

    const get = deps.get ?? fetchGet(args.api ?? defaultQueryUrl(config));
    const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    const now = deps.now ?? Date.now;
    const deadline = now() + args.waitMs;
    let report: VerifyReport;
    let round = 0;
    for (;;) {
      round++;
      report = await verifyLedger({ entries, keyFor: (a) => keys.get(a)!, get, concurrency: args.concurrency, sleep });
      if (report.mismatches.length === 0 || now() >= deadline) break;
      if (!args.json) err.write(`verify: ${report.mismatches.length} mismatches (round ${round}); re-checking until ${new Date(deadline).toISOString()}\n`);
      await sleep(Math.max(0, Math.min(3000, deadline - now())));
    }
    if (args.json) {
      out.write(`${JSON.stringify({ ledgers: args.ledgers, rounds: round, ...report })}\n`);
    } else {
      for (const m of report.mismatches.slice(0, args.maxPrint)) out.write(`MISMATCH ${formatMismatch(m)}\n`);
      if (report.mismatches.length > args.maxPrint) out.write(`... and ${report.mismatches.length - args.maxPrint} more\n`);
      out.write(`${summaryLine(report, args.ledgers.length)}\n`);
    }
    return report.mismatches.length === 0 ? 0 : 1;
  } finally {
    for (const k of created) await revokeKey(k).catch(() => undefined);
  }
}

export function summaryLine(r: VerifyReport, ledgers: number): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const span = r.clicks ? ` ${new Date(r.fromMs).toISOString()} – ${new Date(r.toMs).toISOString()};` : '';
  const head = `verify: ${n(r.clicks)} clicks from ${ledgers} ledger${ledgers === 1 ? '' : 's'} (${n(r.advertisers)} advertisers, ${n(r.campaigns)} campaigns, ${n(r.ads)} ads);${span} ${n(r.windowsCompared)} windows compared at 1m/5m/1h`;
  const open = r.windowsOpen ? `, ${n(r.windowsOpen)} still open` : '';
  if (r.mismatches.length === 0) return `${head}${open}: OK, every count matches`;
  return `${head}${open}: FAILED, ${n(r.mismatches.length)} mismatches (${n(r.missing)} clicks missing, ${n(r.extra)} extra)`;
}

function defaultQueryUrl(config: Config): string {
  let host = config.host;
  if (host === '0.0.0.0' || host === '') host = '127.0.0.1';
  if (host === '::') host = '::1';
  if (host.includes(':')) host = `[${host}]`;
  return `http://${host}:${config.queryPort}`;
}

function parseCli(argv: readonly string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        ledger: { type: 'string', multiple: true },
        wait: { type: 'string' },
        api: { type: 'string' },
        key: { type: 'string', multiple: true },
        'max-print': { type: 'string' },
        concurrency: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  // `--ledger a.ndjson b.ndjson` (a shell glob) is meant as several ledgers.
  const ledgers = [...(v.ledger ?? []), ...parsed.positionals];
  if (v.help) return { help: true as const, ledgers, keys: [], waitMs: 0, maxPrint: 50, concurrency: 8, json: false, api: undefined };
  if (ledgers.length === 0) throw new UsageError('--ledger FILE is required');
  const keys: [number, string][] = (v.key ?? []).map((kv) => {
    const m = /^(\d+)=(\S+)$/.exec(kv);
    const adv = Number(m?.[1]);
    if (!m || !Number.isSafeInteger(adv) || adv <= 0) throw new UsageError(`--key must be ADVERTISER_ID=API_KEY, got "${kv}"`);
    return [adv, m[2]!];
  });
  return {
    help: false as const,
    ledgers,
    keys,
    waitMs: v.wait === undefined ? 0 : parseDuration(v.wait, 'wait'),
    maxPrint: v['max-print'] === undefined ? 50 : parseNumber(v['max-print'], 'max-print', { min: 0, integer: true }),
    concurrency: v.concurrency === undefined ? 8 : parseNumber(v.concurrency, 'concurrency', { min: 1, max: 64, integer: true }),
    json: v.json === true,
    api: v.api,
  };
}

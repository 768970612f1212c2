// `adclick backfill --from <time> --to <time>` / `adclick reconcile --from <time> --to <time>`.
// The work happens inside ClickHouse (src/store/batch-path.ts); with embedded ClickHouse only
// the serving process may open the data directory, so the CLI asks that process over its
// loopback admin port (token in <dataDir>/run/admin.token), as `adclick keys` does.
import { adminRequest } from './shared/admin-client.ts';
import { loadConfig } from './shared/config.ts';

const USAGE = `usage: adclick backfill --from <time> --to <time> [--json]
       adclick reconcile --from <time> --to <time> [--json]
  <time>: ISO 8601 (2026-11-27T10:00:00Z) or epoch milliseconds. Only windows lying fully
  inside [from, to) are touched, and only closed ones (the range is clamped and says so).
  reconcile exits 1 when any window differs, 0 otherwise.
`;

/** ISO 8601 with an explicit zone, or epoch ms; anything else is null. */
export function parseTime(raw: string | undefined): number | null {
  if (raw === undefined || raw === '') return null;
  if (/^\d{1,16}$/.test(raw)) return Number(raw);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(raw)) return null;
  const t = Date.parse(raw);
  return Number.isFinite(t) && t >= 0 ? t : null;
}

function option(argv: string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === name) return argv[i + 1];
    if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
  }
  return undefined;
}

const iso = (ms: unknown) => (typeof ms === 'number' ? new Date(ms).toISOString() : String(ms));

interface Difference { granularity: string; advertiser_id: number; campaign_id: number; ad_id: number; window_start_ms: number; stored: number; recomputed: number }

type Out = { write(text: string): unknown };

export async function runBatch(kind: 'backfill' | 'reconcile', argv: string[], out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    out.write(USAGE);
    return 0;
  }
  const from = parseTime(option(argv, '--from'));
  const to = parseTime(option(argv, '--to'));
  if (from === null || to === null) {
    err.write(`--from and --to are required: ISO 8601 with a zone (…Z) or epoch milliseconds\n${USAGE}`);
    return 2;
  }
  if (to <= from) {
    err.write(`--to must be after --from\n${USAGE}`);
    return 2;
  }
  const json = argv.includes('--json');
  let answer: Record<string, unknown>;
  try {
    answer = await adminRequest(loadConfig(), `/admin/${kind}`, { from_ms: from, to_ms: to });
  } catch (e) {
    err.write(`${(e as Error).message}\n`);
    return 1;
  }
  const range = `[${iso(answer.from_ms)}, ${iso(answer.to_ms)})`;
  const clamped = answer.clamped_by ? `  (to clamped from ${iso(answer.requested_to_ms)}: ${String(answer.clamped_by)})\n` : '';
  if (kind === 'backfill') {
    if (json) out.write(JSON.stringify(answer) + '\n');
    else {
      const windows = (answer.windows ?? {}) as Record<string, number>;
      out.write(`backfill generation ${String(answer.generation)} over ${range}\n${clamped}`);
      for (const g of ['1m', '5m', '1h']) out.write(`  ${g}: ${windows[g] ?? 0} windows recomputed from raw_clicks\n`);
    }
    return 0;
  }
  const diffs = (answer.differences ?? []) as Difference[];
  if (json) out.write(JSON.stringify(answer) + '\n');
  else {
    out.write(`reconcile over ${range}: ${String(answer.windows_compared)} windows compared, ${diffs.length}${answer.truncated ? '+' : ''} differ\n${clamped}`);
    if (diffs.length) {
      out.write('granularity\tadvertiser\tcampaign\tad\twindow_start\tstored\trecomputed\tdiff\n');
      for (const d of diffs) {
        out.write(`${d.granularity}\t${d.advertiser_id}\t${d.campaign_id}\t${d.ad_id}\t${iso(d.window_start_ms)}\t${d.stored}\t${d.recomputed}\t${d.stored - d.recomputed > 0 ? '+' : ''}${d.stored - d.recomputed}\n`);
      }
    }
  }
  return diffs.length > 0 || answer.truncated ? 1 : 0;
}

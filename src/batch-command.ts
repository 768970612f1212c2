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
  reconcile also checks conservation per window (accepted = served + duplicates + rejected,
  from the Flink job's audit) and exits 1 when any window differs or is unbalanced, 0 otherwise.
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

interface ConservationAnswer {
  windows_checked: number;
  /** Only the unbalanced windows. */
  windows: { granularity: string; window_start_ms: number; accepted: number; served: number; late: number; duplicates: number; rejected: number; imbalance: number }[];
  unattributed: { accepted: number; rejected: number };
  totals: { accepted: number; served: number; late: number; duplicates: number; rejected: number };
}

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
  const cons = answer.conservation as ConservationAnswer | undefined;
  const unbalanced = cons ? cons.windows.filter((w) => w.imbalance !== 0) : [];
  const unattributedOff = cons ? cons.unattributed.accepted !== cons.unattributed.rejected : false;
  if (json) out.write(JSON.stringify(answer) + '\n');
  else {
    out.write(`reconcile over ${range}: ${String(answer.windows_compared)} windows compared, ${diffs.length}${answer.truncated ? '+' : ''} differ\n${clamped}`);
    if (diffs.length) {
      out.write('granularity\tadvertiser\tcampaign\tad\twindow_start\tstored\trecomputed\tdiff\n');
      for (const d of diffs) {
        out.write(`${d.granularity}\t${d.advertiser_id}\t${d.campaign_id}\t${d.ad_id}\t${iso(d.window_start_ms)}\t${d.stored}\t${d.recomputed}\t${d.stored - d.recomputed > 0 ? '+' : ''}${d.stored - d.recomputed}\n`);
      }
    }
    if (cons) {
      const t = cons.totals;
      out.write(`conservation (accepted = served + duplicates + rejected; served = streaming + late): ${cons.windows_checked} windows, ${unbalanced.length} unbalanced\n`);
      out.write(`  1m totals: accepted ${t.accepted} = served ${t.served} (late ${t.late}) + duplicates ${t.duplicates} + rejected ${t.rejected}${t.accepted === t.served + t.duplicates + t.rejected ? '' : '  MISMATCH'}\n`);
      out.write(`  dead letters without a time: accepted ${cons.unattributed.accepted}, rejected ${cons.unattributed.rejected}${unattributedOff ? '  MISMATCH' : ''}\n`);
      if (unbalanced.length) {
        out.write('granularity\twindow_start\taccepted\tserved\tlate\tduplicates\trejected\timbalance\n');
        for (const w of unbalanced.slice(0, 200)) {
          out.write(`${w.granularity}\t${iso(w.window_start_ms)}\t${w.accepted}\t${w.served}\t${w.late}\t${w.duplicates}\t${w.rejected}\t${w.imbalance > 0 ? '+' : ''}${w.imbalance}\n`);
        }
      }
    }
  }
  return diffs.length > 0 || answer.truncated || unbalanced.length > 0 || unattributedOff ? 1 : 0;
}

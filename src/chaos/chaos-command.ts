// `adclick chaos [--all | --scenario <name>...] [--clicks N] [--rate N] [--short] [--json] [--keep]`
import { renderTable, runChaosScenarios, type ScenarioResult } from './driver.ts';
import { SCENARIOS } from './scenarios.ts';

const USAGE = `usage: adclick chaos [--all | --scenario <name>...] [--clicks N] [--rate N] [--short] [--json] [--keep]

Drives whole local stacks with signed simulator traffic, injects one fault per scenario,
drains, and compares every (ad, window) and (campaign, window) count at 1m/5m/1h, as
each advertiser sees it, with the ground-truth ledger.

  --all              every scenario (the negative control included)
  --scenario NAME    one scenario (repeatable, or comma-separated)
  --clicks N         distinct clicks per scenario, at least (default 100000; --short: 4000)
  --rate N           distinct clicks per second (default 2500; --short: 300)
  --short            the CI form: small numbers, short pauses and drains
  --json             print the results as JSON (the table goes to stderr)
  --keep             keep the temp dirs (logs, state) of every stack

scenarios:
${SCENARIOS.map((s) => `  ${s.name.padEnd(18)} ${s.description}`).join('\n')}

Exit code 0 when every scenario passed (zero lost, zero duplicated, recovered) and the
negative control was detected; 1 otherwise; 2 for usage errors.
`;

export interface ChaosArgs {
  scenarios: string[];
  clicks: number;
  rate: number;
  short: boolean;
  json: boolean;
  keep: boolean;
}

export function parseChaosArgs(argv: readonly string[]): ChaosArgs | { help: true } | { error: string } {
  let all = false;
  const names: string[] = [];
  let clicks: number | undefined;
  let rate: number | undefined;
  let short = false;
  let json = false;
  let keep = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--all': all = true; break;
      case '--scenario': {
        const v = value();
        if (!v) return { error: '--scenario needs a name' };
        names.push(...v.split(',').map((x) => x.trim()).filter(Boolean));
        break;
      }
      case '--clicks': clicks = Number(value()); if (!Number.isSafeInteger(clicks) || clicks < 1) return { error: '--clicks must be a positive integer' }; break;
      case '--rate': rate = Number(value()); if (!(rate > 0 && Number.isFinite(rate))) return { error: '--rate must be a positive number' }; break;
      case '--short': short = true; break;
      case '--json': json = true; break;
      case '--keep': keep = true; break;
      case '-h': case '--help': return { help: true };
      default: return { error: `unknown option ${a}` };
    }
  }
  if (all && names.length) return { error: 'use either --all or --scenario' };
  if (!all && !names.length) return { error: 'choose --all or --scenario <name>' };
  for (const n of names) if (!SCENARIOS.some((s) => s.name === n)) return { error: `unknown scenario "${n}"` };
  return {
    scenarios: all ? SCENARIOS.map((s) => s.name) : names,
    clicks: clicks ?? (short ? 4000 : 100_000),
    rate: rate ?? (short ? 300 : 2500),
    short, json, keep,
  };
}

export function chaosPassed(results: readonly ScenarioResult[]): boolean {
  return results.length > 0 && results.every((r) => r.passed);
}

export async function runChaos(argv: readonly string[]): Promise<number> {
  const parsed = parseChaosArgs(argv);
  if ('help' in parsed) {
    process.stdout.write(USAGE);
    return 0;
  }
  if ('error' in parsed) {
    process.stderr.write(`adclick chaos: ${parsed.error}\n\n${USAGE}`);
    return 2;
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const results = await runChaosScenarios({
    scenarios: parsed.scenarios, clicks: parsed.clicks, rate: parsed.rate, short: parsed.short, keep: parsed.keep,
    note: log,
    onResult: (r) => log(`${r.name}: ${r.expectDifference ? (r.passed ? 'difference DETECTED (as required)' : 'difference NOT detected') : r.passed ? 'PASS' : 'FAIL'} — sent ${r.sent}, accepted ${r.accepted}, counted ${r.counted}, lost ${r.lost}, duplicated ${r.duplicated}`),
  });
  const table = renderTable(results);
  if (parsed.json) {
    process.stderr.write(`\n${table}`);
    process.stdout.write(`${JSON.stringify({ passed: chaosPassed(results), clicksPerScenario: parsed.clicks, rate: parsed.rate, short: parsed.short, results }, null, 2)}\n`);
  } else {
    process.stdout.write(`\n${table}`);
  }
  return chaosPassed(results) ? 0 : 1;
}

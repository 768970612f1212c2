// Options of `npm run bench:pipeline`: BENCH_* environment variables, each overridable by
// a flag of the same name (`--rates=1000,2000`, `--hold-s=30`, `--shape=both`, ...).
import { parseArgs } from 'node:util';
import type { Shape } from './generator.ts';

export interface PipelineBenchOptions {
  /** The ladder, clicks/s, rising. */
  rates: number[];
  /** Seconds each step holds its rate. */
  holdS: number;
  /** Clicks per POST /v1/clicks/batch. */
  batch: number;
  /** Batch requests in flight at most (the generator's closed loop). */
  concurrency: number;
  shapes: Shape[];
  /** Accepted ≥ offered × (1 − tolerance) for a step to be held. */
  tolerance: number;
  /** Growth over a step (mean of the last third − mean of the first) that still counts as bounded. */
  lagSlackS: number;
  delaySlackS: number;
  /** Longest wait for the counts to equal the ledger after a step. */
  drainS: number;
  /** Seconds of the freshness step at half the held rate (0: none). */
  freshS: number;
  /** Seconds of an unreported first step at the ladder's first rate (JIT, first watermark stored; 0: none). */
  warmupS: number;
  ads: number;
  campaigns: number;
  /** Records of the ProducerPerformance baseline (0: none). */
  baselineRecords: number;
  /** Keep the temp data dir (logs, state) also after a clean run. */
  keep: boolean;
}

const FLAGS = {
  rates: 'BENCH_RATES', 'hold-s': 'BENCH_HOLD_S', batch: 'BENCH_BATCH', concurrency: 'BENCH_CONCURRENCY', shape: 'BENCH_SHAPE',
  tolerance: 'BENCH_TOLERANCE', 'lag-slack-s': 'BENCH_LAG_SLACK_S', 'delay-slack-s': 'BENCH_DELAY_SLACK_S', 'drain-s': 'BENCH_DRAIN_S',
  'fresh-s': 'BENCH_FRESH_S', 'warmup-s': 'BENCH_WARMUP_S', ads: 'BENCH_ADS', campaigns: 'BENCH_CAMPAIGNS', 'baseline-records': 'BENCH_BASELINE_RECORDS', keep: 'BENCH_KEEP',
} as const;

export const USAGE = `npm run bench:pipeline [-- --flag=value ...]   (or the BENCH_* variable of the same name)
  --rates=2500,5000,...   BENCH_RATES             ladder of clicks/s (default 2500,5000,7500,10000,15000,20000)
  --hold-s=180            BENCH_HOLD_S            seconds per step
  --batch=200             BENCH_BATCH             clicks per batch request
  --concurrency=64        BENCH_CONCURRENCY       batch requests in flight at most
  --shape=both            BENCH_SHAPE             uniform | hot | both
  --tolerance=0.03        BENCH_TOLERANCE         accepted may trail offered by this share
  --lag-slack-s=2         BENCH_LAG_SLACK_S       sink lag growth allowed, in seconds of traffic
  --delay-slack-s=5       BENCH_DELAY_SLACK_S     watermark delay growth allowed, seconds
  --drain-s=300           BENCH_DRAIN_S           longest wait for exact counts after a step
  --fresh-s=<hold-s>      BENCH_FRESH_S           freshness step at half the held rate (0: skip)
  --warmup-s=30           BENCH_WARMUP_S          unreported first step at the first rate (0: skip)
  --ads=2000              BENCH_ADS               ads per step (Zipf); campaigns: --campaigns=200
  --baseline-records=1000000 BENCH_BASELINE_RECORDS ProducerPerformance records (0: skip)
  --keep=1                BENCH_KEEP              keep the temp data dir
`;

function num(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number >= ${min}, got "${v}"`);
  return n;
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): PipelineBenchOptions {
  const { values } = parseArgs({ args: argv, options: Object.fromEntries(Object.keys(FLAGS).map((k) => [k, { type: 'string' as const }])), strict: true, allowPositionals: false });
  const get = (flag: keyof typeof FLAGS, def: string): [string, string] => [`--${flag} / ${FLAGS[flag]}`, (values as Record<string, string | undefined>)[flag] ?? env[FLAGS[flag]] ?? def];
  const int = (flag: keyof typeof FLAGS, def: number, min = 1) => {
    const [n, v] = get(flag, String(def));
    const x = num(n, v, min);
    if (!Number.isInteger(x)) throw new Error(`${n} must be an integer, got "${v}"`);
    return x;
  };
  const [rn, rv] = get('rates', '2500,5000,7500,10000,15000,20000');
  const rates = rv.split(',').map((r) => num(rn, r.trim(), 1));
  if (rates.some((r, i) => i > 0 && r <= rates[i - 1]!)) throw new Error(`${rn} must rise, got ${rv}`);
  const [sn, sv] = get('shape', 'both');
  if (!['uniform', 'hot', 'both'].includes(sv)) throw new Error(`${sn} must be uniform, hot or both, got "${sv}"`);
  const holdS = int('hold-s', 180);
  return {
    rates, holdS,
    batch: int('batch', 200), concurrency: int('concurrency', 64),
    shapes: sv === 'both' ? ['uniform', 'hot'] : [sv as Shape],
    tolerance: num(...get('tolerance', '0.03'), 0),
    lagSlackS: num(...get('lag-slack-s', '2'), 0),
    delaySlackS: num(...get('delay-slack-s', '5'), 0),
    drainS: int('drain-s', 300),
    freshS: int('fresh-s', holdS, 0),
    warmupS: int('warmup-s', 30, 0),
    ads: int('ads', 2000), campaigns: int('campaigns', 200),
    baselineRecords: int('baseline-records', 1_000_000, 0),
    keep: ['1', 'true', 'yes'].includes(get('keep', '0')[1]),
  };
}

// `npm run bench:pipeline` — throughput of the whole pipeline on one box (a benchmark,
// never a test; issue 17). It starts its own stack (`up` in a temp data dir on free
// ports, with a redis-server of its own so Redis's CPU is measurable), measures the
// broker's own throughput as the baseline (broker-baseline.ts), then per traffic shape
// (uniform Zipf, hot ad) climbs a ladder of rates, holding each step (pipeline/step.ts),
// until a step is not held; then runs a step at half the highest held rate with the
// freshness probe. Prints one table per shape and writes JSON to bench/results/.
// Every process it starts (stack, redis, generator, the baseline JVM) is stopped on exit,
// failure or Ctrl-C; the stack's children also die with it (setpriv --pdeathsig).
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { adminRequest } from '../src/shared/admin-client.ts';
import { loadConfig } from '../src/shared/config.ts';
import { createLogger } from '../src/shared/logger.ts';
import { startChaosRedis, type ChaosRedis } from '../src/chaos/redis-server.ts';
import { kafkaDistPaths } from '../src/stack/kafka-dist.ts';
import { up, type RunningStack } from '../src/stack/up.ts';
import { freePort } from '../test/helpers/kafka.ts';
import { brokerBaseline, type BaselineResult } from './pipeline/broker-baseline.ts';
import { parseOptions, USAGE } from './pipeline/options.ts';
import { baselineLine, shapeReport } from './pipeline/report.ts';
import { responsivenessLines } from './pipeline/admin-probe.ts';
import { runStep, type StepContext, type StepResult } from './pipeline/step.ts';

if (process.argv.includes('--help')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const options = parseOptions(process.argv.slice(2), process.env);
const note = (line: string) => process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const KEY_ID = 'bench';
const SECRET = 'bench-pipeline-secret-at-least-32-bytes';

const dataDir = await mkdtemp(join(tmpdir(), 'adclick-bench-pipeline-'));
const logFile = join(dataDir, 'stack.log');
const log = createWriteStream(logFile);
let redis: ChaosRedis | undefined;
let stack: RunningStack | undefined;
let generator: ChildProcess | undefined;
let baselinePid: number | undefined;
let failed = false;
let interrupted = false;
let stopping: Promise<void> | undefined;

/** Stops everything this run started, once; the data dir goes too unless kept (or the run failed). */
function stopAll(): Promise<void> {
  stopping ??= (async () => {
    if (generator && generator.exitCode === null) generator.kill('SIGKILL');
    if (baselinePid !== undefined) try { process.kill(baselinePid, 'SIGKILL'); } catch { /* gone */ }
    await stack?.stop().catch((err: unknown) => note(`stopping the stack: ${String(err)}`));
    await redis?.stop().catch(() => undefined);
    await new Promise<void>((r) => log.end(() => r()));
    if (options.keep || failed) note(`kept ${dataDir} (stack log: ${logFile})`);
    else await rm(dataDir, { recursive: true, force: true });
  })();
  return stopping;
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    note(`${sig}: stopping everything this benchmark started`);
    interrupted = true;
    void stopAll().then(() => process.exit(130));
  });
}

const results: { baseline: BaselineResult | null; baselineError: string | null; warmup: StepResult | null; steps: StepResult[] } = { baseline: null, baselineError: null, warmup: null, steps: [] };
const startedAt = new Date();
try {
  // The Kafka jars are cached in the project's data dir (as the tests do), not fetched per run.
  const projectCache = join(loadConfig(process.env).dataDir, 'cache');
  await mkdir(projectCache, { recursive: true });
  await symlink(projectCache, join(dataDir, 'cache'));
  redis = await startChaosRedis();
  const ports = { gatewayPort: await freePort(), queryPort: await freePort(), adminPort: await freePort(), kafkaPort: await freePort(), kafkaControllerPort: await freePort(), flinkUiPort: await freePort() };
  const config = loadConfig(process.env, {
    ...ports, kafkaBrokers: `127.0.0.1:${ports.kafkaPort}`, dataDir, clickhouseUrl: '', redisUrl: redis.url,
    signingKeys: `${KEY_ID}:${SECRET}`, logLevel: 'warn',
    rateLimitPerSec: 10_000_000, rateLimitBurst: 10_000_000, queryRateLimitPerSec: 1_000_000, queryRateLimitBurst: 1_000_000,
    pipelinePollMs: 1000,
  });
  note(`starting the stack in ${dataDir} (log: ${logFile})`);
  stack = await up(config, { logger: createLogger('bench-pipeline', 'warn'), print: (t) => log.write(t), output: (n, l) => log.write(`[${n}] ${l}\n`), color: false });
  const sup = stack.supervisor;
  const keys = new Map<number, string>();
  const ctx: StepContext = {
    gatewayUrl: `http://127.0.0.1:${config.gatewayPort}`,
    apiUrl: `http://127.0.0.1:${config.queryPort}`,
    adminMetricsUrl: `http://127.0.0.1:${config.adminPort}/metrics`,
    adminProbes: {
      'gateway /healthz': `http://127.0.0.1:${config.gatewayPort}/healthz`,
      'gateway /metrics': `http://127.0.0.1:${config.gatewayPort}/metrics`,
      'query API /healthz': `http://127.0.0.1:${config.queryPort}/healthz`,
      'serving admin /readyz': `http://127.0.0.1:${config.adminPort}/readyz`,
      'Flink REST /jobs/overview': `http://127.0.0.1:${config.flinkUiPort}/jobs/overview`,
    },
    keyId: KEY_ID, secret: SECRET,
    async apiKey(adv) {
      let k = keys.get(adv);
      if (!k) keys.set(adv, (k = (await adminRequest(config, '/admin/keys', { advertiser_id: adv })).api_key!));
      return k;
    },
    pids: () => ({
      gateway: sup.get('gateway')?.pid, kafka: sup.get('kafka')?.pid, flink: sup.get('flink')?.pid,
      serving: sup.get('serving')?.pid, redis: redis?.pid(),
    }),
    track: (c) => { generator = c; },
    note, options,
  };

  if (options.baselineRecords > 0) {
    note(`broker baseline: ProducerPerformance, ${options.baselineRecords} records`);
    try {
      results.baseline = await brokerBaseline({
        config, dist: kafkaDistPaths(join(dataDir, 'cache'), config.kafkaVersion), bootstrap: config.kafkaBrokers,
        records: options.baselineRecords, timeoutMs: 300_000, logger: createLogger('bench-pipeline', 'warn'), onChild: (pid) => { baselinePid = pid; },
      });
    } catch (err) {
      results.baselineError = (err as Error).message;
    }
    note(baselineLine(results.baseline, results.baselineError));
  }

  let index = 0;
  if (options.warmupS > 0) {
    // A fresh broker and Flink JVM are still compiling, and no watermark is stored yet: the
    // first step would measure start-up, not the pipeline.
    note(`warm-up: ${options.rates[0]!.toLocaleString('en-US')} clicks/s for ${options.warmupS} s (not reported)`);
    results.warmup = await runStep(ctx, options.shapes[0]!, 'warmup', ++index, options.rates[0]!, options.warmupS);
  }
  for (const shape of options.shapes) {
    let held: number | null = null;
    for (const rate of options.rates) {
      note(`${shape}: step ${rate.toLocaleString('en-US')} clicks/s for ${options.holdS} s`);
      const r = await runStep(ctx, shape, 'ladder', ++index, rate, options.holdS);
      results.steps.push(r);
      note(`  ${r.held ? 'held' : `NOT held: ${r.why.join('; ')}`}`);
      for (const line of responsivenessLines(r.responsiveness)) note(line);
      if (!r.held) break;
      held = rate;
    }
    if (held !== null && options.freshS > 0) {
      const half = Math.max(1, Math.round(held / 2));
      note(`${shape}: freshness step at half the held rate, ${half.toLocaleString('en-US')} clicks/s for ${options.freshS} s`);
      results.steps.push(await runStep(ctx, shape, 'freshness', ++index, half, options.freshS));
    }
  }

  const load = (await import('node:os')).loadavg();
  process.stdout.write(`\n${baselineLine(results.baseline, results.baselineError)}\n`);
  for (const shape of options.shapes) process.stdout.write(`${shapeReport(shape, results.steps.filter((s) => s.shape === shape), results.baseline)}\n`);
  const heldOf = (shape: string) => results.steps.filter((x) => x.shape === shape && x.kind === 'ladder' && x.held).at(-1)?.rate;
  const [u, h] = [heldOf('uniform'), heldOf('hot')];
  if (options.shapes.length === 2) process.stdout.write(`\nhot / uniform held rate: ${u && h ? (h / u).toFixed(2) : 'n/a'} (${h ?? 'none'} / ${u ?? 'none'})\n`);
  process.stdout.write(`\nµs = CPU µs per accepted click per process tree (/proc utime+stime incl. threads and reaped children), from the step's start until the sink caught up; total = the pipeline's processes (+ the generator). Load average at the end ${load.map((x) => x.toFixed(1)).join(' ')} on ${cpus().length} CPUs.\n`);

  const resultsDir = join(fileURLToPath(new URL('.', import.meta.url)), 'results');
  await mkdir(resultsDir, { recursive: true });
  const file = join(resultsDir, `pipeline-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify({
    startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), options,
    machine: { cpus: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), loadAvgAtEnd: load },
    stack: { gatewayWorkers: config.gatewayWorkers, flinkParallelism: config.flinkParallelism, clicksPartitions: config.clicksPartitions, checkpointIntervalMs: config.flinkCheckpointIntervalMs, earlyFireMs: config.flinkEarlyFireMs, flinkHeap: config.flinkHeap },
    ...results,
  }, null, 2));
  note(`results: ${file}`);
} catch (err) {
  // After a Ctrl-C the step in progress fails as its generator is killed: not a failure.
  if (interrupted) await stopping;
  failed = true;
  process.stderr.write(`bench:pipeline failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  await stopAll();
}

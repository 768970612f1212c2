// `adclick up`: Kafka dist → broker → topics → Redis check → services, each healthy
// before the next. Services are a list of specs so the Flink job and the serving process
// slot in without touching the sequence.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { configToEnv, flinkRestUrlFor, SETTINGS, signingKeysFor, type Config } from '../shared/config.ts';
import { redactUrl } from '../shared/redact-url.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { chooseRestorePoint, clearStopMarker, flinkStateFiles, type RestorePoint } from './checkpoints.ts';
import { ensureFlinkJar, flinkJarPath } from './flink-jar.ts';
import { ensureKafkaDist } from './kafka-dist.ts';
import { brokerBootstrap, brokerServiceSpec } from './kafka-broker.ts';
import { ensurePrivateDir, isAlive, readSupervisorPid } from './pid-files.ts';
import { Supervisor, stopFromPidFiles, type ServiceSpec } from './supervisor.ts';
import { ensureTopics, pipelineTopics } from './topics.ts';
import { engineEnv } from './jvm-env.ts';
import { SERVING_NODE_FLAGS } from '../shared/serving-flags.ts';

export const DEFAULT_REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** What every service factory gets. */
export interface StackContext {
  readonly config: Config;
  readonly repoRoot: string;
  /** Bootstrap of the broker this stack runs. */
  readonly kafkaBootstrap: string;
  /** Whether Redis answered a PING at start-up. */
  readonly redisReachable: boolean;
  /** Environment for the Node services: inherited + this config + the stack's addresses (see serviceEnv). */
  readonly childEnv: NodeJS.ProcessEnv;
  /** The environment `childEnv` was built from (the Flink JVM gets an allow-list of it). */
  readonly baseEnv?: NodeJS.ProcessEnv;
  /** The launcher's logger (default: a new one at config.logLevel). */
  readonly logger?: Logger;
}

export interface UpOptions {
  readonly logger: Logger;
  readonly repoRoot?: string;
  /** Services started after Kafka, in order. Default: defaultServices(). */
  readonly services?: (ctx: StackContext) => ServiceSpec[];
  /** Options passed through to the supervisor (output sink, colour). */
  readonly output?: (name: string, line: string, stream: 'stdout' | 'stderr') => void;
  readonly color?: boolean;
  /** Where the summary goes (default process.stdout). */
  readonly print?: (text: string) => void;
  /** Broker JVM heap, e.g. '1g' (default). */
  readonly kafkaHeapMax?: string;
  /** Redis PING timeout (default 1500 ms). */
  readonly redisTimeoutMs?: number;
}

export interface RunningStack {
  readonly supervisor: Supervisor;
  readonly context: StackContext;
  readonly summary: string;
  stop(): Promise<void>;
}

/**
 * Environment of the Node services: the inherited one without any AdClick setting, plus
 * `config` (which may carry overrides). An inherited value cannot stand in for a setting
 * the config leaves unset (an unset ADCLICK_SIGNING_KEYS must stay unset).
 */
export function serviceEnv(config: Config, base: NodeJS.ProcessEnv, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const s of Object.values(SETTINGS)) delete env[s.env];
  return { ...env, ...configToEnv(config), ...extra };
}

/** Environment of the Flink job JVM: an allow-list of the inherited one (jvm-env.ts). */
export const flinkJobEnv = (base: NodeJS.ProcessEnv): NodeJS.ProcessEnv => engineEnv(base);

export const runDirOf = (config: Pick<Config, 'dataDir'>) => join(config.dataDir, 'run');
export const checkpointDirOf = (config: Pick<Config, 'dataDir'>) => join(config.dataDir, 'flink', 'checkpoints');

/** PING Redis once with a short timeout; never throws. */
export async function redisAnswers(url: string, timeoutMs = 1500): Promise<boolean> {
  if (!url) return false;
  const redis = new Redis(url, {
    lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false,
  });
  redis.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  try {
    await redis.connect();
    return (await Promise.race([redis.ping(), new Promise<string>((r) => { timer = setTimeout(() => r('timeout'), timeoutMs); })])) === 'PONG';
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}

export function gatewayService(ctx: StackContext): ServiceSpec {
  const { config } = ctx;
  // The gateway would refuse to start (dev key on a public bind): say so before anything waits on it.
  signingKeysFor(config);
  return {
    name: 'gateway',
    command: process.execPath,
    args: ['--import', 'tsx', join('src', 'gateway', 'main.ts')],
    cwd: ctx.repoRoot,
    env: { ...ctx.childEnv, ADCLICK_GATEWAY_PORT: String(config.gatewayPort) },
    health: { kind: 'http', url: `http://${urlHost(config.host)}:${config.gatewayPort}/readyz` },
    readyTimeoutMs: 60_000,
    restart: { when: 'on-failure' },
  };
}

/** The job's flags common to the local MiniCluster and a session cluster (cluster/flink-cluster.ts submits with them). */
export function flinkJobFlags(config: Config, kafkaBootstrap: string, checkpointDir: string): string[] {
  return [
    '--bootstrap-servers', kafkaBootstrap,
    '--checkpoint-dir', checkpointDir,
    '--checkpoint-interval-ms', String(config.flinkCheckpointIntervalMs),
    '--out-of-orderness-ms', String(config.flinkOutOfOrdernessMs),
    '--idleness-ms', String(config.flinkIdlenessMs),
    '--allowed-lateness-ms', String(config.flinkAllowedLatenessMs),
    '--early-fire-interval-ms', String(config.flinkEarlyFireMs),
    '--parallelism', String(config.flinkParallelism),
    // Dedup state must outlive the oldest click the gateway accepts (plus skew).
    '--dedup-ttl-ms', String(config.maxClickAgeMs + config.maxClockSkewMs + 3_600_000),
  ];
}

/**
 * The Flink job in a local MiniCluster (its own JVM). Before every start (args are
 * recomputed each time) it picks its restore point: the newest completed checkpoint or
 * savepoint (`<dataDir>/flink/savepoints`, see `adclick savepoint`), skipping one that
 * starts already failed from twice without a newer checkpoint completing, and removes
 * checkpoint job directories no restore can need (checkpoints.ts chooseRestorePoint).
 */
export function flinkJobService(ctx: StackContext, jar = flinkJarPath(ctx.repoRoot)): ServiceSpec {
  const { config } = ctx;
  const checkpointDir = checkpointDirOf(config);
  const files = flinkStateFiles(config.dataDir);
  const log = (ctx.logger ?? createLogger('stack', config.logLevel)).child({ module: 'flink-restore' });
  const chooseRestore = (attempt: number): RestorePoint | 'refuse' | undefined => {
    const c = chooseRestorePoint({ checkpointDir, savepointDir: files.savepointDir, stateFile: files.stateFile });
    if (c.stateError) log.warn({ file: files.stateFile, err: c.stateError }, 'cannot write the restore bookkeeping: a failing restore point will not be skipped');
    if (c.removed.length) log.info({ removed: c.removed }, 'removed checkpoint directories older than every restore point kept');
    if (c.skipped.length) log.warn({ skipped: c.skipped.map((p) => p.path) }, 'skipping restore points the job failed to get past (started from twice, no newer checkpoint completed)');
    if (c.exhausted) {
      const msg = `every restore point of the Flink job was given up on (${c.skipped.map((p) => p.path).join(', ')}); ` +
        'starting without state would lose the dedup and window state, so the job is not started. Look at the job\'s log, then ' +
        `delete ${files.stateFile} to try them again, or remove ${checkpointDir} (and savepoints) to start from nothing on purpose`;
      // `adclick up` fails with this message. A restart cannot: the supervisor would leave
      // the job in backoff for good when args throw, so the JVM is made to fail at once
      // instead, until the supervisor gives up and the stack stops.
      if (attempt === 0) throw new Error(msg);
      log.error(msg);
      return 'refuse';
    }
    if (clearStopMarker(files.stopMarker)) log.info('the job was stopped with a savepoint; starting it again');
    if (c.point) {
      log[c.starts > 1 || c.skipped.length ? 'warn' : 'info']({ restoreFrom: c.point.path, kind: c.point.kind, start: c.starts },
        c.starts > 1 ? `starting the Flink job from the same ${c.point.kind} again (start ${c.starts}; after 2 without a newer checkpoint the next start falls back to an older one)` : `starting the Flink job from its newest usable ${c.point.kind}`);
    } else log.info('no checkpoint or savepoint yet: starting the Flink job without state');
    return c.point;
  };
  // Niced on the one box (ADCLICK_FLINK_NICE): under overload the JVM's many threads would
  // otherwise out-compete the single event-loop threads that answer clicks, queries and
  // health checks. `nice` execs java in place: the pid stays the JVM's, and the pid file
  // names java (`program`), or status would call the live JVM dead.
  const niced = config.flinkNice > 0 ? ['-n', String(config.flinkNice), 'java'] : [];
  return {
    name: 'flink',
    command: niced.length ? 'nice' : 'java',
    program: 'java',
    args: ({ attempt }) => {
      const restore = chooseRestore(attempt);
      if (restore === 'refuse') return [...niced, '-XX:+AdClickEveryRestorePointGivenUp']; // "Unrecognized VM option": exit 1
      return [...niced,
        `-Xmx${config.flinkHeap}`, '-cp', jar, 'io.adclick.flink.ClickAggregationJob',
        ...flinkJobFlags(config, ctx.kafkaBootstrap, checkpointDir),
        '--web-ui-port', String(config.flinkUiPort),
        '--web-ui-bind-address', config.flinkBindHost,
        ...(restore ? ['--restore-from', restore.path] : []),
      ];
    },
    cwd: ctx.repoRoot,
    env: flinkJobEnv(ctx.baseEnv ?? process.env),
    // `adclick status` re-checks from outside through the job's REST API (a RUNNING job).
    health: { kind: 'line', pattern: 'ADCLICK_FLINK_READY', outside: { kind: 'http', url: `${flinkRestUrlFor({ ...config, flinkRestUrl: '' })}/jobs/overview`, bodyIncludes: '"state":"RUNNING"' } },
    readyTimeoutMs: 180_000,
    stopTimeoutMs: 30_000,
    restart: { when: 'on-failure', backoffMs: 2000 },
  };
}

/** The serving process: embedded ClickHouse (or a server), the sink and the query API. */
export function servingService(ctx: StackContext): ServiceSpec {
  const { config } = ctx;
  return {
    name: 'serving',
    command: process.execPath,
    args: [...SERVING_NODE_FLAGS, '--import', 'tsx', join('src', 'serving.ts')],
    cwd: ctx.repoRoot,
    env: ctx.childEnv,
    health: { kind: 'http', url: `http://${urlHost(config.host)}:${config.queryPort}/readyz` },
    readyTimeoutMs: 120_000,
    stopTimeoutMs: config.stopTimeoutMs,
    restart: { when: 'on-failure', backoffMs: 1000 },
  };
}

/** Services after Kafka, in start order: the job first (so nothing waits on it), then serving, then the gateway. */
export function defaultServices(ctx: StackContext): ServiceSpec[] {
  return [flinkJobService(ctx), servingService(ctx), gatewayService(ctx)];
}

function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Bring the local stack up and return it running. Throws (after stopping whatever it
 * started) when a part does not become healthy.
 */
export async function up(config: Config, opts: UpOptions): Promise<RunningStack> {
  const log = opts.logger;
  const print = opts.print ?? ((t: string) => process.stdout.write(t));
  const repoRoot = opts.repoRoot ?? DEFAULT_REPO_ROOT;
  const runDir = runDirOf(config);

  await ensurePrivateDir(config.dataDir);
  await ensurePrivateDir(runDir);
  const running = await readSupervisorPid(runDir);
  if (running !== undefined && running !== process.pid && isAlive(running)) {
    throw new Error(`an AdClick stack is already running (supervisor pid ${running}); run \`adclick down\` first`);
  }
  // Leftovers of a supervisor that was killed hard: stop them so ports are free.
  const leftovers = await stopFromPidFiles(runDir, log);
  if (leftovers.stopped.length) log.warn({ processes: leftovers.stopped }, 'stopped processes left over from an earlier run');

  const dist = await ensureKafkaDist({ cacheDir: join(config.dataDir, 'cache'), version: config.kafkaVersion, logger: log });
  // Build (or skip) before anything runs, so a long first build keeps no broker waiting.
  if (!opts.services) await ensureFlinkJar(repoRoot, log);

  const supervisor = new Supervisor({ runDir, logger: log, output: opts.output, color: opts.color });
  await supervisor.claim();
  try {
    const kafkaHost = '127.0.0.1';
    const kafkaBootstrap = brokerBootstrap({ host: kafkaHost, port: config.kafkaPort });
    if (config.kafkaBrokers !== kafkaBootstrap) {
      log.warn({ KAFKA_BROKERS: config.kafkaBrokers, local: kafkaBootstrap }, 'KAFKA_BROKERS differs from the local broker; services started by `up` use the local broker');
    }
    await supervisor.start(brokerServiceSpec({
      dist, stateDir: join(config.dataDir, 'kafka'), host: kafkaHost, port: config.kafkaPort,
      controllerPort: config.kafkaControllerPort, heapMax: opts.kafkaHeapMax ?? config.kafkaHeapMax, readyTimeoutMs: config.kafkaReadyTimeoutMs, logger: log,
      restart: { when: 'on-failure' },
    }));
    await ensureTopics(kafkaBootstrap, pipelineTopics(config), log);

    const redisReachable = await redisAnswers(config.redisUrl, opts.redisTimeoutMs);
    if (!redisReachable) {
      log.warn({ redisUrl: config.redisUrl ? redactUrl(config.redisUrl) : 'none' },
        '!!! Redis is NOT reachable: the gateway runs fail-open WITHOUT edge dedup, and rate limiting falls back to in-process. Counts stay exact (Flink dedups), but duplicates reach Kafka. !!!');
    }

    // Children get exactly this config (which may carry overrides), not just our env.
    const childEnv = serviceEnv(config, process.env, { KAFKA_BROKERS: kafkaBootstrap });
    const context: StackContext = { config, repoRoot, kafkaBootstrap, redisReachable, childEnv, baseEnv: process.env, logger: log };
    const services = (opts.services ?? defaultServices)(context);
    for (const spec of services) {
      const entry = spec.command === process.execPath && Array.isArray(spec.args) ? (spec.args as readonly string[]).find((a) => a.endsWith('.ts')) : undefined;
      if (entry && !existsSync(join(spec.cwd ?? repoRoot, entry))) {
        throw new Error(`cannot start ${spec.name}: ${entry} does not exist under ${spec.cwd ?? repoRoot}`);
      }
      await supervisor.start(spec);
    }

    const summary = renderSummary(context, services, supervisor);
    print(summary);
    return { supervisor, context, summary, stop: () => supervisor.stopAll() };
  } catch (err) {
    await supervisor.stopAll();
    throw err;
  }
}

export function renderSummary(ctx: StackContext, services: readonly ServiceSpec[], sup: Pick<Supervisor, 'get'>): string {
  const { config } = ctx;
  const h = urlHost(config.host);
  const rows: [string, string][] = [['kafka', `${ctx.kafkaBootstrap}  (pid ${sup.get('kafka')?.pid})`]];
  for (const s of services) {
    const url = s.name === 'gateway' ? `http://${h}:${config.gatewayPort}  (POST /v1/clicks)` :
      s.health?.kind === 'http' ? s.health.url : '';
    rows.push([s.name, `${url}  (pid ${sup.get(s.name)?.pid})`.trim()]);
  }
  const redis = config.redisUrl ? redactUrl(config.redisUrl) : '';
  rows.push(['redis', ctx.redisReachable ? redis : `UNREACHABLE (${redis || 'unset'}): fail-open, no edge dedup`]);
  rows.push(['data dir', config.dataDir]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return `\nAdClick stack is up (Ctrl-C or \`adclick down\` to stop)\n${rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n')}\n\n`;
}

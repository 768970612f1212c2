// One whole local stack for chaos scenarios, started by the real launcher (`up`) in a
// temp dir on free ports: Kafka, the Flink job, serving (sink + query API), gateway, plus
// the chaos run's own redis-server and, in server mode, a ClickHouse server.
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../shared/config.ts';
import { pino } from 'pino';
import { adminRequest } from '../shared/admin-client.ts';
import { checkpointDirOf, up, type RunningStack } from '../stack/up.ts';
import { startChaosClickHouse, type ChaosClickHouse } from './clickhouse.ts';
import { startChaosRedis, type ChaosRedis } from './redis-server.ts';
import { freePort } from './util.ts';

export type StackKind = 'embedded' | 'server' | 'negative';

export interface ChaosStack {
  readonly kind: StackKind;
  readonly config: Config;
  readonly dataDir: string;
  readonly logFile: string;
  readonly stack: RunningStack;
  readonly redis: ChaosRedis;
  readonly clickhouse: ChaosClickHouse | null;
  readonly gatewayUrl: string;
  readonly apiUrl: string;
  readonly checkpointDir: string;
  /** File whose existence makes the sink crash between insert and commit (see config). */
  readonly sinkCrashFile: string;
  readonly keyId: string;
  readonly secret: string;
  /** A query API key for the advertiser (created on first use). */
  apiKey(advertiserId: number): Promise<string>;
  /** Stop everything; the temp dir is removed unless `keep` (or the stack option) says otherwise. */
  stop(keep?: boolean): Promise<void>;
}

export interface ChaosStackOptions {
  readonly kind: StackKind;
  /** Keep the temp dir (logs, state) after stopping. */
  readonly keep?: boolean;
  /** One-line progress notes. */
  readonly note?: (line: string) => void;
  readonly checkpointIntervalMs?: number;
  /** Config a scenario needs on top of the chaos defaults (e.g. compressed time); applied last. */
  readonly config?: Partial<Config>;
}

export async function startChaosStack(o: ChaosStackOptions): Promise<ChaosStack> {
  const dataDir = await mkdtemp(join(tmpdir(), `adclick-chaos-${o.kind}-`));
  const logFile = join(dataDir, 'stack.log');
  const log: WriteStream = createWriteStream(logFile);
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async (keep?: boolean) => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await new Promise<void>((r) => log.end(() => r()));
    if (!(keep ?? o.keep)) await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    const redis = await startChaosRedis();
    cleanups.push(() => redis.stop());
    let clickhouse: ChaosClickHouse | null = null;
    if (o.kind === 'server') {
      clickhouse = await startChaosClickHouse();
      cleanups.push(() => clickhouse!.stop());
    }
    const ports = { gatewayPort: await freePort(), queryPort: await freePort(), adminPort: await freePort(), kafkaPort: await freePort(), kafkaControllerPort: await freePort(), flinkUiPort: await freePort() };
    const sinkCrashFile = join(dataDir, 'run', 'fault-sink-crash');
    const config: Config = loadConfig(process.env, {
      ...ports,
      kafkaBrokers: `127.0.0.1:${ports.kafkaPort}`,
      dataDir,
      redisUrl: redis.url,
      clickhouseUrl: clickhouse?.url ?? '',
      clickhouseTimeoutMs: 5000,
      signingKeys: 'chaos:chaos-secret-at-least-32-bytes-long',
      rateLimitPerSec: 1_000_000,
      rateLimitBurst: 1_000_000,
      queryRateLimitPerSec: 100_000,
      queryRateLimitBurst: 100_000,
      flinkCheckpointIntervalMs: o.checkpointIntervalMs ?? 2000,
      flinkHeap: '768m',
      kafkaHeapMax: '512m',
      sinkRetryMaxMs: 2000,
      // The clickhouse-down scenario keeps the server down past it: the consumer replacement is attacked too.
      ...(o.kind === 'server' ? { sinkMaxWaitForRoomMs: 5000 } : {}),
      stopTimeoutMs: 10_000,
      logLevel: 'warn',
      faultSinkCrashFile: sinkCrashFile,
      faultUnsafeGatewayAckFirst: o.kind === 'negative',
      ...o.config,
    });
    // The supervisor's own log lines go to the stack log too (stdout stays clean for --json).
    const logger = pino({ level: 'info', base: { service: 'chaos-supervisor' }, timestamp: pino.stdTimeFunctions.isoTime }, log);
    const t0 = Date.now();
    const stack = await up(config, {
      logger,
      print: (t) => log.write(t),
      output: (name, line) => log.write(`[${name}] ${line}\n`),
      color: false,
    });
    cleanups.push(() => stack.stop());
    o.note?.(`${o.kind} stack up in ${Date.now() - t0} ms (logs: ${logFile})`);
    const keys = new Map<number, string>();
    return {
      kind: o.kind, config, dataDir, logFile, stack, redis, clickhouse,
      gatewayUrl: `http://127.0.0.1:${config.gatewayPort}`,
      apiUrl: `http://127.0.0.1:${config.queryPort}`,
      checkpointDir: checkpointDirOf(config),
      sinkCrashFile,
      keyId: 'chaos',
      secret: 'chaos-secret-at-least-32-bytes-long',
      async apiKey(adv) {
        let k = keys.get(adv);
        if (!k) {
          k = (await adminRequest(config, '/admin/keys', { advertiser_id: adv })).api_key!;
          keys.set(adv, k);
        }
        return k;
      },
      stop: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

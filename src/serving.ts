// The "serving" process: owns the ClickHouse store (with embedded chdb it must be the
// only process on the data directory), runs migrations, the Kafka→ClickHouse sink and
// the query API, plus a loopback-only admin surface so the CLI can manage API keys and
// run the batch path (backfill, reconcile) without opening the data directory itself.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { flinkRestUrlsFor, loadConfig, type Config } from './shared/config.ts';
import { errorBody, type ErrorCode } from './shared/errors.ts';
import { createLogger, type Logger } from './shared/logger.ts';
import { AggregateSink, type SinkConsumer } from './sink/aggregate-sink.ts';
import { SINK_TOPICS } from './sink/batch.ts';
import { createKafkaSinkConsumer } from './sink/kafka-consumer.ts';
import { createConsumerLagReader, createPartitionEndsReader } from './sink/consumer-lag.ts';
import { PipelinePoller } from './observability/pipeline-poller.ts';
import { createApiKey, revokeApiKey } from './store/api-keys.ts';
import { backfill, planRange, reconcile } from './store/batch-path.ts';
import { conservation } from './store/audit.ts';
import { startConservationMonitor } from './store/conservation-monitor.ts';
import { completeBefore } from './store/reads.ts';
import { ensureTiering, migrate, type MigrationOptions } from './store/migrations.ts';
import { openStore } from './store/open-store.ts';
import { storeQueryRepository } from './store/query-repository.ts';
import { buildQueryApp } from './query/app.ts';
import type { Store } from './store/store.ts';

export interface ServingOptions {
  /** Admin port on 127.0.0.1 (default 8089; 0 = any free port). */
  readonly adminPort?: number;
  readonly sinkMaxRows?: number;
  readonly sinkMaxWaitMs?: number;
  readonly migrations?: MigrationOptions;
  /** Replace the Kafka consumer (tests); null disables the sink. */
  readonly consumer?: SinkConsumer | null;
  /** Start the query API (default true). */
  readonly queryApi?: boolean;
  readonly store?: Store;
}

export interface Serving {
  readonly store: Store;
  readonly sink: AggregateSink | null;
  readonly adminPort: number;
  readonly adminTokenPath: string;
  stop(): Promise<void>;
}

interface Closable { close(): Promise<unknown> | unknown }

export async function startServing(config: Config, logger: Logger, opts: ServingOptions = {}): Promise<Serving> {
  const log = logger.child({ module: 'serving' });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const store = opts.store ?? (await openStore(config, logger));
  const closers: (() => Promise<void>)[] = [];
  try {
    const migrations = opts.migrations ?? { storagePolicy: store.storagePolicy };
    await migrate(store, logger, migrations);
    await ensureTiering(store, logger, migrations.storagePolicy ?? '');

    let sink: AggregateSink | null = null;
    let closeEnds: (() => Promise<void>) | null = null;
    // ADCLICK_SERVING_ROLE: `query` runs no sink, `sink` no query API (the cluster form's tiers).
    if (opts.consumer !== null && config.servingRole !== 'query') {
      const consumer = opts.consumer ?? createKafkaSinkConsumer({ brokers: config.kafkaBrokers, topics: Object.values(SINK_TOPICS), groupId: config.sinkGroupId, logger, registry, maxWaitForRoomMs: config.sinkMaxWaitForRoomMs });
      // The watermark waits for the rows it vouches for (watermark-fence.ts); a test's own consumer has no Kafka to ask.
      const ends = opts.consumer === undefined
        ? createPartitionEndsReader({ brokers: config.kafkaBrokers, topics: [SINK_TOPICS.aggregates, SINK_TOPICS.late, SINK_TOPICS.deduped] })
        : null;
      if (ends) {
        closers.push(() => ends.close());
        closeEnds = () => ends.close();
      }
      sink = new AggregateSink({ store, consumer, logger, registry, maxRows: opts.sinkMaxRows ?? config.sinkMaxRows, maxWaitMs: opts.sinkMaxWaitMs ?? config.sinkMaxWaitMs, retryMaxMs: config.sinkRetryMaxMs,
        faultCrashFile: config.faultSinkCrashFile || undefined, unsafeCommitFirst: config.faultUnsafeSinkCommitFirst, fenceEnds: ends ? () => ends.read() : undefined });
      if (config.faultUnsafeSinkCommitFirst) log.error('ADCLICK_FAULT_UNSAFE_SINK_COMMIT_FIRST is on: offsets are committed BEFORE the ClickHouse write; a crash loses data. Negative-control tests only!');
      await sink.start();
    }

    let queryApp: Closable | null = null;
    if (opts.queryApi !== false && config.servingRole !== 'sink') queryApp = await startQueryApi(config, logger, store, registry);

    const monitor = startConservationMonitor(store, registry, logger, {
      intervalMs: config.conservationIntervalMs, spanMs: config.conservationSpanMs, settleMs: 2 * 60_000 });
    closers.push(async () => monitor.stop());
    const poller = startPipelinePoller(config, logger, store, registry, opts.consumer !== undefined || config.servingRole === 'query', sink);
    closers.push(() => poller.stop());
    const admin = await startAdmin(config, log, store, registry, sink, opts.adminPort ?? config.adminPort);

    let stopped: Promise<void> | null = null;
    const stop = () => (stopped ??= (async () => {
      log.info('stopping');
      monitor.stop();
      await poller.stop();
      if (queryApp) await Promise.resolve(queryApp.close()).catch((err) => log.warn({ err }, 'query API close failed'));
      if (sink) await sink.stop();
      await closeEnds?.().catch(() => undefined);
      await new Promise<void>((r) => admin.server.close(() => r()));
      rmSync(admin.tokenPath, { force: true });
      if (!opts.store) await store.close();
      log.info('stopped');
    })());
    return { store, sink, adminPort: admin.port, adminTokenPath: admin.tokenPath, stop };
  } catch (err) {
    for (const c of closers) await c().catch(() => {});
    if (!opts.store) await store.close().catch(() => {});
    throw err;
  }
}

/**
 * Pipeline figures on /metrics (docs/operations.md, Metrics): Flink REST, watermark delay,
 * the sink group's lag (not without a sink, or with a test consumer: no Kafka to ask).
 */
function startPipelinePoller(config: Config, logger: Logger, store: Store, registry: Registry, noKafka: boolean, sink: AggregateSink | null): { stop(): Promise<void> } {
  const lag = noKafka || !sink ? null : createConsumerLagReader({ brokers: config.kafkaBrokers, groupId: config.sinkGroupId, topics: Object.values(SINK_TOPICS), committed: () => sink.committedOffsets() });
  const poller = new PipelinePoller({
    registry, logger,
    flinkRestUrl: flinkRestUrlsFor(config),
    watermark: () => completeBefore(store),
    consumerLag: lag ? () => lag.read() : undefined,
    intervalMs: config.pipelinePollMs,
  });
  poller.start();
  return { stop: async () => { await poller.stop(); await lag?.close(); } };
}

/** The query API on the shared store; options come from the one config module. */
async function startQueryApi(config: Config, logger: Logger, store: Store, registry: Registry): Promise<Closable> {
  const app = buildQueryApp({
    repo: storeQueryRepository(store, { limits: { maxExecutionSec: config.queryMaxExecutionSec, maxResultRows: config.queryMaxResultRows, maxRowsToRead: config.queryMaxRowsToRead } }),
    logger,
    registry,
    options: {
      apiKeyCacheTtlMs: config.queryKeyCacheMs,
      rateLimitPerSec: config.queryRateLimitPerSec,
      rateLimitBurst: config.queryRateLimitBurst,
      maxWindows: config.queryMaxWindows,
      retryAfterSec: config.retryAfterSec,
      storageTimeoutMs: config.queryStorageTimeoutMs,
      ipRateLimitPerSec: config.queryIpRateLimitPerSec,
      ipRateLimitBurst: config.queryIpRateLimitBurst,
      trustedProxies: config.trustedProxies,
      ipv6BucketPrefix: config.ipv6BucketPrefix,
      ipv6AggregatePrefix: config.ipv6AggregatePrefix,
      ipv6AggregateFactor: config.ipv6AggregateFactor,
      timeouts: { headersTimeoutMs: config.httpHeadersTimeoutMs, requestTimeoutMs: config.httpRequestTimeoutMs },
      authGuard: { negativeTtlMs: config.queryKeyNegativeCacheMs, failureBurst: config.queryAuthFailureBurst, failuresPerMin: config.queryAuthFailuresPerMin },
    },
  });
  await app.listen({ port: config.queryPort, host: config.host });
  logger.child({ module: 'serving' }).info({ port: config.queryPort, host: config.host }, 'query API listening');
  return { close: () => app.close() };
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(text);
}

function fail(res: ServerResponse, status: number, code: ErrorCode, message?: string, field?: string): void {
  send(res, status, errorBody(code, message, field));
}

async function readJson(req: IncomingMessage, limit = 4096): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw Object.assign(new Error('too large'), { code: 'PAYLOAD_TOO_LARGE' });
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw Object.assign(new Error('bad json'), { code: 'INVALID_JSON' });
  }
}

async function startAdmin(config: Config, log: Logger, store: Store, registry: Registry, sink: AggregateSink | null, port: number): Promise<{ server: Server; port: number; tokenPath: string }> {
  const runDir = join(config.dataDir, 'run');
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('hex');
  const tokenPath = join(runDir, 'admin.token');
  writeFileSync(tokenPath, token + '\n', { mode: 0o600 });
  chmodSync(tokenPath, 0o600); // an existing file keeps its old mode otherwise
  const expected = Buffer.from(`Bearer ${token}`);
  const authorised = (req: IncomingMessage) => {
    const got = Buffer.from(String(req.headers.authorization ?? ''));
    return got.length === expected.length && timingSafeEqual(got, expected);
  };

  const server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      try {
        if (req.method === 'GET' && path === '/healthz') return send(res, 200, { status: 'ok' });
        if (req.method === 'GET' && path === '/readyz') {
          const storeOk = await store.ping();
          const sinkOk = sink ? sink.healthy() : true;
          return send(res, storeOk && sinkOk ? 200 : 503, { status: storeOk && sinkOk ? 'ready' : 'not_ready', store: storeOk, sink: sink ? sink.status() : null });
        }
        if (req.method === 'GET' && path === '/metrics') return send(res, 200, await registry.metrics(), registry.contentType);
        if (path === '/admin/keys' || path === '/admin/keys/revoke') {
          if (req.method !== 'POST') return fail(res, 405, 'METHOD_NOT_ALLOWED');
          if (!authorised(req)) return fail(res, 401, 'UNAUTHORIZED', 'Missing or wrong admin token');
          if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) return fail(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
          const body = (await readJson(req)) as Record<string, unknown> | null;
          if (path === '/admin/keys') {
            const adv = body?.advertiser_id;
            if (typeof adv !== 'number' || !Number.isSafeInteger(adv) || adv <= 0) return fail(res, 400, 'INVALID_FIELD', 'advertiser_id must be a positive integer below 2^53', 'advertiser_id');
            const { api_key } = await createApiKey(store, adv);
            log.info({ advertiser_id: adv }, 'API key created');
            return send(res, 201, { api_key, advertiser_id: adv });
          }
          const key = body?.api_key;
          if (typeof key !== 'string' || key.length === 0 || key.length > 256) return fail(res, 400, 'INVALID_FIELD', 'api_key must be a string', 'api_key');
          const found = await revokeApiKey(store, key);
          if (!found) return fail(res, 404, 'NOT_FOUND', 'No such API key');
          log.info('API key revoked');
          return send(res, 200, { revoked: true });
        }
        if (path === '/admin/backfill' || path === '/admin/reconcile') {
          if (req.method !== 'POST') return fail(res, 405, 'METHOD_NOT_ALLOWED');
          if (!authorised(req)) return fail(res, 401, 'UNAUTHORIZED', 'Missing or wrong admin token');
          if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) return fail(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
          const body = (await readJson(req)) as Record<string, unknown> | null;
          const from = body?.from_ms, to = body?.to_ms;
          if (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 0) return fail(res, 400, 'INVALID_FIELD', 'from_ms must be epoch milliseconds', 'from_ms');
          if (typeof to !== 'number' || !Number.isSafeInteger(to) || to <= from) return fail(res, 400, 'INVALID_FIELD', 'to_ms must be epoch milliseconds after from_ms', 'to_ms');
          const watermark = await completeBefore(store);
          const isBackfill = path === '/admin/backfill';
          let plan;
          try {
            // Backfill only windows the stream can no longer update (past the watermark by
            // more than the allowed lateness); reconcile every window behind the watermark.
            plan = planRange(from, to, {
              closedBeforeMs: watermark === null ? null : isBackfill ? watermark - config.flinkAllowedLatenessMs : watermark,
              nowMs: Date.now(),
              checkRetention: isBackfill,
            });
          } catch (e) {
            if (e instanceof RangeError) return fail(res, 400, 'INVALID_FIELD', e.message, 'to_ms');
            throw e;
          }
          const common = { from_ms: plan.fromMs, to_ms: plan.toMs, requested_to_ms: to, clamped_by: plan.clampedBy ?? null, complete_before_ms: watermark };
          if (isBackfill) {
            const r = await backfill(store, { fromMs: plan.fromMs, toMs: plan.toMs, watermarkMs: watermark });
            log.info({ ...common, generation: r.generation, windows: r.windows }, 'backfill done');
            return send(res, 200, { ...common, generation: r.generation, windows: r.windows });
          }
          const r = await reconcile(store, { fromMs: plan.fromMs, toMs: plan.toMs, limit: 10_000 });
          const c = await conservation(store, { fromMs: plan.fromMs, toMs: plan.toMs });
          log.info({ ...common, compared: r.windowsCompared, differences: r.differences.length, unbalanced: c.imbalanced }, 'reconcile done');
          const unbalanced = c.windows.filter((w) => w.imbalance !== 0);
          return send(res, 200, { ...common, windows_compared: r.windowsCompared, differences: r.differences, truncated: r.truncated,
            conservation: { windows_checked: c.windows.length, windows: unbalanced.slice(0, 10_000), imbalanced: c.imbalanced, unattributed: c.unattributed, totals: c.totals } });
        }
        return fail(res, 404, 'NOT_FOUND');
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'PAYLOAD_TOO_LARGE') return fail(res, 413, 'PAYLOAD_TOO_LARGE');
        if (code === 'INVALID_JSON') return fail(res, 400, 'INVALID_JSON');
        log.error({ err, path }, 'admin request failed');
        return fail(res, 503, 'UNAVAILABLE');
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as { port: number }).port;
  log.info({ port: actual, tokenPath }, 'admin surface listening on loopback');
  return { server, port: actual, tokenPath };
}

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger('serving', config.logLevel);
  let serving: Serving;
  try {
    serving = await startServing(config, logger);
  } catch (err) {
    logger.fatal({ err }, 'serving failed to start');
    process.exit(1);
  }
  let signalled = false;
  const onSignal = (sig: string) => {
    if (signalled) return;
    signalled = true;
    logger.info({ signal: sig }, 'shutting down');
    serving.stop().then(() => process.exit(0), (err) => {
      logger.error({ err }, 'unclean shutdown');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();

// Gateway process: read config, build clients, listen, handle signals. With
// ADCLICK_GATEWAY_WORKERS > 1 this process is the cluster primary and each worker runs
// the rest of this file (see cluster.ts); the primary alone reads the pipeline lag for
// back-pressure and the workers follow its decision (backpressure.ts).
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { loadConfig, signingKeysFor } from '../shared/config.ts';
import { createLogger } from '../shared/logger.ts';
import { createRegistry, Counter } from '../shared/metrics.ts';
import { createOptionalRedis } from '../shared/redis.ts';
import { createAggregateOf } from '../shared/client-ip.ts';
import { buildGatewayApp } from './app.ts';
import { createClickPublisher, type ClickPublisher } from './click-publisher.ts';
import { startPartitionTicker } from './partition-ticks.ts';
import { clusterMetrics, connectedWorkers, primaryChannel, runClusterPrimary, workerIndex } from './cluster.ts';
import { createEdgeDedup, verifiedAdmission } from './edge-dedup.ts';
import { deriveFromSigningKeys } from '../shared/signature.ts';
import { createRateLimiter } from './rate-limiter.ts';
import { backpressureFollowerFromConfig, backpressureFromConfig, createBackpressureHub, type BackpressureGate } from './backpressure.ts';

const config = loadConfig();
const logger = createLogger('gateway', config.logLevel);
const announce = !cluster.isWorker; // start-up warnings once per gateway, not once per worker

let signingKeys: Map<string, string>;
try {
  signingKeys = signingKeysFor(config);
} catch (err) {
  logger.fatal({ err: (err as Error).message }, 'invalid signing keys');
  process.exit(2);
}
if (!config.signingKeys && announce) {
  logger.warn('!!!!!!!! ADCLICK_SIGNING_KEYS is not set: accepting clicks signed with the PUBLIC DEVELOPMENT key "dev". Never run like this in production. !!!!!!!!');
}
if (!config.ipHashKey && announce) logger.warn('ADCLICK_IP_HASH_KEY is not set: client IP hashes use a random per-process key and will not match across instances');

if (config.gatewayWorkers > 1 && cluster.isPrimary) {
  // The workers must hash client IPs alike: a generated key is made once, here.
  const ipHashKey = config.ipHashKey || randomBytes(32).toString('hex');
  // Back-pressure: one lag reader for the whole gateway, here; the workers follow its decision.
  const registry = createRegistry('gateway', false);
  const hub = createBackpressureHub(connectedWorkers);
  const backpressure = backpressureFromConfig(config, logger, registry, { onState: (refusing) => hub.publish(refusing) });
  runClusterPrimary({
    workers: config.gatewayWorkers, logger, stopTimeoutMs: config.stopTimeoutMs, env: { ADCLICK_IP_HASH_KEY: ipHashKey },
    onWorkerMessage: (w, msg) => void hub.answer({ send: (m) => void w.send(m, () => undefined) }, msg),
    primaryMetrics: backpressure ? () => registry.metrics() : undefined,
    onStop: async () => backpressure?.stop(),
  });
} else {
  await runGateway();
}

async function runGateway() {
  const ipHashKey = config.ipHashKey || randomBytes(32).toString('hex');
  const worker = workerIndex();
  const registry = createRegistry('gateway');
  const redisFailures = new Counter({ name: 'adclick_gateway_redis_failures_total', help: 'Redis calls that failed (the gateway failed open)', labelNames: ['use'] as const, registers: [registry] });
  const producerReplacements = new Counter({ name: 'adclick_gateway_kafka_producer_replacements_total', help: 'Kafka producers replaced because they delivered nothing for ADCLICK_KAFKA_STUCK_MS while deliveries failed', registers: [registry] });
  const redis = createOptionalRedis(config.redisUrl, logger);
  // A cluster worker's back-pressure follows the primary's decision; asked for now, so a new
  // worker has it before it listens.
  const follower = cluster.isWorker ? backpressureFollowerFromConfig(config, logger, primaryChannel()) : null;
  // A configured id is shared by the workers of one gateway: each appends its number.
  const gatewayId = config.gatewayId ? (worker === undefined ? config.gatewayId : `${config.gatewayId}/w${worker}`) : `${hostname()}:${process.pid}`;

  const realPublisher = await createClickPublisher({
    brokers: config.kafkaBrokers,
    topic: config.clicksTopic,
    lingerMs: config.lingerMs,
    compression: config.compression,
    produceTimeoutMs: config.produceTimeoutMs,
    maxInflight: config.maxInflightClicks,
    breakerFailures: config.breakerFailureThreshold,
    breakerOpenMs: config.breakerOpenMs,
    stuckAfterMs: config.producerStuckMs,
    onReplace: () => producerReplacements.inc(),
    clientId: `adclick-gateway-${gatewayId}`,
    logger,
  });
  // Progress ticks on every partition (see partition-ticks.ts): the job's watermarks move by them.
  const ticker = startPartitionTicker({ publisher: realPublisher, gatewayId, intervalMs: config.gatewayTickMs, logger });
  // UNSAFE negative control for the chaos suite: answer before the Kafka ack, so a click
  // can be acknowledged to the client and then lost. Never on unless explicitly asked for.
  const publisher: ClickPublisher = config.faultUnsafeGatewayAckFirst ? ackBeforeProduce(realPublisher) : realPublisher;
  if (config.faultUnsafeGatewayAckFirst) logger.error('ADCLICK_FAULT_UNSAFE_GATEWAY_ACK_FIRST is on: 202 is answered BEFORE the Kafka ack; clicks can be lost. Negative-control tests only!');

  function ackBeforeProduce(p: ClickPublisher): ClickPublisher {
    return {
      ...p,
      publish(records) {
        p.publish(records).catch(() => undefined); // may still throw synchronously (503), as the real one
        return Promise.resolve(records.map(() => true));
      },
    };
  }

  const rateLimiter = createRateLimiter(redis, {
    perSecond: config.rateLimitPerSec,
    burst: config.rateLimitBurst,
    workers: cluster.isWorker ? config.gatewayWorkers : 1,
    onRedisError: () => redisFailures.inc({ use: 'rate_limit' }),
    aggregateOf: createAggregateOf(config.ipv6AggregatePrefix),
    aggregateFactor: config.ipv6AggregateFactor,
  });
  // Marks are MACed with a key every gateway with these signing keys derives alike.
  const dedup = createEdgeDedup(redis, config.dedupTtlSec, () => redisFailures.inc({ use: 'dedup' }), deriveFromSigningKeys(signingKeys, 'edge-dedup-mark/v1'));
  // Back-pressure on the pipeline's committed lag (ADCLICK_BACKPRESSURE_*; 0: off): read by
  // this process with one worker, by the primary for all workers with several.
  const backpressure: BackpressureGate | null = cluster.isWorker ? follower : backpressureFromConfig(config, logger, registry);
  const app = buildGatewayApp({
    options: {
      signingKeys,
      maxClickAgeMs: config.maxClickAgeMs,
      maxClockSkewMs: config.maxClockSkewMs,
      maxBodyBytes: config.maxBodyBytes,
      maxBatchBodyBytes: config.maxBatchBodyBytes,
      maxBatchClicks: config.maxBatchClicks,
      trustedProxies: config.trustedProxies,
      ipv6BucketPrefix: config.ipv6BucketPrefix,
      timeouts: { headersTimeoutMs: config.httpHeadersTimeoutMs, requestTimeoutMs: config.httpRequestTimeoutMs },
      retryAfterSec: config.retryAfterSec,
      ipHashKey,
      gatewayId,
    },
    publisher,
    dedup,
    rateLimiter,
    // Rate limit + edge-dedup read in one Redis script; a mark it finds counts only if it verifies.
    admission: verifiedAdmission(rateLimiter, dedup),
    logger,
    registry,
    readiness: () => ({ redis: redis?.status === 'ready' }),
    metricsText: clusterMetrics(registry),
    backpressure: backpressure ?? undefined,
  });

  await follower?.synced(Math.max(1000, config.backpressurePollMs));
  await app.listen({ host: config.host, port: config.gatewayPort });
  logger.info({ host: config.host, port: config.gatewayPort, worker, keyIds: [...signingKeys.keys()], topic: config.clicksTopic }, 'gateway listening');

  let stopping = false;
  async function shutdown(signal: string) {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'gateway stopping: draining requests and Kafka acks');
    const force = setTimeout(() => process.exit(1), 15000);
    force.unref();
    await app.close();
    ticker.stop();
    await backpressure?.stop();
    await publisher.close();
    redis?.disconnect();
    process.exit(0);
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

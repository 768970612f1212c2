// The only module that reads process.env. Every knob is declared once here with
// its default and a one-line description; the README's configuration table is
// checked against this list by test/unit/config.test.ts.
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { redactUrl } from './redact-url.ts';
import { compileTrust } from './client-ip.ts';

type Parser<T> = (raw: string, key: string) => T;

export interface Setting<T> {
  readonly env: string;
  readonly default: T;
  readonly doc: string;
  readonly parse: Parser<T>;
  /** Shown in the README instead of the raw default (for computed defaults). */
  readonly shownDefault?: string;
  /**
   * Set but empty goes to the parser (which refuses it) instead of meaning the default:
   * for URLs and secrets a value that failed to render must not quietly become the default.
   */
  readonly strictEmpty?: boolean;
  /** How the value is written back to the environment of a child (configToEnv); default String(v). */
  readonly toEnv?: (v: T) => string;
}

const str: Parser<string> = (raw) => raw;
const int = (min: number, max = Number.MAX_SAFE_INTEGER): Parser<number> => (raw, key) => {
  if (!/^-?\d+$/.test(raw.trim())) throw new Error(`${key} must be an integer, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new Error(`${key} must be between ${min} and ${max}, got ${n}`);
  return n;
};
const bool: Parser<boolean> = (raw, key) => {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new Error(`${key} must be true or false, got "${raw}"`);
};
/** A count, or "auto" for one per CPU the process may use. */
const countOrAuto = (min: number, max: number): Parser<number> => (raw, key) =>
  raw.trim().toLowerCase() === 'auto' ? Math.max(min, Math.min(max, availableParallelism())) : int(min, max)(raw, key);
const list: Parser<string[]> = (raw) => raw.split(',').map((s) => s.trim()).filter(Boolean);
/** Addresses, CIDR ranges and proxy-addr's names, each checked now rather than on the first request. */
const proxyList: Parser<string[]> = (raw, key) => {
  const entries = list(raw, key);
  for (const e of entries) {
    try {
      compileTrust([e]);
    } catch {
      throw new Error(`${key}: "${e}" is not an IP address, a CIDR range (10.0.0.0/8) or one of loopback, linklocal, uniquelocal`);
    }
  }
  return entries;
};

/** group@topic pairs (ADCLICK_BACKPRESSURE_WATCH). */
const watchList: Parser<string[]> = (raw, key) => {
  const entries = list(raw, key);
  for (const e of entries) {
    if (!/^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+$/.test(e)) throw new Error(`${key}: "${e}" must be group@topic`);
  }
  return entries;
};

const servingRoleParser: Parser<'all' | 'sink' | 'query'> = (raw, key) => {
  const v = raw.trim().toLowerCase();
  if (v === 'all' || v === 'sink' || v === 'query') return v;
  throw new Error(`${key} must be all, sink or query, got "${raw}"`);
};

function setting<T>(env: string, def: T, parse: Parser<T>, doc: string, shownDefault?: string, extra: Pick<Setting<T>, 'strictEmpty' | 'toEnv'> = {}): Setting<T> {
  return { env, default: def, parse, doc, shownDefault, ...extra };
}

/** Refuses a set-but-empty value: only unset means the default (see Setting.strictEmpty). */
const nonEmpty = <T>(parse: Parser<T>, unsetMeans: string): Parser<T> => (raw, key) => {
  if (raw.trim() === '') throw new Error(`${key} is set but empty: give a value, or unset it for ${unsetMeans}`);
  return parse(raw, key);
};

/** REDIS_URL's word for "no Redis" (an empty value is refused: it is what a secret that failed to render looks like). */
export const NO_REDIS = 'none';

// redis://[user:password@]host[:port][/db] (AUTH/ACL) or rediss://… (TLS); `none`: no Redis.
const redisUrlParser: Parser<string> = (raw, key) => {
  const v = raw.trim();
  if (v === '') throw new Error(`${key} is set but empty: give redis://… (or rediss://…), \`${NO_REDIS}\` to run without Redis (fail-open), or unset it for redis://127.0.0.1:6379`);
  if (v.toLowerCase() === NO_REDIS) return '';
  let u: URL | undefined;
  try {
    u = new URL(v);
  } catch { /* reported below */ }
  if (!u || (u.protocol !== 'redis:' && u.protocol !== 'rediss:') || !u.hostname || !/^(\/\d*)?$/.test(u.pathname)) {
    throw new Error(`${key} must be redis://[user:password@]host[:port][/db] or rediss://… for TLS, got "${redactUrl(v)}"`);
  }
  // ioredis switches TLS on only for the lower-case scheme: a REDISS:// URL would go out in clear.
  return u.protocol + v.slice(u.protocol.length);
};

/**
 * Comma-separated http(s) base URLs (every JobManager's under HA, tried in order). Checked now:
 * a typo would otherwise only show as Flink figures that never appear. Kept as the normalised
 * list string, so configToEnv hands the same value to a child.
 */
const flinkRestUrlsParser: Parser<string> = (raw, key) => {
  const entries = raw.split(',').map((e) => e.trim());
  if (entries.every((e) => e === '')) throw new Error(`${key} is set but empty: give the Flink REST URL (several comma-separated, e.g. every JobManager's), or unset it for the local job's`);
  const out: string[] = [];
  for (const e of entries) {
    if (e === '') throw new Error(`${key} has an empty entry in "${entries.map((x) => x && redactUrl(x)).join(',')}" (a stray comma?): give comma-separated http(s) URLs`);
    let u: URL | undefined;
    try {
      u = new URL(e);
    } catch { /* reported below */ }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname) {
      throw new Error(`${key}: "${redactUrl(e)}" is not an http(s) URL (e.g. http://flink-jm:8081)`);
    }
    out.push(e.replace(/\/+$/, ''));
  }
  return out.join(',');
};

/** Default signing key for local development only; the gateway warns loudly when it is in use. */
export const DEV_SIGNING_KEYS = 'dev:adclick-dev-secret-do-not-use-in-production';
/** HMAC-SHA256 keys shorter than its 32-byte output are guessable sooner than the MAC itself. */
export const MIN_SIGNING_SECRET_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

// A deployment whose secret failed to render sets the variable to an empty string: that
// must not mean "no keys configured" (the public dev key), only unset does.
function signingKeysParser(raw: string, key: string): string {
  if (!raw.split(',').some((p) => p.trim())) throw new Error(`${key} is set but empty: give key_id:secret pairs, or unset it to use the development key (loopback only)`);
  parseSigningKeys(raw);
  return raw;
}

export const SETTINGS = {
  dataDir: setting('ADCLICK_DATA_DIR', resolve('.data'), str, 'Where all local state lives: Kafka logs, checkpoints, embedded ClickHouse, ledgers', '`./.data`'),
  host: setting('ADCLICK_BIND_HOST', '127.0.0.1', str, 'Address the HTTP services bind to (loopback unless you mean otherwise)'),
  gatewayPort: setting('ADCLICK_GATEWAY_PORT', 8080, int(0, 65535), 'Gateway HTTP port'),
  gatewayWorkers: setting('ADCLICK_GATEWAY_WORKERS', 1, countOrAuto(1, 64), 'Gateway worker processes sharing its port (node:cluster); `auto` = one per CPU. Each has its own Kafka producer and Redis connection'),
  queryPort: setting('ADCLICK_QUERY_PORT', 8081, int(0, 65535), 'Query API and dashboard HTTP port'),
  flinkUiPort: setting('ADCLICK_FLINK_UI_PORT', 8082, int(0, 65535), 'Flink web UI port of the local job'),
  flinkBindHost: setting('ADCLICK_FLINK_BIND_HOST', '127.0.0.1', str, "Address the local Flink job's REST API and web UI bind to (not ADCLICK_BIND_HOST: that API can stop or cancel the job; jar upload is off)"),
  flinkRestUrl: setting('ADCLICK_FLINK_REST_URL', '', flinkRestUrlsParser, "Flink REST API polled for the pipeline metrics and `adclick status` (a session cluster's JobManager); comma-separated for several JobManagers (HA): tried in order, the one that answered last first, the next on a connection error, timeout or 5xx; set but empty, an empty entry or a non-http(s) entry is an error", '`http://<Flink bind host>:<Flink UI port>`'),
  pipelinePollMs: setting('ADCLICK_PIPELINE_POLL_MS', 5000, int(500), 'How often the serving process polls Flink REST, the stored watermark and the sink group lag for /metrics'),
  kafkaBrokers: setting('KAFKA_BROKERS', '127.0.0.1:9092', nonEmpty(str, '127.0.0.1:9092'), 'Kafka bootstrap servers (comma-separated host:port); set but empty is an error', undefined, { strictEmpty: true }),
  kafkaPort: setting('ADCLICK_KAFKA_PORT', 9092, int(1, 65535), 'Port of the local Kafka broker started by `adclick up`'),
  kafkaControllerPort: setting('ADCLICK_KAFKA_CONTROLLER_PORT', 9093, int(1, 65535), 'KRaft controller port of the local Kafka broker'),
  kafkaVersion: setting('ADCLICK_KAFKA_VERSION', '4.1.1', str, 'Kafka broker version fetched from Maven Central (org.apache.kafka:kafka_2.13)'),
  zookeeperVersion: setting('ADCLICK_ZOOKEEPER_VERSION', '3.9.5', str, 'Cluster form: ZooKeeper version fetched from Maven Central (org.apache.zookeeper:zookeeper) for the ClickHouse cluster\'s ensemble'),
  kafkaReplicationFactor: setting('ADCLICK_KAFKA_REPLICATION_FACTOR', 0, int(0, 16), 'Replication factor of the pipeline topics and the broker\'s internal topics (offsets, transaction log); 0: the form\'s default, 1 on one broker, 3 in the cluster form', '0 (1; cluster: 3)'),
  kafkaMinInsyncReplicas: setting('ADCLICK_KAFKA_MIN_INSYNC_REPLICAS', 0, int(0, 16), 'min.insync.replicas of those topics and the transaction log (acks=all writes fail below it); 0: the form\'s default, 1 on one broker, 2 in the cluster form', '0 (1; cluster: 2)'),
  clusterSubnet: setting('ADCLICK_CLUSTER_SUBNET', '10.231.0.0/24', str, 'Cluster form (`adclick cluster up`): private IPv4 /24 of the bridge (.1, the host\'s side) and the node namespaces (.11 and up); nothing outside it is ever addressed'),
  clusterFlinkSlots: setting('ADCLICK_CLUSTER_FLINK_SLOTS', 2, int(1, 64), 'Cluster form: task slots per Flink TaskManager (2 TaskManagers; the job runs with ADCLICK_FLINK_PARALLELISM)'),
  clusterFlinkJmMemory: setting('ADCLICK_CLUSTER_FLINK_JM_MEMORY', '1024m', str, 'Cluster form: jobmanager.memory.process.size of the Flink JobManager (its JVM flags come from Flink\'s BashJavaUtils)'),
  clusterFlinkTmMemory: setting('ADCLICK_CLUSTER_FLINK_TM_MEMORY', '1536m', str, 'Cluster form: taskmanager.memory.process.size of each Flink TaskManager'),
  clusterFlinkRestPort: setting('ADCLICK_CLUSTER_FLINK_REST_PORT', 8081, int(1, 65535), 'Cluster form: REST API and web UI port of the Flink JobManager, on its namespace address (private bridge only; jar upload is on there)'),
  clicksTopic: setting('ADCLICK_CLICKS_TOPIC', 'clicks', str, 'Topic of accepted clicks'),
  clicksPartitions: setting('ADCLICK_CLICKS_PARTITIONS', 4, int(1, 10000), 'Partitions of the clicks topic when `adclick up` creates it'),
  clicksRetentionMs: setting('ADCLICK_CLICKS_RETENTION_MS', 7 * 24 * 3600 * 1000, int(3600_000), 'Retention of the clicks topic (at least 7 days)', '604800000 (7 d)'),
  redisUrl: setting('REDIS_URL', 'redis://127.0.0.1:6379', redisUrlParser, 'Redis for edge dedup and rate limiting; `none` to run without (fail-open); set but empty is an error. redis://user:password@host:port for AUTH/ACL, rediss:// for TLS (extra CAs: NODE_EXTRA_CA_CERTS)', undefined, { strictEmpty: true, toEnv: (v) => v || NO_REDIS }),
  clickhouseUrl: setting('CLICKHOUSE_URL', '', nonEmpty(str, 'embedded chdb'), 'ClickHouse server URL (http://user:pass@host:8123/db), or with ADCLICK_CLICKHOUSE_CLUSTER a comma-separated list of the replicas of that cluster (calls go to the first that answers and fail over to the next when it cannot be reached); unset uses embedded chdb; set but empty is an error'),
  clickhouseCluster: setting('ADCLICK_CLICKHOUSE_CLUSTER', '', str, 'Server mode on a ClickHouse cluster: the remote_servers cluster of the server at CLICKHOUSE_URL; migrations run ON CLUSTER (replicated local tables in `adclick_local`, Distributed tables under the usual names) and every read and write goes through the Distributed tables; empty: a single server'),
  clickhouseInsertQuorum: setting('ADCLICK_CLICKHOUSE_INSERT_QUORUM', 1, int(1, 10), 'Cluster only: replicas that must hold an insert before it is acknowledged (insert_quorum); 1 keeps writing with a replica down, 2 survives losing a replica\'s disk but stops that shard\'s writes while a replica is down'),
  signingKeys: setting('ADCLICK_SIGNING_KEYS', '', signingKeysParser, 'Accepted click signing keys, comma-separated key_id:secret pairs (rotation: list several); each secret at least 32 bytes. Set but empty is an error', 'unset: dev key, loopback only'),
  ipHashKey: setting('ADCLICK_IP_HASH_KEY', '', str, 'Secret for the keyed hash of client IPs written to Kafka', 'random per process'),
  maxClickAgeMs: setting('ADCLICK_MAX_CLICK_AGE_MS', 24 * 3600 * 1000, int(60_000), 'Oldest accepted click timestamp relative to now', '86400000 (24 h)'),
  maxClockSkewMs: setting('ADCLICK_MAX_CLOCK_SKEW_MS', 5 * 60 * 1000, int(0), 'Furthest accepted click timestamp in the future', '300000 (5 min)'),
  maxBodyBytes: setting('ADCLICK_MAX_BODY_BYTES', 4096, int(256), 'Body limit of POST /v1/clicks'),
  maxBatchBodyBytes: setting('ADCLICK_MAX_BATCH_BODY_BYTES', 1024 * 1024, int(1024), 'Body limit of POST /v1/clicks/batch'),
  maxBatchClicks: setting('ADCLICK_MAX_BATCH_CLICKS', 1000, int(1, 10000), 'Most clicks in one batch request'),
  rateLimitPerSec: setting('ADCLICK_RATE_LIMIT_PER_SEC', 100, int(1), 'Per-client-IP request rate limit (requests/s; a batch counts one request per click). With Redis down each gateway worker allows its share'),
  rateLimitBurst: setting('ADCLICK_RATE_LIMIT_BURST', 200, int(1), 'Per-client-IP burst allowance (requests); a batch larger than the burst passes from a full bucket and leaves the client in debt'),
  trustedProxies: setting('ADCLICK_TRUSTED_PROXIES', [] as string[], proxyList, 'Peers whose X-Forwarded-For is believed, on both HTTP ports (comma-separated IPs, CIDR ranges, or loopback/linklocal/uniquelocal); others are ignored', '(none)'),
  ipv6BucketPrefix: setting('ADCLICK_IPV6_BUCKET_PREFIX', 64, int(1, 128), 'IPv6 clients share one per-client rate-limit bucket per prefix of this length (one subscriber holds a /64 or more; 128: per address)'),
  ipv6AggregatePrefix: setting('ADCLICK_IPV6_AGGREGATE_PREFIX', 48, int(0, 127), 'IPv6 client buckets also pay into one aggregate bucket per prefix of this length (a /48: one site), so rotating over the /64s of one /48 meets one limit; 0: off'),
  ipv6AggregateFactor: setting('ADCLICK_IPV6_AGGREGATE_FACTOR', 16, int(1, 1_000_000), 'Rate and burst of an IPv6 aggregate bucket, as a multiple of the per-client limit (gateway and query API)'),
  httpHeadersTimeoutMs: setting('ADCLICK_HTTP_HEADERS_TIMEOUT_MS', 10_000, int(100), 'Gateway and query API: longest wait for a request\'s headers; then 408 and the connection is closed'),
  httpRequestTimeoutMs: setting('ADCLICK_HTTP_REQUEST_TIMEOUT_MS', 30_000, int(100), 'Gateway and query API: longest wait for a whole request, body included (slow bodies); then 408 and the connection is closed'),
  dedupTtlSec: setting('ADCLICK_EDGE_DEDUP_TTL_SEC', 25 * 3600, int(60), 'Redis edge-dedup key lifetime; longer than max click age + skew', '90000 (25 h)'),
  produceTimeoutMs: setting('ADCLICK_PRODUCE_TIMEOUT_MS', 5000, int(100), 'How long the gateway waits for a Kafka ack before answering 503'),
  maxInflightClicks: setting('ADCLICK_MAX_INFLIGHT_CLICKS', 50_000, int(1), 'Bound on clicks awaiting a Kafka ack; beyond it the gateway answers 503'),
  breakerFailureThreshold: setting('ADCLICK_BREAKER_FAILURES', 5, int(1), 'Consecutive produce failures that open the Kafka circuit breaker'),
  breakerOpenMs: setting('ADCLICK_BREAKER_OPEN_MS', 2000, int(100), 'How long the breaker stays open before a trial request'),
  gatewayTickMs: setting('ADCLICK_GATEWAY_TICK_MS', 1000, int(0, 60_000), 'Each gateway worker writes a progress tick to every partition of the clicks topic this often; the Flink job\'s watermarks move by ticks, so quiet partitions keep closing windows and a partition with a backlog is never taken for idle (0: off, then set ADCLICK_FLINK_IDLENESS_MS)'),
  producerStuckMs: setting('ADCLICK_KAFKA_STUCK_MS', 15_000, int(1000), 'Replace the gateway\'s Kafka producer with a fresh instance after this long without a successful delivery while deliveries fail (a wedged idempotent producer)'),
  backpressureMaxLag: setting('ADCLICK_BACKPRESSURE_MAX_LAG', 500_000, (raw, key) => (raw.trim() === '' ? 0 : int(0)(raw, key)), 'Gateway back-pressure: above this many records of committed consumer-group lag (the largest of ADCLICK_BACKPRESSURE_WATCH) the gateway answers new clicks 503 OVERLOADED + Retry-After instead of accepting them (0 or empty: off)', undefined, { strictEmpty: true }),
  backpressureResumeLag: setting('ADCLICK_BACKPRESSURE_RESUME_LAG', 0, int(0), 'Gateway back-pressure: once refusing, clicks are accepted again only when the lag is back at or below this (hysteresis); 0: half of ADCLICK_BACKPRESSURE_MAX_LAG', '0 (half the max)'),
  backpressureWatch: setting('ADCLICK_BACKPRESSURE_WATCH', ['adclick-flink@clicks', 'adclick-sink@click-aggregates'], watchList, 'Gateway back-pressure: consumer groups whose committed lag is watched, comma-separated group@topic (a group that never committed on that topic is not counted: a stack without that consumer)', '`adclick-flink@clicks,adclick-sink@click-aggregates`'),
  backpressurePollMs: setting('ADCLICK_BACKPRESSURE_POLL_MS', 2000, int(200), 'Gateway back-pressure: how often the gateway reads the watched lag (one OffsetFetch per group and one ListOffsets per topic; never per request); with ADCLICK_GATEWAY_WORKERS > 1 the primary reads it once for all workers and sends them its decision'),
  retryAfterSec: setting('ADCLICK_RETRY_AFTER_SEC', 2, int(1), 'Retry-After sent with 503 answers'),
  lingerMs: setting('ADCLICK_KAFKA_LINGER_MS', 1, int(0), 'Producer batching delay (linger.ms)'),
  compression: setting('ADCLICK_KAFKA_COMPRESSION', 'lz4', str, 'Producer compression codec (none, gzip, snappy, lz4, zstd)'),
  gatewayId: setting('ADCLICK_GATEWAY_ID', '', str, 'Instance id written into each click for audit', 'hostname:pid'),
  kafkaHeapMax: setting('ADCLICK_KAFKA_HEAP', '1g', str, 'Heap of the local Kafka broker JVM'),
  kafkaReadyTimeoutMs: setting('ADCLICK_KAFKA_READY_TIMEOUT_MS', 90_000, int(1000), 'How long `adclick up` waits for the broker to answer'),
  stopTimeoutMs: setting('ADCLICK_STOP_TIMEOUT_MS', 15_000, int(100), 'Grace period between SIGTERM and SIGKILL when stopping a process'),
  adminPort: setting('ADCLICK_ADMIN_PORT', 8089, int(0, 65535), 'Serving process admin port on 127.0.0.1 (key management, sink health and metrics)'),
  sinkGroupId: setting('ADCLICK_SINK_GROUP_ID', 'adclick-sink', str, 'Kafka consumer group of the sink'),
  servingRole: setting('ADCLICK_SERVING_ROLE', 'all' as 'all' | 'sink' | 'query', servingRoleParser, 'What a serving process runs: all (sink and query API), sink (no query API) or query (no sink); the cluster form runs each tier on its own nodes'),
  sinkMaxRows: setting('ADCLICK_SINK_MAX_ROWS', 50_000, int(1), 'Most Kafka records per sink batch (one ClickHouse insert per table)'),
  sinkMaxWaitMs: setting('ADCLICK_SINK_MAX_WAIT_MS', 200, int(1), 'Longest a record waits in the sink before its batch is written'),
  sinkRetryMaxMs: setting('ADCLICK_SINK_RETRY_MAX_MS', 10_000, int(10), 'Longest back-off between retries of a failed ClickHouse write'),
  sinkMaxWaitForRoomMs: setting('ADCLICK_SINK_MAX_WAIT_FOR_ROOM_MS', 60_000, int(1000, 240_000), 'Longest a Kafka delivery waits while the sink is full or its store failing; then the sink consumer is replaced by a fresh one from the committed offsets (kept below the client\'s max.poll.interval.ms of 5 min)'),
  clickhouseColdPath: setting('ADCLICK_CLICKHOUSE_COLD_PATH', '', str, 'Embedded ClickHouse: directory of the cold volume (stand-in for object storage) that aggregates older than 30 days move to', '`<data dir>/clickhouse-cold`'),
  clickhouseStoragePolicy: setting('CLICKHOUSE_STORAGE_POLICY', '', str, 'Server mode: storage policy (defined in the server config, with a volume named `cold`) for the aggregates; empty: one tier'),
  conservationIntervalMs: setting('ADCLICK_CONSERVATION_INTERVAL_MS', 30_000, int(1000), 'How often serving checks per-window conservation (metrics adclick_conservation_*)'),
  conservationSpanMs: setting('ADCLICK_CONSERVATION_SPAN_MS', 6 * 3600 * 1000, int(60_000), 'How far behind the watermark the periodic conservation check looks', '21600000 (6 h)'),
  clickhouseTimeoutMs: setting('ADCLICK_CLICKHOUSE_TIMEOUT_MS', 30_000, int(100), 'ClickHouse request timeout (server mode)'),
  queryKeyCacheMs: setting('ADCLICK_QUERY_KEY_CACHE_MS', 2000, int(0), 'How long a valid API key is trusted without a lookup (bounds revocation delay)'),
  queryRateLimitPerSec: setting('ADCLICK_QUERY_RATE_LIMIT_PER_SEC', 50, int(1), 'Per-API-key request rate of the query API'),
  queryRateLimitBurst: setting('ADCLICK_QUERY_RATE_LIMIT_BURST', 100, int(1), 'Per-API-key burst of the query API'),
  queryIpRateLimitPerSec: setting('ADCLICK_QUERY_IP_RATE_LIMIT_PER_SEC', 200, int(1), 'Per-client-IP request rate of the query API (every request but health, metrics and dashboard files; charged before the API key is looked at), in-process'),
  queryIpRateLimitBurst: setting('ADCLICK_QUERY_IP_RATE_LIMIT_BURST', 400, int(1), 'Per-client-IP burst of the query API'),
  queryMaxWindows: setting('ADCLICK_QUERY_MAX_WINDOWS', 10_000, int(1, 10_000), 'Most windows in one query response (more: RANGE_TOO_LARGE)'),
  queryStorageTimeoutMs: setting('ADCLICK_QUERY_STORAGE_TIMEOUT_MS', 10_000, int(100), 'A storage call slower than this answers 503'),
  queryMaxExecutionSec: setting('ADCLICK_QUERY_MAX_EXECUTION_SEC', 8, int(0, 3600), 'ClickHouse max_execution_time of every query API read, in seconds (0: none); past it 503 UNAVAILABLE. Keep it below the storage timeout so ClickHouse stops the work too'),
  queryMaxResultRows: setting('ADCLICK_QUERY_MAX_RESULT_ROWS', 100_000, int(0), 'ClickHouse max_result_rows of every query API read (0: none); more: 400 QUERY_TOO_EXPENSIVE'),
  queryMaxRowsToRead: setting('ADCLICK_QUERY_MAX_ROWS_TO_READ', 0, int(0), 'ClickHouse max_rows_to_read of every query API read (0: none; all-time campaign totals read the 1h rows of the advertiser, and 1m rows after the last closed hour); more: 400 QUERY_TOO_EXPENSIVE'),
  queryKeyNegativeCacheMs: setting('ADCLICK_QUERY_KEY_NEGATIVE_CACHE_MS', 5000, int(0), 'How long a failed API key is refused without a lookup (0: never remembered); a key minted by this serving process works at once, one minted by another within this time'),
  queryAuthFailureBurst: setting('ADCLICK_QUERY_AUTH_FAILURE_BURST', 20, int(1), 'Failed API-key lookups one client address may cause at once; then 429 RATE_LIMITED for keys not already known good'),
  queryAuthFailuresPerMin: setting('ADCLICK_QUERY_AUTH_FAILURES_PER_MIN', 30, int(1), 'Failed API-key lookups per minute one client address may cause in the long run'),
  storageQueueMax: setting('ADCLICK_STORAGE_QUEUE_MAX', 200, int(1), 'ClickHouse, embedded or server: most query API reads waiting for the engine (it runs one query at a time embedded, 10 at once on a server); a request beyond it answers 503 at once'),
  storageLookupQueueMax: setting('ADCLICK_STORAGE_LOOKUP_QUEUE_MAX', 32, int(1), 'ClickHouse, embedded or server: most API-key lookups waiting for the engine (served after reads and the sink); beyond it 503 at once'),
  storageQueueWaitMs: setting('ADCLICK_STORAGE_QUEUE_WAIT_MS', 2000, int(10), 'ClickHouse, embedded or server: longest a query API read or key lookup waits for the engine; then 503, and it never runs (nor does one whose client went away)'),
  flinkParallelism: setting('ADCLICK_FLINK_PARALLELISM', 2, int(1, 128), 'Parallelism of the local Flink job'),
  flinkNice: setting('ADCLICK_FLINK_NICE', 5, int(0, 19), 'CPU priority (nice) of the local Flink JVM (`npm start`): on one box under overload it yields CPU to the gateway, serving and health checks, and the gateway\'s back-pressure sheds what Flink cannot carry (0: same priority)'),
  flinkCheckpointIntervalMs: setting('ADCLICK_FLINK_CHECKPOINT_INTERVAL_MS', 5000, int(100), 'Checkpoint interval; results become visible (read_committed) at each checkpoint'),
  flinkOutOfOrdernessMs: setting('ADCLICK_FLINK_OUT_OF_ORDERNESS_MS', 5000, int(0), 'Watermark bound on out-of-order event times'),
  flinkIdlenessMs: setting('ADCLICK_FLINK_IDLENESS_MS', 0, int(0), 'Only for gateways without ticks (ADCLICK_GATEWAY_TICK_MS=0): a Kafka partition without any record this long lets its watermark follow the clock. It also fires for a partition that is merely behind, whose backlog then becomes late corrections (0: never; the default, ticks keep watermarks moving)'),
  flinkAllowedLatenessMs: setting('ADCLICK_FLINK_ALLOWED_LATENESS_MS', 120_000, int(0), 'Within this lateness a closed window is updated in place; later clicks become corrections'),
  flinkEarlyFireMs: setting('ADCLICK_FLINK_EARLY_FIRE_MS', 2000, int(0), 'Provisional results of open windows are emitted this often (0: off)'),
  flinkHeap: setting('ADCLICK_FLINK_HEAP', '2g', str, 'Heap of the local Flink job JVM'),
  faultSinkCrashFile: setting('ADCLICK_FAULT_SINK_CRASH_FILE', '', str, 'Fault injection (tests only): while this file exists, the sink deletes it and kills itself (SIGKILL) right after its next ClickHouse insert, before committing offsets; empty: off'),
  faultUnsafeSinkCommitFirst: setting('ADCLICK_FAULT_UNSAFE_SINK_COMMIT_FIRST', false, bool, 'UNSAFE, negative control only: the sink commits offsets BEFORE the ClickHouse write (a crash in between loses that batch)'),
  faultUnsafeGatewayAckFirst: setting('ADCLICK_FAULT_UNSAFE_GATEWAY_ACK_FIRST', false, bool, 'UNSAFE, negative control only: the gateway answers 202 without waiting for the Kafka ack (clicks are lost when Kafka or the gateway fails)'),
  logLevel: setting('LOG_LEVEL', 'info', str, 'pino log level (fatal, error, warn, info, debug, trace)'),
} as const;

type Settings = typeof SETTINGS;
export type Config = { readonly [K in keyof Settings]: Settings[K]['default'] };

/**
 * Parse the environment once. Fails naming every bad key, not just the first.
 * `overrides` let tests and the launcher build a config without touching process.env.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, s] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const raw = env[s.env];
    if (raw === undefined || (raw === '' && s.default !== '' && !s.strictEmpty)) {
      out[name] = s.default;
      continue;
    }
    try {
      out[name] = s.parse(raw, s.env);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length) throw new Error(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  const config = Object.freeze({ ...(out as Config), ...overrides });
  const horizon = dedupHorizonProblem(config);
  if ('signingKeys' in overrides && config.signingKeys !== '') {
    try {
      parseSigningKeys(config.signingKeys);
    } catch (err) {
      throw new Error(`invalid configuration:\n  - ${(err as Error).message}`);
    }
  }
  if (horizon) throw new Error(`invalid configuration:\n  - ${horizon}`);
  return config;
}

/**
 * The dedup horizons must nest, or a replay could be counted twice: the gateway refuses
 * clicks older than max age (+ skew into the future), so every copy of a click reaches
 * the pipeline within max age + skew of the first one. The Redis edge key must live at
 * least that long (else the edge lets a late retry through: harmless, Flink drops it, but
 * the edge stops doing its job) and the Flink dedup state (max age + skew + 1 h, set by
 * the launcher) always does. Kafka keeps `clicks` ≥ 7 days, longer than both, so a job
 * restored from a checkpoint never needs a record that is gone.
 */
export function dedupHorizonProblem(c: Pick<Config, 'dedupTtlSec' | 'maxClickAgeMs' | 'maxClockSkewMs' | 'clicksRetentionMs'>): string | null {
  const window = c.maxClickAgeMs + c.maxClockSkewMs;
  if (c.dedupTtlSec * 1000 < window) {
    return `ADCLICK_EDGE_DEDUP_TTL_SEC (${c.dedupTtlSec} s) must be at least ADCLICK_MAX_CLICK_AGE_MS + ADCLICK_MAX_CLOCK_SKEW_MS (${Math.ceil(window / 1000)} s)`;
  }
  if (Math.max(c.clicksRetentionMs, 7 * 86_400_000) < window + 3_600_000) {
    return `ADCLICK_MAX_CLICK_AGE_MS + skew (${window} ms) must stay below the clicks topic retention`;
  }
  return null;
}

/**
 * Parse `key_id:secret,key_id:secret`. Malformed entries, short secrets and duplicate ids
 * are configuration errors; messages name entries by position and valid ids only, never
 * secret text (a pair without ':' may be a bare secret).
 */
export function parseSigningKeys(raw: string): Map<string, string> {
  const keys = new Map<string, string>();
  const problems: string[] = [];
  const pairs = raw.split(',').map((p) => p.trim()).filter(Boolean);
  pairs.forEach((pair, n) => {
    const i = pair.indexOf(':');
    if (i <= 0 || i === pair.length - 1) return problems.push(`ADCLICK_SIGNING_KEYS: entry ${n + 1} must be key_id:secret`);
    const id = pair.slice(0, i);
    const secret = pair.slice(i + 1);
    if (!KEY_ID.test(id)) return problems.push(`ADCLICK_SIGNING_KEYS: entry ${n + 1}: the key id must be 1-64 characters of [A-Za-z0-9._-]`);
    if (keys.has(id)) return problems.push(`ADCLICK_SIGNING_KEYS: key id "${id}" listed twice`);
    if (Buffer.byteLength(secret, 'utf8') < MIN_SIGNING_SECRET_BYTES) {
      return problems.push(`ADCLICK_SIGNING_KEYS: key "${id}": the secret is shorter than ${MIN_SIGNING_SECRET_BYTES} bytes (generate one with: openssl rand -hex 32)`);
    }
    keys.set(id, secret);
  });
  if (problems.length) throw new Error(problems.join('; '));
  if (keys.size === 0) throw new Error('ADCLICK_SIGNING_KEYS holds no key_id:secret pair');
  return keys;
}

/** 127.0.0.0/8, ::1 and localhost: nobody off this machine can reach the bind. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}

/**
 * The keys the gateway accepts: the configured ones, or (unset) the public development
 * key, which anyone can read in this repository, so only while the services bind to loopback.
 */
export function signingKeysFor(config: Pick<Config, 'signingKeys' | 'host'>): Map<string, string> {
  if (config.signingKeys) return parseSigningKeys(config.signingKeys);
  if (!isLoopbackHost(config.host)) {
    throw new Error(`ADCLICK_SIGNING_KEYS is not set and ADCLICK_BIND_HOST (${config.host}) is not loopback: the public development signing key ` +
      'would let anyone forge clicks. Set ADCLICK_SIGNING_KEYS to key_id:secret pairs (secrets of at least 32 bytes)');
  }
  return parseSigningKeys(DEV_SIGNING_KEYS);
}

/**
 * The Flink REST base URLs in the order to try them: ADCLICK_FLINK_REST_URL's list (every
 * JobManager's under HA), else the local job's (a wildcard bind is reached on loopback).
 */
export function flinkRestUrlsFor(config: Pick<Config, 'flinkRestUrl' | 'flinkBindHost' | 'flinkUiPort'>): string[] {
  const listed = config.flinkRestUrl.split(',').map((u) => u.trim().replace(/\/+$/, '')).filter(Boolean);
  if (listed.length) return listed;
  const b = config.flinkBindHost;
  const h = b === '0.0.0.0' || b === '' ? '127.0.0.1' : b === '::' ? '[::1]' : b.includes(':') ? `[${b}]` : b;
  return [`http://${h}:${config.flinkUiPort}`];
}

/** The first of flinkRestUrlsFor: for callers that show or use one URL. */
export function flinkRestUrlFor(config: Pick<Config, 'flinkRestUrl' | 'flinkBindHost' | 'flinkUiPort'>): string {
  return flinkRestUrlsFor(config)[0]!;
}

/**
 * The environment that reproduces `config` in a child process (the launcher passes it on).
 * An empty value whose default is empty is left out: for ADCLICK_SIGNING_KEYS set-but-empty
 * is an error while unset is the development default.
 */
export function configToEnv(config: Config): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, s] of Object.entries(SETTINGS) as [keyof Config, Setting<unknown>][]) {
    const v = config[name];
    if (v === '' && s.default === '') continue;
    env[s.env] = s.toEnv ? s.toEnv(v) : Array.isArray(v) ? v.join(',') : String(v);
  }
  return env;
}

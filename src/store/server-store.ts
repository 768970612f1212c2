// Server transport: any ClickHouse server or cluster over HTTP (@clickhouse/client).
// The version is detected at open; engines without server-side parameters (< 19.11)
// get the same `{name:Type}` SQL bound client-side by param-binder.ts.
// Calls wait in a StorageQueue (storage-queue.ts) as on the embedded engine, with as many
// running at once as the HTTP pool has connections: beyond them Node's agent would queue
// without bound and nothing would be shed, so a junk-key flood's lookups could pile up in
// front of every read. Here they stay bounded, paced, shed when late or abandoned.
import { createClient, type ClickHouseClient, type ClickHouseSettings } from '@clickhouse/client';
import type { Logger } from '../shared/logger.ts';
import { capabilitiesFor, CLUSTER_QUERY, clusterProblem, missingCapabilities, STORAGE_POLICY_QUERY, storagePolicyProblem, type ClusterRow } from './capabilities.ts';
import { clusterNameProblem } from './cluster-ddl.ts';
import { normaliseRows, type JsonResult } from './json-result.ts';
import { bindParams, serverParamValues } from './param-binder.ts';
import type { QueryParams, QuerySettings, Store, StoreCapabilities } from './store.ts';
import { StorageQueue, type StorageQueueOptions, type StorageQueueStats } from './storage-queue.ts';

/** Connections of the HTTP pool, and so the calls that run at once. */
export const SERVER_CONNECTIONS = 10;

export interface ServerStoreOptions {
  /** One server URL, or a comma-separated list of replicas of one cluster (failover in that order, see clickhouseUrls). */
  readonly url: string;
  readonly logger: Logger;
  /** Per-request timeout; default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Storage policy with a `cold` volume for the aggregates (CLICKHOUSE_STORAGE_POLICY); '' for one tier. */
  readonly storagePolicy?: string;
  /** remote_servers cluster of the server at `url` (ADCLICK_CLICKHOUSE_CLUSTER); '' or absent: a single server. */
  readonly cluster?: string;
  /** Cluster only: replicas that must hold an insert before it is acknowledged (ADCLICK_CLICKHOUSE_INSERT_QUORUM); 1 = the one written. */
  readonly insertQuorum?: number;
  /** Bounds and deadline of waiting query API work (defaults: DEFAULT_STORAGE_QUEUE; concurrency: SERVER_CONNECTIONS). */
  readonly queue?: Partial<StorageQueueOptions>;
}

/**
 * What every request carries on a cluster. insert_distributed_sync: an insert returns once
 * every shard's replica has the rows (not when they are queued on the entry node), so a
 * failed write fails the sink's batch (which retries it; its upserts are idempotent) instead
 * of being acknowledged and lost with the entry node. load_balancing in_order: reads and
 * writes of a shard go to its first live replica, so a read after a write sees it while that
 * replica lives (with a quorum of 1 a replica that died with an unreplicated part hands the
 * shard to a peer that lacks it until it returns; a quorum of 2 closes that gap but stops a
 * shard's writes while one of its replicas is down).
 */
export function clusterSettings(insertQuorum: number): ClickHouseSettings {
  // distributed_product_mode global: a subquery over a Distributed table inside IN (the
  // backfill's NOT IN late_clicks) runs once on the entry node and is shipped to the shards,
  // which is right wherever the rows live (the default refuses such queries).
  const s: Record<string, unknown> = { insert_distributed_sync: 1, load_balancing: 'in_order', distributed_product_mode: 'global' };
  if (insertQuorum > 1) s.insert_quorum = insertQuorum;
  return s as ClickHouseSettings;
}

/** CLICKHOUSE_URL split into its URLs (a comma-separated list names replicas of one cluster). */
export function clickhouseUrls(raw: string): string[] {
  const urls = raw.split(',').map((u) => u.trim()).filter(Boolean);
  if (urls.length === 0) throw new Error('CLICKHOUSE_URL names no server');
  return urls;
}

const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED']);

/**
 * An error that says the server was not reached (or went away mid-call), not that it refused
 * the statement: the next replica may answer. A statement the server rejected is not retried.
 */
export function isConnectionError(err: unknown): boolean {
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && CONNECTION_ERRORS.has(e.code)) return true;
    if (typeof e.message === 'string' && /socket hang up|ECONNREFUSED|ECONNRESET|EHOSTUNREACH/.test(e.message)) return true;
  }
  return false;
}

export class ServerStore implements Store {
  readonly kind = 'server' as const;
  private closed = false;
  private readonly queue: StorageQueue;
  /** Index into `clients` of the replica calls go to until it stops answering. */
  private current = 0;

  private constructor(
    private readonly clients: readonly ClickHouseClient[],
    private readonly hosts: readonly string[],
    private readonly log: Logger,
    readonly capabilities: StoreCapabilities,
    readonly storagePolicy: string,
    readonly cluster: string | undefined,
    queue: Partial<StorageQueueOptions> = {},
  ) {
    this.queue = new StorageQueue({ concurrency: SERVER_CONNECTIONS, ...queue });
  }

  static async open(opts: ServerStoreOptions): Promise<ServerStore> {
    const urls = clickhouseUrls(opts.url).map((raw) => {
      const url = new URL(raw);
      // Tables are always addressed as `adclick.<table>`; a database in the URL path would
      // become the session default and must already exist, so it is dropped here.
      if (url.pathname && url.pathname !== '/') {
        opts.logger.warn({ module: 'store', path: url.pathname }, 'CLICKHOUSE_URL path ignored: AdClick tables live in database "adclick"');
        url.pathname = '/';
      }
      return url;
    });
    const cluster = opts.cluster || undefined;
    if (cluster) {
      const bad = clusterNameProblem(cluster);
      if (bad) throw new Error(bad);
    }
    // Several URLs only make sense as replicas of one cluster: every one holds the same tables.
    if (urls.length > 1 && !cluster) throw new Error('CLICKHOUSE_URL lists several servers: set ADCLICK_CLICKHOUSE_CLUSTER (they must be replicas of that cluster)');
    const clients = urls.map((url) => createClient({
      url,
      request_timeout: opts.requestTimeoutMs ?? 30_000,
      application: 'adclick',
      max_open_connections: opts.queue?.concurrency ?? SERVER_CONNECTIONS,
      ...(cluster ? { clickhouse_settings: clusterSettings(opts.insertQuorum ?? 1) } : {}),
    }));
    // The first replica that answers; the others are the failover order.
    let first = -1;
    let lastErr: unknown;
    for (let i = 0; i < clients.length && first < 0; i++) {
      try {
        await clients[i]!.ping().then((r) => { if (!r.success) throw r.error; });
        first = i;
      } catch (err) {
        lastErr = err;
        if (!isConnectionError(err) && clients.length === 1) break;
      }
    }
    if (first < 0) first = 0; // none answers: the version query below reports why
    const client = clients[first]!;
    const url = urls[first]!;
    try {
      if (lastErr && clients.length > 1) opts.logger.child({ module: 'store' }).warn({ err: lastErr, using: url.host }, 'a ClickHouse replica of CLICKHOUSE_URL does not answer; using the next');
      const rs = await client.query({ query: 'SELECT version() AS v', format: 'JSON' });
      const version = String(normaliseRows<{ v: string }>((await rs.json()) as JsonResult)[0]?.v ?? '0.0');
      const caps = capabilitiesFor(version);
      const log = opts.logger.child({ module: 'store' });
      log.info({ kind: 'server', host: url.host, capabilities: caps }, 'ClickHouse server connected');
      const missing = missingCapabilities(caps);
      if (missing.length) log.warn({ version, missing }, `ClickHouse ${version} lacks: ${missing.join('; ')}`);
      let policy = opts.storagePolicy ?? '';
      if (policy && !caps.storagePolicies) {
        log.warn({ version, storagePolicy: policy }, `ClickHouse ${version} has no storage policies: CLICKHOUSE_STORAGE_POLICY ignored, aggregates stay on one tier`);
        policy = '';
      } else if (policy) {
        const rs2 = await client.query({ query: STORAGE_POLICY_QUERY, format: 'JSON' });
        const problem = storagePolicyProblem(policy, normaliseRows<{ policy_name: string; volume_name: string }>((await rs2.json()) as JsonResult));
        // A configured tier that does not exist is an operator error: refuse to start rather
        // than keep two years of aggregates on the wrong disks without a word.
        if (problem) throw new Error(`CLICKHOUSE_STORAGE_POLICY: ${problem}`);
      } else if (caps.storagePolicies) {
        log.warn('CLICKHOUSE_STORAGE_POLICY is empty: aggregates older than 30 days stay on the default disk (no cold tier)');
      }
      if (cluster) {
        const rs3 = await client.query({ query: CLUSTER_QUERY, format: 'JSON' });
        const problem = clusterProblem(cluster, opts.insertQuorum ?? 1, normaliseRows<ClusterRow>((await rs3.json()) as JsonResult));
        if (problem) throw new Error(`ADCLICK_CLICKHOUSE_CLUSTER: ${problem}`);
        log.info({ cluster, insertQuorum: opts.insertQuorum ?? 1 }, 'ClickHouse cluster: reads and writes through Distributed tables');
      }
      const store = new ServerStore(clients, urls.map((u) => u.host), opts.logger.child({ module: 'store' }), caps, policy, cluster, opts.queue);
      store.current = first;
      return store;
    } catch (err) {
      await Promise.all(clients.map((c) => c.close()));
      throw err;
    }
  }

  /**
   * Run `fn` on the current replica; when it cannot be reached, on the next one (each at
   * most once per call), which becomes current. Statements are safe to repeat: reads, the
   * idempotent DDL, and the sink's writes (ReplacingMergeTree upserts by key).
   */
  private async withFailover<T>(fn: (client: ClickHouseClient) => Promise<T>): Promise<T> {
    const n = this.clients.length;
    for (let tried = 1; ; tried++) {
      const at = this.current;
      try {
        return await fn(this.clients[at]!);
      } catch (err) {
        if (n === 1 || tried >= n || !isConnectionError(err)) throw err;
        if (this.current === at) {
          this.current = (at + 1) % n;
          this.log.warn({ err, from: this.hosts[at], to: this.hosts[this.current] }, 'ClickHouse replica unreachable: failing over to the next one of CLICKHOUSE_URL');
        }
      }
    }
  }

  /** Host of the replica calls go to now (`host:port`). */
  get currentHost(): string {
    return this.hosts[this.current]!;
  }

  private prepare(sql: string, params?: QueryParams): { query: string; query_params?: Record<string, unknown> } {
    if (!params || Object.keys(params).length === 0) return { query: sql };
    if (this.capabilities.serverParams) return { query: sql, query_params: serverParamValues(sql, params) };
    return { query: bindParams(sql, params) };
  }

  async query<T = Record<string, unknown>>(sql: string, params?: QueryParams, opts: { timeoutMs?: number; settings?: QuerySettings } = {}): Promise<T[]> {
    this.assertOpen();
    const abort = opts.timeoutMs ? AbortSignal.timeout(opts.timeoutMs) : undefined;
    // Settings travel as HTTP URL parameters, which every server version reads (18.16 included).
    const clickhouse_settings = opts.settings ? (opts.settings as Record<string, unknown> as ClickHouseSettings) : undefined;
    return this.queue.run(async () => {
      return this.withFailover(async (client) => {
        const rs = await client.query({ ...this.prepare(sql, params), format: 'JSON', abort_signal: abort, clickhouse_settings });
        return normaliseRows<T>((await rs.json()) as JsonResult);
      });
    });
  }

  async insert(table: string, rows: readonly Record<string, unknown>[]): Promise<void> {
    this.assertOpen();
    if (rows.length === 0) return;
    await this.queue.run(() => this.withFailover((client) => client.insert({ table, values: rows as Record<string, unknown>[], format: 'JSONEachRow' })));
  }

  async command(sql: string, params?: QueryParams): Promise<void> {
    this.assertOpen();
    await this.queue.run(() => this.withFailover((client) => client.command(this.prepare(sql, params))));
  }

  async ping(): Promise<boolean> {
    if (this.closed) return false;
    // Ready while any replica of the list answers (calls fail over to it).
    try {
      return await this.withFailover(async (client) => {
        const r = await client.ping();
        if (!r.success) throw r.error;
        return true;
      });
    } catch {
      return false;
    }
  }

  queueStats(): StorageQueueStats {
    return this.queue.stats();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.clients.map((c) => c.close()));
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }
}

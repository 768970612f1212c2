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

export class ServerStore implements Store {
  readonly kind = 'server' as const;
  private closed = false;
  private readonly queue: StorageQueue;

  private constructor(
    private readonly client: ClickHouseClient,
    readonly capabilities: StoreCapabilities,
    readonly storagePolicy: string,
    readonly cluster: string | undefined,
    queue: Partial<StorageQueueOptions> = {},
  ) {
    this.queue = new StorageQueue({ concurrency: SERVER_CONNECTIONS, ...queue });
  }

  static async open(opts: ServerStoreOptions): Promise<ServerStore> {
    const url = new URL(opts.url);
    // Tables are always addressed as `adclick.<table>`; a database in the URL path would
    // become the session default and must already exist, so it is dropped here.
    if (url.pathname && url.pathname !== '/') {
      opts.logger.warn({ module: 'store', path: url.pathname }, 'CLICKHOUSE_URL path ignored: AdClick tables live in database "adclick"');
      url.pathname = '/';
    }
    const cluster = opts.cluster || undefined;
    if (cluster) {
      const bad = clusterNameProblem(cluster);
      if (bad) throw new Error(bad);
    }
    const client = createClient({
      url,
      request_timeout: opts.requestTimeoutMs ?? 30_000,
      application: 'adclick',
      max_open_connections: opts.queue?.concurrency ?? SERVER_CONNECTIONS,
      ...(cluster ? { clickhouse_settings: clusterSettings(opts.insertQuorum ?? 1) } : {}),
    });
    try {
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
      return new ServerStore(client, caps, policy, cluster, opts.queue);
    } catch (err) {
      await client.close();
      throw err;
    }
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
      const rs = await this.client.query({ ...this.prepare(sql, params), format: 'JSON', abort_signal: abort, clickhouse_settings });
      return normaliseRows<T>((await rs.json()) as JsonResult);
    });
  }

  async insert(table: string, rows: readonly Record<string, unknown>[]): Promise<void> {
    this.assertOpen();
    if (rows.length === 0) return;
    await this.queue.run(() => this.client.insert({ table, values: rows as Record<string, unknown>[], format: 'JSONEachRow' }));
  }

  async command(sql: string, params?: QueryParams): Promise<void> {
    this.assertOpen();
    await this.queue.run(() => this.client.command(this.prepare(sql, params)));
  }

  async ping(): Promise<boolean> {
    if (this.closed) return false;
    try {
      return (await this.client.ping()).success;
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
    await this.client.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }
}

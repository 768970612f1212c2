// Server transport: any ClickHouse server or cluster over HTTP (@clickhouse/client).
// The version is detected at open; engines without server-side parameters (< 19.11)
// get the same `{name:Type}` SQL bound client-side by param-binder.ts.
// Calls wait in a StorageQueue (storage-queue.ts) as on the embedded engine, with as many
// running at once as the HTTP pool has connections: beyond them Node's agent would queue
// without bound and nothing would be shed, so a junk-key flood's lookups could pile up in
// front of every read. Here they stay bounded, paced, shed when late or abandoned.
import { createClient, type ClickHouseClient, type ClickHouseSettings } from '@clickhouse/client';
import type { Logger } from '../shared/logger.ts';
import { capabilitiesFor, missingCapabilities, STORAGE_POLICY_QUERY, storagePolicyProblem } from './capabilities.ts';
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
  /** Bounds and deadline of waiting query API work (defaults: DEFAULT_STORAGE_QUEUE; concurrency: SERVER_CONNECTIONS). */
  readonly queue?: Partial<StorageQueueOptions>;
}

export class ServerStore implements Store {
  readonly kind = 'server' as const;
  private closed = false;
  private readonly queue: StorageQueue;

  private constructor(
    private readonly client: ClickHouseClient,
    readonly capabilities: StoreCapabilities,
    readonly storagePolicy: string,
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
    const client = createClient({
      url,
      request_timeout: opts.requestTimeoutMs ?? 30_000,
      application: 'adclick',
      max_open_connections: opts.queue?.concurrency ?? SERVER_CONNECTIONS,
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
      return new ServerStore(client, caps, policy, opts.queue);
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

// Embedded transport: chdb (ClickHouse in-process) on `<dataDir>/clickhouse`. Only the
// async API is used, so queries run off the event loop. libchdb allows one data
// directory per process, and only one process may open it: the serving process owns it.
// The engine runs one call at a time: calls wait in a StorageQueue (storage-queue.ts),
// where a query API read nobody waits for any more is dropped before it runs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Session } from 'chdb';
import type { Logger } from '../shared/logger.ts';
import { capabilitiesFor, STORAGE_POLICY_QUERY, storagePolicyProblem } from './capabilities.ts';
import { normaliseRows, type JsonResult } from './json-result.ts';
import { serverParamValues } from './param-binder.ts';
import { StorageQueue, type StorageQueueOptions, type StorageQueueStats } from './storage-queue.ts';
import type { QueryParams, QuerySettings, Store, StoreCapabilities } from './store.ts';
import { yieldToLoop } from '../shared/yield-to-loop.ts';

/** ping() takes an engine answer this recent as its own (see ping). */
const PING_FRESH_MS = 1000;
/** ping() takes a call the engine has been on for at most this long as busy, not stuck (see ping). */
const PING_BUSY_MS = 10_000;

/**
 * Whether ping() may answer from what the engine did lately instead of queueing its own
 * call behind the one running: a call came back within PING_FRESH_MS; or the engine is on
 * a call it started at most PING_BUSY_MS ago and answered one within twice that (a sink
 * insert of a big batch takes seconds on a loaded box: busy is not unready; an engine that
 * only fails, or is stuck on one call, gets asked).
 */
export function pingAnsweredByActivity(sinceAnswerMs: number, busyForMs: number | undefined): boolean {
  if (sinceAnswerMs <= PING_FRESH_MS) return true;
  return busyForMs !== undefined && busyForMs <= PING_BUSY_MS && sinceAnswerMs <= 2 * PING_BUSY_MS;
}

/** Rows serialised between two turns of the event loop by insert(). */
const INSERT_SLICE = 2000;

export interface EmbeddedStoreOptions {
  /** Directory of the chdb data; default `<dataDir>/clickhouse`. */
  readonly path: string;
  readonly logger: Logger;
  /**
   * Directory of the cold volume (a stand-in for object storage); default: a
   * `clickhouse-cold` directory beside `path`.
   */
  readonly coldPath?: string;
  /** Bounds and deadline of waiting query API work (defaults: DEFAULT_STORAGE_QUEUE). */
  readonly queue?: Partial<StorageQueueOptions>;
}

/**
 * The storage policy every embedded engine defines: the hot volume on the data directory,
 * `cold` on coldPath. The hot volume is named `default` like the default policy's only
 * volume, because ClickHouse lets a table switch policy only to one that keeps all of
 * the old policy's volumes (tables created before tiering was configured).
 */
export const EMBEDDED_STORAGE_POLICY = 'adclick_tiered';

function xmlText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Server configuration for libchdb: one extra local disk for the cold volume and the
 * tiered policy. Written next to the data directory at every open, so a changed cold
 * path takes effect on restart (parts already on the old cold disk must be moved by hand).
 */
export function embeddedStorageConfig(coldPath: string): string {
  const dir = resolve(coldPath).replace(/\/*$/, '/');
  return `<clickhouse>
  <storage_configuration>
    <disks>
      <cold><type>local</type><path>${xmlText(dir)}</path></cold>
    </disks>
    <policies>
      <${EMBEDDED_STORAGE_POLICY}>
        <volumes>
          <default><disk>default</disk></default>
          <cold><disk>cold</disk></cold>
        </volumes>
      </${EMBEDDED_STORAGE_POLICY}>
    </policies>
  </storage_configuration>
</clickhouse>
`;
}

/** `sql` with a trailing `SETTINGS name = value, …` clause (chdb has no per-query settings option). */
export function withSettingsClause(sql: string, settings: QuerySettings): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(settings)) {
    if (!/^[a-z_]+$/.test(name)) throw new Error(`invalid setting name ${JSON.stringify(name)}`);
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new Error(`setting ${name} must be finite`);
      parts.push(`${name} = ${value}`);
    } else {
      parts.push(`${name} = '${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`);
    }
  }
  return parts.length ? `${sql.replace(/[\s;]+$/, '')}\nSETTINGS ${parts.join(', ')}` : sql;
}

/**
 * chdb 3.4 quirk: a query that fails after its output began (e.g. a max_result_rows or
 * max_execution_time cap) leaves its (empty) JSON document in the session, and it comes
 * out in front of the NEXT query's result. JSON output always starts with `{\n\t"meta"`,
 * which cannot occur inside a JSON string (newlines there are escaped): keep the last one.
 */
function resultJson(r: { json<T>(): T; text(): string }): JsonResult {
  try {
    return r.json<JsonResult>();
  } catch (err) {
    const text = r.text();
    const i = text.lastIndexOf('\n{\n\t"meta"');
    if (i > 0) return JSON.parse(text.slice(i + 1)) as JsonResult;
    throw err;
  }
}

export class EmbeddedStore implements Store {
  readonly kind = 'embedded' as const;
  readonly storagePolicy = EMBEDDED_STORAGE_POLICY;
  private closed = false;
  private readonly queue: StorageQueue;

  private constructor(
    private readonly session: Session,
    readonly capabilities: StoreCapabilities,
    readonly path: string,
    queue: Partial<StorageQueueOptions> = {},
  ) {
    this.queue = new StorageQueue(queue);
  }

  static async open(opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    mkdirSync(opts.path, { recursive: true });
    const coldPath = opts.coldPath || join(dirname(resolve(opts.path)), 'clickhouse-cold');
    mkdirSync(coldPath, { recursive: true });
    const configFile = join(dirname(resolve(opts.path)), 'clickhouse-storage.xml');
    writeFileSync(configFile, embeddedStorageConfig(coldPath));
    const session = new Session(opts.path, { connectionArgs: [`--config-file=${configFile}`] });
    try {
      const r = await session.queryAsync('SELECT version() AS v', { format: 'JSON' });
      const version = String(normaliseRows<{ v: string }>(r.json<JsonResult>())[0]?.v ?? '0.0');
      const caps = capabilitiesFor(version);
      const policies = await session.queryAsync(STORAGE_POLICY_QUERY, { format: 'JSON' });
      const problem = storagePolicyProblem(EMBEDDED_STORAGE_POLICY, normaliseRows<{ policy_name: string; volume_name: string }>(policies.json<JsonResult>()));
      if (problem) throw new Error(`embedded ClickHouse: ${problem} (config ${configFile})`);
      opts.logger.info({ module: 'store', kind: 'embedded', path: opts.path, coldPath, storagePolicy: EMBEDDED_STORAGE_POLICY, capabilities: caps }, 'embedded ClickHouse (chdb) opened');
      return new EmbeddedStore(session, caps, opts.path, opts.queue);
    } catch (err) {
      session.close();
      throw err;
    }
  }

  static pathFor(dataDir: string): string {
    return join(dataDir, 'clickhouse');
  }

  async query<T = Record<string, unknown>>(sql: string, params?: QueryParams, opts: { timeoutMs?: number; settings?: QuerySettings } = {}): Promise<T[]> {
    this.assertOpen();
    const qo = { format: 'JSON', timeout: opts.timeoutMs };
    const text = opts.settings ? withSettingsClause(sql, opts.settings) : sql;
    const bound = params && Object.keys(params).length ? serverParamValues(sql, params) : null;
    const r = await this.queue.run(() => (bound ? this.session.queryBindAsync(text, bound, qo) : this.session.queryAsync(text, qo)));
    return normaliseRows<T>(resultJson(r));
  }

  async insert(table: string, rows: readonly Record<string, unknown>[]): Promise<void> {
    this.assertOpen();
    if (rows.length === 0) return;
    // Serialised a slice at a time with a turn of the event loop between (a sink batch
    // holds up to 50,000 rows: hundreds of ms in one go), so the serving process's admin
    // port and query API answer meanwhile (issue 17).
    const parts: Buffer[] = [];
    for (let i = 0; i < rows.length; i += INSERT_SLICE) {
      if (i > 0) await yieldToLoop();
      let body = '';
      for (const row of rows.slice(i, i + INSERT_SLICE)) body += JSON.stringify(row) + '\n';
      parts.push(Buffer.from(body));
    }
    const values = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    await this.queue.run(() => this.session.insert({ table, values, format: 'JSONEachRow' }));
  }

  async command(sql: string, params?: QueryParams): Promise<void> {
    this.assertOpen();
    const bound = params && Object.keys(params).length ? serverParamValues(sql, params) : null;
    await this.queue.run(() => (bound ? this.session.queryBindAsync(sql, bound) : this.session.queryAsync(sql)));
  }

  async ping(): Promise<boolean> {
    if (this.closed) return false;
    // The engine runs one call at a time: a ping would wait behind the sink's insert (up to
    // 2 s under load: /readyz probes unanswered, issue 17). What the engine did lately
    // answers instead where it shows the engine working (pingAnsweredByActivity).
    if (pingAnsweredByActivity(this.queue.sinceAnswered(), this.queue.busyFor())) return true;
    try {
      await this.queue.run(() => this.session.queryAsync('SELECT 1'));
      return true;
    } catch {
      return false;
    }
  }

  /** What the waiting room did so far (shed and refused calls). */
  queueStats(): StorageQueueStats {
    return this.queue.stats();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.session.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }
}

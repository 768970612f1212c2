// Embedded transport: chdb (ClickHouse in-process) on `<dataDir>/clickhouse`. Only the
// async API is used, so queries run off the event loop. libchdb allows one data
// directory per process, and only one process may open it: the serving process owns it.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from 'chdb';
import type { Logger } from '../shared/logger.ts';
import { capabilitiesFor } from './capabilities.ts';
import { normaliseRows, type JsonResult } from './json-result.ts';
import { serverParamValues } from './param-binder.ts';
import type { QueryParams, Store, StoreCapabilities } from './store.ts';

export interface EmbeddedStoreOptions {
  /** Directory of the chdb data; default `<dataDir>/clickhouse`. */
  readonly path: string;
  readonly logger: Logger;
}

export class EmbeddedStore implements Store {
  readonly kind = 'embedded' as const;
  private closed = false;

  private constructor(
    private readonly session: Session,
    readonly capabilities: StoreCapabilities,
    readonly path: string,
  ) {}

  static async open(opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    mkdirSync(opts.path, { recursive: true });
    const session = new Session(opts.path);
    try {
      const r = await session.queryAsync('SELECT version() AS v', { format: 'JSON' });
      const version = String(normaliseRows<{ v: string }>(r.json<JsonResult>())[0]?.v ?? '0.0');
      const caps = capabilitiesFor(version);
      opts.logger.info({ module: 'store', kind: 'embedded', path: opts.path, capabilities: caps }, 'embedded ClickHouse (chdb) opened');
      return new EmbeddedStore(session, caps, opts.path);
    } catch (err) {
      session.close();
      throw err;
    }
  }

  static pathFor(dataDir: string): string {
    return join(dataDir, 'clickhouse');
  }

  async query<T = Record<string, unknown>>(sql: string, params?: QueryParams, opts: { timeoutMs?: number } = {}): Promise<T[]> {
    this.assertOpen();
    const qo = { format: 'JSON', timeout: opts.timeoutMs };
    const r = params && Object.keys(params).length
      ? await this.session.queryBindAsync(sql, serverParamValues(sql, params), qo)
      : await this.session.queryAsync(sql, qo);
    return normaliseRows<T>(r.json<JsonResult>());
  }

  async insert(table: string, rows: readonly Record<string, unknown>[]): Promise<void> {
    this.assertOpen();
    if (rows.length === 0) return;
    let body = '';
    for (const row of rows) body += JSON.stringify(row) + '\n';
    await this.session.insert({ table, values: Buffer.from(body), format: 'JSONEachRow' });
  }

  async command(sql: string, params?: QueryParams): Promise<void> {
    this.assertOpen();
    if (params && Object.keys(params).length) await this.session.queryBindAsync(sql, serverParamValues(sql, params));
    else await this.session.queryAsync(sql);
  }

  async ping(): Promise<boolean> {
    if (this.closed) return false;
    try {
      await this.session.queryAsync('SELECT 1');
      return true;
    } catch {
      return false;
    }
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

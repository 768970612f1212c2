// Client of the serving process's loopback admin surface (API keys, backfill, reconcile). The CLI
// and the launcher use it; only the serving process opens the ClickHouse data directory.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from './config.ts';

export interface AdminAnswer {
  api_key?: string;
  revoked?: boolean;
  /** Other endpoints (backfill, reconcile) answer their own JSON. */
  [field: string]: unknown;
}

/** POST to the serving process's loopback admin surface; throws a readable error. */
export async function adminRequest(config: Config, path: string, body: Record<string, unknown>): Promise<AdminAnswer> {
  let token: string;
  try {
    token = (await readFile(join(config.dataDir, 'run', 'admin.token'), 'utf8')).trim();
  } catch {
    throw new Error(`no admin token in ${join(config.dataDir, 'run')}: is the pipeline running (adclick up)?`);
  }
  let res: Response;
  try {
    res = await fetch(`http://127.0.0.1:${config.adminPort}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
  } catch (e) {
    throw new Error(`the serving process does not answer on 127.0.0.1:${config.adminPort} (${(e as Error).message}): is the pipeline running?`);
  }
  const json = (await res.json().catch(() => ({}))) as AdminAnswer & { error?: { code: string; message: string } };
  if (!res.ok) throw new Error(`failed: ${json.error?.code ?? res.status} ${json.error?.message ?? ''}`);
  return json;
}


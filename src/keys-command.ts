// `adclick keys create --advertiser <id>` / `adclick keys revoke <api_key>`.
// With embedded ClickHouse only the serving process may open the data directory, so the
// CLI asks that process over its loopback admin port (token in <dataDir>/run/admin.token).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from './shared/config.ts';

const USAGE = 'usage: adclick keys create --advertiser <id>\n       adclick keys revoke <api_key>\n';

export async function runKeys(argv: string[], out = process.stdout, err = process.stderr): Promise<number> {
  const config = loadConfig();
  const [sub, ...rest] = argv;
  let path: string;
  let body: Record<string, unknown>;
  if (sub === 'create') {
    const i = rest.indexOf('--advertiser');
    const raw = i >= 0 ? rest[i + 1] : undefined;
    const advertiser = Number(raw);
    if (!raw || !/^\d+$/.test(raw) || !Number.isSafeInteger(advertiser) || advertiser <= 0) {
      err.write(`--advertiser must be a positive integer\n${USAGE}`);
      return 2;
    }
    path = '/admin/keys';
    body = { advertiser_id: advertiser };
  } else if (sub === 'revoke' && rest[0]) {
    path = '/admin/keys/revoke';
    body = { api_key: rest[0] };
  } else {
    err.write(USAGE);
    return 2;
  }
  let token: string;
  try {
    token = (await readFile(join(config.dataDir, 'run', 'admin.token'), 'utf8')).trim();
  } catch {
    err.write(`no admin token in ${join(config.dataDir, 'run')}: is the pipeline running (adclick up)?\n`);
    return 1;
  }
  let res: Response;
  try {
    res = await fetch(`http://127.0.0.1:${config.adminPort}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
  } catch (e) {
    err.write(`the serving process does not answer on 127.0.0.1:${config.adminPort} (${(e as Error).message}): is the pipeline running?\n`);
    return 1;
  }
  const json = (await res.json().catch(() => ({}))) as { api_key?: string; revoked?: boolean; error?: { code: string; message: string } };
  if (!res.ok) {
    err.write(`failed: ${json.error?.code ?? res.status} ${json.error?.message ?? ''}\n`);
    return 1;
  }
  if (sub === 'create') {
    out.write(`API key for advertiser ${String(body.advertiser_id)} (shown once; store it now):\n${json.api_key}\n`);
  } else {
    out.write(json.revoked ? 'revoked\n' : 'no such key\n');
    if (!json.revoked) return 1;
  }
  return 0;
}

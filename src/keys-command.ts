// `adclick keys create --advertiser <id>` / `adclick keys revoke <api_key>`.
// With embedded ClickHouse only the serving process may open the data directory, so the
// CLI asks that process over its loopback admin port (token in <dataDir>/run/admin.token).
import { loadConfig } from './shared/config.ts';
import { adminRequest, type AdminAnswer } from './shared/admin-client.ts';

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
  let json: AdminAnswer;
  try {
    json = await adminRequest(config, path, body);
  } catch (e) {
    err.write(`${(e as Error).message}\n`);
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

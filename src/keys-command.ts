// `adclick keys create --advertiser <id>` / `adclick keys revoke [<api_key> | - | --key-file F]`.
// With embedded ClickHouse only the serving process may open the data directory, so the
// CLI asks that process over its loopback admin port (token in <dataDir>/run/admin.token).
// The key to revoke can come from stdin or a file: on the command line it would be visible
// to every local user and kept in shell history.
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from './shared/config.ts';
import { adminRequest, type AdminAnswer } from './shared/admin-client.ts';
import { readSecret } from './shared/secret-input.ts';

const USAGE = 'usage: adclick keys create --advertiser <id>\n' +
  '       adclick keys revoke [<api_key> | -]    (no key or -: read it from stdin)\n' +
  '       adclick keys revoke --key-file <path>\n';

type Out = { write(s: string): unknown };

export interface KeysCommandDeps {
  config?: Config;
  stdin?: AsyncIterable<string | Buffer>;
  /** The admin call (default: the serving process's loopback admin port). */
  admin?: (path: string, body: Record<string, unknown>) => Promise<AdminAnswer>;
}

export async function runKeys(argv: string[], out: Out = process.stdout, err: Out = process.stderr, deps: KeysCommandDeps = {}): Promise<number> {
  const config = deps.config ?? loadConfig();
  const admin = deps.admin ?? ((path: string, body: Record<string, unknown>) => adminRequest(config, path, body));
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
  } else if (sub === 'revoke') {
    let apiKey: string;
    try {
      const { values, positionals } = parseArgs({ args: rest, options: { 'key-file': { type: 'string' } }, allowPositionals: true, strict: true });
      if (positionals.length > 1 || (positionals.length === 1 && values['key-file'] !== undefined)) throw new Error('give the key once: as an argument, on stdin (-) or with --key-file');
      const given = positionals[0];
      if ((given === undefined || given === '-') && values['key-file'] === undefined && !deps.stdin && process.stdin.isTTY) {
        throw new Error('no API key: pipe it in (… | adclick keys revoke), or use --key-file');
      }
      apiKey = given !== undefined && given !== '-' ? given : await readSecret(values['key-file'] ?? '-', 'API key', deps.stdin);
    } catch (e) {
      err.write(`${(e as Error).message}\n${USAGE}`);
      return 2;
    }
    path = '/admin/keys/revoke';
    body = { api_key: apiKey };
  } else {
    err.write(USAGE);
    return 2;
  }
  let json: AdminAnswer;
  try {
    json = await admin(path, body);
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

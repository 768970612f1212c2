// `adclick sign`: what an issuer (ad server) does before handing a click to a browser or
// SDK — add `key_id` and the HMAC `signature` (API.md canonical string via signClick).
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from '../shared/config.ts';
import { readSecret } from '../shared/secret-input.ts';
import { signClick } from '../shared/signature.ts';
import { resolveSigningKey, UsageError } from './cli-options.ts';

const HELP = `usage: adclick sign [--key-id K] [--secret S | --secret-file F] ['<click json>']

Prints the click JSON with "key_id" and "signature" added. Reads the JSON from stdin when
no argument is given. "event_type" defaults to "click"; an ISO-8601 "timestamp" is
converted to epoch milliseconds (the form the signature covers).
Key: --key-id/--secret, else --key-id looked up in ADCLICK_SIGNING_KEYS, else its first
key, else the development key. --secret-file F reads the secret from a file (- : stdin,
then give the click as the argument), keeping it out of ps and shell history.
`;

export interface SignCommandDeps {
  config?: Config;
  stdin?: AsyncIterable<string | Buffer>;
  stdout?: { write(s: string): unknown };
  stderr?: { write(s: string): unknown };
}

const ID_CHARS = /^[A-Za-z0-9._:-]+$/;

/** Validates the fields the signature covers and returns the signed click. */
export function signClickJson(input: unknown, keyId: string, secret: string): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new UsageError('the click must be a JSON object');
  const c = { ...(input as Record<string, unknown>) };
  delete c.key_id;
  delete c.signature;
  c.event_type ??= 'click';
  const strField = (name: string, min: number, max: number): string => {
    const v = c[name];
    if (typeof v !== 'string' || v.length < min || v.length > max || !ID_CHARS.test(v)) {
      throw new UsageError(`"${name}" must be ${min}–${max} characters of [A-Za-z0-9._:-]`);
    }
    return v;
  };
  const idField = (name: string): number => {
    const v = c[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new UsageError(`"${name}" must be a positive integer below 2^53`);
    return v;
  };
  if (typeof c.timestamp === 'string') {
    const ms = /^\d+$/.test(c.timestamp) ? Number(c.timestamp) : Date.parse(c.timestamp);
    if (Number.isNaN(ms) || !/^\d+$|[zZ]$|[+-]\d\d:?\d\d$/.test(c.timestamp)) {
      throw new UsageError('"timestamp" must be epoch milliseconds or ISO-8601 with an offset');
    }
    c.timestamp = ms;
  }
  if (typeof c.timestamp !== 'number' || !Number.isSafeInteger(c.timestamp) || c.timestamp < 0) {
    throw new UsageError('"timestamp" must be epoch milliseconds (integer) or ISO-8601 with an offset');
  }
  if (typeof c.event_type !== 'string') throw new UsageError('"event_type" must be a string');
  const signable = {
    key_id: keyId,
    event_type: c.event_type,
    impression_id: strField('impression_id', 8, 128),
    ad_id: idField('ad_id'),
    campaign_id: idField('campaign_id'),
    advertiser_id: idField('advertiser_id'),
    user_id: strField('user_id', 1, 128),
    timestamp: c.timestamp,
  };
  return { ...c, key_id: keyId, signature: signClick(signable, secret) };
}

async function readAll(stream: AsyncIterable<string | Buffer>): Promise<string> {
  let s = '';
  for await (const chunk of stream) s += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
  return s;
}

export async function runSign(argv: string[], deps: SignCommandDeps = {}): Promise<number> {
  const stdout = deps.stdout ?? process.stdout;
  const stderr = deps.stderr ?? process.stderr;
  try {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        options: { 'key-id': { type: 'string' }, secret: { type: 'string' }, 'secret-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
        allowPositionals: true,
        strict: true,
      });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (parsed.values.help) {
      stdout.write(HELP);
      return 0;
    }
    if (parsed.positionals.length > 1) throw new UsageError('give one click JSON argument (quote it), or none to read stdin');
    const secretFile = parsed.values['secret-file'];
    if (secretFile !== undefined && parsed.values.secret !== undefined) throw new UsageError('give either --secret or --secret-file');
    if (secretFile === '-' && parsed.positionals.length === 0) throw new UsageError('--secret-file - reads the secret from stdin: give the click as an argument');
    let secret = parsed.values.secret;
    if (secretFile !== undefined) {
      try {
        secret = await readSecret(secretFile, 'signing secret', deps.stdin ?? process.stdin);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    }
    const key = resolveSigningKey(deps.config ?? loadConfig(), parsed.values['key-id'], secret);
    const text = parsed.positionals[0] ?? (await readAll(deps.stdin ?? process.stdin));
    let input: unknown;
    try {
      input = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`not valid JSON: ${(err as Error).message}`);
    }
    stdout.write(`${JSON.stringify(signClickJson(input, key.keyId, key.secret))}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    stderr.write(`adclick sign: ${err.message}\n\n${HELP}`);
    return 2;
  }
}

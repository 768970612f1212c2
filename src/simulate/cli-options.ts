// Small parsers shared by the simulate and sign commands (flags come from argv; the
// environment is only read through shared/config.ts).
import { DEV_SIGNING_KEYS, parseSigningKeys, type Config } from '../shared/config.ts';

/** "60s", "500ms", "2m", "1h", or a bare number of seconds → milliseconds. */
export function parseDuration(raw: string, flag = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(raw);
  if (!m) throw new UsageError(`--${flag} must look like 500ms, 60s, 2m or 1h, got "${raw}"`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
}

export function parseNumber(raw: string, flag: string, o: { min?: number; max?: number; integer?: boolean } = {}): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag} must be a number, got "${raw}"`);
  if (o.integer && !Number.isSafeInteger(n)) throw new UsageError(`--${flag} must be an integer, got "${raw}"`);
  if (o.min !== undefined && n < o.min) throw new UsageError(`--${flag} must be >= ${o.min}, got ${n}`);
  if (o.max !== undefined && n > o.max) throw new UsageError(`--${flag} must be <= ${o.max}, got ${n}`);
  return n;
}

/** A mistake in the command line: reported with exit code 2, without a stack. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * A command's parsed arguments, or the exit code the command ends with: 2 after printing
 * the mistake and the help for a UsageError, 0 after printing the help for --help.
 */
export function parseCommandLine<T extends { readonly help?: boolean }>(
  parse: () => T, help: string, out: { write(s: string): unknown }, err: { write(s: string): unknown }, prefix = '',
): T | number {
  let args: T;
  try {
    args = parse();
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err.write(`${prefix}${e.message}\n\n${help}`);
    return 2;
  }
  if (args.help) {
    out.write(help);
    return 0;
  }
  return args;
}

/**
 * The signing key to use: --key-id/--secret if given; --key-id alone is looked up in the
 * configured keys; otherwise the first configured key, else the development key.
 */
export function resolveSigningKey(config: Config, keyId: string | undefined, secret: string | undefined): { keyId: string; secret: string } {
  if (secret !== undefined && keyId === undefined) throw new UsageError('--secret needs --key-id');
  if (keyId !== undefined && secret !== undefined) {
    if (!keyId || !secret) throw new UsageError('--key-id and --secret must not be empty');
    return { keyId, secret };
  }
  const configured = parseSigningKeys(config.signingKeys || DEV_SIGNING_KEYS);
  if (keyId !== undefined) {
    const s = configured.get(keyId);
    if (s === undefined) throw new UsageError(`key id "${keyId}" is not among the configured signing keys; pass --secret`);
    return { keyId, secret: s };
  }
  const first = configured.entries().next().value as [string, string];
  return { keyId: first[0], secret: first[1] };
}

/** Base URL of the local gateway from the configuration (a wildcard bind means loopback). */
export function defaultGatewayUrl(config: Config): string {
  let host = config.host;
  if (host === '0.0.0.0' || host === '' ) host = '127.0.0.1';
  if (host === '::') host = '::1';
  if (host.includes(':')) host = `[${host}]`;
  return `http://${host}:${config.gatewayPort}`;
}

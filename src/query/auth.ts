// API-key authentication. Keys are stored hashed (sha256 hex); the raw key never leaves
// this module and is never logged. Positive lookups are cached for a short TTL so a
// revoked key stops working within that TTL; failures are not cached, so a key created a
// moment ago works at once.
import { createHash } from 'node:crypto';
import { AppError } from '../shared/errors.ts';
import type { QueryRepository } from './repository.ts';

export type Clock = () => number;

// RFC 6750 b64token; the scheme name is case-insensitive (RFC 7235).
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i;
const MAX_KEY_LENGTH = 512;

/** The raw key from an Authorization header, or null when absent or malformed. */
export function parseBearer(header: unknown): string | null {
  if (typeof header !== 'string' || header.length > MAX_KEY_LENGTH + 16) return null;
  const m = BEARER.exec(header);
  return m?.[1] ?? null;
}

export function hashApiKey(rawKey: string): string {
  return createHash('sha256').update(rawKey, 'utf8').digest('hex');
}

export interface Principal {
  readonly advertiserId: number;
  /** sha256 hex of the key: safe to use as a rate-limit or log key. */
  readonly keyHash: string;
}

export interface AuthenticatorOptions {
  /** How long a valid key is trusted without asking storage again (revocation delay). */
  readonly cacheTtlMs: number;
  /** Bound on cached keys; the oldest entry goes first. */
  readonly maxCachedKeys: number;
}

export class ApiKeyAuthenticator {
  private readonly cache = new Map<string, { advertiserId: number; expiresAt: number }>();
  private readonly inflight = new Map<string, Promise<{ advertiserId: number } | null>>();

  constructor(
    private readonly lookup: QueryRepository['findApiKey'],
    private readonly clock: Clock,
    private readonly opts: AuthenticatorOptions,
  ) {}

  /** Throws 401 UNAUTHORIZED for a missing, malformed, unknown or revoked key. */
  async authenticate(authorization: unknown): Promise<Principal> {
    const rawKey = parseBearer(authorization);
    if (rawKey === null) throw new AppError('UNAUTHORIZED');
    const keyHash = hashApiKey(rawKey);
    const now = this.clock();
    const hit = this.cache.get(keyHash);
    if (hit && hit.expiresAt > now) return { advertiserId: hit.advertiserId, keyHash };
    if (hit) this.cache.delete(keyHash);

    const found = await this.lookupOnce(keyHash);
    if (!found) throw new AppError('UNAUTHORIZED');
    return { advertiserId: found.advertiserId, keyHash };
  }

  /** Concurrent requests with the same uncached key share one storage lookup. */
  private lookupOnce(keyHash: string): Promise<{ advertiserId: number } | null> {
    let p = this.inflight.get(keyHash);
    if (!p) {
      p = this.lookup(keyHash)
        .then((rec) => {
          if (!rec || rec.revoked) return null;
          this.remember(keyHash, rec.advertiserId);
          return { advertiserId: rec.advertiserId };
        })
        .finally(() => this.inflight.delete(keyHash));
      this.inflight.set(keyHash, p);
    }
    return p;
  }

  private remember(keyHash: string, advertiserId: number): void {
    if (this.opts.cacheTtlMs <= 0) return;
    this.cache.delete(keyHash);
    while (this.cache.size >= this.opts.maxCachedKeys) {
      const oldest = this.cache.keys().next();
      if (oldest.done) break;
      this.cache.delete(oldest.value);
    }
    this.cache.set(keyHash, { advertiserId, expiresAt: this.clock() + this.opts.cacheTtlMs });
  }
}

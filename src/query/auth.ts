// API-key authentication. Keys are stored hashed (sha256 hex); the raw key never leaves
// this module and is never logged. Positive lookups are cached for a short TTL so a
// revoked key stops working within that TTL.
//
// A stranger can send any number of tokens, and every storage lookup delays every
// legitimate read (the embedded engine runs one query at a time), so before a lookup:
//   1. a token that cannot be a key we minted is refused (no storage work at all);
//   2. a key that failed a moment ago is refused from a bounded memory of failures
//      (negative TTL; a key minted in this process meanwhile makes those memories stale,
//      so a fresh key works at once);
//   3. each client has a budget of failed lookups (429 RATE_LIMITED + Retry-After when
//      spent), reserved before the lookup and given back when the key is good; a key
//      known good (also one whose cache entry expired: its re-check) skips it, so its
//      owner is served through a flood from the same address;
//   4. the lookup runs in the storage queue's `lookup` lane: behind reads, bounded, and
//      dropped when every request waiting for it has gone (a re-check waits with the reads).
import { apiKeyMintEpoch, hashApiKey, looksLikeApiKey } from '../store/api-keys.ts';
import { currentStorageScope, runInStorageScope } from '../store/storage-scope.ts';
import { AppError, isAppError } from '../shared/errors.ts';
import { AuthFailureLimiter } from './auth-failure-limiter.ts';
import type { QueryRepository } from './repository.ts';

export { hashApiKey };

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

export interface Principal {
  readonly advertiserId: number;
  /** sha256 hex of the key: safe to use as a rate-limit or log key. */
  readonly keyHash: string;
}

export interface AuthGuardOptions {
  /** How long a failed key is refused without asking storage again (0: not remembered). */
  readonly negativeTtlMs: number;
  /** Failed lookups a client may cause at once before 429. */
  readonly failureBurst: number;
  /** Failed lookups per minute a client may cause in the long run. */
  readonly failuresPerMin: number;
}

export const DEFAULT_AUTH_GUARD: AuthGuardOptions = Object.freeze({ negativeTtlMs: 5000, failureBurst: 20, failuresPerMin: 30 });

export interface AuthenticatorOptions extends Partial<AuthGuardOptions> {
  /** How long a valid key is trusted without asking storage again (revocation delay). */
  readonly cacheTtlMs: number;
  /** Bound on cached keys, good and failed each, and on tracked clients; the oldest entry goes first. */
  readonly maxCachedKeys: number;
}

interface Inflight {
  readonly promise: Promise<{ advertiserId: number } | null>;
  readonly abort: AbortController;
  /** Requests still waiting that can go away; -Infinity once one that cannot joined. */
  waiting: number;
}

export class ApiKeyAuthenticator {
  private readonly cache = new Map<string, { advertiserId: number; expiresAt: number }>();
  private readonly failed = new Map<string, { expiresAt: number; epoch: number }>();
  private readonly inflight = new Map<string, Inflight>();
  /** Cached keys past half their TTL, to re-check once the current answer is out (refreshDue). */
  private readonly due = new Set<string>();
  private readonly failures: AuthFailureLimiter;
  private readonly guard: AuthGuardOptions;

  constructor(
    private readonly lookup: QueryRepository['findApiKey'],
    private readonly clock: Clock,
    private readonly opts: AuthenticatorOptions,
  ) {
    this.guard = {
      negativeTtlMs: opts.negativeTtlMs ?? DEFAULT_AUTH_GUARD.negativeTtlMs,
      failureBurst: opts.failureBurst ?? DEFAULT_AUTH_GUARD.failureBurst,
      failuresPerMin: opts.failuresPerMin ?? DEFAULT_AUTH_GUARD.failuresPerMin,
    };
    this.failures = new AuthFailureLimiter(clock, { burst: this.guard.failureBurst, perMin: this.guard.failuresPerMin, maxClients: opts.maxCachedKeys });
  }

  /**
   * Throws 401 UNAUTHORIZED for a missing, malformed, unknown or revoked key, 429
   * RATE_LIMITED (with retryAfterSec) when `client` (its address or address bucket)
   * spent its failed-lookup budget.
   */
  async authenticate(authorization: unknown, client = ''): Promise<Principal> {
    const rawKey = parseBearer(authorization);
    if (rawKey === null || !looksLikeApiKey(rawKey)) throw new AppError('UNAUTHORIZED');
    const keyHash = hashApiKey(rawKey);
    const now = this.clock();
    const hit = this.cache.get(keyHash);
    if (hit && hit.expiresAt > now) {
      // Past half its TTL: re-checked after this answer (refreshDue), so a key in steady use
      // never waits for its re-check. It is still trusted at most cacheTtlMs past the last
      // lookup that saw it good.
      if (now >= hit.expiresAt - this.opts.cacheTtlMs / 2) this.due.add(keyHash);
      return { advertiserId: hit.advertiserId, keyHash };
    }
    // An expired entry is a key that was good: its re-check is not a stranger's guess, so
    // it costs no failure budget and waits with the reads, not with the lookups.
    const recheck = hit !== undefined;
    if (!recheck && this.knownFailed(keyHash, now)) throw new AppError('UNAUTHORIZED');

    if (!recheck) {
      const decision = this.failures.reserve(client);
      if (!decision.allowed) throw new AppError('RATE_LIMITED', 'Too many failed authentications; retry later', { retryAfterSec: decision.retryAfterSec });
    }
    let found: { advertiserId: number } | null;
    try {
      found = await this.lookupOnce(keyHash, recheck);
    } catch (err) {
      throw isAppError(err) ? err : new AppError('UNAVAILABLE', undefined, { cause: err });
    }
    if (!found) throw new AppError('UNAUTHORIZED');
    if (!recheck) this.failures.refund(client);
    return { advertiserId: found.advertiserId, keyHash };
  }

  /**
   * Re-checks the keys found due by authenticate() since the last call: call it once an
   * answer is written (the embedded engine runs one call at a time, so a re-check started
   * before the request's reads would delay them). Each runs with the reads (interactive
   * lane, shed when the engine is saturated); a failed re-check changes nothing (the entry
   * expires as it would have). Resolves when they are done.
   */
  async refreshDue(): Promise<void> {
    if (this.due.size === 0) return;
    const keys = [...this.due];
    this.due.clear();
    await Promise.all(keys.map((k) => (this.inflight.has(k) || !this.cache.has(k) ? undefined : this.lookupOnce(k, true).catch(() => undefined))));
  }

  private knownFailed(keyHash: string, now: number): boolean {
    const f = this.failed.get(keyHash);
    if (!f) return false;
    if (f.expiresAt > now && f.epoch === apiKeyMintEpoch()) return true;
    this.failed.delete(keyHash);
    return false;
  }

  /**
   * Concurrent requests with the same uncached key share one storage lookup, which is
   * dropped from the storage queue once every request waiting for it has gone.
   */
  private lookupOnce(keyHash: string, recheck: boolean): Promise<{ advertiserId: number } | null> {
    let entry = this.inflight.get(keyHash);
    if (!entry) {
      const abort = new AbortController();
      const epoch = apiKeyMintEpoch();
      const promise = runInStorageScope({ lane: recheck ? 'interactive' : 'lookup', signal: abort.signal }, () => this.lookup(keyHash))
        .then((rec) => {
          if (!rec || rec.revoked) {
            this.cache.delete(keyHash);
            this.rememberFailed(keyHash, epoch);
            return null;
          }
          this.remember(keyHash, rec.advertiserId);
          return { advertiserId: rec.advertiserId };
        })
        .finally(() => this.inflight.delete(keyHash));
      entry = { promise, abort, waiting: 0 };
      this.inflight.set(keyHash, entry);
    }
    const signal = currentStorageScope()?.signal;
    if (!signal) {
      entry.waiting = -Infinity;
    } else {
      const e = entry;
      e.waiting++;
      signal.addEventListener('abort', () => {
        if (--e.waiting <= 0 && e.waiting > -Infinity) e.abort.abort();
      }, { once: true });
    }
    return entry.promise;
  }

  private remember(keyHash: string, advertiserId: number): void {
    if (this.opts.cacheTtlMs <= 0) return;
    this.boundedSet(this.cache, keyHash, { advertiserId, expiresAt: this.clock() + this.opts.cacheTtlMs });
  }

  private rememberFailed(keyHash: string, epoch: number): void {
    if (this.guard.negativeTtlMs <= 0 || epoch !== apiKeyMintEpoch()) return;
    this.boundedSet(this.failed, keyHash, { expiresAt: this.clock() + this.guard.negativeTtlMs, epoch });
  }

  private boundedSet<V>(map: Map<string, V>, key: string, value: V): void {
    map.delete(key);
    while (map.size >= this.opts.maxCachedKeys) {
      const oldest = map.keys().next();
      if (oldest.done) break;
      map.delete(oldest.value);
    }
    map.set(key, value);
  }
}

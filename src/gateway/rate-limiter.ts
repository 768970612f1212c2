// Per-client-IP rate limit with GCRA (generic cell rate algorithm): one Redis key per IP
// holding the "theoretical arrival time", updated atomically in one Lua script using
// Redis' clock, so every gateway instance shares the same limit. When Redis is
// unreachable the same algorithm runs in-process (per instance) — fail-open, never closed.
import type { Redis } from 'ioredis';

export interface RateDecision {
  allowed: boolean;
  retryAfterMs: number;
}

export interface RateLimiter {
  check(ip: string): Promise<RateDecision>;
}

/** What a request needs before producing: its rate-limit decision and the edge-dedup read. */
export interface Admitted {
  decision: RateDecision;
  /** Per dedup key: true when already accepted. All false when limited (not read). */
  seen: boolean[];
}

export interface Admission {
  /** Rate limit of `ip` and edge-dedup read of `dedupKeys`. Never throws (fail-open). */
  admit(ip: string, dedupKeys: readonly string[]): Promise<Admitted>;
}

// KEYS[1] = bucket key; ARGV[1] = emission interval (µs), ARGV[2] = burst tolerance (µs).
// Returns 0 when allowed, otherwise µs until the next request would be allowed.
/** One GCRA step on KEYS[1] (Redis clock); `limited` is what the script returns when limited. */
const gcraStep = (limited: string) => `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return ${limited} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
`;

const GCRA_LUA = `${gcraStep('wait')}return 0
`;

export class LocalGcra {
  private readonly tats = new Map<string, number>();
  private lastSweep = 0;

  constructor(
    private readonly intervalUs: number,
    private readonly toleranceUs: number,
    private readonly nowUs: () => number = () => Number(process.hrtime.bigint() / 1000n),
  ) {}

  check(key: string): RateDecision {
    const now = this.nowUs();
    if (now - this.lastSweep > 10_000_000) this.sweep(now);
    const tat = Math.max(this.tats.get(key) ?? now, now);
    const wait = tat - this.toleranceUs - now;
    if (wait > 0) return { allowed: false, retryAfterMs: Math.ceil(wait / 1000) };
    this.tats.set(key, tat + this.intervalUs);
    return { allowed: true, retryAfterMs: 0 };
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [k, tat] of this.tats) if (tat < now) this.tats.delete(k);
  }
}

export interface RateLimiterOptions {
  perSecond: number;
  burst: number;
  onRedisError?: (err: unknown) => void;
}

export function gcraParams(o: RateLimiterOptions): { intervalUs: number; toleranceUs: number } {
  const intervalUs = Math.round(1_000_000 / o.perSecond);
  // A burst of N requests at once is allowed: tolerance = (N - 1) intervals.
  return { intervalUs, toleranceUs: intervalUs * Math.max(0, o.burst - 1) };
}

// The same GCRA step, then (only when allowed) EXISTS for each edge-dedup key, so a
// click costs one Redis command and one round trip before it is produced.
// KEYS[1] = bucket key, KEYS[2..n] = dedup keys; ARGV as above.
// Returns {wait_us} when limited, else {0, seen_1, ..., seen_n-1} (1 = already accepted).
// NOTE: a multi-key script needs all keys in one slot; on Redis Cluster use the separate
// check + MGET path instead (this gateway talks to a single Redis today).
const GCRA_DEDUP_LUA = `${gcraStep('{wait}')}local out = {0}
for i = 2, #KEYS do out[i] = redis.call('EXISTS', KEYS[i]) end
return out
`;

type RedisWithGcra = Redis & {
  adclickGcra(key: string, interval: number, tolerance: number): Promise<number>;
  adclickGcraSeen(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
};

const ALLOWED: RateDecision = Object.freeze({ allowed: true, retryAfterMs: 0 });
const allowed = (waitUs: number): RateDecision => (waitUs > 0 ? { allowed: false, retryAfterMs: Math.ceil(waitUs / 1000) } : ALLOWED);
const unseen = (keys: readonly string[]) => new Array<boolean>(keys.length).fill(false);

/**
 * The Redis rate limiter; it also answers `admit` (rate limit + edge-dedup read in one
 * script). Redis down or slow: the in-process GCRA decides and nothing counts as seen.
 */
export function createRateLimiter(redis: Redis | null, o: RateLimiterOptions): RateLimiter & Admission {
  const { intervalUs, toleranceUs } = gcraParams(o);
  const local = new LocalGcra(intervalUs, toleranceUs);
  if (!redis) return { check: async (ip) => local.check(ip), admit: async (ip, keys) => ({ decision: local.check(ip), seen: unseen(keys) }) };
  redis.defineCommand('adclickGcra', { numberOfKeys: 1, lua: GCRA_LUA });
  redis.defineCommand('adclickGcraSeen', { lua: GCRA_DEDUP_LUA });
  const r = redis as RedisWithGcra;
  return {
    async check(ip) {
      if (r.status !== 'ready') return local.check(ip);
      try {
        return allowed(await r.adclickGcra(`adclick:rl:${ip}`, intervalUs, toleranceUs));
      } catch (err) {
        o.onRedisError?.(err);
        return local.check(ip);
      }
    },
    async admit(ip, keys) {
      if (r.status !== 'ready') return { decision: local.check(ip), seen: unseen(keys) };
      try {
        const out = await r.adclickGcraSeen(1 + keys.length, `adclick:rl:${ip}`, ...keys, intervalUs, toleranceUs);
        if (out[0]! > 0) return { decision: allowed(out[0]!), seen: unseen(keys) };
        const seen = new Array<boolean>(keys.length);
        for (let i = 0; i < keys.length; i++) seen[i] = out[i + 1] === 1;
        return { decision: ALLOWED, seen };
      } catch (err) {
        o.onRedisError?.(err);
        return { decision: local.check(ip), seen: unseen(keys) };
      }
    },
  };
}

/** Rate limiter and edge dedup as two calls (fakes, or a Redis that cannot run the script). */
export function separateAdmission(limiter: RateLimiter, dedup: { seen(keys: readonly string[]): Promise<boolean[]> }): Admission {
  return {
    async admit(ip, keys) {
      const [decision, seen] = await Promise.all([limiter.check(ip), dedup.seen(keys)]);
      return decision.allowed ? { decision, seen } : { decision, seen: unseen(keys) };
    },
  };
}

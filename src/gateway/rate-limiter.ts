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

// One GCRA step as a Lua function (Redis clock, µs): returns 0 and advances the bucket's
// "theoretical arrival time" when allowed, else the µs until a request would be allowed.
const GCRA_FN = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local function gcra(bucket)
  local tat = tonumber(redis.call('GET', bucket)) or now
  if tat < now then tat = now end
  local wait = tat - tolerance - now
  if wait > 0 then return wait end
  local new_tat = tat + interval
  redis.call('SET', bucket, new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
  return 0
end
`;

// KEYS[1] = bucket key; ARGV[1] = emission interval (µs), ARGV[2] = burst tolerance (µs).
const GCRA_LUA = `${GCRA_FN}return gcra(KEYS[1])
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

// Admission of many requests in one script: the GCRA step of each request's bucket, then
// (only when allowed) EXISTS for each of its edge-dedup keys. Requests are taken in order,
// so two requests of one IP in the same script see each other like two separate calls.
// KEYS = per request: its bucket key, then its n dedup keys; ARGV[1], ARGV[2] as above,
// ARGV[3..] = n of each request. Returns, per request: wait_us (0 = allowed), then n flags
// (1 = already accepted; all 0 when limited: nothing is read for a limited request).
// NOTE: a multi-key script needs all keys in one slot; on Redis Cluster use the separate
// check + MGET path instead (this gateway talks to a single Redis today).
const ADMIT_LUA = `${GCRA_FN}local out = {}
local k = 1
for r = 3, #ARGV do
  local n = tonumber(ARGV[r])
  local wait = gcra(KEYS[k])
  out[#out + 1] = wait
  for i = 1, n do out[#out + 1] = (wait > 0) and 0 or redis.call('EXISTS', KEYS[k + i]) end
  k = k + 1 + n
end
return out
`;
/** Above this many keys in the queue, a script is sent at once instead of at the end of the turn. */
const MAX_KEYS_PER_ADMIT = 2000;

type RedisWithGcra = Redis & {
  adclickGcra(key: string, interval: number, tolerance: number): Promise<number>;
  adclickAdmit(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
};

const ALLOWED: RateDecision = Object.freeze({ allowed: true, retryAfterMs: 0 });
const allowed = (waitUs: number): RateDecision => (waitUs > 0 ? { allowed: false, retryAfterMs: Math.ceil(waitUs / 1000) } : ALLOWED);
const unseen = (keys: readonly string[]) => new Array<boolean>(keys.length).fill(false);

interface PendingAdmit {
  ip: string;
  keys: readonly string[];
  resolve: (a: Admitted) => void;
}

/**
 * The Redis rate limiter; it also answers `admit` (rate limit + edge-dedup read). The
 * admissions of one event-loop turn — every request whose body arrived in it — go to Redis
 * as ONE script: one write, one reply, one script run instead of one per request (at
 * thousands of requests/s the per-command cost, not the work, dominated Redis and the
 * gateway's socket writes). A request waits at most for the end of its turn.
 * Redis down or slow: the in-process GCRA decides and nothing counts as seen.
 */
export function createRateLimiter(redis: Redis | null, o: RateLimiterOptions): RateLimiter & Admission {
  const { intervalUs, toleranceUs } = gcraParams(o);
  const local = new LocalGcra(intervalUs, toleranceUs);
  const localAdmit = (ip: string, keys: readonly string[]): Admitted => ({ decision: local.check(ip), seen: unseen(keys) });
  if (!redis) return { check: async (ip) => local.check(ip), admit: async (ip, keys) => localAdmit(ip, keys) };
  redis.defineCommand('adclickGcra', { numberOfKeys: 1, lua: GCRA_LUA });
  redis.defineCommand('adclickAdmit', { lua: ADMIT_LUA });
  const r = redis as RedisWithGcra;

  let queue: PendingAdmit[] = [];
  let queuedKeys = 0;
  let scheduled = false;

  const send = async (batch: PendingAdmit[]): Promise<void> => {
    const keys: string[] = [];
    const counts: number[] = [];
    for (const p of batch) {
      keys.push(`adclick:rl:${p.ip}`);
      for (const k of p.keys) keys.push(k);
      counts.push(p.keys.length);
    }
    let out: number[];
    try {
      out = await r.adclickAdmit(keys.length, ...keys, intervalUs, toleranceUs, ...counts);
    } catch (err) {
      o.onRedisError?.(err);
      for (const p of batch) p.resolve(localAdmit(p.ip, p.keys));
      return;
    }
    let at = 0;
    for (const p of batch) {
      const wait = out[at++]!;
      const seen = new Array<boolean>(p.keys.length);
      for (let i = 0; i < p.keys.length; i++) seen[i] = out[at++] === 1;
      p.resolve({ decision: allowed(wait), seen });
    }
  };
  const flush = () => {
    scheduled = false;
    const batch = queue;
    queue = [];
    queuedKeys = 0;
    if (batch.length) void send(batch);
  };

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
    admit(ip, keys) {
      if (r.status !== 'ready') return Promise.resolve(localAdmit(ip, keys));
      return new Promise<Admitted>((resolve) => {
        queue.push({ ip, keys, resolve });
        queuedKeys += 1 + keys.length;
        if (queuedKeys >= MAX_KEYS_PER_ADMIT) flush();
        else if (!scheduled) {
          scheduled = true;
          // setImmediate runs after the poll phase: every request read in this turn is queued.
          setImmediate(flush);
        }
      });
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

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

// KEYS[1] = bucket key; ARGV[1] = emission interval (µs), ARGV[2] = burst tolerance (µs).
// Returns 0 when allowed, otherwise µs until the next request would be allowed.
const GCRA_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return wait end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
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

type RedisWithGcra = Redis & { adclickGcra(key: string, interval: number, tolerance: number): Promise<number> };

export function createRateLimiter(redis: Redis | null, o: RateLimiterOptions): RateLimiter {
  const { intervalUs, toleranceUs } = gcraParams(o);
  const local = new LocalGcra(intervalUs, toleranceUs);
  if (!redis) return { check: async (ip) => local.check(ip) };
  redis.defineCommand('adclickGcra', { numberOfKeys: 1, lua: GCRA_LUA });
  const r = redis as RedisWithGcra;
  return {
    async check(ip) {
      if (r.status !== 'ready') return local.check(ip);
      try {
        const waitUs = await r.adclickGcra(`adclick:rl:${ip}`, intervalUs, toleranceUs);
        return waitUs > 0 ? { allowed: false, retryAfterMs: Math.ceil(waitUs / 1000) } : { allowed: true, retryAfterMs: 0 };
      } catch (err) {
        o.onRedisError?.(err);
        return local.check(ip);
      }
    },
  };
}

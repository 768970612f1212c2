// Per-client-IP rate limit with GCRA (generic cell rate algorithm): one Redis key per IP
// holding the "theoretical arrival time", updated atomically in one Lua script using
// Redis' clock, so every gateway instance shares the same limit. When Redis is
// unreachable the same algorithm runs in-process (per instance) — fail-open, never closed.
import type { Redis } from 'ioredis';

export interface RateDecision {
  allowed: boolean;
  retryAfterMs: number;
}

/**
 * Charges. A batch pays one request per click in two steps: 1 when it arrives (before its
 * body is read), the rest (`cost`, with `paid` = 1) once its clicks are counted. It must
 * never need more than the burst free, or a batch larger than the burst could never pass:
 * a charge is admitted when its share of min(paid + cost, burst) requests fits, and then
 * takes the whole cost, so a big batch drives the bucket into a debt the client waits off
 * and the sustained rate still holds per click.
 */
export interface RateLimiter {
  /** Charge `cost` requests (default 1) to the bucket `ip`; `paid` as above (default 0). */
  check(ip: string, cost?: number, paid?: number): Promise<RateDecision>;
}

/** What a request needs before producing: its rate-limit decision and the edge-dedup read. */
export interface Admitted {
  decision: RateDecision;
  /** Per dedup key: true when already accepted. All false when limited (not read). */
  seen: boolean[];
}

export interface Admission {
  /**
   * Charge `cost` requests (default 1; 0: no rate limit, only the read) to `ip` and read
   * the edge-dedup keys `dedupKeys`. Never throws (fail-open).
   */
  admit(ip: string, dedupKeys: readonly string[], cost?: number, paid?: number): Promise<Admitted>;
}

// One GCRA step as a Lua function (Redis clock, µs): returns 0 and advances the bucket's
// "theoretical arrival time" when allowed, else the µs until a request would be allowed.
// A client bucket may have an aggregate bucket (its IPv6 /48: ARGV[3], ARGV[4] are that
// bucket's interval and tolerance): the charge passes only when both allow it, and then
// advances both, so rotating over the /64s of one /48 is bounded by the aggregate.
const GCRA_FN = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local agg_interval = tonumber(ARGV[3])
local agg_tolerance = tonumber(ARGV[4])
local function tat_of(bucket, iv, tol)
  local tat = tonumber(redis.call('GET', bucket)) or now
  if tat < now then tat = now end
  -- No honest charge puts a bucket further ahead than the burst plus the largest batch
  -- (ADCLICK_MAX_BATCH_CLICKS <= 10000) of debt: a bucket beyond that was planted by
  -- someone who can write to Redis (or is garbage) and is not believed (issue 16).
  if tat > now + tol + 10000 * iv then tat = now end
  return tat
end
local function wait_of(tat, fit, iv, tol)
  if fit <= 0 then return 0 end
  local wait = tat + (fit - 1) * iv - tol - now
  if wait > 0 then return wait end
  return 0
end
local function advance(bucket, tat, cost, iv)
  local new_tat = tat + cost * iv
  redis.call('SET', bucket, new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
end
local function gcra(bucket, cost, fit, agg, agg_fit)
  local tat = tat_of(bucket, interval, tolerance)
  local wait = wait_of(tat, fit, interval, tolerance)
  local agg_tat = 0
  if agg then
    agg_tat = tat_of(agg, agg_interval, agg_tolerance)
    local w = wait_of(agg_tat, agg_fit, agg_interval, agg_tolerance)
    if w > wait then wait = w end
  end
  if wait > 0 then return wait end
  advance(bucket, tat, cost, interval)
  if agg then advance(agg, agg_tat, cost, agg_interval) end
  return 0
end
`;

// KEYS[1] = bucket key, KEYS[2] = its aggregate bucket (when there is one); ARGV[1], ARGV[2] =
// emission interval and burst tolerance (µs), ARGV[3], ARGV[4] = the aggregate's, ARGV[5] =
// cost, ARGV[6] = fit, ARGV[7] = the aggregate's fit (requests).
const GCRA_LUA = `${GCRA_FN}return gcra(KEYS[1], tonumber(ARGV[5]), tonumber(ARGV[6]), KEYS[2], tonumber(ARGV[7]))
`;

export class LocalGcra {
  private readonly tats = new Map<string, number>();
  private lastSweep = 0;

  constructor(
    private readonly intervalUs: number,
    private readonly toleranceUs: number,
    private readonly nowUs: () => number = () => Number(process.hrtime.bigint() / 1000n),
  ) {}

  check(key: string, cost = 1, paid = 0, aggregate?: { gcra: LocalGcra; key: string }): RateDecision {
    const now = this.nowUs();
    const mine = this.peek(key, cost, paid, now);
    const theirs = aggregate ? aggregate.gcra.peek(aggregate.key, cost, paid, now) : undefined;
    const wait = Math.max(mine.waitUs, theirs?.waitUs ?? 0);
    if (wait > 0) return { allowed: false, retryAfterMs: Math.ceil(wait / 1000) };
    this.tats.set(key, mine.tat + cost * this.intervalUs);
    if (aggregate && theirs) aggregate.gcra.tats.set(aggregate.key, theirs.tat + cost * aggregate.gcra.intervalUs);
    return { allowed: true, retryAfterMs: 0 };
  }

  /** The bucket's arrival time now and the wait a charge of `cost` after `paid` needs (0: fits). */
  private peek(key: string, cost: number, paid: number, now: number): { tat: number; waitUs: number } {
    if (now - this.lastSweep > 10_000_000) this.sweep(now);
    const fit = this.fitOf(cost, paid);
    const tat = Math.max(this.tats.get(key) ?? now, now);
    return { tat, waitUs: fit > 0 ? Math.max(0, tat + (fit - 1) * this.intervalUs - this.toleranceUs - now) : 0 };
  }

  /** Requests that must be free for a charge of `cost` after `paid` (see RateLimiter). */
  fitOf(cost: number, paid: number): number {
    return Math.max(0, Math.min(cost + paid, Math.round(this.toleranceUs / this.intervalUs) + 1) - paid);
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [k, tat] of this.tats) if (tat < now) this.tats.delete(k);
  }
}

export interface RateLimiterOptions {
  perSecond: number;
  burst: number;
  /**
   * Gateway worker processes sharing this host's limit. Redis holds one bucket for all of
   * them; the in-process fallback (Redis down) gives each worker its share, or a client
   * spread over the workers would get N times the limit.
   */
  workers?: number;
  onRedisError?: (err: unknown) => void;
  /**
   * The aggregate bucket a client bucket also pays into (its IPv6 /48), or null; its rate
   * and burst are `aggregateFactor` times the client's. Without it each bucket stands alone.
   */
  aggregateOf?: (bucket: string) => string | null;
  aggregateFactor?: number;
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
// ARGV[5..] = cost, fit, n and the aggregate's fit of each request (cost 0: no GCRA step,
// only the reads; aggregate fit -1: no aggregate key, else it follows the bucket key).
// Returns, per request: wait_us (0 = allowed), then n flags (1 = already accepted; all 0
// when limited: nothing is read for a limited request).
// NOTE: a multi-key script needs all keys in one slot; on Redis Cluster use the separate
// check + MGET path instead (this gateway talks to a single Redis today).
const ADMIT_LUA = `${GCRA_FN}local out = {}
local k = 1
for r = 5, #ARGV, 4 do
  local cost = tonumber(ARGV[r])
  local n = tonumber(ARGV[r + 2])
  local agg_fit = tonumber(ARGV[r + 3])
  local bucket = KEYS[k]
  local agg = nil
  if agg_fit >= 0 then agg = KEYS[k + 1]; k = k + 1 end
  local wait = 0
  if cost > 0 then wait = gcra(bucket, cost, tonumber(ARGV[r + 1]), agg, agg_fit) end
  out[#out + 1] = wait
  for i = 1, n do out[#out + 1] = (wait > 0) and 0 or redis.call('EXISTS', KEYS[k + i]) end
  k = k + 1 + n
end
return out
`;
/** Above this many keys in the queue, a script is sent at once instead of at the end of the turn. */
const MAX_KEYS_PER_ADMIT = 2000;

type RedisWithGcra = Redis & {
  adclickGcra(numKeys: number, ...args: (string | number)[]): Promise<number>;
  adclickAdmit(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
};

const ALLOWED: RateDecision = Object.freeze({ allowed: true, retryAfterMs: 0 });
const allowed = (waitUs: number): RateDecision => (waitUs > 0 ? { allowed: false, retryAfterMs: Math.ceil(waitUs / 1000) } : ALLOWED);
const unseen = (keys: readonly string[]) => new Array<boolean>(keys.length).fill(false);

interface PendingAdmit {
  ip: string;
  keys: readonly string[];
  cost: number;
  paid: number;
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
  // Redis down: each worker limits alone, so it takes its share of the host's limit.
  const workers = Math.max(1, o.workers ?? 1);
  const share = gcraParams({ perSecond: o.perSecond / workers, burst: Math.max(1, Math.floor(o.burst / workers)) });
  const local = new LocalGcra(share.intervalUs, share.toleranceUs);
  const shared = new LocalGcra(intervalUs, toleranceUs); // only its fitOf: what a charge needs free in the Redis bucket
  // The aggregate bucket (IPv6 /48): `factor` times the client's rate and burst.
  const factor = Math.max(1, o.aggregateFactor ?? 1);
  const agg = gcraParams({ perSecond: o.perSecond * factor, burst: o.burst * factor });
  const aggShare = gcraParams({ perSecond: (o.perSecond * factor) / workers, burst: Math.max(1, Math.floor((o.burst * factor) / workers)) });
  const localAgg = new LocalGcra(aggShare.intervalUs, aggShare.toleranceUs);
  const sharedAgg = new LocalGcra(agg.intervalUs, agg.toleranceUs);
  const aggregateOf = o.aggregateOf ?? (() => null);
  const localAdmit = (ip: string, keys: readonly string[], cost: number, paid: number): Admitted => {
    if (cost <= 0) return { decision: ALLOWED, seen: unseen(keys) };
    const a = aggregateOf(ip);
    return { decision: local.check(ip, cost, paid, a === null ? undefined : { gcra: localAgg, key: a }), seen: unseen(keys) };
  };
  if (!redis) return { check: async (ip, cost = 1, paid = 0) => localAdmit(ip, [], cost, paid).decision, admit: async (ip, keys, cost = 1, paid = 0) => localAdmit(ip, keys, cost, paid) };
  redis.defineCommand('adclickGcra', { lua: GCRA_LUA });
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
      const a = p.cost > 0 ? aggregateOf(p.ip) : null;
      if (a !== null) keys.push(`adclick:rl:${a}`);
      for (const k of p.keys) keys.push(k);
      counts.push(p.cost, shared.fitOf(p.cost, p.paid), p.keys.length, a === null ? -1 : sharedAgg.fitOf(p.cost, p.paid));
    }
    let out: number[];
    try {
      out = await r.adclickAdmit(keys.length, ...keys, intervalUs, toleranceUs, agg.intervalUs, agg.toleranceUs, ...counts);
    } catch (err) {
      o.onRedisError?.(err);
      for (const p of batch) p.resolve(localAdmit(p.ip, p.keys, p.cost, p.paid));
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
    async check(ip, cost = 1, paid = 0) {
      if (r.status !== 'ready' || cost <= 0) return localAdmit(ip, [], cost, paid).decision;
      try {
        const a = aggregateOf(ip);
        const keys = a === null ? [`adclick:rl:${ip}`] : [`adclick:rl:${ip}`, `adclick:rl:${a}`];
        return allowed(await r.adclickGcra(keys.length, ...keys, intervalUs, toleranceUs, agg.intervalUs, agg.toleranceUs, cost, shared.fitOf(cost, paid), a === null ? -1 : sharedAgg.fitOf(cost, paid)));
      } catch (err) {
        o.onRedisError?.(err);
        return localAdmit(ip, [], cost, paid).decision;
      }
    },
    admit(ip, keys, cost = 1, paid = 0) {
      if (r.status !== 'ready') return Promise.resolve(localAdmit(ip, keys, cost, paid));
      return new Promise<Admitted>((resolve) => {
        queue.push({ ip, keys, cost, paid, resolve });
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
    async admit(ip, keys, cost = 1, paid = 0) {
      const [decision, seen] = await Promise.all([cost > 0 ? limiter.check(ip, cost, paid) : ALLOWED, keys.length ? dedup.seen(keys) : []]);
      return decision.allowed ? { decision, seen } : { decision, seen: unseen(keys) };
    },
  };
}

/**
 * Buckets refused lately, until their Retry-After, as this process saw them: a request of
 * one of them can be refused before its body is read without asking Redis (a refused
 * request does not advance its bucket, so refusing it here changes no decision). Bounded:
 * past `max` entries the oldest are forgotten, which only costs a Redis call.
 */
export class RecentRefusals {
  private readonly until = new Map<string, number>();

  constructor(private readonly max = 10_000, private readonly nowMs: () => number = () => performance.now()) {}

  note(bucket: string, retryAfterMs: number): void {
    if (retryAfterMs <= 0) return;
    this.until.delete(bucket);
    if (this.until.size >= this.max) {
      const oldest = this.until.keys().next().value;
      if (oldest !== undefined) this.until.delete(oldest);
    }
    this.until.set(bucket, this.nowMs() + retryAfterMs);
  }

  /** Milliseconds `bucket` is still refused for (0: ask the limiter). */
  waitMs(bucket: string): number {
    const t = this.until.get(bucket);
    if (t === undefined) return 0;
    const wait = t - this.nowMs();
    if (wait > 0) return Math.ceil(wait);
    this.until.delete(bucket);
    return 0;
  }
}

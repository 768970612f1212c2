// The per-client limit in real Redis (the Lua scripts), as the gateway charges it: 1 on
// arrival, the rest of a batch (one per click) with its edge-dedup read, and a batch larger
// than the burst passing from a full bucket into debt.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { createRateLimiter } from '../../src/gateway/rate-limiter.ts';
import { createOptionalRedis } from '../../src/shared/redis.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const redis = createOptionalRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', logger);
assert.ok(redis, 'Redis is configured');
if (redis.status !== 'ready') await new Promise((r) => redis.once('ready', r));
after(() => redis.disconnect());

const bucket = () => `2001:db8:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}::/64`;

test('Redis: a batch pays per click after its arrival charge; what does not fit is refused with the wait', async () => {
  const limiter = createRateLimiter(redis, { perSecond: 1, burst: 10, onRedisError: (err) => assert.fail(String(err)) });
  const ip = bucket();
  const seenKey = `adclick:seen:click:imp_rl_${randomBytes(4).toString('hex')}`;
  await redis.set(seenKey, '1', 'EX', 60);
  assert.equal((await limiter.admit(ip, [], 1)).decision.allowed, true);
  const rest = await limiter.admit(ip, [seenKey, `${seenKey}_new`], 5, 1);
  assert.equal(rest.decision.allowed, true);
  assert.deepEqual(rest.seen, [true, false], 'the dedup read rides with the charge');
  // 6 of 10 spent: 1 + 4 more fits, 1 + 5 more does not.
  assert.equal((await limiter.admit(ip, [], 1)).decision.allowed, true);
  const refused = await limiter.admit(ip, [seenKey], 5, 1);
  assert.equal(refused.decision.allowed, false);
  assert.deepEqual(refused.seen, [false], 'nothing is read for a refused charge');
  assert.ok(refused.decision.retryAfterMs > 500 && refused.decision.retryAfterMs <= 2000, String(refused.decision.retryAfterMs));
  // A cost-0 admission is the dedup read alone: never limited.
  assert.deepEqual((await limiter.admit(ip, [seenKey], 0)).seen, [true]);
});

test('Redis: a batch larger than the burst passes from a full bucket, then the client waits its debt off', async () => {
  const limiter = createRateLimiter(redis, { perSecond: 1, burst: 10 });
  const ip = bucket();
  assert.equal((await limiter.admit(ip, [], 1)).decision.allowed, true);
  assert.equal((await limiter.admit(ip, [], 29, 1)).decision.allowed, true, 'from a full bucket');
  const next = await limiter.check(ip);
  assert.equal(next.allowed, false);
  // 30 requests at 1/s with 9 of tolerance: about 21 s.
  assert.ok(next.retryAfterMs > 19_000 && next.retryAfterMs <= 22_000, String(next.retryAfterMs));
  // The same charges through the one-call path (check with cost and paid).
  const other = bucket();
  assert.equal((await limiter.check(other)).allowed, true);
  assert.equal((await limiter.check(other, 29, 1)).allowed, true);
  assert.equal((await limiter.check(other)).allowed, false);
});

// Issue 16, "Redis holds decisions": anyone who can write to Redis could plant a bucket whose
// next allowed time is years away and keep an address limited for as long. No honest charge
// puts a bucket further ahead than the burst plus the largest batch (10,000 clicks, the config
// bound) of debt; a bucket beyond that is not believed.
test('Redis: a planted bucket years ahead does not limit the address', async () => {
  const limiter = createRateLimiter(redis, { perSecond: 100, burst: 200 });
  const ip = bucket();
  const [sec] = await redis.time();
  const yearsAheadUs = (Number(sec) + 5 * 365 * 86_400) * 1_000_000;
  await redis.set(`adclick:rl:${ip}`, String(yearsAheadUs));
  const first = await limiter.admit(ip, [], 1);
  assert.equal(first.decision.allowed, true, `limited by a planted bucket: retry after ${first.decision.retryAfterMs} ms`);
  // An honest debt is still honoured: 200 (burst) + a 1,000-click batch, then refused.
  const honest = bucket();
  assert.equal((await limiter.admit(honest, [], 1)).decision.allowed, true);
  assert.equal((await limiter.admit(honest, [], 1000, 1)).decision.allowed, true);
  assert.equal((await limiter.admit(honest, [], 1)).decision.allowed, false, 'a client in honest debt waits');
});

// Issue 16 follow-up: rotation over the /64s of one IPv6 /48 meets the /48's aggregate
// bucket in the Redis scripts too (both the single check and the batched admission).
test('Redis: rotating over many /64s of one /48 is bounded by its aggregate; two /48s are independent', async () => {
  const { createAggregateOf } = await import('../../src/shared/client-ip.ts');
  const limiter = createRateLimiter(redis, { perSecond: 0.01, burst: 10, aggregateOf: createAggregateOf(48), aggregateFactor: 4, onRedisError: (err) => assert.fail(String(err)) });
  const site = () => `2001:db8:${randomBytes(2).toString('hex')}`;
  const a = site();
  let b = site();
  while (b === a) b = site();
  const slash64 = (s: string, i: number) => `${s}:${i.toString(16)}::/64`;
  // 300 rotations, half through the batched admission script, half through the single check.
  const decisions = await Promise.all(Array.from({ length: 150 }, (_, i) => limiter.admit(slash64(a, i), [], 1)));
  let passed = decisions.filter((d) => d.decision.allowed).length;
  for (let i = 150; i < 300; i++) if ((await limiter.check(slash64(a, i))).allowed) passed++;
  assert.equal(passed, 40, 'the /48 passes 4 × the burst of 10 in all, not 10 per /64');
  let other = 0;
  for (let i = 0; i < 20; i++) if ((await limiter.admit(slash64(b, 1), [], 1)).decision.allowed) other++;
  assert.equal(other, 10, 'another /48: its /64 has its own full burst');
  // A batch charge of one /64 is refused by the aggregate it cannot fit in.
  const refused = await limiter.admit(slash64(a, 999), [], 5, 1);
  assert.equal(refused.decision.allowed, false);
});

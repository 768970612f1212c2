// Issue 16 follow-up, IPv6 rotation beyond one /64: whoever holds a /48 has 65,536 /64
// buckets. Every IPv6 bucket also pays into its /48's aggregate bucket (ADCLICK_IPV6_
// AGGREGATE_PREFIX, at ADCLICK_IPV6_AGGREGATE_FACTOR times the per-client limit), so
// rotation inside one /48 is bounded while two /48s stay independent. Before, each /64 of
// the rotation got its own full burst. (The same scripts on real Redis:
// test/integration/gateway-rate-limit.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRateLimiter } from '../../../src/gateway/rate-limiter.ts';
import { bucketOf, canonicalIp, createAggregateOf } from '../../../src/shared/client-ip.ts';

const slash64 = (site: string, i: number) => bucketOf(canonicalIp(`${site}:${i.toString(16)}::1`)!, 64);

test('aggregate of a bucket: its /48 for IPv6, none for IPv4, when off, or for a bucket as coarse already', () => {
  const of = createAggregateOf(48);
  assert.equal(of('2001:db8:1:2::/64'), '2001:db8:1::/48');
  assert.equal(of('2001:db8:1:ffff::/64'), '2001:db8:1::/48');
  assert.equal(of('2001:db8:1:2::7'), '2001:db8:1::/48', 'a per-address bucket (prefix 128)');
  assert.equal(of('192.0.2.7'), null);
  assert.equal(of('2001:db8::/48'), null);
  assert.equal(of('2001:db8::/32'), null);
  assert.equal(createAggregateOf(0)('2001:db8:1:2::/64'), null);
});

{
  // A rate this slow earns no token back during the loops, however loaded the machine.
  test('rotating over 1,000 /64s of one /48 passes at most the aggregate burst; another /48 is independent (in-process)', async () => {
    const limiter = createRateLimiter(null, { perSecond: 0.01, burst: 10, aggregateOf: createAggregateOf(48), aggregateFactor: 4 });
    let passed = 0;
    for (let i = 0; i < 1000; i++) if ((await limiter.check(slash64('2001:db8:aaaa', i))).allowed) passed++;
    assert.equal(passed, 40, 'the /48 gets 4 × the burst of 10, not 10 per /64');
    // Another /48: its own aggregate; its first /64 has its full burst.
    let other = 0;
    for (let i = 0; i < 20; i++) if ((await limiter.check(slash64('2001:db8:bbbb', 0))).allowed) other++;
    assert.equal(other, 10);
    // A refusal by the aggregate does not spend the client's own bucket.
    const fresh = slash64('2001:db8:aaaa', 5000);
    assert.equal((await limiter.check(fresh)).allowed, false);
    assert.ok((await limiter.check(fresh)).retryAfterMs > 0);
    // IPv4 is untouched by aggregates.
    let v4 = 0;
    for (let i = 0; i < 20; i++) if ((await limiter.check('198.51.100.9')).allowed) v4++;
    assert.equal(v4, 10);
  });
}

test('without an aggregate each /64 has its own burst (the gap this closes)', async () => {
  const limiter = createRateLimiter(null, { perSecond: 1, burst: 10 });
  let passed = 0;
  for (let i = 0; i < 100; i++) if ((await limiter.check(slash64('2001:db8:cccc', i))).allowed) passed++;
  assert.equal(passed, 100);
});

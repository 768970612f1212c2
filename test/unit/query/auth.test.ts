import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ApiKeyAuthenticator, hashApiKey, parseBearer } from '../../../src/query/auth.ts';
import { TokenBucketLimiter } from '../../../src/query/rate-limit.ts';

test('parseBearer', () => {
  assert.equal(parseBearer('Bearer abc.DEF-123_~+/='), 'abc.DEF-123_~+/=');
  assert.equal(parseBearer('bearer key'), 'key', 'scheme is case-insensitive');
  for (const bad of [undefined, '', 'Bearer', 'Bearer ', 'Basic a2V5', 'key', 'Bearer a b', 'Bearer ké', ['Bearer a']]) {
    assert.equal(parseBearer(bad), null, String(bad));
  }
});

test('hashApiKey is sha256 hex of the key', () => {
  assert.equal(hashApiKey('secret'), createHash('sha256').update('secret').digest('hex'));
  assert.match(hashApiKey('x'), /^[0-9a-f]{64}$/);
});

test('concurrent lookups of one key share a storage call', async () => {
  let calls = 0;
  const auth = new ApiKeyAuthenticator(
    async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 5));
      return { advertiserId: 7, revoked: false };
    },
    () => 0,
    { cacheTtlMs: 2000, maxCachedKeys: 10 },
  );
  const got = await Promise.all([1, 2, 3].map(() => auth.authenticate('Bearer k')));
  assert.deepEqual(got.map((p) => p.advertiserId), [7, 7, 7]);
  assert.equal(calls, 1);
});

test('token bucket: burst, then rate, with Retry-After', () => {
  let now = 0;
  const limiter = new TokenBucketLimiter(() => now, { perSec: 2, burst: 3, maxKeys: 10 });
  for (let i = 0; i < 3; i++) assert.deepEqual(limiter.take('a'), { allowed: true });
  assert.deepEqual(limiter.take('a'), { allowed: false, retryAfterSec: 1 });
  assert.deepEqual(limiter.take('b'), { allowed: true }, 'keys are independent');
  now += 500; // one token back
  assert.deepEqual(limiter.take('a'), { allowed: true });
  assert.equal(limiter.take('a').allowed, false);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { ApiKeyAuthenticator, hashApiKey, parseBearer } from '../../../src/query/auth.ts';
import { AuthFailureLimiter } from '../../../src/query/auth-failure-limiter.ts';
import { TokenBucketLimiter } from '../../../src/query/rate-limit.ts';
import { looksLikeApiKey } from '../../../src/store/api-keys.ts';
import { currentStorageScope, runInStorageScope } from '../../../src/store/storage-scope.ts';
import { testApiKey } from './fake-repository.ts';

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
  const got = await Promise.all([1, 2, 3].map(() => auth.authenticate(`Bearer ${testApiKey('k')}`)));
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

test('every key createApiKey can mint has the format; near misses do not', () => {
  for (let i = 0; i < 2000; i++) {
    const key = 'ak_' + randomBytes(32).toString('base64url');
    assert.ok(looksLikeApiKey(key), key);
  }
  const key = testApiKey('x');
  for (const bad of [key.slice(0, -1), key + 'A', 'AK_' + key.slice(3), key.slice(0, -1) + '=', key.slice(0, -1) + 'B', key.slice(0, 10) + '+' + key.slice(11), ` ${key}`]) {
    assert.equal(looksLikeApiKey(bad), false, bad);
  }
});

test('a key lookup runs in the lookup lane and is abandoned only when every waiting request has gone', async () => {
  let release!: (v: { advertiserId: number; revoked: boolean } | null) => void;
  let seen: AbortSignal | undefined;
  const auth = new ApiKeyAuthenticator(
    () => {
      const scope = currentStorageScope();
      assert.equal(scope?.lane, 'lookup');
      seen = scope?.signal;
      return new Promise((r) => { release = r; });
    },
    () => 0,
    { cacheTtlMs: 2000, maxCachedKeys: 10 },
  );
  const a = new AbortController();
  const b = new AbortController();
  const header = `Bearer ${testApiKey('shared')}`;
  const pa = runInStorageScope({ lane: 'interactive', signal: a.signal }, () => auth.authenticate(header, 'c1'));
  const pb = runInStorageScope({ lane: 'interactive', signal: b.signal }, () => auth.authenticate(header, 'c2'));
  a.abort();
  assert.equal(seen?.aborted, false, 'one request still waits');
  b.abort();
  assert.equal(seen?.aborted, true, 'nobody waits any more');
  release({ advertiserId: 7, revoked: false });
  assert.deepEqual((await pa).advertiserId, 7);
  await pb;
});

test('failure budget: reserve up front, refund on success, refill at the rate, bounded clients', () => {
  let now = 0;
  const l = new AuthFailureLimiter(() => now, { burst: 2, perMin: 60, maxClients: 2 });
  assert.deepEqual(l.reserve('a'), { allowed: true });
  assert.deepEqual(l.reserve('a'), { allowed: true });
  assert.deepEqual(l.reserve('a'), { allowed: false, retryAfterSec: 1 });
  l.refund('a');
  assert.deepEqual(l.reserve('a'), { allowed: true });
  now += 500;
  assert.equal(l.reserve('a').allowed, false);
  now += 500;
  assert.equal(l.reserve('a').allowed, true);
  l.reserve('b');
  l.reserve('c'); // evicts a, the least recently seen
  assert.deepEqual(l.reserve('a'), { allowed: true });
});

test('a key in use is re-checked after the answer (refreshDue), not on the request path; revocation still bounded by the TTL', async () => {
  let now = 0;
  let calls = 0;
  let revoked = false;
  let failing = false;
  const auth = new ApiKeyAuthenticator(
    async () => {
      calls++;
      if (failing) throw new Error('storage down');
      return { advertiserId: 7, revoked };
    },
    () => now,
    { cacheTtlMs: 2000, maxCachedKeys: 10 },
  );
  const key = `Bearer ${testApiKey('r')}`;
  await auth.authenticate(key);
  assert.equal(calls, 1);
  now = 900; // young entry: nothing due
  await auth.authenticate(key);
  await auth.refreshDue();
  assert.equal(calls, 1);
  now = 1500; // past half its TTL: answered from the cache, re-checked afterwards
  assert.equal((await auth.authenticate(key)).advertiserId, 7);
  assert.equal(calls, 1, 'no storage call on the request path');
  await auth.refreshDue();
  assert.equal(calls, 2);
  await auth.refreshDue();
  assert.equal(calls, 2, 'one re-check per due entry');
  now = 3400; // beyond the first lookup's TTL, within the re-check's
  await auth.authenticate(key);
  assert.equal(calls, 2);
  // A failed re-check changes nothing; once the last good answer is TTL old, the request waits for storage.
  failing = true;
  await auth.refreshDue();
  assert.equal(calls, 3);
  now = 3501;
  await assert.rejects(auth.authenticate(key), (e: { code?: string }) => e.code === 'UNAVAILABLE');
  assert.equal(calls, 4);
  failing = false;
  await auth.authenticate(key);
  // Revoked between two re-checks: refused from the first request after the re-check saw it.
  revoked = true;
  now += 1500;
  await auth.authenticate(key);
  await auth.refreshDue();
  await assert.rejects(auth.authenticate(key), (e: { code?: string }) => e.code === 'UNAUTHORIZED');
});

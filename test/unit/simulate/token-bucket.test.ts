import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TokenBucket } from '../../../src/simulate/token-bucket.ts';

describe('token bucket', () => {
  it('paces to the rate over time, never more than rate·t + burst', () => {
    const b = new TokenBucket(100, 5, 0);
    let taken = 0;
    for (let t = 0; t <= 10_000; t += 7) {
      taken += b.take(t);
      assert.ok(taken <= (100 * t) / 1000 + 5, `at ${t} ms took ${taken}`);
    }
    assert.ok(taken >= 995 && taken <= 1006, `took ${taken} in 10 s at 100/s`);
  });

  it('caps saved-up tokens at the burst after a stall', () => {
    const b = new TokenBucket(1000, 50, 0, 0);
    assert.equal(b.take(10_000), 50);
    assert.equal(b.take(10_000), 0);
    assert.equal(b.msUntilNext(10_000), 1);
  });

  it('takes at most max', () => {
    const b = new TokenBucket(1000, 100, 0, 0);
    assert.equal(b.take(100, 30), 30);
    assert.equal(b.take(100), 70);
  });
});

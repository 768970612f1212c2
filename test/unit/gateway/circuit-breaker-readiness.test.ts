// An open breaker must be seen half-open once its open time passed even when no call asks
// (allow()): readiness reads `state`, and a gateway a balancer took out of rotation for an
// open breaker gets no click that would call allow(). Found by test/cluster/balancer.test.ts:
// a gateway cut off from Kafka for a while never became ready again after the heal.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CircuitBreaker, type BreakerState } from '../../../src/gateway/circuit-breaker.ts';

test('circuit breaker: open turns half-open after openMs when only its state is read', () => {
  let t = 1000;
  const seen: BreakerState[] = [];
  const b = new CircuitBreaker(2, 5000, () => t, (s) => seen.push(s));
  b.failure();
  b.failure();
  assert.equal(b.state, 'open');
  t += 4999;
  assert.equal(b.state, 'open', 'still within openMs');
  t += 1;
  assert.equal(b.state, 'half-open', 'openMs passed: a readiness check sees half-open, no allow() needed');
  assert.deepEqual(seen, ['open', 'half-open']);
  assert.equal(b.allow(), true, 'the first call is the trial');
  assert.equal(b.allow(), false, 'one trial at a time');
  b.failure();
  assert.equal(b.state, 'open', 'a failed trial re-opens it');
  b.success();
  assert.equal(b.state, 'closed');
});

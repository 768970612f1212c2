import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBreaker } from '../../../src/gateway/circuit-breaker.ts';
import { LocalGcra, gcraParams } from '../../../src/gateway/rate-limiter.ts';
import { createClientAddress } from '../../../src/shared/client-ip.ts';

test('circuit breaker opens after N failures, half-opens after the pause, closes on success', () => {
  let t = 0;
  const b = new CircuitBreaker(3, 1000, () => t);
  b.failure();
  b.failure();
  assert.equal(b.allow(), true);
  b.failure();
  assert.equal(b.state, 'open');
  assert.equal(b.allow(), false);
  t = 999;
  assert.equal(b.allow(), false);
  t = 1000;
  assert.equal(b.allow(), true, 'one trial');
  assert.equal(b.state, 'half-open');
  assert.equal(b.allow(), false, 'only one trial at a time');
  b.failure();
  assert.equal(b.state, 'open', 'failed trial re-opens');
  t = 2000;
  assert.equal(b.allow(), true);
  b.success();
  assert.equal(b.state, 'closed');
  assert.equal(b.allow(), true);
});

test('GCRA allows the burst, then the steady rate, and tells how long to wait', () => {
  let nowUs = 0;
  const { intervalUs, toleranceUs } = gcraParams({ perSecond: 100, burst: 5 });
  const g = new LocalGcra(intervalUs, toleranceUs, () => nowUs);
  for (let i = 0; i < 5; i++) assert.equal(g.check('ip').allowed, true, `burst ${i}`);
  const d = g.check('ip');
  assert.equal(d.allowed, false);
  assert.equal(d.retryAfterMs, 10);
  assert.equal(g.check('other-ip').allowed, true, 'limits are per key');
  nowUs += 10_000;
  assert.equal(g.check('ip').allowed, true);
  assert.equal(g.check('ip').allowed, false);
  // Over one simulated second at 1000 attempts/s only ~100 (+ burst) pass.
  let allowed = 0;
  for (let i = 0; i < 1000; i++) {
    nowUs += 1000;
    if (g.check('steady').allowed) allowed++;
  }
  assert.ok(allowed >= 100 && allowed <= 106, `allowed ${allowed}`);
});

test('client IP: socket unless the peer is a trusted proxy; spoofed X-Forwarded-For ignored', () => {
  const of = createClientAddress({ trustedProxies: ['10.0.0.1', '10.0.0.2'], ipv6Prefix: 64 });
  const clientIp = (peer: string | undefined, xff: string | undefined) => of({ socket: { remoteAddress: peer }, headers: { 'x-forwarded-for': xff } }).ip;
  assert.equal(clientIp('::ffff:203.0.113.9', '1.1.1.1'), '203.0.113.9');
  assert.equal(clientIp('10.0.0.1', '198.51.100.7'), '198.51.100.7');
  // Client prepends a fake hop; the proxy appends the real one: the rightmost untrusted wins.
  assert.equal(clientIp('10.0.0.1', '6.6.6.6, 198.51.100.7'), '198.51.100.7');
  assert.equal(clientIp('10.0.0.2', '198.51.100.7, 10.0.0.1'), '198.51.100.7');
  assert.equal(clientIp('10.0.0.1', undefined), '10.0.0.1');
  assert.equal(clientIp(undefined, undefined), 'unknown');
});

// The click publisher's own logic against a fake librdkafka producer: each click resolves
// on its own delivery report, and a wedged producer (connected, every delivery failing,
// none succeeding for stuckAfterMs) is replaced by a fresh instance.
// The real producer is exercised in test/integration/gateway-kafka.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClickPublisher, type ProducerLike } from '../../../src/gateway/click-publisher.ts';
import { createLogger } from '../../../src/shared/logger.ts';

type Report = (err: { code: number; message: string } | null, report: { opaque?: unknown }) => void;

class FakeProducer implements ProducerLike {
  readonly queued: { key: string; opaque: unknown }[] = [];
  private report: Report = () => {};
  connects = 0;
  disconnected = false;
  flushed = false;
  constructor(readonly conf: Record<string, unknown>) {}
  on(event: string, fn: (...a: never[]) => void) {
    if (event === 'delivery-report') this.report = fn as unknown as Report;
    return this;
  }
  connect(_o: { timeout: number }, cb: (err: unknown) => void) {
    this.connects++;
    setImmediate(() => cb(null));
    return this;
  }
  setPollInBackground() {
    return this;
  }
  produce(_t: string, _p: null, _v: Buffer, key: string, _ts: null, opaque: unknown) {
    this.queued.push({ key, opaque });
    return true;
  }
  flush(_ms: number, cb: () => void) {
    this.flushed = true;
    setImmediate(cb);
    return this;
  }
  disconnect(cb: () => void) {
    this.disconnected = true;
    setImmediate(cb);
    return this;
  }
  /** Delivers the oldest queued message: acknowledged, or failed as librdkafka's message timeout. */
  deliver(ok: boolean) {
    const m = this.queued.shift();
    assert.ok(m, 'a message to deliver');
    this.report(ok ? null : { code: -192, message: 'Local: Message timed out' }, { opaque: m.opaque });
  }
}

const tick = () => new Promise((r) => setImmediate(r));

async function setup(stuckAfterMs = 10_000, breakerFailures = 1_000_000) {
  let t = 1_000_000;
  const producers: FakeProducer[] = [];
  let replaced = 0;
  const publisher = await createClickPublisher({
    brokers: '127.0.0.1:1', topic: 'clicks', lingerMs: 1, compression: 'lz4', produceTimeoutMs: 5000, maxInflight: 1000,
    breakerFailures, breakerOpenMs: 1000, clientId: 'gw', logger: createLogger('test', 'silent'),
    stuckAfterMs, onReplace: () => replaced++, now: () => t,
    createProducer: (conf) => {
      const p = new FakeProducer(conf);
      producers.push(p);
      return p;
    },
  });
  await tick();
  return {
    publisher, producers,
    advance: (ms: number) => { t += ms; },
    replaced: () => replaced,
    one: (key: string) => publisher.publish([{ key, value: Buffer.from(key) }]),
  };
}

test('each click resolves on its own delivery report: acknowledged true, failed false', async () => {
  const s = await setup();
  assert.equal(s.publisher.ready(), true);
  const p = s.publisher.publish([{ key: 'a', value: Buffer.from('a') }, { key: 'b', value: Buffer.from('b') }]);
  assert.equal(s.publisher.inflight(), 2);
  s.producers[0]!.deliver(true);
  s.producers[0]!.deliver(false);
  assert.deepEqual(await p, [true, false]);
  assert.equal(s.publisher.inflight(), 0);
  await s.publisher.close();
});

test('a producer that delivers nothing for stuckAfterMs while deliveries fail is replaced; old clicks still settle from the old instance', async () => {
  const s = await setup(10_000);
  const [old] = s.producers;
  const first = s.one('k1');
  old!.deliver(false);
  assert.deepEqual(await first, [false]);
  s.advance(9_000);
  const second = s.one('k2');
  old!.deliver(false); // failures, but not yet stuckAfterMs without success
  assert.deepEqual(await second, [false]);
  assert.equal(s.producers.length, 1, 'not replaced before stuckAfterMs');

  const inflightOnOld = s.one('k3'); // still in flight on the old instance at replacement time
  s.advance(2_000);
  const trigger = s.one('k4');
  // k3 is first in the old queue: fail it → 11 s without a success → replacement.
  old!.deliver(false);
  assert.deepEqual(await inflightOnOld, [false]);
  assert.equal(s.replaced(), 1);
  assert.equal(s.producers.length, 2, 'a fresh producer');
  assert.equal(s.producers[1]!.conf['client.id'], 'gw-r1');
  assert.equal(old!.disconnected, false, 'the old instance waits for its last delivery report');
  old!.deliver(true); // k4, produced before the replacement, is acknowledged by the old instance
  assert.deepEqual(await trigger, [true]);
  await tick();
  await tick();
  assert.equal(old!.flushed && old!.disconnected, true, 'the old instance is closed once drained');

  await tick();
  assert.equal(s.publisher.ready(), true, 'the new instance connected');
  const fresh = s.one('k5');
  assert.equal(s.producers[1]!.queued.length, 1, 'new clicks go to the new instance');
  assert.equal(old!.queued.length, 0);
  s.producers[1]!.deliver(true);
  assert.deepEqual(await fresh, [true]);
  await s.publisher.close();
  assert.equal(s.producers[1]!.disconnected, true);
});

test('no replacement while deliveries succeed, however long it runs, nor more often than every stuckAfterMs', async () => {
  const s = await setup(10_000);
  for (let i = 0; i < 5; i++) {
    s.advance(20_000);
    const p = s.one(`ok${i}`);
    s.producers[0]!.deliver(true);
    assert.deepEqual(await p, [true]);
  }
  assert.equal(s.producers.length, 1, 'a healthy producer is kept');

  // Kafka really down: every delivery fails. One replacement per stuckAfterMs, no storm.
  for (let i = 0; i < 10; i++) {
    s.advance(2_500);
    await tick();
    const p = s.one(`down${i}`);
    s.producers.at(-1)!.deliver(false);
    assert.deepEqual(await p, [false]);
  }
  // 25 s of failures after the last success: replaced at 10 s and again at 20 s.
  assert.equal(s.replaced(), 2);
  assert.equal(s.producers.length, 3);
  await s.publisher.close();
});

test('the breaker: opens on consecutive failures; clicks produced before it opened cannot re-open it during the half-open trial', async () => {
  const s = await setup(60_000, 2);
  const p = s.producers[0]!;
  const old = [s.one('a'), s.one('b'), s.one('c')]; // produced while closed
  p.deliver(false);
  p.deliver(false);
  assert.equal(s.publisher.breakerState(), 'open');
  assert.equal(s.publisher.ready(), false);
  assert.throws(() => s.one('refused'), /breaker is open/);
  s.advance(1000);
  const trial = s.one('trial'); // half-open: one trial call
  assert.equal(s.publisher.breakerState(), 'half-open');
  assert.throws(() => s.one('second'), /breaker is open/, 'one trial at a time');
  p.deliver(false); // 'c', produced before the breaker opened, times out now
  assert.equal(s.publisher.breakerState(), 'half-open', 'a stale failure does not re-open the breaker');
  p.deliver(true); // the trial is acknowledged: Kafka is back
  assert.equal(s.publisher.breakerState(), 'closed');
  assert.deepEqual(await Promise.all(old), [[false], [false], [false]]);
  assert.deepEqual(await trial, [true]);

  // A failed trial re-opens it.
  const more = [s.one('d'), s.one('e')];
  p.deliver(false);
  p.deliver(false);
  assert.equal(s.publisher.breakerState(), 'open');
  s.advance(1000);
  const trial2 = s.one('trial2');
  p.deliver(false);
  assert.equal(s.publisher.breakerState(), 'open');
  assert.deepEqual(await trial2, [false]);
  await Promise.all(more);
  await s.publisher.close();
});

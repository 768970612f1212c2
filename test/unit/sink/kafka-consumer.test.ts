// The sink consumer's membership watchdog, with fake group consumers (the real one is
// exercised by the integration, e2e and chaos suites).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createKafkaSinkConsumer, type GroupConsumer } from '../../../src/sink/kafka-consumer.ts';
import type { SinkMessage } from '../../../src/sink/batch.ts';

const logger = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class FakeConsumer {
  calls: string[] = [];
  held: { topic: string; partition: number }[] = [];
  eachBatch?: (arg: { batch: unknown; resolveOffset?: (o: string) => void; isStale?: () => boolean }) => Promise<void>;
  resolved: string[] = [];
  stale = false;
  async connect() { this.calls.push('connect'); }
  async subscribe() { this.calls.push('subscribe'); }
  async run(o: { eachBatch: NonNullable<FakeConsumer['eachBatch']> }) { this.calls.push('run'); this.eachBatch = o.eachBatch; }
  async commitOffsets() { this.calls.push('commit'); }
  async disconnect() { this.calls.push('disconnect'); }
  assignment() { return this.held; }
  feed(offset: string) {
    return this.eachBatch!({ batch: { topic: 'click-aggregates', partition: 0, highWatermark: '10', messages: [{ offset, key: null, value: Buffer.from('x'), headers: {} }] }, resolveOffset: (o) => void this.resolved.push(o), isStale: () => this.stale });
  }
}

async function metric(registry: Registry, name: string): Promise<number | undefined> {
  return (await registry.getSingleMetric(name)?.get())?.values[0]?.value;
}

function setup(firstHolds: boolean, maxWaitForRoomMs?: number) {
  const made: FakeConsumer[] = [];
  const registry = new Registry();
  const c = createKafkaSinkConsumer({
    brokers: 'unused:9092', topics: ['click-aggregates'], logger, rejoinAfterMs: 60, checkEveryMs: 10, registry, maxWaitForRoomMs,
    makeConsumer: () => {
      const f = new FakeConsumer();
      if (made.length === 0 && firstHolds) f.held = [{ topic: 'click-aggregates', partition: 0 }];
      if (made.length > 0) f.held = [{ topic: 'click-aggregates', partition: 0 }]; // a replacement joins fine
      made.push(f);
      return f as unknown as GroupConsumer;
    },
  });
  const got: SinkMessage[] = [];
  return { c, made, got, registry, deliver: (msgs: SinkMessage[]) => void got.push(...msgs) };
}

test('a consumer that holds no partition for too long is replaced; the sink keeps receiving and committing through the new one', async () => {
  const { c, made, got, registry, deliver } = setup(false);
  await c.start(deliver);
  c.pause(); // the sink was applying backpressure: the replacement must start paused too
  await sleep(400);
  assert.equal(made.length, 2, 'exactly one replacement (the new consumer holds its partitions)');
  assert.equal(await metric(registry, 'adclick_sink_consumer_replacements_total'), 1, 'the replacement is counted');
  assert.equal(await metric(registry, 'adclick_sink_assigned_partitions'), 1, 'the gauge shows what the current consumer holds');
  const [old, fresh] = made as [FakeConsumer, FakeConsumer];
  assert.ok(old.calls.includes('disconnect'), 'the old consumer was let go');
  assert.deepEqual(fresh.calls.slice(0, 3), ['connect', 'subscribe', 'run']);
  // Still paused: the new consumer's delivery waits (and so does its fetching) until resume.
  let done = false;
  const fed = fresh.feed('7').then(() => (done = true));
  await sleep(50);
  assert.equal(done, false, 'a delivery while paused waits');
  assert.equal(got.length, 0);
  c.resume();
  await fed;
  assert.deepEqual(got.map((m) => m.offset), ['7']);
  assert.deepEqual(fresh.resolved, ['7'], 'a delivered batch is resolved (the client must not seek back over it)');
  await c.commit([{ topic: 'click-aggregates', partition: 0, offset: '8' }]);
  assert.ok(fresh.calls.includes('commit') && !old.calls.includes('commit'), 'commits go to the current consumer');
  await c.stop();
  assert.equal(fresh.calls.at(-1), 'disconnect');
});

test('a consumer that holds its partitions is left alone', async () => {
  const { c, made, registry, deliver } = setup(true);
  await c.start(deliver);
  await sleep(300);
  assert.equal(made.length, 1);
  assert.equal(await metric(registry, 'adclick_sink_consumer_replacements_total'), 0);
  assert.equal(await metric(registry, 'adclick_sink_assigned_partitions'), 1);
  await c.stop();
  await sleep(100);
  assert.equal(made.length, 1, 'no watchdog after stop');
});

test('delivered records carry their trace id, read from the traceparent header only when asked (issue 17: not parsed per record)', async () => {
  const { c, made, got, deliver } = setup(true);
  await c.start(deliver);
  const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
  let reads = 0;
  const headers = new Proxy({ traceparent: Buffer.from(`00-${trace}-00f067aa0ba902b7-01`) }, {
    get(t, k) {
      if (k === 'traceparent') reads++;
      return Reflect.get(t, k);
    },
  });
  await made[0]!.eachBatch!({ batch: { topic: 'click-aggregates', partition: 2, highWatermark: '10', messages: [
    { offset: '5', key: Buffer.from('k'), value: Buffer.from('v'), headers },
    { offset: '6', key: null, value: null, headers: {} },
  ] } });
  assert.equal(got.length, 2);
  assert.equal(reads, 0, 'no header read while delivering');
  const [a, b] = got as [SinkMessage, SinkMessage];
  assert.deepEqual([a.topic, a.partition, a.offset, a.key?.toString(), a.value?.toString()], ['click-aggregates', 2, '5', 'k', 'v']);
  assert.equal(a.traceId, trace);
  assert.equal(a.traceId, trace);
  assert.equal(reads, 1, 'parsed once, then remembered');
  assert.equal(b.traceId, undefined);
  assert.equal(b.key, null);
  await c.stop();
});

test('a delivery that waited for room is dropped unresolved when its batch went stale or the consumer stopped (the client re-reads it)', async () => {
  const { c, made, got, deliver } = setup(true);
  await c.start(deliver);
  const f = made[0]!;
  c.pause();
  const staleOne = f.feed('3');
  f.stale = true; // revoked or sought while it waited
  c.resume();
  await staleOne;
  assert.equal(got.length, 0, 'a stale batch is not delivered');
  assert.deepEqual(f.resolved, [], 'nor resolved');
  f.stale = false;
  c.pause();
  const waiting = f.feed('4');
  await c.stop(); // stop must not hang on the waiting delivery
  await waiting;
  assert.equal(got.length, 0, 'nothing is delivered after stop');
  assert.deepEqual(f.resolved, []);
});

test('a delivery waits for room at most maxWaitForRoomMs; then the consumer is replaced (a fresh one starts at the committed offsets) and the batch is not delivered', async () => {
  const { c, made, got, deliver, registry } = setup(true, 80);
  await c.start(deliver);
  const f = made[0]!;
  c.pause();
  const t0 = Date.now();
  await f.feed('9');
  const waited = Date.now() - t0;
  assert.ok(waited >= 70 && waited < 1_000, `waited ${waited} ms`);
  assert.equal(got.length, 0, 'not delivered');
  assert.deepEqual(f.resolved, [], 'not resolved');
  await sleep(50);
  assert.equal(made.length, 2, 'replaced once');
  assert.ok(f.calls.includes('disconnect'), 'the old consumer was let go');
  assert.equal(await metric(registry, 'adclick_sink_consumer_replacements_total'), 1);
  const fresh = made[1]!;
  c.resume();
  await fresh.feed('9'); // read again by the new consumer
  assert.deepEqual(got.map((m) => m.offset), ['9']);
  assert.deepEqual(fresh.resolved, ['9']);
  await c.stop();
});

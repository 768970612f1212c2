import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isAppError } from '../../../src/shared/errors.ts';
import { pingAnsweredByActivity } from '../../../src/store/embedded-store.ts';
import { StorageQueue } from '../../../src/store/storage-queue.ts';
import { runInStorageScope, type StorageScope } from '../../../src/store/storage-scope.ts';

/** Work that runs only when released, recording that it started. */
function gate(log: string[], name: string) {
  let open!: () => void;
  const released = new Promise<void>((r) => { open = r; });
  return { work: async () => { log.push(name); await released; return name; }, open };
}

const tick = () => new Promise((r) => setImmediate(r));

function assertUnavailable(err: unknown, retryAfterSec: number): true {
  assert.ok(isAppError(err) && err.code === 'UNAVAILABLE', String(err));
  assert.equal(err.retryAfterSec, retryAfterSec);
  return true;
}

test('one call at a time; waiting calls go interactive, then background, then lookups', async () => {
  const q = new StorageQueue();
  const log: string[] = [];
  const first = gate(log, 'first');
  const running = q.run(first.work);
  const done = Promise.all([
    q.run(async () => log.push('lookup'), { lane: 'lookup' }),
    q.run(async () => log.push('background')),
    q.run(async () => log.push('interactive'), { lane: 'interactive' }),
  ]);
  await tick();
  assert.deepEqual(log, ['first']);
  first.open();
  await running;
  await done;
  assert.deepEqual(log, ['first', 'interactive', 'background', 'lookup']);
  assert.equal(q.stats().ran, 4);
});

test('a waiting call whose caller went away never runs', async () => {
  const q = new StorageQueue({ retryAfterSec: 3 });
  const log: string[] = [];
  const busy = gate(log, 'busy');
  const running = q.run(busy.work);
  const abort = new AbortController();
  const scope: StorageScope = { lane: 'interactive', signal: abort.signal };
  const waiting = q.run(async () => log.push('shed'), scope);
  abort.abort();
  await assert.rejects(waiting, (e) => assertUnavailable(e, 3));
  await assert.rejects(q.run(async () => log.push('late'), scope), (e) => assertUnavailable(e, 3));
  busy.open();
  await running;
  await tick();
  assert.deepEqual(log, ['busy']);
  assert.equal(q.stats().shedGone, 2);
});

test('a call waiting past the deadline answers UNAVAILABLE at the deadline and never runs; background work waits', async () => {
  const q = new StorageQueue({ maxWaitMs: 30, retryAfterSec: 1 });
  const log: string[] = [];
  const busy = gate(log, 'busy');
  const running = q.run(busy.work);
  const t = Date.now();
  const late = q.run(async () => log.push('late'), { lane: 'lookup' });
  const background = q.run(async () => log.push('background'));
  await assert.rejects(late, (e) => assertUnavailable(e, 1));
  assert.ok(Date.now() - t < 1000);
  busy.open();
  await running;
  await background;
  assert.deepEqual(log, ['busy', 'background']);
  assert.equal(q.stats().shedLate, 1);
});

test('bounded lanes: a new request beyond the bound is refused at once; an admitted request is not', async () => {
  const q = new StorageQueue({ maxQueued: 2, maxLookupQueued: 1 });
  const log: string[] = [];
  const busy = gate(log, 'busy');
  const running = q.run(busy.work);
  const a: StorageScope = { lane: 'interactive' };
  const b: StorageScope = { lane: 'interactive' };
  const ok = [q.run(async () => 'a1', a), q.run(async () => 'b1', b)];
  await assert.rejects(q.run(async () => 'c1', { lane: 'interactive' }), (e) => assertUnavailable(e, 1));
  ok.push(q.run(async () => 'a2', a)); // a request already let in makes its next call
  ok.push(q.run(async () => 'x')); // background is never refused
  ok.push(q.run(async () => 'l1', { lane: 'lookup' }));
  await assert.rejects(q.run(async () => 'l2', { lane: 'lookup' }), (e) => assertUnavailable(e, 1));
  busy.open();
  await running;
  assert.deepEqual(await Promise.all(ok), ['a1', 'b1', 'a2', 'x', 'l1']);
  assert.equal(q.stats().refusedFull, 1 + 1);
});

test('the lane and signal come from the caller\'s storage scope', async () => {
  const q = new StorageQueue();
  const log: string[] = [];
  const busy = gate(log, 'busy');
  const running = q.run(busy.work);
  const abort = new AbortController();
  const waiting = runInStorageScope({ lane: 'interactive', signal: abort.signal }, () => q.run(async () => log.push('x')));
  assert.equal(q.stats().waiting.interactive, 1);
  abort.abort();
  await assert.rejects(waiting);
  busy.open();
  await running;
  assert.deepEqual(log, ['busy']);
});

test('lookups take at most their share of the engine time, however idle it is', async () => {
  let now = 0;
  const q = new StorageQueue({ lookupShare: 0.25 }, () => now);
  const log: string[] = [];
  const first = gate(log, 'lookup1');
  const p1 = q.run(first.work, { lane: 'lookup' });
  const p2 = q.run(async () => log.push('lookup2'), { lane: 'lookup' });
  await tick();
  now += 10; // the first lookup took 10 ms: the next waits 30 ms
  first.open();
  await p1;
  await tick();
  assert.deepEqual(log, ['lookup1'], 'paused');
  const read = q.run(async () => log.push('read'), { lane: 'interactive' });
  await read;
  assert.deepEqual(log, ['lookup1', 'read'], 'reads are not paused');
  now += 30;
  await p2; // the queue's timer fires after the pause
  assert.deepEqual(log, ['lookup1', 'read', 'lookup2']);
});

test('a stream of interactive reads cannot starve background work (the sink): one background call after every two reads', async () => {
  const q = new StorageQueue();
  const log: string[] = [];
  const first = gate(log, 'first');
  const running = q.run(first.work);
  const reads = Array.from({ length: 8 }, (_, i) => q.run(async () => log.push(`read${i}`), { lane: 'interactive' }));
  const sink = q.run(async () => log.push('sink'));
  await tick();
  first.open();
  await running;
  await Promise.all([...reads, sink]);
  assert.ok(log.indexOf('sink') <= 3, `the sink write ran within the first reads, not after all of them: ${log.join(' ')}`);
  assert.deepEqual(log.filter((l) => l.startsWith('read')), reads.map((_, i) => `read${i}`), 'reads keep their order');
});

// Issue 16 follow-up: the ClickHouse server store queues like the embedded one, with as many
// calls running as its HTTP pool has connections (beyond them Node's agent would queue
// without bound and shed nothing).
test('concurrency N: N calls run at once, the rest wait bounded and are refused past the bound; lookups run one at a time', async () => {
  const q = new StorageQueue({ concurrency: 3, maxQueued: 2, maxLookupQueued: 4, lookupShare: 1 });
  const log: string[] = [];
  const gates = ['a', 'b', 'c', 'd'].map((n) => gate(log, n));
  const scope = (): StorageScope => ({ lane: 'interactive' });
  const running = gates.map((g) => q.run(g.work, scope()));
  await tick();
  assert.deepEqual(log, ['a', 'b', 'c'], 'three run at once, the fourth waits');
  assert.equal(q.stats().waiting.interactive, 1);
  const e = gate(log, 'e');
  const waitingE = q.run(e.work, scope());
  await assert.rejects(q.run(async () => 'f', scope()), (err) => assertUnavailable(err, 1));
  assert.equal(q.stats().refusedFull, 1, 'a third waiting read is refused at once');
  gates[0]!.open();
  await tick();
  await tick();
  assert.deepEqual(log, ['a', 'b', 'c', 'd'], 'a free slot takes the next waiting call');
  for (const g of [...gates, e]) g.open();
  await Promise.all([...running, waitingE]);
  // Lookups: never two at once, whatever the free slots.
  const lookups = ['l1', 'l2'].map((n) => gate(log, n));
  const lr = lookups.map((g) => q.run(g.work, { lane: 'lookup' }));
  await tick();
  assert.equal(log.filter((n) => n.startsWith('l')).length, 1, 'one lookup runs, the other waits though slots are free');
  for (const g of lookups) g.open();
  await Promise.all(lr);
  assert.deepEqual(log.slice(-2), ['l1', 'l2']);
});

test('sinceAnswered: only a call that came back without an error counts; busyFor: how long the engine has been on its oldest running call', async () => {
  let now = 1000;
  const q = new StorageQueue({ concurrency: 2 }, () => now);
  assert.equal(q.sinceAnswered(), Infinity, 'nothing answered yet');
  await assert.rejects(q.run(async () => { throw new Error('engine down'); }));
  assert.equal(q.sinceAnswered(), Infinity, 'a failed call is no answer');
  await q.run(async () => 1);
  now += 999;
  assert.equal(q.sinceAnswered(), 999);
  assert.equal(q.busyFor(), undefined, 'idle');
  const log: string[] = [];
  const a = gate(log, 'a');
  const b = gate(log, 'b');
  const ra = q.run(a.work);
  now += 300;
  const rb = q.run(b.work);
  now += 200;
  assert.equal(q.busyFor(), 500, 'the oldest running call counts');
  a.open();
  await ra;
  assert.equal(q.busyFor(), 0, 'then the one still running');
  assert.equal(q.sinceAnswered(), 0);
  b.open();
  await rb;
  assert.equal(q.busyFor(), undefined);
});

test('pingAnsweredByActivity: a fresh answer, or a call started lately by an engine that answered lately; else ask the engine', () => {
  assert.equal(pingAnsweredByActivity(500, undefined), true, 'answered within a second');
  assert.equal(pingAnsweredByActivity(1500, 50), true, 'an insert started 50 ms ago after an answer 1.5 s ago: busy, not unready');
  assert.equal(pingAnsweredByActivity(9000, 8000), true);
  assert.equal(pingAnsweredByActivity(1500, undefined), false, 'idle and nothing lately: ask');
  assert.equal(pingAnsweredByActivity(12_000, 10_001), false, 'on one call past 10 s: maybe stuck, ask');
  assert.equal(pingAnsweredByActivity(Infinity, 50), false, 'an engine that only fails (no answer at all) is asked');
  assert.equal(pingAnsweredByActivity(20_001, 100), false, 'no answer for 20 s: ask');
});

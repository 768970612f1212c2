// Gateway back-pressure (backpressure.ts): the hysteresis, the fail-open on unreadable lag,
// the app refusing new clicks with 503 OVERLOADED + Retry-After (health still answers), and
// the cluster split (one reader in the primary, workers following it over a fake IPC bus).
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { buildGatewayApp } from '../../../src/gateway/app.ts';
import {
  backpressureFromConfig, createBackpressureHub, followBackpressure, nextState, startBackpressure,
  type BackpressureFollower, type LagReader, type PrimaryChannel, type WatchedLag, type WorkerPeer,
} from '../../../src/gateway/backpressure.ts';
import { createRegistry } from '../../../src/shared/metrics.ts';
import { loadConfig } from '../../../src/shared/config.ts';
import { FakeDedup, FakeLimiter, FakePublisher } from './fakes.ts';

const logger = pino({ level: 'silent' });

test('nextState: refuse above max, accept again only at or below resume', () => {
  assert.equal(nextState(false, 1000, 1000, 500), false, 'at max: still accepting');
  assert.equal(nextState(false, 1001, 1000, 500), true);
  assert.equal(nextState(true, 800, 1000, 500), true, 'between resume and max: keeps refusing (no flapping)');
  assert.equal(nextState(true, 500, 1000, 500), false);
  assert.equal(nextState(false, 800, 1000, 500), false, 'between resume and max: keeps accepting');
});

test('startBackpressure: follows the largest watched lag with hysteresis; unreadable lag falls back to accepting after 3 polls', async () => {
  let lags: WatchedLag[] | Error = [];
  const registry = createRegistry('gateway', false);
  const bp = startBackpressure({ maxLag: 100, pollMs: 60_000, logger, registry, retryAfterSec: 2,
    read: async () => { if (lags instanceof Error) throw lags; return lags; } });
  try {
    assert.equal(bp.retryAfterSec, 60, 'Retry-After is at least one poll interval');
    const at = async (l: WatchedLag[] | Error) => { lags = l; await bp.pollOnce(); return bp.refusing(); };
    assert.equal(await at([{ group: 'f', topic: 'clicks', lag: 10 }, { group: 's', topic: 'aggs', lag: 20 }]), false);
    assert.equal(await at([{ group: 'f', topic: 'clicks', lag: 10 }, { group: 's', topic: 'aggs', lag: 101 }]), true, 'any watched group above max');
    assert.equal(await at([{ group: 'f', topic: 'clicks', lag: 60 }]), true, 'above resume (default: half of max)');
    assert.equal(await at([{ group: 'f', topic: 'clicks', lag: 50 }]), false);
    assert.equal(await at([]), false, 'no group committed anything: nothing to watch');
    assert.equal(await at([{ group: 'f', topic: 'clicks', lag: 500 }]), true);
    assert.equal(await at(new Error('broker down')), true, 'one failed read keeps the state');
    assert.equal(await at(new Error('broker down')), true);
    assert.equal(await at(new Error('broker down')), false, 'three in a row: fail open');
    const text = await registry.metrics();
    assert.match(text, /adclick_gateway_backpressure_transitions_total\{to="refusing"[^}]*\} 2/);
    assert.match(text, /adclick_gateway_backpressure_transitions_total\{to="accepting"[^}]*\} 2/);
    assert.match(text, /adclick_gateway_backpressure_read_failures_total\{[^}]*\} 3/);
  } finally {
    await bp.stop();
  }
});

test('the app: while refusing, single and batch clicks answer 503 OVERLOADED + Retry-After before anything is produced; health, readiness and metrics answer', async () => {
  let refusing = true;
  const publisher = new FakePublisher();
  const app = buildGatewayApp({
    options: {
      signingKeys: new Map([['k1', 's'.repeat(32)]]), maxClickAgeMs: 86_400_000, maxClockSkewMs: 300_000, maxBodyBytes: 4096,
      maxBatchBodyBytes: 1 << 20, maxBatchClicks: 1000, trustedProxies: [], retryAfterSec: 2, ipHashKey: 'k', gatewayId: 'gw',
    },
    publisher, dedup: new FakeDedup(), rateLimiter: new FakeLimiter(), logger, registry: createRegistry('gateway', false),
    backpressure: { refusing: () => refusing, retryAfterSec: 7 },
  });
  const post = (url: string, body: unknown) => app.inject({ method: 'POST', url, payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  for (const [url, body] of [['/v1/clicks', { impression_id: 'imp_12345678' }], ['/v1/clicks/batch', { clicks: [{}] }]] as const) {
    const res = await post(url, body);
    assert.equal(res.statusCode, 503, url);
    assert.equal(res.json().error.code, 'OVERLOADED');
    assert.equal(res.headers['retry-after'], '7');
  }
  assert.equal(publisher.records.length, 0, 'nothing produced');
  for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.json']) assert.notEqual((await app.inject({ method: 'GET', url })).statusCode, 503, url);
  assert.equal((await post('/v1/nope', {})).statusCode, 404, 'unknown routes still answer 404');
  refusing = false;
  assert.equal((await post('/v1/clicks', { impression_id: 'imp_12345678' })).json().error.code, 'INVALID_FIELD', 'accepting again: the click is judged');
  await app.close();
});

test('config: ADCLICK_BACKPRESSURE_* parse, 0 or empty turn it off, bad watch entries are named', () => {
  assert.equal(loadConfig({}).backpressureMaxLag, 500_000);
  assert.equal(loadConfig({ ADCLICK_BACKPRESSURE_MAX_LAG: '' }).backpressureMaxLag, 0);
  assert.equal(loadConfig({ ADCLICK_BACKPRESSURE_MAX_LAG: '0' }).backpressureMaxLag, 0);
  assert.deepEqual(loadConfig({}).backpressureWatch, ['adclick-flink@clicks', 'adclick-sink@click-aggregates']);
  assert.deepEqual(loadConfig({ ADCLICK_BACKPRESSURE_WATCH: 'g1@t1, g2@t2' }).backpressureWatch, ['g1@t1', 'g2@t2']);
  assert.throws(() => loadConfig({ ADCLICK_BACKPRESSURE_WATCH: 'justagroup' }), /ADCLICK_BACKPRESSURE_WATCH: "justagroup" must be group@topic/);
});

// ---- The cluster split, without forking: a fake IPC bus between one primary and its workers. ----

const tick = () => new Promise((r) => setImmediate(r)); // IPC is asynchronous: deliver on the next turn

/** In-memory cluster IPC: the primary's peers and each worker's channel, delivering asynchronously like process.send. */
function fakeCluster() {
  const workers: { peer: WorkerPeer; listeners: Set<(m: unknown) => void>; connected: boolean; received: unknown[] }[] = [];
  let hub: ReturnType<typeof createBackpressureHub> | undefined;
  const toPrimary: unknown[] = [];
  return {
    toPrimary,
    workers,
    setHub(h: ReturnType<typeof createBackpressureHub>) { hub = h; },
    peers: () => workers.filter((w) => w.connected).map((w) => w.peer),
    /** A new worker process: its channel to the primary. */
    addWorker(): PrimaryChannel & { disconnect(): void; received: unknown[] } {
      const w = { listeners: new Set<(m: unknown) => void>(), connected: true, received: [] as unknown[], peer: undefined as unknown as WorkerPeer };
      w.peer = { send: (msg) => void setImmediate(() => { if (!w.connected) return; w.received.push(msg); for (const l of w.listeners) l(structuredClone(msg)); }) };
      workers.push(w);
      return {
        received: w.received,
        send: (msg) => void setImmediate(() => { toPrimary.push(msg); hub?.answer(w.peer, structuredClone(msg)); }),
        onMessage(l) { w.listeners.add(l); return () => void w.listeners.delete(l); },
        disconnect() { w.connected = false; },
      };
    },
  };
}

function countingReader(lags: () => WatchedLag[]) {
  const counts = { readers: 0, reads: 0 };
  const createReader = (): LagReader => {
    counts.readers++;
    return { read: async () => { counts.reads++; return lags(); }, close: async () => {} };
  };
  return { counts, createReader };
}

const bpConfig = {
  backpressureMaxLag: 100, backpressureResumeLag: 0, backpressureWatch: ['adclick-flink@clicks'], backpressurePollMs: 60_000,
  kafkaBrokers: '127.0.0.1:1', retryAfterSec: 2,
};

test('cluster: one lag reader per gateway — the primary reads once per poll and all its workers follow (a reader per worker read N times)', async () => {
  const N = 3;
  let lag = 10;
  const lags = () => [{ group: 'adclick-flink', topic: 'clicks', lag }];

  // The wiring before: every worker built its own back-pressure, so its own reader.
  const before = countingReader(lags);
  const perWorker = Array.from({ length: N }, () => backpressureFromConfig(bpConfig, logger, createRegistry('gateway', false), { createReader: before.createReader })!);
  await tick();
  assert.deepEqual(before.counts, { readers: N, reads: N }, 'a reader per worker: N admin clients, N reads per poll');
  await Promise.all(perWorker.map((b) => b.stop()));

  // Now: the primary reads, the workers follow over IPC.
  const bus = fakeCluster();
  const after = countingReader(lags);
  const hub = createBackpressureHub(bus.peers);
  bus.setHub(hub);
  const primary = backpressureFromConfig(bpConfig, logger, createRegistry('gateway', false), { createReader: after.createReader, onState: (r) => hub.publish(r) })!;
  const workers: BackpressureFollower[] = Array.from({ length: N }, () => followBackpressure({ pollMs: 60_000, retryAfterSec: 2, logger, channel: bus.addWorker() }));
  try {
    assert.deepEqual(await Promise.all(workers.map((w) => w.synced(1000))), workers.map(() => true), 'every worker got the state it asked for at start');
    assert.equal(bus.toPrimary.length, N, 'one state request per worker');
    assert.deepEqual(after.counts, { readers: 1, reads: 1 }, 'one reader, one read for the whole gateway');
    assert.ok(workers.every((w) => !w.refusing()));
    assert.equal(workers[0]!.retryAfterSec, 60, 'Retry-After as in one process: at least one poll interval');

    lag = 500;
    await primary.pollOnce();
    assert.equal(primary.refusing(), true);
    await tick();
    assert.deepEqual(workers.map((w) => w.refusing()), workers.map(() => true), 'every worker refuses after the one read');
    assert.deepEqual(after.counts, { readers: 1, reads: 2 });

    // A worker started (or restarted) while refusing asks and refuses before it listens.
    const late = followBackpressure({ pollMs: 60_000, retryAfterSec: 2, logger, channel: bus.addWorker() });
    workers.push(late);
    assert.equal(late.refusing(), false, 'nothing heard yet');
    assert.equal(await late.synced(1000), true);
    assert.equal(late.refusing(), true, 'the late worker has the current state');

    lag = 40;
    await primary.pollOnce();
    await tick();
    assert.deepEqual(workers.map((w) => w.refusing()), workers.map(() => false), 'back at or below resume: every worker accepts');
    assert.deepEqual(after.counts, { readers: 1, reads: 3 }, 'still one read per poll with N + 1 workers');
  } finally {
    await primary.stop();
    await Promise.all(workers.map((w) => w.stop()));
  }
});

test('cluster: the hub answers state requests only, and skips disconnected workers', async () => {
  const bus = fakeCluster();
  const hub = createBackpressureHub(bus.peers);
  const a = bus.addWorker();
  const b = bus.addWorker();
  b.disconnect();
  const sent: unknown[] = [];
  assert.equal(hub.answer({ send: (m) => sent.push(m) }, { type: 'adclick:metrics-req', id: 1 }), false);
  assert.equal(hub.answer({ send: (m) => sent.push(m) }, null), false);
  assert.equal(sent.length, 0, 'other messages are not answered');
  hub.publish(true);
  assert.equal(hub.answer({ send: (m) => sent.push(m) }, { type: 'adclick:backpressure-req' }), true);
  assert.deepEqual(sent, [{ type: 'adclick:backpressure-state', refusing: true }]);
  await tick();
  assert.deepEqual(a.received, [{ type: 'adclick:backpressure-state', refusing: true }]);
  assert.deepEqual(b.received, [], 'nothing sent down a closed channel');
});

test('cluster: the primary publishes its state on every change and every poll interval as a heartbeat, also while a read hangs', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const states: boolean[] = [];
  let release!: () => void;
  const reads: Promise<WatchedLag[]>[] = [Promise.resolve([{ group: 'g', topic: 't', lag: 500 }]), new Promise((r) => (release = () => r([])))];
  const bp = startBackpressure({ maxLag: 100, pollMs: 1000, logger, registry: createRegistry('gateway', false), retryAfterSec: 1,
    read: () => reads.shift() ?? Promise.resolve([]), onState: (r) => states.push(r) });
  try {
    assert.deepEqual(states, [false], 'the first tick');
    await tick();
    assert.deepEqual(states, [false, true], 'the change, at once');
    t.mock.timers.tick(1000);
    assert.deepEqual(states, [false, true, true], 'heartbeat; this read hangs');
    t.mock.timers.tick(1000);
    t.mock.timers.tick(1000);
    assert.deepEqual(states, [false, true, true, true, true], 'heartbeats go on while the read hangs');
    release();
    await tick();
    assert.deepEqual(states, [false, true, true, true, true, false]);
  } finally {
    await bp.stop();
  }
});

test('cluster: a worker that stops hearing from the primary accepts again after staleAfterPolls × pollMs, logged once, and follows again when it hears', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const lines: { level: number; msg: string }[] = [];
  const captured = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const listeners = new Set<(m: unknown) => void>();
  const fromPrimary = (refusing: boolean) => { for (const l of listeners) l({ type: 'adclick:backpressure-state', refusing }); };
  const requests: unknown[] = [];
  const w = followBackpressure({ pollMs: 1000, retryAfterSec: 1, logger: captured, channel: {
    send: (m) => void requests.push(m), onMessage: (l) => { listeners.add(l); return () => void listeners.delete(l); } } });
  const warns = () => lines.filter((l) => l.level === 40 && /falls back to accepting/.test(l.msg)).length;
  try {
    assert.deepEqual(requests, [{ type: 'adclick:backpressure-req' }]);
    fromPrimary(true);
    assert.equal(w.refusing(), true);
    fromPrimary({} as never); // malformed: ignored
    assert.equal(w.refusing(), true);
    t.mock.timers.tick(2500);
    fromPrimary(true); // heartbeat: the silence starts again
    t.mock.timers.tick(2999);
    assert.equal(w.refusing(), true, 'within 3 poll intervals of the last heartbeat');
    t.mock.timers.tick(1);
    assert.equal(w.refusing(), false, 'silent for 3 × pollMs: accepting');
    t.mock.timers.tick(60_000);
    assert.equal(w.refusing(), false);
    assert.equal(warns(), 1, 'logged once');
    fromPrimary(true);
    assert.equal(w.refusing(), true, 'follows the primary again');
    assert.equal(lines.filter((l) => /from the gateway primary again/.test(l.msg)).length, 1);
    t.mock.timers.tick(3000);
    assert.equal(w.refusing(), false);
    assert.equal(warns(), 2, 'a new silence is logged again');
  } finally {
    await w.stop();
  }
  assert.equal(listeners.size, 0, 'stop unsubscribes');
});

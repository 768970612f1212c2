// Issue 18 gap: with JobManager HA the serving processes get every JobManager's REST URL.
// When the one they poll dies, the figures must come from the next one (every JobManager's
// REST API answers under HA), and stay there, instead of going stale until a restart.
// Real HTTP servers on 127.0.0.1 ephemeral ports: a refused connection, a hang and a 503 are
// the real thing, not a fake's idea of them.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { Registry } from 'prom-client';
import { FlinkRestClient, PipelinePoller } from '../../../src/observability/pipeline-poller.ts';
import { createLogger } from '../../../src/shared/logger.ts';
import { loadConfig } from '../../../src/shared/config.ts';
import { statusFigures, sumMetric } from '../../../src/stack/status-figures.ts';

const logger = createLogger('test', 'silent');
const NOW = 1_800_000_000_000;
const JID = 'f00d';

/** A Flink JobManager's REST API whose job reports `completed` checkpoints (tells the two apart). */
function routes(completed: number): Record<string, unknown> {
  return {
    '/jobs/overview': { jobs: [{ jid: JID, name: 'adclick', state: 'RUNNING', 'start-time': 1 }] },
    [`/jobs/${JID}/checkpoints`]: { counts: { completed, failed: 0, in_progress: 0 }, latest: { completed: { id: completed, end_to_end_duration: 100, latest_ack_timestamp: NOW - 1000, checkpointed_size: 10 } } },
    [`/jobs/${JID}/metrics?get=numRestarts`]: [{ id: 'numRestarts', value: '0' }],
    [`/jobs/${JID}`]: { jid: JID, vertices: [] },
  };
}

interface FakeJm { url: string; port: number; hits: string[]; mode: 'ok' | 'hang' | '503'; server: Server }
const servers: Server[] = [];
after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

async function jobManager(completed: number, port = 0): Promise<FakeJm> {
  const jm = { hits: [] as string[], mode: 'ok' } as FakeJm;
  const body = routes(completed);
  jm.server = createServer((req, res) => {
    jm.hits.push(req.url ?? '');
    if (jm.mode === 'hang') return; // accepted, never answered: the client's timeout must end it
    if (jm.mode === '503') {
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"errors":["Service temporarily unavailable due to an ongoing leader election. Please refresh."]}');
      return;
    }
    const r = body[req.url ?? ''];
    res.writeHead(r === undefined ? 404 : 200, { 'content-type': 'application/json' }).end(JSON.stringify(r ?? { errors: ['Not found'] }));
  });
  servers.push(jm.server);
  await new Promise<void>((r) => jm.server.listen(port, '127.0.0.1', r));
  jm.port = (jm.server.address() as AddressInfo).port;
  jm.url = `http://127.0.0.1:${jm.port}`;
  return jm;
}

async function stop(jm: FakeJm): Promise<void> {
  jm.server.closeAllConnections();
  await new Promise<void>((r) => jm.server.close(() => r()));
}

/** A loopback port nothing listens on (connection refused). */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

async function poll(poller: PipelinePoller, registry: Registry): Promise<{ up: number | null; completed: number | null }> {
  await poller.pollOnce();
  const text = await registry.metrics();
  return { up: sumMetric(text, 'adclick_flink_up'), completed: sumMetric(text, 'adclick_flink_checkpoints', { state: 'completed' }) };
}

test('poller: the leading JobManager dies, the figures come from the standby and stay with it', async () => {
  const leader = await jobManager(11);
  const standby = await jobManager(22);
  const registry = new Registry();
  const poller = new PipelinePoller({ registry, logger, flinkRestUrl: [leader.url, standby.url], now: () => NOW, timeoutMs: 500 });

  assert.deepEqual(await poll(poller, registry), { up: 1, completed: 11 }, 'the first URL while it answers');
  assert.equal(standby.hits.length, 0, 'the standby is not asked while the first answers');

  await stop(leader); // kill -9: connection refused from now on
  assert.deepEqual(await poll(poller, registry), { up: 1, completed: 22 }, 'the same poll fails over to the standby');
  assert.equal(sumMetric(await registry.metrics(), 'adclick_pipeline_poll_errors_total', { source: 'flink' }), null, 'a failover is not a failed poll');

  // The old leader comes back (as standby): serving stays with the one that answered last.
  const back = await jobManager(33, leader.port);
  assert.deepEqual(await poll(poller, registry), { up: 1, completed: 22 });
  assert.deepEqual(await poll(poller, registry), { up: 1, completed: 22 });
  assert.equal(back.hits.length, 0, 'sticks to the standby that answered');

  // And back to the first when the second goes away in turn.
  await stop(standby);
  assert.deepEqual(await poll(poller, registry), { up: 1, completed: 33 });
});

test('poller: a first URL that refuses from the start, hangs, or answers 5xx gives way to the next within the poll', async () => {
  const second = await jobManager(7);
  const hanging = await jobManager(1);
  hanging.mode = 'hang';
  const electing = await jobManager(2);
  electing.mode = '503';
  for (const first of [await deadUrl(), hanging.url, electing.url]) {
    const registry = new Registry();
    const poller = new PipelinePoller({ registry, logger, flinkRestUrl: [first, second.url], now: () => NOW, timeoutMs: 300 });
    const t0 = Date.now();
    assert.deepEqual(await poll(poller, registry), { up: 1, completed: 7 }, first);
    assert.ok(Date.now() - t0 < 3000, `bounded by the per-request timeout (${Date.now() - t0} ms)`);
  }
  assert.equal(hanging.hits.length, 1, 'the hanging one cost one request, then the poll stuck to the next');
  assert.equal(electing.hits.length, 1);
});

test('poller: every URL down costs one pass over the list per poll, then adclick_flink_up 0', async () => {
  const calls: string[] = [];
  const refused = (async (input: string | URL | Request) => {
    calls.push(new URL(String(input)).host);
    throw new TypeError('fetch failed: ECONNREFUSED');
  }) as typeof fetch;
  const registry = new Registry();
  const poller = new PipelinePoller({ registry, logger, flinkRestUrl: ['http://jm-1.test:8081', 'http://jm-2.test:8081', 'http://jm-3.test:8081'], fetch: refused, now: () => NOW, timeoutMs: 50 });
  assert.deepEqual(await poll(poller, registry), { up: 0, completed: null });
  assert.deepEqual(calls, ['jm-1.test:8081', 'jm-2.test:8081', 'jm-3.test:8081']);
  assert.equal(sumMetric(await registry.metrics(), 'adclick_pipeline_poll_errors_total', { source: 'flink' }), 1);
  calls.length = 0;
  await poller.pollOnce();
  assert.equal(calls.length, 3, 'the next poll makes one pass again');
});

test('client: a 4xx is an answer (no failover), and a single URL still works as before', async () => {
  const calls: string[] = [];
  const notFound = (async (input: string | URL | Request) => {
    calls.push(String(input));
    return new Response('{"errors":["Not found"]}', { status: 404 });
  }) as typeof fetch;
  const client = new FlinkRestClient(['http://a.test:1/', 'http://b.test:2'], 100, notFound);
  await assert.rejects(client.figures(), /HTTP 404/);
  assert.deepEqual(calls, ['http://a.test:1/jobs/overview']);
  const single = new FlinkRestClient('http://c.test:3/', 100, notFound);
  await assert.rejects(single.figures(), /HTTP 404/);
  assert.equal(calls.at(-1), 'http://c.test:3/jobs/overview');
});

test('adclick status: the Flink line comes from the first JobManager in the list that answers', async () => {
  const standby = await jobManager(5);
  const dead = await deadUrl();
  const port = (u: string) => new URL(u).port;
  // Gateway and serving admin on a port nothing listens on: their lines read n/a.
  const config = loadConfig({ ADCLICK_FLINK_REST_URL: `${dead},${standby.url}`, ADCLICK_GATEWAY_PORT: port(dead), ADCLICK_ADMIN_PORT: port(dead) });
  const lines = await statusFigures(config, NOW);
  assert.match(lines.find((l) => l.startsWith('flink'))!, /job RUNNING, restarts 0, checkpoints 5 completed \/ 0 failed, last #5 took 100 ms, 1\.0 s ago/);
  assert.ok(standby.hits.includes(`/jobs/${JID}/checkpoints`), 'the rest asked where the overview answered');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { createLogger } from '../../../src/shared/logger.ts';
import { granularityOf, PipelinePoller } from '../../../src/observability/pipeline-poller.ts';
import { lagOf } from '../../../src/sink/consumer-lag.ts';
import { pipelineLines, samples, sumMetric } from '../../../src/stack/status-figures.ts';
import { serialisableHealth } from '../../../src/stack/health.ts';

const logger = createLogger('test', 'silent');
const NOW = 1_800_000_000_000;
const JID = 'a1b2c3';

/** A fake Flink REST API: the documented response shapes of /jobs/overview, /checkpoints, vertices and metrics. */
function fakeFlink(routes: Record<string, unknown>, calls: string[] = []): typeof fetch {
  return (async (input: string | URL | Request) => {
    const url = new URL(String(input));
    const path = url.pathname + url.search;
    calls.push(path);
    if (!(path in routes)) return new Response('{"errors":["Not found"]}', { status: 404 });
    return new Response(JSON.stringify(routes[path]), { status: 200, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
}

const dedupVertex = 'v-dedup';
const lateVertex = 'v-late';
const srcVertex = 'v-src';
const ROUTES: Record<string, unknown> = {
  '/jobs/overview': { jobs: [{ jid: 'old', name: 'adclick', state: 'CANCELED', 'start-time': 1 }, { jid: JID, name: 'adclick', state: 'RUNNING', 'start-time': 2 }] },
  [`/jobs/${JID}/checkpoints`]: {
    counts: { restored: 0, total: 14, in_progress: 1, completed: 12, failed: 1 },
    latest: { completed: { id: 12, end_to_end_duration: 250, latest_ack_timestamp: NOW - 3000, state_size: 9000, checkpointed_size: 4096 }, failed: { id: 7 } },
  },
  [`/jobs/${JID}/metrics?get=numRestarts`]: [{ id: 'numRestarts', value: '2' }],
  [`/jobs/${JID}`]: { jid: JID, vertices: [
    { id: srcVertex, name: 'Source: kafka-source-clicks -> split-dead-letters' },
    { id: dedupVertex, name: 'dedup-impression-event -> Sink: sink-clicks-deduped' },
    { id: lateVertex, name: 'window-1m -> late-clicks-1m' },
  ] },
  [`/jobs/${JID}/vertices/${srcVertex}/subtasks/metrics`]: [{ id: 'numRecordsIn' }, { id: 'Source__kafka-source-clicks.deadLetters' }],
  [`/jobs/${JID}/vertices/${srcVertex}/subtasks/metrics?get=Source__kafka-source-clicks.deadLetters&agg=sum`]: [{ id: 'Source__kafka-source-clicks.deadLetters', sum: 3 }],
  [`/jobs/${JID}/vertices/${dedupVertex}/subtasks/metrics`]: [{ id: 'dedup-impression-event.duplicatesDropped' }, { id: 'numRecordsOut' }],
  [`/jobs/${JID}/vertices/${dedupVertex}/subtasks/metrics?get=dedup-impression-event.duplicatesDropped&agg=sum`]: [{ id: 'dedup-impression-event.duplicatesDropped', sum: 41 }],
  [`/jobs/${JID}/vertices/${lateVertex}/subtasks/metrics`]: [{ id: 'late-clicks-1m.lateClicks' }, { id: 'late-clicks-5m.lateClicks' }],
  [`/jobs/${JID}/vertices/${lateVertex}/subtasks/metrics?get=late-clicks-1m.lateClicks,late-clicks-5m.lateClicks&agg=sum`]: [{ id: 'late-clicks-1m.lateClicks', sum: 5 }, { id: 'late-clicks-5m.lateClicks', sum: '1.0' }],
};

test('poller: Flink REST figures, watermark delay and group lag become Prometheus metrics', async () => {
  const registry = new Registry();
  const calls: string[] = [];
  const poller = new PipelinePoller({
    registry, logger, flinkRestUrl: 'http://flink.test:8082/', fetch: fakeFlink(ROUTES, calls), now: () => NOW,
    watermark: async () => NOW - 7_500,
    consumerLag: async () => [{ topic: 'click-aggregates', partition: 0, lag: 4 }, { topic: 'clicks-deduped', partition: 3, lag: 10 }],
  });
  await poller.pollOnce();
  const text = await registry.metrics();
  assert.equal(sumMetric(text, 'adclick_flink_up'), 1);
  assert.equal(sumMetric(text, 'adclick_flink_checkpoints', { state: 'completed' }), 12);
  assert.equal(sumMetric(text, 'adclick_flink_checkpoints', { state: 'failed' }), 1);
  assert.equal(sumMetric(text, 'adclick_flink_checkpoints', { state: 'in_progress' }), 1);
  assert.equal(sumMetric(text, 'adclick_flink_checkpoint_duration_seconds'), 0.25);
  assert.equal(sumMetric(text, 'adclick_flink_checkpoint_age_seconds'), 3);
  assert.equal(sumMetric(text, 'adclick_flink_checkpoint_size_bytes'), 4096);
  assert.equal(sumMetric(text, 'adclick_flink_restarts'), 2);
  assert.equal(sumMetric(text, 'adclick_flink_duplicates_dropped'), 41);
  assert.equal(sumMetric(text, 'adclick_flink_dead_letters'), 3);
  assert.equal(sumMetric(text, 'adclick_flink_late_clicks', { granularity: '1m' }), 5);
  assert.equal(sumMetric(text, 'adclick_flink_late_clicks', { granularity: '5m' }), 1);
  assert.equal(sumMetric(text, 'adclick_pipeline_watermark_delay_seconds'), 7.5);
  assert.equal(sumMetric(text, 'adclick_sink_consumer_group_lag', { topic: 'clicks-deduped', partition: '3' }), 10);
  assert.equal(sumMetric(text, 'adclick_sink_consumer_group_lag'), 14);

  // Metric ids are discovered once per vertex; later polls only fetch the values.
  const listed = calls.filter((c) => c.endsWith('/subtasks/metrics')).length;
  await poller.pollOnce();
  assert.equal(calls.filter((c) => c.endsWith('/subtasks/metrics')).length, listed);
  assert.equal(calls.filter((c) => c === `/jobs/${JID}`).length, 1);

  // The status screen renders these figures.
  const lines = pipelineLines(await registry.metrics());
  assert.match(lines[0]!, /duplicates: 41 by the Flink dedup; late: 6 \(1m 5, 5m 1\); dead letters: 3 in Flink/);
  assert.match(lines[1]!, /lag 14 records \(most: clicks-deduped\/3 10\)/);
  assert.match(lines[2]!, /watermark delay 7\.5 s/);
});

test('poller: Flink down, a hung source and failing sources give adclick_flink_up 0 and absent figures, never a throw', async () => {
  const registry = new Registry();
  let flinkUp = true;
  const down = (async () => { throw new TypeError('fetch failed: ECONNREFUSED'); }) as typeof fetch;
  const up = fakeFlink(ROUTES);
  const poller = new PipelinePoller({
    registry, logger, flinkRestUrl: 'http://127.0.0.1:1', now: () => NOW, timeoutMs: 20,
    fetch: ((...a: Parameters<typeof fetch>) => (flinkUp ? up(...a) : down(...a))) as typeof fetch,
    watermark: () => new Promise(() => {}), // never answers: bounded by the poller
    consumerLag: async () => { throw new Error('broker down'); },
  });
  await poller.pollOnce();
  assert.equal(sumMetric(await registry.metrics(), 'adclick_flink_up'), 1);
  flinkUp = false;
  await poller.pollOnce();
  const text = await registry.metrics();
  assert.equal(sumMetric(text, 'adclick_flink_up'), 0);
  for (const m of ['adclick_flink_checkpoints', 'adclick_flink_duplicates_dropped', 'adclick_flink_late_clicks', 'adclick_pipeline_watermark_delay_seconds', 'adclick_sink_consumer_group_lag']) {
    assert.equal(sumMetric(text, m), null, `${m} unknown (NaN or no series) while its source is down`);
  }
  assert.equal(sumMetric(text, 'adclick_pipeline_poll_errors_total', { source: 'flink' }), 1);
  assert.equal(sumMetric(text, 'adclick_pipeline_poll_errors_total', { source: 'watermark' }), 2);
  assert.equal(sumMetric(text, 'adclick_pipeline_poll_errors_total', { source: 'lag' }), 2);
  assert.match(pipelineLines(text)[2]!, /watermark delay n\/a/);

  // No job at all: up 0 as well.
  const none = new PipelinePoller({ registry: new Registry(), logger, flinkRestUrl: 'http://x', fetch: fakeFlink({ '/jobs/overview': { jobs: [] } }) });
  await none.pollOnce();
  assert.equal((await none.metrics.flinkUp.get()).values[0]?.value, 0);
});

test('late-click metric ids name their granularity', () => {
  assert.equal(granularityOf('late-clicks-1h.lateClicks'), '1h');
  assert.equal(granularityOf('something.lateClicks'), 'all');
});

test('consumer lag: end (read_committed) minus committed; never committed counts from the low watermark', () => {
  const lag = lagOf(
    [{ topic: 'a', partitions: [{ partition: 0, offset: '90' }, { partition: 1, offset: '-1' }] }],
    [{ topic: 'a', partitions: [{ partition: 0, high: '100', low: '0' }, { partition: 1, high: '30', low: '10' }] }, { topic: 'b', partitions: [{ partition: 0, high: '5', low: '5' }] }],
  );
  assert.deepEqual(lag, [{ topic: 'a', partition: 0, lag: 10 }, { topic: 'a', partition: 1, lag: 20 }, { topic: 'b', partition: 0, lag: 0 }]);
});

test('status helpers: label parsing; the Flink line check is re-checked from outside through REST', () => {
  const text = 'adclick_sink_consumer_group_lag{topic="clicks-late",partition="1"} 3\nadclick_sink_consumer_group_lag{topic="x",partition="0"} 0\n';
  assert.deepEqual(samples(text, 'adclick_sink_consumer_group_lag'), [{ labels: { topic: 'clicks-late', partition: '1' }, value: 3 }, { labels: { topic: 'x', partition: '0' }, value: 0 }]);
  const outside = { kind: 'http', url: 'http://127.0.0.1:8082/jobs/overview', bodyIncludes: '"state":"RUNNING"' } as const;
  assert.deepEqual(serialisableHealth({ kind: 'line', pattern: 'READY', outside }), outside);
  assert.deepEqual(serialisableHealth({ kind: 'line', pattern: 'READY' }), { kind: 'line', pattern: 'READY' });
});

test('poller: a Kafka transaction Flink could not commit is loud — a counter across job restarts, an error line, a status line', async () => {
  const sinkVertex = 'v-sink';
  const failures = { n: 0 };
  const routes = (): Record<string, unknown> => ({
    '/jobs/overview': { jobs: [{ jid: JID, name: 'adclick', state: 'RUNNING', 'start-time': 2 }] },
    [`/jobs/${JID}`]: { jid: JID, vertices: [{ id: sinkVertex, name: 'window-1m -> Sink: sink-click-aggregates' }] },
    [`/jobs/${JID}/vertices/${sinkVertex}/subtasks/metrics`]: [{ id: 'sink-click-aggregates__Committer.failedCommittables' }, { id: 'sink-click-aggregates__Committer.successfulCommittables' }, { id: 'numRecordsIn' }],
    [`/jobs/${JID}/vertices/${sinkVertex}/subtasks/metrics?get=sink-click-aggregates__Committer.failedCommittables,sink-click-aggregates__Committer.successfulCommittables&agg=sum`]: [
      { id: 'sink-click-aggregates__Committer.failedCommittables', sum: failures.n },
      { id: 'sink-click-aggregates__Committer.successfulCommittables', sum: 40 },
    ],
  });
  const errors: string[] = [];
  const log = createLogger('test', 'error', { stdout: { write: (l: string) => { errors.push(l); return true; } } as unknown as NodeJS.WritableStream, format: 'json' });
  const registry = new Registry();
  const fetchFn = ((input: string | URL | Request) => fakeFlink(routes())(input)) as typeof fetch;
  const poller = new PipelinePoller({ registry, logger: log, flinkRestUrl: 'http://flink.test:8082', fetch: fetchFn, now: () => NOW });
  await poller.pollOnce();
  let text = await registry.metrics();
  assert.equal(sumMetric(text, 'adclick_flink_committables_committed'), 40);
  assert.equal(sumMetric(text, 'adclick_flink_commit_failures_total'), 0);
  assert.equal(errors.length, 0);
  assert.ok(!pipelineLines(text).some((l) => l.startsWith('COMMITS')), 'no alarm while every commit succeeds');

  failures.n = 2; // e.g. the recovery took longer than the transaction timeout
  await poller.pollOnce();
  await poller.pollOnce(); // the same two are not counted again
  failures.n = 0; // the job restarted: Flink's counters start over
  await poller.pollOnce();
  failures.n = 1; // and the new run fails one more
  await poller.pollOnce();
  text = await registry.metrics();
  assert.equal(sumMetric(text, 'adclick_flink_commit_failures_total'), 3, 'every failure once, across the restart');
  assert.equal(errors.filter((l) => l.includes('could not commit Kafka transactions')).length, 2, errors.join('\n'));
  const status = pipelineLines(text).find((l) => l.startsWith('COMMITS'));
  assert.ok(status?.includes('3 Kafka transaction'), `adclick status shows it: ${status}`);
});

test('poller: a vertex without our counters is not listed on every poll, and counters that appear later are still found', async () => {
  const sinkVertex = 'v-sink';
  const listing = `/jobs/${JID}/vertices/${sinkVertex}/subtasks/metrics`;
  const routes: Record<string, unknown> = {
    ...ROUTES,
    [`/jobs/${JID}`]: { jid: JID, vertices: [...(ROUTES[`/jobs/${JID}`] as { vertices: unknown[] }).vertices, { id: sinkVertex, name: 'sink-clicks-late: Writer' }] },
    [listing]: [{ id: 'numRecordsIn' }],
  };
  const calls: string[] = [];
  const registry = new Registry();
  const poller = new PipelinePoller({ registry, logger, flinkRestUrl: 'http://flink.test:8082', fetch: fakeFlink(routes, calls), now: () => NOW });
  for (let i = 0; i < 5; i++) await poller.pollOnce();
  assert.equal(calls.filter((c) => c === listing).length, 1, 'five polls within a second list the vertex once');
  // Its tasks register a counter of ours later (e.g. after a restart of the job's tasks).
  routes[listing] = [{ id: 'numRecordsIn' }, { id: 'late-clicks-1h.lateClicks' }];
  routes[`${listing}?get=late-clicks-1h.lateClicks&agg=sum`] = [{ id: 'late-clicks-1h.lateClicks', sum: 9 }];
  await new Promise((r) => setTimeout(r, 1100));
  await poller.pollOnce();
  assert.equal(calls.filter((c) => c === listing).length, 2, 'listed again after the first back-off');
  assert.equal(sumMetric(await registry.metrics(), 'adclick_flink_late_clicks', { granularity: '1h' }), 9);
});

test('poller: a vertex first listed with only some of its counters (a task still opening its operators) gets the rest on a later listing', async () => {
  const listing = `/jobs/${JID}/vertices/${dedupVertex}/subtasks/metrics`;
  const routes: Record<string, unknown> = {
    ...ROUTES,
    [listing]: [{ id: 'late-clicks-1h.lateClicks' }],
    [`${listing}?get=late-clicks-1h.lateClicks&agg=sum`]: [{ id: 'late-clicks-1h.lateClicks', sum: 2 }],
  };
  const registry = new Registry();
  const poller = new PipelinePoller({ registry, logger, flinkRestUrl: 'http://flink.test:8082', fetch: fakeFlink(routes, []), now: () => NOW });
  await poller.pollOnce();
  assert.match(await registry.metrics(), /^adclick_flink_duplicates_dropped Nan$/m, 'not listed yet: unknown, not 0');
  routes[listing] = [{ id: 'late-clicks-1h.lateClicks' }, { id: 'dedup-impression-event.duplicatesDropped' }];
  routes[`${listing}?get=late-clicks-1h.lateClicks,dedup-impression-event.duplicatesDropped&agg=sum`] = [
    { id: 'late-clicks-1h.lateClicks', sum: 2 }, { id: 'dedup-impression-event.duplicatesDropped', sum: 41 },
  ];
  await new Promise((r) => setTimeout(r, 1100));
  await poller.pollOnce();
  const text = await registry.metrics();
  assert.equal(sumMetric(text, 'adclick_flink_duplicates_dropped'), 41);
  assert.equal(sumMetric(text, 'adclick_flink_late_clicks', { granularity: '1h' }), 2);
});

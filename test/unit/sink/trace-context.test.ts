import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { DeadLetter, WindowAggregate } from '../../../src/shared/proto.ts';
import { AggregateSink, type SinkConsumer } from '../../../src/sink/aggregate-sink.ts';
import { buildBatch, type SinkMessage } from '../../../src/sink/batch.ts';
import { parseTraceparent, traceIdFromHeaders, traceSummary } from '../../../src/sink/trace-context.ts';
import type { Store } from '../../../src/store/store.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = `00-${TRACE}-00f067aa0ba902b7-01`;

test('traceparent: valid values give the trace id, invalid ones nothing', () => {
  assert.deepEqual(parseTraceparent(PARENT), { traceId: TRACE, spanId: '00f067aa0ba902b7', flags: 1 });
  assert.equal(parseTraceparent(`01-${TRACE}-00f067aa0ba902b7-00-later-fields`)?.traceId, TRACE, 'a later version: first four fields');
  for (const bad of [
    undefined, '', 'garbage', `${PARENT}-x`, `ff-${TRACE}-00f067aa0ba902b7-01`, `00-${TRACE.toUpperCase()}-00f067aa0ba902b7-01`,
    `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, `00-${TRACE}-${'0'.repeat(16)}-01`, `00-${TRACE.slice(1)}-00f067aa0ba902b7-01x`,
    `00_${TRACE}-00f067aa0ba902b7-01`, `00-${TRACE}-00f067aa0ba902b-701`,
  ]) assert.equal(parseTraceparent(bad), undefined, String(bad));
});

test('traceparent from Kafka headers: Buffer, string, repeated (last wins), absent', () => {
  assert.equal(traceIdFromHeaders({ traceparent: Buffer.from(PARENT) }), TRACE);
  assert.equal(traceIdFromHeaders({ traceparent: PARENT, other: 'x' }), TRACE);
  const other = '0af7651916cd43dd8448eb211c80319c';
  assert.equal(traceIdFromHeaders({ traceparent: [Buffer.from(PARENT), Buffer.from(`00-${other}-b7ad6b7169203331-01`)] }), other);
  assert.equal(traceIdFromHeaders({ traceparent: Buffer.from('nope') }), undefined);
  assert.equal(traceIdFromHeaders({}), undefined);
  assert.equal(traceIdFromHeaders(undefined), undefined);
});

test('traceSummary is bounded: first 5 distinct ids and the count of traced records', () => {
  const ids = Array.from({ length: 12 }, (_, i) => (i % 2 ? undefined : i.toString(16).padStart(32, 'a')));
  const s = traceSummary([...ids, ids[0]]);
  assert.equal(s.traced, 7);
  assert.deepEqual(s.trace_ids, ids.filter(Boolean).slice(0, 5));
});

const T0 = Date.UTC(2026, 10, 27, 10, 0);
const agg = (offset: number, traceId?: string): SinkMessage => ({
  topic: 'click-aggregates', partition: 0, offset: String(offset), key: null, traceId,
  value: Buffer.from(WindowAggregate.encode({ granularity: 1, adId: 1, campaignId: 2, advertiserId: 3, windowStartMs: T0, windowEndMs: T0 + 60_000, clicks: 1 + offset, emittedAtMs: T0 }).finish()),
});

test('dead letters of both stages keep their trace ids; the sink logs them and the batch trace ids', async () => {
  const bad = '11111111111111111111111111111111';
  const flinkDl = '22222222222222222222222222222222';
  const msgs: SinkMessage[] = [
    agg(0, TRACE),
    { topic: 'click-aggregates', partition: 0, offset: '1', key: null, value: Buffer.from([0xff, 0xff]), traceId: bad },
    { topic: 'clicks-dlq', partition: 0, offset: '0', key: null, traceId: flinkDl,
      value: Buffer.from(DeadLetter.encode({ sourceTopic: 'clicks', partition: 1, offset: 9, reason: 'EMPTY_PAYLOAD', stage: 'flink', detectedAtMs: T0 }).finish()) },
    agg(2),
  ];
  assert.deepEqual(buildBatch(msgs, undefined, T0).deadLetterTraceIds, [bad, flinkDl]);

  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => { lines.push(JSON.parse(l)); } });
  let deliver!: (m: SinkMessage[]) => void;
  let committed = 0;
  const consumer: SinkConsumer = {
    async start(d) { deliver = d; }, async commit() { committed++; }, pause() {}, resume() {}, async stop() {},
  };
  const store: Store = {
    kind: 'server', storagePolicy: '',
    capabilities: { version: 'fake', serverParams: true, ttl: true, storagePolicies: true, insertDedupToken: true, projections: true },
    async query() { return []; }, async insert() {}, async command() {}, async ping() { return true; }, async close() {},
  };
  const sink = new AggregateSink({ store, consumer, logger, maxWaitMs: 5 });
  await sink.start();
  deliver(msgs);
  for (let i = 0; i < 400 && committed === 0; i++) await new Promise((r) => setTimeout(r, 5));
  await sink.stop();
  const dl = lines.find((l) => l.msg === 'records written to dead_letters');
  assert.ok(dl, 'a dead-letter line');
  assert.deepEqual(dl.trace_ids, [bad, flinkDl]);
  assert.equal(dl.deadLetters, 1);
  assert.equal(dl.jobDeadLetters, 1);
  const batchLine = lines.find((l) => l.msg === 'batch stored and committed');
  assert.ok(batchLine, 'a per-batch debug line');
  assert.deepEqual(batchLine.trace_ids, [TRACE, bad, flinkDl]);
  assert.equal(batchLine.traced, 3);
  const metrics = await sink.metrics.recordsTotal.get();
  assert.deepEqual(Object.fromEntries(metrics.values.map((v) => [v.labels.kind, v.value])), { aggregates: 3, dlq: 1 });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newSpanId, newTraceId, parseTraceparent, traceContextFor } from '../../../src/gateway/trace-context.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const VALID = `00-${TRACE}-${PARENT}-01`;

test('traceparent: a valid version-00 header is parsed', () => {
  assert.deepEqual(parseTraceparent(VALID), { traceId: TRACE, parentId: PARENT, flags: '01' });
  assert.deepEqual(parseTraceparent(`00-${TRACE}-${PARENT}-00`), { traceId: TRACE, parentId: PARENT, flags: '00' });
});

test('traceparent: invalid headers are ignored (undefined), never thrown', () => {
  const invalid: [string, unknown][] = [
    ['missing', undefined],
    ['repeated header (array)', [VALID, VALID]],
    ['empty', ''],
    ['version ff', `ff-${TRACE}-${PARENT}-01`],
    ['version not hex', `0g-${TRACE}-${PARENT}-01`],
    ['version uppercase', `0A-${TRACE}-${PARENT}-01`],
    ['version 00 with extra data', `${VALID}-extra`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${PARENT}-01`],
    ['all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['uppercase trace id', `00-${TRACE.toUpperCase()}-${PARENT}-01`],
    ['uppercase parent id', `00-${TRACE}-${PARENT.toUpperCase()}-01`],
    ['uppercase flags', `00-${TRACE}-${PARENT}-0A`],
    ['trace id too short', `00-${TRACE.slice(1)}-${PARENT}-01`],
    ['trace id too long', `00-${TRACE}0-${PARENT}-01`],
    ['parent id too short', `00-${TRACE}-${PARENT.slice(1)}-01`],
    ['parent id too long', `00-${TRACE}-${PARENT}0-01`],
    ['flags one char', `00-${TRACE}-${PARENT}-1`],
    ['flags three chars', `00-${TRACE}-${PARENT}-011`],
    ['wrong separators', `00_${TRACE}_${PARENT}_01`],
    ['non-hex in trace id', `00-${TRACE.slice(0, 31)}x-${PARENT}-01`],
    ['garbage', 'not a traceparent at all, but long enough to reach fifty-five chars'],
  ];
  for (const [name, header] of invalid) {
    assert.equal(parseTraceparent(header as string | string[] | undefined), undefined, name);
  }
});

test('traceparent: a higher version is read forward-compatibly (first four fields)', () => {
  assert.deepEqual(parseTraceparent(`01-${TRACE}-${PARENT}-01`), { traceId: TRACE, parentId: PARENT, flags: '01' });
  assert.deepEqual(parseTraceparent(`cc-${TRACE}-${PARENT}-01-what-the-future-holds`), { traceId: TRACE, parentId: PARENT, flags: '01' });
  assert.equal(parseTraceparent(`cc-${TRACE}-${PARENT}-01x`), undefined, 'after the flags only "-" may follow');
});

test('trace context: joins a valid incoming trace with a new span of its own, keeping the flags', () => {
  const t = traceContextFor(`00-${TRACE}-${PARENT}-00`);
  assert.equal(t.traceId, TRACE);
  assert.match(t.spanId, /^[0-9a-f]{16}$/);
  assert.notEqual(t.spanId, PARENT);
  assert.equal(t.flags, '00');
  assert.equal(t.header, `00-${TRACE}-${t.spanId}-00`);
  // A higher incoming version is answered in the version this gateway speaks.
  assert.equal(traceContextFor(`01-${TRACE}-${PARENT}-01`).header.slice(0, 36), `00-${TRACE}-`);
});

test('trace context: no or an invalid header starts a new sampled trace', () => {
  for (const h of [undefined, 'junk', `00-${'0'.repeat(32)}-${PARENT}-01`]) {
    const t = traceContextFor(h);
    assert.match(t.traceId, /^[0-9a-f]{32}$/);
    assert.notEqual(t.traceId, TRACE);
    assert.equal(t.flags, '01');
    assert.equal(t.header, `00-${t.traceId}-${t.spanId}-01`);
    assert.deepEqual(parseTraceparent(t.header), { traceId: t.traceId, parentId: t.spanId, flags: '01' }, 'what we emit is valid');
  }
});

test('ids: right length, lowercase hex, not zero, unique across pool refills', () => {
  const traces = new Set<string>();
  const spans = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const t = newTraceId();
    const s = newSpanId();
    assert.match(t, /^[0-9a-f]{32}$/);
    assert.match(s, /^[0-9a-f]{16}$/);
    assert.notEqual(t, '0'.repeat(32));
    assert.notEqual(s, '0'.repeat(16));
    traces.add(t);
    spans.add(s);
  }
  assert.equal(traces.size, 2000);
  assert.equal(spans.size, 2000);
});

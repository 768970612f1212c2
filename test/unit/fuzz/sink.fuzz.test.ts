// Property-based / fuzz tests of the sink's record → row mapping (src/sink/batch.ts,
// src/store/rows.ts). Kafka record values are arbitrary bytes, hand-encoded protobuf with
// every 64-bit edge value, messages of the wrong type and mutated encodings. Every record
// must end as a row ClickHouse will accept or as a dead letter with a reason; the builder
// never throws; the offsets to commit cover every input record (no stalled partition).
//   FUZZ_SEED=<n> pins the seed; FUZZ_SCALE=<x> multiplies every numRuns.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildBatch, SINK_TOPICS, type SinkBatch, type SinkMessage } from '../../../src/sink/batch.ts';
import type { AggregateRow, DeadLetterRow, LateClickRow, WatermarkRow } from '../../../src/store/rows.ts';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const params = (n: number) => ({ numRuns: Math.max(1, Math.round(n * SCALE)), ...(SEED === undefined ? {} : { seed: SEED }) });
const NOW = Date.UTC(2026, 10, 27, 10, 0, 0);
const STEP: Record<number, number> = { 1: 60_000, 2: 300_000, 3: 3_600_000 };
/** Every input topic the sink reads (new ones, e.g. clicks-deduped, are picked up here). */
const TOPICS: readonly string[] = Object.values(SINK_TOPICS);
const DEDUPED_TOPIC: string | undefined = (SINK_TOPICS as Record<string, string>).deduped;
/** SINK_RECORD_FAILED means an unexpected exception inside the mapping (a bug): never expected. */
const UNEXPECTED_REASON = 'SINK_RECORD_FAILED';

let cases = 0;
after(() => console.log(`fuzz: sink ${cases} cases`));

// ------------------------------------------------------------------ a tiny protobuf writer (exact 64-bit values)

type Field = { no: number; wt: 0 | 1 | 2 | 5 | 3 | 4 | 6 | 7; v: bigint | Uint8Array };

function varint(x: bigint, out: number[]): void {
  let u = BigInt.asUintN(64, x);
  do {
    let b = Number(u & 0x7fn);
    u >>= 7n;
    if (u) b |= 0x80;
    out.push(b);
  } while (u);
}

function encode(fields: Field[]): Uint8Array {
  const out: number[] = [];
  for (const f of fields) {
    varint(BigInt(f.no) << 3n | BigInt(f.wt), out);
    if (f.wt === 0) varint(f.v as bigint, out);
    else if (f.wt === 2) {
      const b = f.v as Uint8Array;
      varint(BigInt(b.length), out);
      out.push(...b);
    } else if (f.wt === 1 || f.wt === 5) {
      const n = f.wt === 1 ? 8 : 4;
      let u = BigInt.asUintN(n * 8, f.v as bigint);
      for (let i = 0; i < n; i++, u >>= 8n) out.push(Number(u & 0xffn));
    } else {
      out.push(...(f.v as Uint8Array)); // groups / invalid wire types: whatever follows
    }
  }
  return Uint8Array.from(out);
}

// ------------------------------------------------------------------ value generators

const EDGE_64 = [0n, 1n, -1n, 2n ** 31n - 1n, -(2n ** 31n), 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n, 4_294_967_295_000n, 4_294_967_296_000n];
const int64 = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...EDGE_64) },
  { weight: 2, arbitrary: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }) },
  { weight: 2, arbitrary: fc.bigInt({ min: -1000n, max: 1000n }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 3 * 86_400_000 }).map((d) => BigInt(NOW - d)) },
);
const int32 = fc.oneof(fc.integer({ min: -5, max: 10 }), fc.integer(), fc.constantFrom(2 ** 31 - 1, -(2 ** 31))).map(BigInt);
const text = fc.oneof(
  fc.string({ maxLength: 20 }).map((s) => Buffer.from(s, 'utf8')),
  fc.string({ unit: 'binary', maxLength: 300 }).map((s) => Buffer.from(s, 'utf8')),
  fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)), // often invalid UTF-8
  fc.constantFrom('', 'click', 'imp_1', 'x'.repeat(256), 'x'.repeat(257), 'PROTOBUF_DECODE_FAILED', 'clicks').map((s) => Buffer.from(s)),
);
const bytes = fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b));

type Kind = 'enum' | 'u64' | 'i64' | 'i32' | 'bool' | 'string' | 'bytes' | 'click';

/** A value for a field of this kind, sometimes with the wrong wire type. */
function arbitraryField(no: number, kind: Kind): fc.Arbitrary<Field> {
  const right: fc.Arbitrary<Field> =
    kind === 'string' ? text.map((v) => ({ no, wt: 2 as const, v }))
    : kind === 'bytes' ? bytes.map((v) => ({ no, wt: 2 as const, v }))
    : kind === 'click' ? clickBytes.map((v) => ({ no, wt: 2 as const, v }))
    : kind === 'i32' || kind === 'enum' ? int32.map((v) => ({ no, wt: 0 as const, v }))
    : kind === 'bool' ? fc.oneof(fc.constantFrom(0n, 1n), int64).map((v) => ({ no, wt: 0 as const, v }))
    : int64.map((v) => ({ no, wt: 0 as const, v }));
  const wrong: fc.Arbitrary<Field> = fc.oneof(
    int64.map((v) => ({ no, wt: 0 as const, v })),
    int64.map((v) => ({ no, wt: 1 as const, v })),
    int64.map((v) => ({ no, wt: 5 as const, v })),
    bytes.map((v) => ({ no, wt: 2 as const, v })),
    fc.tuple(fc.constantFrom(3, 4, 6, 7), bytes).map(([wt, v]) => ({ no, wt: wt as 3 | 4 | 6 | 7, v })),
  );
  return fc.oneof({ weight: 9, arbitrary: right }, { weight: 1, arbitrary: wrong });
}

/** Messages built field by field: each field plausible, arbitrary, absent or repeated; plus unknown fields. */
function message(schema: [number, Kind][], plausible: fc.Arbitrary<Field[]>): fc.Arbitrary<Uint8Array> {
  return fc
    .record({
      base: plausible,
      overrides: fc.array(fc.constantFrom(...schema).chain(([no, kind]) => arbitraryField(no, kind)), { maxLength: 4 }),
      drop: fc.array(fc.constantFrom(...schema.map(([no]) => no)), { maxLength: 3 }),
      unknown: fc.array(fc.tuple(fc.integer({ min: 20, max: 536_870_911 }), int64).map(([no, v]) => ({ no, wt: 0 as const, v })), { maxLength: 2 }),
      shuffle: fc.boolean(),
    })
    .map(({ base, overrides, drop, unknown, shuffle }) => {
      let fields = base.filter((f) => !drop.includes(f.no)).concat(overrides, unknown);
      if (shuffle) fields = [...fields].reverse(); // proto3: last value of a scalar field wins
      return encode(fields);
    });
}

const u = (no: number, v: bigint | number): Field => ({ no, wt: 0, v: BigInt(v) });
const s = (no: number, v: string | Uint8Array): Field => ({ no, wt: 2, v: typeof v === 'string' ? Buffer.from(v) : v });
const realisticTime = fc.integer({ min: NOW - 2 * 86_400_000, max: NOW + 60_000 });
const smallId = fc.integer({ min: 1, max: 100_000 });
const gran = fc.constantFrom(1, 2, 3);

const CLICK_SCHEMA: [number, Kind][] = [[1, 'string'], [2, 'string'], [3, 'u64'], [4, 'u64'], [5, 'u64'], [6, 'string'], [7, 'i64'], [8, 'i64'], [9, 'bytes'], [10, 'string'], [11, 'string']];
const plausibleClick = fc
  .record({ imp: fc.stringMatching(/^[A-Za-z0-9._:-]{8,40}$/), ad: smallId, c: smallId, a: smallId, t: realisticTime })
  .map(({ imp, ad, c, a, t }) => [s(1, imp), s(2, 'click'), u(3, ad), u(4, c), u(5, a), s(6, 'u1'), u(7, t), u(8, t + 50), s(10, 'k1'), s(11, 'gw')]);
const clickBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: plausibleClick.map(encode) },
  { weight: 2, arbitrary: fc.constant(null).chain(() => message(CLICK_SCHEMA, plausibleClick)) },
  { weight: 1, arbitrary: bytes },
);

const AGG_SCHEMA: [number, Kind][] = [[1, 'enum'], [2, 'u64'], [3, 'u64'], [4, 'u64'], [5, 'i64'], [6, 'i64'], [7, 'u64'], [8, 'bool'], [9, 'i64'], [10, 'i64'], [11, 'i64']];
const plausibleAgg = fc
  .record({ g: gran, ad: smallId, c: smallId, a: smallId, t: realisticTime, clicks: fc.nat(10_000), fin: fc.boolean(), noEnd: fc.boolean() })
  .map(({ g, ad, c, a, t, clicks, fin, noEnd }) => {
    const start = t - (t % STEP[g]!);
    return [u(1, g), u(2, ad), u(3, c), u(4, a), u(5, start), ...(noEnd ? [] : [u(6, start + STEP[g]!)]), u(7, clicks), u(8, fin ? 1 : 0), u(9, t), u(10, t + 100), u(11, t + 10)];
  });

const WM_SCHEMA: [number, Kind][] = [[1, 'i32'], [2, 'i32'], [3, 'i64'], [4, 'i64']];
const plausibleWm = fc
  .record({ p: fc.integer({ min: 1, max: 8 }), s: fc.nat(7), t: realisticTime })
  .map(({ p, s: st, t }) => [u(1, st % p), u(2, p), u(3, t), u(4, t + 5)]);

const LATE_SCHEMA: [number, Kind][] = [[1, 'click'], [2, 'i64'], [3, 'i64'], [4, 'enum'], [5, 'i64']];
const plausibleLate = fc
  .record({ imp: fc.stringMatching(/^[A-Za-z0-9._:-]{8,40}$/), ad: smallId, g: gran, t: realisticTime })
  .map(({ imp, ad, g, t }) => [
    { no: 1, wt: 2 as const, v: encode([s(1, imp), s(2, 'click'), u(3, ad), u(4, ad * 10), u(5, 7), u(7, t), u(8, t + 5)]) },
    u(2, t + 900_000), u(3, t + 900_000), u(4, g), u(5, t - (t % STEP[g]!)),
  ]);

const DLQ_SCHEMA: [number, Kind][] = [[1, 'string'], [2, 'i32'], [3, 'i64'], [4, 'bytes'], [5, 'bytes'], [6, 'string'], [7, 'string'], [8, 'i64'], [9, 'string']];
const plausibleDlq = fc
  .record({ p: fc.nat(7), o: fc.nat(1_000_000), reason: fc.constantFrom('PROTOBUF_DECODE_FAILED', 'INVALID_FIELD', 'EMPTY_PAYLOAD'), t: realisticTime, payload: bytes })
  .map(({ p, o, reason, t, payload }) => [s(1, 'clicks'), u(2, p), u(3, o), s(4, '7'), { no: 5, wt: 2 as const, v: payload }, s(6, reason), s(7, 'detail'), u(8, t), s(9, 'flink')]);

const AUDIT_SCHEMA: [number, Kind][] = [[1, 'i64'], [2, 'i32'], [3, 'u64'], [4, 'u64'], [5, 'u64'], [6, 'u64'], [7, 'i64']];
const plausibleAudit = fc
  .record({ t: realisticTime, b: fc.nat(15), a: fc.nat(100_000), d: fc.nat(1000), r: fc.nat(100), w: fc.constantFrom('real', 'zero', 'far') })
  .map(({ t, b, a, d, r, w }) => {
    // 'far': minute-aligned but past ClickHouse DateTime (2106) or 2^53 — must be a dead letter.
    const ws = w === 'zero' ? 0 : w === 'far' ? [4_294_967_340_000, 9_007_199_254_680_000][t % 2]! : t - (t % 60_000);
    return [u(1, ws), u(2, b), u(3, a), u(4, d), u(5, r), u(6, a + d + r), u(7, t + 2000)];
  });

const ENCODERS: Record<string, fc.Arbitrary<Uint8Array>> = {
  [SINK_TOPICS.audit]: message(AUDIT_SCHEMA, plausibleAudit),
  [SINK_TOPICS.aggregates]: message(AGG_SCHEMA, plausibleAgg),
  [SINK_TOPICS.watermarks]: message(WM_SCHEMA, plausibleWm),
  [SINK_TOPICS.late]: message(LATE_SCHEMA, plausibleLate),
  [SINK_TOPICS.dlq]: message(DLQ_SCHEMA, plausibleDlq),
  ...(DEDUPED_TOPIC ? { [DEDUPED_TOPIC]: clickBytes } : {}),
};

function mutate(b: Uint8Array, ops: [number, number, number][]): Uint8Array {
  let a = Array.from(b);
  for (const [op, i, x] of ops) {
    const at = a.length ? i % a.length : 0;
    if (op === 0 && a.length) a[at] = a[at]! ^ (1 << (x % 8));
    else if (op === 1) a = a.slice(0, at);
    else if (op === 2) a.splice(at, 0, x & 0xff);
    else if (op === 3 && a.length) a.splice(at, 1 + (x % 4));
    else if (op === 4) a.push(0x80, 0x80, 0x80); // dangling varint
  }
  return Uint8Array.from(a);
}

/** A record value for the topic: a proper encoding, another type's, mutated, arbitrary, empty or null. */
function valueFor(topic: string): fc.Arbitrary<Buffer | null> {
  const own = ENCODERS[topic] ?? bytes;
  return fc.oneof(
    { weight: 6, arbitrary: own.map((b) => Buffer.from(b)) },
    { weight: 2, arbitrary: fc.tuple(own, fc.array(fc.tuple(fc.nat(4), fc.nat(), fc.nat()), { minLength: 1, maxLength: 3 })).map(([b, ops]) => Buffer.from(mutate(b, ops))) },
    { weight: 1, arbitrary: fc.constantFrom(...Object.values(ENCODERS)).chain((e) => e).map((b) => Buffer.from(b)) },
    { weight: 1, arbitrary: fc.oneof(fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)), fc.constantFrom(null, Buffer.alloc(0), Buffer.from([0x0a]), Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))) },
  );
}

const topicArb = fc.oneof({ weight: 12, arbitrary: fc.constantFrom<string>(...TOPICS) }, { weight: 1, arbitrary: fc.constantFrom('clicks', 'unknown-topic', '') });

/** Records in Kafka order: per partition, strictly increasing offsets (with gaps, e.g. transaction markers). */
const messagesArb: fc.Arbitrary<SinkMessage[]> = fc
  .array(fc.tuple(topicArb, fc.nat(3), fc.integer({ min: 1, max: 3 })).chain(([topic, partition, gap]) => valueFor(topic).map((value) => ({ topic, partition, gap, value }))), { maxLength: 30 })
  .chain((raw) =>
    fc.tuple(fc.constant(raw), fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 2n ** 53n }), fc.bigInt({ min: 0n, max: 2n ** 63n - 100n }))),
  )
  .map(([raw, base]) => {
    const next = new Map<string, bigint>();
    return raw.map(({ topic, partition, gap, value }, i) => {
      const k = `${topic}/${partition}`;
      const offset = (next.get(k) ?? base) + BigInt(gap - 1);
      next.set(k, offset + 1n);
      return { topic, partition, offset: offset.toString(), key: i % 3 === 0 ? null : Buffer.from(`k${i}`), value };
    });
  });

// ------------------------------------------------------------------ what ClickHouse accepts (src/store/migrations.ts)

const isUInt = (x: unknown, max = Number.MAX_SAFE_INTEGER) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 && x <= max;
const isInt64 = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x);
const isDateTime = (x: unknown) => isUInt(x, 4_294_967_295);
const GRANS = new Set(['1m', '5m', '1h']);
const G_MS: Record<string, number> = { '1m': 60_000, '5m': 300_000, '1h': 3_600_000 };

function assertAggregateRow(r: AggregateRow, ctx: string): void {
  assert.ok(GRANS.has(r.granularity), ctx);
  for (const k of ['advertiser_id', 'campaign_id', 'ad_id'] as const) assert.ok(isUInt(r[k]) && r[k] >= 1, `${ctx}: ${k}=${r[k]}`);
  assert.ok(isDateTime(r.window_start) && (r.window_start * 1000) % G_MS[r.granularity]! === 0, `${ctx}: window_start ${r.window_start}`);
  assert.ok(isUInt(r.clicks) && r.version === String(BigInt(r.clicks) * 2n + BigInt(r.final)) && (r.final === 0 || r.final === 1), ctx);
  assert.ok(isInt64(r.watermark_ms) && isUInt(r.emitted_at_ms) && isUInt(r.max_received_at_ms), ctx);
}

function assertWatermarkRow(r: WatermarkRow, ctx: string): void {
  assert.ok(isUInt(r.parallelism, 4_294_967_295) && r.parallelism >= 1, ctx);
  assert.ok(isUInt(r.subtask, 4_294_967_295) && r.subtask < r.parallelism, ctx);
  assert.ok(isInt64(r.watermark_ms) && isUInt(r.emitted_at_ms), ctx);
}

function assertLateRow(r: LateClickRow, ctx: string): void {
  assert.ok(GRANS.has(r.granularity), ctx);
  assert.ok(typeof r.impression_id === 'string' && r.impression_id.length > 0, ctx);
  assert.ok(typeof r.event_type === 'string' && r.event_type.length > 0, ctx);
  for (const k of ['advertiser_id', 'campaign_id', 'ad_id'] as const) assert.ok(isUInt(r[k]) && r[k] >= 1, `${ctx}: ${k}`);
  assert.ok(isDateTime(r.window_start) && isDateTime(r.event_time), ctx);
  assert.ok(isUInt(r.event_time_ms) && isUInt(r.received_at_ms) && isInt64(r.watermark_ms) && isUInt(r.detected_at_ms), ctx);
  const start = r.window_start * 1000;
  assert.ok(start <= r.event_time_ms && r.event_time_ms < start + G_MS[r.granularity]!, `${ctx}: the window holds the click`);
}

function assertDeadLetter(d: DeadLetterRow, ctx: string): void {
  assert.ok(typeof d.reason === 'string' && d.reason.length > 0, `${ctx}: dead letter without a reason`);
  assert.ok(typeof d.stage === 'string' && d.stage.length > 0, ctx);
  assert.ok(typeof d.source_topic === 'string' && typeof d.detail === 'string', ctx);
  assert.ok(Number.isInteger(d.partition) && d.partition >= -(2 ** 31) && d.partition < 2 ** 31, `${ctx}: partition ${d.partition}`);
  // Int64: integral and in range (beyond 2^53 JSON carries it imprecisely, never as an exponent)
  assert.ok(Number.isInteger(d.offset) && Math.abs(d.offset) <= 2 ** 63, `${ctx}: offset ${d.offset}`);
  assert.match(d.key, /^[A-Za-z0-9+/]*={0,2}$/, ctx);
  assert.match(d.payload, /^[A-Za-z0-9+/]*={0,2}$/, ctx);
  assert.ok(isUInt(d.detected_at_ms), `${ctx}: detected_at_ms ${d.detected_at_ms}`);
  if (d.stage === 'sink') {
    assert.match(d.reason, /^[A-Z][A-Z0-9_]*$/, ctx);
    assert.notEqual(d.reason, UNEXPECTED_REASON, `${ctx}: the mapping threw unexpectedly: ${d.detail}`);
  }
}

/** raw_clicks rows (topic clicks-deduped), when this version of the sink has them. */
interface RawRow { impression_id: string; event_type: string; ad_id: number; campaign_id: number; advertiser_id: number; event_time: number; event_time_ms: number; received_at_ms: number }
const rawRows = (b: SinkBatch): RawRow[] => ((b as unknown as { raw?: RawRow[] }).raw ?? []);

function assertRawRow(r: RawRow, ctx: string): void {
  assert.ok(typeof r.impression_id === 'string' && r.impression_id.length > 0 && typeof r.event_type === 'string', ctx);
  for (const k of ['advertiser_id', 'campaign_id', 'ad_id'] as const) assert.ok(isUInt(r[k]) && r[k] >= 1, `${ctx}: ${k}`);
  assert.ok(isDateTime(r.event_time) && isInt64(r.event_time_ms) && isUInt(r.received_at_ms), ctx);
}

/** Rows of every table plus dead letters (owners are derived, commits are not outputs). */
function outputs(b: SinkBatch): number {
  return Object.entries(b)
    .filter(([k, v]) => Array.isArray(v) && k !== 'commits' && k !== 'owners')
    .reduce((n, [, v]) => n + (v as unknown[]).length, 0);
}

const describe = (m: SinkMessage) => `${m.topic}/${m.partition}@${m.offset} value=${m.value === null ? 'null' : m.value.toString('hex')}`;

// ------------------------------------------------------------------ properties

test('sink: every record alone becomes exactly one valid row or one dead letter with a reason', () => {
  fc.assert(
    fc.property(topicArb.chain((topic) => fc.tuple(fc.constant(topic), valueFor(topic))), fc.nat(7), ([topic, value], partition) => {
      cases++;
      const m: SinkMessage = { topic, partition, offset: '41', key: Buffer.from('k'), value };
      const ctx = describe(m);
      let b: SinkBatch;
      try {
        b = buildBatch([m], undefined, NOW);
      } catch (err) {
        assert.fail(`${ctx}: buildBatch threw ${(err as Error).stack}`);
      }
      assert.equal(outputs(b), 1, `${ctx}: ${JSON.stringify(b)}`);
      b.aggregates.forEach((r) => assertAggregateRow(r, ctx));
      b.watermarks.forEach((r) => assertWatermarkRow(r, ctx));
      b.late.forEach((r) => assertLateRow(r, ctx));
      b.deadLetters.forEach((d) => assertDeadLetter(d, ctx));
      rawRows(b).forEach((r) => assertRawRow(r, ctx));
      b.audit.forEach((r) => {
        assert.ok(isDateTime(r.window_start) && r.window_start % 60 === 0, `${ctx}: audit window`);
        assert.ok(Number.isInteger(r.bucket) && r.bucket >= 0 && r.bucket <= 255, `${ctx}: audit bucket`);
        for (const k of ['accepted', 'duplicates', 'rejected', 'version', 'emitted_at_ms'] as const) assert.ok(isUInt(r[k]), `${ctx}: audit ${k}`);
        assert.equal(r.version, r.accepted + r.duplicates + r.rejected, `${ctx}: audit version`);
      });
      if (b.aggregates.length + b.late.length + rawRows(b).length) assert.equal(b.owners.length, 1, ctx);
      for (const d of b.deadLetters) {
        if (d.stage !== 'sink') {
          assert.equal(topic, SINK_TOPICS.dlq, `${ctx}: a passthrough dead letter from another topic`);
          continue;
        }
        assert.deepEqual([d.source_topic, d.partition, d.offset], [topic, partition, 41], ctx);
        assert.equal(d.payload, (value ?? Buffer.alloc(0)).toString('base64'), `${ctx}: payload kept for replay`);
        assert.equal(d.detected_at_ms, NOW, ctx);
      }
      assert.deepEqual(b.commits, [{ topic, partition, offset: '42' }], ctx);
    }),
    params(2000),
  );
});

test('sink: batches never throw, commit past every record, and keep every outcome of their records', () => {
  const seen = new Map<string, number>();
  fc.assert(
    fc.property(messagesArb, (messages) => {
      cases++;
      const ctx = `batch of ${messages.length}: ${messages.map(describe).join(' | ').slice(0, 2000)}`;
      let b: SinkBatch;
      try {
        b = buildBatch(messages, undefined, NOW);
      } catch (err) {
        assert.fail(`${ctx}: buildBatch threw ${(err as Error).stack}`);
      }
      assert.equal(b.records, messages.length, ctx);
      // Offsets: one commit per (topic, partition) present, at the highest offset + 1.
      const expected = new Map<string, bigint>();
      for (const m of messages) {
        const k = `${m.topic}\u0000${m.partition}`;
        const o = BigInt(m.offset) + 1n;
        if ((expected.get(k) ?? -1n) < o) expected.set(k, o);
      }
      assert.equal(b.commits.length, expected.size, ctx);
      for (const c of b.commits) assert.equal(BigInt(c.offset), expected.get(`${c.topic}\u0000${c.partition}`), `${ctx}: commit ${JSON.stringify(c)}`);
      // Every record is accounted for: the batch holds what each record gives alone (rows of
      // one key collapse to the highest version; dead letters never collapse).
      const singles = messages.map((m) => buildBatch([m], undefined, NOW));
      assert.equal(b.deadLetters.length, singles.reduce((n, x) => n + x.deadLetters.length, 0), `${ctx}: dead letters`);
      const aggKey = (r: AggregateRow) => `${r.granularity}|${r.advertiser_id}|${r.campaign_id}|${r.ad_id}|${r.window_start}`;
      const maxVersion = new Map<string, bigint>();
      for (const x of singles) for (const r of x.aggregates) if ((maxVersion.get(aggKey(r)) ?? -1n) < BigInt(r.version)) maxVersion.set(aggKey(r), BigInt(r.version));
      assert.deepEqual(new Map(b.aggregates.map((r) => [aggKey(r), BigInt(r.version)])), maxVersion, `${ctx}: aggregates`);
      assert.deepEqual(new Set(b.watermarks.map((r) => r.subtask)), new Set(singles.flatMap((x) => x.watermarks.map((r) => r.subtask))), ctx);
      const lateKey = (r: LateClickRow) => `${r.granularity}|${r.impression_id}|${r.event_type}`;
      assert.deepEqual(new Set(b.late.map(lateKey)), new Set(singles.flatMap((x) => x.late.map(lateKey))), ctx);
      const rawKey = (r: RawRow) => `${r.impression_id}|${r.event_type}`;
      assert.deepEqual(new Set(rawRows(b).map(rawKey)), new Set(singles.flatMap((x) => rawRows(x).map(rawKey))), ctx);
      for (const r of rawRows(b)) assertRawRow(r, ctx);
      for (const r of b.aggregates) assertAggregateRow(r, ctx);
      for (const r of b.watermarks) assertWatermarkRow(r, ctx);
      for (const r of b.late) assertLateRow(r, ctx);
      for (const d of b.deadLetters) assertDeadLetter(d, ctx);
      for (const o of b.owners) assert.ok(isUInt(o.ad_id) && isUInt(o.campaign_id) && isUInt(o.advertiser_id) && o.ad_id >= 1, ctx);
      // Pure: the same records give the same rows (a re-written batch collapses).
      assert.deepEqual(buildBatch(messages, undefined, NOW), b, `${ctx}: deterministic`);
      for (const d of b.deadLetters) seen.set(d.stage === 'sink' ? d.reason : 'flink-dlq', (seen.get(d.reason) ?? 0) + 1);
      if (b.aggregates.length) seen.set('aggregate', 1);
      if (b.watermarks.length) seen.set('watermark', 1);
      if (b.late.length) seen.set('late', 1);
      if (rawRows(b).length) seen.set('raw', 1);
    }),
    params(700),
  );
  console.log(`sink outcomes seen: ${[...seen.keys()].sort().join(', ')}`);
  if (SCALE >= 1) {
    const required = ['aggregate', 'watermark', 'late', 'flink-dlq', 'PROTOBUF_DECODE_FAILED', 'INVALID_FIELD', 'INVALID_LATE_CLICK', 'INVALID_AGGREGATE', 'INVALID_WATERMARK', 'UNKNOWN_TOPIC'];
    if (DEDUPED_TOPIC) required.push('raw');
    for (const o of required) {
      assert.ok(seen.has(o), `outcome ${o} never generated`);
    }
  }
});

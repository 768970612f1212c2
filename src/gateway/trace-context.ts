// W3C Trace Context at the edge of the pipeline. Each request joins the caller's trace
// (a valid `traceparent` header) or starts a new one; the gateway is one span of it. The
// records it produces carry `traceparent = 00-<trace-id>-<gateway span id>-<flags>` as a
// Kafka header (Flink and the sink continue from there), and the HTTP answer carries the
// same value as `traceresponse` so a client can find its request in our logs.
// Invalid incoming headers are ignored, never an error (W3C: restart the trace).
import { randomFillSync } from 'node:crypto';

export interface TraceContext {
  /** 32 lowercase hex chars, not all zero. */
  traceId: string;
  /** The gateway's span for this request: 16 lowercase hex chars, not all zero. */
  spanId: string;
  /** 2 lowercase hex chars (bit 0 = sampled). */
  flags: string;
  /** `00-<traceId>-<spanId>-<flags>`: the outgoing `traceparent` and the `traceresponse`. */
  header: string;
}

export interface IncomingTraceparent {
  traceId: string;
  parentId: string;
  flags: string;
}

const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);
// 0-9 = 48-57, a-f = 97-102; uppercase hex is invalid in trace context.
const isLowerHex = (c: number) => (c >= 48 && c <= 57) || (c >= 97 && c <= 102);

function hexRun(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isLowerHex(s.charCodeAt(i))) return false;
  return true;
}

/**
 * Parses a `traceparent` header (W3C Trace Context, version-format `00`). Higher versions
 * are read forward-compatibly as the spec asks (the first four fields, then `-` or end);
 * version `ff`, uppercase hex, all-zero ids, wrong lengths and repeated headers are
 * invalid. Returns undefined for anything invalid.
 */
export function parseTraceparent(value: string | string[] | undefined): IncomingTraceparent | undefined {
  if (typeof value !== 'string') return undefined;
  const v = value.length > 55 && value.charCodeAt(value.length - 1) <= 32 ? value.trim() : value;
  if (v.length < 55) return undefined;
  if (!hexRun(v, 0, 2) || v[2] !== '-' || v[35] !== '-' || v[52] !== '-') return undefined;
  const version = v.slice(0, 2);
  if (version === 'ff') return undefined;
  if (version === '00' ? v.length !== 55 : v.length > 55 && v[55] !== '-') return undefined;
  if (!hexRun(v, 3, 35) || !hexRun(v, 36, 52) || !hexRun(v, 53, 55)) return undefined;
  const traceId = v.slice(3, 35);
  const parentId = v.slice(36, 52);
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return undefined;
  return { traceId, parentId, flags: v.slice(53, 55) };
}

// Random ids from a pooled buffer: one randomFillSync per 170 requests instead of two
// randomBytes allocations per request.
const POOL_BYTES = 24 * 170;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let poolAt = POOL_BYTES;

function randomHex(bytes: number, zero: string): string {
  for (;;) {
    if (poolAt + bytes > POOL_BYTES) {
      randomFillSync(pool);
      poolAt = 0;
    }
    const s = pool.toString('hex', poolAt, poolAt + bytes);
    poolAt += bytes;
    if (s !== zero) return s;
  }
}

export const newTraceId = (): string => randomHex(16, ZERO_TRACE);
export const newSpanId = (): string => randomHex(8, ZERO_SPAN);

/** The gateway's trace context for one request: joins a valid incoming trace or starts one (sampled). */
export function traceContextFor(traceparent: string | string[] | undefined): TraceContext {
  const incoming = parseTraceparent(traceparent);
  const traceId = incoming?.traceId ?? newTraceId();
  const flags = incoming?.flags ?? '01';
  const spanId = newSpanId();
  return { traceId, spanId, flags, header: `00-${traceId}-${spanId}-${flags}` };
}

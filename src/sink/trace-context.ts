// W3C trace context on the sink's Kafka records. The gateway starts a trace per click
// and writes `traceparent: 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`; the
// Flink job carries it onto every record it derives from a click (an aggregate: the most
// recent click that changed the window). The sink only reads it, to put trace ids into
// its log lines; a missing or invalid header is simply no trace.

export const TRACEPARENT = 'traceparent';

/** Header values as the KafkaJS-compatible API hands them over. */
export type KafkaHeaders = Readonly<Record<string, Buffer | string | readonly (Buffer | string)[] | undefined>>;

const HEX = /^[0-9a-f]+$/;

/** The trace id of a traceparent value (W3C rules: version 00 exactly 4 fields, ff forbidden, zero ids invalid), else undefined. */
export function parseTraceparent(raw: string | undefined): { traceId: string; spanId: string; flags: number } | undefined {
  if (raw === undefined) return undefined;
  const v = raw.trim();
  if (v.length < 55) return undefined;
  const version = v.slice(0, 2);
  if (!HEX.test(version) || version === 'ff') return undefined;
  if (version === '00' ? v.length !== 55 : v.length > 55 && v[55] !== '-') return undefined;
  const [, traceId, spanId, flags] = v.slice(0, 55).split('-');
  if (v[2] !== '-' || traceId?.length !== 32 || spanId?.length !== 16 || flags?.length !== 2) return undefined;
  if (!HEX.test(traceId) || !HEX.test(spanId) || !HEX.test(flags)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, flags: parseInt(flags, 16) };
}

/** Trace id from a record's headers (the last `traceparent` when repeated), or undefined. */
export function traceIdFromHeaders(headers: KafkaHeaders | undefined | null): string | undefined {
  if (!headers) return undefined;
  let h = headers[TRACEPARENT];
  if (Array.isArray(h)) h = h[h.length - 1];
  if (h === undefined) return undefined;
  try {
    return parseTraceparent(typeof h === 'string' ? h : (h as Buffer).toString('latin1'))?.traceId;
  } catch {
    return undefined;
  }
}

/**
 * Log fields for a group of records: the first `max` distinct trace ids and how many
 * records carried one. Bounded, so a 50,000-record batch still logs one short line.
 */
export function traceSummary(traceIds: Iterable<string | undefined>, max = 5): { trace_ids: string[]; traced: number } {
  const first = new Set<string>();
  let traced = 0;
  for (const id of traceIds) {
    if (id === undefined) continue;
    traced++;
    if (first.size < max) first.add(id);
  }
  return { trace_ids: [...first], traced };
}

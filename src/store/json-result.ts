// Rows from ClickHouse's `JSON` output format. Its `meta` names each column's type, so
// 64-bit integers can be turned into JS numbers whether the engine quoted them (servers
// by default) or not (chdb), without guessing from the value.

export interface JsonResult {
  meta?: { name: string; type: string }[];
  data?: Record<string, unknown>[];
}

function isInt64(type: string): boolean {
  return /^(Nullable\(|LowCardinality\()*U?Int(64|128|256)\)*$/.test(type);
}

function isInt64Array(type: string): boolean {
  return /^Array\((Nullable\()?U?Int64\)?\)$/.test(type);
}

function toNum(v: unknown): unknown {
  return typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
}

export function normaliseRows<T>(res: JsonResult): T[] {
  const data = res.data ?? [];
  const cols = (res.meta ?? []).filter((m) => isInt64(m.type) || isInt64Array(m.type));
  if (cols.length === 0) return data as T[];
  for (const row of data) {
    for (const c of cols) {
      const v = row[c.name];
      row[c.name] = Array.isArray(v) ? v.map(toNum) : toNum(v);
    }
  }
  return data as T[];
}

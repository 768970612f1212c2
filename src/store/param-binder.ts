// Client-side binding of ClickHouse `{name:Type}` placeholders, for engines without
// server-side query parameters (ClickHouse < 19.11, e.g. Debian's 18.16). Every value is
// type-checked against its declared type and rendered as a typed literal; a value that
// does not fit its type is refused, never coerced. Placeholders inside string literals,
// quoted identifiers and comments are left alone, as the server would. Arrays render as
// `[...]` literals: for membership write `has({ids:Array(UInt64)}, x)`, which works on
// every version (18.x rejects `x IN [..]`).

export type ParamValue = string | number | Date | readonly (string | number)[];

export class ParamBindError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ParamBindError';
  }
}

type ScalarType =
  | { kind: 'uint'; name: string; bits: 8 | 16 | 32 | 64 }
  | { kind: 'int'; name: string; bits: 8 | 16 | 32 | 64 }
  | { kind: 'float'; name: string }
  | { kind: 'string' }
  | { kind: 'datetime' }
  | { kind: 'date' };

export type ParamType = ScalarType | { kind: 'array'; of: ScalarType };

const UINT_MAX: Record<number, number> = { 8: 255, 16: 65535, 32: 4294967295, 64: Number.MAX_SAFE_INTEGER };
const INT_RANGE: Record<number, [number, number]> = {
  8: [-128, 127],
  16: [-32768, 32767],
  32: [-2147483648, 2147483647],
  64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};
// DateTime is a UInt32 of seconds.
const DATETIME_MAX_MS = 4294967295 * 1000;

function parseScalarType(t: string): ScalarType {
  const m = /^(U?)Int(8|16|32|64)$/.exec(t);
  if (m) {
    const bits = Number(m[2]) as 8 | 16 | 32 | 64;
    return m[1] ? { kind: 'uint', name: t, bits } : { kind: 'int', name: t, bits };
  }
  if (t === 'Float32' || t === 'Float64') return { kind: 'float', name: t };
  if (t === 'String') return { kind: 'string' };
  if (t === 'DateTime' || /^DateTime\(\s*'UTC'\s*\)$/.test(t)) return { kind: 'datetime' };
  if (t === 'Date') return { kind: 'date' };
  throw new ParamBindError(`unsupported parameter type "${t}"`);
}

/** Parse a placeholder type such as `UInt64`, `DateTime`, `Array(String)`. */
export function parseParamType(raw: string): ParamType {
  const t = raw.trim();
  const arr = /^Array\((.*)\)$/.exec(t);
  if (arr) return { kind: 'array', of: parseScalarType(arr[1]!.trim()) };
  return parseScalarType(t);
}

/** ClickHouse string literal: single-quoted, backslash escapes, control bytes as \xHH. */
export function quoteString(s: string): string {
  let out = "'";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === "'") out += "\\'";
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + "'";
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/** Epoch ms (Date or number) → whole seconds, checked against DateTime's range. */
export function toEpochMs(value: unknown, name: string): number {
  let ms: number;
  if (value instanceof Date) ms = value.getTime();
  else if (typeof value === 'number') ms = value;
  else throw new ParamBindError(`parameter "${name}": expected a Date or epoch milliseconds, got ${typeof value}`);
  if (!Number.isSafeInteger(ms)) throw new ParamBindError(`parameter "${name}": invalid time ${String(value)}`);
  if (ms < 0 || ms > DATETIME_MAX_MS) throw new ParamBindError(`parameter "${name}": time out of DateTime range`);
  return ms;
}

function utcText(ms: number, withTime: boolean): string {
  const d = new Date(ms);
  const date = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  return withTime ? `${date} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}` : date;
}

function renderScalar(t: ScalarType, v: unknown, name: string): string {
  switch (t.kind) {
    case 'uint': {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > UINT_MAX[t.bits]!) {
        throw new ParamBindError(`parameter "${name}": expected ${t.name} (a safe non-negative integer), got ${describe(v)}`);
      }
      return `to${t.name}(${v})`;
    }
    case 'int': {
      const [lo, hi] = INT_RANGE[t.bits]!;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < lo || v > hi) {
        throw new ParamBindError(`parameter "${name}": expected ${t.name} (a safe integer), got ${describe(v)}`);
      }
      // Parenthesised so a negative literal never merges with a preceding minus.
      return `to${t.name}(${v})`;
    }
    case 'float': {
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new ParamBindError(`parameter "${name}": expected a finite ${t.name}, got ${describe(v)}`);
      }
      return `to${t.name}(${String(v)})`;
    }
    case 'string':
      if (typeof v !== 'string') throw new ParamBindError(`parameter "${name}": expected String, got ${describe(v)}`);
      return quoteString(v);
    case 'datetime': {
      const ms = toEpochMs(v, name);
      return `toDateTime('${utcText(ms, true)}', 'UTC')`;
    }
    case 'date': {
      const ms = toEpochMs(v, name);
      return `toDate('${utcText(ms, false)}')`;
    }
  }
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'number') return `number ${v}`;
  if (v instanceof Date) return 'Date';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

const EMPTY_ARRAY: Record<string, string> = {
  UInt8: 'emptyArrayUInt8()', UInt16: 'emptyArrayUInt16()', UInt32: 'emptyArrayUInt32()', UInt64: 'emptyArrayUInt64()',
  Int8: 'emptyArrayInt8()', Int16: 'emptyArrayInt16()', Int32: 'emptyArrayInt32()', Int64: 'emptyArrayInt64()',
  Float32: 'emptyArrayFloat32()', Float64: 'emptyArrayFloat64()',
};

/** Render one value as a typed ClickHouse literal. Throws ParamBindError on any mismatch. */
export function renderValue(type: ParamType, value: unknown, name: string): string {
  if (type.kind !== 'array') {
    if (Array.isArray(value)) throw new ParamBindError(`parameter "${name}": array given for a scalar type`);
    return renderScalar(type, value, name);
  }
  if (!Array.isArray(value)) throw new ParamBindError(`parameter "${name}": expected an array, got ${describe(value)}`);
  if (value.length === 0) {
    const of = type.of;
    if (of.kind === 'uint' || of.kind === 'int' || of.kind === 'float') return EMPTY_ARRAY[of.name]!;
    if (of.kind === 'string') return 'emptyArrayString()';
    if (of.kind === 'datetime') return 'emptyArrayDateTime()';
    return 'emptyArrayDate()';
  }
  return '[' + value.map((v, i) => renderScalar(type.of, v, `${name}[${i}]`)).join(', ') + ']';
}

export interface Placeholder {
  readonly start: number;
  readonly end: number;
  readonly name: string;
  readonly type: ParamType;
}

const PLACEHOLDER = /\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]+?)\s*\}/y;

/** Find `{name:Type}` placeholders outside literals, quoted identifiers and comments. */
export function findPlaceholders(sql: string): Placeholder[] {
  const out: Placeholder[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (c === "'" || c === '"' || c === '`') {
      i = skipQuoted(sql, i, c);
    } else if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? n : nl + 1;
    } else if (c === '#' ) {
      // ClickHouse also accepts `#` line comments (newer versions); treat them as comments.
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? n : nl + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) throw new ParamBindError('unterminated comment in SQL');
      i = end + 2;
    } else if (c === '{') {
      PLACEHOLDER.lastIndex = i;
      const m = PLACEHOLDER.exec(sql);
      if (!m) throw new ParamBindError(`malformed placeholder at offset ${i}`);
      out.push({ start: i, end: i + m[0].length, name: m[1]!, type: parseParamType(m[2]!) });
      i += m[0].length;
    } else {
      i++;
    }
  }
  return out;
}

function skipQuoted(sql: string, start: number, q: string): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === '\\') {
      i += 2;
      continue;
    }
    if (c === q) {
      if (sql[i + 1] === q) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  throw new ParamBindError('unterminated quoted literal in SQL');
}

/** Check every placeholder has a value of the right type (used before server-side binding too). */
export function validateParams(sql: string, params: Record<string, unknown> = {}): Placeholder[] {
  const placeholders = findPlaceholders(sql);
  for (const p of placeholders) {
    if (!Object.prototype.hasOwnProperty.call(params, p.name)) throw new ParamBindError(`missing value for parameter "${p.name}"`);
    renderValue(p.type, params[p.name], p.name);
  }
  return placeholders;
}

/** Replace every placeholder with its typed literal. */
export function bindParams(sql: string, params: Record<string, unknown> = {}): string {
  const placeholders = findPlaceholders(sql);
  if (placeholders.length === 0) return sql;
  let out = '';
  let last = 0;
  for (const p of placeholders) {
    if (!Object.prototype.hasOwnProperty.call(params, p.name)) throw new ParamBindError(`missing value for parameter "${p.name}"`);
    out += sql.slice(last, p.start) + renderValue(p.type, params[p.name], p.name);
    last = p.end;
  }
  return out + sql.slice(last);
}

/**
 * Values for engines that bind server-side: Dates and epoch-ms for DateTime/Date
 * placeholders become epoch seconds (time-zone free); everything else is validated
 * and passed as is.
 */
export function serverParamValues(sql: string, params: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of validateParams(sql, params)) {
    const v = params[p.name];
    const isTime = (t: ParamType) => t.kind === 'datetime' || t.kind === 'date';
    if (p.type.kind === 'date' || (p.type.kind === 'array' && p.type.of.kind === 'date')) {
      out[p.name] = Array.isArray(v) ? v.map((x, i) => utcText(toEpochMs(x, `${p.name}[${i}]`), false)) : utcText(toEpochMs(v, p.name), false);
    } else if (isTime(p.type) || (p.type.kind === 'array' && isTime(p.type.of))) {
      out[p.name] = Array.isArray(v)
        ? v.map((x, i) => Math.floor(toEpochMs(x, `${p.name}[${i}]`) / 1000))
        : Math.floor(toEpochMs(v, p.name) / 1000);
    } else {
      out[p.name] = v;
    }
  }
  return out;
}

// Human console lines for `adclick up` on a terminal. Files, pipes and CI keep the raw
// pino JSON; only what a person watches is rewritten, so nothing that parses logs breaks.
//
// Layout: `[name]   HH:MM:SS.mmm LEVEL module - message  key=value ...`, then the error
// and its causes on indented continuation lines. The name comes first, and the time and
// level columns copy the Kafka broker's log4j pattern (`%d{HH:mm:ss.SSS} %-5p %c{1} - %m`),
// so broker lines, which pass through untouched, line up with the Node services' lines.

export type ConsoleFormat = 'human' | 'raw';

export interface HumanFormatOptions {
  /** ANSI colours (default off). */
  readonly color?: boolean;
  /** SGR code of the `[name]` colour, e.g. 36 for cyan (default: none). */
  readonly nameColor?: number | string;
  /** Pad names to this many characters so the columns line up (default MIN_NAME_WIDTH). */
  readonly nameWidth?: number;
  /** Print error stacks at every level, not only fatal (for LOG_LEVEL=debug). */
  readonly stacks?: boolean;
  /** Clock for lines without a usable `time` (default Date.now). */
  readonly now?: () => number;
}

/** Fits every process name of the local stack (kafka, flink, serving, gateway, stack). */
export const MIN_NAME_WIDTH = 7;

// Maps, not object literals: a level read from the line may be "__proto__".
const LEVEL_NAMES = new Map([[10, 'trace'], [20, 'debug'], [30, 'info'], [40, 'warn'], [50, 'error'], [60, 'fatal']]);
const LEVEL_VALUES = new Map([...LEVEL_NAMES].map(([v, n]) => [n, v]));
const LEVEL_COLORS = new Map([['trace', '90'], ['debug', '90'], ['info', '32'], ['warn', '33'], ['error', '31'], ['fatal', '1;31']]);

// Present on every line or already shown in the columns; repeating them is noise.
const SKIPPED = new Set(['level', 'time', 'msg', 'hostname', 'v', 'module']);
const ERROR_OWN = new Set(['type', 'message', 'stack', 'cause', 'aggregateErrors', 'raw']);
const MAX_VALUE = 120;
const MAX_CAUSES = 10;
const SIMPLE = /^[^\s"'=\\]+$/;
// After `key=` an `=` is unambiguous, so URLs with a query string stay unquoted.
const SIMPLE_VALUE = /^[^\s"'\\]+$/;

/**
 * One output line of process `name` as one human block: a pino JSON line becomes a
 * formatted line plus indented continuation lines (multi-line message, error, causes);
 * anything else (JVM log4j text, JSON that does not parse, JSON that is not a log event)
 * is returned unchanged behind the name. No trailing newline. Never throws.
 */
export function formatLine(name: string, line: string, opts: HumanFormatOptions = {}): string {
  let prefix: string;
  try {
    prefix = namePrefix(name, opts);
  } catch {
    prefix = `[${String(name)}] `;
  }
  const event = parseEvent(line);
  if (!event) return prefix + line;
  try {
    return formatEvent(prefix, name, event, opts, line.indexOf('"pid":') !== line.lastIndexOf('"pid":'));
  } catch {
    return prefix + line;
  }
}

/** A pino destination that writes each record through formatLine (synchronously when `write` is). */
export function humanDestination(
  name: string,
  opts: HumanFormatOptions & { readonly write?: (text: string) => unknown } = {},
): { write(chunk: string): void } {
  const write = opts.write ?? ((t: string) => process.stdout.write(t));
  return {
    write(chunk: string) {
      let out = '';
      for (const line of String(chunk).split('\n')) if (line) out += formatLine(name, line, opts) + '\n';
      if (out) write(out);
    },
  };
}

/** Human on a terminal, raw lines for files, pipes and CI. */
export function defaultConsoleFormat(stream: { readonly isTTY?: boolean } = process.stdout): ConsoleFormat {
  return stream.isTTY ? 'human' : 'raw';
}

/** Colours only on a terminal, and never with NO_COLOR (https://no-color.org). */
export function defaultConsoleColor(stream: { readonly isTTY?: boolean } = process.stdout): boolean {
  return Boolean(stream.isTTY) && !process.env.NO_COLOR;
}

type Json = Record<string, unknown>;

function parseEvent(line: string): Json | undefined {
  const t = line.trim();
  if (!t.startsWith('{') || !t.endsWith('}')) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Json;
  return 'level' in o || 'msg' in o ? o : undefined;
}

function formatEvent(prefix: string, name: string, e: Json, opts: HumanFormatOptions, twoPids: boolean): string {
  const c = painter(opts.color === true);
  const level = levelOf(e.level);
  const time = clock(e.time, opts.now ?? Date.now);
  const head = `${prefix}${c('2', time)} ${c(LEVEL_COLORS.get(level.name) ?? '', level.name.toUpperCase().padEnd(5).slice(0, 5))} `;
  const indent = ' '.repeat(visibleLength(prefix) + time.length + 7);

  const msgLines = (typeof e.msg === 'string' ? e.msg : e.msg === undefined ? '' : render(e.msg)).replace(/\r\n/g, '\n').split('\n').map(clean);
  const module = typeof e.module === 'string' && e.module ? clean(e.module) + (msgLines[0] ? ' - ' : '') : '';
  const errors = Object.entries(e).filter(([k, v]) => isError(k, v));
  const fields: string[] = [];
  for (const [k, v] of Object.entries(e)) {
    if (SKIPPED.has(k) || (k === 'service' && v === name) || isError(k, v)) continue;
    // pino's base pid is noise, but a second `pid` key (the launcher's records about a child)
    // is the child's, and JSON.parse keeps the last one.
    if (k === 'pid' && !twoPids) continue;
    const key = keyText(k);
    if (isObject(v) && Object.keys(v).length > 0 && Object.keys(v).length <= 8) {
      for (const [sk, sv] of Object.entries(v)) fields.push(`${c('2', `${key}.${keyText(sk)}=`)}${value(sv)}`);
    } else {
      fields.push(`${c('2', `${key}=`)}${value(v)}`);
    }
  }
  const out = [head + module + msgLines[0] + (fields.length ? `  ${fields.join(' ')}` : '')];
  for (const more of msgLines.slice(1)) out.push(indent + more);

  const stacks = opts.stacks === true || level.value >= 60;
  const labelColor = level.value >= 50 ? '31' : level.value >= 40 ? '33' : '';
  for (const [, err] of errors) {
    for (const link of errorChain(err)) {
      const msg = link.message.replace(/\r\n/g, '\n').split('\n').map(clean);
      const props = link.props.length ? `  ${link.props.join(' ')}` : '';
      out.push(`${indent}${c(labelColor, `${link.label}:`)} ${link.type ? `${clean(link.type)}: ` : ''}${msg[0]}${props}`);
      for (const more of msg.slice(1)) out.push(`${indent}  ${more}`);
      if (stacks) for (const f of link.frames) out.push(`${indent}  ${c('2', clean(f))}`);
    }
  }
  return out.join('\n');
}

/** pino's `err`, or an error-like `error` (a string `error` is an ordinary field). */
function isError(k: string, v: unknown): boolean {
  if (k === 'err') return typeof v === 'string' || isObject(v);
  return k === 'error' && isObject(v) && (typeof v.message === 'string' || typeof v.stack === 'string');
}

interface ErrorLink {
  readonly label: string;
  readonly type: string;
  readonly message: string;
  readonly props: string[];
  readonly frames: string[];
}

/**
 * The error and its causes, outermost first. pino's serializer folds causes into one
 * `message` ("outer: inner") and one `stack` ("...\ncaused by: ..."); the stack is where
 * each cause's own type and message survive. An explicit `cause` object (other
 * serializers, hand-built objects) is followed instead.
 */
function errorChain(err: unknown, label = 'error', depth = 0): ErrorLink[] {
  if (!isObject(err)) return [{ label, type: '', message: typeof err === 'string' ? err : render(err), props: [], frames: [] }];
  const type = typeof err.type === 'string' ? err.type : typeof err.name === 'string' ? err.name : '';
  let message = typeof err.message === 'string' ? err.message : err.message === undefined ? '' : render(err.message);
  const segments = typeof err.stack === 'string' ? splitStack(err.stack) : [];
  const props: string[] = [];
  for (const [k, v] of Object.entries(err)) {
    if (ERROR_OWN.has(k) || (k === 'name' && v === type)) continue;
    props.push(`${keyText(k)}=${value(v)}`);
  }
  const self = (msg: string): ErrorLink => ({ label, type: type || segments[0]?.type || '', message: msg, props, frames: segments[0]?.frames ?? [] });

  let causes: ErrorLink[] = [];
  if (depth < MAX_CAUSES && (typeof err.cause === 'string' || isObject(err.cause))) {
    causes = errorChain(err.cause, 'caused by', depth + 1);
  } else if (segments.length > 1) {
    causes = segments.slice(1, 1 + MAX_CAUSES).map((s) => ({ label: 'caused by', type: s.type, message: s.message, props: [], frames: s.frames }));
    const folded = causes.map((l) => `: ${l.message}`).join('');
    if (message.endsWith(folded)) message = message.slice(0, message.length - folded.length);
  }
  const aggregated = Array.isArray(err.aggregateErrors) && depth < MAX_CAUSES
    ? err.aggregateErrors.slice(0, MAX_CAUSES).flatMap((a) => errorChain(a, 'aggregated', MAX_CAUSES))
    : [];
  return [self(message), ...causes, ...aggregated];
}

interface StackSegment { readonly type: string; readonly message: string; readonly frames: string[] }

function splitStack(stack: string): StackSegment[] {
  return stack.split(/\ncaused by: /).map((seg) => {
    const lines = seg.split('\n');
    // V8 frames only: a JVM trace quoted inside a message ("\tat org...") is message text.
    let i = lines.findIndex((l) => /^ {4}at /.test(l));
    if (i < 0) i = lines.length;
    const header = lines.slice(0, i).join('\n');
    const m = /^([A-Za-z_$][\w$.]*)(?::\s?([\s\S]*))?$/.exec(header);
    return {
      type: m ? m[1]! : '',
      message: m ? m[2] ?? '' : header,
      frames: lines.slice(i).map((l) => l.trim()).filter(Boolean),
    };
  });
}

function levelOf(v: unknown): { name: string; value: number } {
  if (typeof v === 'number' && Number.isFinite(v)) {
    const exact = LEVEL_NAMES.get(v);
    if (exact) return { name: exact, value: v };
    const name = v >= 60 ? 'fatal' : v >= 50 ? 'error' : v >= 40 ? 'warn' : v >= 30 ? 'info' : v >= 20 ? 'debug' : 'trace';
    return { name, value: v };
  }
  if (typeof v === 'string') {
    const name = clean(v.toLowerCase());
    return { name: name || 'info', value: LEVEL_VALUES.get(name) ?? 30 };
  }
  return { name: 'info', value: 30 };
}

function clock(t: unknown, now: () => number): string {
  let ms = typeof t === 'number' ? t : typeof t === 'string' ? Date.parse(t) : NaN;
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) ms = now();
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return '--:--:--.---';
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function value(v: unknown): string {
  let s: string;
  if (typeof v === 'string') s = SIMPLE_VALUE.test(v) ? v : JSON.stringify(v);
  else if (Array.isArray(v) && v.length > 0 && v.every((x) => (typeof x === 'string' && SIMPLE_VALUE.test(x) && !x.includes(',')) || typeof x === 'number' || typeof x === 'boolean')) s = v.join(',');
  else s = render(v);
  s = clean(s);
  return s.length > MAX_VALUE ? `${s.slice(0, MAX_VALUE - 1)}…` : s;
}

function render(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/**
 * Control characters from a log's content (a client-supplied URL, a message) must not
 * reach the terminal as escape sequences or carriage returns; shown escaped instead.
 */
function clean(s: string): string {
  return s.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

type Painter = (code: string, s: string) => string;
function painter(on: boolean): Painter {
  return (code, s) => (on && code ? `\x1b[${code}m${s}\x1b[0m` : s);
}

function namePrefix(name: string, opts: HumanFormatOptions): string {
  const label = `[${clean(String(name))}]`.padEnd(Math.max(0, Math.min(opts.nameWidth ?? MIN_NAME_WIDTH, 64)) + 2);
  const code = opts.nameColor === undefined ? '' : String(opts.nameColor);
  return `${painter(opts.color === true)(code, label)} `;
}

const keyText = (k: string) => (SIMPLE.test(k) ? clean(k) : clean(JSON.stringify(k)));
const visibleLength = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { formatLine, humanDestination } from '../../../src/stack/console-format.ts';
import { createLogger } from '../../../src/shared/logger.ts';
import { Supervisor } from '../../../src/stack/supervisor.ts';

// Local wall-clock time, whatever TZ the tests run in.
const at = new Date(2025, 0, 2, 13, 4, 5, 678);
const HMS = '13:04:05.678';
const ESC = '\x1b';
const pinoLine = (fields: Record<string, unknown>) =>
  JSON.stringify({ level: 30, time: at.toISOString(), service: 'serving', pid: 4242, hostname: 'box', ...fields });

/** Real pino JSON lines, as a child writes them to its pipe. */
function captureJson(service = 'serving', level = 'info') {
  const lines: string[] = [];
  const logger = createLogger(service, level, { stdout: { isTTY: false, write: (t: string) => { lines.push(...t.split('\n').filter(Boolean)); } } });
  return { logger, lines };
}

test('pino lines of every level: time, padded name, level label, message', () => {
  const labels: [number, string][] = [[10, 'TRACE'], [20, 'DEBUG'], [30, 'INFO '], [40, 'WARN '], [50, 'ERROR'], [60, 'FATAL']];
  for (const [level, label] of labels) {
    assert.equal(formatLine('serving', pinoLine({ level, msg: 'query API listening' })), `[serving] ${HMS} ${label} query API listening`);
  }
  assert.equal(formatLine('kafka', pinoLine({ service: 'kafka', msg: 'x' })), `[kafka]   ${HMS} INFO  x`, 'short names padded to the common width');
  assert.equal(formatLine('serving', pinoLine({ level: 35, msg: 'x' })), `[serving] ${HMS} INFO  x`, 'custom levels round down');
  assert.equal(formatLine('serving', pinoLine({ level: 'warn', msg: 'x' })), `[serving] ${HMS} WARN  x`, 'label levels too');
  const epoch = JSON.stringify({ level: 30, time: at.getTime(), msg: 'epoch ms' });
  assert.equal(formatLine('gateway', epoch), `[gateway] ${HMS} INFO  epoch ms`);
  const untimed = formatLine('gateway', JSON.stringify({ level: 30, msg: 'no time' }), { now: () => at.getTime() });
  assert.equal(untimed, `[gateway] ${HMS} INFO  no time`);
});

test('module, extra fields inline; pid, hostname, time and the own service left out', () => {
  const line = pinoLine({
    module: 'sink', msg: 'batch written', rows: 1200, partitions: [0, 1, 2], trace_id: 'a1b2c3', url: 'http://127.0.0.1:8081/v1/x?y=1',
    committed: true, note: 'two words', empty: '', missing: null, req: { method: 'POST', url: '/v1/clicks' },
  });
  assert.equal(formatLine('serving', line),
    `[serving] ${HMS} INFO  sink - batch written  rows=1200 partitions=0,1,2 trace_id=a1b2c3 url=http://127.0.0.1:8081/v1/x?y=1 ` +
    'committed=true note="two words" empty="" missing=null req.method=POST req.url=/v1/clicks');
  assert.match(formatLine('stack', pinoLine({ msg: 'x' })), /service=serving$/, 'another service than the name is kept');
  assert.equal(formatLine('stack', `${pinoLine({ service: 'stack' }).slice(0, -1)},"process":"kafka","pid":777,"msg":"process started"}`),
    `[stack]   ${HMS} INFO  process started  pid=777 process=kafka`, 'a pid next to `process` is the child\'s');
  const long = formatLine('stack', pinoLine({ msg: 'x', args: Array.from({ length: 80 }, (_, i) => `--arg-${i}`) }));
  assert.ok(long.length < 200 && long.endsWith('…'), 'long values are cut');
});

test('an error with a cause chain: one block, own message per link, no stack below fatal', () => {
  const { logger, lines } = captureJson('stack');
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
  const ping = new Error('redis ping failed', { cause: refused });
  class SupervisorError extends Error {
    constructor(message: string, readonly code: string, options?: ErrorOptions) { super(message, options); this.name = 'SupervisorError'; }
  }
  const top = new SupervisorError('gateway did not become healthy', 'NOT_HEALTHY', { cause: ping });
  logger.error({ err: top, process: 'gateway' }, 'the stack did not come up');
  logger.fatal({ err: top }, 'giving up');
  const indent = ' '.repeat(`[stack]   ${HMS} ERROR `.length);
  const [error, fatal] = lines.map((l) => formatLine('stack', l, { now: () => at.getTime() }).replace(/^\[stack\] {3}\d\d:\d\d:\d\d\.\d{3}/, `[stack]   ${HMS}`));
  assert.equal(error, [
    `[stack]   ${HMS} ERROR the stack did not come up  process=gateway`,
    `${indent}error: SupervisorError: gateway did not become healthy  code=NOT_HEALTHY`,
    `${indent}caused by: Error: redis ping failed`,
    `${indent}caused by: Error: connect ECONNREFUSED 127.0.0.1:6379`,
  ].join('\n'));
  const f = fatal!.split('\n');
  assert.equal(f[1], `${indent}error: SupervisorError: gateway did not become healthy  code=NOT_HEALTHY`);
  assert.match(f[2]!, /^ +at .*console-format\.test\.ts/, 'fatal shows the stack under its link');
  assert.equal(f.filter((l) => l.includes('caused by:')).length, 2);
  const debug = formatLine('stack', lines[0]!, { stacks: true }).split('\n');
  assert.ok(debug.filter((l) => /^ +at /.test(l)).length >= 3, 'LOG_LEVEL=debug shows stacks at any level');
});

test('hand-built errors: a string err, an explicit cause object, a multi-line message', () => {
  const indent = ' '.repeat(`[stack]   ${HMS} WARN  `.length);
  assert.equal(formatLine('stack', pinoLine({ level: 40, service: 'stack', msg: 'could not create the demo API key', err: 'fetch failed' })),
    `[stack]   ${HMS} WARN  could not create the demo API key\n${indent}error: fetch failed`);
  const nested = pinoLine({ level: 50, service: 'stack', msg: 'x', err: { type: 'A', message: 'outer', cause: { type: 'B', message: 'inner', cause: 'root' } } });
  assert.deepEqual(formatLine('stack', nested).split('\n').slice(1).map((l) => l.trim()), ['error: A: outer', 'caused by: B: inner', 'caused by: root']);
  const multi = pinoLine({ level: 50, service: 'stack', msg: 'start failed', err: { type: 'SupervisorError', message: 'flink exited while starting; last output:\nline one\n\tat org.Foo.bar(Foo.java:1)' } });
  assert.deepEqual(formatLine('stack', multi).split('\n').slice(1), [
    `${indent}error: SupervisorError: flink exited while starting; last output:`, `${indent}  line one`, `${indent}  \tat org.Foo.bar(Foo.java:1)`,
  ]);
  assert.equal(formatLine('stack', pinoLine({ service: 'stack', msg: 'two\nlines' })), `[stack]   ${HMS} INFO  two\n${' '.repeat(indent.length)}lines`);
  assert.match(formatLine('stack', pinoLine({ service: 'stack', msg: 'x', error: 'timeout' })), /error=timeout$/, 'a string `error` is a field');
});

test('JVM text lines, malformed and non-log JSON pass through unchanged behind the name', () => {
  const kafka = '13:04:05.678 INFO  KafkaRaftServer - [KafkaRaftServer nodeId=1] Kafka Server started';
  assert.equal(formatLine('kafka', kafka), `[kafka]   ${kafka}`);
  const flink = '2025-01-02T13:04:05,678 WARN  o.a.f.r.c.CheckpointCoordinator - Failed to trigger checkpoint {"x":1}';
  assert.equal(formatLine('flink', flink), `[flink]   ${flink}`);
  for (const raw of ['{"level":30,"msg":"cut off', '{"level":30,"msg":"x",}', '{not json}', '{"a":1}', '[1,2]', '', '   ', 'ADCLICK_FLINK_READY']) {
    assert.equal(formatLine('flink', raw), `[flink]   ${raw}`);
  }
});

test('colour: level colours, dim time, coloured name; none when off', () => {
  const warn = formatLine('gateway', pinoLine({ level: 40, msg: 'slow' }), { color: true, nameColor: 32 });
  assert.ok(warn.startsWith(`${ESC}[32m[gateway]${ESC}[0m ${ESC}[2m${HMS}${ESC}[0m ${ESC}[33mWARN ${ESC}[0m slow`), JSON.stringify(warn));
  const error = formatLine('gateway', pinoLine({ level: 50, msg: 'x', err: { type: 'Error', message: 'y' }, port: 1 }), { color: true });
  assert.ok(error.includes(`${ESC}[31mERROR${ESC}[0m`) && error.includes(`${ESC}[31merror:${ESC}[0m Error: y`) && error.includes(`${ESC}[2mport=${ESC}[0m1`));
  assert.ok(formatLine('gateway', pinoLine({ level: 60, msg: 'x' }), { color: true }).includes(`${ESC}[1;31mFATAL`));
  assert.ok(!formatLine('gateway', pinoLine({ level: 50, msg: 'x', err: 'y' }), { color: false }).includes(ESC));
});

test('control characters from log content reach the terminal escaped', () => {
  const out = formatLine('gateway', pinoLine({ msg: `bad${ESC}[2Jurl\rok`, path: `/x${ESC}]0;pwned\x07` }));
  assert.ok(!/[\x00-\x08\x0b-\x1f\x7f]/.test(out), JSON.stringify(out));
  assert.ok(out.includes('bad\\x1b[2Jurl\\x0dok'));
});

// What formatLine does to message text: CRLF becomes a line break, other controls are escaped.
const shown = (s: string) => s.replace(/\r\n/g, '\n').split('\n')
  .map((l) => l.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`));

test('property: never throws; non-events unchanged; events are one block that keeps the message', () => {
  const name = fc.constantFrom('kafka', 'flink', 'serving', 'gateway', 'stack', 'a-much-longer-name');
  fc.assert(fc.property(name, fc.string({ unit: 'binary' }), fc.boolean(), (n, line, color) => {
    const out = formatLine(n, line, { color });
    assert.equal(typeof out, 'string');
    if (!line.trim().startsWith('{') && !line.includes('\n')) assert.equal(out, formatLine(n, '', { color }) + line);
  }), { numRuns: 500 });
  fc.assert(fc.property(name, fc.jsonValue(), fc.boolean(), (n, v, color) => {
    assert.equal(typeof formatLine(n, JSON.stringify(v) ?? '', { color }), 'string');
  }), { numRuns: 300 });
  const event = fc.record({
    level: fc.oneof(fc.constantFrom(10, 20, 30, 40, 50, 60), fc.integer(), fc.string()),
    time: fc.oneof(fc.integer(), fc.string(), fc.constant(at.toISOString())),
    msg: fc.string({ unit: 'binary' }),
    module: fc.option(fc.string(), { nil: undefined }),
    err: fc.option(fc.oneof(fc.string(), fc.record({ type: fc.string(), message: fc.string({ unit: 'binary' }), stack: fc.string({ unit: 'binary' }), code: fc.jsonValue() }, { requiredKeys: [] })), { nil: undefined }),
  }, { requiredKeys: ['msg'] });
  fc.assert(fc.property(name, event, fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 6 }), fc.boolean(), fc.boolean(), (n, e, extra, color, stacks) => {
    const out = formatLine(n, JSON.stringify({ ...extra, ...e }), { color, stacks });
    const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
    const [first, ...rest] = plain.split('\n');
    assert.ok(first!.startsWith(`[${n}]`), first);
    for (const l of rest) assert.match(l, /^ {2,}/, 'continuation lines are indented under the event');
    assert.ok(!/[\x00-\x08\x0b-\x1f\x7f]/.test(plain), 'no stray control characters');
    if (!color) assert.ok(!out.includes(ESC));
    for (const piece of shown(e.msg)) assert.ok(plain.includes(piece), `message text "${piece}" kept`);
  }), { numRuns: 500 });
});

test('humanDestination: pino through the formatter, one write per record', () => {
  const writes: string[] = [];
  const dest = humanDestination('stack', { write: (t) => writes.push(t) });
  dest.write(`${pinoLine({ service: 'stack', msg: 'one' })}\n`);
  dest.write(`${pinoLine({ service: 'stack', msg: 'two' })}\n${pinoLine({ service: 'stack', msg: 'three' })}\n`);
  assert.deepEqual(writes, [`[stack]   ${HMS} INFO  one\n`, `[stack]   ${HMS} INFO  two\n[stack]   ${HMS} INFO  three\n`]);
});

test('createLogger: human lines on a TTY, JSON otherwise', () => {
  const tty: string[] = [];
  const human = createLogger('stack', 'info', { stdout: { isTTY: true, write: (t: string) => tty.push(t) }, color: false });
  human.child({ module: 'topics' }).info({ topics: ['clicks', 'aggregates'], partitions: 4 }, 'topics ready');
  assert.match(tty.join(''), /^\[stack\] {3}\d\d:\d\d:\d\d\.\d{3} INFO {2}topics - topics ready {2}topics=clicks,aggregates partitions=4\n$/);
  const { logger, lines } = captureJson('gateway');
  logger.info({ port: 8080 }, 'listening');
  assert.equal(lines.length, 1);
  assert.deepEqual({ ...JSON.parse(lines[0]!), time: undefined, pid: undefined }, { level: 30, service: 'gateway', port: 8080, msg: 'listening', time: undefined, pid: undefined });
});

test('supervisor default output: human lines on a TTY, the raw lines otherwise', async () => {
  const script = [
    `console.log(JSON.stringify({ level: 30, time: ${at.getTime()}, service: 'serving', pid: 1, hostname: 'h', msg: 'query API listening', port: 8081 }));`,
    `console.error('13:04:05.678 INFO  KafkaServer - started');`,
    // Stays up until stopped: a child that exits before its first health probe is, rightly,
    // "exited while starting" (a fast exit raced that probe on a loaded CI box).
    'setInterval(() => undefined, 60_000);',
  ].join('\n');
  const run = async (isTTY: boolean, format?: 'human' | 'raw') => {
    const dir = mkdtempSync(join(tmpdir(), 'adclick-console-'));
    const out: string[] = [];
    const logger = createLogger('stack', 'silent', { format: 'json', stdout: { write: () => undefined } });
    const sup = new Supervisor({ runDir: dir, logger, pdeathsig: false, color: false, format, stdout: { isTTY, write: (t: string) => out.push(t) } });
    try {
      await sup.start({ name: 'serving', command: process.execPath, args: ['-e', script] });
      for (let i = 0; i < 250 && out.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
      await sup.stopAll();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return out.sort();
  };
  const json = `{"level":30,"time":${at.getTime()},"service":"serving","pid":1,"hostname":"h","msg":"query API listening","port":8081}`;
  assert.deepEqual(await run(true), [`[serving] ${HMS} INFO  query API listening  port=8081\n`, '[serving] 13:04:05.678 INFO  KafkaServer - started\n'].sort());
  assert.deepEqual(await run(false), [`[serving] ${json}\n`, '[serving] 13:04:05.678 INFO  KafkaServer - started\n'].sort());
  assert.deepEqual(await run(true, 'raw'), [`[serving] ${json}\n`, '[serving] 13:04:05.678 INFO  KafkaServer - started\n'].sort());
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bindParams, findPlaceholders, ParamBindError, quoteString, serverParamValues } from '../../../src/store/param-binder.ts';

test('integers: typed literals, only safe integers in range', () => {
  assert.equal(bindParams('SELECT {a:UInt64}', { a: 42 }), 'SELECT toUInt64(42)');
  assert.equal(bindParams('SELECT {a:Int32}', { a: -5 }), 'SELECT toInt32(-5)');
  assert.equal(bindParams('x = {a:UInt32}', { a: 4294967295 }), 'x = toUInt32(4294967295)');
  for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53, '1', '1 OR 1=1', null, undefined, true, [1]]) {
    assert.throws(() => bindParams('SELECT {a:UInt64}', { a: bad }), ParamBindError, String(bad));
  }
  assert.throws(() => bindParams('SELECT {a:UInt32}', { a: 4294967296 }), ParamBindError);
  assert.throws(() => bindParams('SELECT {a:UInt8}', { a: 256 }), ParamBindError);
  assert.throws(() => bindParams('SELECT {a:Int8}', { a: -129 }), ParamBindError);
});

test('strings: ClickHouse quoting, injection attempts stay inside the literal', () => {
  assert.equal(quoteString("it's"), "'it\\'s'");
  assert.equal(quoteString('a\\b'), "'a\\\\b'");
  assert.equal(quoteString('l1\nl2\r\t\u0000\u001b\u007f'), "'l1\\nl2\\r\\t\\x00\\x1b\\x7f'");
  const evil = "x' OR '1'='1'; DROP TABLE adclick.api_keys; --";
  const sql = bindParams('SELECT * FROM t WHERE k = {k:String} AND a = {a:UInt64}', { k: evil, a: 1 });
  assert.equal(sql, "SELECT * FROM t WHERE k = 'x\\' OR \\'1\\'=\\'1\\'; DROP TABLE adclick.api_keys; --' AND a = toUInt64(1)");
  // A trailing backslash cannot escape the closing quote.
  assert.equal(bindParams('{k:String}', { k: 'a\\' }), "'a\\\\'");
  assert.equal(bindParams('{k:String}', { k: "\\'" }), "'\\\\\\''");
  // A value that looks like a placeholder is not expanded again.
  assert.equal(bindParams('{a:String} {b:String}', { a: '{b:String}', b: 'x' }), "'{b:String}' 'x'");
  assert.throws(() => bindParams('{k:String}', { k: 5 }), ParamBindError);
  assert.equal(bindParams('{k:String}', { k: 'ünï 🎯' }), "'ünï 🎯'");
});

test('DateTime from Date or epoch ms, in UTC; Date', () => {
  const t = Date.UTC(2026, 10, 27, 10, 5, 9);
  assert.equal(bindParams('{t:DateTime}', { t }), "toDateTime('2026-11-27 10:05:09', 'UTC')");
  assert.equal(bindParams("{t:DateTime('UTC')}", { t: new Date(t + 999) }), "toDateTime('2026-11-27 10:05:09', 'UTC')");
  assert.equal(bindParams('{d:Date}', { d: t }), "toDate('2026-11-27')");
  for (const bad of ['2026-11-27', new Date(NaN), -1, 2 ** 60, 1.5]) assert.throws(() => bindParams('{t:DateTime}', { t: bad }), ParamBindError);
  assert.throws(() => bindParams("{t:DateTime('Europe/Paris')}", { t }), ParamBindError);
});

test('arrays', () => {
  assert.equal(bindParams('has({ids:Array(UInt64)}, x)', { ids: [1, 2] }), 'has([toUInt64(1), toUInt64(2)], x)');
  assert.equal(bindParams('{ids:Array(UInt64)}', { ids: [] }), 'emptyArrayUInt64()');
  assert.equal(bindParams('{s:Array(String)}', { s: ["a'", 'b'] }), "['a\\'', 'b']");
  assert.equal(bindParams('{s:Array(String)}', { s: [] }), 'emptyArrayString()');
  assert.throws(() => bindParams('{ids:Array(UInt64)}', { ids: [1, -2] }), /ids\[1\]/);
  assert.throws(() => bindParams('{ids:Array(UInt64)}', { ids: 1 }), ParamBindError);
  assert.throws(() => bindParams('{a:UInt64}', { a: [1] }), ParamBindError);
});

test('placeholders inside literals, identifiers and comments are not bound', () => {
  const sql = "SELECT '{a:UInt64}', `{a:UInt64}`, \"{a:UInt64}\" -- {a:UInt64}\n /* {a:UInt64} */ {a:UInt64}, 'it''s {a:UInt64}', 'x\\'{a:UInt64}'";
  assert.equal(findPlaceholders(sql).length, 1);
  assert.ok(bindParams(sql, { a: 1 }).endsWith("toUInt64(1), 'it''s {a:UInt64}', 'x\\'{a:UInt64}'"));
  assert.equal(bindParams('SELECT 1', {}), 'SELECT 1');
});

test('missing params, unknown types and malformed SQL are refused', () => {
  assert.throws(() => bindParams('{a:UInt64}', {}), /missing value/);
  assert.throws(() => bindParams('{a:Identifier}', { a: 'x' }), /unsupported parameter type/);
  assert.throws(() => bindParams('{a:Nullable(String)}', { a: 'x' }), /unsupported/);
  assert.throws(() => bindParams('{not a placeholder}', {}), /malformed/);
  assert.throws(() => bindParams("SELECT 'open", {}), /unterminated/);
  assert.throws(() => bindParams('SELECT /* open', {}), /unterminated/);
  // Inherited properties do not count as values.
  assert.throws(() => bindParams('{toString:String}', {}), /missing value/);
});

test('server-side values: times become epoch seconds, everything validated', () => {
  const t = Date.UTC(2026, 0, 1);
  assert.deepEqual(serverParamValues('{t:DateTime} {a:UInt64} {s:String}', { t: new Date(t), a: 1, s: "'" }), { t: t / 1000, a: 1, s: "'" });
  assert.throws(() => serverParamValues('{a:UInt64}', { a: -1 }), ParamBindError);
});

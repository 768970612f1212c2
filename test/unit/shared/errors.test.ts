import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { ERRORS, AppError, errorBody } from '../../../src/shared/errors.ts';

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
const documented = new Map(
  [...doc.split('## Dead-letter')[0]!.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]),
);

test('docs/errors.md and the error registry list the same codes with the same statuses', () => {
  assert.deepEqual([...documented.keys()].sort(), Object.keys(ERRORS).sort());
  for (const [code, spec] of Object.entries(ERRORS)) assert.equal(documented.get(code), spec.status, code);
});

const apiPath = new URL('../../../../shared/API.md', import.meta.url);
test('every error code in the public contract (shared/API.md) is in the registry with its status', { skip: !existsSync(apiPath) && 'shared/API.md is not beside this checkout' }, () => {
  const api = readFileSync(apiPath, 'utf8');
  const found = new Map<string, number>();
  for (const line of api.split('\n')) {
    const row = /^\| (\d{3}) \|(.*)$/.exec(line);
    if (row) for (const m of row[2]!.matchAll(/`([A-Z][A-Z_]+)`/g)) found.set(m[1]!, Number(row[1]));
    for (const m of line.matchAll(/`(\d{3}) ([A-Z][A-Z_]+)`/g)) found.set(m[2]!, Number(m[1]));
  }
  assert.ok(found.size >= 10, `parsed ${found.size} codes from API.md`);
  for (const [code, status] of found) assert.equal(ERRORS[code as keyof typeof ERRORS]?.status, status, code);
});

test('AppError carries code, status, retryable and field; body has the one shape', () => {
  const e = new AppError('INVALID_FIELD', 'bad', { field: 'ad_id' });
  assert.equal(e.status, 400);
  assert.equal(e.retryable, false);
  assert.deepEqual(e.toBody(), { error: { code: 'INVALID_FIELD', message: 'bad', field: 'ad_id' } });
  assert.deepEqual(errorBody('UNAVAILABLE'), { error: { code: 'UNAVAILABLE', message: ERRORS.UNAVAILABLE.message } });
  assert.equal(new AppError('RATE_LIMITED').retryable, true);
});

test('every dead-letter reason the sink and the Flink job can emit is documented', () => {
  const root = new URL('../../../', import.meta.url);
  const documented = new Set([...doc.split('## Dead-letter')[1]!.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]!));
  const sources = ['src/store/rows.ts', 'src/sink/batch.ts', 'flink/src/main/java/io/adclick/flink/serde/ReasonCodes.java'];
  const emitted = new Set<string>();
  for (const f of sources) {
    const text = readFileSync(new URL(f, root), 'utf8');
    for (const m of text.matchAll(/['"]((?:INVALID|PROTOBUF|EMPTY|DESERIALIZATION|UNKNOWN|SINK)_[A-Z_]+)['"]/g)) emitted.add(m[1]!);
  }
  assert.ok(emitted.size >= 8, `found ${emitted.size} reasons`);
  for (const r of emitted) assert.ok(documented.has(r), `${r} is not in docs/errors.md`);
});

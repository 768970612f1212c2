import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { latestCheckpoint } from '../../../src/stack/checkpoints.ts';

function tree(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'adclick-chk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function chk(dir: string, job: string, n: number, mtimeSec?: number, metadata = true): string {
  const p = join(dir, job, `chk-${n}`);
  mkdirSync(p, { recursive: true });
  if (metadata) {
    writeFileSync(join(p, '_metadata'), 'x');
    if (mtimeSec !== undefined) utimesSync(join(p, '_metadata'), mtimeSec, mtimeSec);
  }
  return p;
}

test('missing or empty directory: undefined', (t) => {
  const dir = tree(t);
  assert.equal(latestCheckpoint(join(dir, 'nope')), undefined);
  assert.equal(latestCheckpoint(dir), undefined);
});

test('picks the highest completed chk-N of a job, numerically', (t) => {
  const dir = tree(t);
  chk(dir, 'job1', 9, 1000);
  const want = chk(dir, 'job1', 10, 1000);
  chk(dir, 'job1', 2, 1000);
  const got = latestCheckpoint(dir);
  assert.equal(got?.path, want);
  assert.equal(got?.id, 10);
  assert.equal(got?.jobId, 'job1');
});

test('skips checkpoints without _metadata (in progress or aborted) and unrelated entries', (t) => {
  const dir = tree(t);
  const want = chk(dir, 'job1', 3, 1000);
  chk(dir, 'job1', 4, undefined, false);
  mkdirSync(join(dir, 'job1', 'shared'));
  mkdirSync(join(dir, 'job1', 'taskowned'));
  mkdirSync(join(dir, 'job1', 'chk-5', '_metadata'), { recursive: true }); // a directory, not a file
  writeFileSync(join(dir, 'stray-file'), '');
  assert.equal(latestCheckpoint(dir)?.path, want);
});

test('across job ids the most recently completed wins, even with a lower number', (t) => {
  const dir = tree(t);
  chk(dir, 'old-job', 50, 1000);
  const want = chk(dir, 'new-job', 3, 2000);
  assert.equal(latestCheckpoint(dir)?.path, want);
});

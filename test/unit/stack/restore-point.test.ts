// Which checkpoint or savepoint the Flink job starts from (checkpoints.ts chooseRestorePoint),
// and the launcher using it (up.ts flinkJobService): newest first, fall back past a point
// that starts keep failing from, clean up job directories no restore can need.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../../src/shared/config.ts';
import { createLogger } from '../../../src/shared/logger.ts';
import { chooseRestorePoint, flinkStateFiles, readStopMarker, restorePoints, writeStopMarker } from '../../../src/stack/checkpoints.ts';
import { flinkJobService, type StackContext } from '../../../src/stack/up.ts';

function tmp(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'adclick-restore-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** `<dir>/<job>/chk-<n>/_metadata` completed at `sec` (epoch seconds). */
function chk(dir: string, job: string, n: number, sec: number, metadata = 'x'): string {
  const p = join(dir, job, `chk-${n}`);
  mkdirSync(p, { recursive: true });
  writeFileSync(join(p, '_metadata'), metadata);
  utimesSync(join(p, '_metadata'), sec, sec);
  return p;
}

function savepoint(dir: string, name: string, sec: number): string {
  const p = join(dir, `savepoint-${name}`);
  mkdirSync(p, { recursive: true });
  writeFileSync(join(p, '_metadata'), 'x');
  utimesSync(join(p, '_metadata'), sec, sec);
  return p;
}

function layout(t: { after(fn: () => void): void }) {
  const root = tmp(t);
  const f = flinkStateFiles(root);
  return { root, ...f, opts: { checkpointDir: f.checkpointDir, savepointDir: f.savepointDir, stateFile: f.stateFile } };
}

test('nothing on disk: a fresh start, not "exhausted"', (t) => {
  const l = layout(t);
  const c = chooseRestorePoint(l.opts);
  assert.equal(c.point, undefined);
  assert.equal(c.exhausted, false);
  assert.deepEqual(c.skipped, []);
  assert.deepEqual(c.removed, []);
  assert.ok(existsSync(l.stateFile), 'bookkeeping written (directory created)');
});

test('the newest completed point wins across job directories; empty or missing _metadata does not count', (t) => {
  const l = layout(t);
  chk(l.checkpointDir, 'old-job', 50, 1000);
  const want = chk(l.checkpointDir, 'new-job', 3, 2000);
  chk(l.checkpointDir, 'new-job', 4, 3000, ''); // empty _metadata: not a completed checkpoint
  mkdirSync(join(l.checkpointDir, 'new-job', 'chk-5'), { recursive: true }); // in progress
  mkdirSync(join(l.checkpointDir, 'new-job', 'shared'), { recursive: true });
  const c = chooseRestorePoint(l.opts);
  assert.equal(c.point?.path, want);
  assert.equal(c.point?.kind, 'checkpoint');
  assert.equal(c.point?.jobId, 'new-job');
  assert.equal(c.starts, 1);
  assert.deepEqual(restorePoints(l.checkpointDir, l.savepointDir).map((p) => p.path), [want, join(l.checkpointDir, 'old-job', 'chk-50')]);
});

test('corrupt newest checkpoint: after maxStarts starts from it without a newer checkpoint, the next older one is chosen', (t) => {
  const l = layout(t);
  const good = chk(l.checkpointDir, 'job-a', 3, 1000);
  const broken = chk(l.checkpointDir, 'job-b', 7, 2000);
  assert.equal(chooseRestorePoint(l.opts).point?.path, broken, 'start 1: newest');
  const second = chooseRestorePoint(l.opts);
  assert.equal(second.point?.path, broken, 'start 2: still the newest');
  assert.equal(second.starts, 2);
  const third = chooseRestorePoint(l.opts);
  assert.equal(third.point?.path, good, 'start 3: gave up on the broken one');
  assert.equal(third.starts, 1);
  assert.deepEqual(third.skipped.map((p) => p.path), [broken]);
  // Given up for good: later starts skip it too, and it is not removed (newer than what is kept).
  const fourth = chooseRestorePoint(l.opts);
  assert.equal(fourth.point?.path, good);
  assert.deepEqual(fourth.skipped.map((p) => p.path), [broken]);
  assert.ok(existsSync(broken));
  assert.deepEqual(JSON.parse(readFileSync(l.stateFile, 'utf8')).failed, [broken]);
});

test('maxStarts is configurable', (t) => {
  const l = layout(t);
  const good = chk(l.checkpointDir, 'job-a', 3, 1000);
  const broken = chk(l.checkpointDir, 'job-b', 7, 2000);
  const o = { ...l.opts, maxStarts: 1 };
  assert.equal(chooseRestorePoint(o).point?.path, broken);
  assert.equal(chooseRestorePoint(o).point?.path, good);
});

test('a newer checkpoint completing starts the count over (a working restore is never given up on)', (t) => {
  const l = layout(t);
  const p = chk(l.checkpointDir, 'job-a', 3, 1000);
  assert.equal(chooseRestorePoint(l.opts).point?.path, p);
  const q = chk(l.checkpointDir, 'job-b', 1, 2000); // the restored job completed one
  assert.equal(chooseRestorePoint(l.opts).point?.path, q);
  const r = chk(l.checkpointDir, 'job-c', 1, 3000);
  const c = chooseRestorePoint(l.opts);
  assert.equal(c.point?.path, r);
  assert.equal(c.starts, 1);
  assert.deepEqual(c.skipped, []);
});

test('every point given up on: exhausted, no fresh start, nothing removed', (t) => {
  const l = layout(t);
  const a = chk(l.checkpointDir, 'job-a', 3, 1000);
  const b = chk(l.checkpointDir, 'job-b', 7, 2000);
  const o = { ...l.opts, maxStarts: 1 };
  assert.equal(chooseRestorePoint(o).point?.path, b);
  assert.equal(chooseRestorePoint(o).point?.path, a);
  const c = chooseRestorePoint(o);
  assert.equal(c.point, undefined);
  assert.equal(c.exhausted, true);
  assert.deepEqual(c.skipped.map((p) => p.path), [b, a]);
  assert.deepEqual(c.removed, []);
  assert.ok(existsSync(a) && existsSync(b));
  assert.equal(chooseRestorePoint(o).exhausted, true, 'stays exhausted');
  // Removing the restore-state file is how an operator forgets the given-up marks.
  rmSync(l.stateFile);
  assert.equal(chooseRestorePoint(o).point?.path, b);
});

test('a savepoint newer than the last checkpoint is chosen; an older one is not', (t) => {
  const l = layout(t);
  chk(l.checkpointDir, 'job-a', 9, 1000);
  const sp = savepoint(l.savepointDir, 'abc123-0123456789ab', 2000);
  const c = chooseRestorePoint(l.opts);
  assert.equal(c.point?.path, sp);
  assert.equal(c.point?.kind, 'savepoint');
  assert.equal(c.point?.jobId, undefined);
  const newer = chk(l.checkpointDir, 'job-b', 1, 3000);
  assert.equal(chooseRestorePoint(l.opts).point?.path, newer);
  // Not a savepoint directory (no prefix) or not completed: ignored.
  mkdirSync(join(l.savepointDir, 'savepoint-inprogress'), { recursive: true });
  mkdirSync(join(l.savepointDir, 'other'), { recursive: true });
  writeFileSync(join(l.savepointDir, 'other', '_metadata'), 'x');
  assert.deepEqual(restorePoints(l.checkpointDir, l.savepointDir).filter((p) => p.kind === 'savepoint').map((p) => p.path), [sp]);
});

test('cleanup: removes job directories older than every kept point, never a savepoint, never the chosen point\'s', (t) => {
  const l = layout(t);
  const old1 = chk(l.checkpointDir, 'job-1', 4, 1000);
  chk(l.checkpointDir, 'job-1', 5, 1001);
  const oldSp = savepoint(l.savepointDir, 'old', 900);
  chk(l.checkpointDir, 'job-2', 1, 2000);
  chk(l.checkpointDir, 'job-3', 1, 3000);
  chk(l.checkpointDir, 'job-3', 2, 3001);
  const newest = chk(l.checkpointDir, 'job-3', 3, 3002);
  // A run that died before its first checkpoint: an empty job directory, long ago / just now.
  mkdirSync(join(l.checkpointDir, 'died-early', 'shared'), { recursive: true });
  utimesSync(join(l.checkpointDir, 'died-early'), 500, 500);
  mkdirSync(join(l.checkpointDir, 'starting-now'), { recursive: true });
  const c = chooseRestorePoint(l.opts); // keep 3: all in job-3
  assert.equal(c.point?.path, newest);
  assert.deepEqual([...c.removed].sort(), [join(l.checkpointDir, 'died-early'), join(l.checkpointDir, 'job-1'), join(l.checkpointDir, 'job-2')]);
  assert.ok(!existsSync(old1));
  assert.ok(existsSync(oldSp), 'savepoints are never removed');
  assert.ok(existsSync(join(l.checkpointDir, 'starting-now')));
  assert.ok(existsSync(newest));
});

test('cleanup keeps every job directory holding one of the newest `keep` points', (t) => {
  const l = layout(t);
  const a = chk(l.checkpointDir, 'job-1', 4, 1000);
  const b = chk(l.checkpointDir, 'job-2', 1, 2000);
  const c1 = chk(l.checkpointDir, 'job-3', 1, 3000);
  const c = chooseRestorePoint({ ...l.opts, keep: 2 });
  assert.equal(c.point?.path, c1);
  assert.deepEqual(c.removed, [join(l.checkpointDir, 'job-1')]);
  assert.ok(!existsSync(a) && existsSync(b));
});

test('falling back keeps the chosen (older) job directory and the given-up newer one', (t) => {
  const l = layout(t);
  const good = chk(l.checkpointDir, 'job-1', 4, 1000);
  const broken = chk(l.checkpointDir, 'job-2', 1, 2000);
  const o = { ...l.opts, maxStarts: 1 };
  chooseRestorePoint(o);
  const c = chooseRestorePoint(o);
  assert.equal(c.point?.path, good);
  assert.deepEqual(c.removed, []);
  assert.ok(existsSync(good) && existsSync(broken));
});

test('restore-state file: missing, corrupt or of the wrong shape is a clean slate; marks of deleted points are forgotten', (t) => {
  const l = layout(t);
  const p = chk(l.checkpointDir, 'job-1', 4, 1000);
  for (const junk of ['{not json', 'null', '[]', '{"last":"x","failed":"y"}', '{"last":{"path":3,"starts":"9"},"failed":[1,null]}']) {
    mkdirSync(join(l.root, 'flink'), { recursive: true });
    writeFileSync(l.stateFile, junk);
    const c = chooseRestorePoint(l.opts);
    assert.equal(c.point?.path, p, junk);
    assert.equal(c.starts, 1, junk);
    assert.deepEqual(JSON.parse(readFileSync(l.stateFile, 'utf8')), { last: { path: p, starts: 1 }, failed: [] }, `${junk}: rewritten valid`);
  }
  writeFileSync(l.stateFile, JSON.stringify({ last: { path: p, starts: 1 }, failed: [join(l.checkpointDir, 'gone', 'chk-1')] }));
  chooseRestorePoint(l.opts);
  assert.deepEqual(JSON.parse(readFileSync(l.stateFile, 'utf8')).failed, []);
});

test('bookkeeping that cannot be written does not stop the start', (t) => {
  const l = layout(t);
  const p = chk(l.checkpointDir, 'job-1', 4, 1000);
  mkdirSync(l.stateFile, { recursive: true }); // a directory where the file should be
  const c = chooseRestorePoint(l.opts);
  assert.equal(c.point?.path, p);
  assert.ok(c.stateError);
});

test('stop marker round trip', (t) => {
  const l = layout(t);
  assert.equal(readStopMarker(l.stopMarker), undefined);
  writeStopMarker(l.stopMarker, { savepoint: '/x/savepoint-1', jobId: 'j', at: '2026-01-01T00:00:00.000Z' });
  assert.deepEqual(readStopMarker(l.stopMarker), { savepoint: '/x/savepoint-1', jobId: 'j', at: '2026-01-01T00:00:00.000Z' });
  writeFileSync(l.stopMarker, '{"savepoint":1}');
  assert.equal(readStopMarker(l.stopMarker), undefined);
});

// --- the launcher ---------------------------------------------------------------------

function stackContext(dataDir: string): StackContext {
  return { config: loadConfig({}, { dataDir }), repoRoot: dataDir, kafkaBootstrap: '127.0.0.1:1', redisReachable: false, childEnv: {}, logger: createLogger('test', 'silent') };
}

async function restoreArg(spec: ReturnType<typeof flinkJobService>, attempt: number): Promise<string | undefined> {
  const args = typeof spec.args === 'function' ? await spec.args({ attempt }) : spec.args;
  const i = args.indexOf('--restore-from');
  return i < 0 ? undefined : args[i + 1];
}

test('launcher: a corrupt newest checkpoint no longer crash-loops; the third start restores the older retained one', async (t) => {
  const root = tmp(t);
  const f = flinkStateFiles(root);
  const good = chk(f.checkpointDir, 'job-a', 3, 1000);
  const broken = chk(f.checkpointDir, 'job-b', 7, 2000);
  const spec = flinkJobService(stackContext(root), '/nonexistent.jar');
  // Each start from `broken` dies before completing a checkpoint (nothing newer appears).
  const seen = [await restoreArg(spec, 0), await restoreArg(spec, 1), await restoreArg(spec, 2), await restoreArg(spec, 3)];
  assert.deepEqual(seen, [broken, broken, good, good]);
});

test('launcher: starts from a savepoint newer than the last checkpoint; the start clears the stop marker', async (t) => {
  const root = tmp(t);
  const f = flinkStateFiles(root);
  chk(f.checkpointDir, 'job-a', 3, 1000);
  const sp = savepoint(f.savepointDir, 'aaaaaa-bbbbbbbbbbbb', 2000);
  writeStopMarker(f.stopMarker, { savepoint: sp, jobId: 'job-a', at: new Date().toISOString() });
  const spec = flinkJobService(stackContext(root), '/nonexistent.jar');
  assert.equal(await restoreArg(spec, 0), sp);
  assert.equal(readStopMarker(f.stopMarker), undefined);
});

test('launcher: no restore point at all is a fresh start; every one given up on refuses to start', async (t) => {
  const root = tmp(t);
  const spec = flinkJobService(stackContext(root), '/nonexistent.jar');
  assert.equal(await restoreArg(spec, 0), undefined);
  const f = flinkStateFiles(root);
  const only = chk(f.checkpointDir, 'job-a', 3, 1000);
  assert.equal(await restoreArg(spec, 1), only);
  assert.equal(await restoreArg(spec, 2), only);
  // `adclick up` (first start) fails with the reason; a restart gets a JVM that fails at once.
  await assert.rejects(restoreArg(spec, 0), /every restore point.*restore-state\.json/s);
  const args = typeof spec.args === 'function' ? await spec.args({ attempt: 3 }) : spec.args;
  assert.equal(spec.command, 'nice', 'niced by default (ADCLICK_FLINK_NICE=5)');
  assert.deepEqual(args, ['-n', '5', 'java', '-XX:+AdClickEveryRestorePointGivenUp']);
});

test('launcher: the JVM runs under `nice -n ADCLICK_FLINK_NICE`, or plain java with 0', async (t) => {
  const root = tmp(t);
  const niced = flinkJobService(stackContext(root), '/nonexistent.jar');
  const nicedArgs = typeof niced.args === 'function' ? await niced.args({ attempt: 0 }) : niced.args;
  assert.equal(niced.command, 'nice');
  assert.equal(niced.program, 'java', 'the pid file must name the program that runs (status and down check /proc/<pid>/cmdline)');
  assert.deepEqual(nicedArgs.slice(0, 3), ['-n', '5', 'java']);
  assert.match(nicedArgs[3]!, /^-Xmx/);
  const ctx = stackContext(root);
  const plain = flinkJobService({ ...ctx, config: loadConfig({ ADCLICK_FLINK_NICE: '0' }, { dataDir: root }) }, '/nonexistent.jar');
  const plainArgs = typeof plain.args === 'function' ? await plain.args({ attempt: 0 }) : plain.args;
  assert.equal(plain.command, 'java');
  assert.match(plainArgs[0]!, /^-Xmx/);
  assert.throws(() => loadConfig({ ADCLICK_FLINK_NICE: '20' }), /ADCLICK_FLINK_NICE/);
});

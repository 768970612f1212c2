// The pipeline benchmark's two judgements that are not the checker's: whether a series
// grew over a step (trend), and CPU read from /proc for a process tree (proc-cpu).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { trend } from '../../../bench/pipeline/step.ts';
import { processTree, treeCpuSeconds } from '../../../bench/pipeline/proc-cpu.ts';
import { parseOptions } from '../../../bench/pipeline/options.ts';

const series = (f: (i: number) => number | null) => Array.from({ length: 31 }, (_, i) => ({ t: i * 1000, v: f(i) }));

test('trend: a flat series with noise is bounded, a climbing one is growing, the ramp before fromT is ignored', () => {
  const flat = trend(series((i) => 1000 + (i % 2 ? 300 : -300)), 0, 30_000, 500);
  assert.equal(flat.growing, false);
  const climbing = trend(series((i) => i * 200), 0, 30_000, 500);
  assert.equal(climbing.growing, true);
  assert.ok(climbing.last! - climbing.first! > 3000);
  // A lag that starts at 0 and settles after 5 s is not growth once the ramp is skipped.
  const settling = series((i) => (i < 5 ? i * 400 : 2000));
  assert.equal(trend(settling, 0, 30_000, 500).growing, true, 'with the ramp counted it looks like growth');
  assert.equal(trend(settling, 5000, 30_000, 500).growing, false);
  assert.equal(trend(series(() => null), 0, 30_000, 500).first, null, 'no samples: nothing to judge');
  const lateStart = trend(series((i) => (i < 12 ? null : 15)), 0, 30_000, 5);
  assert.deepEqual([lateStart.first, lateStart.growing], [null, false], 'an empty first third is not judged (and not NaN)');
});

test('proc-cpu: a busy child is part of the tree and its CPU time shows', async () => {
  const child = spawn(process.execPath, ['-e', 'const end = Date.now() + 1500; while (Date.now() < end);'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 1200));
    assert.ok(processTree(process.pid).includes(child.pid!), 'the child is in our tree');
    // It spins for 1.5 s; on a shared box it may get well under a core, but not nothing.
    assert.ok(treeCpuSeconds(child.pid) >= 0.1, `child CPU ${treeCpuSeconds(child.pid)} s`);
    await new Promise((r) => child.once('exit', r));
  } finally {
    child.kill('SIGKILL');
  }
  assert.equal(treeCpuSeconds(child.pid), 0, 'a process that is gone counts 0');
  assert.ok(treeCpuSeconds(process.pid) > 0);
});

test('options: flags override BENCH_* variables; bad values are refused by name', () => {
  const o = parseOptions(['--rates=100,200', '--shape=hot'], { BENCH_RATES: '5,6', BENCH_HOLD_S: '30' });
  assert.deepEqual(o.rates, [100, 200]);
  assert.deepEqual(o.shapes, ['hot']);
  assert.equal(o.holdS, 30);
  assert.equal(o.freshS, 30, 'the freshness step lasts as long as a step by default');
  assert.throws(() => parseOptions([], { BENCH_RATES: '200,100' }), /BENCH_RATES must rise/);
  assert.throws(() => parseOptions(['--shape=cold'], {}), /--shape \/ BENCH_SHAPE must be uniform, hot or both/);
});

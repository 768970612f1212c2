// `adclick savepoint [--stop]` against a fake Flink REST API: which job, which request,
// polling the trigger, the printed path, the stop marker, exit codes.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../../src/shared/config.ts';
import { flinkStateFiles, readStopMarker } from '../../../src/stack/checkpoints.ts';
import { renderStoppedJob, statusCommand } from '../../../src/stack/cli-commands.ts';
import { flinkRestUrlOf, localPath, parseSavepointArgs, runSavepoint } from '../../../src/stack/savepoint-command.ts';

const JID = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';

interface Call { method: string; url: string; body?: unknown }

function fakeFlink(routes: (c: Call, n: number) => { status?: number; json?: unknown; throws?: boolean } | undefined) {
  const calls: Call[] = [];
  const fetchFn = (async (url: string | URL, init?: RequestInit) => {
    const c: Call = { method: init?.method ?? 'GET', url: String(url), body: init?.body ? JSON.parse(String(init.body)) : undefined };
    calls.push(c);
    const r = routes(c, calls.filter((x) => x.url === c.url).length);
    if (!r || r.throws) throw new TypeError('fetch failed');
    return new Response(JSON.stringify(r.json ?? {}), { status: r.status ?? 200, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  return { calls, fetchFn };
}

function setup(t: { after(fn: () => void): void }) {
  const dataDir = mkdtempSync(join(tmpdir(), 'adclick-sp-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({}, { dataDir, flinkUiPort: 18082 });
  const out: string[] = [];
  const err: string[] = [];
  return {
    config, dataDir, out, err,
    deps: { config, stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, sleep: async () => undefined, pollMs: 1 },
  };
}

const overview = (state = 'RUNNING') => ({ jobs: [{ jid: 'old', name: 'adclick-click-aggregation', state: 'FINISHED' }, { jid: JID, name: 'adclick-click-aggregation', state }] });

test('arguments: --stop, --timeout; anything else is a usage error (exit 2)', async (t) => {
  assert.deepEqual(parseSavepointArgs([]), { stop: false, timeoutMs: 300_000, help: false });
  assert.deepEqual(parseSavepointArgs(['--stop', '--timeout', '90s']), { stop: true, timeoutMs: 90_000, help: false });
  const s = setup(t);
  for (const bad of [['--drain'], ['now'], ['--timeout', 'soon']]) {
    assert.equal(await runSavepoint(bad, s.deps), 2, bad.join(' '));
  }
  assert.match(s.err.join(''), /usage: adclick savepoint/);
  assert.equal(await runSavepoint(['--help'], s.deps), 0);
});

test('REST URL: ADCLICK_FLINK_REST_URL, else the local job\'s UI port on the Flink bind host', () => {
  assert.equal(flinkRestUrlOf({ flinkRestUrl: '', flinkBindHost: '127.0.0.1', flinkUiPort: 8082 }), 'http://127.0.0.1:8082');
  assert.equal(flinkRestUrlOf({ flinkRestUrl: '', flinkBindHost: '0.0.0.0', flinkUiPort: 9 }), 'http://127.0.0.1:9');
  assert.equal(flinkRestUrlOf({ flinkRestUrl: 'http://jm:8081/', flinkBindHost: 'x', flinkUiPort: 9 }), 'http://jm:8081');
  assert.equal(localPath('file:/tmp/a/savepoint-1'), '/tmp/a/savepoint-1');
  assert.equal(localPath('file:///tmp/a/savepoint-1'), '/tmp/a/savepoint-1');
  assert.equal(localPath('s3://b/savepoint-1'), 's3://b/savepoint-1');
});

test('savepoint: triggers on the RUNNING job into <dataDir>/flink/savepoints, polls until complete, prints the path', async (t) => {
  const s = setup(t);
  const { savepointDir, stopMarker } = flinkStateFiles(s.dataDir);
  const { calls, fetchFn } = fakeFlink((c, n) => {
    if (c.url.endsWith('/jobs/overview')) return { json: overview() };
    if (c.url.endsWith(`/jobs/${JID}/savepoints`) && c.method === 'POST') return { status: 202, json: { 'request-id': 'trig1' } };
    if (c.url.endsWith(`/jobs/${JID}/savepoints/trig1`)) return { json: n < 3 ? { status: { id: 'IN_PROGRESS' } } : { status: { id: 'COMPLETED' }, operation: { location: `file:${savepointDir}/savepoint-a1b2c3-0123456789ab` } } };
    return undefined;
  });
  assert.equal(await runSavepoint([], { ...s.deps, fetch: fetchFn }), 0, s.err.join(''));
  const post = calls.find((c) => c.method === 'POST')!;
  assert.equal(post.url, `http://127.0.0.1:18082/jobs/${JID}/savepoints`);
  assert.deepEqual(post.body, { 'target-directory': `file://${savepointDir}`, 'cancel-job': false });
  assert.equal(calls.filter((c) => c.url.endsWith('/savepoints/trig1')).length, 3);
  assert.match(s.out.join(''), new RegExp(`savepoint: ${savepointDir}/savepoint-a1b2c3-0123456789ab\\n`));
  assert.equal(readStopMarker(stopMarker), undefined, 'no stop marker without --stop');
});

test('--stop: stop-with-savepoint (drain false), waits for the job to end, leaves the stop marker', async (t) => {
  const s = setup(t);
  const { savepointDir, stopMarker } = flinkStateFiles(s.dataDir);
  const sp = `${savepointDir}/savepoint-a1b2c3-0123456789ab`;
  let stopped = false;
  const { calls, fetchFn } = fakeFlink((c) => {
    if (c.url.endsWith('/jobs/overview')) return stopped ? { throws: true } : { json: overview() }; // its JVM exits afterwards
    if (c.url.endsWith(`/jobs/${JID}/stop`)) return { status: 202, json: { 'request-id': 'trig2' } };
    if (c.url.endsWith(`/jobs/${JID}/savepoints/trig2`)) {
      stopped = true;
      return { json: { status: { id: 'COMPLETED' }, operation: { location: `file:${sp}` } } };
    }
    return undefined;
  });
  assert.equal(await runSavepoint(['--stop'], { ...s.deps, fetch: fetchFn }), 0, s.err.join(''));
  assert.deepEqual(calls.find((c) => c.method === 'POST')!.body, { targetDirectory: `file://${savepointDir}`, drain: false });
  const out = s.out.join('');
  assert.match(out, /savepoint: .*savepoint-a1b2c3-0123456789ab/);
  assert.match(out, /adclick down.*adclick up/);
  const m = readStopMarker(stopMarker);
  assert.equal(m?.savepoint, sp);
  assert.equal(m?.jobId, JID);
});

test('--stop: the job\'s JVM exits before the result is polled: the new complete savepoint on disk is the result', async (t) => {
  const s = setup(t);
  const { savepointDir, stopMarker } = flinkStateFiles(s.dataDir);
  mkdirSync(join(savepointDir, 'savepoint-a1b2c3-000000000000'), { recursive: true }); // an older one of this job
  writeFileSync(join(savepointDir, 'savepoint-a1b2c3-000000000000', '_metadata'), 'x');
  mkdirSync(join(savepointDir, 'savepoint-ffffff-111111111111'), { recursive: true }); // another job's, in progress
  let gone = false;
  const { fetchFn } = fakeFlink((c) => {
    if (gone) return { throws: true };
    if (c.url.endsWith('/jobs/overview')) return { json: overview() };
    if (c.url.endsWith(`/jobs/${JID}/stop`)) {
      gone = true;
      mkdirSync(join(savepointDir, 'savepoint-a1b2c3-222222222222'), { recursive: true });
      writeFileSync(join(savepointDir, 'savepoint-a1b2c3-222222222222', '_metadata'), 'x');
      return { status: 202, json: { 'request-id': 'trig3' } };
    }
    return undefined;
  });
  assert.equal(await runSavepoint(['--stop'], { ...s.deps, fetch: fetchFn }), 0, s.err.join(''));
  assert.match(s.out.join(''), /savepoint: .*savepoint-a1b2c3-222222222222\n/);
  assert.equal(readStopMarker(stopMarker)?.savepoint, join(savepointDir, 'savepoint-a1b2c3-222222222222'));

  // Gone without a new savepoint (the JVM died mid-way): a failure, once a grace period passed.
  const s2 = setup(t);
  let clock = 0;
  let gone2 = false;
  const f2 = fakeFlink((c) => {
    if (gone2) return { throws: true };
    if (c.url.endsWith('/jobs/overview')) return { json: overview() };
    gone2 = true;
    return { status: 202, json: { 'request-id': 'trig4' } };
  });
  assert.equal(await runSavepoint(['--stop'], { ...s2.deps, fetch: f2.fetchFn, now: () => (clock += 1000) }), 1);
  assert.match(s2.err.join(''), /went away before the savepoint was reported complete, and no new savepoint is in/);
});

test('HA: the first JobManager in ADCLICK_FLINK_REST_URL is gone or between leaders: the savepoint goes through the next that answers', async (t) => {
  for (const dead of [{ throws: true }, { status: 503, json: { errors: ['Service temporarily unavailable due to an ongoing leader election.'] } }]) {
    const s = setup(t);
    const config = loadConfig({ ADCLICK_FLINK_REST_URL: 'http://jm-1.test:8081,http://jm-2.test:8081' }, { dataDir: s.dataDir });
    const { savepointDir } = flinkStateFiles(s.dataDir);
    const { calls, fetchFn } = fakeFlink((c) => {
      if (c.url.startsWith('http://jm-1.test:8081/')) return dead;
      if (c.url.endsWith('/jobs/overview')) return { json: overview() };
      if (c.method === 'POST') return { status: 202, json: { 'request-id': 'trig1' } };
      return { json: { status: { id: 'COMPLETED' }, operation: { location: `file:${savepointDir}/savepoint-a1b2c3-0123456789ab` } } };
    });
    assert.equal(await runSavepoint([], { ...s.deps, config, fetch: fetchFn }), 0, s.err.join(''));
    assert.equal(calls.filter((c) => c.url.startsWith('http://jm-1.test:8081/')).length, 1, 'the dead one is asked once');
    assert.equal(calls.find((c) => c.method === 'POST')?.url, `http://jm-2.test:8081/jobs/${JID}/savepoints`);
  }
  // None answers: the message names every URL tried.
  const s = setup(t);
  const config = loadConfig({ ADCLICK_FLINK_REST_URL: 'http://jm-1.test:8081,http://jm-2.test:8081' }, { dataDir: s.dataDir });
  const { fetchFn } = fakeFlink(() => ({ throws: true }));
  assert.equal(await runSavepoint([], { ...s.deps, config, fetch: fetchFn }), 1);
  assert.match(s.err.join(''), /cannot reach the Flink REST API at any of http:\/\/jm-1\.test:8081 \(fetch failed\), http:\/\/jm-2\.test:8081 \(fetch failed\); is the stack up/);
});

test('failures exit 1 with a clear message: Flink unreachable, no running job, savepoint failed, refused, timeout', async (t) => {
  const cases: { name: string; argv?: string[]; route: Parameters<typeof fakeFlink>[0]; want: RegExp }[] = [
    { name: 'unreachable', route: () => ({ throws: true }), want: /cannot reach the Flink REST API at http:\/\/127\.0\.0\.1:18082.*adclick status/ },
    { name: 'no running job', route: () => ({ json: { jobs: [{ jid: 'x', state: 'FINISHED' }] } }), want: /no RUNNING Flink job.*x FINISHED/ },
    {
      name: 'savepoint failed',
      argv: ['--stop'],
      route: (c) => c.url.endsWith('/jobs/overview') ? { json: overview() } : c.method === 'POST' ? { json: { 'request-id': 't' } }
        : { json: { status: { id: 'COMPLETED' }, operation: { 'failure-cause': { class: 'java.util.concurrent.CompletionException', 'stack-trace': 'org.apache.flink.runtime.checkpoint.CheckpointException: Checkpoint Coordinator is suspending.\n\tat x' } } } },
      want: /the savepoint failed: org\.apache\.flink\.runtime\.checkpoint\.CheckpointException: Checkpoint Coordinator is suspending\. \(the job keeps running\)/,
    },
    {
      name: 'refused',
      route: (c) => c.url.endsWith('/jobs/overview') ? { json: overview() } : { status: 404, json: { errors: ['Job could not be found.\nmore'] } },
      want: /HTTP 404: Job could not be found\.$/m,
    },
    {
      name: 'timeout',
      argv: ['--timeout', '1ms'],
      route: (c) => c.url.endsWith('/jobs/overview') ? { json: overview() } : c.method === 'POST' ? { json: { 'request-id': 't' } } : { json: { status: { id: 'IN_PROGRESS' } } },
      want: /did not complete within/,
    },
  ];
  for (const k of cases) {
    const s = setup(t);
    let clock = 0;
    const { fetchFn } = fakeFlink(k.route);
    const code = await runSavepoint(k.argv ?? [], { ...s.deps, fetch: fetchFn, now: () => (clock += 10) });
    assert.equal(code, 1, k.name);
    assert.match(s.err.join(''), k.want, k.name);
    assert.equal(readStopMarker(flinkStateFiles(s.dataDir).stopMarker), undefined, `${k.name}: no stop marker`);
  }
});

test('status: a job stopped with a savepoint is reported (and is not "everything running")', async (t) => {
  const s = setup(t);
  const m = { savepoint: '/d/flink/savepoints/savepoint-1', jobId: JID, at: '2026-01-01T00:00:00.000Z' };
  assert.match(renderStoppedJob(m, true), /STOPPED with a savepoint.*savepoint-1[\s\S]*adclick down; upgrade; adclick up/);
  assert.match(renderStoppedJob(m, false), /`adclick up` starts from it/);
  const { writeStopMarker } = await import('../../../src/stack/checkpoints.ts');
  writeStopMarker(flinkStateFiles(s.dataDir).stopMarker, m);
  const printed: string[] = [];
  const code = await statusCommand({ config: s.config, print: (x) => printed.push(x) });
  assert.equal(code, 3, 'nothing runs');
  assert.match(printed.join(''), /flink job stopped with a savepoint at 2026-01-01T00:00:00.000Z/);
});

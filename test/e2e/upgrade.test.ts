// Upgrade path end to end, through the command line as an operator would run it: a real
// stack (`adclick up`: Kafka, Flink MiniCluster, serving on chdb, gateway) on free ports
// and a temp data dir; signed traffic with a ground-truth ledger; `adclick savepoint
// --stop`; more clicks while the job is stopped; `adclick down`; a rebuilt job jar;
// `adclick up`, which must restore the job from that savepoint; clicks replayed from
// before the savepoint (Flink's restored dedup state must drop them: the stack runs
// without Redis, so nothing else would) and new clicks, all into the same ledger; then
// `adclick verify --wait 3m`: every (campaign|ad, window) count at 1m/5m/1h exact.
//
// It runs on a copy of the working tree in a temp dir (node_modules linked), so forcing
// the rebuild never rewrites the job jar other runs on this machine are using.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, createWriteStream, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, utimesSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configToEnv } from '../../src/shared/config.ts';
import { flinkStateFiles } from '../../src/stack/checkpoints.ts';
import { flinkJarPath } from '../../src/stack/flink-jar.ts';
import { freePort } from '../helpers/kafka.ts';
import { testStackConfig } from '../helpers/stack-config.ts';

const SOURCE_REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/**
 * What `adclick` needs to run and build the job. The job jar already built here (if any)
 * is the "old version": copied and marked up to date, so only the upgrade builds.
 */
function copyTree(to: string): void {
  const opts = { recursive: true, preserveTimestamps: true };
  for (const p of ['bin', 'scripts', 'proto', 'src', 'package.json', 'tsconfig.json', join('flink', 'pom.xml'), join('flink', 'src')]) {
    cpSync(join(SOURCE_REPO, p), join(to, p), opts);
  }
  const jar = flinkJarPath(SOURCE_REPO);
  if (existsSync(jar)) {
    mkdirSync(join(to, 'flink', 'target'), { recursive: true });
    cpSync(jar, flinkJarPath(to)); // a real copy, never a link: the rebuild below must not touch the original
    const now = new Date();
    utimesSync(flinkJarPath(to), now, now);
  }
  symlinkSync(join(SOURCE_REPO, 'node_modules'), join(to, 'node_modules'), 'dir');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('upgrade: savepoint --stop, rebuilt job, restore from the savepoint, counts exact', { timeout: 900_000 }, async (t) => {
  const t0 = Date.now();
  const work = await mkdtemp(join(tmpdir(), 'adclick-e2e-upgrade-'));
  const REPO = join(work, 'repo');
  const BIN = join(REPO, 'bin', 'adclick');
  /** A job source the launcher's staleness check (flink-jar.ts) looks at; only its mtime is touched. */
  const JOB_SOURCE = join(REPO, 'flink', 'src', 'main', 'java', 'io', 'adclick', 'flink', 'ClickAggregationJob.java');
  const dataDir = join(work, 'data');
  mkdirSync(dataDir);
  const keep = process.env.ADCLICK_E2E_KEEP === '1';
  // No Redis edge dedup (an address nothing listens on; REDIS_URL=none would do too), so replayed clicks reach Kafka and only Flink's dedup state can drop them.
  const config = await testStackConfig(dataDir, { signingKeys: 'e2e:e2e-secret-at-least-32-bytes-long', redisUrl: `redis://127.0.0.1:${await freePort()}` });
  const run = Date.now().toString(36); // impression ids of this run only
  const env: NodeJS.ProcessEnv = { ...process.env, ...configToEnv(config), NO_COLOR: '1' };
  const logFile = join(dataDir, 'e2e.log');
  const log = createWriteStream(logFile);
  const ledger = join(dataDir, 'ledger.ndjson');
  const files = flinkStateFiles(dataDir);
  const stacks: ChildProcess[] = [];
  const note = (s: string) => process.stdout.write(`# upgrade: ${s} (${Math.round((Date.now() - t0) / 1000)} s)\n`);

  /** One `adclick` command to completion (killed after timeoutMs); output also into the log. */
  const adclick = (args: string[], timeoutMs = 120_000) => new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => { stdout += b; log.write(`[adclick ${args[0]}] ${b}`); });
    p.stderr.on('data', (b: Buffer) => { stderr += b; log.write(`[adclick ${args[0]} !] ${b}`); });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      done({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });

  const alive = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;
  const killGroup = (p: ChildProcess) => {
    try {
      if (p.pid && alive(p)) process.kill(-p.pid, 'SIGKILL');
    } catch { /* gone */ }
  };
  const lastResort = () => stacks.forEach(killGroup);
  process.once('exit', lastResort);
  t.after(async () => {
    // `adclick down` stops the supervisor and its children in order; then make sure.
    if (stacks.some(alive) || existsSync(join(dataDir, 'run', 'supervisor.pid'))) await adclick(['down'], 90_000);
    for (const p of stacks) {
      if (alive(p)) await Promise.race([new Promise((r) => p.once('exit', r)), sleep(10_000)]);
      killGroup(p);
    }
    process.off('exit', lastResort);
    await new Promise<void>((r) => log.end(() => r()));
    if (keep) note(`kept ${work} (logs: ${logFile})`);
    else await rm(work, { recursive: true, force: true });
  });

  copyTree(REPO);

  /** `adclick up` in the background (its own process group), resolved once the banner is out. */
  const up = async (timeoutMs: number) => {
    const p = spawn(process.execPath, [BIN, 'up'], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    stacks.push(p);
    let tail = '';
    const ready = new Promise<void>((res, rej) => {
      const onData = (b: Buffer) => {
        log.write(b);
        tail = (tail + b).slice(-6000);
        if (tail.includes('AdClick is running')) res();
      };
      p.stdout!.on('data', onData);
      p.stderr!.on('data', onData);
      p.on('exit', (code) => rej(new Error(`adclick up exited ${code} before the stack was up:\n${tail}`)));
      setTimeout(() => rej(new Error(`adclick up not ready within ${timeoutMs} ms:\n${tail}`)), timeoutMs).unref();
    });
    await ready;
    return p;
  };

  const simulate = async (extra: string[]) => {
    const r = await adclick(['simulate', '--ledger', ledger, '--ads', '40', '--campaigns', '8', '--advertisers', '2', '--batch', '50', '--json', '--quiet', ...extra], 180_000);
    assert.equal(r.code, 0, `simulate ${extra.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return JSON.parse(r.stdout) as { ledgered: number; counters: Record<string, number> };
  };

  // 1. The stack, and traffic before the upgrade (5% of it sent twice).
  const first = await up(600_000);
  note('stack up');
  const before = await simulate(['--run-id', `upgA${run}`, '--seed', '11', '--count', '1500', '--rate', '500', '--duplicates', '0.05']);
  assert.ok(before.ledgered > 1400, `accepted before: ${JSON.stringify(before)}`);

  // 2. Stop with a savepoint: the job ends, the rest keeps running.
  const sp = await adclick(['savepoint', '--stop'], 300_000);
  assert.equal(sp.code, 0, `savepoint --stop: ${sp.stdout}\n${sp.stderr}`);
  const savepoint = /^savepoint: (\S+)$/m.exec(sp.stdout)?.[1];
  assert.ok(savepoint && savepoint.startsWith(files.savepointDir + '/savepoint-'), `savepoint path: ${sp.stdout}`);
  assert.ok(existsSync(join(savepoint, '_metadata')), 'the savepoint is complete on disk');
  note(`stopped with ${savepoint}`);
  const st = await adclick(['status'], 60_000);
  assert.equal(st.code, 1, `status after the stop: exit ${st.code}\n${st.stdout}`);
  assert.match(st.stdout, /flink\s+STOPPED with a savepoint .*savepoint-/);
  assert.ok(alive(first), 'the stack keeps running after the job stopped');

  // 3. Clicks while the job is stopped: accepted into Kafka, counted after the upgrade.
  const during = await simulate(['--run-id', `upgB${run}`, '--seed', '12', '--count', '300', '--rate', '300']);

  // 4. Down, rebuild the job jar, up again.
  const down = await adclick(['down'], 90_000);
  assert.equal(down.code, 0, `down: ${down.stdout}\n${down.stderr}`);
  await Promise.race([new Promise((r) => first.once('exit', r)), sleep(30_000)]);
  assert.ok(!alive(first), 'the first stack stopped');
  const jar = flinkJarPath(REPO);
  const jarBefore = existsSync(jar) ? statSync(jar).mtimeMs : 0;
  const later = new Date(Math.max(Date.now(), jarBefore + 1000));
  utimesSync(JOB_SOURCE, later, later);
  await up(600_000);
  assert.ok(statSync(jar).mtimeMs > jarBefore, 'the job jar was rebuilt');
  note('stack up again with a rebuilt jar');

  // The new job was started from the savepoint, and Flink says it restored it.
  const flinkPid = Number(readFileSync(join(dataDir, 'run', 'flink.pid'), 'utf8').trim());
  const argv = readFileSync(`/proc/${flinkPid}/cmdline`, 'utf8').split('\0');
  assert.equal(argv[argv.indexOf('--restore-from') + 1], savepoint, `flink args: ${argv.join(' ')}`);
  const rest = `http://127.0.0.1:${config.flinkUiPort}`;
  const jobs = (await (await fetch(`${rest}/jobs/overview`)).json()) as { jobs: { jid: string; state: string }[] };
  const jid = jobs.jobs.find((j) => j.state === 'RUNNING')?.jid;
  assert.ok(jid, `a RUNNING job: ${JSON.stringify(jobs)}`);
  const cps = (await (await fetch(`${rest}/jobs/${jid}/checkpoints`)).json()) as { latest?: { restored?: { external_path?: string; is_savepoint?: boolean } } };
  assert.ok(cps.latest?.restored?.external_path?.endsWith(savepoint.split('/').pop()!), `restored: ${JSON.stringify(cps.latest?.restored)}`);
  assert.equal(cps.latest?.restored?.is_savepoint, true);
  const stateFile = JSON.parse(readFileSync(files.stateFile, 'utf8')) as { last?: { path: string } };
  assert.equal(stateFile.last?.path, savepoint);
  assert.ok(!existsSync(files.stopMarker), 'the start cleared the stop marker');
  const st2 = await adclick(['status'], 60_000);
  assert.doesNotMatch(st2.stdout, /STOPPED/);

  // 5. After the upgrade: clicks replayed from before the savepoint (same impression ids;
  // without Redis only the restored Flink dedup state can drop them) and new clicks.
  const replay = await simulate(['--run-id', `upgA${run}`, '--seed', '11', '--count', '500', '--rate', '500', '--duplicates', '0']);
  assert.equal(replay.ledgered, 0, 'the replay adds nothing to the ledger');
  assert.ok((replay.counters.accepted ?? 0) >= 450, `the gateway (no Redis) accepted the replay into Kafka: ${JSON.stringify(replay.counters)}`);
  const afterUp = await simulate(['--run-id', `upgC${run}`, '--seed', '13', '--count', '1500', '--rate', '500', '--duplicates', '0.05']);
  note(`traffic: ${before.ledgered} before, ${during.ledgered} while stopped, ${afterUp.ledgered} after, 500 replayed`);

  // 6. Every count exact.
  const v = await adclick(['verify', '--ledger', ledger, '--wait', '3m'], 300_000);
  assert.equal(v.code, 0, `verify: exit ${v.code}\n${v.stdout.slice(-4000)}\n${v.stderr.slice(-2000)}`);
  note(`verify: ${v.stdout.trim().split('\n').pop()}`);
});

// Junk API keys against the query API (issue 16). A benchmark, never a test: it prints
// figures and ratios against the quiet baseline measured in the same run, exit code 0
// either way (non-zero only when the benchmark itself could not run).
//
//   node --import tsx bench/junk-keys.ts
//
// Starts a real serving process (embedded chdb, no Kafka: the sink is off) on loopback
// ports in a temp dir, seeds a campaign and mints one key, then:
//   quiet   a legitimate series request, one at a time, BENCH_PROBES times in all (spread
//           over the rounds, between the floods);
//   flood   BENCH_FLOODS (2000,4000) well-formed junk keys (`ak_` + 32 random bytes, so the
//           format check alone does not stop them) from 127.0.0.1, BENCH_FLOOD_CONNECTIONS
//           (256) in flight at a time over keep-alive connections, while
//           the legitimate client (from 127.0.0.2) keeps sending its request one at a time
//           until the flood is answered; BENCH_ROUNDS rounds each, probe latencies pooled.
// Then the same with every junk request from its own loopback address (127.0.1.1 and up;
// BENCH_MANY=off skips it): per-client budgets never trigger, so this is what the storage
// side alone (lookups behind reads, bounded, shed) does for an attacker with many addresses.
// Everything stays on loopback: the server listens on 127.0.0.1 only.
// Target: legitimate p99 under a flood within 2x the quiet p99.
// BENCH_ROOT=<dir> runs the serving process from another checkout (e.g. an older commit,
// with this file copied into its bench/).
// Bounded: each flood round stops at BENCH_ROUND_TIMEOUT_S (30 s) whatever happens.
// BENCH_CPU_PROF=<dir> writes the serving process's CPU profile there (node --cpu-prof).
// BENCH_FLOOR=on first runs the same scenarios against a floor server: bare node:http on the
// same loopback port, a canned 200 for the legitimate key and a canned 401 for any other,
// no routing, no storage, no logging. Its ratio is what the generator sharing this machine's
// cores does to any server; the real server's ratio cannot be expected below it.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 26 * 3_600_000;
const MIN = 60_000;
/** The legitimate client: its own loopback address, apart from the junk senders. */
const PROBE_ADDRESS = '127.0.0.2';
const SERIES = `/v1/campaigns/55/clicks?from=${T0}&to=${T0 + 60 * MIN}&granularity=1m`;

/** Child mode, BENCH_FLOOR: the least any HTTP server on Node must do per request. */
async function serveFloor(): Promise<void> {
  const { createServer: createHttpServer } = await import('node:http');
  const apiKey = 'ak_' + randomBytes(32).toString('base64url');
  // A body shaped like the real answer: 60 one-minute points.
  const ok = Buffer.from(JSON.stringify({ campaign_id: 55, granularity: '1m', points: Array.from({ length: 60 }, (_, w) => ({ window_start: new Date(T0 + w * MIN).toISOString(), clicks: 10 + w })) }));
  const denied = Buffer.from(JSON.stringify({ error: { code: 'UNAUTHORIZED', message: 'unknown or revoked API key' } }));
  const port = Number(process.env.ADCLICK_QUERY_PORT);
  const server = createHttpServer((req, res) => {
    const good = req.headers.authorization === `Bearer ${apiKey}`;
    res.writeHead(good ? 200 : 401, { 'content-type': 'application/json', 'content-length': (good ? ok : denied).length });
    res.end(good ? ok : denied);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  process.stdout.write(JSON.stringify({ port, apiKey }) + '\n');
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
}

/** Child mode: the real serving process, seeded, printing its port and key as one JSON line. */
async function serve(): Promise<void> {
  const { loadConfig } = await import('../src/shared/config.ts');
  const { createLogger } = await import('../src/shared/logger.ts');
  const { startServing } = await import('../src/serving.ts');
  const { createApiKey } = await import('../src/store/api-keys.ts');
  const { WindowAggregate } = await import('../src/shared/proto.ts');
  const { buildBatch, writeBatch } = await import('../src/sink/batch.ts');
  const config = loadConfig();
  // At the configured level (LOG_LEVEL, default info), as deployed: what a flood makes the
  // process log is part of its cost. Logs go to stderr, stdout carries the handshake.
  const serving = await startServing(config, createLogger('serving', config.logLevel, { stdout: process.stderr, format: 'json' }), { consumer: null });
  const msgs = [];
  let offset = 0;
  for (const ad of [1, 2, 3, 4]) {
    for (let w = 0; w < 60; w++) {
      const value = Buffer.from(WindowAggregate.encode({ granularity: 1, adId: ad, campaignId: 55, advertiserId: 7, windowStartMs: T0 + w * MIN, windowEndMs: T0 + (w + 1) * MIN, clicks: ad + w, final: true, watermarkMs: T0 + 90 * MIN, emittedAtMs: T0 + 90 * MIN }).finish());
      msgs.push({ topic: 'click-aggregates', partition: 0, offset: String(offset++), key: null, value });
    }
  }
  await writeBatch(serving.store, buildBatch(msgs));
  const { api_key } = await createApiKey(serving.store, 7);
  process.stdout.write(JSON.stringify({ port: config.queryPort, apiKey: api_key }) + '\n');
  process.once('SIGTERM', () => void serving.stop().then(() => process.exit(0)));
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

interface Server { child: ChildProcess; port: number; apiKey: string; dataDir: string; logBytes(): number }

async function startServer(env: Record<string, string>): Promise<Server> {
  const root = process.env.BENCH_ROOT ? resolve(process.env.BENCH_ROOT) : resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const dataDir = mkdtempSync(join(tmpdir(), 'adclick-junk-bench-'));
  const [queryPort, adminPort, flinkUiPort] = [await freePort(), await freePort(), await freePort()];
  // BENCH_CPU_PROF=<dir>: the serving process writes a V8 CPU profile there when it exits.
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${resolve(process.env.BENCH_CPU_PROF)}`] : [];
  const mode = env.BENCH_SERVE_MODE === 'floor' ? '--serve-floor' : '--serve';
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', join(root, 'bench', 'junk-keys.ts'), mode], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ADCLICK_DATA_DIR: dataDir, ADCLICK_QUERY_PORT: String(queryPort), ADCLICK_ADMIN_PORT: String(adminPort), ADCLICK_FLINK_UI_PORT: String(flinkUiPort), ADCLICK_BIND_HOST: '127.0.0.1', ADCLICK_PIPELINE_POLL_MS: '600000', ADCLICK_CONSERVATION_INTERVAL_MS: '3600000', REDIS_URL: 'none', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logTail = '';
  let logBytes = 0;
  child.stderr!.on('data', (d: Buffer) => {
    logBytes += d.length;
    logTail = (logTail + d.toString()).slice(-4000);
  });
  const line = await new Promise<string>((res, rej) => {
    let buf = '';
    const timer = setTimeout(() => rej(new Error('serving process did not start within 120 s')), 120_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) { clearTimeout(timer); res(buf.slice(0, i)); }
    });
    child.once('exit', (code) => { clearTimeout(timer); rej(new Error(`serving process exited (${code}):\n${logTail}`)); });
  });
  const { port, apiKey } = JSON.parse(line) as { port: number; apiKey: string };
  return { child, port, apiKey, dataDir, logBytes: () => logBytes };
}

async function stopServer(s: Server): Promise<void> {
  const exited = new Promise((r) => s.child.once('exit', r));
  s.child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (s.child.exitCode === null) s.child.kill('SIGKILL');
  rmSync(s.dataDir, { recursive: true, force: true });
}

function get(agent: Agent, port: number, path: string, key: string, localAddress: string, timeoutMs = 30_000): Promise<{ status: number; ms: number }> {
  const t = performance.now();
  return new Promise((res) => {
    const req = request({ host: '127.0.0.1', port, path, agent, localAddress, headers: { authorization: `Bearer ${key}` }, timeout: timeoutMs }, (r) => {
      r.resume();
      r.on('end', () => res({ status: r.statusCode ?? 0, ms: performance.now() - t }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => res({ status: 0, ms: performance.now() - t }));
    req.end();
  });
}

/** CPU time (user + system, ms) the process has used so far, from /proc (Linux). */
function cpuMs(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // clock ticks, USER_HZ = 100
  } catch {
    return NaN;
  }
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

const fmt = (ms: number) => `${ms.toFixed(1)} ms`;

async function quiet(s: Server, probe: Agent, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await get(probe, s.port, SERIES, s.apiKey, PROBE_ADDRESS);
    if (r.status !== 200) throw new Error(`legitimate request answered ${r.status} while quiet`);
    out.push(r.ms);
  }
  return out;
}

async function flood(s: Server, probe: Agent, n: number, roundTimeoutS: number, sources: (i: number) => string, connections: number): Promise<{ probes: number[]; probeStatuses: Record<string, number>; junk: Record<string, number>; floodMs: number }> {
  // Keep-alive, as a flooding client would; at most `connections` requests in flight (more
  // at once overflows the listen backlog, and then the kernel's SYN retries, not the
  // server, decide the latencies).
  const junkAgent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const keys = Array.from({ length: n }, () => 'ak_' + randomBytes(32).toString('base64url'));
  const junk: Record<string, number> = {};
  const t = performance.now();
  let done = false;
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const i = next++;
      const r = await get(junkAgent, s.port, '/v1/campaigns', keys[i]!, sources(i), roundTimeoutS * 1000);
      junk[r.status] = (junk[r.status] ?? 0) + 1;
    }
  };
  const all = Promise.all(Array.from({ length: Math.min(connections, n) }, worker)).then(() => { done = true; });
  const probes: number[] = [];
  const probeStatuses: Record<string, number> = {};
  const stopAt = performance.now() + roundTimeoutS * 1000;
  // At least a few probes, then as long as the flood is still being answered.
  while ((!done || probes.length < 5) && performance.now() < stopAt) {
    const r = await get(probe, s.port, SERIES, s.apiKey, PROBE_ADDRESS, roundTimeoutS * 1000);
    probeStatuses[r.status] = (probeStatuses[r.status] ?? 0) + 1;
    probes.push(r.ms);
  }
  await Promise.race([all, new Promise((r) => setTimeout(r, Math.max(0, stopAt - performance.now())))]);
  junkAgent.destroy();
  return { probes, probeStatuses, junk, floodMs: performance.now() - t };
}

async function scenario(label: string, sources: (i: number) => string, floods: number[], rounds: number, probesN: number, roundTimeoutS: number, connections: number, serverEnv: Record<string, string> = {}): Promise<void> {
  const s = await startServer(serverEnv);
  const probe = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await quiet(s, probe, 50); // warm-up
    // Quiet and flood phases alternate, so load from other processes on a shared machine
    // lands on both sides; each side's samples are pooled over the rounds.
    const base: number[] = [];
    const per = new Map<number, { probes: number[]; statuses: Record<string, number>; junk: Record<string, number>; floodMs: number; cpu: number; log: number }>();
    for (let r = 0; r < rounds; r++) {
      for (const n of floods) {
        base.push(...(await quiet(s, probe, Math.ceil(probesN / (rounds * floods.length)))));
        const cpu0 = cpuMs(s.child.pid!);
        const log0 = s.logBytes();
        const f = await flood(s, probe, n, roundTimeoutS, sources, connections);
        const acc = per.get(n) ?? { probes: [], statuses: {}, junk: {}, floodMs: 0, cpu: 0, log: 0 };
        acc.cpu += cpuMs(s.child.pid!) - cpu0;
        acc.log += s.logBytes() - log0;
        acc.probes.push(...f.probes);
        for (const [k, v] of Object.entries(f.probeStatuses)) acc.statuses[k] = (acc.statuses[k] ?? 0) + v;
        for (const [k, v] of Object.entries(f.junk)) acc.junk[k] = (acc.junk[k] ?? 0) + v;
        acc.floodMs = Math.max(acc.floodMs, f.floodMs);
        per.set(n, acc);
        await new Promise((res) => setTimeout(res, 1500)); // sockets close, budgets refill a little
      }
    }
    const q50 = pct(base, 50), q99 = pct(base, 99);
    console.log(`\n[${label}] quiet legitimate request: p50 ${fmt(q50)}, p99 ${fmt(q99)} (n=${base.length}, between the floods)`);
    for (const n of floods) {
      const a = per.get(n)!;
      const p50 = pct(a.probes, 50), p99 = pct(a.probes, 99);
      const verdict = p99 <= 2 * q99 && !Object.keys(a.statuses).some((k) => k !== '200') ? 'PASS' : 'MISS';
      console.log(`[${label}] flood of ${n} junk keys x${rounds}: legitimate p50 ${fmt(p50)} (${(p50 / q50).toFixed(2)}x quiet p50), p99 ${fmt(p99)} (${(p99 / q99).toFixed(2)}x quiet p99) ${verdict} (target <= 2x, all 200)`);
      console.log(`    legitimate statuses ${JSON.stringify(a.statuses)} (n=${a.probes.length}), slowest ${[...a.probes].sort((x, y) => y - x).slice(0, 3).map(fmt).join(', ')}; junk statuses ${JSON.stringify(a.junk)}; slowest flood answered in ${fmt(a.floodMs)}; serving process CPU ${(a.cpu / (n * rounds)).toFixed(2)} ms and log ${Math.round(a.log / (n * rounds))} bytes per junk request (probes included)`);
    }
  } finally {
    probe.destroy();
    await stopServer(s);
  }
}

async function main(): Promise<void> {
  const floods = (process.env.BENCH_FLOODS ?? '2000,4000').split(',').map(Number).filter((n) => n > 0 && n <= 20_000);
  const rounds = Math.max(1, Math.min(10, Number(process.env.BENCH_ROUNDS ?? 3)));
  const probesN = Math.max(20, Math.min(2000, Number(process.env.BENCH_PROBES ?? 300)));
  const roundTimeoutS = Math.max(5, Math.min(120, Number(process.env.BENCH_ROUND_TIMEOUT_S ?? 30)));
  const connections = Math.max(1, Math.min(1000, Number(process.env.BENCH_FLOOD_CONNECTIONS ?? 256)));
  console.log(`load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`junk-keys bench: floods ${floods.join(', ')} (${connections} in flight), ${rounds} rounds each, ${probesN} quiet probes, legit request GET ${SERIES.split('?')[0]} (60 one-minute windows)`);
  try {
    if (process.env.BENCH_FLOOR === 'on') {
      const floor = { BENCH_SERVE_MODE: 'floor' };
      await scenario('floor server, junk from one address', () => '127.0.0.1', floods, rounds, probesN, roundTimeoutS, connections, floor);
      if (process.env.BENCH_MANY !== 'off') await scenario('floor server, junk from many addresses', (i) => `127.0.${1 + ((i / 254) | 0) % 16}.${1 + (i % 254)}`, floods, rounds, probesN, roundTimeoutS, connections, floor);
    }
    await scenario('junk from one address', () => '127.0.0.1', floods, rounds, probesN, roundTimeoutS, connections);
    if (process.env.BENCH_MANY !== 'off') {
      // 127.0.1.1 - 127.0.16.254: every junk request from its own (loopback) address.
      await scenario('junk from many addresses', (i) => `127.0.${1 + ((i / 254) | 0) % 16}.${1 + (i % 254)}`, floods, rounds, probesN, roundTimeoutS, connections);
    }
  } catch (err) {
    console.error(err);
    process.exitCode = 1;
  }
}

if (process.argv.includes('--serve-floor')) await serveFloor();
else if (process.argv.includes('--serve')) await serve();
else await main();

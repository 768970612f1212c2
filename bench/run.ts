// Gateway benchmark (`npm run bench`; never part of `npm test`, never gates CI).
//
// In one run, on loopback, against a real throwaway Kafka broker and the local Redis:
//   0. steady state: fastify, the gateway's batch route and its single route are each driven
//      for BENCH_SYSTEM_WARMUP_S / 2 (warming the throwaway broker's JVM) before anything is measured
//   1. micro: protobuf ClickEvent encode vs JSON.stringify of the same object (+ context rows)
//   2. single: POST /v1/clicks — bare fastify hello-world POST vs the real gateway process,
//      same connections/duration, every request a fresh validly signed click; the two are
//      measured in alternating rounds (fastify, gateway, fastify, ...) and pooled, so load
//      from other processes on a shared machine does not land on one side only; the
//      gateway's own per-stage times (Redis admission, Kafka ack) come from its histograms
//   3. batch: POST /v1/clicks/batch with 500 fresh signed clicks per request (gateway and,
//      as a reference, bare fastify's batch route)
//   3b. single, saturated: step 2 again with BENCH_SATURATED_CONNECTIONS (400): at 50
//      connections the gateway's rate is set by its two round trips per click (Little's law),
//      at 400 both sides are bound by the shared cores — capacity rather than latency
//   3c. contract floor (DIAGNOSTIC, both concurrencies): bare fastify plus only the Redis read
//      and the Kafka ack API.md puts before every 202 (bench/floor-fastify.ts), with CPU per
//      request over all processes — the most any gateway keeping the contract could reach here
//   4. sanity: records in the `clicks` topic vs clicks the gateway answered "accepted"
// Ratios are against the baselines measured in this same run; targets print PASS/MISS and
// the exit code is 0 either way (non-zero only when the benchmark itself could not run).
//
// Flags: --diag     extra DIAGNOSTIC rows (gateway with Redis unreachable → fail-open path)
//        --profile  run the gateway under --cpu-prof and print where its CPU goes
//        --quick    short runs (3 s) to check the harness itself
//        BENCH_AB_ENV='{"ADCLICK_KAFKA_LINGER_MS":"2"}'  DIAGNOSTIC A/B: a second gateway with these env
//                   overrides, measured in alternating rounds against the first (same broker, same run)
// Env:   BENCH_BROKER_PROPS='{"num.io.threads":"2"}' (DIAGNOSTIC: extra broker properties), BENCH_SYSTEM_WARMUP_S (30), BENCH_CONNECTIONS (50), BENCH_SATURATED_CONNECTIONS (400; off = skip), BENCH_DURATION_S (5, per round), BENCH_ROUNDS (3), BENCH_WARMUP_S (3),
//        BENCH_BATCH_CONNECTIONS (4), BENCH_BATCH_SIZE (500), BENCH_DIAG_LINGER_MS (5, --diag only),
//        BENCH_GATEWAY_WORKERS (auto: the gateway is measured a second time as a node:cluster of
//        ADCLICK_GATEWAY_WORKERS=auto workers, with its own target rows; off = skip),
//        BENCH_FLOOR (on: the contract floor rows, see bench/floor-fastify.ts; off = skip)
import autocannon, { type Result } from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../src/shared/logger.ts';
import { signClick } from '../src/shared/signature.ts';
import { withAdmin } from '../src/stack/kafka-admin.ts';
import { ensureTopics } from '../src/stack/topics.ts';
import { freePort, startTestKafka, type TestKafka } from '../test/helpers/kafka.ts';
import { runMicro, type MicroRow } from './micro.ts';
import { summarizeCpuProfile } from './profile-summary.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = new Set(process.argv.slice(2));
const QUICK = argv.has('--quick');
const DIAG = argv.has('--diag');
const PROFILE = argv.has('--profile');
const envInt = (name: string, def: number) => (process.env[name] ? Number(process.env[name]) : def);

const CONNECTIONS = envInt('BENCH_CONNECTIONS', 50);
// Single clicks are measured a second time with this many connections ("off" skips): enough
// that both sides are bound by the shared cores, not by round trips (capacity, not latency).
const SAT_CONNECTIONS = process.env.BENCH_SATURATED_CONNECTIONS === 'off' ? 0 : envInt('BENCH_SATURATED_CONNECTIONS', 400);
// Measured seconds per round; baseline and gateway alternate for BENCH_ROUNDS rounds.
const DURATION_S = envInt('BENCH_DURATION_S', QUICK ? 3 : 5);
const ROUNDS = envInt('BENCH_ROUNDS', QUICK ? 1 : 3);
const WARMUP_S = envInt('BENCH_WARMUP_S', QUICK ? 1 : 3);
const BATCH_CONNECTIONS = envInt('BENCH_BATCH_CONNECTIONS', 4);
const BATCH_SIZE = envInt('BENCH_BATCH_SIZE', 500);
const DIAG_LINGER_MS = envInt('BENCH_DIAG_LINGER_MS', 5);
const envJson = (name: string) => (process.env[name] ? (JSON.parse(process.env[name]!) as Record<string, string>) : undefined);
const AB_ENV = envJson('BENCH_AB_ENV');
// The gateway is measured as shipped (1 worker) and, on a multi-core machine, again with
// ADCLICK_GATEWAY_WORKERS set to this ("off" skips it): each configuration gets its own target rows.
const WORKERS = process.env.BENCH_GATEWAY_WORKERS ?? 'auto';
const WORKERS_ON = WORKERS !== 'off' && WORKERS !== '1' && cpus().length > 1;
const BATCH_DURATION_S = DURATION_S;
// The contract floor (bench/floor-fastify.ts: bare fastify plus only the Redis read and the
// Kafka ack that API.md puts before every 202) is measured next to fastify; "off" skips it.
const FLOOR_ON = process.env.BENCH_FLOOR !== 'off';
const FLOOR_TOPIC = 'bench-floor';
// Before any measured round, the gateway is driven (batch, then single clicks) for this
// long (half of it per stage): a freshly started broker JVM spends its first ~30 s in the JIT
// compiler and used ~2.5x the CPU per click it uses warm, which landed on whichever side ran first.
const SYSTEM_WARMUP_S = envInt('BENCH_SYSTEM_WARMUP_S', QUICK ? 5 : 30);
const BATCH_WARMUP_S = Math.min(2, WARMUP_S);
const TOPIC = 'clicks';
const TARGETS = { rateRatioMin: 0.6, p99RatioMax: 3, batchClicksPerSecMin: 50_000 };
const WATCHDOG_MS = 20 * 60_000;

const KEY_ID = 'bench';
const SECRET = randomBytes(24).toString('hex');
const RUN_TAG = randomBytes(4).toString('hex');
const log = createLogger('bench', 'warn');
const say = (s: string) => process.stdout.write(`${s}\n`);

// ---------------------------------------------------------------------------------------
// Cleanup: every child and the broker die at the end, on error, on Ctrl-C and on exit.
const children = new Set<ChildProcess>();
const cleanups: (() => unknown)[] = [];
process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
});
let cleaningUp: Promise<void> | undefined;
function cleanup(): Promise<void> {
  return (cleaningUp ??= (async () => {
    await Promise.all([...children].map((c) => stopChild(c)));
    for (const fn of cleanups.reverse()) {
      try { await fn(); } catch (err) { say(`cleanup failed: ${String(err)}`); }
    }
  })());
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    say(`\n${sig}: stopping children and the broker`);
    void cleanup().finally(() => process.exit(130));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function stopChild(c: ChildProcess, timeoutMs = 10_000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) {
    children.delete(c);
    return;
  }
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  await Promise.race([exited, sleep(timeoutMs)]);
  if (c.exitCode === null && c.signalCode === null) {
    c.kill('SIGKILL');
    await Promise.race([exited, sleep(2000)]);
  }
  children.delete(c);
}

interface Child {
  proc: ChildProcess;
  name: string;
  tail: () => string;
}

function startChild(name: string, args: string[], env: NodeJS.ProcessEnv): Child {
  const proc = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const l of chunk.toString().split('\n')) if (l) lines.push(l);
    if (lines.length > 60) lines.splice(0, lines.length - 60);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  proc.on('exit', (code, signal) => {
    children.delete(proc);
    if (!cleaningUp && code !== 0 && signal !== 'SIGTERM') say(`[${name}] exited unexpectedly (code ${code}, signal ${signal})\n${lines.slice(-20).join('\n')}`);
  });
  return { proc, name, tail: () => lines.slice(-20).join('\n') };
}

async function startBareFastify(name = 'bare-fastify', script = 'bench/bare-fastify.ts', args = ['0']): Promise<{ child: Child; port: number }> {
  const child = startChild(name, ['--import', 'tsx', script, ...args], { ...process.env, NODE_ENV: 'production' });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in 30 s:\n${child.tail()}`)), 30_000);
    let buf = '';
    child.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /LISTENING (\d+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.proc.once('exit', () => reject(new Error(`${name} exited:\n${child.tail()}`)));
  });
  return { child, port };
}

async function startGateway(name: string, bootstrap: string, extraEnv: Record<string, string>, nodeFlags: string[] = []): Promise<{ child: Child; port: number; redisReady: boolean }> {
  const port = await freePort();
  const child = startChild(name, [...nodeFlags, '--import', 'tsx', 'src/gateway/main.ts'], {
    ...process.env,
    NODE_ENV: 'production',
    ADCLICK_BIND_HOST: '127.0.0.1',
    ADCLICK_GATEWAY_PORT: String(port),
    KAFKA_BROKERS: bootstrap,
    ADCLICK_CLICKS_TOPIC: TOPIC,
    ADCLICK_SIGNING_KEYS: `${KEY_ID}:${SECRET}`,
    ADCLICK_IP_HASH_KEY: 'bench-ip-hash-key',
    ADCLICK_GATEWAY_ID: `bench-${RUN_TAG}`,
    // Very high: the limiter runs on every request (one Redis GCRA script) but never rejects.
    ADCLICK_RATE_LIMIT_PER_SEC: '1000000',
    ADCLICK_RATE_LIMIT_BURST: '1000000',
    // Bench keys in the shared Redis expire after two minutes instead of 25 h; the TTL must
    // cover max click age + skew, so those shrink too (bench bodies are seconds old).
    ADCLICK_EDGE_DEDUP_TTL_SEC: '120',
    ADCLICK_MAX_CLICK_AGE_MS: '60000',
    ADCLICK_MAX_CLOCK_SKEW_MS: '60000',
    LOG_LEVEL: 'warn',
    ...extraEnv,
  });
  const deadline = Date.now() + 60_000;
  let last = '';
  for (;;) {
    if (child.proc.exitCode !== null) throw new Error(`${name} exited before ready:\n${child.tail()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) });
      last = await res.text();
      if (res.status === 200) {
        const checks = (JSON.parse(last) as { checks: Record<string, boolean> }).checks;
        // Redis is optional for readiness; give it a moment to connect when it is expected.
        if (checks.redis || extraEnv.REDIS_URL || Date.now() > deadline - 50_000) return { child, port, redisReady: !!checks.redis };
      }
    } catch (err) {
      last = String(err);
    }
    if (Date.now() > deadline) throw new Error(`${name} not ready after 60 s (last /readyz: ${last}):\n${child.tail()}`);
    await sleep(200);
  }
}

// ---------------------------------------------------------------------------------------
// Request generation: identical for the baseline and the gateway.
let seq = 0;
function signedClick(now: number) {
  const n = ++seq;
  const c = {
    impression_id: `bench-${RUN_TAG}-${n.toString(36)}`,
    event_type: 'click',
    ad_id: 1 + (n % 1000),
    campaign_id: 1 + (n % 100),
    advertiser_id: 1 + (n % 20),
    user_id: `u${n % 100_000}`,
    timestamp: now,
    key_id: KEY_ID,
  };
  return { ...c, signature: signClick(c, SECRET) };
}
const makeSingleBody = () => Buffer.from(JSON.stringify(signedClick(Date.now())));
const makeBatchBody = () => {
  const now = Date.now();
  const clicks = new Array(BATCH_SIZE);
  for (let i = 0; i < BATCH_SIZE; i++) clicks[i] = signedClick(now);
  return Buffer.from(JSON.stringify({ clicks }));
};

/** Pre-generated bodies (so signing costs the client nothing while measuring); made on the fly when exhausted. */
class BodySource {
  private pool: (Buffer | undefined)[] = [];
  private i = 0;
  onTheFly = 0;
  constructor(private readonly make: () => Buffer) {}
  fill(n: number): void {
    this.pool = new Array(n);
    for (let k = 0; k < n; k++) this.pool[k] = this.make();
    this.i = 0;
    this.onTheFly = 0;
  }
  next(): Buffer {
    if (this.i < this.pool.length) {
      const b = this.pool[this.i]!;
      this.pool[this.i++] = undefined;
      return b;
    }
    this.onTheFly++;
    return this.make();
  }
  drop(): void {
    this.pool = [];
  }
}

// ---------------------------------------------------------------------------------------
// CPU accounting per process (from /proc), to see where the 2 cores go during a run.
const CLK_TCK = 100;
function procCpuSec(pid: number | undefined, statPath = `/proc/${pid}/stat`): number | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(statPath, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime
  } catch {
    return undefined;
  }
}
/** CPU seconds per thread name of one process (librdkafka threads are named rdk:*). */
function threadCpuSec(pid: number | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (!pid) return out;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim().replace(/\d+$/, '#');
        const v = procCpuSec(pid, `/proc/${pid}/task/${tid}/stat`) ?? 0;
        out[comm] = (out[comm] ?? 0) + v;
      } catch { /* thread gone */ }
    }
  } catch { /* process gone */ }
  return out;
}
/** Live child processes of pid (a cluster gateway's workers). */
function childPids(pid: number | undefined): number[] {
  const out: number[] = [];
  if (!pid) return out;
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(ppid) === pid && state !== 'Z') out.push(Number(d));
      } catch { /* raced */ }
    }
  } catch { /* no /proc */ }
  return out;
}
function findRedisPid(): number | undefined {
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'redis-server') return Number(d);
      } catch { /* raced */ }
    }
  } catch { /* no /proc */ }
  return undefined;
}
type CpuSnap = Record<string, number | undefined>;
function cpuSnap(pids: Record<string, number | undefined>): CpuSnap {
  const out: CpuSnap = {};
  for (const [k, pid] of Object.entries(pids)) out[k] = procCpuSec(pid);
  // A gateway run as a cluster: its workers' CPU is the server's too (threads: primary only).
  for (const child of childPids(pids.server)) out.server = (out.server ?? 0) + (procCpuSec(child) ?? 0);
  for (const [t, v] of Object.entries(threadCpuSec(pids.server))) out[`server/${t}`] = v;
  const u = process.cpuUsage();
  out.client = (u.user + u.system) / 1e6;
  try {
    // Whole machine, busy = all but idle and iowait: what is left over is other processes
    // (this box may be shared with other jobs, which makes the numbers noisy).
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // steal: time the hypervisor gave this VM's vCPUs to someone else (shown on its own).
    out.machine = (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]! - (f[7] ?? 0)) / CLK_TCK;
    out.steal = (f[7] ?? 0) / CLK_TCK;
  } catch { /* no /proc */ }
  return out;
}
function cpuDelta(a: CpuSnap, b: CpuSnap, seconds: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(b)) if (a[k] !== undefined && b[k] !== undefined) out[k] = round((b[k]! - a[k]!) / seconds, 2);
  if (out.machine !== undefined) {
    out.others = round(Math.max(0, out.machine - (out.server ?? 0) - (out.kafka ?? 0) - (out.redis ?? 0) - (out.client ?? 0)), 2);
    delete out.machine;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Load runs.
interface LoadStats {
  target: string;
  path: string;
  connections: number;
  durationS: number;
  reqPerSec: number;
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  autocannon: { reqAvg: number; p50: number; p99: number };
  statusCodes: Record<string, number>;
  bodiesMadeOnTheFly: number;
  /** CPU cores used on average during the measured run, per process. */
  cpuCores: Record<string, number>;
  /** CLOCK_MONOTONIC µs of the measured run (to slice a --cpu-prof profile). */
  windowUs: { fromUs: number; toUs: number };
  clicks?: { accepted: number; duplicate: number; rejected: number; notAccepted: number; perSec: number };
  /** Gateway only: server-side time per request in each stage, from its histograms (this run only). */
  stages?: Record<string, StageStats>;
}

interface StageStats { count: number; meanMs: number; p50Ms: number; p99Ms: number }
type Histo = { buckets: [number, number][]; sum: number; count: number };
const STAGE_HISTOGRAMS: Record<string, string> = {
  'http total': 'adclick_gateway_request_seconds',
  'redis admission': 'adclick_gateway_admission_seconds',
  'kafka ack': 'adclick_gateway_kafka_ack_seconds',
};

/** Cumulative histograms of the gateway (all label sets of a name summed up). */
async function scrapeHistograms(port: number, path: string): Promise<Record<string, Histo>> {
  const out: Record<string, Histo> = {};
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    for (const [stage, name] of Object.entries(STAGE_HISTOGRAMS)) {
      const h: Histo = { buckets: [], sum: 0, count: 0 };
      const le = new Map<number, number>();
      for (const line of text.split('\n')) {
        if (!line.startsWith(name)) continue;
        if (name === STAGE_HISTOGRAMS['http total'] && !line.includes(`route="${path}"`)) continue;
        const v = Number(line.slice(line.lastIndexOf(' ') + 1));
        const m = /le="([^"]+)"/.exec(line);
        if (line.startsWith(`${name}_bucket`) && m) {
          const b = m[1] === '+Inf' ? Infinity : Number(m[1]);
          le.set(b, (le.get(b) ?? 0) + v);
        } else if (line.startsWith(`${name}_sum`)) h.sum += v;
        else if (line.startsWith(`${name}_count`)) h.count += v;
      }
      h.buckets = [...le.entries()].sort((a, b) => a[0] - b[0]);
      out[stage] = h;
    }
  } catch { /* diagnostics only */ }
  return out;
}

/** Per-stage figures between two scrapes; quantiles are bucket upper bounds (coarse). */
function stageDelta(a: Record<string, Histo>, b: Record<string, Histo>): Record<string, StageStats> {
  const out: Record<string, StageStats> = {};
  for (const [stage, hb] of Object.entries(b)) {
    const ha = a[stage] ?? { buckets: [], sum: 0, count: 0 };
    const count = hb.count - ha.count;
    if (count <= 0) continue;
    const before = new Map(ha.buckets);
    const q = (p: number) => {
      for (const [le, c] of hb.buckets) if (c - (before.get(le) ?? 0) >= p * count) return le * 1000;
      return NaN;
    };
    out[stage] = { count, meanMs: round(((hb.sum - ha.sum) / count) * 1000, 2), p50Ms: q(0.5), p99Ms: q(0.99) };
  }
  return out;
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function countOccurrences(s: string, needle: string): number {
  let n = 0;
  for (let i = s.indexOf(needle); i !== -1; i = s.indexOf(needle, i + needle.length)) n++;
  return n;
}

interface ClickTally { accepted: number; duplicate: number; rejected: number }
const newTally = (): ClickTally => ({ accepted: 0, duplicate: 0, rejected: 0 });
/** Clicks the gateway answered "accepted" across all runs (warm-ups included), for the Kafka sanity check. */
const gatewayAcceptedTotal = { n: 0, unobservedMax: 0 };

function runAutocannon(opts: { url: string; path: string; connections: number; durationS: number; source: BodySource; tally?: ClickTally; recordLatency: boolean }): Promise<{ result: Result; latencies: Float64Array }> {
  let lat = new Float64Array(1 << 16);
  let nLat = 0;
  return new Promise((resolve, reject) => {
    const inst = autocannon(
      {
        url: opts.url,
        connections: opts.connections,
        duration: opts.durationS,
        timeout: 30,
        requests: [
          {
            method: 'POST',
            path: opts.path,
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => {
              req.body = opts.source.next();
              return req;
            },
            onResponse: (status, body) => {
              const t = opts.tally;
              if (!t) return;
              if (status >= 200 && status < 300) {
                t.accepted += countOccurrences(body, '"status":"accepted"');
                t.duplicate += countOccurrences(body, '"status":"duplicate"');
                t.rejected += countOccurrences(body, '"status":"rejected"');
              } else {
                t.rejected += opts.path.endsWith('/batch') ? BATCH_SIZE : 1;
              }
            },
          },
        ],
      },
      (err, result) => (err ? reject(err) : resolve({ result, latencies: lat.slice(0, nLat).sort() })),
    );
    if (opts.recordLatency) {
      inst.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
        if (statusCode < 200 || statusCode >= 300) return;
        if (nLat === lat.length) {
          const bigger = new Float64Array(lat.length * 2);
          bigger.set(lat);
          lat = bigger;
        }
        lat[nLat++] = responseTime;
      });
    }
  });
}

async function measure(o: {
  label: string;
  port: number;
  path: string;
  connections: number;
  durationS: number;
  warmupS: number;
  make: () => Buffer;
  perRequestEstimate: number;
  /** Pool at least this many bodies per second of measurement (a cold warm-up underestimates). */
  floorRate: number;
  maxPool: number;
  countClicks: boolean;
  isGateway: boolean;
  pids: Record<string, number | undefined>;
  /** Requests/s seen in an earlier round (sizes the body pool when there is no warm-up). */
  rateHint?: number;
}): Promise<LoadStats & { latencies: Float64Array }> {
  const url = `http://127.0.0.1:${o.port}`;
  const source = new BodySource(o.make);
  // autocannon stops with requests in flight whose answers it never reads; the gateway may still have written them.
  const perReq = o.path.endsWith('/batch') ? BATCH_SIZE : 1;
  let warmRate = o.rateHint ?? o.perRequestEstimate;
  if (o.warmupS > 0) {
    // Warm-up (bodies made on the fly; JIT, connections, producer batches settle).
    const warmTally = newTally();
    const warm = await runAutocannon({ url, path: o.path, connections: o.connections, durationS: o.warmupS, source, tally: warmTally, recordLatency: false });
    if (o.isGateway) gatewayAcceptedTotal.n += warmTally.accepted;
    if (o.isGateway) gatewayAcceptedTotal.unobservedMax += o.connections * perReq;
    warmRate = warm.result['2xx'] / Math.max(0.1, warm.result.duration) || o.perRequestEstimate;
  }
  if (o.isGateway) gatewayAcceptedTotal.unobservedMax += o.connections * perReq; // the measured run's
  // Fresh bodies for the measured run: enough for 2.5x the warm-up rate (on-the-fly beyond that).
  const poolSize = Math.min(o.maxPool, Math.ceil(Math.max(warmRate * 2.5, o.floorRate) * o.durationS) + 1000);
  source.fill(poolSize);
  global.gc?.();
  await sleep(300);
  const tally = newTally();
  const histBefore = o.isGateway ? await scrapeHistograms(o.port, o.path) : undefined;
  const before = cpuSnap(o.pids);
  const t0 = performance.now();
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const { result, latencies } = await runAutocannon({ url, path: o.path, connections: o.connections, durationS: o.durationS, source, tally, recordLatency: true });
  const wallS = (performance.now() - t0) / 1000;
  const toUs = Number(process.hrtime.bigint() / 1000n);
  const after = cpuSnap(o.pids);
  const histAfter = histBefore ? await scrapeHistograms(o.port, o.path) : undefined;
  source.drop();
  if (o.isGateway) gatewayAcceptedTotal.n += tally.accepted;
  const dur = result.duration || wallS;
  const stats: LoadStats & { latencies: Float64Array } = {
    latencies,
    target: o.label,
    path: o.path,
    connections: o.connections,
    durationS: round(dur, 2),
    reqPerSec: round(result['2xx'] / dur, 0),
    ok2xx: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    p50Ms: round(percentile(latencies, 50), 2),
    p90Ms: round(percentile(latencies, 90), 2),
    p99Ms: round(percentile(latencies, 99), 2),
    maxMs: round(latencies.length ? latencies[latencies.length - 1]! : NaN, 2),
    autocannon: { reqAvg: result.requests.average, p50: result.latency.p50, p99: result.latency.p99 },
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([k, v]) => [k, v.count])),
    bodiesMadeOnTheFly: source.onTheFly,
    cpuCores: cpuDelta(before, after, wallS),
    windowUs: { fromUs, toUs },
    stages: histBefore && histAfter ? stageDelta(histBefore, histAfter) : undefined,
  };
  if (o.countClicks) {
    const expected = o.path.endsWith('/batch') ? BATCH_SIZE : 1;
    const sent = (result['2xx'] + result.non2xx) * expected;
    stats.clicks = {
      accepted: tally.accepted,
      duplicate: tally.duplicate,
      rejected: tally.rejected,
      notAccepted: Math.max(0, sent - tally.accepted),
      perSec: round(tally.accepted / dur, 0),
    };
  }
  return stats;
}

/**
 * Pools the rounds of one target into one row: rates over the summed time, percentiles
 * over all latencies, CPU weighted by duration, stage figures summed (quantiles: worst round).
 */
function pooled(rounds: (LoadStats & { latencies: Float64Array })[]): LoadStats & { latencies: Float64Array; rounds: { reqPerSec: number; p99Ms: number; cpuCores: Record<string, number> }[] } {
  const first = rounds[0]!;
  const all = new Float64Array(rounds.reduce((n, r) => n + r.latencies.length, 0));
  let at = 0;
  for (const r of rounds) { all.set(r.latencies, at); at += r.latencies.length; }
  all.sort();
  const dur = rounds.reduce((t, r) => t + r.durationS, 0);
  const sum = (f: (r: LoadStats) => number) => rounds.reduce((t, r) => t + f(r), 0);
  const cpu: Record<string, number> = {};
  for (const r of rounds) for (const [k, v] of Object.entries(r.cpuCores)) cpu[k] = (cpu[k] ?? 0) + (v * r.durationS) / dur;
  for (const k of Object.keys(cpu)) cpu[k] = round(cpu[k]!, 2);
  let stages: Record<string, StageStats> | undefined;
  for (const r of rounds) {
    for (const [k, v] of Object.entries(r.stages ?? {})) {
      stages ??= {};
      const acc = stages[k];
      stages[k] = acc
        ? { count: acc.count + v.count, meanMs: round((acc.meanMs * acc.count + v.meanMs * v.count) / (acc.count + v.count), 2), p50Ms: Math.max(acc.p50Ms, v.p50Ms), p99Ms: Math.max(acc.p99Ms, v.p99Ms) }
        : { ...v };
    }
  }
  const clicks = first.clicks && {
    accepted: sum((r) => r.clicks!.accepted), duplicate: sum((r) => r.clicks!.duplicate), rejected: sum((r) => r.clicks!.rejected),
    notAccepted: sum((r) => r.clicks!.notAccepted), perSec: round(sum((r) => r.clicks!.accepted) / dur, 0),
  };
  return {
    ...first,
    durationS: round(dur, 2),
    reqPerSec: round(sum((r) => r.ok2xx) / dur, 0),
    ok2xx: sum((r) => r.ok2xx), non2xx: sum((r) => r.non2xx), errors: sum((r) => r.errors), timeouts: sum((r) => r.timeouts),
    p50Ms: round(percentile(all, 50), 2), p90Ms: round(percentile(all, 90), 2), p99Ms: round(percentile(all, 99), 2),
    maxMs: round(all.length ? all[all.length - 1]! : NaN, 2),
    bodiesMadeOnTheFly: sum((r) => r.bodiesMadeOnTheFly),
    cpuCores: cpu,
    clicks,
    stages,
    latencies: all,
    rounds: rounds.map((r) => ({ reqPerSec: r.reqPerSec, p99Ms: r.p99Ms, cpuCores: r.cpuCores })),
  };
}

/**
 * Sides measured in alternating rounds (A B C ... A B C ...), so load from other processes
 * on a shared machine falls on every side alike instead of on whichever ran when it peaked.
 * Each side warms up once, before its first round. Ratios: each side's rounds against the first side's.
 */
async function interleavedMany(rounds: number, sides: ((warmupS: number, hint?: number) => ReturnType<typeof measure>)[], warmupS: number) {
  const runs = sides.map(() => [] as Awaited<ReturnType<typeof measure>>[]);
  for (let i = 0; i < rounds; i++) {
    for (const [j, side] of sides.entries()) runs[j]!.push(await side(i === 0 ? warmupS : 0, runs[j]![i - 1]?.reqPerSec));
  }
  return runs.map((r) => ({ pooled: pooled(r), ratios: r.map((x, i) => ({ rate: round(x.reqPerSec / runs[0]![i]!.reqPerSec, 3), p99: round(x.p99Ms / runs[0]![i]!.p99Ms, 3) })) }));
}

/** Two sides (baseline a, candidate b) in alternating rounds; ratios of b against a. */
async function interleaved(rounds: number, a: (warmupS: number, hint?: number) => ReturnType<typeof measure>, b: (warmupS: number, hint?: number) => ReturnType<typeof measure>, warmupS: number) {
  const [ra, rb] = await interleavedMany(rounds, [a, b], warmupS);
  return { a: ra!.pooled, b: rb!.pooled, ratios: rb!.ratios };
}

/** Gateway counters worth seeing next to the numbers: outcomes and fail-open Redis errors. */
async function scrapeGatewayMetrics(port: number): Promise<string[]> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    return text.split('\n').filter((l) => /^adclick_gateway_(redis_failures_total|clicks_total)\b/.test(l));
  } catch (err) {
    return [`(metrics unavailable: ${String(err)})`];
  }
}

async function kafkaRecordCount(bootstrap: string): Promise<number> {
  return withAdmin(bootstrap, async (admin) => {
    const offsets = await admin.fetchTopicOffsets(TOPIC);
    return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  });
}

// ---------------------------------------------------------------------------------------
// Output.
function table(rows: (string | number)[][], header: string[]): string {
  const all = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(all[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}
const fmt = (n: number) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: 2 }) : 'n/a');
const cpuStr = (c: Record<string, number>) => Object.entries(c).filter(([k]) => !k.includes('/')).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
const threadStr = (c: Record<string, number>) => Object.entries(c).filter(([k, v]) => k.startsWith('server/') && v >= 0.01).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k.slice(7)} ${v.toFixed(2)}`).join(', ');
const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');

// ---------------------------------------------------------------------------------------
async function main(): Promise<void> {
  const startedAt = new Date();
  const watchdog = setTimeout(() => {
    say(`benchmark watchdog: still running after ${WATCHDOG_MS / 60000} min; aborting`);
    void cleanup().finally(() => process.exit(1));
  }, WATCHDOG_MS);
  const results: Record<string, unknown> = {
    startedAt: startedAt.toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    config: { CONNECTIONS, SAT_CONNECTIONS, DURATION_S, ROUNDS, WARMUP_S, SYSTEM_WARMUP_S, BATCH_CONNECTIONS, BATCH_SIZE, BATCH_DURATION_S, TOPIC, TARGETS, quick: QUICK },
  };
  const profDir = join(ROOT, 'bench', 'results', `prof-${startedAt.toISOString().replace(/[:.]/g, '-')}`);
  try {
    say(`AdClick gateway benchmark — ${cpus().length} CPUs (${cpus()[0]?.model}), node ${process.version}${QUICK ? ' [--quick]' : ''}`);
    try {
      const psi = readFileSync('/proc/pressure/cpu', 'utf8').split('\n')[0];
      say(`machine before start: loadavg ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}, cpu pressure ${psi} (non-zero: other jobs compete for the CPUs)`);
      results.machineBefore = { loadavg: readFileSync('/proc/loadavg', 'utf8').trim(), cpuPressure: psi };
    } catch { /* not Linux */ }

    // Micro-benchmark first, while nothing else runs.
    say('micro: encoding cost per click ...');
    const micro: MicroRow[] = runMicro(QUICK ? 300 : 1000);
    results.micro = micro;

    say('starting Kafka (throwaway broker) ...');
    const kafka: TestKafka = await startTestKafka({ after: (fn) => void cleanups.push(fn) }, { extraProperties: envJson('BENCH_BROKER_PROPS') });
    say(`  broker ${kafka.bootstrap} ready in ${(kafka.startMs / 1000).toFixed(1)} s`);
    await ensureTopics(kafka.bootstrap, [TOPIC, FLOOR_TOPIC].map((name) => ({ name, partitions: 4, configs: { 'min.insync.replicas': '1' } })), log);

    const redisPid = findRedisPid();
    const fastify = await startBareFastify();
    const gwFlags = PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
    const gw = await startGateway('gateway', kafka.bootstrap, {}, gwFlags);
    say(`  bare fastify :${fastify.port}, gateway :${gw.port} (redis ${gw.redisReady ? 'ready' : 'NOT ready — fail-open path'})`);
    const pids = (server: Child) => ({ server: server.proc.pid, kafka: kafka.broker.pid, redis: redisPid });

    const single = (label: string, port: number, server: Child, isGateway: boolean, durationS = DURATION_S, connections = CONNECTIONS) => (warmupS: number, rateHint?: number) =>
      measure({
        label, port, path: '/v1/clicks', connections, durationS, warmupS, rateHint,
        make: makeSingleBody, perRequestEstimate: 10_000, floorRate: 30_000, maxPool: 1_500_000, countClicks: isGateway, isGateway, pids: pids(server),
      });
    const batch = (label: string, port: number, server: Child, isGateway: boolean, durationS = BATCH_DURATION_S) => (warmupS: number, rateHint?: number) =>
      measure({
        label, port, path: '/v1/clicks/batch', connections: BATCH_CONNECTIONS, durationS, warmupS, rateHint,
        make: makeBatchBody, perRequestEstimate: 100, floorRate: 0, maxPool: 2000, countClicks: true, isGateway, pids: pids(server),
      });

    say(`steady state: ${SYSTEM_WARMUP_S / 2} s each of fastify, gateway batch and gateway single clicks before anything is measured ...`);
    await single('bare fastify (warm-up)', fastify.port, fastify.child, false, 1)(SYSTEM_WARMUP_S / 2);
    await batch('gateway (warm-up)', gw.port, gw.child, true, 1)(SYSTEM_WARMUP_S / 2);
    await single('gateway (warm-up)', gw.port, gw.child, true, 1)(SYSTEM_WARMUP_S / 2);

    const roundsStr = (r: { rate: number; p99: number }[]) => r.map((x) => `${x.rate.toFixed(2)}×/${x.p99.toFixed(1)}×`).join(', ');
    say(`single: ${CONNECTIONS} connections, ${WARMUP_S} s warm-up each, then ${ROUNDS} alternating rounds of ${DURATION_S} s (fastify, gateway, ...), each request a fresh signed click`);
    const singles = await interleaved(ROUNDS, single('bare fastify', fastify.port, fastify.child, false), single('gateway', gw.port, gw.child, true), WARMUP_S);
    const fSingle = singles.a;
    const gSingle = singles.b;
    say(`  bare fastify: ${fmt(fSingle.reqPerSec)} req/s, p99 ${fSingle.p99Ms} ms`);
    say(`  gateway:      ${fmt(gSingle.reqPerSec)} req/s, p99 ${gSingle.p99Ms} ms   (per round, rate/p99 vs fastify: ${roundsStr(singles.ratios)})`);

    say(`batch: ${BATCH_CONNECTIONS} connections, ${BATCH_SIZE} clicks/request, ${BATCH_WARMUP_S} s warm-up each, then ${ROUNDS} alternating rounds of ${BATCH_DURATION_S} s`);
    const batches = await interleaved(ROUNDS, batch('bare fastify', fastify.port, fastify.child, false), batch('gateway', gw.port, gw.child, true), BATCH_WARMUP_S);
    const fBatch = batches.a;
    const gBatch = batches.b;
    say(`  bare fastify: ${fmt(fBatch.clicks!.perSec)} clicks/s`);
    say(`  gateway:      ${fmt(gBatch.clicks!.perSec)} clicks/s`);

    let sat: { fastify: ReturnType<typeof pooled>; gateway: ReturnType<typeof pooled>; ratios: { rate: number; p99: number }[] } | undefined;
    if (SAT_CONNECTIONS) {
      say(`single, saturated: ${SAT_CONNECTIONS} connections, ${WARMUP_S} s warm-up each, then ${ROUNDS} alternating rounds of ${DURATION_S} s`);
      const s = await interleaved(ROUNDS, single('bare fastify', fastify.port, fastify.child, false, DURATION_S, SAT_CONNECTIONS), single('gateway', gw.port, gw.child, true, DURATION_S, SAT_CONNECTIONS), WARMUP_S);
      sat = { fastify: s.a, gateway: s.b, ratios: s.ratios };
      say(`  bare fastify: ${fmt(s.a.reqPerSec)} req/s, p99 ${s.a.p99Ms} ms`);
      say(`  gateway:      ${fmt(s.b.reqPerSec)} req/s, p99 ${s.b.p99Ms} ms   (per round, rate/p99 vs fastify: ${roundsStr(s.ratios)})`);
    }

    const gwMetrics: Record<string, string[]> = { gateway: await scrapeGatewayMetrics(gw.port) };
    results.gatewayMetrics = gwMetrics;

    // The same gateway as a cluster of workers (one per core with "auto"): single clicks
    // alternate with fastify again, batch alternates with the 1-worker gateway.
    type Pooled = ReturnType<typeof pooled>;
    let multi: { label: string; single: Pooled; fastify: Pooled; batch: Pooled; batchOne: Pooled } | undefined;
    if (WORKERS_ON) {
      const label = `gateway, ${WORKERS} workers`;
      const gwN = await startGateway('gateway-workers', kafka.bootstrap, { ADCLICK_GATEWAY_WORKERS: WORKERS });
      say(`${label} (ADCLICK_GATEWAY_WORKERS=${WORKERS}, :${gwN.port}): ${SYSTEM_WARMUP_S / 4} s each of batch and single clicks, then the same alternating rounds ...`);
      await batch(`${label} (warm-up)`, gwN.port, gwN.child, true, 1)(SYSTEM_WARMUP_S / 4);
      await single(`${label} (warm-up)`, gwN.port, gwN.child, true, 1)(SYSTEM_WARMUP_S / 4);
      const s = await interleaved(ROUNDS, single('bare fastify', fastify.port, fastify.child, false), single(label, gwN.port, gwN.child, true), WARMUP_S);
      say(`  single: bare fastify ${fmt(s.a.reqPerSec)} req/s, p99 ${s.a.p99Ms} ms; ${label} ${fmt(s.b.reqPerSec)} req/s, p99 ${s.b.p99Ms} ms (per round: ${roundsStr(s.ratios)})`);
      const b = await interleaved(ROUNDS, batch('gateway', gw.port, gw.child, true), batch(label, gwN.port, gwN.child, true), BATCH_WARMUP_S);
      say(`  batch: gateway ${fmt(b.a.clicks!.perSec)} clicks/s; ${label} ${fmt(b.b.clicks!.perSec)} clicks/s`);
      gwMetrics[label] = await scrapeGatewayMetrics(gwN.port);
      await stopChild(gwN.child.proc);
      multi = { label, single: s.b, fastify: s.a, batch: b.b, batchOne: b.a };
    }
    // The targets of one gateway configuration against the fastify rounds it alternated with.
    const singleTargets = (f: Pooled, g: Pooled) => {
      const rate = g.reqPerSec / f.reqPerSec;
      const p99 = g.p99Ms / f.p99Ms;
      return {
        singleRateRatio: { value: round(rate, 3), target: `>= ${TARGETS.rateRatioMin}`, pass: rate >= TARGETS.rateRatioMin },
        singleP99Ratio: { value: round(p99, 3), target: `<= ${TARGETS.p99RatioMax}`, pass: p99 <= TARGETS.p99RatioMax },
      };
    };
    const batchTarget = (b: Pooled) => ({ value: b.clicks!.perSec, target: `>= ${TARGETS.batchClicksPerSecMin}`, pass: b.clicks!.perSec >= TARGETS.batchClicksPerSecMin && b.clicks!.notAccepted === 0 });
    const targets = { ...singleTargets(fSingle, gSingle), batchClicksPerSec: batchTarget(gBatch) };
    const noLat = <T extends { latencies: Float64Array }>({ latencies: _l, ...rest }: T) => rest;
    results.single = { fastify: noLat(fSingle), gateway: noLat(gSingle), roundRatios: singles.ratios };
    const satTargets = sat && singleTargets(sat.fastify, sat.gateway);
    if (sat) results.saturated = { connections: SAT_CONNECTIONS, fastify: noLat(sat.fastify), gateway: noLat(sat.gateway), roundRatios: sat.ratios, targets: satTargets };
    results.batch = { fastify: noLat(fBatch), gateway: noLat(gBatch), roundRatios: batches.ratios };
    results.targets = targets;
    const multiTargets = multi && { ...singleTargets(multi.fastify, multi.single), batchClicksPerSec: batchTarget(multi.batch) };
    if (multi) results.workers = { env: WORKERS, single: noLat(multi.single), fastify: noLat(multi.fastify), batch: noLat(multi.batch), batchOneWorker: noLat(multi.batchOne), targets: multiTargets };

    // Kafka sanity: every click answered "accepted" must be in the topic, once.
    let kafkaCount: number | undefined;
    try {
      kafkaCount = await kafkaRecordCount(kafka.bootstrap);
      const extra = kafkaCount - gatewayAcceptedTotal.n;
      results.kafka = { topicRecords: kafkaCount, gatewayAccepted: gatewayAcceptedTotal.n, unobservedMax: gatewayAcceptedTotal.unobservedMax, consistent: extra >= 0 && extra <= gatewayAcceptedTotal.unobservedMax };
    } catch (err) {
      results.kafka = { error: String(err) };
    }

    // The contract floor: what bare fastify reaches when each single click also waits for
    // the two round trips API.md requires before a 202 (and nothing else of the gateway's work),
    // at the latency-bound and at the saturated concurrency.
    const floors: { connections: number; rows: Pooled[]; ratios: { rate: number; p99: number }[][]; gateway: Pooled }[] = [];
    if (FLOOR_ON) {
      const modes = [['redis', 'floor: fastify + Redis read'], ['kafka', 'floor: fastify + Kafka ack'], ['redis+kafka', 'floor: fastify + Redis read + Kafka ack']] as const;
      const servers = [];
      for (const [mode, label] of modes) servers.push({ label, ...(await startBareFastify(`floor-${mode}`, 'bench/floor-fastify.ts', [mode, kafka.bootstrap, FLOOR_TOPIC])) });
      for (const [connections, gateway] of [[CONNECTIONS, gSingle], ...(sat ? [[SAT_CONNECTIONS, sat.gateway] as const] : [])] as const) {
        say(`contract floor, ${connections} connections: ${modes.map(([m]) => m).join(', ')} next to bare fastify, ${ROUNDS} alternating rounds of ${DURATION_S} s (DIAGNOSTIC, see bench/floor-fastify.ts) ...`);
        const sides = await interleavedMany(ROUNDS, [single('bare fastify (vs floor)', fastify.port, fastify.child, false, DURATION_S, connections), ...servers.map((f) => single(f.label, f.port, f.child, false, DURATION_S, connections))], WARMUP_S);
        floors.push({ connections, rows: sides.map((x) => x.pooled), ratios: sides.slice(1).map((x) => x.ratios), gateway });
        for (const [i, x] of sides.slice(1).entries()) say(`  ${servers[i]!.label}: ${fmt(x.pooled.reqPerSec)} req/s, p99 ${x.pooled.p99Ms} ms (per round vs fastify: ${roundsStr(x.ratios)})`);
      }
      for (const f of servers) await stopChild(f.child.proc);
      results.floor = floors.map((f) => ({ connections: f.connections, rows: f.rows.map(noLat), roundRatios: f.ratios }));
    }

    // Diagnostics (clearly not part of the targets).
    const diag: LoadStats[] = [];
    if (AB_ENV) {
      const label = `gateway B ${JSON.stringify(AB_ENV)}`;
      say(`A/B diagnostic: ${label} vs gateway A, ${ROUNDS} alternating rounds each for single and batch ...`);
      const gwB = await startGateway('gateway-b', kafka.bootstrap, AB_ENV);
      const abSingle = await interleaved(ROUNDS, single('gateway A', gw.port, gw.child, true), single(label, gwB.port, gwB.child, true), WARMUP_S);
      const abBatch = await interleaved(ROUNDS, batch('gateway A', gw.port, gw.child, true), batch(label, gwB.port, gwB.child, true), BATCH_WARMUP_S);
      await stopChild(gwB.child.proc);
      diag.push(noLat(abSingle.a), noLat(abSingle.b), noLat(abBatch.a), noLat(abBatch.b));
      results.ab = { env: AB_ENV, singleRoundRatios: abSingle.ratios, batchRoundRatios: abBatch.ratios };
      say(`  single B/A per round (rate/p99): ${roundsStr(abSingle.ratios)}; pooled: ${fmt(abSingle.a.reqPerSec)} vs ${fmt(abSingle.b.reqPerSec)} req/s, p99 ${abSingle.a.p99Ms} vs ${abSingle.b.p99Ms} ms`);
      say(`  batch  B/A per round (rate/p99): ${roundsStr(abBatch.ratios)}; pooled: ${fmt(abBatch.a.clicks!.perSec)} vs ${fmt(abBatch.b.clicks!.perSec)} clicks/s`);
    }
    const profiles: { label: string; summary: ReturnType<typeof summarizeCpuProfile> }[] = [];
    if (PROFILE) {
      await stopChild(gw.child.proc); // SIGTERM → graceful exit → profile written
      try {
        const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
        if (file) {
          profiles.push({ label: `gateway, first measured round (${DURATION_S} s) of POST /v1/clicks`, summary: summarizeCpuProfile(join(profDir, file), 20, gSingle.windowUs) });
          profiles.push({ label: `gateway, first measured round (${BATCH_DURATION_S} s) of POST /v1/clicks/batch`, summary: summarizeCpuProfile(join(profDir, file), 20, gBatch.windowUs) });
        }
        results.profile = { file: file && join(profDir, file), profiles };
      } catch (err) {
        results.profile = { error: String(err) };
      }
    }
    if (DIAG) {
      await stopChild(gw.child.proc);
      say('diagnostic: gateway with Redis unreachable (dedup skipped, in-process rate limiter) ...');
      const noRedis = await startGateway('gateway-no-redis', kafka.bootstrap, { REDIS_URL: 'redis://127.0.0.1:1' });
      diag.push(noLat(await single('DIAG gateway, Redis unreachable', noRedis.port, noRedis.child, true)(WARMUP_S)));
      diag.push(noLat(await batch('DIAG gateway, Redis unreachable', noRedis.port, noRedis.child, true)(BATCH_WARMUP_S)));
      gwMetrics['DIAG gateway, Redis unreachable'] = await scrapeGatewayMetrics(noRedis.port);
      await stopChild(noRedis.child.proc);
      say(`diagnostic: gateway with Redis, ADCLICK_KAFKA_LINGER_MS=${DIAG_LINGER_MS} (BENCH_DIAG_LINGER_MS) ...`);
      const linger = await startGateway('gateway-linger', kafka.bootstrap, { ADCLICK_KAFKA_LINGER_MS: String(DIAG_LINGER_MS) });
      diag.push(noLat(await single(`DIAG gateway, linger.ms ${DIAG_LINGER_MS}`, linger.port, linger.child, true)(WARMUP_S)));
      diag.push(noLat(await batch(`DIAG gateway, linger.ms ${DIAG_LINGER_MS}`, linger.port, linger.child, true)(BATCH_WARMUP_S)));
      gwMetrics[`DIAG gateway, linger.ms ${DIAG_LINGER_MS}`] = await scrapeGatewayMetrics(linger.port);
      await stopChild(linger.child.proc);
    }
    if (diag.length) results.diag = diag;

    // ---- print ------------------------------------------------------------------------
    say('');
    say(`== encoding micro-benchmark (one ClickEvent, same object) ==`);
    say(table(micro.map((m) => [m.name, fmt(m.opsPerSec), fmt(m.nsPerOp), m.note ?? '']), ['operation', 'ops/s', 'ns/op', 'note']));
    say('');
    say(`== POST /v1/clicks (${CONNECTIONS} conns${sat ? ` and, saturated, ${SAT_CONNECTIONS}` : ''}, ${ROUNDS}×${DURATION_S} s alternating with the baseline after ${WARMUP_S} s warm-up; latency measured by the client, µs resolution) ==`);
    const singleRows = [fSingle, gSingle, ...(multi ? [{ ...multi.fastify, target: 'bare fastify (vs workers)' }, multi.single] : []),
      ...(sat ? [{ ...sat.fastify, target: `bare fastify, ${SAT_CONNECTIONS} conns` }, { ...sat.gateway, target: `gateway, ${SAT_CONNECTIONS} conns` }] : []), ...diag.filter((d) => d.path === '/v1/clicks')];
    say(table(singleRows.map((s) => [s.target, fmt(s.reqPerSec), s.p50Ms, s.p90Ms, s.p99Ms, s.maxMs, s.non2xx + s.errors + s.timeouts, cpuStr(s.cpuCores)]),
      ['target', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'non-2xx/err', 'CPU cores used (others = processes not in this benchmark; steal = taken by the hypervisor)']));
    say('');
    say(`== POST /v1/clicks/batch (${BATCH_SIZE} clicks/request, ${BATCH_CONNECTIONS} conns, ${ROUNDS}×${BATCH_DURATION_S} s alternating with the baseline after ${BATCH_WARMUP_S} s warm-up) ==`);
    const batchRows = [fBatch, gBatch, ...(multi ? [{ ...multi.batchOne, target: 'gateway (vs workers)' }, multi.batch] : []), ...diag.filter((d) => d.path === '/v1/clicks/batch')];
    say(table(batchRows.map((s) => [s.target, fmt(s.clicks!.perSec), fmt(s.reqPerSec), s.p50Ms, s.p99Ms, s.clicks!.notAccepted, cpuStr(s.cpuCores)]),
      ['target', 'clicks/s', 'req/s', 'p50 ms', 'p99 ms', 'not accepted', 'CPU cores used (others = processes not in this benchmark; steal = taken by the hypervisor)']));
    say('');
    say('== targets (ratios against the bare fastify baseline of this run) ==');
    say(table([
      [`${CONNECTIONS} conns: gateway / fastify req/s`, targets.singleRateRatio.value.toFixed(3), targets.singleRateRatio.target, verdict(targets.singleRateRatio.pass)],
      [`${CONNECTIONS} conns: gateway p99 / fastify p99`, targets.singleP99Ratio.value.toFixed(3), targets.singleP99Ratio.target, verdict(targets.singleP99Ratio.pass)],
      ['gateway batch clicks/s', fmt(targets.batchClicksPerSec.value), targets.batchClicksPerSec.target, verdict(targets.batchClicksPerSec.pass)],
      ...(satTargets ? [
        [`${SAT_CONNECTIONS} conns: gateway / fastify req/s`, satTargets.singleRateRatio.value.toFixed(3), targets.singleRateRatio.target, verdict(satTargets.singleRateRatio.pass)],
        [`${SAT_CONNECTIONS} conns: gateway p99 / fastify p99`, satTargets.singleP99Ratio.value.toFixed(3), targets.singleP99Ratio.target, verdict(satTargets.singleP99Ratio.pass)],
      ] : []),
      ...(multiTargets ? [
        [`${multi!.label}: / fastify req/s`, multiTargets.singleRateRatio.value.toFixed(3), targets.singleRateRatio.target, verdict(multiTargets.singleRateRatio.pass)],
        [`${multi!.label}: p99 / fastify p99`, multiTargets.singleP99Ratio.value.toFixed(3), targets.singleP99Ratio.target, verdict(multiTargets.singleP99Ratio.pass)],
        [`${multi!.label}: batch clicks/s`, fmt(multiTargets.batchClicksPerSec.value), targets.batchClicksPerSec.target, verdict(multiTargets.batchClicksPerSec.pass)],
      ] : []),
    ], ['metric', 'value', 'target', 'result']));
    for (const floor of floors) {
      // CPU per request in every process of the path (server, broker, Redis, load generator).
      // With unlimited connections every side ends up bound by the shared cores alone, and
      // its rate ratio to fastify tends to fastify's CPU per request over its own.
      const cpuPerReqUs = (r: Pooled) => (['server', 'kafka', 'redis', 'client'].reduce((t, k) => t + (r.cpuCores[k] ?? 0), 0) * 1e6) / r.reqPerSec;
      const f0 = floor.rows[0]!;
      const rows = [...floor.rows, { ...floor.gateway, target: 'gateway (its own rounds, above)' }];
      say('');
      say(`== DIAGNOSTIC contract floor, POST /v1/clicks (${floor.connections} conns, ${ROUNDS}×${DURATION_S} s alternating; bare fastify plus only the round trips API.md puts before a 202) ==`);
      say(table(rows.map((r) => [r.target, fmt(r.reqPerSec), `${(r.reqPerSec / f0.reqPerSec).toFixed(3)}×`, r.p50Ms, r.p99Ms, `${(r.p99Ms / f0.p99Ms).toFixed(2)}×`, r.non2xx + r.errors + r.timeouts, cpuPerReqUs(r).toFixed(0), `${(cpuPerReqUs(f0) / cpuPerReqUs(r)).toFixed(2)}×`, cpuStr(r.cpuCores)]),
        ['target', 'req/s', 'vs fastify', 'p50 ms', 'p99 ms', 'p99 vs fastify', 'non-2xx/err', 'CPU µs/req', 'CPU-bound ratio', 'CPU cores used']));
      const both = floor.rows[3]!;
      const bothRate = both.reqPerSec / f0.reqPerSec;
      const bothP99 = both.p99Ms / f0.p99Ms;
      say(`contract floor vs the single-click targets: ${bothRate.toFixed(3)}× the rate (target >= ${TARGETS.rateRatioMin}), ${bothP99.toFixed(2)}× the p99 (target <= ${TARGETS.p99RatioMax})` +
        (bothRate < TARGETS.rateRatioMin || bothP99 > TARGETS.p99RatioMax
          ? ` — the floor itself misses: at ${floor.connections} connections no gateway that keeps the contract can meet them on this machine as measured`
          : ' — the floor meets them: the gap to the gateway is its own work'));
      say(`CPU µs/req = CPU of server, broker, Redis and load generator per answered request; CPU-bound ratio = fastify's CPU µs/req over the row's: the rate ratio once connections no longer limit and the ${cpus().length} shared cores do`);
      say(`the gateway reached ${(floor.gateway.reqPerSec / both.reqPerSec).toFixed(2)}× the floor's rate (its own work: signature, validation, rate limit, encoding, metrics, dedup mark)`);
    }
    const k = results.kafka as { topicRecords?: number; gatewayAccepted?: number; unobservedMax?: number; consistent?: boolean; error?: string };
    say('');
    say(k.error ? `kafka sanity: could not count records (${k.error})`
      : `kafka sanity: ${fmt(k.topicRecords!)} records in "${TOPIC}" vs ${fmt(k.gatewayAccepted!)} clicks answered "accepted" (warm-ups included); ` +
        `${fmt(k.topicRecords! - k.gatewayAccepted!)} extra, at most ${fmt(k.unobservedMax!)} expected from requests in flight when autocannon stopped — ${k.consistent ? 'consistent' : 'INCONSISTENT'}`);
    const threadRows = [...singleRows, ...batchRows].filter((s) => !s.target.startsWith('bare fastify'));
    say('');
    say('gateway process CPU by thread (cores; rdk:* = librdkafka, node = JS main thread):');
    for (const s of threadRows) say(`  ${s.path.padEnd(17)} ${s.target.padEnd(32)} ${threadStr(s.cpuCores)}`);
    say('');
    say('gateway server-side time per request by stage (its own histograms, measured run only; p50/p99 = histogram bucket bounds):');
    for (const s of threadRows) {
      say(`  ${s.path.padEnd(17)} ${s.target.padEnd(32)} ${Object.entries(s.stages ?? {}).map(([k, v]) => `${k} mean ${v.meanMs} ms (p50 ≤${v.p50Ms}, p99 ≤${v.p99Ms})`).join('; ')}`);
    }
    say('');
    say('gateway counters at the end (all runs of that process, warm-ups included):');
    for (const [name, lines] of Object.entries(gwMetrics)) for (const l of lines) say(`  ${name.padEnd(32)} ${l}`);
    const onTheFly = [...singleRows, ...batchRows].filter((s) => s.bodiesMadeOnTheFly > 0);
    if (onTheFly.length) say(`note: body pool ran out in ${onTheFly.map((s) => `${s.target} ${s.path} (${s.bodiesMadeOnTheFly} signed on the fly)`).join('; ')}`);
    for (const { label, summary: profile } of profiles) {
      say('');
      say(`== DIAGNOSTIC gateway JS main-thread CPU profile: ${label} (${fmt(profile.totalMs)} ms sampled, includes idle) ==`);
      say(table(profile.byCategory.map((c) => [c.name, fmt(c.selfMs), `${c.pct}%`]), ['category (self time)', 'ms', 'share']));
      say('');
      say(table(profile.topFunctions.map((f) => [f.name, f.where, fmt(f.selfMs), `${f.pct}%`]), ['function (self time)', 'where', 'ms', 'share']));
    }

    mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
    const out = join(ROOT, 'bench', 'results', `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(out, JSON.stringify(results, null, 2));
    say('');
    say(`results: ${out}`);
    say('(benchmark only: targets are reported, never enforced; exit code 0)');
  } finally {
    clearTimeout(watchdog);
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  async (err) => {
    say(`benchmark failed: ${err instanceof Error ? err.stack : String(err)}`);
    await cleanup();
    process.exit(1);
  },
);

// Benchmark (never a test) of issue 16's HTTP admission: the server CPU a refused abusive
// request costs on each port, and whether slow requests are closed at their timeout.
//
//   node --import tsx bench/abuse-admission.ts [--baseline <checkout root>] [--count N]
//
// Each code base (this checkout, and with --baseline another one, e.g. a `git worktree`
// of the commit before) runs as its own child process serving the gateway app (real Redis
// limiter, no Kafka: nothing here gets as far as producing) and the query app (a storage
// that is never asked) on 127.0.0.1. The parent sends the requests and reads the child's
// own CPU time (process.cpuUsage) before and after each scenario. Bounded: N requests per
// scenario (default 10), 50 slow connections, a few seconds of waiting each.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HEADERS_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 2000;
const SIGNING_SECRET = 'bench-abuse-admission-secret-0123456789abcdef';
const MIB = 1024 * 1024;

// ------------------------------------------------------------------ child: the servers

async function serve(root: string): Promise<void> {
  const load = (p: string) => import(pathToFileURL(resolve(root, p)).href);
  const { buildGatewayApp } = await load('src/gateway/app.ts');
  const { createRateLimiter } = await load('src/gateway/rate-limiter.ts');
  const { buildQueryApp } = await load('src/query/app.ts');
  const { createOptionalRedis } = await load('src/shared/redis.ts');
  const { createRegistry } = await load('src/shared/metrics.ts');
  const { pino } = await import('pino');
  const logger = pino({ level: 'silent' });
  const redis = createOptionalRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', logger);
  if (redis && redis.status !== 'ready') await new Promise((r) => redis.once('ready', r));
  // One request per second, burst 1: every fresh client address gets exactly one request.
  const rateLimiter = createRateLimiter(redis, { perSecond: 1, burst: 1 });
  const nothing = () => {
    throw new Error('not reached in this benchmark');
  };
  const gateway = buildGatewayApp({
    options: {
      signingKeys: new Map([['bench', SIGNING_SECRET]]), maxClickAgeMs: 86_400_000, maxClockSkewMs: 300_000,
      maxBodyBytes: 4096, maxBatchBodyBytes: MIB, maxBatchClicks: 1000, trustedProxies: ['127.0.0.1'], retryAfterSec: 2,
      ipHashKey: 'bench', gatewayId: 'bench', timeouts: { headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS },
    },
    publisher: { publish: (records: unknown[]) => Promise.resolve(records.map(() => true)), ready: () => true, inflight: () => 0, breakerState: () => 'closed', close: async () => {}, partitionCount: () => 1 },
    dedup: { seen: async (keys: string[]) => keys.map(() => false), mark: async () => {} },
    rateLimiter,
    admission: rateLimiter,
    logger,
    registry: createRegistry('gateway', false),
  });
  const query = buildQueryApp({
    repo: new Proxy({}, { get: () => nothing }),
    logger,
    options: { trustedProxies: ['127.0.0.1'], timeouts: { headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS } },
  });
  await gateway.listen({ host: '127.0.0.1', port: 0 });
  await query.listen({ host: '127.0.0.1', port: 0 });
  process.on('message', (msg: { cmd?: string }) => {
    if (msg.cmd === 'cpu') {
      const u = process.cpuUsage();
      process.send!({ cpuMs: (u.user + u.system) / 1000 });
    } else if (msg.cmd === 'stop') {
      void Promise.all([gateway.close(), query.close()]).finally(() => {
        redis?.disconnect();
        process.exit(0);
      });
    }
  });
  process.send!({ gatewayPort: gateway.server.address().port, queryPort: query.server.address().port });
}

// ------------------------------------------------------------------ parent: the clients

interface Server {
  readonly name: string;
  readonly child: ChildProcess;
  readonly gatewayPort: number;
  readonly queryPort: number;
}

function next<T>(child: ChildProcess): Promise<T> {
  return new Promise((res) => child.once('message', (m) => res(m as T)));
}

async function start(name: string, root: string): Promise<Server> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', root], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ports = await next<{ gatewayPort: number; queryPort: number }>(child);
  return { name, child, ...ports };
}

async function cpuMs(s: Server): Promise<number> {
  const reply = next<{ cpuMs: number }>(s.child);
  s.child.send({ cmd: 'cpu' });
  return (await reply).cpuMs;
}

/** One request on its own connection; its status, or 'closed' when the server hung up first. */
function send(port: number, path: string, body: string | Buffer, clientIp: string): Promise<number | 'closed'> {
  return new Promise((done) => {
    const req = request({
      host: '127.0.0.1', port, method: 'POST', path, agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-forwarded-for': clientIp },
    }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode ?? 0));
      res.on('error', () => done(res.statusCode ?? 0));
    });
    req.on('error', () => done('closed'));
    req.end(body);
  });
}

const freshIp = () => `2001:db8:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}::1`;

function signedBatch(n: number): string {
  const now = Date.now();
  return JSON.stringify({
    clicks: Array.from({ length: n }, (_, i) => {
      const c = { impression_id: `imp_bench_${randomBytes(6).toString('hex')}_${i}`, event_type: 'click', ad_id: 1 + i, campaign_id: 55, advertiser_id: 7, user_id: `u_${i}`, timestamp: now - 1000, key_id: 'bench' };
      return c;
    }),
  });
}

async function signBatch(text: string): Promise<string> {
  const { signClick } = await import('../src/shared/signature.ts');
  const body = JSON.parse(text) as { clicks: Record<string, unknown>[] };
  for (const c of body.clicks) c.signature = signClick(c as never, SIGNING_SECRET);
  return JSON.stringify(body);
}

interface Scenario {
  readonly name: string;
  readonly port: (s: Server) => number;
  readonly path: string;
  readonly body: string;
  /** The client address of request i (a fresh one, or one already limited). */
  readonly ip: (i: number) => string;
  readonly prepare?: (s: Server) => Promise<void>;
}

async function measure(s: Server, sc: Scenario, count: number): Promise<{ msPerRequest: number; statuses: string }> {
  await sc.prepare?.(s);
  const before = await cpuMs(s);
  const statuses = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const st = String(await send(sc.port(s), sc.path, sc.body, sc.ip(i)));
    statuses.set(st, (statuses.get(st) ?? 0) + 1);
  }
  const after = await cpuMs(s);
  return { msPerRequest: (after - before) / count, statuses: [...statuses].map(([k, v]) => `${k}×${v}`).join(' ') };
}

/** `n` connections that send headers (and, with a body, a trickle of it) forever; how many the server closes, and when. */
async function slow(port: number, n: number, withBody: boolean, waitMs: number): Promise<{ closed: number; medianMs: number | null }> {
  const t0 = Date.now();
  const closedAt: number[] = [];
  const sockets = Array.from({ length: n }, () => {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.on('data', () => undefined);
    s.on('connect', () => {
      s.write(withBody
        ? `POST /v1/clicks/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-forwarded-for: ${freshIp()}\r\ncontent-length: 100000\r\n\r\n{"clicks": [`
        : `GET /v1/campaigns HTTP/1.1\r\nhost: x\r\nx-forwarded-for: ${freshIp()}\r\n`);
    });
    const drip = setInterval(() => s.writable && s.write(withBody ? ' ' : 'x-slow: 1\r\n'), 200);
    s.on('close', () => {
      clearInterval(drip);
      closedAt.push(Date.now() - t0);
    });
    return { s, drip };
  });
  await new Promise((r) => setTimeout(r, waitMs));
  const closed = closedAt.length;
  for (const { s, drip } of sockets) {
    clearInterval(drip);
    s.destroy();
  }
  closedAt.sort((a, b) => a - b);
  return { closed, medianMs: closed ? closedAt.slice(0, closed)[Math.floor(closed / 2)]! : null };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const count = Number(args[args.indexOf('--count') + 1] ?? 10) || 10;
  const baselineRoot = args.includes('--baseline') ? args[args.indexOf('--baseline') + 1] : undefined;
  const here = resolve(fileURLToPath(import.meta.url), '../..');
  const nested = '['.repeat(MIB / 2) + ']'.repeat(MIB / 2);
  const bigString = JSON.stringify('x'.repeat(MIB - 2));
  const batch = await signBatch(signedBatch(1000));
  const limitedIp = freshIp();
  const scenarios: Scenario[] = [
    { name: 'gateway: nested 1 MiB body (batch route)', port: (s) => s.gatewayPort, path: '/v1/clicks/batch', body: nested, ip: freshIp },
    {
      name: 'gateway: limited client, batch of 1000', port: (s) => s.gatewayPort, path: '/v1/clicks/batch', body: batch, ip: () => limitedIp,
      // One batch that passes (and spends the bucket) before the measured ones.
      prepare: async (s) => void (await send(s.gatewayPort, '/v1/clicks/batch', batch, limitedIp)),
    },
    { name: 'gateway: POST /anything, 1 MiB body', port: (s) => s.gatewayPort, path: '/anything', body: bigString, ip: freshIp },
    { name: 'query:   POST /anything, 1 MiB body', port: (s) => s.queryPort, path: '/anything', body: bigString, ip: freshIp },
    { name: 'query:   POST /anything, nested 1 MiB', port: (s) => s.queryPort, path: '/anything', body: nested, ip: freshIp },
  ];
  const servers = [await start('this checkout', here)];
  if (baselineRoot) servers.unshift(await start(`baseline ${baselineRoot}`, resolve(baselineRoot)));
  const issueFigures: Record<string, string> = {
    'gateway: nested 1 MiB body (batch route)': '~500',
    'gateway: limited client, batch of 1000': '~250',
    'gateway: POST /anything, 1 MiB body': '~185',
  };
  console.log(`CPU of the server process per refused request (ms), ${count} requests each; Redis limiter 1/s, burst 1`);
  for (const sc of scenarios) {
    const cells: string[] = [];
    for (const s of servers) {
      const m = await measure(s, sc, count);
      cells.push(`${s.name}: ${m.msPerRequest.toFixed(2)} ms [${m.statuses}]`);
    }
    console.log(`  ${sc.name.padEnd(42)} ${cells.join('  |  ')}${issueFigures[sc.name] ? `  (issue: ${issueFigures[sc.name]} ms)` : ''}`);
  }
  const waitMs = REQUEST_TIMEOUT_MS + 3000;
  console.log(`Slow connections (50 each; headers timeout ${HEADERS_TIMEOUT_MS} ms, request/body timeout ${REQUEST_TIMEOUT_MS} ms), closed by the server within ${waitMs} ms:`);
  for (const s of servers) {
    const body = await slow(s.gatewayPort, 50, true, waitMs);
    const headers = await slow(s.queryPort, 50, false, waitMs);
    console.log(`  ${s.name}: gateway slow bodies ${body.closed}/50 closed (median ${body.medianMs ?? '-'} ms); query slow headers ${headers.closed}/50 closed (median ${headers.medianMs ?? '-'} ms)`);
  }
  for (const s of servers) {
    const exited = new Promise((r) => s.child.once('exit', r));
    s.child.send({ cmd: 'stop' });
    await exited;
  }
}

if (process.argv[2] === '--serve') await serve(process.argv[3]!);
else await main();

// Redis holds decisions the gateway acts on; anyone who can write to it must not be able to
// turn them into lost clicks. Real Redis: the shared one on 127.0.0.1:6379 for marks, a
// throwaway redis-server with a password for AUTH, and one with TLS (a throwaway CA) and an
// ACL user for rediss://.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pino from 'pino';
import { createEdgeDedup, dedupKey, markValue, verifiedAdmission } from '../../src/gateway/edge-dedup.ts';
import { createRateLimiter } from '../../src/gateway/rate-limiter.ts';
import { createOptionalRedis } from '../../src/shared/redis.ts';
import { deriveFromSigningKeys, signClick } from '../../src/shared/signature.ts';
import { collectLines } from '../helpers/child-output.ts';

const run = randomBytes(4).toString('hex');
const silent = pino({ level: 'silent' });
const SECRET = 's'.repeat(32);
const MARK_KEY = deriveFromSigningKeys(new Map([['k1', SECRET]]), 'edge-dedup-mark/v1');

/** The shared Redis; `cleanup` keys are deleted before it is disconnected. */
async function readyRedis(cleanup: string[]): Promise<Redis> {
  const r = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
  after(async () => {
    if (cleanup.length) await r.del(...cleanup);
    r.disconnect();
  });
  if (r.status !== 'ready') await new Promise((res) => r.once('ready', res));
  return r;
}

test('a planted or copied edge-dedup mark does not make a click a duplicate; a genuine mark does', async () => {
  const key = (n: number) => dedupKey('click', `imp_${run}_trust_${n}`);
  const r = await readyRedis([key(1), key(2), key(3), key(4)]);
  const dedup = createEdgeDedup(r, 60, (err) => assert.fail(String(err)), MARK_KEY);
  await r.set(key(1), '1', 'EX', 60); // what every mark used to be: trivially forged
  await r.set(key(2), 'm1.AAAAAAAAAAAAAAAAAAAAAA', 'EX', 60); // right shape, wrong MAC
  await dedup.mark([key(3)]);
  await r.set(key(4), (await r.get(key(3)))!, 'EX', 60); // a genuine mark copied to another click
  assert.deepEqual(await dedup.seen([key(1), key(2), key(3), key(4)]), [false, false, true, false]);
  assert.deepEqual(await dedup.seen([key(1)]), [false], 'single-key path (GET)');
  assert.deepEqual(await dedup.seen([key(3)]), [true]);
  // Another gateway with the same signing keys trusts the mark; one with other keys does not.
  assert.deepEqual(await createEdgeDedup(r, 60, () => {}, MARK_KEY).seen([key(3)]), [true]);
  const other = deriveFromSigningKeys(new Map([['k2', 't'.repeat(32)]]), 'edge-dedup-mark/v1');
  assert.deepEqual(await createEdgeDedup(r, 60, () => {}, other).seen([key(3)]), [false]);
  assert.equal(await r.get(key(3)), markValue(MARK_KEY, key(3)));
});

test('admission (one Redis script) only answers seen for marks that verify', async () => {
  const key = (n: number) => dedupKey('click', `imp_${run}_adm_${n}`);
  const r = await readyRedis([key(1), key(2), key(3)]);
  const dedup = createEdgeDedup(r, 60, (err) => assert.fail(String(err)), MARK_KEY);
  const limiter = createRateLimiter(r, { perSecond: 1000, burst: 1000 });
  await r.set(key(1), '1', 'EX', 60);
  await dedup.mark([key(2)]);
  const ip = `198.51.100.${Math.floor(Math.random() * 250)}-${run}`;
  const raw = await limiter.admit(ip, [key(1), key(2), key(3)]);
  assert.deepEqual(raw.seen, [true, true, false], 'the script itself only checks existence');
  const checked = await verifiedAdmission(limiter, dedup).admit(ip, [key(1), key(2), key(3)]);
  assert.equal(checked.decision.allowed, true);
  assert.deepEqual(checked.seen, [false, true, false]);
});

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

test('REDIS_URL with user and password: AUTH/ACL works, and the password never reaches the log', async () => {
  const port = await freePort();
  const password = `pw-${run}-never-logged`;
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--user', 'default', 'off', '--user', 'gateway', 'on', `>${password}`, '~adclick:*', '+@all'], { stdio: 'ignore' });
  after(() => child.kill('SIGKILL'));
  const lines: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
  const logger = pino({ level: 'info' }, sink);
  let redis: Redis | null = null;
  for (let i = 0; i < 50 && redis?.status !== 'ready'; i++) {
    redis?.disconnect();
    redis = createOptionalRedis(`redis://gateway:${password}@127.0.0.1:${port}`, logger);
    await new Promise((res) => setTimeout(res, 200));
  }
  after(() => redis?.disconnect());
  assert.equal(redis?.status, 'ready');
  assert.equal(await redis!.set(`adclick:seen:click:${run}`, 'x'), 'OK');
  const wrong = createOptionalRedis(`redis://gateway:wrong-${run}@127.0.0.1:${port}`, logger);
  await new Promise((res) => setTimeout(res, 500));
  assert.notEqual(wrong!.status, 'ready', 'a wrong password is refused');
  wrong!.disconnect();
  const text = lines.join('');
  assert.match(text, /redis connected/);
  assert.match(text, /gateway:\*\*\*@127\.0\.0\.1/);
  assert.ok(!text.includes(password) && !text.includes(`wrong-${run}`), 'a password reached the log');
});

// Issue 16 asked for AUTH/ACL and TLS. rediss:// against a real TLS redis-server whose
// certificate (SAN IP:127.0.0.1) is signed by a throwaway CA; the product trusts that CA the
// documented way only, NODE_EXTRA_CA_CERTS, which Node reads at start-up: so the gateway and
// the product's client run as child processes.
const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: () => string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await sleep(100);
  }
}

interface TlsRedis {
  readonly port: number;
  readonly caFile: string;
  readonly password: string;
  /** What the product is given: rediss://gateway:<password>@127.0.0.1:<port>. */
  readonly url: string;
  /** The test's own TLS client (the CA passed directly), to read what the product wrote. */
  readonly check: Redis;
}

async function startTlsRedis(): Promise<TlsRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'adclick-redis-tls-'));
  after(() => rm(dir, { recursive: true, force: true }));
  const f = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileP('openssl', args, { timeout: 30_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=adclick throwaway test CA');
  await openssl('req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  await writeFile(f('server.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  await openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '1', '-extfile', f('server.ext'));
  const port = await freePort();
  const password = `pw-${run}-tls-never-logged`;
  // Also on 127.0.0.2, an address the certificate does not name.
  const child = spawn('redis-server', ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '127.0.0.2', '--save', '', '--appendonly', 'no',
    '--tls-cert-file', f('server.pem'), '--tls-key-file', f('server.key'), '--tls-ca-cert-file', f('ca.pem'), '--tls-auth-clients', 'no',
    '--user', 'default', 'off', '--user', 'gateway', 'on', `>${password}`, '~adclick:*', '+@all'], { stdio: 'ignore' });
  after(() => child.kill('SIGKILL'));
  const check = new Redis({ host: '127.0.0.1', port, username: 'gateway', password, tls: { ca: await readFile(f('ca.pem')) }, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  check.on('error', () => {}); // until redis-server listens
  after(() => check.disconnect());
  await until(() => `the TLS redis-server on ${port}`, () => check.status === 'ready', 15_000);
  return { port, caFile: f('ca.pem'), password, url: `rediss://gateway:${password}@127.0.0.1:${port}`, check };
}

function signedClick(imp: string) {
  const c = { impression_id: imp, event_type: 'click', ad_id: 7, campaign_id: 3, advertiser_id: 1, user_id: 'u1', timestamp: Date.now() - 500, key_id: 'k1' };
  return { ...c, signature: signClick(c, SECRET) };
}

function call(port: number, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ host: '127.0.0.1', port, method, path, agent: false, timeout: 10_000, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 10 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Environment for a product child: no inherited CA, Redis or Kafka settings; `extra` on top. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k === 'NODE_EXTRA_CA_CERTS' || k === 'REDIS_URL' || k.startsWith('ADCLICK_') || k.startsWith('KAFKA_')) delete env[k];
  return { ...env, ...extra };
}

/**
 * The real gateway (src/gateway/main.ts, one worker) with REDIS_URL=`url`. Its Kafka is a
 * loopback port nobody listens on: clicks that reach the publisher are answered 503, which
 * tells them apart from clicks the Redis edge dedup answered.
 */
async function startGateway(url: string, caFile: string | undefined) {
  const port = await freePort();
  const proc: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/gateway/main.ts'], {
    env: childEnv({
      ...(caFile ? { NODE_EXTRA_CA_CERTS: caFile } : {}),
      REDIS_URL: url,
      ADCLICK_BIND_HOST: '127.0.0.1',
      ADCLICK_GATEWAY_PORT: String(port),
      ADCLICK_GATEWAY_WORKERS: '1',
      KAFKA_BROKERS: `127.0.0.1:${await freePort()}`,
      ADCLICK_BACKPRESSURE_MAX_LAG: '0',
      ADCLICK_SIGNING_KEYS: `k1:${SECRET}`,
      LOG_LEVEL: 'info',
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = collectLines(proc);
  after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  await until(() => `the gateway listening\n${lines.join('\n')}`, () => {
    if (proc.exitCode !== null) throw new Error(`the gateway exited ${proc.exitCode}\n${lines.join('\n')}`);
    return lines.some((l) => l.includes('"gateway listening"'));
  }, 60_000);
  return { proc, port, lines };
}

test('rediss:// with an ACL user: the real gateway and the product client use a TLS Redis (CA from NODE_EXTRA_CA_CERTS), password never logged', async () => {
  const redis = await startTlsRedis();
  const gw = await startGateway(redis.url, redis.caFile);
  await until(() => `/readyz to report redis\n${gw.lines.join('\n')}`, async () => JSON.parse((await call(gw.port, 'GET', '/readyz')).text).checks?.redis === true, 15_000);

  // The edge-dedup read and the rate-limit charge run in one script on the TLS server: a
  // genuine mark answers duplicate; an unmarked click goes on to Kafka (down here: 503).
  const marked = dedupKey('click', `imp_${run}_tls_gw`);
  await redis.check.set(marked, markValue(MARK_KEY, marked), 'EX', 60);
  const dup = await call(gw.port, 'POST', '/v1/clicks', signedClick(`imp_${run}_tls_gw`));
  assert.equal(dup.status, 202, dup.text);
  assert.equal(JSON.parse(dup.text).status, 'duplicate', dup.text);
  const fresh = await call(gw.port, 'POST', '/v1/clicks', signedClick(`imp_${run}_tls_gw_new`));
  assert.equal(fresh.status, 503, fresh.text);
  assert.ok(await redis.check.exists('adclick:rl:127.0.0.1'), 'the gateway charged the rate-limit bucket on the TLS server');

  // The marks themselves are written only after a Kafka ack: the product's own modules
  // (config, createOptionalRedis, edge dedup, verified admission) in a child process write them.
  const keys = [1, 2, 3].map((n) => dedupKey('click', `imp_${run}_tls_child_${n}`));
  const child = await execFileP(process.execPath, ['--import', 'tsx', 'test/helpers/redis-product-client.ts', ...keys], {
    env: childEnv({ NODE_EXTRA_CA_CERTS: redis.caFile, REDIS_URL: redis.url, ADCLICK_SIGNING_KEYS: `k1:${SECRET}` }),
    timeout: 60_000,
  });
  const out = child.stdout + child.stderr;
  const line = child.stdout.split('\n').find((l) => l.startsWith('{"result"'));
  assert.ok(line, out);
  const result = JSON.parse(line).result;
  assert.deepEqual(result, { status: 'ready', ip: result.ip, allowed: true, seen: [true, true, true, false], errors: [] }, out);
  for (const k of keys) assert.equal(await redis.check.get(k), markValue(MARK_KEY, k), `mark of ${k} on the TLS server`);
  assert.ok(await redis.check.exists(`adclick:rl:${result.ip}`), 'the child charged its rate-limit bucket');

  const logs = gw.lines.join('\n') + out;
  assert.match(logs, new RegExp(`"url":"rediss://gateway:\\*\\*\\*@127\\.0\\.0\\.1:${redis.port}","msg":"redis connected"`));
  assert.ok(!logs.includes('redis unavailable'), logs);
  assert.ok(!logs.includes(redis.password), 'the password reached a log');
  assert.equal(gw.proc.exitCode, null, 'the gateway is still running');
});

for (const c of [
  { name: 'without the CA trusted', trustCa: false, host: '127.0.0.1', error: /certificate/i },
  { name: 'with the CA trusted but an address the certificate does not name', trustCa: true, host: '127.0.0.2', error: /IP: 127\.0\.0\.2 is not in the cert's list/ },
]) test(`rediss:// ${c.name}: no connection (the certificate is checked), the gateway fails open and stays up, password never logged`, async () => {
  const redis = await startTlsRedis();
  const gw = await startGateway(redis.url.replace('@127.0.0.1:', `@${c.host}:`), c.trustCa ? redis.caFile : undefined);
  const unavailable = () => gw.lines.filter((l) => l.includes('redis unavailable: failing open'));
  await until(() => `the fail-open warning\n${gw.lines.join('\n')}`, () => unavailable().length > 0, 15_000);
  assert.match(unavailable()[0]!, c.error, 'refused for its certificate');
  await sleep(2_000); // several reconnect attempts (200 ms, 400 ms, …)
  assert.equal(gw.proc.exitCode, null, `the gateway is still running\n${gw.lines.join('\n')}`);
  assert.equal(unavailable().length, 1, 'warned once per outage, not per attempt');
  assert.equal((await call(gw.port, 'GET', '/healthz')).status, 200);
  assert.equal(JSON.parse((await call(gw.port, 'GET', '/readyz')).text).checks.redis, false);

  // A genuine mark is on the server, but the gateway cannot read it: the click is not
  // answered duplicate, it goes on to Kafka (down: 503), and nothing was written there.
  const marked = dedupKey('click', `imp_${run}_tls_untrusted`);
  await redis.check.set(marked, markValue(MARK_KEY, marked), 'EX', 60);
  const res = await call(gw.port, 'POST', '/v1/clicks', signedClick(`imp_${run}_tls_untrusted`));
  assert.equal(res.status, 503, res.text);
  assert.equal(JSON.parse(res.text).error.code, 'UNAVAILABLE', res.text);
  assert.equal(await redis.check.exists('adclick:rl:127.0.0.1'), 0, 'no command reached the TLS server');
  assert.ok(!gw.lines.join('\n').includes(redis.password), 'the password reached a log');
});

// Redis holds decisions the gateway acts on; anyone who can write to it must not be able to
// turn them into lost clicks. Real Redis: the shared one on 127.0.0.1:6379 for marks, and a
// throwaway redis-server with a password for AUTH.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pino from 'pino';
import { createEdgeDedup, dedupKey, markValue, verifiedAdmission } from '../../src/gateway/edge-dedup.ts';
import { createRateLimiter } from '../../src/gateway/rate-limiter.ts';
import { createOptionalRedis } from '../../src/shared/redis.ts';
import { deriveFromSigningKeys } from '../../src/shared/signature.ts';

const run = randomBytes(4).toString('hex');
const silent = pino({ level: 'silent' });
const MARK_KEY = deriveFromSigningKeys(new Map([['k1', 's'.repeat(32)]]), 'edge-dedup-mark/v1');

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

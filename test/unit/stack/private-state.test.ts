import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/shared/config.ts';
import { ensurePrivateDir, writePidRecord, writeSupervisorPid } from '../../../src/stack/pid-files.ts';
import { renderSummary, type StackContext } from '../../../src/stack/up.ts';

function tmp(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'adclick-private-'));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
const mode = (p: string) => statSync(p).mode & 0o7777;

test('data and run directories are created 0700 (they hold every tenant\'s data and the admin token)', async (t) => {
  const root = tmp(t);
  const prev = process.umask(0o022);
  t.after(() => process.umask(prev));
  await writePidRecord(join(root, 'a', 'run'), { name: 'x', pid: 1, seq: 1, command: 'x', startedAt: '' });
  assert.equal(mode(join(root, 'a', 'run')), 0o700);
  await writeSupervisorPid(join(root, 'b', 'run'));
  assert.equal(mode(join(root, 'b', 'run')), 0o700);
  await ensurePrivateDir(join(root, 'data'));
  assert.equal(mode(join(root, 'data')), 0o700);
});

test('an existing world-readable data directory of ours is tightened; a sticky shared one is left alone', async (t) => {
  const root = tmp(t);
  const old = join(root, 'old-data');
  mkdirSync(old, { mode: 0o755 });
  chmodSync(old, 0o755);
  await ensurePrivateDir(old);
  assert.equal(mode(old), 0o700);
  const shared = join(root, 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o1777);
  await ensurePrivateDir(shared);
  assert.equal(mode(shared), 0o1777);
});

test('the start-up summary never prints a Redis password', () => {
  const config = loadConfig({}, { redisUrl: 'redis://gateway:s3cret-pass@10.0.0.5:6379/0' });
  for (const redisReachable of [true, false]) {
    const ctx: StackContext = { config, repoRoot: '/r', kafkaBootstrap: '127.0.0.1:9092', redisReachable, childEnv: {} };
    const text = renderSummary(ctx, [], { get: () => undefined });
    assert.ok(!text.includes('s3cret-pass'), text);
    assert.match(text, /redis:\/\/gateway:\*\*\*@10\.0\.0\.5:6379\/0/);
  }
});

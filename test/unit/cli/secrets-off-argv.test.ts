// Secrets on a command line end up in `ps`, /proc/<pid>/cmdline and shell history: the
// commands that take one accept it from stdin or a file too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runKeys } from '../../../src/keys-command.ts';
import { loadConfig } from '../../../src/shared/config.ts';
import { verifySignature } from '../../../src/shared/signature.ts';
import { runSign } from '../../../src/simulate/sign-command.ts';

function sink() {
  let buf = '';
  return { write: (s: string) => ((buf += s), true), text: () => buf };
}
function tmp(t: { after(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'adclick-secret-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}
const CLICK = { impression_id: 'imp_7f9c2b1e4a', ad_id: 1234, campaign_id: 55, advertiser_id: 7, user_id: 'u_93af', timestamp: 1764237600123 };
const SECRET = 'file-secret-0123456789abcdef0123456789';
const signable = { ...CLICK, key_id: 'k7', event_type: 'click' };

test('adclick keys revoke reads the key from stdin or a file, never needing it in argv', async (t) => {
  const calls: { path: string; body: Record<string, unknown> }[] = [];
  const admin = async (path: string, body: Record<string, unknown>) => {
    calls.push({ path, body });
    return { revoked: true };
  };
  const config = loadConfig({});
  assert.equal(await runKeys(['revoke'], sink(), sink(), { config, admin, stdin: Readable.from(['ak_from_stdin_123\n']) }), 0);
  assert.equal(await runKeys(['revoke', '-'], sink(), sink(), { config, admin, stdin: Readable.from(['ak_dash_456\r\n']) }), 0);
  const file = join(tmp(t), 'key');
  writeFileSync(file, 'ak_from_file_789\n');
  assert.equal(await runKeys(['revoke', '--key-file', file], sink(), sink(), { config, admin }), 0);
  assert.equal(await runKeys(['revoke', 'ak_argv_still_works'], sink(), sink(), { config, admin }), 0);
  assert.deepEqual(calls.map((c) => c.body.api_key), ['ak_from_stdin_123', 'ak_dash_456', 'ak_from_file_789', 'ak_argv_still_works']);
  assert.ok(calls.every((c) => c.path === '/admin/keys/revoke'));
  const err = sink();
  assert.equal(await runKeys(['revoke'], sink(), err, { config, admin, stdin: Readable.from(['\n']) }), 2);
  assert.match(err.text(), /no API key/);
  const missing = sink();
  assert.equal(await runKeys(['revoke', '--key-file', join(tmp(t), 'nope')], sink(), missing, { config, admin }), 2);
  assert.match(missing.text(), /cannot read/);
  assert.equal(calls.length, 4);
});

test('adclick sign takes the secret from a file or stdin (--secret-file)', async (t) => {
  const file = join(tmp(t), 'secret');
  writeFileSync(file, `${SECRET}\n`);
  const config = loadConfig({});
  const out = sink();
  assert.equal(await runSign(['--key-id', 'k7', '--secret-file', file, JSON.stringify(CLICK)], { stdout: out, stderr: sink(), config }), 0);
  assert.ok(verifySignature(signable, String(JSON.parse(out.text()).signature), SECRET));
  // Secret on stdin, click as the argument.
  const out2 = sink();
  assert.equal(await runSign(['--key-id', 'k7', '--secret-file', '-', JSON.stringify(CLICK)], { stdout: out2, stderr: sink(), config, stdin: Readable.from([`${SECRET}\n`]) }), 0);
  assert.ok(verifySignature(signable, String(JSON.parse(out2.text()).signature), SECRET));
  // stdin cannot carry both; and one secret source only.
  const err = sink();
  assert.equal(await runSign(['--key-id', 'k7', '--secret-file', '-'], { stdout: sink(), stderr: err, config, stdin: Readable.from([SECRET]) }), 2);
  assert.match(err.text(), /give the click as an argument/);
  const err2 = sink();
  assert.equal(await runSign(['--key-id', 'k7', '--secret', 'x', '--secret-file', file, '{}'], { stdout: sink(), stderr: err2, config }), 2);
  assert.match(err2.text(), /either --secret or --secret-file/);
});

// The README's front door, as a new user meets it: the first of its "Two commands", exactly
// as written there, run in a clean copy of the repository (only what git tracks: no
// node_modules, no generated code, no jars, no data dir) on fresh ports. It must bring every
// part up healthy by itself; then a user's own signed traffic (`adclick simulate`) runs next
// to the demo traffic and `adclick verify` finds every count exact (the demo's reserved ids
// never mix with the user's), a click sent by hand shows up in the query API, and
// `adclick down` leaves no process behind. Fails when the README and reality drift apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEV_SIGNING_KEYS, parseSigningKeys } from '../../src/shared/config.ts';
import { signClick } from '../../src/shared/signature.ts';
import { freePort } from '../helpers/kafka.ts';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The first command of the README's "Two commands" block, without its comment. */
export function readmeFirstCommand(readme: string): string {
  const section = /^## Two commands\s*\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1];
  assert.ok(section, 'the README has a "## Two commands" section');
  const block = /```(?:sh|bash)?\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'the "Two commands" section has a code block');
  const lines = block.split('\n').map((l) => l.trim()).filter(Boolean);
  assert.equal(lines.length, 2, `exactly two commands in the README block, got:\n${block}`);
  return lines[0]!.replace(/\s+#.*$/, '').trim();
}

/** What a fresh clone holds: every tracked (or new, not ignored) file, nothing generated. */
function cleanCopy(dest: string): void {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repo, encoding: 'utf8' })
    .split('\0').filter(Boolean);
  for (const f of files) {
    const from = join(repo, f);
    if (!existsSync(from) || !statSync(from).isFile()) continue;
    mkdirSync(dirname(join(dest, f)), { recursive: true });
    copyFileSync(from, join(dest, f));
    if (statSync(from).mode & 0o111) execFileSync('chmod', ['+x', join(dest, f)]);
  }
}

/** Pids of processes whose command line or working directory is inside `dir` (ours excluded). */
function processesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    if (Number(pid) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${pid}/cwd`);
      } catch {
        /* gone or not ours to read */
      }
      if (cmd.includes(dir) || cwd === dir || cwd.startsWith(`${dir}/`)) found.push(`${pid}: ${cmd.slice(0, 160)}`);
    } catch {
      /* exited meanwhile */
    }
  }
  return found;
}

function waitForOutput(child: ChildProcess, read: () => string, pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  return new Promise((res, rej) => {
    const t0 = Date.now();
    const tick = setInterval(() => {
      const m = pattern.exec(read());
      if (m) {
        clearInterval(tick);
        res(m);
      } else if (child.exitCode !== null || child.signalCode !== null) {
        clearInterval(tick);
        rej(new Error(`the command exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}`));
      } else if (Date.now() - t0 > timeoutMs) {
        clearInterval(tick);
        rej(new Error(`no ${pattern} within ${timeoutMs} ms`));
      }
    }, 500);
  });
}

test('the README\'s first command brings the whole pipeline up from a clean clone; simulate + verify are exact; down leaves nothing', { timeout: 30 * 60_000 }, async () => {
  const command = readmeFirstCommand(readFileSync(join(repo, 'README.md'), 'utf8'));
  assert.match(command, /npm install/, 'the first command installs');
  assert.match(command, /npm start/, 'the first command starts the pipeline');

  const clone = mkdtempSync(join(tmpdir(), 'adclick-frontdoor-'));
  const logPath = join(clone, '..', `${clone.split('/').pop()}.log`);
  cleanCopy(clone);
  for (const generated of ['node_modules', 'src/gen', '.data', 'flink/target']) {
    assert.equal(existsSync(join(clone, generated)), false, `a clean clone has no ${generated}`);
  }
  const ports = {
    ADCLICK_GATEWAY_PORT: await freePort(), ADCLICK_QUERY_PORT: await freePort(), ADCLICK_ADMIN_PORT: await freePort(),
    ADCLICK_KAFKA_PORT: await freePort(), ADCLICK_KAFKA_CONTROLLER_PORT: await freePort(), ADCLICK_FLINK_UI_PORT: await freePort(),
  };
  const env: NodeJS.ProcessEnv = { ...process.env, ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])) };
  env.KAFKA_BROKERS = `127.0.0.1:${ports.ADCLICK_KAFKA_PORT}`;
  for (const k of Object.keys(env)) if (k.startsWith('npm_') || k === 'INIT_CWD') delete env[k];
  delete env.ADCLICK_DATA_DIR;
  delete env.ADCLICK_SIGNING_KEYS;

  const log = createWriteStream(logPath);
  let output = '';
  const child = spawn('bash', ['-c', command], { cwd: clone, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const s of [child.stdout!, child.stderr!]) {
    s.on('data', (d: Buffer) => {
      output += d.toString();
      log.write(d);
    });
  }
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const adclick = (...args: string[]) => spawnSync(join(clone, 'bin', 'adclick'), args, { cwd: clone, env, encoding: 'utf8', timeout: 5 * 60_000 });
  const t0 = Date.now();
  try {
    const banner = await waitForOutput(child, () => output, /AdClick is running[\s\S]*?Next:/, 25 * 60_000);
    process.stdout.write(`# front door: up in ${Math.round((Date.now() - t0) / 1000)} s from a clean clone (log ${logPath})\n`);
    const demoKey = /demo API key for advertiser \d+[^\n]*\n\s*(\S*ak_\S+)/.exec(output)?.[1]?.replace(/\x1b\[[0-9;]*m/g, '');
    assert.ok(demoKey, `the demo prints an API key:\n${banner[0]}`);

    const status = adclick('status');
    assert.equal(status.status, 0, `adclick status: every part healthy\n${status.stdout}${status.stderr}`);
    for (const part of ['kafka', 'flink', 'serving', 'gateway']) assert.match(status.stdout, new RegExp(`^${part}\\b.*alive\\s+healthy`, 'm'), `${part} is healthy`);

    // The user's own traffic, next to the demo's, then verify against the ledger.
    const ledger = join(clone, 'user-ledger.ndjson');
    const sim = adclick('simulate', '--rate', '40', '--count', '400', '--batch', '20', '--ads', '12', '--campaigns', '4', '--advertisers', '2', '--ledger', ledger, '--quiet');
    assert.equal(sim.status, 0, `adclick simulate\n${sim.stdout}${sim.stderr}`);
    const verify = adclick('verify', '--ledger', ledger, '--wait', '3m');
    process.stdout.write(`# front door: ${verify.stdout.trim().split('\n').pop()}\n`);
    assert.equal(verify.status, 0, `adclick verify\n${verify.stdout}${verify.stderr}`);
    assert.match(verify.stdout, /OK, every count matches/);

    // One click by hand, with the development key, seen through the public API.
    const keyOut = adclick('keys', 'create', '--advertiser', '4242');
    assert.equal(keyOut.status, 0, keyOut.stderr);
    const apiKey = keyOut.stdout.trim().split('\n').pop()!;
    const [keyId, secret] = parseSigningKeys(DEV_SIGNING_KEYS).entries().next().value as [string, string];
    const click = { impression_id: `imp_frontdoor_${Date.now()}`, event_type: 'click', ad_id: 4244, campaign_id: 4243, advertiser_id: 4242, user_id: 'u_1', timestamp: Date.now() - 1000 };
    const sent = await fetch(`http://127.0.0.1:${ports.ADCLICK_GATEWAY_PORT}/v1/clicks`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...click, key_id: keyId, signature: signClick({ ...click, key_id: keyId }, secret) }),
    });
    assert.equal(sent.status, 202, await sent.clone().text());
    assert.deepEqual(await sent.json(), { status: 'accepted' });
    let total = 0;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline && total !== 1; await new Promise((r) => setTimeout(r, 1000))) {
      const res = await fetch(`http://127.0.0.1:${ports.ADCLICK_QUERY_PORT}/v1/campaigns`, { headers: { authorization: `Bearer ${apiKey}` } });
      const body = (await res.json()) as { campaigns: { campaign_id: number; total_clicks: number }[] };
      total = body.campaigns.find((c) => c.campaign_id === 4243)?.total_clicks ?? 0;
    }
    assert.equal(total, 1, 'the click sent by hand is counted once in GET /v1/campaigns');

    const down = adclick('down');
    assert.equal(down.status, 0, `adclick down\n${down.stdout}${down.stderr}`);
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 120_000))]);
    assert.equal(code, 0, `npm start exits 0 after adclick down (got ${code})`);
    let left = processesUnder(clone);
    for (let i = 0; i < 20 && left.length; i++) {
      await new Promise((r) => setTimeout(r, 500));
      left = processesUnder(clone);
    }
    assert.deepEqual(left, [], 'no process of the stack is left');
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      adclick('down');
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    for (const p of processesUnder(clone)) {
      try {
        process.kill(Number(p.split(':')[0]), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    log.end();
    if (process.env.ADCLICK_E2E_KEEP !== '1') rmSync(clone, { recursive: true, force: true });
  }
});

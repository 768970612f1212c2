// Worker discovery for `adclick status`, against real processes (Linux /proc).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { renderStatus } from '../../../src/stack/cli-commands.ts';
import { sameExecutableChildren } from '../../../src/stack/pid-files.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('sameExecutableChildren lists the node children of a process, not children running another program', { skip: process.platform !== 'linux' }, async () => {
  // A parent that forks two node children (like node:cluster workers) and one `sleep`.
  const parent = spawn(process.execPath, ['-e', `
    const { spawn } = require('node:child_process');
    const kids = [0, 1].map(() => spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']));
    kids.push(spawn('sleep', ['60']));
    console.log(kids.map((k) => k.pid).join(' '));
    process.on('SIGTERM', () => { for (const k of kids) k.kill(); process.exit(0); });
    setTimeout(() => {}, 60000);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const pids = await new Promise<number[]>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim().split(' ').map(Number))));
    let found: number[] = [];
    for (let i = 0; i < 50 && found.length < 2; i++) {
      found = sameExecutableChildren(parent.pid!);
      if (found.length < 2) await sleep(50);
    }
    assert.deepEqual(found, pids.slice(0, 2).sort((a, b) => a - b), 'the two node children, not sleep');
    assert.deepEqual(sameExecutableChildren(pids[0]!), [], 'a process without children has no workers');
  } finally {
    parent.kill('SIGTERM');
  }
  assert.deepEqual(sameExecutableChildren(2 ** 22 + 12345), [], 'an unknown pid has none');
});

test('status shows the workers of a process that has them', () => {
  const text = renderStatus({ pid: 10, alive: true }, [
    { name: 'gateway', pid: 11, alive: true, healthy: true, health: 'http', state: 'unknown', restarts: 0, workers: [12, 13] },
    { name: 'kafka', pid: 14, alive: true, healthy: true, health: 'tcp', state: 'unknown', restarts: 0, workers: [] },
  ]);
  assert.match(text, /gateway +pid 11 .*workers 2: pids 12, 13/);
  assert.doesNotMatch(text.split('\n').find((l) => l.startsWith('kafka'))!, /workers/);
});

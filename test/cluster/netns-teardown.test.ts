// The cluster network leaves nothing behind: after teardown no namespace, link, nftables rule
// or process of ours remains — also when the process that built it was SIGKILLed half-way
// through its life (the state file is all `adclick cluster down` has then).
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { createConnection } from 'node:net';
import { cutOff, heal, namespacePids, nftRuleset } from '../../src/cluster/netns.ts';
import { createNetwork, destroyNetwork, destroyNetworkSync, planTopology, readNetworkState } from '../../src/cluster/topology.ts';
import { leftovers, onExitOrSignal, randomTopologyName, testStateDir } from './test-cluster.ts';

const execFileP = promisify(execFile);
const dir = await testStateDir('netns');
const cleanups: string[] = [];
const unhook = onExitOrSignal(() => { for (const f of cleanups) destroyNetworkSync(f); });
after(async () => {
  for (const f of cleanups) destroyNetworkSync(f);
  unhook();
  await rm(dir, { recursive: true, force: true });
});

async function hostNftTables(): Promise<string> {
  return (await execFileP('nft', ['list', 'tables'])).stdout;
}

/** Connects from the host to addr:port within timeoutMs. */
function reaches(addr: string, port: number, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: addr, port });
    const t = setTimeout(() => { s.destroy(); resolve(false); }, timeoutMs);
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve(true); });
    s.once('error', () => { clearTimeout(t); resolve(false); });
  });
}

test('nodes are reachable from the host through the bridge, a cut drops them, a heal brings them back, teardown leaves nothing', async () => {
  const t = planTopology({ ...randomTopologyName(), nodes: ['a', 'b'] });
  const stateFile = join(dir, 'net-1.json');
  cleanups.push(stateFile);
  const tablesBefore = await hostNftTables();
  await createNetwork(t, stateFile);
  assert.deepEqual((await leftovers(t)).sort(), [t.bridge, ...t.nodes.flatMap((n) => [n.netns, n.hostVeth])].sort());

  // A listener inside node a (node's own JS, no extra tool): the host reaches it at a's address.
  const server = spawn('ip', ['netns', 'exec', t.nodes[0]!.netns, process.execPath, '-e',
    `require('node:net').createServer((s) => s.end()).listen(7001, '${t.nodes[0]!.address}', () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => server.stdout!.once('data', r));
  assert.equal(await reaches(t.nodes[0]!.address, 7001), true, 'host → node through the bridge');
  await cutOff(t.nodes[0]!.netns);
  assert.equal(await reaches(t.nodes[0]!.address, 7001), false, 'cut off: nothing gets through');
  await heal(t.nodes[0]!.netns);
  assert.equal(await reaches(t.nodes[0]!.address, 7001), true, 'healed');
  await cutOff(t.nodes[0]!.netns);
  assert.deepEqual(await namespacePids(t.nodes[0]!.netns), [server.pid]);

  const res = await destroyNetwork(stateFile);
  assert.deepEqual(res.killed, [server.pid], 'the process still running in the namespace was stopped');
  assert.deepEqual(await leftovers(t), []);
  assert.equal(await nftRuleset(t.nodes[0]!.netns), '', 'the cut rules went with the namespace');
  assert.equal(await hostNftTables(), tablesBefore, 'no rule was ever added on the host');
  assert.equal(existsSync(stateFile), false);
});

test('a builder SIGKILLed after creating the network: teardown from the state file alone removes everything', async () => {
  const t = planTopology({ ...randomTopologyName(), nodes: ['x', 'y', 'z'] });
  const stateFile = join(dir, 'net-2.json');
  cleanups.push(stateFile);
  const script = `import { createNetwork, planTopology } from ${JSON.stringify(join(import.meta.dirname, '../../src/cluster/topology.ts'))};
    await createNetwork(planTopology(${JSON.stringify({ tag: t.tag, subnet: t.subnet, nodes: ['x', 'y', 'z'] })}), ${JSON.stringify(stateFile)});
    console.log('built'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => { if (b.toString().includes('built')) resolve(); });
    child.once('exit', (code) => reject(new Error(`builder exited ${code} before building`)));
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.equal((await leftovers(t)).length, 7, 'the crash left the bridge, 3 namespaces and 3 veths');
  assert.deepEqual((await readNetworkState(stateFile))!.namespaces, t.nodes.map((n) => n.netns));

  await destroyNetwork(stateFile);
  assert.deepEqual(await leftovers(t), []);
});

test('a subnet the host already uses is refused before anything is created', async () => {
  const t = planTopology({ ...randomTopologyName(), nodes: ['a'] });
  const stateFile = join(dir, 'net-3.json');
  cleanups.push(stateFile);
  await createNetwork(t, stateFile);
  const other = planTopology({ tag: `${t.tag.slice(0, 5)}x`, subnet: t.subnet, nodes: ['a'] });
  const otherFile = join(dir, 'net-4.json');
  cleanups.push(otherFile);
  await assert.rejects(createNetwork(other, otherFile), /already in use on this host/);
  assert.deepEqual(await leftovers(other), []);
  await destroyNetwork(stateFile);
  assert.deepEqual(await leftovers(t), []);
});

test('without nft on the PATH, a cut and a heal fail with the reason: never a silent heal, never a crash', async () => {
  const t = planTopology({ ...randomTopologyName(), nodes: ['a'] });
  const stateFile = join(dir, 'net-5.json');
  cleanups.push(stateFile);
  await createNetwork(t, stateFile);
  // A PATH that has `ip` and nothing else: `ip netns exec` then cannot find nft.
  const bin = await mkdtemp(join(tmpdir(), 'adclick-no-nft-'));
  const ipPath = (await execFileP('sh', ['-c', 'command -v ip'])).stdout.trim();
  await symlink(ipPath, join(bin, 'ip'));
  const path = process.env.PATH;
  process.env.PATH = bin;
  try {
    await assert.rejects(heal(t.nodes[0]!.netns), /nft/, 'a heal that could not run is not a heal');
    await assert.rejects(cutOff(t.nodes[0]!.netns), /nft/, 'a cut that could not run says so');
  } finally {
    process.env.PATH = path;
    await rm(bin, { recursive: true, force: true });
  }
  await destroyNetwork(stateFile);
  assert.deepEqual(await leftovers(t), []);
});

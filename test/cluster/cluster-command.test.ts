// `adclick cluster up | status | down` as a user runs them: up in the foreground (its own data
// dir and a random subnet, so it never meets a real `cluster up`), status from another
// process, down from a third; nothing of the cluster may remain afterwards.
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { clusterTopology } from '../../src/cluster/cluster-command.ts';
import { destroyNetworkSync } from '../../src/cluster/topology.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { leftovers, randomTopologyName, testStateDir } from './test-cluster.ts';

const execFileP = promisify(execFile);
const root = join(import.meta.dirname, '../..');
const bin = join(root, 'bin/adclick');

test('cluster up prints every node (Kafka, ZooKeeper, ClickHouse) with its address, status sees them answering, down removes everything', async () => {
  const dataDir = await testStateDir('cli');
  // The Kafka jars are large: share the project's cache rather than fetching them again.
  await mkdir(join(loadConfig().dataDir, 'cache'), { recursive: true });
  await symlink(join(loadConfig().dataDir, 'cache'), join(dataDir, 'cache'));
  const { subnet } = randomTopologyName();
  const env = { ...process.env, ADCLICK_DATA_DIR: dataDir, ADCLICK_CLUSTER_SUBNET: subnet, LOG_LEVEL: 'warn' };
  const topology = clusterTopology({ clusterSubnet: subnet });
  const up = spawn(process.execPath, [bin, 'cluster', 'up'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  up.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  up.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<number | null>((r) => up.once('exit', (code) => r(code)));
  after(async () => {
    up.kill('SIGKILL');
    destroyNetworkSync(join(dataDir, 'cluster', 'network.json'));
    await rm(dataDir, { recursive: true, force: true });
  });

  // Kafka, ZooKeeper, four ClickHouse servers with the ON CLUSTER schema, the Flink JobManager
  // and 2 TaskManagers with the job: 13 JVMs/servers on 2 shared cores.
  const deadline = Date.now() + 900_000;
  while (!/up in \d+ s/.test(out)) {
    if (Date.now() > deadline || up.exitCode !== null) assert.fail(`cluster up did not come up:\n${out}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  for (const n of topology.nodes) assert.match(out, new RegExp(`${n.name}\\s+${n.address.replace(/\./g, '\\.')}\\s+${n.netns}\\s+pid \\d+`));
  assert.match(out, /replication factor 3, min\.insync\.replicas 2/);
  assert.match(out, /Flink job [0-9a-f]{32} RUNNING/);
  assert.match(out, /CLICKHOUSE_URL=http:\/\/[\d.]+:8123 ADCLICK_CLICKHOUSE_CLUSTER=adclick/);

  const status = await execFileP(process.execPath, [bin, 'cluster', 'status'], { env });
  // Each tier's nodes answer their own protocol: Kafka metadata, ZooKeeper in the quorum, ClickHouse /ping
  // (the Flink nodes are checked below).
  const expect = (name: string) => name.startsWith('kafka-') ? 'kafka answering' : name.startsWith('zk-') ? 'zookeeper (leader|follower)' : 'clickhouse answering';
  for (const n of topology.nodes.filter((x) => !x.name.startsWith('flink-'))) assert.match(status.stdout, new RegExp(`${n.name}.*${expect(n.name)}`));
  assert.equal((status.stdout.match(/zookeeper leader/g) ?? []).length, 1, status.stdout);
  assert.match(status.stdout, /under-replicated 0, without leader 0/);
  assert.match(status.stdout, /flink-jm .*jobmanager answering/);
  for (const tm of ['flink-tm-1', 'flink-tm-2']) assert.match(status.stdout, new RegExp(`${tm} .*taskmanager registered \\([1-9]/\\d+ slots used\\)`));
  assert.match(status.stdout, /job [0-9a-f]{32} adclick-click-aggregation RUNNING/);

  // JobManager HA: both JobManagers answer, flink-jm leads (started first).
  assert.match(status.stdout, /flink-jm .*jobmanager answering, leader/);
  assert.match(status.stdout, /flink-jm-2 .*jobmanager answering, standby/);
  assert.match(status.stdout, /flink: leader flink-jm;/);
  // kill -9 the leading JobManager: flink-jm-2 takes over and recovers the same job by itself;
  // `up` starts flink-jm again and it rejoins as the standby.
  const firstJob = /Flink job ([0-9a-f]{32}) RUNNING/.exec(out)![1]!;
  const jmNs = topology.nodes.find((n) => n.name === 'flink-jm')!.netns;
  const jmPids = (await execFileP('ip', ['netns', 'pids', jmNs])).stdout.split(/\s+/).filter(Boolean).map(Number);
  assert.ok(jmPids.length > 0, 'the JobManager runs in its namespace');
  const killedAt = Date.now();
  for (const pid of jmPids) process.kill(pid, 'SIGKILL');
  const settled = (s: string) => new RegExp(`job ${firstJob} adclick-click-aggregation RUNNING`).test(s) && /flink-jm-2 .*jobmanager answering, leader/.test(s) && /flink-jm .*jobmanager answering, standby/.test(s);
  let again = '';
  while (!settled(again)) {
    if (Date.now() - killedAt > 600_000) assert.fail(`the standby did not take over the job within 10 min of the leader's kill:\n${again}\n${out.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 5000));
    again = (await execFileP(process.execPath, [bin, 'cluster', 'status'], { env }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }))).stdout;
  }
  assert.doesNotMatch(again, new RegExp(`job (?!${firstJob})[0-9a-f]{32} `), 'no second job: recovered, not resubmitted');
  console.log(`# leading JobManager killed; same job RUNNING under flink-jm-2, flink-jm back as standby ${Date.now() - killedAt} ms later`);

  const down = await execFileP(process.execPath, [bin, 'cluster', 'down'], { env, timeout: 300_000 });
  assert.match(down.stdout, /cluster stopped/);
  assert.equal(await exited, 0, `cluster up ends cleanly on down:\n${out}`);
  assert.deepEqual(await leftovers(topology), []);
  await assert.rejects(execFileP(process.execPath, [bin, 'cluster', 'status'], { env }), (err: { code?: number; stdout?: string }) =>
    err.code === 1 && /no cluster/.test(err.stdout ?? ''));
});

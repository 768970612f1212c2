// The Flink tier's pure parts: config.yaml rendering, BashJavaUtils output parsing, the
// Maven pom (the slf4j 1.7 binding, not slf4j2), and `cluster status` reading a JobManager's
// REST answers (a fake JobManager on loopback; the real one is in test/cluster).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { configYaml, FlinkCluster, flinkRestLeaderPath, parseBashJavaUtils, parseLeaderRestUrl } from '../../../src/cluster/flink-cluster.ts';
import { flinkDistPom, flinkVersionOf, type FlinkDist } from '../../../src/cluster/flink-dist.ts';
import { flinkTierStatus } from '../../../src/cluster/flink-tier.ts';
import type { Topology } from '../../../src/cluster/topology.ts';
import { createLogger } from '../../../src/shared/logger.ts';

const root = join(import.meta.dirname, '../../..');

test('config.yaml: strings quoted (no YAML surprises), numbers and booleans bare', () => {
  assert.equal(configYaml({ 'rest.address': '10.0.0.14', 'rest.port': 8081, 'web.submit.enable': true, 'state.backend.type': 'rocksdb' }),
    'rest.address: "10.0.0.14"\nrest.port: 8081\nweb.submit.enable: true\nstate.backend.type: "rocksdb"\n');
});

test('BashJavaUtils: JVM flags from the first result line, dynamic properties from the second, log lines ignored', () => {
  const out = [
    'INFO  [] - Loading configuration property: taskmanager.memory.process.size, 1536m',
    'BASH_JAVA_UTILS_EXEC_RESULT:-Xmx301989882 -Xms301989882 -XX:MaxDirectMemorySize=221459252 -XX:MaxMetaspaceSize=268435456',
    'BASH_JAVA_UTILS_EXEC_RESULT:-D taskmanager.memory.network.min=87241524b -D taskmanager.cpu.cores=2.0',
  ].join('\n');
  assert.deepEqual(parseBashJavaUtils(out), {
    jvm: ['-Xmx301989882', '-Xms301989882', '-XX:MaxDirectMemorySize=221459252', '-XX:MaxMetaspaceSize=268435456'],
    dynamic: ['-D', 'taskmanager.memory.network.min=87241524b', '-D', 'taskmanager.cpu.cores=2.0'],
  });
  assert.throws(() => parseBashJavaUtils('Exception in thread "main"'), /printed no result/);
});

test('the cluster jars: the version of flink/pom.xml, log4j through the slf4j 1.7 binding', () => {
  const v = flinkVersionOf(root);
  assert.match(v, /^2\.\d+\.\d+$/);
  const pom = flinkDistPom(v);
  for (const a of ['flink-runtime', 'flink-runtime-web', 'flink-clients', 'flink-statebackend-rocksdb', 'log4j-slf4j-impl']) {
    assert.ok(pom.includes(`<artifactId>${a}</artifactId><version>`), a);
  }
  assert.ok(!pom.includes('log4j-slf4j2-impl'), 'Flink resolves slf4j-api 1.7: the slf4j2 binding would log nothing');
});

async function fakeJobManager(answers: Record<string, unknown>): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const body = answers[req.url ?? ''];
    res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/json' }).end(JSON.stringify(body ?? {}));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

const topo = (jm: string, tms: string[], jm2?: string): Topology => ({
  tag: 'u', subnet: '10.0.0.0/24', prefixLength: 24, bridge: 'b', bridgeAddress: '10.0.0.1',
  nodes: [
    { name: 'kafka-1', netns: 'k', address: '10.0.0.11', hostVeth: 'v1' },
    { name: 'flink-jm', netns: 'j', address: jm, hostVeth: 'v2' },
    ...tms.map((a, i) => ({ name: `flink-tm-${i + 1}`, netns: `t${i}`, address: a, hostVeth: `v${i + 3}` })),
    ...(jm2 ? [{ name: 'flink-jm-2', netns: 'j2', address: jm2, hostVeth: 'v9' }] : []),
  ],
});

test('every JobManager\'s REST URL, leader first, for the serving tiers (they fail over to the standby\'s)', () => {
  const nodes = topo('10.0.0.13', [], '10.0.0.17').nodes;
  const jm = (name: string) => nodes.find((n) => n.name === name)!;
  const flink = new FlinkCluster({
    dist: {} as FlinkDist, stateDir: '/nonexistent', jobManagers: [jm('flink-jm'), jm('flink-jm-2')], taskManagers: [],
    ha: { zookeeper: ['10.0.0.18'], clusterId: 'u' }, restPort: 8091, logger: createLogger('test', 'silent'),
  });
  assert.deepEqual(flink.restUrls, ['http://10.0.0.13:8091', 'http://10.0.0.17:8091']);
});

test('the leader REST URL out of the connection_info znode (Java-serialized address + session UUID)', () => {
  // As ObjectOutputStream writes it: stream header, block data with writeUTF(address), then the UUID object.
  const addr = Buffer.from('http://10.231.7.14:8081', 'utf8');
  const data = Buffer.concat([Buffer.from([0xac, 0xed, 0x00, 0x05, 0x77, addr.length + 2, 0x00, addr.length]), addr,
    Buffer.from([0x73, 0x72, 0x00, 0x0e]), Buffer.from('java.util.UUID\u00bc\u0099\u0003\u00f7\u0098m\u0085/', 'latin1')]);
  assert.equal(parseLeaderRestUrl(data), 'http://10.231.7.14:8081');
  assert.equal(parseLeaderRestUrl(undefined), undefined, 'no znode: no leader');
  assert.equal(parseLeaderRestUrl(Buffer.alloc(0)), undefined, 'cleared: no leader');
  assert.equal(flinkRestLeaderPath('cluster'), '/adclick-flink/cluster/leader/rest_server/connection_info');
});

test('cluster status: JobManager, each TaskManager by its address, the job; unhealthy when a TaskManager is missing', async () => {
  const { server, port } = await fakeJobManager({
    '/overview': { taskmanagers: 1, 'slots-total': 2, 'slots-available': 1 },
    '/taskmanagers': { taskmanagers: [{ id: '127.0.0.2:41877-36b948', slotsNumber: 2, freeSlots: 1 }] },
    '/jobs/overview': { jobs: [{ jid: 'a'.repeat(32), name: 'adclick-click-aggregation', state: 'RUNNING' }] },
  });
  try {
    const leader = async () => `http://127.0.0.1:${port}`;
    const s = await flinkTierStatus({ clusterFlinkRestPort: port }, topo('127.0.0.1', ['127.0.0.2', '127.0.0.3']), leader);
    assert.equal(s.nodeState.get('flink-jm'), 'jobmanager answering, leader');
    assert.equal(s.nodeState.get('flink-tm-1'), 'taskmanager registered (1/2 slots used)');
    assert.equal(s.nodeState.get('flink-tm-2'), 'taskmanager not registered');
    assert.ok(s.lines.some((l) => l.includes(`job ${'a'.repeat(32)} adclick-click-aggregation RUNNING`)), s.lines.join('\n'));
    assert.equal(s.healthy, false, 'a TaskManager missing is not healthy');
    const both = await flinkTierStatus({ clusterFlinkRestPort: port }, topo('127.0.0.1', ['127.0.0.2']), leader);
    assert.equal(both.healthy, true);
    assert.ok(both.lines[0]!.includes('leader flink-jm'), both.lines.join('\n'));
    // A standby that does not answer, and a ZooKeeper naming no leader: both unhealthy, and said so.
    const standbyDown = await flinkTierStatus({ clusterFlinkRestPort: port }, topo('127.0.0.1', ['127.0.0.2'], '127.0.0.9'), leader);
    assert.equal(standbyDown.nodeState.get('flink-jm-2'), 'jobmanager not answering');
    assert.equal(standbyDown.healthy, false);
    const noLeader = await flinkTierStatus({ clusterFlinkRestPort: port }, topo('127.0.0.1', ['127.0.0.2']), async () => undefined);
    assert.equal(noLeader.nodeState.get('flink-jm'), 'jobmanager answering, standby');
    assert.match(noLeader.lines[0]!, /no JobManager leads/);
    assert.equal(noLeader.healthy, false);
    // A znode naming an address outside the cluster is reported, never contacted (the fake JobManager is asked instead).
    const foreign = await flinkTierStatus({ clusterFlinkRestPort: port }, topo('127.0.0.1', ['127.0.0.2']), async () => 'http://192.0.2.1:8081');
    assert.match(foreign.lines[0]!, /no JobManager leads \(ZooKeeper names http:\/\/192\.0\.2\.1:8081, not a node of this cluster\)/);
    assert.equal(foreign.nodeState.get('flink-tm-1'), 'taskmanager registered (1/2 slots used)', 'the TaskManagers as the cluster\'s own JobManager reports them');
    assert.equal(foreign.healthy, false);
  } finally {
    server.close();
  }
});

test('cluster status: no JobManager answering is reported, not thrown', async () => {
  const { server, port } = await fakeJobManager({});
  server.close();
  const s = await flinkTierStatus({ clusterFlinkRestPort: port }, topo('127.0.0.1', ['127.0.0.2']), async () => `http://127.0.0.1:${port}`);
  assert.equal(s.nodeState.get('flink-jm'), 'jobmanager not answering');
  assert.equal(s.nodeState.get('flink-tm-1'), 'unknown (no jobmanager)');
  assert.equal(s.healthy, false);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSubnet, planTopology } from '../../../src/cluster/topology.ts';

test('planTopology: bridge at .1, nodes from .11 in order, names that fit Linux interface and namespace limits', () => {
  const t = planTopology({ tag: 'c0', subnet: '10.231.0.0/24', nodes: ['kafka-1', 'kafka-2', 'kafka-3'] });
  assert.equal(t.bridgeAddress, '10.231.0.1');
  assert.deepEqual(t.nodes.map((n) => n.address), ['10.231.0.11', '10.231.0.12', '10.231.0.13']);
  assert.deepEqual(t.nodes.map((n) => n.netns), ['adclick-c0-kafka-1', 'adclick-c0-kafka-2', 'adclick-c0-kafka-3']);
  const big = planTopology({ tag: 'abcdef', subnet: '10.231.0.0/24', nodes: Array.from({ length: 200 }, (_, i) => `n${i}`) });
  for (const name of [big.bridge, ...big.nodes.map((n) => n.hostVeth)]) assert.ok(name.length <= 15, name);
  assert.equal(big.nodes.at(-1)!.address, '10.231.0.210');
  assert.equal(new Set(big.nodes.map((n) => n.hostVeth)).size, 200);
});

test('only private /24s: the cluster never addresses anybody else\'s network', () => {
  for (const ok of ['10.231.0.0/24', '172.16.5.0/24', '192.168.77.0/24']) assert.doesNotThrow(() => parseSubnet(ok), ok);
  for (const bad of ['8.8.8.0/24', '10.231.0.0/16', '10.231.0.5/24', '172.32.0.0/24', '10.300.0.0/24', 'fd00::/64', '']) {
    assert.throws(() => parseSubnet(bad), /ADCLICK_CLUSTER_SUBNET must be a private IPv4 \/24/, bad);
  }
  assert.throws(() => planTopology({ tag: 'Bad!', subnet: '10.231.0.0/24', nodes: ['a'] }), /tag/);
  assert.throws(() => planTopology({ tag: 'ok', subnet: '10.231.0.0/24', nodes: ['a b'] }), /node name/);
});

test('the CLI cluster\'s names carry its subnet, so two subnets never share a namespace name', async () => {
  const { clusterTopology } = await import('../../../src/cluster/cluster-command.ts');
  const a = clusterTopology({ clusterSubnet: '10.231.0.0/24' });
  const b = clusterTopology({ clusterSubnet: '10.231.1.0/24' });
  assert.deepEqual(a.nodes.map((n) => n.netns), [
    'kafka-1', 'kafka-2', 'kafka-3', 'flink-jm', 'flink-tm-1', 'flink-tm-2', 'flink-jm-2', 'zk-1', 'zk-2', 'zk-3', 'ch-1-1', 'ch-1-2', 'ch-2-1', 'ch-2-2',
  ].map((n) => `adclick-ce700-${n}`));
  assert.equal(new Set([...a.nodes, ...b.nodes].map((n) => n.netns)).size, 2 * a.nodes.length);
  assert.notEqual(a.bridge, b.bridge);
});

test('with signing keys the stateless tiers follow, each node on its own address: gateways, balancer, query APIs, sinks, Redis', async () => {
  const { clusterTopology } = await import('../../../src/cluster/cluster-command.ts');
  const t = clusterTopology({ clusterSubnet: '10.231.0.0/24', signingKeys: 'k:s' });
  const tail = t.nodes.slice(14).map((n) => `${n.name}@${n.address}`);
  assert.deepEqual(tail, ['gw-1@10.231.0.25', 'gw-2@10.231.0.26', 'lb@10.231.0.27', 'query-1@10.231.0.28', 'query-2@10.231.0.29',
    'sink-1@10.231.0.30', 'sink-2@10.231.0.31', 'redis@10.231.0.32']);
});

test('every serving instance gets every ClickHouse replica, starting on a different one', async () => {
  const { clusterTopology } = await import('../../../src/cluster/cluster-command.ts');
  const { StatelessTier, QUERY_NODES, SINK_NODES } = await import('../../../src/cluster/balancer.ts');
  const { createLogger } = await import('../../../src/shared/logger.ts');
  const t = clusterTopology({ clusterSubnet: '10.231.0.0/24', signingKeys: 'k:s' });
  const urls = ['http://a:8123', 'http://b:8123', 'http://c:8123', 'http://d:8123'];
  const tier = new StatelessTier({
    config: { gatewayPort: 8080, queryPort: 8081, logLevel: 'silent', stopTimeoutMs: 1000 }, nodes: t.nodes, kafkaBootstrap: 'x:9092',
    clickhouseUrls: urls, clickhouseCluster: 'adclick', stateDir: '/nonexistent', logger: createLogger('test', 'silent'),
  });
  const lists = [...QUERY_NODES, ...SINK_NODES].map((name) => tier.replicaListFor({ node: t.nodes.find((n) => n.name === name)! }));
  for (const l of lists) assert.deepEqual([...l].sort(), urls);
  assert.deepEqual(lists.map((l) => l[0]), urls, 'each instance starts on its own replica');
  assert.match(tier.haproxyConfigText(), /backend query[\s\S]*server query-1 10\.231\.0\.28:8081 check[\s\S]*server query-2 10\.231\.0\.29:8081 check/);
  assert.doesNotMatch(tier.haproxyConfigText(), /sink-/, 'sinks are not balanced: the consumer group splits the partitions');
});

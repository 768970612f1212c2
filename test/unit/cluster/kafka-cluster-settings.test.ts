// The cluster form's Kafka settings, pure: server.properties of a quorum member, the
// replication the pipeline topics are created with, and the config keys behind both.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../../src/shared/config.ts';
import { brokerProperties } from '../../../src/stack/kafka-broker.ts';
import { kafkaDurability, pipelineTopics } from '../../../src/stack/topics.ts';

const voters = [1, 2, 3].map((id) => ({ id, host: `10.231.0.${10 + id}`, port: 9093 }));

test('a cluster node: its own id and address, the static 3-voter quorum, RF 3 / min ISR 2 for internal topics, no unclean election', () => {
  const p = brokerProperties({
    stateDir: '/x', host: '10.231.0.12', port: 9092, controllerPort: 9093, nodeId: 2, quorumVoters: voters,
    replicationFactor: 3, minInsyncReplicas: 2,
  });
  assert.equal(p['node.id'], '2');
  assert.equal(p['controller.quorum.voters'], '1@10.231.0.11:9093,2@10.231.0.12:9093,3@10.231.0.13:9093');
  assert.equal(p['controller.quorum.bootstrap.servers'], undefined);
  assert.equal(p['advertised.listeners'], 'PLAINTEXT://10.231.0.12:9092');
  for (const k of ['default.replication.factor', 'offsets.topic.replication.factor', 'transaction.state.log.replication.factor']) assert.equal(p[k], '3', k);
  for (const k of ['min.insync.replicas', 'transaction.state.log.min.isr']) assert.equal(p[k], '2', k);
  assert.equal(p['unclean.leader.election.enable'], 'false');
});

test('the single-box broker is unchanged: node 1, a self-bootstrapped controller, everything at 1', () => {
  const p = brokerProperties({ stateDir: '/x', port: 9092, controllerPort: 9093 });
  assert.equal(p['node.id'], '1');
  assert.equal(p['controller.quorum.bootstrap.servers'], '127.0.0.1:9093');
  assert.equal(p['controller.quorum.voters'], undefined);
  for (const k of ['default.replication.factor', 'offsets.topic.replication.factor', 'transaction.state.log.replication.factor', 'min.insync.replicas', 'transaction.state.log.min.isr']) {
    assert.equal(p[k], '1', k);
  }
});

test('replication comes from config: the same keys for both forms, each form with its own default', () => {
  const unset = loadConfig({});
  assert.deepEqual(kafkaDurability(unset, 'single', 1), { replicationFactor: 1, minInsyncReplicas: 1 });
  assert.deepEqual(kafkaDurability(unset, 'cluster', 3), { replicationFactor: 3, minInsyncReplicas: 2 });
  const set = loadConfig({ ADCLICK_KAFKA_REPLICATION_FACTOR: '3', ADCLICK_KAFKA_MIN_INSYNC_REPLICAS: '3' });
  assert.deepEqual(kafkaDurability(set, 'cluster', 3), { replicationFactor: 3, minInsyncReplicas: 3 });
  assert.throws(() => kafkaDurability(set, 'single', 1), /ADCLICK_KAFKA_REPLICATION_FACTOR \(3\) is more than the 1 broker/);
  assert.throws(() => kafkaDurability(loadConfig({ ADCLICK_KAFKA_MIN_INSYNC_REPLICAS: '4' }), 'cluster', 5), /no acks=all write could ever succeed/);
  assert.throws(() => loadConfig({ ADCLICK_KAFKA_REPLICATION_FACTOR: '17' }), /ADCLICK_KAFKA_REPLICATION_FACTOR must be between 0 and 16/);
});

test('pipeline topics carry the replication factor, min ISR and no unclean election they are created with', () => {
  const config = loadConfig({});
  const cluster = pipelineTopics(config, kafkaDurability(config, 'cluster', 3));
  assert.ok(cluster.length >= 5);
  for (const t of cluster) {
    assert.equal(t.replicationFactor, 3, t.name);
    assert.equal(t.configs['min.insync.replicas'], '2', t.name);
    assert.equal(t.configs['unclean.leader.election.enable'], 'false', t.name);
  }
  for (const t of pipelineTopics(config)) {
    assert.equal(t.replicationFactor, 1, t.name);
    assert.equal(t.configs['min.insync.replicas'], '1', t.name);
  }
});

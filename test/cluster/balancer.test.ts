// The stateless tier behind HAProxy in the cluster form (issue 18): two gateway processes,
// each in its own network namespace with its own address, behind HAProxy in a third,
// health-checking GET /readyz; Kafka is one KRaft node in a fourth (the balancer's
// behaviour does not depend on replication; the 3-node tier is kafka-cluster.test.ts).
// Bounded signed traffic goes through the balancer; one gateway is killed with SIGKILL
// mid-stream. Every click must end accepted (a client retries a failed answer with the same
// click, as an ad server does) and be in Kafka; the time until HAProxy took the dead
// gateway out is measured, and so is its return after a restart. Same gateway code and
// configuration keys as the single box; only addresses differ.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BALANCER_NODE, GATEWAY_NODES, StatelessTier } from '../../src/cluster/balancer.ts';
import type { ServerState } from '../../src/cluster/haproxy.ts';
import { KafkaCluster } from '../../src/cluster/kafka-cluster.ts';
import { cutOff, heal } from '../../src/cluster/netns.ts';
import { createNetwork, destroyNetwork, destroyNetworkSync, planTopology } from '../../src/cluster/topology.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { signClick } from '../../src/shared/signature.ts';
import { ensureKafkaDist } from '../../src/stack/kafka-dist.ts';
import { ensureTopics, pipelineTopics } from '../../src/stack/topics.ts';
import { readClicks } from '../helpers/kafka.ts';
import { leftovers, onExitOrSignal, randomTopologyName, testStateDir } from './test-cluster.ts';

const logger = createLogger('balancer-test', 'warn');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const GATEWAY_PORT = 8080;
const CLICKS = 900;
const SENDERS = 3;

const config = loadConfig();
const stateDir = await testStateDir('lb');
const stateFile = join(stateDir, 'network.json');
const topology = planTopology({ ...randomTopologyName(), nodes: ['kafka-1', ...GATEWAY_NODES, BALANCER_NODE] });
const node = (name: string) => topology.nodes.find((n) => n.name === name)!;
const dist = await ensureKafkaDist({ cacheDir: join(config.dataDir, 'cache'), version: config.kafkaVersion });
const kafka = new KafkaCluster({
  dist, stateDir, nodes: [node('kafka-1')], port: 9092, controllerPort: 9093,
  durability: { replicationFactor: 1, minInsyncReplicas: 1 }, heapMax: '512m', logger, readyTimeoutMs: 240_000,
});
// A gateway on a non-loopback address refuses the public development key: a key of the test's own.
const [keyId, secret] = ['lbtest', randomBytes(32).toString('hex')];
const tier = new StatelessTier({
  config: { ...config, gatewayPort: GATEWAY_PORT, logLevel: 'warn' }, nodes: topology.nodes, kafkaBootstrap: `${node('kafka-1').address}:9092`,
  stateDir: join(stateDir, 'stateless'), logger,
  env: { ADCLICK_SIGNING_KEYS: `${keyId}:${secret}`, REDIS_URL: 'none', ADCLICK_RATE_LIMIT_PER_SEC: '100000', ADCLICK_RATE_LIMIT_BURST: '100000' },
});

const lastResort = () => {
  tier.killNow();
  kafka.killNow();
  destroyNetworkSync(stateFile);
};
const unhook = onExitOrSignal(lastResort);
after(async () => {
  await tier.stop();
  await kafka.stop();
  await destroyNetwork(stateFile);
  unhook();
  assert.deepEqual(await leftovers(topology), [], 'no namespace or link of the test is left');
});

async function waitStatus(server: string, want: (s: string) => boolean, timeoutMs: number): Promise<ServerState[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const states = await tier.serverStates().catch(() => [] as ServerState[]);
    const s = states.find((x) => x.server === server);
    if (s && want(s.status)) return states;
    if (Date.now() > end) throw new Error(`${server} never reached the wanted state (last: ${s?.status ?? 'unknown'}); logs in ${stateDir}/stateless`);
    await sleep(100);
  }
}

test('two gateways behind HAProxy: one killed (-9) mid-stream leaves the rotation, every click is accepted and in Kafka', { timeout: 600_000 }, async () => {
  await createNetwork(topology, stateFile);
  await kafka.start();
  await ensureTopics(kafka.bootstrap, pipelineTopics(config, { replicationFactor: 1, minInsyncReplicas: 1 }), logger);
  await tier.start();
  // Both in rotation (each one's /readyz: its Kafka producer is connected).
  await waitStatus('gw-1', (s) => s === 'UP', 180_000);
  await waitStatus('gw-2', (s) => s === 'UP', 180_000);

  const url = `${tier.gatewayUrl}/v1/clicks`;
  const run = Date.now().toString(36);
  const accepted = new Set<string>();
  let firstTryFailures = 0;
  let failuresAfterKill = 0;
  let retries = 0;
  let sent = 0;
  let killedAt = 0;
  const failureTimes: number[] = [];
  const send = async (i: number) => {
    const click = { impression_id: `imp_lb_${run}_${i}`, event_type: 'click', ad_id: 9001 + (i % 5), campaign_id: 9000, advertiser_id: 8999, user_id: `u_${i % 50}`, timestamp: Date.now() - 1000 };
    const body = JSON.stringify({ ...click, key_id: keyId, signature: signClick({ ...click, key_id: keyId }, secret) });
    for (let attempt = 0; attempt < 30; attempt++) {
      let status = 0;
      try {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000) });
        status = res.status;
        await res.arrayBuffer();
      } catch { /* connection reset or timeout: in doubt, retried */ }
      if (status === 202) {
        accepted.add(click.impression_id);
        return;
      }
      if (attempt === 0) firstTryFailures++;
      if (killedAt) failuresAfterKill++;
      failureTimes.push(Date.now());
      retries++;
      await sleep(200);
    }
  };
  // SENDERS sequential clients, ~100 clicks/s in all; gw-1 killed after a third.
  let next = 0;
  const t0 = Date.now();
  const senders = Array.from({ length: SENDERS }, async () => {
    while (next < CLICKS && Date.now() - t0 < 240_000) {
      const i = next++;
      sent++;
      await send(i);
      await sleep(SENDERS * 10);
    }
  });
  while (sent < CLICKS / 3) await sleep(50);
  const before = await tier.serverStates();
  tier.kill('gw-1');
  killedAt = Date.now();
  await waitStatus('gw-1', (s) => s.startsWith('DOWN'), 30_000);
  const removalMs = Date.now() - killedAt;
  await Promise.all(senders);
  const trafficMs = Date.now() - t0;
  const mid = await tier.serverStates();

  // Back: restarted, it re-enters after `rise` good checks.
  const restartedAt = Date.now();
  tier.startInstance('gw-1');
  await waitStatus('gw-1', (s) => s === 'UP', 180_000);
  const returnMs = Date.now() - restartedAt;

  const inKafka = await readClicks(kafka.bootstrap, config.clicksTopic, CLICKS, 60_000);
  const ids = inKafka.map((c) => c.value.impressionId).filter((id) => id.startsWith(`imp_lb_${run}_`));
  const distinct = new Set(ids);
  const missing = [...accepted].filter((id) => !distinct.has(id));
  const byGateway: Record<string, number> = {};
  for (const c of inKafka) byGateway[c.value.gatewayId || '?'] = (byGateway[c.value.gatewayId || '?'] ?? 0) + 1;
  const reqs = (states: ServerState[], s: string) => states.find((x) => x.server === s)?.requests ?? 0;
  const lastFailureMs = failureTimes.length ? Math.max(...failureTimes) - killedAt : 0;
  console.log(`# ${JSON.stringify({
    clicks: CLICKS, sent, accepted: accepted.size, inKafka: ids.length, distinctInKafka: distinct.size, duplicatesInKafka: ids.length - distinct.size, missing: missing.length,
    firstTryFailures, failuresAfterKill, retries, lastClientFailureAfterKillMs: lastFailureMs, removalMs, returnMs, trafficMs, byGateway,
    requestsBeforeKill: { 'gw-1': reqs(before, 'gw-1'), 'gw-2': reqs(before, 'gw-2') }, requestsAfterTraffic: { 'gw-1': reqs(mid, 'gw-1'), 'gw-2': reqs(mid, 'gw-2') },
  })}`);

  assert.equal(accepted.size, CLICKS, 'every click accepted through the balancer');
  assert.deepEqual(missing, [], 'every accepted click is in Kafka');
  assert.ok(reqs(before, 'gw-1') > 0 && reqs(before, 'gw-2') > 0, 'both gateways took traffic before the kill');
  assert.ok(reqs(mid, 'gw-2') > reqs(before, 'gw-2'), 'the surviving gateway took the rest');
  assert.ok(removalMs < 10_000, `HAProxy took the dead gateway out in ${removalMs} ms (checks every 1 s, fall 2)`);
});

test('a gateway cut off from Kafka answers 503 on /readyz and leaves the rotation; the other keeps accepting every click', { timeout: 600_000 }, async () => {
  assert.ok((await tier.serverStates()).every((x) => x.status === 'UP'), 'both gateways in rotation (after the first test)');
  const url = `${tier.gatewayUrl}/v1/clicks`;
  const run = `cut${Date.now().toString(36)}`;
  const N = 600;
  const accepted = new Set<string>();
  let non202 = 0;
  let sent = 0;
  let cutAt = 0;
  const send = async (i: number) => {
    const click = { impression_id: `imp_lb_${run}_${i}`, event_type: 'click', ad_id: 9001 + (i % 5), campaign_id: 9000, advertiser_id: 8999, user_id: `u_${i % 50}`, timestamp: Date.now() - 1000 };
    const body = JSON.stringify({ ...click, key_id: keyId, signature: signClick({ ...click, key_id: keyId }, secret) });
    for (let attempt = 0; attempt < 30; attempt++) {
      let status = 0;
      try {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(20_000) });
        status = res.status;
        await res.arrayBuffer();
      } catch { /* in doubt: retried */ }
      if (status === 202) {
        accepted.add(click.impression_id);
        return;
      }
      non202++;
      await sleep(200);
    }
  };
  let next = 0;
  const t0 = Date.now();
  const senders = Array.from({ length: SENDERS }, async () => {
    while (next < N && Date.now() - t0 < 240_000) {
      const i = next++;
      sent++;
      await send(i);
      await sleep(SENDERS * 10);
    }
  });
  while (sent < N / 4) await sleep(50);
  // gw-2 loses Kafka (its packets to the broker are dropped; the balancer still reaches it).
  await cutOff(node('gw-2').netns, [node('kafka-1').address]);
  cutAt = Date.now();
  let removalMs = -1;
  try {
    await waitStatus('gw-2', (st) => st.startsWith('DOWN'), 120_000);
    removalMs = Date.now() - cutAt;
    await Promise.all(senders);
  } finally {
    await heal(node('gw-2').netns);
  }
  const mid = await tier.serverStates();
  const healedAt = Date.now();
  await waitStatus('gw-2', (st) => st === 'UP', 180_000);
  const returnMs = Date.now() - healedAt;
  const inKafka = await readClicks(kafka.bootstrap, config.clicksTopic, N, 60_000);
  const ids = inKafka.map((c) => c.value.impressionId).filter((id) => id.startsWith(`imp_lb_${run}_`));
  const distinct = new Set(ids);
  const missing = [...accepted].filter((id) => !distinct.has(id));
  console.log(`# ${JSON.stringify({ clicks: N, sent, accepted: accepted.size, non202Answers: non202, inKafka: ids.length, distinctInKafka: distinct.size, duplicatesInKafka: ids.length - distinct.size, missing: missing.length,
    removalMs, returnAfterHealMs: returnMs, states: mid.map((x) => `${x.server} ${x.status} ${x.requests}`) })}`);
  assert.equal(accepted.size, N, 'every click accepted through the balancer');
  assert.deepEqual(missing, [], 'every accepted click is in Kafka');
  assert.ok(removalMs >= 0, 'the cut-off gateway left the rotation');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/shared/config.ts';
import { createLogger } from '../../../src/shared/logger.ts';
import { flinkJobEnv, flinkJobService, gatewayService, serviceEnv, type StackContext } from '../../../src/stack/up.ts';
import { brokerServiceSpec } from '../../../src/stack/kafka-broker.ts';

const KEYS = `k1:${'s'.repeat(40)}`;
const LAUNCHER_ENV = {
  PATH: '/usr/bin', HOME: '/home/ops', JAVA_HOME: '/usr/lib/jvm/21',
  ADCLICK_SIGNING_KEYS: KEYS,
  ADCLICK_IP_HASH_KEY: 'ip-hash-secret',
  REDIS_URL: 'redis://adclick:redis-pass@10.0.0.5:6379',
  CLICKHOUSE_URL: 'http://default:ch-pass@10.0.0.6:8123/adclick',
  AWS_SECRET_ACCESS_KEY: 'aws-secret',
};

function context(t: { after(fn: () => void): void }, env: Partial<Record<keyof typeof LAUNCHER_ENV, string>>, hostEnv: Record<string, string> = {}): StackContext {
  const dataDir = mkdtempSync(join(tmpdir(), 'adclick-env-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({ ...env, ...hostEnv }, { dataDir });
  return {
    config, repoRoot: dataDir, kafkaBootstrap: '127.0.0.1:1', redisReachable: false,
    childEnv: serviceEnv(config, env), baseEnv: env, logger: createLogger('test', 'silent'),
  };
}

test('the Flink JVM inherits an allow-list: no signing keys, no passwords, no credentials', (t) => {
  assert.deepEqual(flinkJobEnv(LAUNCHER_ENV), { PATH: '/usr/bin', HOME: '/home/ops', JAVA_HOME: '/usr/lib/jvm/21' });
  const spec = flinkJobService(context(t, LAUNCHER_ENV));
  const env = spec.env ?? process.env;
  for (const [k, v] of Object.entries(LAUNCHER_ENV)) {
    if (['PATH', 'HOME', 'JAVA_HOME'].includes(k)) assert.equal(env[k], v);
    else assert.equal(env[k], undefined, `${k} reaches the Flink JVM`);
  }
  for (const v of Object.values(env)) assert.ok(!/pass|secret|s{40}/.test(v ?? ''), `secret text in the Flink env: ${v}`);
});

test('the Flink REST API binds to loopback even when the services bind to every interface', async (t) => {
  const ctx = context(t, LAUNCHER_ENV, { ADCLICK_BIND_HOST: '0.0.0.0' });
  const spec = flinkJobService(ctx);
  const args = typeof spec.args === 'function' ? await spec.args({ attempt: 0 }) : spec.args;
  assert.equal(args[args.indexOf('--web-ui-bind-address') + 1], '127.0.0.1');
  assert.match(spec.health?.kind === 'line' && spec.health.outside?.kind === 'http' ? spec.health.outside.url : '', /^http:\/\/127\.0\.0\.1:\d+\/jobs\/overview$/);
  const own = flinkJobService(context(t, LAUNCHER_ENV, { ADCLICK_FLINK_BIND_HOST: '10.1.2.3' }));
  const ownArgs = typeof own.args === 'function' ? await own.args({ attempt: 0 }) : own.args;
  assert.equal(ownArgs[ownArgs.indexOf('--web-ui-bind-address') + 1], '10.1.2.3');
});

test('Node services get the config, and an inherited AdClick variable cannot stand in for an unset one', (t) => {
  const withKeys = context(t, LAUNCHER_ENV);
  assert.equal(gatewayService(withKeys).env?.ADCLICK_SIGNING_KEYS, KEYS);
  // The launcher's config has no keys (overrides), its environment an empty value: the
  // gateway must see "unset" (dev key on loopback), not "empty" (a start-up error).
  const config = loadConfig({}, { signingKeys: '' });
  const env = serviceEnv(config, { PATH: '/usr/bin', ADCLICK_SIGNING_KEYS: '' }, { KAFKA_BROKERS: '127.0.0.1:1' });
  assert.equal('ADCLICK_SIGNING_KEYS' in env, false);
  assert.equal(env.KAFKA_BROKERS, '127.0.0.1:1');
  assert.equal(env.PATH, '/usr/bin');
  assert.doesNotThrow(() => loadConfig(env));
});

test('adclick up refuses the dev signing key on a public bind before starting anything', (t) => {
  const ctx = context(t, { PATH: '/usr/bin' }, { ADCLICK_BIND_HOST: '0.0.0.0' });
  assert.throws(() => gatewayService(ctx), /development signing key/);
});

test('the Kafka broker JVM gets the same allow-list: no signing keys, passwords or credentials of the launcher', () => {
  const saved = { ...process.env };
  try {
    Object.assign(process.env, LAUNCHER_ENV);
    const spec = brokerServiceSpec({ stateDir: '/tmp/adclick-env-kafka', port: 1, controllerPort: 2, logger: createLogger('test', 'silent'), dist: { classpath: '' } as never });
    const env = spec.env ?? process.env;
    for (const k of ['ADCLICK_SIGNING_KEYS', 'ADCLICK_IP_HASH_KEY', 'REDIS_URL', 'CLICKHOUSE_URL', 'AWS_SECRET_ACCESS_KEY']) assert.equal(env[k], undefined, `${k} reaches the broker`);
    assert.equal(env.PATH, '/usr/bin');
    assert.equal(env.JAVA_HOME, '/usr/lib/jvm/21');
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});

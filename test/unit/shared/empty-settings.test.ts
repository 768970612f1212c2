// Issue 16, "misconfiguration fails closed": a URL or secret whose value failed to render
// arrives as an empty string. Only an unset key means its default; set but empty stops
// start-up naming the key (REDIS_URL='' used to mean the default Redis on 127.0.0.1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configToEnv, loadConfig } from '../../../src/shared/config.ts';

for (const key of ['REDIS_URL', 'CLICKHOUSE_URL', 'KAFKA_BROKERS', 'ADCLICK_FLINK_REST_URL', 'ADCLICK_SIGNING_KEYS']) {
  test(`${key} set but empty stops start-up; unset is the default`, () => {
    for (const empty of ['', '  ']) {
      assert.throws(() => loadConfig({ [key]: empty }), (err: Error) => {
        assert.match(err.message, new RegExp(`${key} is set but empty`));
        return true;
      }, `${key}=${JSON.stringify(empty)}`);
    }
    assert.doesNotThrow(() => loadConfig({}));
  });
}

test('REDIS_URL=none runs without Redis, and a child process started from that config does too', () => {
  const c = loadConfig({ REDIS_URL: 'none' });
  assert.equal(c.redisUrl, '');
  assert.equal(loadConfig({ REDIS_URL: 'NONE' }).redisUrl, '');
  const env = configToEnv(c);
  assert.equal(env.REDIS_URL, 'none');
  assert.equal(loadConfig(env).redisUrl, '', 'the child reads the same choice');
  assert.equal(loadConfig({}).redisUrl, 'redis://127.0.0.1:6379');
  assert.equal(configToEnv(loadConfig({})).REDIS_URL, 'redis://127.0.0.1:6379');
});

test('the message never echoes what was set (nothing to echo) and names the way out', () => {
  assert.throws(() => loadConfig({ REDIS_URL: '' }), /`none` to run without Redis/);
  assert.throws(() => loadConfig({ CLICKHOUSE_URL: '' }), /unset it for embedded chdb/);
});

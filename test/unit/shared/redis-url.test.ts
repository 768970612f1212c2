import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../../src/shared/config.ts';
import { redactUrl } from '../../../src/shared/redact-url.ts';

test('REDIS_URL: AUTH/ACL and TLS forms are accepted; anything else stops start-up without echoing the password', () => {
  for (const url of ['redis://127.0.0.1:6379', 'redis://:pw@10.0.0.5:6379', 'redis://gateway:pw@10.0.0.5:6379/2', 'rediss://gateway:pw@redis.example.com:6380', 'redis://[::1]:6379']) {
    assert.equal(loadConfig({ REDIS_URL: url }).redisUrl, url);
  }
  // ioredis turns TLS on only for a lower-case rediss://: an upper-case scheme must not go out in clear.
  assert.equal(loadConfig({ REDIS_URL: 'REDISS://gateway:pw@redis.example.com:6380' }).redisUrl, 'rediss://gateway:pw@redis.example.com:6380');
  for (const url of ['http://gateway:hunter2-secret@10.0.0.5:6379', 'localhost:6379', 'redis://gateway:hunter2-secret@10.0.0.5:6379/cache', 'redis://', 'gateway:hunter2-secret@10.0.0.5']) {
    assert.throws(() => loadConfig({ REDIS_URL: url }), (err: Error) => {
      assert.match(err.message, /REDIS_URL must be redis:\/\/\[user:password@\]host\[:port\]\[\/db\] or rediss:\/\//);
      assert.ok(!err.message.includes('hunter2-secret'), err.message);
      return true;
    }, url);
  }
});

test('redactUrl hides passwords of any URL form', () => {
  assert.equal(redactUrl('redis://gateway:pw@10.0.0.5:6379/2'), 'redis://gateway:***@10.0.0.5:6379/2');
  assert.equal(redactUrl('rediss://:pw@h:1'), 'rediss://:***@h:1');
  assert.equal(redactUrl('redis://127.0.0.1:6379'), 'redis://127.0.0.1:6379');
  assert.equal(redactUrl('http://default:p%40ss@ch:8123/db'), 'http://default:***@ch:8123/db');
  assert.ok(!redactUrl('gateway:hunter2@10.0.0.5').includes('hunter2'));
});

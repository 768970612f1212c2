// CLICKHOUSE_URL as a replica list: parsing, which errors fail over, and a list without a
// cluster refused. The failover itself against real replicas: test/cluster/pipeline-cluster.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../../src/shared/logger.ts';
import { clickhouseUrls, isConnectionError, ServerStore } from '../../../src/store/server-store.ts';

test('clickhouseUrls: one URL or a comma-separated list, blanks dropped', () => {
  assert.deepEqual(clickhouseUrls('http://a:8123'), ['http://a:8123']);
  assert.deepEqual(clickhouseUrls(' http://a:8123 , http://b:8123,'), ['http://a:8123', 'http://b:8123']);
  assert.throws(() => clickhouseUrls(' , '), /names no server/);
});

test('isConnectionError: unreachable or reset servers fail over, refused statements do not', () => {
  assert.equal(isConnectionError(Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:8123'), { code: 'ECONNREFUSED' })), true);
  assert.equal(isConnectionError(new Error('socket hang up')), true);
  assert.equal(isConnectionError(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'EHOSTUNREACH' }) })), true);
  assert.equal(isConnectionError(Object.assign(new Error('Syntax error: failed at position 1'), { code: '62' })), false);
  assert.equal(isConnectionError(undefined), false);
});

test('several URLs without ADCLICK_CLICKHOUSE_CLUSTER are refused before any connection', async () => {
  await assert.rejects(ServerStore.open({ url: 'http://127.0.0.1:1,http://127.0.0.1:2', logger: createLogger('test', 'silent') }), /set ADCLICK_CLICKHOUSE_CLUSTER/);
});

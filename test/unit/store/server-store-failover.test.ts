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

// A fake replica on loopback speaking just enough of ClickHouse's HTTP interface: /ping,
// SELECT version(), system.clusters, and `SELECT 1 AS x` answered with its own name, so
// the test sees which replica answered. Closing it is the replica dying.
async function fakeReplica(name: string): Promise<{ url: string; close(): Promise<void>; hits: () => number }> {
  const { createServer } = await import('node:http');
  let hits = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      const u = new URL(req.url ?? '/', 'http://x');
      if (u.pathname === '/ping') return res.end('Ok.\n');
      const sql = (u.searchParams.get('query') ?? '') + body;
      hits++;
      const json = (meta: string[], row: Record<string, unknown>) => res.setHeader('content-type', 'application/json').end(JSON.stringify({ meta: meta.map((n) => ({ name: n, type: 'String' })), data: [row], rows: 1 }));
      if (/version\(\)/.test(sql)) return json(['v'], { v: '18.16.1' });
      if (/system\.clusters/.test(sql)) return res.setHeader('content-type', 'application/json').end(JSON.stringify({ meta: [], rows: 2, data: [
        { cluster: 'adclick', shard_num: 1, replica_num: 1, host_address: '127.0.0.1', port: 9000 },
        { cluster: 'adclick', shard_num: 1, replica_num: 2, host_address: '127.0.0.1', port: 9000 }] }));
      if (/SELECT 1 AS x/.test(sql)) return json(['x'], { x: name });
      res.statusCode = 500;
      res.setHeader('X-ClickHouse-Exception-Code', '62');
      res.end('Code: 62, e.displayText() = DB::Exception: Syntax error (fake)');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, hits: () => hits, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

test('a replica that dies mid-run: calls fail over to the next of the list and stay there; a refused statement is not repeated elsewhere', async () => {
  const a = await fakeReplica('a');
  const b = await fakeReplica('b');
  const store = await ServerStore.open({ url: `${a.url},${b.url}`, cluster: 'adclick', logger: createLogger('test', 'silent'), requestTimeoutMs: 5000 });
  try {
    assert.deepEqual(await store.query('SELECT 1 AS x'), [{ x: 'a' }]);
    const bHits = b.hits();
    await assert.rejects(store.query('SELEKT nonsense'), /Syntax error/);
    assert.equal(b.hits(), bHits, 'a statement the server refused is not sent to another replica');
    await a.close();
    assert.deepEqual(await store.query('SELECT 1 AS x'), [{ x: 'b' }], 'the same call answered by the next replica');
    assert.equal(await store.ping(), true, 'ready while a replica answers');
    assert.equal(store.currentHost, new URL(b.url).host);
    await b.close();
    assert.equal(await store.ping(), false, 'not ready when no replica answers');
    await assert.rejects(store.query('SELECT 1 AS x'));
  } finally {
    await store.close();
    await a.close().catch(() => undefined);
    await b.close().catch(() => undefined);
  }
});

test('open skips a first replica that does not answer', async () => {
  const b = await fakeReplica('b');
  const dead = await fakeReplica('dead');
  await dead.close();
  const store = await ServerStore.open({ url: `${dead.url},${b.url}`, cluster: 'adclick', logger: createLogger('test', 'silent'), requestTimeoutMs: 5000 });
  try {
    assert.deepEqual(await store.query('SELECT 1 AS x'), [{ x: 'b' }]);
  } finally {
    await store.close();
    await b.close();
  }
});

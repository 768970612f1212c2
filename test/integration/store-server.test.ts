import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLogger } from '../../src/shared/logger.ts';
import { openStore } from '../../src/store/open-store.ts';
import { startClickHouseServer, type ClickHouseServer } from '../helpers/clickhouse-server.ts';
import { storeSuite } from './store-suite.ts';

let server: ClickHouseServer;
before(async () => { server = await startClickHouseServer(); });
after(async () => { await server?.stop(); });

storeSuite('clickhouse-server', () => openStore({ clickhouseUrl: server.url, dataDir: '/nonexistent' }, createLogger('test', 'silent')), (s) => s.close(), (get) => {
  test('clickhouse-server: capabilities detected from the version', async () => {
    const s = get();
    assert.equal(s.kind, 'server');
    const v = s.capabilities.version;
    const major = Number(v.split('.')[0]);
    if (major < 19) {
      // Debian's 18.16: no server-side params, no TTL; everything above passed anyway.
      assert.equal(s.capabilities.serverParams, false);
      assert.equal(s.capabilities.ttl, false);
      assert.equal(s.capabilities.storagePolicies, false);
      assert.equal(s.capabilities.insertDedupToken, false);
    } else {
      assert.equal(s.capabilities.ttl, true);
    }
    assert.equal(await s.ping(), true);
  });
});

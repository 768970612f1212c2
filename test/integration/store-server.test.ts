import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
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

  test('clickhouse-server: a configured cold tier is checked against what the server can do', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => { lines.push(l); } });
    const major = Number(get().capabilities.version.split('.')[0]);
    if (major < 19) {
      // 18.16 has no storage policies: said at start-up, one tier, never a failure.
      const s = await openStore({ clickhouseUrl: server.url, dataDir: '/nonexistent', clickhouseStoragePolicy: 'adclick_tiered' }, log);
      try {
        assert.equal(s.storagePolicy, '');
        assert.ok(lines.some((l) => l.includes('has no storage policies') && l.includes('CLICKHOUSE_STORAGE_POLICY ignored')), lines.join(''));
        assert.ok(lines.some((l) => l.includes('storage policies (no hot/cold volumes)')), 'missing features are listed at start-up');
      } finally {
        await s.close();
      }
    } else {
      // A newer server: a policy that is not defined is refused loudly.
      await assert.rejects(openStore({ clickhouseUrl: server.url, dataDir: '/nonexistent', clickhouseStoragePolicy: 'no_such_policy' }, log), /not defined/);
    }
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createLogger } from '../../src/shared/logger.ts';
import { openStore } from '../../src/store/open-store.ts';
import { storeSuite } from './store-suite.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'adclick-chdb-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

storeSuite('chdb', () => openStore({ clickhouseUrl: '', dataDir }, createLogger('test', 'silent')), (s) => s.close(), (get) => {
  test('chdb: capabilities of the embedded engine', () => {
    const c = get().capabilities;
    assert.equal(get().kind, 'embedded');
    assert.ok(Number(c.version.split('.')[0]) >= 23, c.version);
    assert.equal(c.serverParams, true);
    assert.equal(c.ttl, true);
  });

  test('chdb: ping answers at once while the engine is busy if a call came back within the last second; otherwise it waits its turn', async () => {
    const store = get();
    const slow = () => store.query('SELECT sum(sleepEachRow(0.3)) AS s FROM numbers(5) SETTINGS max_block_size = 1'); // ~1.5 s of engine time
    await store.query('SELECT 1 AS one');
    const busy = slow();
    await new Promise((r) => setTimeout(r, 50));
    let t0 = performance.now();
    assert.equal(await store.ping(), true);
    const fresh = performance.now() - t0;
    assert.ok(fresh < 500, `fresh answer: ping took ${fresh.toFixed(0)} ms behind a 1.5 s query`);
    await busy;
    await new Promise((r) => setTimeout(r, 1100)); // the last answer is now older than a second
    const busy2 = slow();
    await new Promise((r) => setTimeout(r, 50));
    t0 = performance.now();
    assert.equal(await store.ping(), true);
    const stale = performance.now() - t0;
    assert.ok(stale > 800, `stale: ping must wait for the engine (took ${stale.toFixed(0)} ms)`);
    await busy2;
  });
});

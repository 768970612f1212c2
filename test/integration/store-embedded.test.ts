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

  test('chdb: ping answers at once while the engine is on a call it started lately (busy is not unready); idle and silent, it asks the engine', async () => {
    const store = get();
    const slow = () => store.query('SELECT sum(sleepEachRow(0.3)) AS s FROM numbers(5) SETTINGS max_block_size = 1'); // ~1.5 s of engine time
    await store.query('SELECT 1 AS one');
    const busy = slow();
    await new Promise((r) => setTimeout(r, 50));
    const t0 = performance.now();
    assert.equal(await store.ping(), true);
    const fresh = performance.now() - t0;
    assert.ok(fresh < 500, `fresh answer: ping took ${fresh.toFixed(0)} ms behind a 1.5 s query`);
    await busy;
    await new Promise((r) => setTimeout(r, 1100)); // the last answer is now older than a second
    // A call started 50 ms ago (a sink insert, say): the ping does not queue behind it. On
    // the code before, it waited for the whole call (> 800 ms).
    let slowDone = false;
    const busy2 = slow().then(() => { slowDone = true; });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(await store.ping(), true);
    assert.equal(slowDone, false, 'ping answered while the engine was still on the 1.5 s call');
    await busy2;
    // Idle with no answer in the last second: the ping is a call of its own, and succeeds.
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal(await store.ping(), true);
  });
});

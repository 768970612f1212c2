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
});

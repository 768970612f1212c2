// Query API execution caps (max_execution_time, max_result_rows, max_rows_to_read) on the
// real engines: embedded chdb and a ClickHouse server (Debian's 18.16 when installed).
// A cap hit answers a documented error (400 QUERY_TOO_EXPENSIVE / 503 UNAVAILABLE), reads
// under the caps are unchanged, and the store keeps working after a cap hit.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildQueryApp } from '../../src/query/app.ts';
import { isAppError } from '../../src/shared/errors.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { WindowAggregate } from '../../src/shared/proto.ts';
import { buildBatch, writeBatch, type SinkMessage } from '../../src/sink/batch.ts';
import { createApiKey } from '../../src/store/api-keys.ts';
import { migrate } from '../../src/store/migrations.ts';
import { openStore } from '../../src/store/open-store.ts';
import { capError, withLimits, type QueryLimits } from '../../src/store/query-limits.ts';
import { storeQueryRepository } from '../../src/store/query-repository.ts';
import type { Store } from '../../src/store/store.ts';
import { findClickHouseBinary, startClickHouseServer } from '../helpers/clickhouse-server.ts';

const logger = createLogger('test', 'silent');
// An hour-aligned time a day ago: inside raw_clicks' 7-day TTL whatever the date (a fixed
// date stopped working a week after it was written), and long closed.
const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 26 * 3_600_000;
const MIN = 60_000;
const NONE: QueryLimits = { maxExecutionSec: 0, maxResultRows: 0, maxRowsToRead: 0 };

/** Campaign 55 of advertiser 7: 3 ads × 3 one-minute windows, ad a has a + window index clicks. */
async function seed(store: Store): Promise<void> {
  let offset = 0;
  const msgs: SinkMessage[] = [];
  for (const ad of [1, 2, 3]) {
    for (let w = 0; w < 3; w++) {
      const value = Buffer.from(WindowAggregate.encode({ granularity: 1, adId: ad, campaignId: 55, advertiserId: 7, windowStartMs: T0 + w * MIN, windowEndMs: T0 + (w + 1) * MIN, clicks: ad + w, final: true, watermarkMs: T0 + 10 * MIN, emittedAtMs: T0 + 10 * MIN }).finish());
      msgs.push({ topic: 'click-aggregates', partition: 0, offset: String(offset++), key: null, value });
    }
  }
  await writeBatch(store, buildBatch(msgs));
}

function capsSuite(name: string, open: () => Promise<Store>): void {
  test(`${name}: query API reads run under ClickHouse caps; a cap hit is a documented error`, { timeout: 120_000 }, async () => {
    const store = await open();
    try {
      await migrate(store, logger);
      await seed(store);
      const { api_key } = await createApiKey(store, 7);
      const url = `/v1/campaigns/55/clicks?from=${T0}&to=${T0 + 3 * MIN}&granularity=1m`;
      const auth = { authorization: `Bearer ${api_key}` };
      const get = async (limits: QueryLimits) => {
        const app = buildQueryApp({ repo: storeQueryRepository(store, { limits }), logger, clock: () => T0 + 20 * MIN });
        try {
          return await app.inject({ method: 'GET', url, headers: auth });
        } finally {
          await app.close();
        }
      };

      // Under the caps: same answer as without. The series' inner GROUP BY (ad, window) has 9
      // rows, more than the result cap of 5: only the result (3 windows) is capped.
      const free = await get(NONE);
      assert.equal(free.statusCode, 200, free.body);
      const capped = await get({ maxExecutionSec: 5, maxResultRows: 5, maxRowsToRead: 100_000 });
      assert.equal(capped.statusCode, 200, capped.body);
      assert.deepEqual(capped.json().points, free.json().points);
      assert.deepEqual(free.json().points.map((p: { clicks: number }) => p.clicks), [6, 9, 12]);

      // More result rows than allowed: 400 QUERY_TOO_EXPENSIVE, not a 500.
      const tooMany = await get({ maxExecutionSec: 5, maxResultRows: 2, maxRowsToRead: 0 });
      assert.equal(tooMany.statusCode, 400, tooMany.body);
      assert.equal(tooMany.json().error.code, 'QUERY_TOO_EXPENSIVE');
      // More rows read than allowed: the same.
      const tooMuchRead = await get({ maxExecutionSec: 5, maxResultRows: 0, maxRowsToRead: 2 });
      assert.equal(tooMuchRead.statusCode, 400, tooMuchRead.body);
      assert.equal(tooMuchRead.json().error.code, 'QUERY_TOO_EXPENSIVE');

      // The store is sound after a cap hit (chdb once leaked the failed query's output into the next result).
      assert.deepEqual(await store.query<{ x: number }>('SELECT 1 AS x'), [{ x: 1 }]);
      const again = await get(NONE);
      assert.equal(again.statusCode, 200, again.body);
      assert.deepEqual(again.json().points, free.json().points);

      // Execution time: a read past max_execution_time is a retryable 503 UNAVAILABLE.
      const slow = withLimits(store, { maxExecutionSec: 1, maxResultRows: 0, maxRowsToRead: 0 });
      const t = Date.now();
      const err = await slow.query('SELECT sleep(0.5) AS s FROM system.numbers LIMIT 8', {}, { settings: { max_block_size: 1 } }).then(() => null, (e: unknown) => e);
      assert.ok(err, 'the slow query must fail');
      assert.ok(Date.now() - t < 3_500, `stopped by the cap, not run to the end (${Date.now() - t} ms)`);
      const mapped = capError(err);
      assert.ok(mapped && isAppError(mapped), `a cap error: ${String(err)}`);
      assert.equal(mapped.code, 'UNAVAILABLE');
      assert.deepEqual(await store.query<{ x: number }>('SELECT 2 AS x'), [{ x: 2 }]);
    } finally {
      await store.close();
    }
  });
}

const dataDir = mkdtempSync(join(tmpdir(), 'adclick-caps-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));
capsSuite('chdb', () => openStore({ clickhouseUrl: '', dataDir }, logger));

if (findClickHouseBinary()) {
  const server = await startClickHouseServer();
  after(() => server.stop());
  capsSuite('clickhouse-server', () => openStore({ clickhouseUrl: server.url, dataDir: '/nonexistent' }, logger));
} else {
  test('clickhouse-server: not installed', { skip: 'no clickhouse-server binary' }, () => {});
}

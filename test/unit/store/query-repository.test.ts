// The store-backed query repository over a fake Store: which statements it sends.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { storeQueryRepository } from '../../../src/store/query-repository.ts';
import { capabilitiesFor } from '../../../src/store/capabilities.ts';
import type { QueryParams, Store } from '../../../src/store/store.ts';

const HOUR = 3_600_000;
const CB = 1_796_547_600_000 + 25 * 60_000; // complete_before 25 min past an hour

function fakeStore() {
  const sent: string[] = [];
  const store: Store = {
    kind: 'embedded',
    capabilities: capabilitiesFor('26.1'),
    storagePolicy: '',
    async query<T>(sql: string, params?: QueryParams): Promise<T[]> {
      sent.push(sql);
      await new Promise((r) => setTimeout(r, 5));
      if (sql.includes('pipeline_watermarks')) return [{ subtask: 0, p: 1, wm: CB, at: CB }] as T[];
      if (sql.includes("granularity = '1h' AND window_start <")) {
        assert.equal(params?.split, CB - 25 * 60_000, 'all-time totals switch to 1m at the last closed hour');
        return [{ k: 55, clicks: 12 }] as T[];
      }
      return [];
    },
    async insert() {},
    async command() {},
    async ping() { return true; },
    async close() {},
  };
  return { store, sent };
}

test('the campaign list reads complete_before once for its answer and its all-time totals', async () => {
  const { store, sent } = fakeStore();
  const repo = storeQueryRepository(store);
  // As GET /v1/campaigns with a range asks: both at once.
  const [totals, cb] = await Promise.all([repo.campaignTotals(7), repo.completeBefore()]);
  assert.deepEqual(totals, [{ campaignId: 55, clicks: 12 }]);
  assert.equal(cb, CB);
  assert.equal(sent.filter((s) => s.includes('pipeline_watermarks')).length, 1, sent.join('\n---\n'));
  assert.equal(sent.length, 2, 'complete_before, then one all-time statement');
  // Later calls read afresh (nothing is cached beyond a read in flight).
  assert.equal(await repo.completeBefore(), CB);
  assert.equal(sent.filter((s) => s.includes('pipeline_watermarks')).length, 2);
  assert.ok(CB % HOUR !== 0);
});

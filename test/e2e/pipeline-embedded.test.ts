import { test } from 'node:test';
import { pipelineE2E } from './pipeline-suite.ts';

test('end to end on embedded ClickHouse (chdb): API counts equal the ledger at 1m, 5m and 1h', { timeout: 900_000 }, async () => {
  await pipelineE2E({ label: 'chdb' });
});

import { after, test } from 'node:test';
import { pipelineE2E } from './pipeline-suite.ts';
import { startClickHouseServer } from '../helpers/clickhouse-server.ts';

test('end to end on a ClickHouse server (Debian 18.16): API counts equal the ledger at 1m, 5m and 1h', { timeout: 900_000 }, async () => {
  const server = await startClickHouseServer();
  after(() => server.stop());
  await pipelineE2E({ label: 'server', clickhouseUrl: server.url });
});

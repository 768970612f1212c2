// The whole pipeline on the cluster form under cluster faults, long form (npm test -- cluster):
// signed clicks through the balancer, counts read back through the balancer, compared with
// the ledger at 1m, 5m and 1h while, in turn, one sink, one query API and one ClickHouse
// replica are killed with SIGKILL (the replica is restarted and must catch up). See
// pipeline-cluster-run.ts for what is started and how each phase is judged.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { renderFaultTable, runPipelineOnCluster } from './pipeline-cluster-run.ts';

test('the whole pipeline on the cluster form stays exact when a sink, a query API and a ClickHouse replica are killed', { timeout: 3_600_000 }, async () => {
  const run = await runPipelineOnCluster({ after }, { faults: ['kill-sink', 'kill-query', 'kill-clickhouse-replica'], phaseMs: 120_000, rate: 25 }, (s) => console.log(`# ${s.replace(/\n/g, '\n# ')}`));
  console.log(`# ${renderFaultTable(run.lines).replace(/\n/g, '\n# ')}`);
  console.log(`# whole run: expected ${run.whole.expected}, counted ${run.whole.counted}, lost ${run.whole.lost}, duplicated ${run.whole.duplicated}, query errors ${run.whole.errors}; conservation: ${run.imbalanced} unbalanced window(s); cluster start ${(run.startMs / 1000).toFixed(0)} s, total ${(run.totalMs / 1000).toFixed(0)} s`);
  for (const l of run.lines) {
    assert.equal(l.unknown, 0, `${l.fault}: every click has a clear answer`);
    assert.equal(l.accepted, l.sent, `${l.fault}: every click accepted through the balancer`);
    assert.equal(l.lost, 0, `${l.fault}: nothing lost`);
    assert.equal(l.duplicated, 0, `${l.fault}: nothing counted twice`);
    assert.equal(l.queryErrors, 0, `${l.fault}: the checker's reads all answered`);
    assert.equal(l.readFailures, 0, `${l.fault}: reads through the balancer kept answering (${l.readFailures} of ${l.reads} failed: ${JSON.stringify(l.readStatuses)})`);
    assert.ok(l.acceptedAfterFault > 0, `${l.fault}: clicks kept being accepted after the fault`);
    assert.ok(l.accepted >= 500, `${l.fault}: enough traffic to mean something (${l.accepted} clicks)`);
  }
  assert.equal(run.whole.lost, 0);
  assert.equal(run.whole.duplicated, 0);
  assert.equal(run.whole.expected, run.lines.reduce((n, l) => n + l.accepted, 0));
  assert.equal(run.imbalanced, 0, 'conservation balanced in every window');
});

// The whole pipeline on the cluster form under cluster faults, long form (npm test -- cluster):
// signed clicks through the balancer, counts read back through the balancer, compared with
// the ledger at 1m, 5m and 1h while, in turn, one sink, one query API, one ClickHouse replica
// (restarted; must catch up), the Kafka broker leading most of `clicks` (restarted after 10 s),
// then the same kind of broker cut off for 30 s, a Flink TaskManager and the leading
// JobManager are killed with SIGKILL (the standby takes over). See
// pipeline-cluster-run.ts for what is started and how each phase is judged.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FAULT_NAMES, renderFaultTable, runPipelineOnCluster, type FaultName } from './pipeline-cluster-run.ts';

// Every fault by default (about 45 min); ADCLICK_CLUSTER_FAULTS=kill-kafka-leader,kill-jobmanager picks some.
const FAULTS = (process.env.ADCLICK_CLUSTER_FAULTS ?? FAULT_NAMES.join(',')).split(',').map((f) => f.trim()).filter(Boolean) as FaultName[];
for (const f of FAULTS) if (!FAULT_NAMES.includes(f)) throw new Error(`ADCLICK_CLUSTER_FAULTS: unknown fault ${f} (one of ${FAULT_NAMES.join(', ')})`);

test(`the whole pipeline on the cluster form stays exact under each fault in turn: ${FAULTS.join(', ')}`, { timeout: 7_200_000 }, async () => {
  const run = await runPipelineOnCluster({ after }, { faults: FAULTS, phaseMs: 120_000, rate: 25 }, (s) => console.log(`# ${s.replace(/\n/g, '\n# ')}`));
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

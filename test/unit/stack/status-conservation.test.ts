import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pipelineLines } from '../../../src/stack/status-figures.ts';

const metrics = (unbalanced: number) => `
adclick_conservation_accepted 1200
adclick_conservation_served 1100
adclick_conservation_late 40
adclick_conservation_duplicates 95
adclick_conservation_rejected 5
adclick_conservation_unbalanced_windows ${unbalanced}
adclick_conservation_checked_windows 360
adclick_store_aggregate_rows{disk="default"} 5000
adclick_store_aggregate_rows{disk="cold"} 70000
`;

test('status shows conservation and the hot/cold split at a glance', () => {
  const lines = pipelineLines(metrics(0));
  const cons = lines.find((l) => l.startsWith('conserve'));
  assert.equal(cons, 'conserve  360 closed windows checked, 0 unbalanced: accepted 1,200 = served 1,100 (late 40) + duplicates 95 + rejected 5');
  assert.equal(lines.find((l) => l.startsWith('storage')), 'storage   aggregate rows hot 5,000, cold 70,000');
  assert.match(pipelineLines(metrics(3)).find((l) => l.startsWith('conserve'))!, /3 UNBALANCED/);
  assert.equal(pipelineLines('').some((l) => l.startsWith('conserve') || l.startsWith('storage')), false, 'no figures, no line');
});

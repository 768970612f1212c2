import assert from 'node:assert/strict';
import { test } from 'node:test';
import { capabilitiesFor, missingCapabilities, storagePolicyProblem } from '../../../src/store/capabilities.ts';

test('capabilitiesFor: thresholds by version', () => {
  assert.deepEqual(missingCapabilities(capabilitiesFor('18.16.1')).length, 5);
  assert.equal(capabilitiesFor('24.8.1').projections, true);
  assert.equal(capabilitiesFor('24.7.9').projections, false);
  assert.ok(missingCapabilities(capabilitiesFor('23.1')).some((m) => /projections/.test(m)));
  assert.equal(capabilitiesFor('19.15.2').storagePolicies, true);
  assert.equal(capabilitiesFor('19.14.9').storagePolicies, false);
  assert.equal(capabilitiesFor('26.1.1').insertDedupToken, true);
  assert.equal(capabilitiesFor('garbage').ttl, false);
});

test('storagePolicyProblem: the tier must exist with a cold volume', () => {
  const rows = [
    { policy_name: 'default', volume_name: 'default' },
    { policy_name: 'tiered', volume_name: 'default' },
    { policy_name: 'tiered', volume_name: 'cold' },
    { policy_name: 'flat', volume_name: 'default' },
  ];
  assert.equal(storagePolicyProblem('tiered', rows), null);
  assert.match(storagePolicyProblem('missing', rows)!, /not defined/);
  assert.match(storagePolicyProblem('flat', rows)!, /no volume named "cold"/);
  assert.match(storagePolicyProblem("x'; DROP", rows)!, /not a plain identifier/);
});

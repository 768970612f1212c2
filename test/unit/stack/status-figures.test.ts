import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sumMetric } from '../../../src/stack/status-figures.ts';

const text = `# HELP adclick_gateway_clicks_total Clicks by outcome
# TYPE adclick_gateway_clicks_total counter
adclick_gateway_clicks_total{outcome="accepted",service="gateway"} 120
adclick_gateway_clicks_total{outcome="duplicate",service="gateway"} 7
adclick_gateway_clicks_total{outcome="SIGNATURE_INVALID",service="gateway"} 3
adclick_gateway_clicks_total_extra 99
adclick_gateway_kafka_inflight{service="gateway"} 4
adclick_sink_paused 0
`;

test('sumMetric sums matching samples and ignores other metrics with the same prefix', () => {
  assert.equal(sumMetric(text, 'adclick_gateway_clicks_total'), 130);
  assert.equal(sumMetric(text, 'adclick_gateway_clicks_total', { outcome: 'accepted' }), 120);
  assert.equal(sumMetric(text, 'adclick_gateway_kafka_inflight'), 4);
  assert.equal(sumMetric(text, 'adclick_sink_paused'), 0);
  assert.equal(sumMetric(text, 'adclick_missing'), null);
});

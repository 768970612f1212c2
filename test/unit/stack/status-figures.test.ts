import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkpointsText, sumMetric } from '../../../src/stack/status-figures.ts';

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

test('checkpoints in adclick status: refused triggers (start-up) are told apart from checkpoints that failed', () => {
  const now = 1_800_000_000_000;
  const completed = { id: 28, end_to_end_duration: 91, latest_ack_timestamp: now - 2800 };
  assert.equal(checkpointsText({ counts: { completed: 28, failed: 0, in_progress: 0 }, latest: { completed, failed: null } }, now),
    'checkpoints 28 completed / 0 failed, last #28 took 91 ms, 2.8 s ago');
  // What a fresh `npm start` showed: one failure, none in the history (Flink's REST answer).
  assert.equal(checkpointsText({ counts: { completed: 28, failed: 1, in_progress: 0 }, latest: { completed, failed: null } }, now),
    'checkpoints 28 completed / 1 failed (none started: triggers refused before they began, e.g. tasks still starting up), last #28 took 91 ms, 2.8 s ago');
  const failed = { id: 27, failure_timestamp: now - 12_000, failure_message: 'Checkpoint expired before completing.\n\tat org.apache.flink...' };
  assert.equal(checkpointsText({ counts: { completed: 27, failed: 2, in_progress: 0 }, latest: { completed, failed } }, now),
    'checkpoints 27 completed / 2 failed (latest #27, 12 s ago: Checkpoint expired before completing.), last #28 took 91 ms, 2.8 s ago');
  assert.equal(checkpointsText({ counts: { completed: 0, failed: 1, in_progress: 0 }, latest: { completed: null, failed: { id: 1, failure_timestamp: now, failure_message: null } } }, now),
    'checkpoints 0 completed / 1 failed (latest #1, 0 s ago: no reason given)');
});

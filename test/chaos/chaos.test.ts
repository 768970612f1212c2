// The fault-injection suite in its CI form: every scenario of `adclick chaos --all`, with
// small numbers (a few thousand clicks each, short pauses). Scenarios sharing a stack kind
// share one stack; the stacks run one after another. Any lost or duplicated click, a
// click without a definite answer, a process that does not come back, or a scenario
// check failing fails the test; the negative control must be DETECTED.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderTable, runChaosScenarios, type ScenarioResult } from '../../src/chaos/driver.ts';
import { SCENARIOS, type Scenario } from '../../src/chaos/scenarios.ts';
import type { StackKind } from '../../src/chaos/stack.ts';

const CLICKS = Number(process.env.ADCLICK_CHAOS_CI_CLICKS ?? 3000);
const RATE = Number(process.env.ADCLICK_CHAOS_CI_RATE ?? 250);

/** The scenarios of one stack kind; by default those on the default configuration. */
async function runKind(kind: StackKind, which: (s: Scenario) => boolean = (s) => !s.stackConfig): Promise<ScenarioResult[]> {
  const names = SCENARIOS.filter((s) => s.stack === kind && which(s)).map((s) => s.name);
  const results = await runChaosScenarios({
    scenarios: names, clicks: CLICKS, rate: RATE, short: true,
    note: (l) => process.stdout.write(`# ${l}\n`),
  });
  process.stdout.write(renderTable(results).split('\n').map((l) => `# ${l}`).join('\n') + '\n');
  return results;
}

function assertExact(results: ScenarioResult[]): void {
  for (const r of results) {
    assert.ok(r.sent >= CLICKS, `${r.name}: sent ${r.sent} clicks, wanted at least ${CLICKS}`);
    assert.equal(r.unknown, 0, `${r.name}: clicks without a definite answer`);
    assert.deepEqual(r.problems, [], `${r.name}: problems`);
    assert.equal(r.lost, 0, `${r.name}: lost clicks (${r.samples.join('; ')})`);
    assert.equal(r.duplicated, 0, `${r.name}: duplicated clicks (${r.samples.join('; ')})`);
    assert.equal(r.counted, r.accepted, `${r.name}: counted = accepted`);
    assert.ok(r.recoveryMs !== null, `${r.name}: recovered`);
    assert.ok(r.passed, `${r.name}: passed`);
  }
}

// Every check per (ad, window) and (campaign, window) at 1m/5m/1h, as each advertiser sees it.
test('chaos on embedded ClickHouse: kill -9 flink/serving/gateway/kafka, SIGSTOP kafka, Redis down, poison records, ads moving between campaigns and foreign-signed clicks — zero lost, zero duplicated', { timeout: 900_000 }, async () => {
  assertExact(await runKind('embedded'));
});

test('chaos on a ClickHouse server: server stopped for a while, Flink stopped for 75 s, backfills racing late clicks and a lagging sink — no offset commits meanwhile, no on-time click as a late correction, zero lost, zero duplicated', { timeout: 900_000 }, async () => {
  assertExact(await runKind('server'));
});

test('chaos with compressed time (a 90 s "day"): a retry of a day-old click after most of a day of Flink lag is counted once', { timeout: 600_000 }, async () => {
  assertExact(await runKind('embedded', (s) => Boolean(s.stackConfig)));
});

test('negative control: an UNSAFE setting (202 before the Kafka ack) is caught by the checker', { timeout: 480_000 }, async () => {
  const [r] = await runKind('negative');
  assert.ok(r, 'the negative control ran');
  const summary = JSON.stringify({
    sent: r.sent, accepted: r.accepted, counted: r.counted, lost: r.lost, duplicated: r.duplicated, unknown: r.unknown,
    retries: r.retries, trafficMs: r.trafficMs, drainMs: r.drainMs, faults: r.faults, problems: r.problems, logFile: r.logFile,
  });
  assert.equal(r.error, undefined, `the negative control ran to the end: ${r.error}`);
  // Clicks acknowledged (202) and then lost are what the unsafe setting produces and what
  // the checker must see. (Clicks of unknown outcome are outside the ledger, so they
  // cannot fake a loss.)
  assert.ok(r.lost > 0, `the checker reports lost clicks: ${summary}`);
  assert.ok(r.passed, `the scenario reports DETECTED: ${summary}`);
});

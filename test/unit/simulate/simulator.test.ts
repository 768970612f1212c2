import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadLedger } from '../../../src/simulate/ledger.ts';
import { simulate } from '../../../src/simulate/simulator.ts';
import { startFakeGateway, type FakeGateway } from './fake-gateway.ts';

const KEY = { keyId: 'test', secret: 'test-secret' };
const dir = mkdtempSync(join(tmpdir(), 'adclick-sim-'));
const servers: FakeGateway[] = [];
async function gateway(o: Parameters<typeof startFakeGateway>[0] = {}): Promise<FakeGateway> {
  const g = await startFakeGateway(o);
  servers.push(g);
  return g;
}
after(async () => {
  for (const g of servers) await g.close();
  rmSync(dir, { recursive: true, force: true });
});

const fast = { backoffBaseMs: 2, backoffMaxMs: 20, maxAttempts: 50, duplicateDelayMs: [5, 100] as const };

describe('simulate', () => {
  it('catches up after its event loop stalled when given a burst (burstMs), and drops the stall at the default 50 ms', async () => {
    const g = await gateway();
    const run = async (burstMs?: number) => {
      const p = simulate({ url: g.url, ...KEY, ...fast, rate: 2000, durationMs: 1000, batchSize: 50, duplicateShare: 0, seed: 5, ...(burstMs ? { burstMs } : {}) });
      // A busy box: the simulator's loop gets no turn for 600 ms of its 1 s.
      await new Promise((r) => setTimeout(r, 50));
      const end = Date.now() + 600;
      while (Date.now() < end);
      return p;
    };
    const dropped = await run();
    const caughtUp = await run(1000);
    assert.ok(dropped.generated < 1600, `default burst: ${dropped.generated} of 2000 (the stall is lost)`);
    assert.ok(caughtUp.generated >= 1900, `1 s burst: ${caughtUp.generated} of 2000`);
  });

  for (const batchSize of [0, 25]) {
    it(`ledger == what the gateway accepted, each once, despite duplicates, retries and lost answers (batch ${batchSize})`, async () => {
      const g = await gateway({ unavailable: 0.1, dropBefore: 0.05, dropAfter: 0.05, itemUnavailable: 0.05, seed: 3 + batchSize });
      const path = join(dir, `eq-${batchSize}.ndjson`);
      const r = await simulate({
        url: g.url, ...KEY, ...fast, rate: 2000, count: 1500, batchSize, duplicateShare: 0.1, seed: 42, ledgerPath: path,
      });
      assert.equal(r.stoppedBy, 'count');
      assert.equal(r.generated, 1500);
      assert.equal(r.unknown.length, 0);
      assert.equal(r.rejected + r.failed, 0);
      assert.ok(r.duplicateSends > 100, `duplicate sends ${r.duplicateSends}`);
      assert.ok(r.counters.duplicate > 100, `duplicate answers ${r.counters.duplicate}`);
      assert.ok(r.counters.retries > 50, `retries ${r.counters.retries}`);
      // The ground truth: exactly the set the gateway accepted, each once.
      assert.equal(g.accepted.size, 1500);
      assert.equal(r.ledger.size, 1500);
      for (const id of g.accepted.keys()) assert.ok(r.ledger.has(id), `${id} accepted but not in the ledger`);
      const lines = readFileSync(path, 'utf8').trim().split('\n');
      assert.equal(lines.length, 1500, 'one line per distinct accepted click');
      assert.equal(new Set(lines.map((l) => (JSON.parse(l) as { impression_id: string }).impression_id)).size, 1500);
      // Sent many times, counted once: per-window sums equal the distinct count.
      const reloaded = await loadLedger(path);
      const sum = [...reloaded.expectedCounts('1m').values()].reduce((a, b) => a + b, 0);
      assert.equal(sum, 1500);
      const sends = [...g.sends.values()].reduce((a, b) => a + b, 0);
      assert.ok(sends > 1600, `the server saw ${sends} sends for 1500 clicks`);
    });
  }

  it('keeps rejected clicks out of the ledger', async () => {
    const g = await gateway({ rejectIf: (c) => Number(c.ad_id) % 2 === 0 });
    const r = await simulate({ url: g.url, ...KEY, ...fast, rate: 5000, count: 400, ads: 10, campaigns: 2, advertisers: 1 });
    assert.ok(r.rejected > 0 && r.ledger.size > 0);
    assert.equal(r.rejected + r.ledger.size, 400);
    for (const e of r.ledger) assert.equal(e.ad_id % 2, 1);
    assert.equal(r.counters.rejectedByCode.INVALID_FIELD, r.counters.rejected);
  });

  it('places clicks into chosen windows via eventTime and expectedCounts agrees', async () => {
    const g = await gateway();
    const W = Date.UTC(2026, 10, 27, 10, 0, 0);
    // Alternate: last ms of the 09:59 window, first ms of the 10:00 window.
    const r = await simulate({
      url: g.url, ...KEY, ...fast, rate: 5000, count: 200, duplicateShare: 0.2, ads: 1, campaigns: 1, advertisers: 1,
      eventTime: (seq) => (seq % 2 ? W - 1 : W),
    });
    assert.deepEqual(r.ledger.expectedCounts('1m'), new Map([[`1|${W - 60_000}`, 100], [`1|${W}`, 100]]));
    assert.deepEqual(r.ledger.expectedCampaignCounts('1h'), new Map([[`1|${W - 3_600_000}`, 100], [`1|${W}`, 100]]));
  });

  it('paces to the rate and stops by itself at the duration', async () => {
    const g = await gateway();
    const t0 = performance.now();
    const r = await simulate({ url: g.url, ...KEY, rate: 200, durationMs: 1500, duplicateShare: 0 });
    const took = performance.now() - t0;
    assert.equal(r.stoppedBy, 'duration');
    assert.ok(r.generated >= 225 && r.generated <= 312, `generated ${r.generated} at 200/s for 1.5 s`);
    assert.ok(took < 2500, `run took ${took} ms`);
    assert.equal(r.ledger.size, r.generated);
  });

  it('stops on the signal and still resolves what it sent', async () => {
    const g = await gateway();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const r = await simulate({ url: g.url, ...KEY, rate: 500, durationMs: 60_000, signal: ac.signal });
    assert.equal(r.stoppedBy, 'signal');
    assert.ok(r.elapsedMs < 2000);
    assert.equal(r.ledger.size, g.accepted.size);
  });

  it('reproduces the same traffic for the same seed and run id', async () => {
    const g1 = await gateway();
    const g2 = await gateway();
    const opts = { ...KEY, ...fast, rate: 5000, count: 300, seed: 9, runId: 'repro1', now: () => 1_764_237_600_000 };
    const a = await simulate({ url: g1.url, ...opts });
    const b = await simulate({ url: g2.url, ...opts });
    assert.deepEqual([...a.ledger].sort((x, y) => x.impression_id.localeCompare(y.impression_id)), [...b.ledger].sort((x, y) => x.impression_id.localeCompare(y.impression_id)));
    assert.deepEqual([...g1.accepted].sort(), [...g2.accepted].sort(), 'byte-identical signed bodies');
  });

  it('gives up within the drain timeout when the gateway stays down, and says the outcome is known', async () => {
    const g = await gateway({ unavailable: 1, retryAfter: '1' });
    const t0 = performance.now();
    const r = await simulate({ url: g.url, ...KEY, rate: 1000, count: 20, duplicateShare: 0, drainTimeoutMs: 500, maxAttempts: 100 });
    assert.ok(performance.now() - t0 < 3000);
    assert.equal(r.ledger.size, 0);
    assert.equal(r.failed, 20, '503 only: definitely not accepted');
    assert.equal(r.unknown.length, 0);
  });

  it('rejects unbounded or invalid options', async () => {
    await assert.rejects(simulate({ url: 'http://127.0.0.1:9', ...KEY, rate: 0, count: 1 }), /rate/);
    await assert.rejects(simulate({ url: 'http://127.0.0.1:9', ...KEY, count: -1 }), /count/);
    await assert.rejects(simulate({ url: 'http://127.0.0.1:9', ...KEY, durationMs: Infinity }), /durationMs/);
  });
});

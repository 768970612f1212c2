import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Ledger, loadLedger, type LedgerEntry } from '../../../src/simulate/ledger.ts';
import { windowStartMs } from '../../../src/shared/window-math.ts';

const dir = mkdtempSync(join(tmpdir(), 'adclick-ledger-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const H = Date.UTC(2026, 10, 27, 10, 0, 0); // 10:00:00.000Z
const entry = (id: string, ts: number, ad = 1, campaign = 10, advertiser = 100): LedgerEntry => ({
  impression_id: id, event_type: 'click', ad_id: ad, campaign_id: campaign, advertiser_id: advertiser, timestamp: ts,
});

describe('window math', () => {
  it('is half-open and UTC-aligned at the boundaries', () => {
    assert.equal(windowStartMs(H, '1m'), H);
    assert.equal(windowStartMs(H - 1, '1m'), H - 60_000);
    assert.equal(windowStartMs(H + 59_999, '1m'), H);
    assert.equal(windowStartMs(H + 60_000, '1m'), H + 60_000);
    assert.equal(windowStartMs(H + 299_999, '5m'), H);
    assert.equal(windowStartMs(H + 300_000, '5m'), H + 300_000);
    assert.equal(windowStartMs(H - 1, '1h'), H - 3_600_000);
    assert.equal(windowStartMs(H + 3_599_999, '1h'), H);
    assert.equal(new Date(windowStartMs(Date.UTC(2026, 0, 1, 13, 7, 31, 5), '5m')).toISOString(), '2026-01-01T13:05:00.000Z');
    assert.equal(windowStartMs(-1, '1m'), -60_000);
  });
});

describe('ledger', () => {
  it('records each (impression, event type) once and aggregates per window', () => {
    const l = Ledger.inMemory();
    assert.equal(l.record(entry('imp_a_0001', H - 1, 1)), true);
    assert.equal(l.record(entry('imp_a_0001', H - 1, 1)), false, 'a second record of the same key changes nothing');
    assert.equal(l.record({ ...entry('imp_a_0001', H - 1, 1), event_type: 'view' }), true, 'event type is part of the key');
    l.record(entry('imp_a_0002', H, 1));
    l.record(entry('imp_a_0003', H + 59_999, 1));
    l.record(entry('imp_a_0004', H + 60_000, 2, 10));
    l.record(entry('imp_a_0005', H + 60_001, 3, 11, 100));
    assert.equal(l.size, 6);
    const m1 = l.expectedCounts('1m');
    assert.equal(m1.get(`1|${H - 60_000}`), 2);
    assert.equal(m1.get(`1|${H}`), 2);
    assert.equal(m1.get(`2|${H + 60_000}`), 1);
    assert.equal(m1.get(`3|${H + 60_000}`), 1);
    assert.equal([...m1.values()].reduce((a, b) => a + b, 0), 6);
    const c5 = l.expectedCampaignCounts('5m');
    assert.equal(c5.get(`10|${H - 300_000}`), 2);
    assert.equal(c5.get(`10|${H}`), 3);
    assert.equal(c5.get(`11|${H}`), 1);
    assert.equal(l.expectedAdvertiserCounts('1h').get(`100|${H}`), 4);
    assert.deepEqual([...l.totalsByCampaign()].sort(), [[10, 5], [11, 1]]);
    assert.equal([...l.between(H, H + 60_000)].length, 2);
  });

  it('persists append-only NDJSON that loadLedger rebuilds, across several runs', async () => {
    const path = join(dir, 'sub', 'run.ndjson');
    const a = await Ledger.open(path);
    a.record(entry('imp_b_0001', H, 1));
    a.record(entry('imp_b_0001', H, 1));
    a.record(entry('imp_b_0002', H + 1, 2));
    await a.close();
    assert.equal(readFileSync(path, 'utf8').trim().split('\n').length, 2);

    const b = await Ledger.open(path); // a second phase appends to the same file
    assert.equal(b.size, 2);
    assert.equal(b.record(entry('imp_b_0002', H + 1, 2)), false, 'already in the file');
    b.record(entry('imp_b_0003', H + 2, 3));
    await b.close();

    const c = await loadLedger(path);
    assert.equal(c.size, 3);
    assert.deepEqual(c.get('imp_b_0003'), entry('imp_b_0003', H + 2, 3));
    assert.deepEqual(c.expectedCounts('1m'), new Map([[`1|${H}`, 1], [`2|${H}`, 1], [`3|${H}`, 1]]));
  });

  it('drops a torn last line but refuses a corrupt line in the middle', async () => {
    const path = join(dir, 'torn.ndjson');
    writeFileSync(path, `${JSON.stringify(entry('imp_c_0001', H))}\n{"impression_id":"imp_c_00`);
    const l = await Ledger.open(path);
    assert.equal(l.size, 1);
    l.record(entry('imp_c_0002', H));
    await l.close();
    const back = await loadLedger(path); // the new line did not get glued onto the torn one
    assert.equal(back.size, 2);

    const bad = join(dir, 'bad.ndjson');
    writeFileSync(bad, `not json\n${JSON.stringify(entry('imp_c_0003', H))}\n`);
    await assert.rejects(loadLedger(bad), /line 1/);
  });

  it('loadLedger fails on a missing file', async () => {
    await assert.rejects(loadLedger(join(dir, 'nope.ndjson')), /ENOENT/);
  });

  it('keeps the first line when a file holds the same key twice', async () => {
    const path = join(dir, 'twice.ndjson');
    appendFileSync(path, `${JSON.stringify(entry('imp_d_0001', H, 1))}\n${JSON.stringify(entry('imp_d_0001', H, 2))}\n`);
    const l = await loadLedger(path);
    assert.equal(l.size, 1);
    assert.equal(l.get('imp_d_0001')!.ad_id, 1);
  });
});

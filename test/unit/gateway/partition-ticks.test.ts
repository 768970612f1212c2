// The gateway's progress ticks against a fake publisher: one tick per partition per round,
// marked by header, stamped with the gateway clock, partition count re-read, and Kafka
// trouble costing a skipped round, never an exception. The real producer and broker are
// exercised in test/integration/gateway-cluster.test.ts; the job's side in ClickWatermarksTest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPartitionTicker, RECORD_KIND_HEADER, TICK_KIND } from '../../../src/gateway/partition-ticks.ts';
import type { OutRecord } from '../../../src/gateway/click-publisher.ts';
import { AppError } from '../../../src/shared/errors.ts';
import { PartitionTick } from '../../../src/shared/proto.ts';
import { createLogger } from '../../../src/shared/logger.ts';

const logger = createLogger('test', 'silent');

function fakePublisher() {
  const f = {
    partitions: 3,
    ready: true,
    fail: false,
    metadataCalls: 0,
    sent: [] as OutRecord[][],
    publisher: {
      ready: () => f.ready,
      partitionCount: async () => {
        f.metadataCalls++;
        return f.partitions;
      },
      publish: (records: readonly OutRecord[]) => {
        if (f.fail) throw new AppError('UNAVAILABLE', 'Kafka circuit breaker is open');
        f.sent.push([...records]);
        return Promise.resolve(records.map(() => true));
      },
    },
  };
  return f;
}

test('one tick per partition, marked by header, stamped with the gateway clock and id', async () => {
  const f = fakePublisher();
  let now = 1_700_000_000_000;
  const t = startPartitionTicker({ publisher: f.publisher, gatewayId: 'gw-1/w0', intervalMs: 0, logger, now: () => now });
  assert.equal(await t.tickOnce(), true);
  const [round] = f.sent;
  assert.ok(round);
  assert.deepEqual(round.map((r) => r.partition), [0, 1, 2]);
  for (const r of round) {
    assert.deepEqual(r.headers, [{ [RECORD_KIND_HEADER]: TICK_KIND }]);
    const v = PartitionTick.decode(r.value);
    assert.equal(Number(v.atMs), now);
    assert.equal(v.gatewayId, 'gw-1/w0');
  }
  assert.equal(t.acked(), 3);
  now += 1000;
  await t.tickOnce();
  assert.equal(Number(PartitionTick.decode(f.sent[1]![0]!.value).atMs), now, 'each round stamps its own time');
  t.stop();
});

test('the partition count is re-read, so added partitions get ticks too', async () => {
  const f = fakePublisher();
  let now = 0;
  const t = startPartitionTicker({ publisher: f.publisher, gatewayId: 'g', intervalMs: 0, metadataRefreshMs: 30_000, logger, now: () => now });
  await t.tickOnce();
  f.partitions = 5;
  now += 1000;
  await t.tickOnce();
  assert.equal(f.sent[1]!.length, 3, 'within the refresh interval: the known count');
  now += 30_000;
  await t.tickOnce();
  assert.equal(f.sent[2]!.length, 5, 'after it: the new count');
  assert.equal(f.metadataCalls, 2);
  t.stop();
});

test('Kafka unavailable or not ready: the round is skipped, nothing throws, ticks resume', async () => {
  const f = fakePublisher();
  const t = startPartitionTicker({ publisher: f.publisher, gatewayId: 'g', intervalMs: 0, logger });
  f.ready = false;
  assert.equal(await t.tickOnce(), false);
  assert.equal(f.sent.length, 0, 'not connected: no tick (the watermark must wait, not guess)');
  f.ready = true;
  f.fail = true;
  assert.equal(await t.tickOnce(), false);
  f.fail = false;
  assert.equal(await t.tickOnce(), true);
  assert.equal(f.sent.length, 1);
  t.stop();
});

test('a running timer ticks by itself', async () => {
  const f = fakePublisher();
  const t = startPartitionTicker({ publisher: f.publisher, gatewayId: 'g', intervalMs: 20, logger });
  const deadline = Date.now() + 3000;
  while (f.sent.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.stop();
  assert.ok(f.sent.length >= 2, `ticked ${f.sent.length} times`);
});

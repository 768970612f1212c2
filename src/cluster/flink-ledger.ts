// Ground truth for the Flink job on the cluster: clicks written straight to the clicks topic
// (ClickEvent protobuf, key = ad id, as the gateway writes them) by the ledger producer of
// kafka-ledger.ts, and the job's exactly-once output read back with read_committed:
// `clicks-deduped` names every click the job let through (each must appear exactly once),
// `click-aggregates` carries the counts (the newest 1-minute count per ad and window, summed,
// must equal the ledger). No gateway, sink or ClickHouse in between: this judges the job alone.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { KafkaJS as KafkaJSTypes } from '@confluentinc/kafka-javascript';
import { ClickEvent, Granularity, WindowAggregate } from '../shared/proto.ts';

const require = createRequire(import.meta.url);
const { KafkaJS } = require('@confluentinc/kafka-javascript') as { KafkaJS: typeof KafkaJSTypes };

/** A ClickEvent for ledger id `id` on one of `adIds` (chosen from the id, so a replay is identical). */
export function clickRecord(id: string, adIds: readonly number[], now = Date.now()): { key: string; value: Buffer } {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  const adId = adIds[h % adIds.length]!;
  const value = Buffer.from(ClickEvent.encode({
    impressionId: id, eventType: 'click', adId, campaignId: adId * 10, advertiserId: adId * 100, userId: 'ledger',
    eventTimeMs: now, receivedAtMs: now, keyId: 'ledger', gatewayId: 'ledger',
  }).finish());
  return { key: String(adId), value };
}

export interface JobOutput {
  /** impression id → times read from clicks-deduped */
  readonly deduped: ReadonlyMap<string, number>;
  /** `adId|windowStart` → newest 1-minute count */
  readonly counts: ReadonlyMap<string, number>;
  stop(): Promise<void>;
}

/** Reads both output topics from the beginning (read_committed) until stopped. */
export async function watchJobOutput(bootstrap: string, topics: { deduped: string; aggregates: string }): Promise<JobOutput> {
  const consumer = new KafkaJS.Kafka({
    kafkaJS: { brokers: bootstrap.split(','), clientId: 'adclick-flink-ledger', logLevel: KafkaJS.logLevel.NOTHING },
  }).consumer({
    kafkaJS: { groupId: `flink-ledger-${randomBytes(4).toString('hex')}`, fromBeginning: true, autoCommit: false, readUncommitted: false },
  });
  const deduped = new Map<string, number>();
  const counts = new Map<string, number>();
  await consumer.connect();
  await consumer.subscribe({ topics: [topics.deduped, topics.aggregates] });
  await consumer.run({
    eachMessage: async ({ topic, message }) => {
      if (!message.value) return;
      if (topic === topics.deduped) {
        const id = ClickEvent.decode(message.value).impressionId;
        deduped.set(id, (deduped.get(id) ?? 0) + 1);
      } else {
        const a = WindowAggregate.decode(message.value);
        if (a.granularity === Granularity.GRANULARITY_1M) counts.set(`${a.adId}|${a.windowStartMs}`, Number(a.clicks));
      }
    },
  });
  return { deduped, counts, stop: () => consumer.disconnect().catch(() => undefined) };
}

export interface JobLedgerCheck {
  readonly acked: number;
  /** Acknowledged clicks never seen in clicks-deduped. */
  readonly lost: readonly string[];
  /** Seen more than once. */
  readonly duplicated: readonly string[];
  /** Sum of the newest 1-minute counts of the ledger's ads. */
  readonly counted: number;
}

export function checkJobOutput(acked: readonly string[], out: JobOutput, adIds: readonly number[], prefix: string): JobLedgerCheck {
  const ads = new Set(adIds.map(String));
  let counted = 0;
  for (const [k, n] of out.counts) if (ads.has(k.split('|')[0]!)) counted += n;
  return {
    acked: acked.length,
    lost: acked.filter((id) => !out.deduped.has(id)),
    duplicated: [...out.deduped].filter(([id, n]) => id.startsWith(prefix) && n > 1).map(([id]) => id),
    counted,
  };
}

/** Wait until every acked click was read and the counts add up (or the timeout passes); then the check. */
export async function settle(acked: readonly string[], out: JobOutput, adIds: readonly number[], prefix: string, timeoutMs: number): Promise<JobLedgerCheck> {
  const deadline = Date.now() + timeoutMs;
  let c = checkJobOutput(acked, out, adIds, prefix);
  while (Date.now() < deadline && (c.lost.length || c.counted < c.acked)) {
    await new Promise((r) => setTimeout(r, 1000));
    c = checkJobOutput(acked, out, adIds, prefix);
  }
  return c;
}

// What the Flink job writes to the sink's topics, driven by a ground-truth ledger, for
// sink tests that need no Flink: P "subtasks", each with a transactional producer for its
// data (cumulative 1-minute aggregates and every click to clicks-deduped) and another for
// its watermark, as the job's separate Kafka sinks do. Step k adds clicks to windows k and
// k-1, then the subtask's watermark moves to the end of window k-1 (windows up to k-1 are
// final). Adversarial as a checkpoint can be: the watermark's transaction is committed
// BEFORE the data transaction it vouches for (the job's sinks commit in any order), so a
// sink reads the watermark while the rows it vouches for are still pending.
import { createRequire } from 'node:module';
import type { KafkaJS as KafkaJSTypes } from '@confluentinc/kafka-javascript';
import { ClickEvent, WatermarkProgress, WindowAggregate } from '../../src/shared/proto.ts';
import { SINK_TOPICS } from '../../src/sink/batch.ts';

const require = createRequire(import.meta.url);
const { KafkaJS } = require('@confluentinc/kafka-javascript') as { KafkaJS: typeof KafkaJSTypes };

export const WINDOW_MS = 60_000;

export interface JobOutputOptions {
  readonly bootstrap: string;
  /** Start of window 0 (minute-aligned; inside raw_clicks' TTL). */
  readonly t0: number;
  readonly subtasks: number;
  readonly advertiserId: number;
  /** Ads per subtask (ad ids are subtask + subtasks·i, so each ad has one subtask). */
  readonly adsPerSubtask: number;
  /** Most clicks per ad and window per step (bounded traffic). */
  readonly maxClicksPerStep: number;
  readonly transactionalIdPrefix: string;
  /** Seeded random source (deterministic runs). */
  readonly random: () => number;
}

/** The ledger: final clicks per `ad|windowStart`, and every click sent. */
export interface JobLedger {
  readonly clicks: Map<string, number>;
  rawCount: number;
  /** Steps whose transactions are all committed. */
  steps: number;
}

export const campaignOf = (ad: number) => 100 + (ad % 3);

export class JobOutput {
  readonly ledger: JobLedger = { clicks: new Map(), rawCount: 0, steps: 0 };
  private readonly data: KafkaJSTypes.Producer[] = [];
  private readonly marks: KafkaJSTypes.Producer[] = [];
  private emitted = 0;

  constructor(private readonly o: JobOutputOptions) {}

  /** Connect the 2·P transactional producers (a fresh broker's transaction log may still be loading: retried). */
  async connect(): Promise<void> {
    const client = new KafkaJS.Kafka({ kafkaJS: { brokers: [this.o.bootstrap], logLevel: KafkaJS.logLevel.NOTHING } });
    const open = async (id: string) => {
      for (let attempt = 1; ; attempt++) {
        const p = client.producer({ kafkaJS: { transactionalId: id, idempotent: true, maxInFlightRequests: 1 } });
        try {
          await p.connect();
          return p;
        } catch (err) {
          await p.disconnect().catch(() => undefined);
          if (attempt >= 30) throw err;
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    };
    for (let s = 0; s < this.o.subtasks; s++) {
      this.data.push(await open(`${this.o.transactionalIdPrefix}-data-${s}`));
      this.marks.push(await open(`${this.o.transactionalIdPrefix}-wm-${s}`));
    }
  }

  private ads(s: number): number[] {
    return Array.from({ length: this.o.adsPerSubtask }, (_, i) => s + this.o.subtasks * (i + 1));
  }

  /** One checkpoint of every subtask: step k. The ledger is updated before anything is sent. */
  async step(k: number): Promise<void> {
    for (let s = 0; s < this.o.subtasks; s++) {
      const aggregates: { key: string; value: Buffer }[] = [];
      const raw: { key: string; value: Buffer }[] = [];
      for (const ad of this.ads(s)) {
        for (const w of k > 0 ? [k - 1, k] : [k]) {
          const n = Math.floor(this.o.random() * (this.o.maxClicksPerStep + 1));
          if (n === 0) continue;
          const ws = this.o.t0 + w * WINDOW_MS;
          const key = `${ad}|${ws}`;
          const total = (this.ledger.clicks.get(key) ?? 0) + n;
          this.ledger.clicks.set(key, total);
          for (let i = 0; i < n; i++) {
            const id = `imp_${k}_${ad}_${w}_${i}`;
            raw.push({ key: String(ad), value: Buffer.from(ClickEvent.encode({ impressionId: id, eventType: 'click', adId: ad, campaignId: campaignOf(ad), advertiserId: this.o.advertiserId, userId: 'u', eventTimeMs: ws + 1000 + i, receivedAtMs: ws + 1000 + i }).finish()) });
          }
          this.ledger.rawCount += n;
          aggregates.push({ key: String(ad), value: Buffer.from(WindowAggregate.encode({ granularity: 1, adId: ad, campaignId: campaignOf(ad), advertiserId: this.o.advertiserId, windowStartMs: ws, windowEndMs: ws + WINDOW_MS, clicks: total, emittedAtMs: this.o.t0 + ++this.emitted }).finish()) });
        }
      }
      const data = await this.data[s]!.transaction();
      if (raw.length) await data.send({ topic: SINK_TOPICS.deduped, messages: raw });
      if (aggregates.length) await data.send({ topic: SINK_TOPICS.aggregates, messages: aggregates });
      // The watermark: windows up to k-1 are final. Committed first (see the header).
      const wm = await this.marks[s]!.transaction();
      await wm.send({ topic: SINK_TOPICS.watermarks, messages: [{ key: String(s), value: this.watermark(s, this.o.t0 + k * WINDOW_MS) }] });
      await wm.commit();
      await data.commit();
    }
    this.ledger.steps = k + 1;
  }

  /** A last watermark past every window (all final), from every subtask. */
  async closeAll(steps: number): Promise<number> {
    const wmMs = this.o.t0 + (steps + 1) * WINDOW_MS;
    for (let s = 0; s < this.o.subtasks; s++) {
      const wm = await this.marks[s]!.transaction();
      await wm.send({ topic: SINK_TOPICS.watermarks, messages: [{ key: String(s), value: this.watermark(s, wmMs) }] });
      await wm.commit();
    }
    return wmMs;
  }

  private watermark(s: number, wmMs: number): Buffer {
    return Buffer.from(WatermarkProgress.encode({ subtask: s, parallelism: this.o.subtasks, watermarkMs: wmMs, emittedAtMs: Date.now() }).finish());
  }

  async disconnect(): Promise<void> {
    for (const p of [...this.data, ...this.marks]) await p.disconnect().catch(() => undefined);
  }
}

/** mulberry32: a small seeded PRNG. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

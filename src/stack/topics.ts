// The pipeline's topics with explicit partition counts and configs, created idempotently.
import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { withAdmin, type KafkaAdmin } from './kafka-admin.ts';

const DAY_MS = 24 * 3600 * 1000;

export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  readonly configs: Readonly<Record<string, string>>;
}

function deleteTopic(name: string, partitions: number, retentionMs: number): TopicSpec {
  return {
    name,
    partitions,
    configs: { 'retention.ms': String(retentionMs), 'cleanup.policy': 'delete', 'min.insync.replicas': '1' },
  };
}

/** The topics `adclick up` creates (pure). */
export function pipelineTopics(config: Pick<Config, 'clicksTopic' | 'clicksPartitions' | 'clicksRetentionMs'>): TopicSpec[] {
  return [
    // ≥ 7 days so a replay/backfill can always start from raw clicks.
    deleteTopic(config.clicksTopic, config.clicksPartitions, Math.max(config.clicksRetentionMs, 7 * DAY_MS)),
    deleteTopic('click-aggregates', 4, 7 * DAY_MS),
    deleteTopic('click-watermarks', 1, 1 * DAY_MS),
    deleteTopic('clicks-late', 2, 30 * DAY_MS),
    deleteTopic('clicks-dlq', 1, 30 * DAY_MS),
    // Every click that passed the Flink dedup → raw_clicks (audit, backfill, reconcile).
    deleteTopic('clicks-deduped', 4, 7 * DAY_MS),
    // Per-window conservation counts from the job → window_audit.
    deleteTopic('click-audit', 2, 7 * DAY_MS),
  ];
}

export interface EnsureTopicsResult {
  readonly created: string[];
  readonly existing: string[];
  /** Topics that exist with fewer partitions than specified (warned, not changed). */
  readonly underPartitioned: { name: string; partitions: number; wanted: number }[];
}

/**
 * Create missing topics; leave existing ones alone (their configs are not altered). An
 * existing topic with fewer partitions than wanted is logged as a warning: adding
 * partitions would move keys (ad_id) between partitions under a running job.
 */
export async function ensureTopics(bootstrap: string, topics: readonly TopicSpec[], logger: Logger): Promise<EnsureTopicsResult> {
  return withAdmin(bootstrap, async (admin) => {
    const present = new Set(await admin.listTopics({ timeout: 10_000 }));
    const missing = topics.filter((t) => !present.has(t.name));
    const created: string[] = [];
    if (missing.length) {
      try {
        await admin.createTopics({
          timeout: 30_000,
          topics: missing.map((t) => ({
            topic: t.name,
            numPartitions: t.partitions,
            replicationFactor: 1,
            configEntries: Object.entries(t.configs).map(([name, value]) => ({ name, value })),
          })),
        });
      } catch (err) {
        // Someone else (a second `up`, a test) created it in between: fine, re-checked below.
        if (!/already exists/i.test(String((err as Error).message))) throw err;
      }
      created.push(...missing.map((t) => t.name));
      // createTopics returns before every broker's metadata cache has the topic; callers
      // (tests, the gateway started next) expect to use it at once.
      await waitForTopics(admin, created, 30_000);
    }
    const existing = topics.filter((t) => present.has(t.name));
    const underPartitioned: EnsureTopicsResult['underPartitioned'] = [];
    if (existing.length) {
      const meta = await admin.fetchTopicMetadata({ topics: existing.map((t) => t.name), timeout: 10_000 });
      for (const m of meta) {
        const wanted = topics.find((t) => t.name === m.name)!.partitions;
        if (m.partitions.length < wanted) {
          underPartitioned.push({ name: m.name, partitions: m.partitions.length, wanted });
          logger.warn({ topic: m.name, partitions: m.partitions.length, wanted },
            'topic exists with fewer partitions than configured; leaving it as it is (add partitions by hand if intended)');
        }
      }
    }
    if (created.length) logger.info({ topics: created }, 'created Kafka topics');
    return { created, existing: existing.map((t) => t.name), underPartitioned };
  });
}

async function waitForTopics(admin: KafkaAdmin, names: readonly string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const meta = await admin.fetchTopicMetadata({ topics: [...names], timeout: 5000 });
      if (meta.length === names.length && meta.every((m) => m.partitions.length > 0 && m.partitions.every((p) => p.leader >= 0))) return;
    } catch (err) {
      if (Date.now() >= deadline) throw new Error(`topics ${names.join(', ')} not visible in metadata after ${timeoutMs} ms`, { cause: err });
    }
    if (Date.now() >= deadline) throw new Error(`topics ${names.join(', ')} have no leader after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

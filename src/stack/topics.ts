// The pipeline's topics with explicit partition counts and configs, created idempotently.
import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { withAdmin, type KafkaAdmin } from './kafka-admin.ts';

const DAY_MS = 24 * 3600 * 1000;

export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  /** Default 1 (a single broker). */
  readonly replicationFactor?: number;
  readonly configs: Readonly<Record<string, string>>;
}

export type KafkaForm = 'single' | 'cluster';

export interface KafkaDurability {
  readonly replicationFactor: number;
  readonly minInsyncReplicas: number;
}

/**
 * Replication of the pipeline's topics: ADCLICK_KAFKA_REPLICATION_FACTOR and
 * ADCLICK_KAFKA_MIN_INSYNC_REPLICAS, or (0, unset) the form's default: 1/1 on a single
 * broker, 3/2 on the 3-broker cluster (one broker may fail without refusing acks=all writes,
 * and no acknowledged write lives on one broker only). Inconsistent values are refused here,
 * before a topic exists that can never take an acks=all write.
 */
export function kafkaDurability(config: Pick<Config, 'kafkaReplicationFactor' | 'kafkaMinInsyncReplicas'>, form: KafkaForm, brokers: number): KafkaDurability {
  const replicationFactor = config.kafkaReplicationFactor || (form === 'cluster' ? Math.min(3, brokers) : 1);
  const minInsyncReplicas = config.kafkaMinInsyncReplicas || (form === 'cluster' ? Math.max(1, replicationFactor - 1) : 1);
  if (replicationFactor > brokers) {
    throw new Error(`ADCLICK_KAFKA_REPLICATION_FACTOR (${replicationFactor}) is more than the ${brokers} broker(s) of the ${form} form`);
  }
  if (minInsyncReplicas > replicationFactor) {
    throw new Error(`ADCLICK_KAFKA_MIN_INSYNC_REPLICAS (${minInsyncReplicas}) is more than the replication factor (${replicationFactor}): no acks=all write could ever succeed`);
  }
  return { replicationFactor, minInsyncReplicas };
}

function deleteTopicWith(name: string, partitions: number, retentionMs: number, d: KafkaDurability): TopicSpec {
  return {
    name,
    partitions,
    replicationFactor: d.replicationFactor,
    configs: {
      'retention.ms': String(retentionMs),
      'cleanup.policy': 'delete',
      'min.insync.replicas': String(d.minInsyncReplicas),
      'unclean.leader.election.enable': 'false',
    },
  };
}

/** The topics `adclick up` creates (pure); `durability` defaults to the single-box form's. */
export function pipelineTopics(
  config: Pick<Config, 'clicksTopic' | 'clicksPartitions' | 'clicksRetentionMs'> & Partial<Pick<Config, 'kafkaReplicationFactor' | 'kafkaMinInsyncReplicas'>>,
  durability: KafkaDurability = kafkaDurability({ kafkaReplicationFactor: config.kafkaReplicationFactor ?? 0, kafkaMinInsyncReplicas: config.kafkaMinInsyncReplicas ?? 0 }, 'single', 1),
): TopicSpec[] {
  const deleteTopic = (name: string, partitions: number, retentionMs: number) => deleteTopicWith(name, partitions, retentionMs, durability);
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
            replicationFactor: t.replicationFactor ?? 1,
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

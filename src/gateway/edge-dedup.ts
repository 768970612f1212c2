// Edge dedup in Redis: a cheap first line that answers `duplicate` for a retry of a
// click already acknowledged by Kafka. A key is marked only AFTER the Kafka ack, so a
// failed produce never poisons a retry. It is fail-open by design: when Redis is slow or
// down every click passes and the Flink job's keyed-state dedup keeps counts exact.
import type { Redis } from 'ioredis';

export interface EdgeDedup {
  /** For each key: true when already accepted. Never throws (fail-open → all false). */
  seen(keys: readonly string[]): Promise<boolean[]>;
  /** Marks keys accepted. Never throws. */
  mark(keys: readonly string[]): Promise<void>;
}

export function dedupKey(eventType: string, impressionId: string): string {
  return `adclick:seen:${eventType}:${impressionId}`;
}

export function createEdgeDedup(redis: Redis | null, ttlSec: number, onError: (err: unknown) => void): EdgeDedup {
  if (!redis) return { seen: async (keys) => keys.map(() => false), mark: async () => {} };
  return {
    async seen(keys) {
      if (redis.status !== 'ready' || keys.length === 0) return keys.map(() => false);
      try {
        const values = keys.length === 1 ? [await redis.get(keys[0]!)] : await redis.mget(...keys);
        return values.map((v) => v !== null);
      } catch (err) {
        onError(err);
        return keys.map(() => false);
      }
    },
    async mark(keys) {
      if (redis.status !== 'ready' || keys.length === 0) return;
      try {
        if (keys.length === 1) {
          await redis.set(keys[0]!, '1', 'EX', ttlSec);
          return;
        }
        const p = redis.pipeline();
        for (const k of keys) p.set(k, '1', 'EX', ttlSec);
        await p.exec();
      } catch (err) {
        onError(err);
      }
    },
  };
}

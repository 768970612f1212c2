// Edge dedup in Redis: a cheap first line that answers `duplicate` for a retry of a
// click already acknowledged by Kafka. A key is marked only AFTER the Kafka ack, so a
// failed produce never poisons a retry. It is fail-open by design: when Redis is slow or
// down every click passes and the Flink job's keyed-state dedup keeps counts exact.
// (The read usually happens inside the rate limiter's admission script: one round trip.)
import type { Redis } from 'ioredis';

export interface EdgeDedup {
  /** For each key: true when already accepted. Never throws (fail-open → all false). */
  seen(keys: readonly string[]): Promise<boolean[]>;
  /**
   * Marks keys accepted. Never throws. Marks of one event-loop turn are written together
   * (one Redis command for all of them); the promise settles once they are written.
   */
  mark(keys: readonly string[]): Promise<void>;
}

export function dedupKey(eventType: string, impressionId: string): string {
  return `adclick:seen:${eventType}:${impressionId}`;
}

// KEYS = dedup keys; ARGV[1] = TTL seconds. One command for a whole turn's marks.
const MARK_LUA = `
for i = 1, #KEYS do redis.call('SET', KEYS[i], '1', 'EX', ARGV[1]) end
return #KEYS
`;
const MAX_KEYS_PER_MARK = 1000;

type RedisWithMark = Redis & { adclickMark(numKeys: number, ...args: (string | number)[]): Promise<number> };

export function createEdgeDedup(redis: Redis | null, ttlSec: number, onError: (err: unknown) => void): EdgeDedup {
  if (!redis) return { seen: async (keys) => keys.map(() => false), mark: async () => {} };
  redis.defineCommand('adclickMark', { lua: MARK_LUA });
  const r = redis as RedisWithMark;
  let pending: string[] = [];
  let flushed: Promise<void> | undefined;

  const write = async (keys: string[]): Promise<void> => {
    if (r.status !== 'ready') return;
    try {
      if (keys.length === 1) await r.set(keys[0]!, '1', 'EX', ttlSec);
      else if (keys.length <= MAX_KEYS_PER_MARK) await r.adclickMark(keys.length, ...keys, ttlSec);
      else {
        const parts: Promise<number>[] = [];
        for (let i = 0; i < keys.length; i += MAX_KEYS_PER_MARK) {
          const part = keys.slice(i, i + MAX_KEYS_PER_MARK);
          parts.push(r.adclickMark(part.length, ...part, ttlSec));
        }
        await Promise.all(parts);
      }
    } catch (err) {
      onError(err);
    }
  };

  return {
    async seen(keys) {
      if (r.status !== 'ready' || keys.length === 0) return keys.map(() => false);
      try {
        const values = keys.length === 1 ? [await r.get(keys[0]!)] : await r.mget(...keys);
        return values.map((v) => v !== null);
      } catch (err) {
        onError(err);
        return keys.map(() => false);
      }
    },
    mark(keys) {
      if (keys.length === 0 || r.status !== 'ready') return Promise.resolve();
      for (const k of keys) pending.push(k);
      // Delivery reports arrive in bursts (one native callback each, same loop turn):
      // setImmediate collects the whole burst into one write.
      flushed ??= new Promise<void>((resolve) =>
        setImmediate(() => {
          const batch = pending;
          pending = [];
          flushed = undefined;
          void write(batch).then(resolve);
        }),
      );
      return flushed;
    },
  };
}

// Edge dedup in Redis: a cheap first line that answers `duplicate` for a retry of a
// click already acknowledged by Kafka. A key is marked only AFTER the Kafka ack, so a
// failed produce never poisons a retry. It is fail-open by design: when Redis is slow or
// down every click passes and the Flink job's keyed-state dedup keeps counts exact.
// (The read usually happens inside the rate limiter's admission script: one round trip.)
//
// `duplicate` tells the issuer to stop retrying, so a mark anyone with write access to
// Redis could plant would lose clicks. A mark's value is therefore a MAC of its key under
// a gateway secret, and only a mark that verifies answers `duplicate`; any other value is
// treated as absent: the click is produced and the Flink job's exact dedup has the final say.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Admission } from './rate-limiter.ts';

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

/** The value a genuine mark of `key` holds: a truncated HMAC (128 bits) bound to that key. */
export function markValue(markKey: Uint8Array, key: string): string {
  return `m1.${createHmac('sha256', markKey).update(key).digest('base64url').slice(0, 22)}`;
}

function verifies(markKey: Uint8Array, key: string, value: string | null): boolean {
  if (value === null || value.length !== 25) return false;
  return timingSafeEqual(Buffer.from(value), Buffer.from(markValue(markKey, key)));
}

// KEYS = dedup keys; ARGV[1] = TTL seconds, ARGV[1 + i] = the mark of KEYS[i]. One command
// for a whole turn's marks.
const MARK_LUA = `
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ARGV[1]) end
return #KEYS
`;
const MAX_KEYS_PER_MARK = 1000;

type RedisWithMark = Redis & { adclickMark(numKeys: number, ...args: (string | number)[]): Promise<number> };

/**
 * `markKey`: the secret marks are MACed with; gateways that share marks must share it (main.ts
 * derives it from the signing keys). Without one, a random key: marks only verify in this process.
 */
export function createEdgeDedup(redis: Redis | null, ttlSec: number, onError: (err: unknown) => void, markKey: Uint8Array = randomBytes(32)): EdgeDedup {
  if (!redis) return { seen: async (keys) => keys.map(() => false), mark: async () => {} };
  redis.defineCommand('adclickMark', { lua: MARK_LUA });
  const r = redis as RedisWithMark;
  let pending: string[] = [];
  let flushed: Promise<void> | undefined;

  const write = async (keys: string[]): Promise<void> => {
    if (r.status !== 'ready') return;
    try {
      if (keys.length === 1) await r.set(keys[0]!, markValue(markKey, keys[0]!), 'EX', ttlSec);
      else if (keys.length <= MAX_KEYS_PER_MARK) await r.adclickMark(keys.length, ...keys, ttlSec, ...keys.map((k) => markValue(markKey, k)));
      else {
        const parts: Promise<number>[] = [];
        for (let i = 0; i < keys.length; i += MAX_KEYS_PER_MARK) {
          const part = keys.slice(i, i + MAX_KEYS_PER_MARK);
          parts.push(r.adclickMark(part.length, ...part, ttlSec, ...part.map((k) => markValue(markKey, k))));
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
        return values.map((v, i) => verifies(markKey, keys[i]!, v));
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

/**
 * Admission whose `seen` flags are confirmed: the rate limiter's script only checks that a
 * mark exists (one round trip for every request); the few keys it reports seen are read
 * again and count only when their mark verifies (a retry costs one more round trip).
 */
export function verifiedAdmission(inner: Admission, dedup: Pick<EdgeDedup, 'seen'>): Admission {
  return {
    async admit(...args: Parameters<Admission['admit']>) {
      const admitted = await inner.admit(...args);
      const keys = args[1];
      const claimed: number[] = [];
      admitted.seen.forEach((s, i) => s && claimed.push(i));
      if (claimed.length === 0) return admitted;
      const confirmed = await dedup.seen(claimed.map((i) => keys[i]!));
      const seen = admitted.seen.slice();
      claimed.forEach((i, j) => (seen[i] = confirmed[j]!));
      return { ...admitted, seen };
    },
  };
}

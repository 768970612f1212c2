// Redis client for optional, fail-open uses (edge dedup, rate limit): commands never
// queue while disconnected and time out fast, so a slow or dead Redis costs a request
// at most a few milliseconds; reconnection goes on in the background.
// AUTH/ACL come from the URL (redis://user:password@host), TLS from rediss:// (ioredis
// does both); config.ts checks the URL's form, and it is only ever logged redacted.
import { Redis } from 'ioredis';
import type { Logger } from './logger.ts';
import { redactUrl } from './redact-url.ts';

export { redactUrl };

export function createOptionalRedis(url: string, logger: Logger): Redis | null {
  const log = logger.child({ module: 'redis' });
  if (!url) {
    log.warn('REDIS_URL=none: running WITHOUT Redis — edge dedup off, rate limit per instance (fail-open)');
    return null;
  }
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    commandTimeout: 250,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: false,
  });
  // Warn once per outage, not on every reconnect attempt.
  let warnedSinceReady = false;
  redis.on('ready', () => {
    warnedSinceReady = false;
    log.info({ url: redactUrl(url) }, 'redis connected');
  });
  redis.on('error', (err) => {
    if (warnedSinceReady) return;
    warnedSinceReady = true;
    log.warn({ err: err.message }, 'redis unavailable: failing open (edge dedup skipped, in-process rate limit)');
  });
  return redis;
}

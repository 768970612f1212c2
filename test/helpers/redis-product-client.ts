// Child process for test/integration/redis-trust.test.ts: the gateway's Redis path as the
// gateway builds it (config from the environment, createOptionalRedis, edge dedup, rate
// limiter, verified admission), run in its own process so NODE_EXTRA_CA_CERTS, which Node
// reads only at start-up, is what makes a private CA trusted.
//   node --import tsx test/helpers/redis-product-client.ts <dedup key> <dedup key>...
// Marks the first key alone (SET), the others together (the mark script), then admits all of
// them plus one unmarked key; prints one line {"result": …} and exits.
import { loadConfig, signingKeysFor } from '../../src/shared/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createOptionalRedis } from '../../src/shared/redis.ts';
import { deriveFromSigningKeys } from '../../src/shared/signature.ts';
import { createEdgeDedup, verifiedAdmission } from '../../src/gateway/edge-dedup.ts';
import { createRateLimiter } from '../../src/gateway/rate-limiter.ts';

const [first, ...rest] = process.argv.slice(2);
if (!first) throw new Error('usage: redis-product-client.ts <dedup key>...');
const config = loadConfig();
const logger = createLogger('redis-product-client', 'info', { format: 'json' });
const redis = createOptionalRedis(config.redisUrl, logger);
if (!redis) throw new Error('REDIS_URL=none');
const errors: string[] = [];
const onError = (err: unknown) => errors.push(String(err));
const deadline = Date.now() + 10_000;
while (redis.status !== 'ready' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
let result: Record<string, unknown> = { status: redis.status };
if (redis.status === 'ready') {
  const dedup = createEdgeDedup(redis, 60, onError, deriveFromSigningKeys(signingKeysFor(config), 'edge-dedup-mark/v1'));
  const limiter = createRateLimiter(redis, { perSecond: 1000, burst: 1000, onRedisError: onError });
  await dedup.mark([first]);
  await dedup.mark(rest);
  const unmarked = `${first}_unmarked`;
  const ip = `192.0.2.${process.pid % 250}`;
  const admitted = await verifiedAdmission(limiter, dedup).admit(ip, [first, ...rest, unmarked], 1);
  result = { status: redis.status, ip, allowed: admitted.decision.allowed, seen: admitted.seen, errors };
}
redis.disconnect();
process.stdout.write(JSON.stringify({ result }) + '\n');

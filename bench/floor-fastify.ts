// DIAGNOSTIC server for the gateway benchmark: the "contract floor". API.md makes every
// single click wait, before its 202, for (1) the edge-dedup read in Redis (a duplicate must
// write nothing, so it is read before producing) and (2) the acks=all acknowledgement of an
// idempotent Kafka producer. This server is bare fastify plus only those round trips, done
// the cheapest way: no signature check, no validation, no rate limit, no Protobuf encoding,
// no metrics, no dedup mark — the raw body is the record value. Whatever rate it reaches is
// an upper bound for any gateway that keeps the contract on the same machine.
//
// Run by bench/run.ts: node --import tsx bench/floor-fastify.ts <redis|kafka|redis+kafka> <brokers> <topic>
import Fastify from 'fastify';
import { createClickPublisher } from '../src/gateway/click-publisher.ts';
import { createLogger } from '../src/shared/logger.ts';
import { createOptionalRedis } from '../src/shared/redis.ts';

const [mode = 'redis+kafka', brokers = '127.0.0.1:9092', topic = 'clicks'] = process.argv.slice(2);
if (!['redis', 'kafka', 'redis+kafka'].includes(mode)) throw new Error(`unknown mode ${mode}`);
const log = createLogger('floor', 'warn');
const useRedis = mode.includes('redis');
const useKafka = mode.includes('kafka');

// The gateway's own clients with the gateway's own settings (auto-pipelined Redis; the
// idempotent acks=all producer with its compression). linger.ms: BENCH_FLOOR_LINGER_MS,
// default the gateway's 1 ms.
const redis = useRedis ? createOptionalRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', log) : null;
if (redis) await new Promise<void>((resolve) => (redis.status === 'ready' ? resolve() : redis.once('ready', () => resolve())));
const publisher = useKafka
  ? await createClickPublisher({
      brokers, topic, lingerMs: Number(process.env.BENCH_FLOOR_LINGER_MS ?? 1), compression: 'lz4', produceTimeoutMs: 10_000, maxInflight: 100_000,
      breakerFailures: 1_000_000, breakerOpenMs: 1000, clientId: `bench-floor-${process.pid}`, logger: log,
    })
  : null;
if (publisher) while (!publisher.ready()) await new Promise((r) => setTimeout(r, 50));

const app = Fastify({ logger: false });
app.removeAllContentTypeParsers();
app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
let seq = 0;
app.post('/v1/clicks', async (req, reply) => {
  const body = req.body as Buffer;
  const n = seq++;
  if (redis) {
    // One key per request, as a fresh click's dedup key: never present, never written.
    const seen = await redis.exists(`adclick:bench-floor:${process.pid}:${n}`);
    if (seen) return reply.code(202).send({ status: 'duplicate' });
  }
  if (publisher) {
    // Keys spread over the partitions as the gateway's ad ids do.
    const [acked] = await publisher.publish([{ key: String(n & 1023), value: body }]);
    if (!acked) return reply.code(503).send({ error: { code: 'UNAVAILABLE' } });
  }
  return reply.code(202).send({ status: 'accepted' });
});
await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`LISTENING ${(app.server.address() as { port: number }).port}\n`);
process.on('SIGTERM', () => {
  void (async () => {
    await app.close();
    await publisher?.close();
    redis?.disconnect();
    process.exit(0);
  })();
});

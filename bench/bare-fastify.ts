// Baseline for the gateway benchmark: the least a fastify JSON POST endpoint can do
// (parse the body, answer 202) on the same machine, in the same run.
import Fastify from 'fastify';

const port = Number(process.argv[2] ?? 0);
const app = Fastify({ logger: false });
app.post('/v1/clicks', async (req, reply) => {
  void req.body;
  return reply.code(202).send({ status: 'accepted' });
});
app.post('/v1/clicks/batch', async (req, reply) => {
  const clicks = (req.body as { clicks: { impression_id: string }[] }).clicks;
  return reply.code(200).send({ results: clicks.map((c) => ({ impression_id: c.impression_id, status: 'accepted' })) });
});
await app.listen({ host: '127.0.0.1', port });
process.stdout.write(`LISTENING ${(app.server.address() as { port: number }).port}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));

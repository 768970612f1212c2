// The baseline every pipeline figure is put against: what the same broker takes from
// Kafka's own producer benchmark (org.apache.kafka.tools.ProducerPerformance, i.e.
// kafka-producer-perf-test; the jar comes with the stack's Kafka dist) on a topic shaped
// like the clicks topic (same partitions and configs), with records of the real click
// size (a simulator click encoded as the gateway encodes it) and the gateway's producer
// settings (acks=all, idempotent, its linger and compression). It is a ceiling for the
// first hop only: no HTTP, no signatures, no Flink, no sink.
// Bounded: a fixed record count, and the JVM is killed after timeoutMs.
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import type { Config } from '../../src/shared/config.ts';
import type { Logger } from '../../src/shared/logger.ts';
import { ClickEvent } from '../../src/shared/proto.ts';
import { engineEnv } from '../../src/stack/jvm-env.ts';
import type { KafkaDist } from '../../src/stack/kafka-dist.ts';
import { ensureTopics, pipelineTopics } from '../../src/stack/topics.ts';
import { TrafficModel, newRunId } from '../../src/simulate/traffic-model.ts';

export interface BaselineResult {
  topic: string;
  partitions: number;
  records: number;
  recordBytes: number;
  recordsPerSec: number;
  mbPerSec: number;
  avgLatencyMs: number;
  maxLatencyMs: number;
  cpuNote: string;
  command: string;
}

/** Bytes of one click record value as the gateway writes it (ClickEvent Protobuf). */
export function clickRecordBytes(): number {
  const model = new TrafficModel({ seed: 1, runId: newRunId(Date.now()), ads: 2000, campaigns: 200, advertisers: 1, adIdBase: 100_001, campaignIdBase: 1001, advertiserIdBase: 9001 });
  const sizes: number[] = [];
  for (let i = 0; i < 200; i++) {
    const c = model.next(Date.now()).click;
    sizes.push(ClickEvent.encode({
      impressionId: c.impression_id, eventType: c.event_type, adId: c.ad_id, campaignId: c.campaign_id, advertiserId: c.advertiser_id,
      userId: c.user_id, eventTimeMs: c.timestamp, receivedAtMs: Date.now(), clientIpHash: Buffer.alloc(16, 7), keyId: 'bench', gatewayId: `${hostname()}:${process.pid}`,
    }).finish().length);
  }
  return Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length);
}

export async function brokerBaseline(o: { config: Config; dist: KafkaDist; bootstrap: string; records: number; timeoutMs: number; logger: Logger; onChild?: (pid: number | undefined) => void }): Promise<BaselineResult> {
  const clicks = pipelineTopics(o.config).find((t) => t.name === o.config.clicksTopic)!;
  const topic = 'bench-broker-baseline';
  await ensureTopics(o.bootstrap, [{ ...clicks, name: topic }], o.logger);
  const recordBytes = clickRecordBytes();
  const args = [
    '-Xmx512m', '-cp', o.dist.classpath, 'org.apache.kafka.tools.ProducerPerformance',
    '--topic', topic, '--num-records', String(o.records), '--record-size', String(recordBytes), '--throughput', '-1',
    '--producer-props', `bootstrap.servers=${o.bootstrap}`, 'acks=all', 'enable.idempotence=true',
    `linger.ms=${o.config.lingerMs}`, `compression.type=${o.config.compression}`,
  ];
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('java', args, { env: engineEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    o.onChild?.(child.pid);
    let text = '';
    child.stdout.on('data', (b: Buffer) => { text = (text + b.toString()).slice(-20_000); });
    child.stderr.on('data', (b: Buffer) => { text = (text + b.toString()).slice(-20_000); });
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs);
    child.once('error', (err) => { clearTimeout(timer); reject(err); });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      o.onChild?.(undefined);
      if (code === 0) resolve(text);
      else reject(new Error(`ProducerPerformance ended with ${sig ?? `exit ${code}`}:\n${text.slice(-3000)}`));
    });
  });
  // Last line: "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency, ..."
  const m = out.match(/(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency/g)?.at(-1)
    ?.match(/(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency/);
  if (!m) throw new Error(`could not read ProducerPerformance's result:\n${out.slice(-2000)}`);
  return {
    topic, partitions: clicks.partitions, records: Number(m[1]), recordBytes,
    recordsPerSec: Number(m[2]), mbPerSec: Number(m[3]), avgLatencyMs: Number(m[4]), maxLatencyMs: Number(m[5]),
    cpuNote: 'producer JVM and broker share the 2 cores',
    command: `java -cp <kafka libs>/* org.apache.kafka.tools.ProducerPerformance ${args.slice(4).join(' ')}`,
  };
}

// Three KRaft nodes (broker + controller each, a 3-voter controller quorum), each its own JVM
// in its own network namespace, from the same jars and server.properties generator as the
// single-box broker (kafka-dist.ts, kafka-broker.ts). Used by `adclick cluster up` and the
// cluster tests.
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../shared/logger.ts';
import { withAdmin } from '../stack/kafka-admin.ts';
import { KafkaBroker, newClusterId, type QuorumVoter } from '../stack/kafka-broker.ts';
import type { KafkaDist } from '../stack/kafka-dist.ts';
import type { KafkaDurability } from '../stack/topics.ts';
import type { ClusterNode } from './topology.ts';

export interface KafkaClusterOptions {
  readonly dist: KafkaDist;
  /** One sub-directory per node (`kafka-<id>`), each with its data and `broker.log`. */
  readonly stateDir: string;
  /** The namespaces the brokers run in; node ids are 1..n in this order. */
  readonly nodes: readonly ClusterNode[];
  /** Same ports on every node: each has its own address. */
  readonly port: number;
  readonly controllerPort: number;
  readonly durability: KafkaDurability;
  readonly heapMax?: string;
  readonly extraProperties?: Readonly<Record<string, string>>;
  readonly readyTimeoutMs?: number;
  readonly logger: Logger;
}

export interface PartitionState {
  readonly topic: string;
  readonly partition: number;
  readonly leader: number;
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
}

export interface KafkaNodeStatus {
  readonly id: number;
  readonly name: string;
  readonly netns: string;
  readonly address: string;
  readonly pid: number | undefined;
}

export class KafkaCluster {
  readonly brokers: ReadonlyMap<number, KafkaBroker>;
  private readonly logs: WriteStream[] = [];

  constructor(readonly options: KafkaClusterOptions & { readonly clusterId?: string }) {
    const o = options;
    // A cluster restarted on its old data keeps the id its storage was formatted with.
    const clusterId = o.clusterId ?? readIdFile(join(o.stateDir, 'kafka-1', 'cluster-id')) ?? newClusterId();
    const voters: QuorumVoter[] = o.nodes.map((n, i) => ({ id: i + 1, host: n.address, port: o.controllerPort }));
    const brokers = new Map<number, KafkaBroker>();
    o.nodes.forEach((n, i) => {
      const id = i + 1;
      const stateDir = join(o.stateDir, `kafka-${id}`);
      let log: WriteStream | undefined;
      brokers.set(id, new KafkaBroker({
        dist: o.dist, stateDir, host: n.address, port: o.port, controllerPort: o.controllerPort,
        netns: n.netns, nodeId: id, quorumVoters: voters, clusterId,
        replicationFactor: o.durability.replicationFactor, minInsyncReplicas: o.durability.minInsyncReplicas,
        heapMax: o.heapMax ?? '512m', heapMin: '128m',
        extraProperties: o.extraProperties,
        logger: o.logger.child({ node: n.name }),
        output: (line) => {
          log ??= this.openLog(join(stateDir, 'broker.log'));
          log.write(line + '\n');
        },
        readyTimeoutMs: o.readyTimeoutMs ?? 180_000,
        name: `kafka-${id}`,
      }));
    });
    this.brokers = brokers;
  }

  private openLog(file: string): WriteStream {
    const s = createWriteStream(file, { flags: 'a' });
    this.logs.push(s);
    return s;
  }

  /** Every client's bootstrap list: all nodes, so any one of them being down does not matter. */
  get bootstrap(): string {
    return [...this.brokers.values()].map((b) => b.bootstrap).join(',');
  }

  node(id: number): ClusterNode {
    const n = this.options.nodes[id - 1];
    if (!n) throw new Error(`no Kafka node ${id}`);
    return n;
  }

  broker(id: number): KafkaBroker {
    const b = this.brokers.get(id);
    if (!b) throw new Error(`no Kafka node ${id}`);
    return b;
  }

  /**
   * All at once: a node cannot answer before a majority of the controller quorum runs, so
   * starting them one after another would wait on the first for ever.
   */
  async start(): Promise<void> {
    for (const id of this.brokers.keys()) await mkdir(join(this.options.stateDir, `kafka-${id}`), { recursive: true });
    await Promise.all([...this.brokers.values()].map((b) => b.start()));
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.brokers.values()].map((b) => b.stop()));
    for (const l of this.logs) l.end();
  }

  /** kill -9, as a host losing power; resolves once the JVM is gone. */
  async kill(id: number): Promise<void> {
    const b = this.broker(id);
    b.killNow();
    await b.stop();
  }

  async restart(id: number): Promise<void> {
    await this.broker(id).start();
  }

  status(): KafkaNodeStatus[] {
    return [...this.brokers.entries()].map(([id, b]) => {
      const n = this.node(id);
      return { id, name: n.name, netns: n.netns, address: n.address, pid: b.pid };
    });
  }

  killNow(): void {
    for (const b of this.brokers.values()) b.killNow();
  }
}

/** Leader, replicas and ISR of every partition of `topics`, as the cluster's metadata says. */
export async function describePartitions(bootstrap: string, topics: readonly string[]): Promise<PartitionState[]> {
  return withAdmin(bootstrap, async (admin) => {
    const meta = await admin.fetchTopicMetadata({ topics: [...topics], timeout: 10_000 });
    return meta.flatMap((t) => t.partitions.map((p) => ({
      topic: t.name, partition: p.partitionId, leader: p.leader,
      replicas: p.replicas.map((r) => (typeof r === 'number' ? r : (r as { id: number }).id)),
      isr: p.isr.map((r) => (typeof r === 'number' ? r : (r as { id: number }).id)),
    })));
  });
}

/** The broker leading the most of these partitions (the one whose loss hurts most). */
export function busiestLeader(parts: readonly PartitionState[]): number {
  const n = new Map<number, number>();
  for (const p of parts) n.set(p.leader, (n.get(p.leader) ?? 0) + 1);
  return [...n].sort((a, b) => b[1] - a[1])[0]![0];
}

/** Wait until every partition of `topics` has a leader and its full replica set in sync. */
export async function waitFullyInSync(bootstrap: string, topics: readonly string[], timeoutMs: number): Promise<PartitionState[]> {
  const deadline = Date.now() + timeoutMs;
  let last: PartitionState[] = [];
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      last = await describePartitions(bootstrap, topics);
      if (last.length && last.every((p) => p.leader >= 0 && p.isr.length === p.replicas.length)) return last;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`partitions of ${topics.join(', ')} not fully in sync after ${timeoutMs} ms: ${JSON.stringify(last)}`, { cause: lastErr });
}

function readIdFile(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

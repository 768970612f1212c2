// The stateless tiers of the cluster form (issue 18): two gateways, each a process in its
// own network namespace with its own address, behind HAProxy in a namespace of its own
// (haproxy.ts), which health-checks every gateway's GET /readyz. The gateways are the
// single box's gateway (src/gateway/main.ts) with the same configuration keys; only
// addresses differ: ADCLICK_BIND_HOST is the node's address, KAFKA_BROKERS the cluster's,
// ADCLICK_TRUSTED_PROXIES the balancer's address (its X-Forwarded-For carries the client).
// With ClickHouse replicas, the query API (src/serving.ts with ADCLICK_SERVING_ROLE=query)
// runs on the query nodes behind the same balancer on the query port, and the sinks
// (ADCLICK_SERVING_ROLE=sink, one consumer group) on the sink nodes, not balanced: Kafka's
// group protocol splits the partitions between them. Every serving instance gets the whole
// replica list as CLICKHOUSE_URL, rotated by its index, so they start on different replicas
// and each fails over to the next when its own cannot be reached (server-store.ts).
// Clients use the balancer's address; the nodes are reachable from the host through the
// bridge. Every process is a child of the caller; the namespaces are the topology's, so
// `destroyNetwork` ends whatever is left.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { SERVING_NODE_FLAGS } from '../shared/serving-flags.ts';
import { haproxyConfig, HaproxyProcess, serverStates, type BalancedTier, type ServerState } from './haproxy.ts';
import type { ClusterNode } from './topology.ts';

/** Node names of this tier in a topology. */
export const GATEWAY_NODES = ['gw-1', 'gw-2'] as const;
export const QUERY_NODES = ['query-1', 'query-2'] as const;
export const SINK_NODES = ['sink-1', 'sink-2'] as const;
export const BALANCER_NODE = 'lb';

const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

export interface StatelessTierOptions {
  readonly config: Pick<Config, 'gatewayPort' | 'queryPort' | 'logLevel' | 'stopTimeoutMs'>;
  /** The topology's nodes; those named in GATEWAY_NODES / QUERY_NODES / SINK_NODES / BALANCER_NODE are used. */
  readonly nodes: readonly ClusterNode[];
  readonly kafkaBootstrap: string;
  /** ClickHouse replicas (HTTP URLs reachable from the namespaces); none: no query API and no sinks. */
  readonly clickhouseUrls?: readonly string[];
  /** ADCLICK_CLICKHOUSE_CLUSTER of the serving instances. */
  readonly clickhouseCluster?: string;
  /** Logs, per-instance data dirs, haproxy.cfg and its stats socket. */
  readonly stateDir: string;
  readonly logger: Logger;
  /** Extra environment for every instance (e.g. REDIS_URL reachable from the namespaces). */
  readonly env?: Readonly<Record<string, string>>;
  readonly checkIntervalMs?: number;
}

type Role = 'gateway' | 'query' | 'sink';
interface Instance { readonly node: ClusterNode; readonly role: Role; child: ChildProcess | null; log: WriteStream | null }

export class StatelessTier {
  readonly statsSocket: string;
  private readonly haproxy: HaproxyProcess;
  private readonly instances: Instance[];
  private haproxyLog: WriteStream | null = null;
  readonly balancer: ClusterNode;

  constructor(private readonly o: StatelessTierOptions) {
    const byName = new Map(o.nodes.map((n) => [n.name, n]));
    const need = (name: string) => {
      const n = byName.get(name);
      if (!n) throw new Error(`the stateless tier needs a node named ${name} in the topology`);
      return n;
    };
    this.balancer = need(BALANCER_NODE);
    const serving = o.clickhouseUrls?.length
      ? [...QUERY_NODES.map((n) => ({ node: need(n), role: 'query' as const, child: null, log: null })), ...SINK_NODES.map((n) => ({ node: need(n), role: 'sink' as const, child: null, log: null }))]
      : [];
    this.instances = [...GATEWAY_NODES.map((n) => ({ node: need(n), role: 'gateway' as const, child: null, log: null })), ...serving];
    this.statsSocket = join(o.stateDir, 'haproxy.sock');
    this.haproxy = new HaproxyProcess({
      configFile: join(o.stateDir, 'haproxy.cfg'), statsSocket: this.statsSocket, netns: this.balancer.netns, logger: o.logger,
      output: (l) => { this.haproxyLog ??= createWriteStream(join(o.stateDir, 'haproxy.log'), { flags: 'a' }); this.haproxyLog.write(l + '\n'); },
    });
  }

  /** Where clients send clicks (and queries, with a query tier). */
  get gatewayUrl(): string {
    return `http://${this.balancer.address}:${this.o.config.gatewayPort}`;
  }

  get queryUrl(): string | null {
    return this.o.clickhouseUrls?.length ? `http://${this.balancer.address}:${this.o.config.queryPort}` : null;
  }

  haproxyConfigText(): string {
    const tier = (name: string, role: Role, port: number): BalancedTier => ({
      name, bindAddress: this.balancer.address, port, healthPath: '/readyz',
      servers: this.instances.filter((i) => i.role === role).map((i) => ({ name: i.node.name, address: i.node.address, port })),
    });
    const tiers = [tier('gateway', 'gateway', this.o.config.gatewayPort)];
    if (this.o.clickhouseUrls?.length) tiers.push(tier('query', 'query', this.o.config.queryPort));
    return haproxyConfig({ tiers, statsSocket: this.statsSocket, checkIntervalMs: this.o.checkIntervalMs ?? 1000, fall: 2, rise: 2 });
  }

  /** Start every instance and HAProxy; resolves once HAProxy answers (instances join the rotation as they get ready). */
  async start(): Promise<void> {
    await mkdir(this.o.stateDir, { recursive: true });
    await writeFile(join(this.o.stateDir, 'haproxy.cfg'), this.haproxyConfigText());
    for (const i of this.instances) this.startInstance(i.node.name);
    await this.haproxy.start();
  }

  /** (Re)start one instance by node name (after a kill, say). */
  startInstance(name: string): ChildProcess {
    const i = this.instances.find((x) => x.node.name === name);
    if (!i) throw new Error(`no instance on node ${name}`);
    if (i.child && i.child.exitCode === null && i.child.signalCode === null) throw new Error(`${name} is running`);
    const { config } = this.o;
    const dataDir = join(this.o.stateDir, i.node.name);
    const common = {
      ...process.env, ...this.o.env,
      ADCLICK_BIND_HOST: i.node.address, ADCLICK_DATA_DIR: dataDir, KAFKA_BROKERS: this.o.kafkaBootstrap,
      ADCLICK_TRUSTED_PROXIES: this.balancer.address, LOG_LEVEL: config.logLevel,
    };
    const env = i.role === 'gateway'
      ? { ...common, ADCLICK_GATEWAY_PORT: String(config.gatewayPort), ADCLICK_GATEWAY_ID: i.node.name }
      : { ...common, ADCLICK_QUERY_PORT: String(config.queryPort), CLICKHOUSE_URL: this.replicaListFor(i).join(','), ADCLICK_CLICKHOUSE_CLUSTER: this.o.clickhouseCluster ?? '',
        ADCLICK_SERVING_ROLE: i.role, ADCLICK_ADMIN_PORT: '0' };
    const entry = i.role === 'gateway' ? join('src', 'gateway', 'main.ts') : join('src', 'serving.ts');
    i.log ??= createWriteStream(join(this.o.stateDir, `${i.node.name}.log`), { flags: 'a' });
    // `ip netns exec` execs node in place: the child's pid is the instance's own.
    const child = spawn('ip', ['netns', 'exec', i.node.netns, process.execPath, ...(i.role === 'gateway' ? [] : SERVING_NODE_FLAGS), '--import', 'tsx', entry], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.pipe(i.log, { end: false });
    child.stderr!.pipe(i.log, { end: false });
    i.child = child;
    this.o.logger.info({ node: i.node.name, role: i.role, address: i.node.address, pid: child.pid }, 'stateless instance started');
    return child;
  }

  /**
   * The replica list one serving instance gets: every replica, rotated by the instance's
   * index among the serving nodes, so the instances start on different replicas.
   */
  replicaListFor(i: Pick<Instance, 'node'>): string[] {
    const urls = this.o.clickhouseUrls ?? [];
    const k = this.instances.filter((x) => x.role !== 'gateway').findIndex((x) => x.node.name === i.node.name);
    return urls.map((_, j) => urls[(j + Math.max(0, k)) % urls.length]!);
  }

  /** SIGKILL one instance (fault tests). */
  kill(name: string): void {
    this.instances.find((x) => x.node.name === name)?.child?.kill('SIGKILL');
  }

  async serverStates(): Promise<ServerState[]> {
    return serverStates(this.statsSocket);
  }

  status(): { name: string; role: string; address: string; pid: number | undefined; alive: boolean }[] {
    const alive = (c: ChildProcess | null) => !!c && c.exitCode === null && c.signalCode === null;
    return [
      ...this.instances.map((i) => ({ name: i.node.name, role: i.role, address: i.node.address, pid: i.child?.pid, alive: alive(i.child) })),
      { name: this.balancer.name, role: 'haproxy', address: this.balancer.address, pid: this.haproxy.pid, alive: this.haproxy.pid !== undefined },
    ];
  }

  /** SIGTERM every instance (SIGKILL after the stop timeout), then HAProxy. */
  async stop(): Promise<void> {
    await Promise.all(this.instances.map(async (i) => {
      const c = i.child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), this.o.config.stopTimeoutMs);
      await exited;
      clearTimeout(t);
    }));
    await this.haproxy.stop();
    for (const i of this.instances) i.log?.end();
    this.haproxyLog?.end();
  }

  /** Synchronous last resort (process exit hooks). */
  killNow(): void {
    for (const i of this.instances) i.child?.kill('SIGKILL');
    this.haproxy.killNow();
  }
}

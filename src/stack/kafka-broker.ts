// A single-node KRaft Kafka (broker + controller in one JVM) on loopback, used by
// `adclick up` (through the supervisor) and by integration tests (through KafkaBroker).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../shared/logger.ts';
import { tcpProbe } from './health.ts';
import { kafkaAnswersMetadata } from './kafka-admin.ts';
import type { KafkaDist } from './kafka-dist.ts';
import { Supervisor, type ManagedProcess, type ServiceSpec } from './supervisor.ts';
import { engineEnv } from './jvm-env.ts';

export interface KafkaBrokerOptions {
  readonly dist: KafkaDist;
  /** Holds server.properties, log4j2.properties, cluster-id and logs/ (the data). */
  readonly stateDir: string;
  readonly host?: string;
  readonly port: number;
  readonly controllerPort: number;
  /**
   * Cluster form: run the JVM inside this network namespace (`ip netns exec`), so `host` is
   * the namespace's own address and the node can be killed or cut off like a real host.
   */
  readonly netns?: string;
  /** KRaft node id (default 1). */
  readonly nodeId?: number;
  /**
   * Cluster form: every controller of the static quorum (this node included). Absent: a
   * single self-elected controller (`--standalone`), the single-box form.
   */
  readonly quorumVoters?: readonly QuorumVoter[];
  /** Cluster form: one id shared by every node, formatted into each node's storage. */
  readonly clusterId?: string;
  /** Replication of internal topics and the default of new ones. Default 1 (single box). */
  readonly replicationFactor?: number;
  /** min.insync.replicas of the broker and of the transaction log. Default 1 (single box). */
  readonly minInsyncReplicas?: number;
  /** Default partitions of topics created without an explicit count. Default 4. */
  readonly numPartitions?: number;
  readonly heapMin?: string;
  readonly heapMax?: string;
  /** Added to / overriding the generated server.properties. */
  readonly extraProperties?: Readonly<Record<string, string>>;
  /** Broker log level (log4j2). Default INFO. */
  readonly logLevel?: string;
  readonly java?: string;
  /** How long to wait for the first metadata answer. Default 90 s (2 cores, cold JVM). */
  readonly readyTimeoutMs?: number;
  readonly stopTimeoutMs?: number;
  readonly logger: Logger;
}

export interface QuorumVoter {
  readonly id: number;
  readonly host: string;
  readonly port: number;
}

export interface PreparedBroker {
  readonly propertiesFile: string;
  readonly log4jFile: string;
  readonly clusterId: string;
  /** true when this call formatted the storage (first start of this stateDir) */
  readonly formatted: boolean;
}

export function brokerBootstrap(o: Pick<KafkaBrokerOptions, 'host' | 'port'>): string {
  return `${o.host ?? '127.0.0.1'}:${o.port}`;
}

/** The broker's server.properties as a map (pure). */
export function brokerProperties(o: Omit<KafkaBrokerOptions, 'dist' | 'logger'>): Record<string, string> {
  const host = o.host ?? '127.0.0.1';
  const rf = String(o.replicationFactor ?? 1);
  const minIsr = String(o.minInsyncReplicas ?? 1);
  // A static voter set: every node knows the whole quorum from its first start, so no node
  // has to be added to a running quorum (a dynamic quorum formatted with --standalone
  // would elect itself alone and split the cluster).
  const quorum: Record<string, string> = o.quorumVoters?.length
    ? { 'controller.quorum.voters': o.quorumVoters.map((v) => `${v.id}@${v.host}:${v.port}`).join(',') }
    : { 'controller.quorum.bootstrap.servers': `${host}:${o.controllerPort}` };
  return {
    'process.roles': 'broker,controller',
    'node.id': String(o.nodeId ?? 1),
    listeners: `PLAINTEXT://${host}:${o.port},CONTROLLER://${host}:${o.controllerPort}`,
    'advertised.listeners': `PLAINTEXT://${host}:${o.port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    ...quorum,
    'log.dirs': join(o.stateDir, 'logs'),
    'num.partitions': String(o.numPartitions ?? 4),
    'default.replication.factor': rf,
    'offsets.topic.replication.factor': rf,
    'transaction.state.log.replication.factor': rf,
    'transaction.state.log.min.isr': minIsr,
    'share.coordinator.state.topic.replication.factor': rf,
    'share.coordinator.state.topic.min.isr': minIsr,
    'min.insync.replicas': minIsr,
    // Kafka's default, written out: a replica that was not in sync never becomes leader
    // (it would silently drop what the old leader had acknowledged).
    'unclean.leader.election.enable': 'false',
    'group.initial.rebalance.delay.ms': '0',
    'transaction.max.timeout.ms': String(TRANSACTION_MAX_TIMEOUT_MS),
    'auto.create.topics.enable': 'false',
    ...o.extraProperties,
  };
}

/**
 * The broker's cap on transaction timeouts, and so the Flink sinks' timeout (the job reads it at
 * start, issue #15 defect 6). A checkpoint's transactions are committed after the checkpoint
 * completes; a crash in between followed by a recovery longer than this loses them. 24 h (the
 * Kafka default is 15 min) covers any restart or outage short of a disaster restore; the price is
 * that a transaction nobody will finish (a job removed for good) holds read_committed readers
 * back for as long, which shows as sink lag in `adclick status`.
 */
export const TRANSACTION_MAX_TIMEOUT_MS = 24 * 3600 * 1000;

export function renderProperties(props: Readonly<Record<string, string>>): string {
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
  return '# Generated by src/stack/kafka-broker.ts on every start; edits are overwritten.\n' +
    Object.entries(props).map(([k, v]) => `${k}=${esc(v)}`).join('\n') + '\n';
}

/** log4j2 config: everything to stdout (the supervisor prefixes it), config dumps muted. */
export function brokerLog4j(level = 'INFO'): string {
  return [
    'status = warn',
    'appender.out.type = Console',
    'appender.out.name = STDOUT',
    'appender.out.target = SYSTEM_OUT',
    'appender.out.layout.type = PatternLayout',
    'appender.out.layout.pattern = %d{HH:mm:ss.SSS} %-5p %c{1} - %m%n',
    `rootLogger.level = ${level}`,
    'rootLogger.appenderRef.out.ref = STDOUT',
    // Each client/config object logs every one of its ~300 settings at INFO.
    'logger.cfg.name = org.apache.kafka.common.config.AbstractConfig',
    'logger.cfg.level = WARN',
    '',
  ].join('\n');
}

/** 16 random bytes, base64url without padding (22 chars): the format Kafka's cluster ids use. */
export function newClusterId(random: (n: number) => Buffer = randomBytes): string {
  // Like Kafka's own Uuid: never starting with '-', which the storage tool's argument
  // parser would take for an option ("--cluster-id: expected one argument").
  for (;;) {
    const id = random(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function javaArgs(o: KafkaBrokerOptions, log4jFile: string): string[] {
  return [`-Xms${o.heapMin ?? '256m'}`, `-Xmx${o.heapMax ?? '1g'}`, `-Dlog4j2.configurationFile=${log4jFile}`, '-cp', o.dist.classpath];
}

/**
 * Write the config files and, when the log dir has no meta.properties yet, format it with
 * a cluster id generated once and kept in `<stateDir>/cluster-id`.
 */
export async function prepareBroker(o: KafkaBrokerOptions): Promise<PreparedBroker> {
  await mkdir(join(o.stateDir, 'logs'), { recursive: true });
  const propertiesFile = join(o.stateDir, 'server.properties');
  const log4jFile = join(o.stateDir, 'log4j2.properties');
  await writeFile(propertiesFile, renderProperties(brokerProperties(o)));
  await writeFile(log4jFile, brokerLog4j(o.logLevel));

  const idFile = join(o.stateDir, 'cluster-id');
  let clusterId: string;
  if (o.clusterId) {
    clusterId = o.clusterId;
    await writeFile(idFile, clusterId + '\n');
  } else {
    try {
      clusterId = (await readFile(idFile, 'utf8')).trim();
    } catch {
      clusterId = newClusterId();
      await writeFile(idFile, clusterId + '\n');
    }
  }
  if (existsSync(join(o.stateDir, 'logs', 'meta.properties'))) return { propertiesFile, log4jFile, clusterId, formatted: false };

  const quiet = join(o.stateDir, 'log4j2-tools.properties');
  await writeFile(quiet, brokerLog4j('WARN'));
  const args = [...javaArgs({ ...o, heapMax: '256m', heapMin: '64m' }, quiet),
    'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', propertiesFile, ...(o.quorumVoters?.length ? [] : ['--standalone'])];
  o.logger.info({ stateDir: o.stateDir, clusterId }, 'formatting Kafka storage (first start)');
  await new Promise<void>((resolve, reject) => {
    const child = spawn(o.java ?? 'java', args, { stdio: ['ignore', 'pipe', 'pipe'], env: engineEnv() });
    let out = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { out += b.toString(); });
    child.on('error', (err) => reject(new Error(`cannot run java to format Kafka storage: ${err.message}`, { cause: err })));
    child.on('exit', (code) => code === 0 ? resolve() : reject(new Error(`Kafka storage format failed (exit ${code}):\n${out.slice(-4000)}`)));
  });
  return { propertiesFile, log4jFile, clusterId, formatted: true };
}

/** The broker as a supervisor service: prepares (and formats) before every start. */
export function brokerServiceSpec(o: KafkaBrokerOptions & { readonly name?: string; readonly restart?: ServiceSpec['restart'] }): ServiceSpec {
  const bootstrap = brokerBootstrap(o);
  const host = o.host ?? '127.0.0.1';
  let log4jFile = join(o.stateDir, 'log4j2.properties');
  const java = o.java ?? 'java';
  return {
    name: o.name ?? 'kafka',
    // `ip netns exec` execs the JVM in place, so the supervised pid is the JVM's own.
    command: o.netns ? 'ip' : java,
    env: engineEnv(),
    args: async () => {
      ({ log4jFile } = await prepareBroker(o));
      const jvm = [...javaArgs(o, log4jFile), 'kafka.Kafka', join(o.stateDir, 'server.properties')];
      return o.netns ? ['netns', 'exec', o.netns, java, ...jvm] : jvm;
    },
    health: {
      kind: 'custom',
      describe: `Kafka metadata from ${bootstrap}`,
      // TCP first: building an admin client per poll while the JVM boots is wasteful.
      probe: async () => (await tcpProbe(host, o.port, 500)) && kafkaAnswersMetadata(bootstrap, 3000),
      outside: { kind: 'tcp', host, port: o.port },
    },
    readyTimeoutMs: o.readyTimeoutMs ?? 90_000,
    // A controlled shutdown of a single node is quick, but a JVM under load can be slow.
    stopTimeoutMs: o.stopTimeoutMs ?? 30_000,
    restart: o.restart,
  };
}

/**
 * A broker with its own lifecycle, for tests and tools: `await broker.start()`,
 * `broker.bootstrap`, `await broker.stop()`. Pid files go to `<stateDir>/run`.
 */
export class KafkaBroker {
  private supervisor: Supervisor;
  private proc: ManagedProcess | undefined;

  constructor(readonly options: KafkaBrokerOptions & { readonly output?: (line: string) => void; readonly name?: string }) {
    this.supervisor = this.newSupervisor();
  }

  private newSupervisor(): Supervisor {
    const o = this.options;
    return new Supervisor({
      runDir: join(o.stateDir, 'run'),
      logger: o.logger,
      output: o.output ? (_n, line) => o.output!(line) : () => undefined,
    });
  }

  get bootstrap(): string { return brokerBootstrap(this.options); }
  get pid(): number | undefined { return this.proc?.pid; }
  /** Last broker output lines (for assertion messages). */
  get recentOutput(): string { return this.proc?.recentOutput ?? ''; }

  async start(): Promise<void> {
    // A stopped broker can be started again on the same state dir (tests stop and restart it).
    if (this.proc) this.supervisor = this.newSupervisor();
    this.proc = await this.supervisor.start(brokerServiceSpec(this.options));
  }

  /** SIGTERM, then SIGKILL after stopTimeoutMs; resolves once the JVM has exited. */
  async stop(): Promise<void> {
    await this.proc?.stop();
  }

  /** Synchronous last resort (process 'exit' hooks): SIGKILL the JVM if still running. */
  killNow(): void {
    const pid = this.pid;
    if (pid !== undefined) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  }
}

// The Flink tier of the cluster form: a standalone session cluster (JobManagers, one leading,
// and N TaskManagers), each its own JVM in its own network namespace, started from the Maven
// jars of flink-dist.ts with the JVM memory flags Flink's own scripts use (BashJavaUtils
// GET_JM_RESOURCE_PARAMS / GET_TM_RESOURCE_PARAMS). The job jar is uploaded and run
// through the leading JobManager's REST API (/jars/upload, /jars/:id/run), as on any session
// cluster. Checkpoints and savepoints go to a host directory every node reaches (the
// namespaces share the host's filesystem), with RocksDB state.
//
// JobManager high availability is Flink's own (high-availability.type: zookeeper): two or more
// JobManagers elect a leader through ZooKeeper; the job graph, its blobs and the completed
// checkpoints' metadata are written to the HA storage dir (a directory every node reaches) with
// pointers in ZooKeeper under `/adclick-flink/<cluster id>`. When the leader dies, a standby
// wins the election, recovers the job from those pointers (same job id, its latest completed
// checkpoint) and the TaskManagers find it through ZooKeeper; nothing is resubmitted by us. REST
// calls go to the leader's REST endpoint, which this class reads from ZooKeeper (readLeaderRestUrl).
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { basename, join } from 'node:path';
import type { Logger } from '../shared/logger.ts';
import { chooseRestorePoint, type RestoreChoice } from '../stack/checkpoints.ts';
import { httpProbe } from '../stack/health.ts';
import { engineEnv } from '../stack/jvm-env.ts';
import { Supervisor, type ManagedProcess, type ServiceSpec } from '../stack/supervisor.ts';
import type { FlinkDist } from './flink-dist.ts';
import type { ClusterNode } from './topology.ts';
import { ZK_CLIENT_PORT, zookeeperGetData } from './zookeeper.ts';

const execFileP = promisify(execFile);

export const JOB_CLASS = 'io.adclick.flink.ClickAggregationJob';

/** The --add-opens/--add-exports Flink's own config.yaml sets for Java 17 (Kryo, RocksDB, Pekko). */
const JAVA17_OPTS = [
  '--add-exports=java.base/sun.net.util=ALL-UNNAMED', '--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED',
  '--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED',
  ...['java.lang', 'java.net', 'java.io', 'java.nio', 'sun.nio.ch', 'java.lang.reflect', 'java.text', 'java.time', 'java.util',
    'java.util.concurrent', 'java.util.concurrent.atomic', 'java.util.concurrent.locks'].map((p) => `--add-opens=java.base/${p}=ALL-UNNAMED`),
];

export interface FlinkClusterOptions {
  readonly dist: FlinkDist;
  /** `flink-jm/`, `flink-tm-<i>/` (config, logs, tmp) and `flink/` (checkpoints, savepoints) go here. */
  readonly stateDir: string;
  /** The JobManagers (the first started first, so it normally leads; the others are standbys). */
  readonly jobManagers: readonly ClusterNode[];
  readonly taskManagers: readonly ClusterNode[];
  /** Flink's ZooKeeper HA services: which ensemble, and this cluster's id under `/adclick-flink`. */
  readonly ha: FlinkHa;
  readonly restPort?: number;
  readonly slotsPerTaskManager?: number;
  /** jobmanager.memory.process.size / taskmanager.memory.process.size */
  readonly jobManagerMemory?: string;
  readonly taskManagerMemory?: string;
  readonly readyTimeoutMs?: number;
  /**
   * Start a node again when its JVM dies (`cluster up`); the tests kill and restart by hand.
   * A JobManager started again this way rejoins as a standby.
   */
  readonly restartOnFailure?: boolean;
  readonly logger: Logger;
}

export interface FlinkHa {
  /** ZooKeeper nodes' addresses (client port 2181). */
  readonly zookeeper: readonly string[];
  /** `high-availability.cluster-id`: this cluster's node under the root, [a-z0-9-]. */
  readonly clusterId: string;
}

/** `high-availability.zookeeper.path.root` of every AdClick Flink cluster. */
export const FLINK_HA_ROOT = '/adclick-flink';

/** Where Flink's HA services publish the leading REST endpoint (ZooKeeperUtils: leader/rest_server/connection_info). */
export function flinkRestLeaderPath(clusterId: string): string {
  return `${FLINK_HA_ROOT}/${clusterId}/leader/rest_server/connection_info`;
}

/**
 * The leader's REST URL out of a connection_info znode: Flink writes it with Java
 * serialization (writeUTF(address), then the session UUID); the URL is the only http(s) URL in it.
 */
export function parseLeaderRestUrl(data: Buffer | undefined): string | undefined {
  return data ? /https?:\/\/[A-Za-z0-9.-]+:\d+/.exec(data.toString('latin1'))?.[0] : undefined;
}

/** The REST URL of the current leader per ZooKeeper; undefined while there is none. */
export async function readLeaderRestUrl(ha: FlinkHa, timeoutMs = 3000): Promise<string | undefined> {
  return parseLeaderRestUrl(await zookeeperGetData(ha.zookeeper, flinkRestLeaderPath(ha.clusterId), timeoutMs));
}

export interface FlinkNodeStatus {
  readonly role: 'jobmanager' | 'taskmanager';
  readonly name: string;
  readonly netns: string;
  readonly address: string;
  readonly pid: number | undefined;
}

export interface JobSubmission {
  /** The job jar (the same shaded jar the single-box launcher runs). */
  readonly jar: string;
  /** ClickAggregationJob flags (up.ts flinkJobFlags). */
  readonly args: readonly string[];
  /** Checkpoint or savepoint to start from. */
  readonly restoreFrom?: string;
  readonly parallelism?: number;
}

export interface JobOverview { readonly jid: string; readonly name: string; readonly state: string }

export interface CheckpointInfo { readonly id: number; readonly path: string; readonly completedAtMs: number }

export class FlinkRestError extends Error {
  constructor(message: string, readonly status: number, readonly code = 'FLINK_REST_FAILED') {
    super(message);
    this.name = 'FlinkRestError';
  }
}

/** Flink 2's config.yaml accepts flattened keys; values are quoted so nothing is read as YAML syntax. */
export function configYaml(entries: Readonly<Record<string, string | number | boolean>>): string {
  return Object.entries(entries).map(([k, v]) => `${k}: ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`).join('\n') + '\n';
}

/** The two result lines of a BashJavaUtils command: JVM flags, then `-D k=v` dynamic properties. */
export function parseBashJavaUtils(stdout: string): { jvm: string[]; dynamic: string[] } {
  const results = stdout.split('\n').filter((l) => l.startsWith('BASH_JAVA_UTILS_EXEC_RESULT:')).map((l) => l.slice('BASH_JAVA_UTILS_EXEC_RESULT:'.length).trim());
  if (results.length < 1) throw new Error(`BashJavaUtils printed no result:\n${stdout.slice(-2000)}`);
  const split = (s: string | undefined) => (s ?? '').split(/\s+/).filter(Boolean);
  return { jvm: split(results[0]), dynamic: split(results[1]) };
}

const LOG4J = `rootLogger.level = INFO
rootLogger.appenderRef.console.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_OUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss.SSS} %-5p %c{1} - %m%n
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
logger.pekko.name = org.apache.pekko
logger.pekko.level = WARN
`;

export class FlinkCluster {
  readonly checkpointDir: string;
  readonly savepointDir: string;
  /** high-availability.storageDir: job graphs, blobs, checkpoint metadata of the HA services. */
  readonly haDir: string;
  private readonly procs = new Map<string, ManagedProcess>();
  private readonly supervisors = new Map<string, Supervisor>();
  private readonly logs: WriteStream[] = [];

  constructor(readonly options: FlinkClusterOptions) {
    this.checkpointDir = join(options.stateDir, 'flink', 'checkpoints');
    this.savepointDir = join(options.stateDir, 'flink', 'savepoints');
    this.haDir = join(options.stateDir, 'flink', 'ha');
    if (options.jobManagers.length === 0) throw new Error('a Flink cluster needs at least one JobManager');
    if (!/^[a-z0-9-]{1,64}$/.test(options.ha.clusterId)) throw new Error(`Flink HA cluster id must be [a-z0-9-]{1,64}, got "${options.ha.clusterId}"`);
  }

  get restPort(): number { return this.options.restPort ?? 8081; }
  /** A JobManager's REST API and web UI: on its address on the private bridge only. */
  nodeRestUrl(node: ClusterNode): string { return `http://${node.address}:${this.restPort}`; }
  /** The REST endpoint the last call went to (the leader then); the first JobManager's before any. */
  get restUrl(): string { return this.lastLeaderUrl ?? this.nodeRestUrl(this.options.jobManagers[0]!); }
  /** Every JobManager's REST endpoint, the first (the usual leader) first: any of them answers under HA. */
  get restUrls(): string[] { return this.options.jobManagers.map((n) => this.nodeRestUrl(n)); }
  private lastLeaderUrl: string | undefined;
  get totalSlots(): number { return this.options.taskManagers.length * (this.options.slotsPerTaskManager ?? 2); }

  private nodeDir(name: string): string { return join(this.options.stateDir, name); }

  /** config.yaml shared by every node; the node-specific addresses are added per node. */
  private baseConfig(): Record<string, string | number | boolean> {
    const o = this.options;
    return {
      // Under HA these only say where a JobManager listens; TaskManagers and clients find the leader in ZooKeeper.
      'jobmanager.rpc.address': o.jobManagers[0]!.address,
      'jobmanager.rpc.port': 6123,
      'blob.server.port': 6124,
      'rest.port': this.restPort,
      'high-availability.type': 'zookeeper',
      'high-availability.zookeeper.quorum': o.ha.zookeeper.map((a) => `${a}:${ZK_CLIENT_PORT}`).join(','),
      'high-availability.zookeeper.path.root': FLINK_HA_ROOT,
      'high-availability.cluster-id': `/${o.ha.clusterId}`,
      'high-availability.storageDir': `file://${this.haDir}`,
      'high-availability.jobmanager.port': '6123',
      // A leader killed with SIGKILL holds its leader latch until its ZooKeeper session expires:
      // 15 s (not the 60 s default) bounds the failover; long enough for a JVM pause on a loaded box.
      'high-availability.zookeeper.client.session-timeout': 15000,
      'high-availability.zookeeper.client.connection-timeout': 15000,
      'jobmanager.memory.process.size': o.jobManagerMemory ?? '1024m',
      'taskmanager.memory.process.size': o.taskManagerMemory ?? '1536m',
      'taskmanager.memory.managed.fraction': 0.25,
      'taskmanager.numberOfTaskSlots': o.slotsPerTaskManager ?? 2,
      'parallelism.default': 2,
      // Spread the job's slots over the TaskManagers: losing one then costs half the job, not all.
      'taskmanager.load-balance.mode': 'SLOTS',
      'state.backend.type': 'rocksdb',
      'execution.checkpointing.dir': `file://${this.checkpointDir}`,
      'execution.checkpointing.savepoint-dir': `file://${this.savepointDir}`,
      'execution.checkpointing.incremental': true,
      // A killed TaskManager is noticed within seconds (its RPCs fail), not after the 50 s default.
      'heartbeat.interval': 2000,
      'heartbeat.timeout': 15000,
      // The REST port is reachable on the private bridge only; jar upload is how jobs get here.
      'web.submit.enable': true,
      'web.cancel.enable': true,
    };
  }

  private async writeNodeConfig(name: string, extra: Record<string, string | number>): Promise<string> {
    const dir = this.nodeDir(name);
    const conf = join(dir, 'conf');
    await mkdir(join(dir, 'tmp'), { recursive: true });
    await mkdir(conf, { recursive: true });
    await writeFile(join(conf, 'config.yaml'), configYaml({ ...this.baseConfig(), 'io.tmp.dirs': join(dir, 'tmp'), ...extra }));
    await writeFile(join(conf, 'log4j2.properties'), LOG4J);
    return conf;
  }

  private async resourceParams(cmd: 'GET_JM_RESOURCE_PARAMS' | 'GET_TM_RESOURCE_PARAMS', confDir: string): Promise<{ jvm: string[]; dynamic: string[] }> {
    const { stdout } = await execFileP('java', ['-Xmx128m', '-cp', this.options.dist.classpath, 'org.apache.flink.runtime.util.bash.BashJavaUtils', cmd, '--configDir', confDir],
      { timeout: 120_000, env: engineEnv(), maxBuffer: 4 << 20 });
    return parseBashJavaUtils(stdout);
  }

  private spec(role: 'jobmanager' | 'taskmanager', node: ClusterNode): ServiceSpec {
    const mainClass = role === 'jobmanager'
      ? 'org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint'
      : 'org.apache.flink.runtime.taskexecutor.TaskManagerRunner';
    return {
      name: node.name,
      // `ip netns exec` execs the JVM in place: the supervised pid is the JVM's own.
      command: 'ip',
      env: engineEnv(),
      args: async () => {
        const conf = await this.writeNodeConfig(node.name, role === 'jobmanager'
          ? { 'jobmanager.rpc.address': node.address, 'jobmanager.bind-host': node.address, 'rest.address': node.address, 'rest.bind-address': node.address, 'web.upload.dir': join(this.nodeDir(node.name), 'web-upload') }
          : { 'taskmanager.host': node.address, 'taskmanager.bind-host': node.address });
        const { jvm, dynamic } = await this.resourceParams(role === 'jobmanager' ? 'GET_JM_RESOURCE_PARAMS' : 'GET_TM_RESOURCE_PARAMS', conf);
        return ['netns', 'exec', node.netns, 'java', ...jvm, ...JAVA17_OPTS,
          `-Dlog4j.configurationFile=file:${join(conf, 'log4j2.properties')}`,
          '-cp', this.options.dist.classpath, mainClass, '--configDir', conf,
          ...(role === 'jobmanager' ? ['--executionMode', 'cluster', '--host', node.address] : []), ...dynamic];
      },
      // A JobManager is up once its own REST endpoint answers /overview: the leader's directly, a
      // standby's through the leader's dispatcher (so a standby is healthy once there is a leader).
      health: role === 'jobmanager'
        ? { kind: 'custom', describe: `Flink REST ${this.nodeRestUrl(node)}/overview`, probe: async () => httpProbe(`${this.nodeRestUrl(node)}/overview`, 2000), outside: { kind: 'http', url: `${this.nodeRestUrl(node)}/overview` } }
        : { kind: 'line', pattern: 'Successful registration at resource manager' },
      readyTimeoutMs: this.options.readyTimeoutMs ?? 240_000,
      stopTimeoutMs: 30_000,
      ...(this.options.restartOnFailure ? { restart: { when: 'on-failure' as const, backoffMs: 2000, maxBackoffMs: 30_000 } } : {}),
    };
  }

  private openLog(name: string): (line: string) => void {
    let log: WriteStream | undefined;
    return (line) => {
      if (!log) {
        log = createWriteStream(join(this.nodeDir(name), `${name}.log`), { flags: 'a' });
        this.logs.push(log);
      }
      log.write(line + '\n');
    };
  }

  private async startNode(role: 'jobmanager' | 'taskmanager', node: ClusterNode): Promise<void> {
    const existing = this.procs.get(node.name);
    if (existing) {
      await existing.start();
      return;
    }
    await mkdir(this.nodeDir(node.name), { recursive: true });
    const write = this.openLog(node.name);
    const sup = new Supervisor({ runDir: join(this.nodeDir(node.name), 'run'), logger: this.options.logger, output: (_n, line) => write(line) });
    this.supervisors.set(node.name, sup);
    this.procs.set(node.name, await sup.start(this.spec(role, node)));
  }

  /**
   * The first JobManager alone (it wins the election), then the standbys and every TaskManager
   * at once (the TaskManagers find the leader through ZooKeeper).
   */
  async start(): Promise<void> {
    await mkdir(this.checkpointDir, { recursive: true });
    await mkdir(this.savepointDir, { recursive: true });
    await mkdir(this.haDir, { recursive: true });
    const [first, ...standbys] = this.options.jobManagers;
    await this.startNode('jobmanager', first!);
    await Promise.all([
      ...standbys.map((n) => this.startNode('jobmanager', n)),
      ...this.options.taskManagers.map((n) => this.startNode('taskmanager', n)),
    ]);
    await this.waitSlots(this.totalSlots, this.options.readyTimeoutMs ?? 240_000);
  }

  /**
   * TaskManagers first (a JobManager stopping first makes them retry registration for minutes),
   * then the JobManagers. A stopped session cluster keeps its HA data: the next start recovers
   * the job from it (see operations.md, "what survives what").
   */
  async stop(): Promise<void> {
    await Promise.allSettled(this.options.taskManagers.map((n) => this.procs.get(n.name)?.stop()));
    await Promise.allSettled(this.options.jobManagers.map((n) => this.procs.get(n.name)?.stop()));
    for (const l of this.logs) l.end();
  }

  /** Synchronous last resort (exit hooks). */
  killNow(): void {
    for (const p of this.procs.values()) {
      const pid = p.pid;
      if (pid !== undefined) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }

  private proc(name: string): ManagedProcess {
    const p = this.procs.get(name);
    if (!p) throw new Error(`no Flink node ${name}`);
    return p;
  }

  /** kill -9, as a host losing power; resolves once the JVM is gone. */
  async kill(name: string): Promise<void> {
    const p = this.proc(name);
    const pid = p.pid;
    if (pid === undefined) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    process.kill(pid, 'SIGKILL');
    await gone;
  }

  async restartTaskManager(name: string): Promise<void> {
    const node = this.options.taskManagers.find((n) => n.name === name);
    if (!node) throw new Error(`no TaskManager ${name}`);
    await this.startNode('taskmanager', node);
  }

  /**
   * Start a killed JobManager again: with a leader elected meanwhile it rejoins as a standby
   * (nothing is resubmitted: the leader recovered the job from the HA store). Resolves once its
   * REST endpoint answers.
   */
  async restartJobManager(name: string): Promise<void> {
    const node = this.options.jobManagers.find((n) => n.name === name);
    if (!node) throw new Error(`no JobManager ${name}`);
    await this.startNode('jobmanager', node);
  }

  /** The JobManager that leads per ZooKeeper (undefined while none does, or ZooKeeper does not answer). */
  async leader(): Promise<ClusterNode | undefined> {
    const url = await readLeaderRestUrl(this.options.ha).catch(() => undefined);
    return this.options.jobManagers.find((n) => this.nodeRestUrl(n) === url);
  }

  /** Wait until a JobManager other than `not` leads and answers; its node. */
  async waitLeader(timeoutMs: number, not?: string): Promise<ClusterNode> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const l = await this.leader();
      if (l && l.name !== not && await httpProbe(`${this.nodeRestUrl(l)}/overview`, 2000)) return l;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`no JobManager${not ? ` other than ${not}` : ''} leads within ${timeoutMs} ms (ZooKeeper ${this.options.ha.zookeeper.join(',')})`);
  }

  /** Submit, from the newest usable checkpoint or savepoint when there is one. */
  async submitFromLatest(submission: Omit<JobSubmission, 'restoreFrom'>): Promise<{ jobId: string; restoredFrom?: string; choice: RestoreChoice }> {
    const choice = chooseRestorePoint({ checkpointDir: this.checkpointDir, savepointDir: this.savepointDir, stateFile: join(this.options.stateDir, 'flink', 'restore-state.json') });
    if (choice.exhausted) throw new Error(`every restore point under ${this.checkpointDir} was given up on; not starting the job without its state`);
    const jobId = await this.submit({ ...submission, restoreFrom: choice.point?.path });
    return { jobId, restoredFrom: choice.point?.path, choice };
  }

  status(): FlinkNodeStatus[] {
    const o = this.options;
    return [
      ...o.jobManagers.map((node) => ({ role: 'jobmanager' as const, node })),
      ...o.taskManagers.map((node) => ({ role: 'taskmanager' as const, node })),
    ].map(({ role, node }) => ({ role, name: node.name, netns: node.netns, address: node.address, pid: this.procs.get(node.name)?.pid }));
  }

  pid(name: string): number | undefined { return this.procs.get(name)?.pid; }

  // ---- REST ----

  /** A REST call to the current leader (looked up in ZooKeeper for each call: leadership moves). */
  async rest<T>(path: string, init: RequestInit = {}, timeoutMs = 30_000): Promise<T> {
    const leader = await readLeaderRestUrl(this.options.ha).catch((err: unknown) => {
      throw new FlinkRestError(`Flink REST ${init.method ?? 'GET'} ${path}: cannot read the leader from ZooKeeper: ${(err as Error).message}`, 503);
    });
    if (!leader) throw new FlinkRestError(`Flink REST ${init.method ?? 'GET'} ${path}: no JobManager leads (nothing in ZooKeeper at ${flinkRestLeaderPath(this.options.ha.clusterId)})`, 503);
    // Only ever one of our own JobManagers' addresses, whatever the znode says.
    if (!this.options.jobManagers.some((n) => this.nodeRestUrl(n) === leader)) {
      throw new FlinkRestError(`Flink REST ${init.method ?? 'GET'} ${path}: ZooKeeper names ${leader} as the leader, which is not a JobManager of this cluster`, 503);
    }
    this.lastLeaderUrl = leader;
    const res = await fetch(`${leader}${path}`, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    if (!res.ok) throw new FlinkRestError(`Flink REST ${init.method ?? 'GET'} ${path}: HTTP ${res.status} ${text.slice(0, 4000)}`, res.status);
    return (text ? JSON.parse(text) : {}) as T;
  }

  overview(timeoutMs = 5000): Promise<{ taskmanagers: number; 'slots-total': number; 'slots-available': number; 'jobs-running': number }> {
    return this.rest('/overview', {}, timeoutMs);
  }

  async waitSlots(slots: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      last = await this.overview().catch((e: unknown) => String(e));
      if (typeof last === 'object' && last && (last as { 'slots-total': number })['slots-total'] >= slots) return;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`the Flink cluster did not offer ${slots} slots within ${timeoutMs} ms (last overview: ${JSON.stringify(last)})`);
  }

  /** POST /jars/upload; returns the jar id. */
  async uploadJar(jar: string): Promise<string> {
    const form = new FormData();
    form.append('jarfile', new Blob([await readFile(jar)], { type: 'application/x-java-archive' }), basename(jar));
    const res = await this.rest<{ filename: string; status: string }>('/jars/upload', { method: 'POST', body: form }, 300_000);
    return basename(res.filename);
  }

  /** Upload the jar and run the job through /jars/:id/run; returns the job id. */
  async submit(s: JobSubmission): Promise<string> {
    const jarId = await this.uploadJar(s.jar);
    try {
      const body = {
        entryClass: JOB_CLASS,
        programArgsList: [...s.args],
        ...(s.parallelism ? { parallelism: s.parallelism } : {}),
        ...(s.restoreFrom ? { savepointPath: s.restoreFrom, allowNonRestoredState: false } : {}),
      };
      const res = await this.rest<{ jobid: string }>(`/jars/${encodeURIComponent(jarId)}/run`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
      }, 300_000);
      this.options.logger.info({ jobId: res.jobid, restoreFrom: s.restoreFrom }, 'Flink job submitted');
      return res.jobid;
    } finally {
      await this.rest(`/jars/${encodeURIComponent(jarId)}`, { method: 'DELETE' }).catch(() => undefined);
    }
  }

  async jobs(): Promise<JobOverview[]> {
    return (await this.rest<{ jobs: JobOverview[] }>('/jobs/overview')).jobs;
  }

  /** The job's state and whether every task of every vertex runs. */
  async jobState(jobId: string): Promise<{ state: string; allTasksRunning: boolean }> {
    const j = await this.rest<{ state: string; vertices: { status: string; parallelism: number; tasks?: Record<string, number> }[] }>(`/jobs/${jobId}`);
    const allTasksRunning = j.state === 'RUNNING' && j.vertices.every((v) => v.status === 'RUNNING' && (v.tasks?.RUNNING ?? v.parallelism) === v.parallelism);
    return { state: j.state, allTasksRunning };
  }

  async waitJobRunning(jobId: string, timeoutMs: number): Promise<number> {
    const t0 = Date.now();
    let last: unknown;
    while (Date.now() - t0 < timeoutMs) {
      try {
        const s = await this.jobState(jobId);
        last = s;
        if (s.allTasksRunning) return Date.now() - t0;
        if (['FAILED', 'CANCELED', 'FINISHED'].includes(s.state)) throw new Error(`job ${jobId} ended: ${s.state}`);
      } catch (err) {
        if (/ended:/.test(String(err))) throw err;
        last = String(err);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`job ${jobId} did not run all its tasks within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
  }

  /** The newest completed checkpoint the JobManager reports for the job. */
  async latestCheckpoint(jobId: string): Promise<CheckpointInfo | undefined> {
    const c = await this.rest<{ latest?: { completed?: { id: number; external_path: string; latest_ack_timestamp: number } | null } }>(`/jobs/${jobId}/checkpoints`);
    const done = c.latest?.completed;
    return done ? { id: done.id, path: done.external_path, completedAtMs: done.latest_ack_timestamp } : undefined;
  }

  /** Stop-with-savepoint into the savepoint dir; resolves with the savepoint's path. */
  async stopWithSavepoint(jobId: string, timeoutMs = 300_000): Promise<string> {
    const { 'request-id': rid } = await this.rest<{ 'request-id': string }>(`/jobs/${jobId}/stop`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ targetDirectory: `file://${this.savepointDir}`, drain: false }),
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const s = await this.rest<{ status: { id: string }; operation?: { location?: string; 'failure-cause'?: { 'stack-trace'?: string } } }>(`/jobs/${jobId}/savepoints/${rid}`);
      if (s.status.id === 'COMPLETED') {
        if (s.operation?.location) return s.operation.location.replace(/^file:/, '');
        throw new Error(`stop-with-savepoint of ${jobId} failed: ${(s.operation?.['failure-cause']?.['stack-trace'] ?? '').slice(0, 2000)}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`stop-with-savepoint of ${jobId} did not complete within ${timeoutMs} ms`);
  }
}

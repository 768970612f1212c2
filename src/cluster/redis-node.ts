// Redis as a node of the cluster form (issue 18): Debian's redis-server in a network
// namespace of its own, listening on the node's address only, so the gateways' edge dedup
// and rate limits are shared across gateways as on the single box (REDIS_URL points here).
// No persistence: edge dedup is an optimisation (the Flink job deduplicates exactly), and a
// restarted Redis comes back empty as a fresh failover would. Protected mode is off because
// the only clients are the cluster's namespaces on its private bridge (no default route).
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../shared/logger.ts';
import { Supervisor, type ManagedProcess } from '../stack/supervisor.ts';
import { redisAnswers } from '../stack/up.ts';
import type { ClusterNode } from './topology.ts';

export const REDIS_NODE = 'redis';
export const REDIS_PORT = 6379;
export const REDIS_BINARY = 'redis-server';

export class RedisNode {
  private proc: ManagedProcess | undefined;
  private log: WriteStream | undefined;

  constructor(private readonly o: { node: ClusterNode; stateDir: string; logger: Logger; binary?: string }) {}

  /** What the gateways set as REDIS_URL. */
  get url(): string {
    return `redis://${this.o.node.address}:${REDIS_PORT}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async start(): Promise<void> {
    const dir = join(this.o.stateDir, this.o.node.name);
    await mkdir(dir, { recursive: true });
    const sup = new Supervisor({
      runDir: join(dir, 'run'),
      logger: this.o.logger,
      output: (_n, line) => { (this.log ??= createWriteStream(join(dir, 'redis.log'), { flags: 'a' })).write(line + '\n'); },
    });
    this.proc = await sup.start({
      name: this.o.node.name,
      command: 'ip',
      cwd: dir,
      args: ['netns', 'exec', this.o.node.netns, this.o.binary ?? REDIS_BINARY, '--port', String(REDIS_PORT), '--bind', this.o.node.address,
        '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--dir', dir],
      health: { kind: 'custom', describe: `redis PING ${this.url}`, probe: () => redisAnswers(this.url, 1000), outside: { kind: 'tcp', host: this.o.node.address, port: REDIS_PORT } },
      readyTimeoutMs: 60_000,
      stopTimeoutMs: 10_000,
    });
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
    this.log?.end();
  }

  killNow(): void {
    const pid = this.proc?.pid;
    if (pid !== undefined) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

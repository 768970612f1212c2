// HAProxy (Debian's package) in front of the stateless tiers of the cluster form (issue 18):
// one frontend per tier (gateways, query APIs), round robin over that tier's instances,
// each instance health-checked on its readiness endpoint (GET /readyz, 200 = in), so an
// instance that dies or cannot reach its dependencies (a gateway cut off from Kafka answers
// 503) leaves the rotation after `fall` failed checks and comes back after `rise` good
// ones. A request whose server closed or refused the connection without an answer, or
// answered 503, is retried once on another server (L7 retry): a click is idempotent by
// impression id (the Flink job deduplicates), a query is a read. The process runs in the foreground (-db) in
// its own network namespace; its stats socket (a file, reachable from the host) tells
// which servers are up.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import type { Logger } from '../shared/logger.ts';

export const HAPROXY_BINARY = '/usr/sbin/haproxy';

export interface BalancedServer { readonly name: string; readonly address: string; readonly port: number }

export interface BalancedTier {
  /** Frontend and backend name, e.g. `gateway`. */
  readonly name: string;
  readonly bindAddress: string;
  readonly port: number;
  /** Readiness path answered 200 by a server that should take traffic. */
  readonly healthPath: string;
  readonly servers: readonly BalancedServer[];
}

export interface HaproxyConfigOptions {
  readonly tiers: readonly BalancedTier[];
  /** Unix socket for `show stat` (level admin: also lets an operator drain a server). */
  readonly statsSocket: string;
  /** Health check interval (default 1000 ms); a server is out after `fall` failures, in after `rise` passes. */
  readonly checkIntervalMs?: number;
  readonly fall?: number;
  readonly rise?: number;
}

const NAME = /^[a-z0-9_-]{1,32}$/;

/** The haproxy.cfg text (pure). */
export function haproxyConfig(o: HaproxyConfigOptions): string {
  const inter = Math.max(100, Math.round(o.checkIntervalMs ?? 1000));
  const fall = Math.max(1, o.fall ?? 2);
  const rise = Math.max(1, o.rise ?? 2);
  if (o.tiers.length === 0) throw new Error('haproxy: no tier to balance');
  const lines = [
    'global',
    '  maxconn 4096',
    `  stats socket ${o.statsSocket} mode 600 level admin`,
    '  log stderr format raw local0 notice',
    '',
    'defaults',
    '  mode http',
    '  log global',
    '  option dontlognull',
    // The client's address for the servers' per-client limits (they trust the balancer's
    // X-Forwarded-For through ADCLICK_TRUSTED_PROXIES, and nobody else's).
    '  option forwardfor',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    `  timeout check ${Math.min(inter, 2000)}ms`,
    '  option redispatch',
    '  retries 1',
    // 503: the server cannot take it now (a gateway whose Kafka is unreachable); the other may.
    '  retry-on conn-failure empty-response 503',
    `  default-server inter ${inter}ms fastinter ${Math.max(100, Math.round(inter / 2))}ms downinter ${inter}ms fall ${fall} rise ${rise}`,
  ];
  for (const t of o.tiers) {
    if (!NAME.test(t.name)) throw new Error(`haproxy: tier name must be [a-z0-9_-]{1,32}, got "${t.name}"`);
    if (t.servers.length === 0) throw new Error(`haproxy: tier ${t.name} has no server`);
    lines.push('', `frontend ${t.name}`, `  bind ${t.bindAddress}:${t.port}`, `  default_backend ${t.name}`,
      '', `backend ${t.name}`, '  balance roundrobin', `  option httpchk GET ${t.healthPath}`, '  http-check expect status 200');
    for (const s of t.servers) {
      if (!NAME.test(s.name)) throw new Error(`haproxy: server name must be [a-z0-9_-]{1,32}, got "${s.name}"`);
      lines.push(`  server ${s.name} ${s.address}:${s.port} check`);
    }
  }
  return lines.join('\n') + '\n';
}

/** One server's state as HAProxy reports it (`show stat`). */
export interface ServerState {
  readonly backend: string;
  readonly server: string;
  /** UP, DOWN, `UP 1/2` (going down), `DOWN 1/2` (coming up), MAINT, no check … */
  readonly status: string;
  /** Requests sent to this server so far. */
  readonly requests: number;
}

/** Ask the stats socket one command; the answer text. */
export function haproxyCommand(socket: string, command: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect(socket);
    let out = '';
    const timer = setTimeout(() => { c.destroy(); reject(new Error(`haproxy stats socket ${socket}: no answer in ${timeoutMs} ms`)); }, timeoutMs);
    c.setEncoding('utf8');
    c.on('data', (d: string) => { out += d; });
    c.on('error', (err) => { clearTimeout(timer); reject(err); });
    c.on('close', () => { clearTimeout(timer); resolve(out); });
    c.end(`${command}\n`);
  });
}

/** Every server of every backend (`show stat`, CSV). */
export async function serverStates(socket: string): Promise<ServerState[]> {
  const text = await haproxyCommand(socket, 'show stat');
  const [header, ...rows] = text.split('\n').filter((l) => l.trim());
  if (!header?.startsWith('# ')) throw new Error(`haproxy: unexpected show stat answer: ${text.slice(0, 200)}`);
  const cols = header.slice(2).split(',');
  const at = (name: string) => cols.indexOf(name);
  const [px, sv, st, tot] = [at('pxname'), at('svname'), at('status'), at('stot')];
  return rows.map((r) => r.split(',')).filter((f) => f[sv] !== 'FRONTEND' && f[sv] !== 'BACKEND')
    .map((f) => ({ backend: f[px]!, server: f[sv]!, status: f[st]!, requests: Number(f[tot] ?? 0) }));
}

export interface HaproxyProcessOptions {
  readonly configFile: string;
  readonly statsSocket: string;
  /** Network namespace to run in (`ip netns exec`); none: the host's. */
  readonly netns?: string;
  readonly binary?: string;
  readonly logger: Logger;
  /** HAProxy's own output (its log goes to stderr), line by line. */
  readonly output?: (line: string) => void;
  readonly readyTimeoutMs?: number;
}

export class HaproxyProcess {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly o: HaproxyProcessOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Check the configuration (`haproxy -c`), start in the foreground, wait for the stats socket. */
  async start(): Promise<void> {
    const bin = this.o.binary ?? HAPROXY_BINARY;
    if (!existsSync(bin)) throw new Error(`${bin} not found: the cluster form's balancer is Debian's HAProxy (apt-get install haproxy)`);
    await runToEnd(bin, ['-c', '-q', '-f', this.o.configFile]);
    const [cmd, args] = this.o.netns
      ? ['ip', ['netns', 'exec', this.o.netns, bin, '-db', '-f', this.o.configFile]]
      : [bin, ['-db', '-f', this.o.configFile]];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((r) => child.once('exit', () => r()));
    const out = (d: Buffer) => { for (const l of d.toString().split('\n')) if (l.trim()) this.o.output?.(l); };
    child.stdout!.on('data', out);
    child.stderr!.on('data', out);
    const deadline = Date.now() + (this.o.readyTimeoutMs ?? 30_000);
    for (;;) {
      if (child.exitCode !== null) throw new Error(`haproxy exited with code ${child.exitCode} at start`);
      try {
        await serverStates(this.o.statsSocket);
        break;
      } catch (err) {
        if (Date.now() > deadline) {
          this.killNow();
          throw new Error(`haproxy did not open its stats socket in time: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    this.o.logger.info({ pid: child.pid, netns: this.o.netns, config: this.o.configFile }, 'haproxy running');
  }

  /** Soft stop (SIGUSR1: finish open requests), SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGUSR1');
    const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }

  killNow(): void {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

function runToEnd(cmd: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    c.on('error', reject);
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.trim().slice(0, 500)}`))));
  });
}

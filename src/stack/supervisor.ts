// Generic supervision of the local stack's processes: ordered start with health waits,
// prefixed output, restart with backoff, pid files, reverse-order stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from '../shared/logger.ts';
import { defaultConsoleColor, defaultConsoleFormat, formatLine, MIN_NAME_WIDTH, type ConsoleFormat } from './console-format.ts';
import { describeHealth, probe, serialisableHealth, type HealthCheck } from './health.ts';
import { isAlive, readPidRecords, sameExecutableChildren, removePidRecord, removeSupervisorPid, writePidRecord, writeSupervisorPid } from './pid-files.ts';

export type { HealthCheck } from './health.ts';

export interface RestartPolicy {
  /** `on-failure`: non-zero exit or killed by a signal; `always`: any exit not asked for. */
  readonly when: 'never' | 'on-failure' | 'always';
  /** First delay; doubles per consecutive crash up to maxBackoffMs. Default 1 s. */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Consecutive crashes before giving up (state `failed`). Default 10. */
  readonly maxRestarts?: number;
  /** Healthy this long resets the crash count. Default 60 s. */
  readonly resetAfterMs?: number;
}

export interface StartContext {
  /** 0 for the first start, n for the n-th restart. */
  readonly attempt: number;
}

export interface ServiceSpec {
  readonly name: string;
  readonly command: string;
  /**
   * The program `command` execs into when it is a wrapper (`nice -n 5 java …` runs as java):
   * what the pid file records, and what `adclick status` and `down` check /proc/<pid>/cmdline
   * against. Default: `command`.
   */
  readonly program?: string;
  /**
   * Arguments, or a function computing them before every (re)start — e.g. the Flink job
   * looks up its latest retained checkpoint again each time.
   */
  readonly args: readonly string[] | ((ctx: StartContext) => readonly string[] | Promise<readonly string[]>);
  readonly cwd?: string;
  /** Full environment of the child (default: the supervisor's). */
  readonly env?: NodeJS.ProcessEnv;
  readonly health?: HealthCheck;
  /** How long start() waits for health (default 60 s). */
  readonly readyTimeoutMs?: number;
  readonly restart?: RestartPolicy;
  /** SIGTERM → wait this long → SIGKILL (default 15 s). */
  readonly stopTimeoutMs?: number;
  /** Runs before every (re)start, after args were computed (e.g. formatting storage). */
  readonly beforeStart?: (ctx: StartContext) => Promise<void>;
}

export type ProcessState = 'starting' | 'healthy' | 'unhealthy' | 'backoff' | 'stopping' | 'stopped' | 'exited' | 'failed';

export interface ProcessStatus {
  readonly name: string;
  readonly pid: number | undefined;
  readonly alive: boolean;
  /** undefined = cannot tell (e.g. a ready-line check seen from another process) */
  readonly healthy: boolean | undefined;
  readonly health: string;
  readonly state: ProcessState | 'unknown';
  readonly restarts: number;
  /** Children running the same executable (a gateway's node:cluster workers); absent or empty: none. */
  readonly workers?: readonly number[];
}

export interface SupervisorOptions {
  /** Where `<name>.pid`/`<name>.json` go; usually `<dataDir>/run`. */
  readonly runDir: string;
  readonly logger: Logger;
  /** Receives every child output line (default: prefixed and written to `stdout`). */
  readonly output?: (name: string, line: string, stream: 'stdout' | 'stderr') => void;
  /** Where the default output goes (default process.stdout); whether it is a TTY picks the defaults below. */
  readonly stdout?: { write(text: string): unknown; readonly isTTY?: boolean };
  /**
   * Default output: `human` rewrites pino JSON lines into readable ones (console-format.ts),
   * `raw` prints every line as it came. Default: human on a TTY, so files, pipes and CI keep JSON.
   */
  readonly format?: ConsoleFormat;
  /** ANSI colours in the default output (default: stdout is a TTY and NO_COLOR unset). */
  readonly color?: boolean;
  /**
   * Wrap children in `setpriv --pdeathsig SIGTERM` (Linux) so they die with the
   * supervisor even when it is SIGKILLed. Default: when setpriv is on PATH.
   */
  readonly pdeathsig?: boolean;
}

const COLORS = [36, 33, 35, 32, 34, 91, 96, 93];
const OUTPUT_TAIL = 40;

export class SupervisorError extends Error {
  constructor(message: string, readonly code: 'NOT_HEALTHY' | 'EXITED_DURING_START' | 'SPAWN_FAILED' | 'ALREADY_STARTED', options?: ErrorOptions) {
    super(message, options);
    this.name = 'SupervisorError';
  }
}

function findOnPath(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch { /* next */ }
  }
  return undefined;
}

// Not unref'd: a CLI awaiting only this (e.g. `down` waiting for a pid) must stay alive.
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function forEachLine(stream: Readable, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i).replace(/\r$/, ''));
      buf = buf.slice(i + 1);
    }
  });
  stream.on('end', () => { if (buf) onLine(buf); buf = ''; });
}

/** One supervised process across its restarts. Events: `exit` (code, signal), `healthy`, `failed`. */
export class ManagedProcess extends EventEmitter {
  state: ProcessState = 'stopped';
  restarts = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private lineSeen = false;
  private stopping = false;
  private consecutiveCrashes = 0;
  private healthySince = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private pidFileRemoval: Promise<void> = Promise.resolve();
  private readonly tail: string[] = [];
  private readonly linePattern: RegExp | undefined;

  constructor(
    readonly spec: ServiceSpec,
    private readonly seq: number,
    private readonly sup: { runDir: string; logger: Logger; write: (name: string, line: string, stream: 'stdout' | 'stderr') => void; pdeathsig: string | undefined },
  ) {
    super();
    this.linePattern = spec.health?.kind === 'line' ? new RegExp(spec.health.pattern) : undefined;
  }

  get name(): string { return this.spec.name; }
  get pid(): number | undefined { return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined; }
  /** Last lines of output, for error messages. */
  get recentOutput(): string { return this.tail.join('\n'); }

  /** Spawn and wait until healthy; throws SupervisorError (with the output tail) otherwise. */
  async start(): Promise<void> {
    if (this.pid !== undefined) throw new SupervisorError(`${this.name} is already running (pid ${this.pid})`, 'ALREADY_STARTED');
    this.stopping = false;
    await this.spawnOnce(0);
    await this.waitHealthy(this.spec.readyTimeoutMs ?? 60_000);
  }

  private async spawnOnce(attempt: number): Promise<void> {
    const ctx: StartContext = { attempt };
    const args = typeof this.spec.args === 'function' ? await this.spec.args(ctx) : this.spec.args;
    await this.spec.beforeStart?.(ctx);
    this.lineSeen = false;
    this.state = 'starting';
    const [cmd, argv] = this.sup.pdeathsig
      ? [this.sup.pdeathsig, ['--pdeathsig', 'SIGTERM', '--', this.spec.command, ...args]]
      : [this.spec.command, [...args]];
    const child = spawn(cmd, argv, {
      cwd: this.spec.cwd,
      env: this.spec.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // With pdeathsig the children get their own process group, so a terminal Ctrl-C
      // reaches only the supervisor, which then stops them in reverse order; they still
      // die with it. Without pdeathsig they stay in our group so a group kill reaches them.
      detached: this.sup.pdeathsig !== undefined,
    });
    this.child = child;
    const spawned = new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new SupervisorError(`cannot start ${this.name} (${this.spec.command}): ${err.message}`, 'SPAWN_FAILED', { cause: err })));
    });
    this.exited = new Promise<void>((resolve) => child.once('exit', (code, signal) => { this.onExit(child, code, signal); resolve(); }));
    for (const [stream, which] of [[child.stdout!, 'stdout'], [child.stderr!, 'stderr']] as const) {
      forEachLine(stream, (line) => {
        this.tail.push(line);
        if (this.tail.length > OUTPUT_TAIL) this.tail.shift();
        if (this.linePattern?.test(line)) this.lineSeen = true;
        this.sup.write(this.name, line, which);
      });
    }
    await spawned;
    this.sup.logger.info({ process: this.name, pid: child.pid, attempt, args }, 'process started');
    await writePidRecord(this.sup.runDir, {
      name: this.name, pid: child.pid!, seq: this.seq, command: this.spec.program ?? this.spec.command,
      health: serialisableHealth(this.spec.health), startedAt: new Date().toISOString(),
    });
  }

  /** Poll health until healthy, the process exits, or the timeout passes. */
  async waitHealthy(timeoutMs: number): Promise<void> {
    const child = this.child;
    const deadline = Date.now() + timeoutMs;
    let gone = false;
    void this.exited.then(() => { gone = true; });
    while (!gone) {
      if (await probe(this.spec.health, this.lineSeen)) {
        if (gone || child !== this.child) break;
        this.state = 'healthy';
        this.healthySince = Date.now();
        this.emit('healthy');
        this.sup.logger.info({ process: this.name, pid: child?.pid }, 'process healthy');
        return;
      }
      if (Date.now() >= deadline) {
        this.state = 'unhealthy';
        throw new SupervisorError(
          `${this.name} did not become healthy within ${timeoutMs} ms (${describeHealth(this.spec.health)}); last output:\n${this.recentOutput}`,
          'NOT_HEALTHY');
      }
      await sleep(250);
    }
    throw new SupervisorError(
      `${this.name} exited while starting (exit ${child?.exitCode ?? child?.signalCode}); last output:\n${this.recentOutput}`,
      'EXITED_DURING_START');
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.child) return;
    this.pidFileRemoval = removePidRecord(this.sup.runDir, this.name, child.pid).catch(() => undefined);
    this.emit('exit', code, signal);
    if (this.stopping) {
      this.state = 'stopped';
      this.sup.logger.info({ process: this.name, pid: child.pid, code, signal }, 'process stopped');
      return;
    }
    this.state = 'exited';
    const failed = code !== 0;
    this.sup.logger[failed ? 'error' : 'warn']({ process: this.name, pid: child.pid, code, signal }, 'process exited unexpectedly');
    this.scheduleRestart(failed);
  }

  private scheduleRestart(failed: boolean): void {
    const policy = this.spec.restart ?? { when: 'never' };
    if (this.restartTimer) return;
    if (policy.when === 'never' || (policy.when === 'on-failure' && !failed)) return;
    if (this.healthySince && Date.now() - this.healthySince >= (policy.resetAfterMs ?? 60_000)) this.consecutiveCrashes = 0;
    this.healthySince = 0;
    if (this.consecutiveCrashes >= (policy.maxRestarts ?? 10)) {
      this.state = 'failed';
      this.sup.logger.error({ process: this.name, crashes: this.consecutiveCrashes }, 'giving up restarting process');
      this.emit('failed');
      return;
    }
    const delay = Math.min((policy.backoffMs ?? 1000) * 2 ** this.consecutiveCrashes, policy.maxBackoffMs ?? 30_000);
    this.consecutiveCrashes++;
    this.state = 'backoff';
    this.sup.logger.warn({ process: this.name, delayMs: delay, attempt: this.restarts + 1 }, 'restarting process after backoff');
    this.restartTimer = setTimeout(() => void this.restart(), delay);
  }

  private async restart(): Promise<void> {
    this.restartTimer = undefined;
    if (this.stopping) return;
    this.restarts++;
    try {
      await this.spawnOnce(this.restarts);
      await this.waitHealthy(this.spec.readyTimeoutMs ?? 60_000);
    } catch (err) {
      this.sup.logger.error({ process: this.name, err }, 'restart did not come up healthy');
      if (this.stopping) return;
      // Alive but unhealthy: kill it without `stopping`, so its exit handler schedules the
      // next try. Never spawned (bad args, spawn error): schedule directly.
      if (this.pid !== undefined) this.child?.kill('SIGKILL');
      else if (this.state !== 'backoff' && this.state !== 'failed') this.scheduleRestart(true);
    }
  }

  /** SIGTERM, wait stopTimeoutMs, SIGKILL. Resolves when the process is gone. */
  async stop(timeoutMs = this.spec.stopTimeoutMs ?? 15_000): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const child = this.child;
    if (!child || this.pid === undefined) {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((r) => { timer = setTimeout(() => r(true), timeoutMs); }),
    ]);
    clearTimeout(timer);
    if (killed) {
      this.sup.logger.warn({ process: this.name, pid: child.pid, timeoutMs }, 'process ignored SIGTERM; sending SIGKILL');
      child.kill('SIGKILL');
      await this.exited;
    }
    await this.pidFileRemoval;
  }

  async status(): Promise<ProcessStatus> {
    const pid = this.pid;
    return {
      name: this.name,
      pid,
      alive: pid !== undefined,
      healthy: pid === undefined ? false : await probe(this.spec.health, this.lineSeen),
      health: describeHealth(this.spec.health),
      state: this.state,
      restarts: this.restarts,
    };
  }
}

export class Supervisor {
  private readonly procs: ManagedProcess[] = [];
  private readonly write: (name: string, line: string, stream: 'stdout' | 'stderr') => void;
  private readonly pdeathsig: string | undefined;
  private width = 0;
  private stopPromise: Promise<void> | undefined;

  constructor(private readonly opts: SupervisorOptions) {
    const stdout = opts.stdout ?? process.stdout;
    const color = opts.color ?? defaultConsoleColor(stdout);
    const format = opts.format ?? defaultConsoleFormat(stdout);
    // Stacks in human lines follow the launcher's level: LOG_LEVEL=debug shows them.
    const stacks = opts.logger.isLevelEnabled?.('debug') === true;
    const colorOf = new Map<string, number>();
    this.write = opts.output ?? ((name, line) => {
      if (!colorOf.has(name)) colorOf.set(name, COLORS[colorOf.size % COLORS.length]!);
      if (format === 'human') {
        stdout.write(`${formatLine(name, line, { color, nameColor: colorOf.get(name), nameWidth: Math.max(this.width, MIN_NAME_WIDTH), stacks })}\n`);
        return;
      }
      const label = `[${name}]`.padEnd(this.width + 2);
      stdout.write(color ? `\x1b[${colorOf.get(name)}m${label}\x1b[0m ${line}\n` : `${label} ${line}\n`);
    });
    this.pdeathsig = process.platform === 'linux' && (opts.pdeathsig ?? true) ? findOnPath('setpriv') : undefined;
    if (process.platform === 'linux' && opts.pdeathsig !== false && !this.pdeathsig) {
      opts.logger.warn('setpriv not found: children may outlive a SIGKILLed supervisor; `adclick down` still stops them from pid files');
    }
  }

  get processes(): readonly ManagedProcess[] { return this.procs; }
  get(name: string): ManagedProcess | undefined { return this.procs.find((p) => p.name === name); }

  /** Record this process as the stack's supervisor (`<runDir>/supervisor.pid`). */
  async claim(): Promise<void> {
    await writeSupervisorPid(this.opts.runDir);
  }

  /** Start one service and wait for it to be healthy. On failure the process is stopped and the error rethrown. */
  async start(spec: ServiceSpec): Promise<ManagedProcess> {
    if (this.get(spec.name)) throw new SupervisorError(`a process named ${spec.name} is already supervised`, 'ALREADY_STARTED');
    const proc = new ManagedProcess(spec, this.procs.length, {
      runDir: this.opts.runDir, logger: this.opts.logger, write: this.write, pdeathsig: this.pdeathsig,
    });
    this.procs.push(proc);
    this.width = Math.max(this.width, spec.name.length);
    try {
      await proc.start();
    } catch (err) {
      await proc.stop(5000);
      throw err;
    }
    return proc;
  }

  /** Start in order; each must be healthy before the next starts. */
  async startAll(specs: readonly ServiceSpec[]): Promise<void> {
    for (const spec of specs) await this.start(spec);
  }

  async status(): Promise<ProcessStatus[]> {
    return Promise.all(this.procs.map((p) => p.status()));
  }

  /** Stop in reverse start order, then remove supervisor.pid. Idempotent. */
  stopAll(): Promise<void> {
    this.stopPromise ??= (async () => {
      for (const p of [...this.procs].reverse()) {
        try {
          await p.stop();
        } catch (err) {
          this.opts.logger.error({ process: p.name, err }, 'error while stopping process');
        }
      }
      await removeSupervisorPid(this.opts.runDir);
    })();
    return this.stopPromise;
  }

  /**
   * Resolve after SIGINT/SIGTERM/SIGHUP arrived and everything was stopped. A second
   * signal while stopping kills the children at once.
   */
  untilSignalled(): Promise<NodeJS.Signals> {
    return new Promise((resolve) => {
      const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
      let first: NodeJS.Signals | undefined;
      const handler = (sig: NodeJS.Signals) => {
        if (first) {
          this.opts.logger.warn({ signal: sig }, 'second signal: killing all children now');
          for (const p of this.procs) if (p.pid) process.kill(p.pid, 'SIGKILL');
          return;
        }
        first = sig;
        this.opts.logger.info({ signal: sig }, 'stopping the stack');
        void this.stopAll().then(() => {
          for (const s of signals) process.off(s, handler);
          resolve(sig);
        });
      };
      for (const s of signals) process.on(s, handler);
    });
  }
}

/**
 * Stop a stack run by another process, found through its pid files: ask the supervisor
 * to stop (it stops children in order), then SIGTERM/SIGKILL whatever is still listed.
 */
export async function stopFromPidFiles(runDir: string, logger: Logger, opts: { supervisorPid?: number; timeoutMs?: number } = {}): Promise<{ stopped: string[] }> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const stopped: string[] = [];
  const waitGone = async (pid: number, command: string | undefined, ms: number) => {
    const deadline = Date.now() + ms;
    while (isAlive(pid, command) && Date.now() < deadline) await sleep(100);
    return !isAlive(pid, command);
  };
  const supPid = opts.supervisorPid;
  if (supPid !== undefined && supPid !== process.pid && isAlive(supPid)) {
    process.kill(supPid, 'SIGTERM');
    if (await waitGone(supPid, undefined, timeoutMs)) stopped.push(`supervisor (pid ${supPid})`);
    else logger.warn({ pid: supPid }, 'supervisor did not stop in time; stopping its children directly');
  }
  for (const rec of (await readPidRecords(runDir)).reverse()) {
    const command = rec.command || undefined;
    if (!isAlive(rec.pid, command)) {
      await removePidRecord(runDir, rec.name, rec.pid);
      continue;
    }
    process.kill(rec.pid, 'SIGTERM');
    if (!(await waitGone(rec.pid, command, 15_000))) {
      logger.warn({ process: rec.name, pid: rec.pid }, 'process ignored SIGTERM; sending SIGKILL');
      try { process.kill(rec.pid, 'SIGKILL'); } catch { /* gone */ }
      await waitGone(rec.pid, command, 5000);
    }
    await removePidRecord(runDir, rec.name, rec.pid);
    stopped.push(`${rec.name} (pid ${rec.pid})`);
  }
  if (supPid !== undefined) await removeSupervisorPid(runDir, supPid);
  return { stopped };
}

/** Status of a stack run by another process, from its pid files. */
export async function statusFromPidFiles(runDir: string): Promise<ProcessStatus[]> {
  return Promise.all((await readPidRecords(runDir)).map(async (rec): Promise<ProcessStatus> => {
    const alive = isAlive(rec.pid, rec.command || undefined);
    return {
      name: rec.name,
      pid: rec.pid,
      alive,
      healthy: alive ? await probe(rec.health) : false,
      health: describeHealth(rec.health),
      state: 'unknown',
      restarts: 0,
      workers: alive ? sameExecutableChildren(rec.pid) : [],
    };
  }));
}

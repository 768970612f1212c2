// Handlers for `adclick up | down | status`; src/cli.ts parses argv and calls these.
import { loadConfig, type Config } from '../shared/config.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { isAlive, readSupervisorPid } from './pid-files.ts';
import { statusFromPidFiles, stopFromPidFiles, type ProcessStatus } from './supervisor.ts';
import { runDirOf, up, type UpOptions } from './up.ts';

export interface CommandDeps {
  readonly config?: Config;
  readonly logger?: Logger;
  /** Human output (default process.stdout). */
  readonly print?: (text: string) => void;
}

function resolveDeps(deps: CommandDeps) {
  const config = deps.config ?? loadConfig();
  return {
    config,
    logger: deps.logger ?? createLogger('stack', config.logLevel),
    print: deps.print ?? ((t: string) => process.stdout.write(t)),
  };
}

/**
 * Foreground: start everything, then wait for SIGINT/SIGTERM/SIGHUP (or `adclick down`,
 * which sends SIGTERM) and stop in reverse order. Returns the exit code.
 */
export async function upCommand(deps: CommandDeps & Partial<Pick<UpOptions, 'services' | 'output' | 'color'>> = {}): Promise<number> {
  const { config, logger, print } = resolveDeps(deps);
  let stack;
  try {
    stack = await up(config, { logger, print, services: deps.services, output: deps.output, color: deps.color });
  } catch (err) {
    logger.error({ err }, 'the stack did not come up');
    return 1;
  }
  const crashed = new Promise<string>((resolve) => {
    for (const p of stack.supervisor.processes) p.once('failed', () => resolve(p.name));
  });
  const outcome = await Promise.race([stack.supervisor.untilSignalled().then(() => undefined), crashed]);
  if (outcome !== undefined) {
    logger.error({ process: outcome }, 'a process kept crashing; stopping the stack');
    await stack.stop();
    return 1;
  }
  print('AdClick stack stopped.\n');
  return 0;
}

/** Stop a stack started by `adclick up` in another terminal (via pid files). */
export async function downCommand(deps: CommandDeps = {}): Promise<number> {
  const { config, logger, print } = resolveDeps(deps);
  const runDir = runDirOf(config);
  const supervisorPid = await readSupervisorPid(runDir);
  const { stopped } = await stopFromPidFiles(runDir, logger, { supervisorPid });
  print(stopped.length ? `stopped: ${stopped.join(', ')}\n` : 'nothing was running\n');
  return 0;
}

export function renderStatus(supervisor: { pid: number | undefined; alive: boolean }, rows: readonly ProcessStatus[]): string {
  const lines = [`supervisor  ${supervisor.pid === undefined ? 'not running' : `pid ${supervisor.pid} ${supervisor.alive ? 'alive' : 'DEAD (stale pid file)'}`}`];
  const w = Math.max(10, ...rows.map((r) => r.name.length));
  for (const r of rows) {
    const health = r.healthy === undefined ? 'unknown' : r.healthy ? 'healthy' : 'UNHEALTHY';
    lines.push(`${r.name.padEnd(w)}  pid ${String(r.pid ?? '-').padEnd(7)} ${r.alive ? 'alive' : 'DEAD '}  ${health.padEnd(9)}  (${r.health})`);
  }
  if (!rows.length) lines.push('no processes recorded');
  return lines.join('\n') + '\n';
}

/** Exit code 0 when every recorded process is alive and not unhealthy, 1 otherwise (3 when nothing runs). */
export async function statusCommand(deps: CommandDeps = {}): Promise<number> {
  const { config, print } = resolveDeps(deps);
  const runDir = runDirOf(config);
  const supPid = await readSupervisorPid(runDir);
  const rows = await statusFromPidFiles(runDir);
  const supAlive = supPid !== undefined && isAlive(supPid);
  print(renderStatus({ pid: supPid, alive: supAlive }, rows));
  if (!supAlive && rows.length === 0) return 3;
  return rows.every((r) => r.alive && r.healthy !== false) && supAlive ? 0 : 1;
}

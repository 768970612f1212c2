// Handlers for `adclick up | down | status`; src/cli.ts parses argv and calls these.
import { join } from 'node:path';
import { DEV_SIGNING_KEYS, loadConfig, parseSigningKeys, type Config } from '../shared/config.ts';
import { adminRequest } from '../shared/admin-client.ts';
import { statusFigures } from './status-figures.ts';
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
export async function upCommand(deps: CommandDeps & Partial<Pick<UpOptions, 'services' | 'output' | 'color'>> & { argv?: readonly string[] } = {}): Promise<number> {
  const { config, logger, print } = resolveDeps(deps);
  const argv = deps.argv ?? [];
  const rateArg = argv.find((a) => a.startsWith('--traffic-rate='));
  const trafficRate = argv.includes('--no-traffic') ? 0 : rateArg ? Number(rateArg.split('=')[1]) : 20;
  if (!Number.isFinite(trafficRate) || trafficRate < 0) {
    print('--traffic-rate must be a number of clicks per second (0 = none)\n');
    return 2;
  }
  let stack;
  try {
    stack = await up(config, { logger, print, services: deps.services, output: deps.output, color: deps.color });
  } catch (err) {
    logger.error({ err }, 'the stack did not come up');
    return 1;
  }
  const demo = new AbortController();
  if (!deps.services) await startDemo(config, logger, print, trafficRate, demo.signal);
  stack.supervisor.untilSignalled().then(() => demo.abort(), () => demo.abort());
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

/**
 * After a default `up`: a demo API key for advertiser 1, a ready-to-paste curl, and
 * light simulated traffic (bounded: 30 minutes) so the API has numbers to show.
 */
async function startDemo(config: Config, logger: Logger, print: (t: string) => void, rate: number, signal: AbortSignal): Promise<void> {
  const h = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  try {
    const { api_key } = await adminRequest(config, '/admin/keys', { advertiser_id: 1 });
    print(
      `  flink UI   http://${h}:${config.flinkUiPort}\n  query API  http://${h}:${config.queryPort}  (dashboard at /)\n\n` +
        `Demo API key for advertiser 1 (more: adclick keys create --advertiser <id>):\n` +
        `  curl -s -H 'Authorization: Bearer ${api_key}' http://${h}:${config.queryPort}/v1/campaigns\n\n`,
    );
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'could not create the demo API key');
  }
  if (rate <= 0) return;
  const [keyId, secret] = firstSigningKey(config);
  print(`Sending demo traffic: ${rate} clicks/s for 30 minutes (--no-traffic to skip, --traffic-rate=N to change)\n`);
  const { simulate } = await import('../simulate/simulator.ts');
  simulate({
    url: `http://${h}:${config.gatewayPort}`, keyId, secret, rate, durationMs: 30 * 60_000, batchSize: 20,
    ads: 500, campaigns: 50, advertisers: 5, signal, ledgerPath: join(config.dataDir, 'ledgers', `demo-${Date.now()}.ndjson`),
  }).then(
    (r) => logger.info({ accepted: r.ledgered, rejected: r.rejected }, 'demo traffic finished'),
    (err) => logger.warn({ err: (err as Error).message }, 'demo traffic stopped'),
  );
}

function firstSigningKey(config: Config): [string, string] {
  const [id, secret] = parseSigningKeys(config.signingKeys || DEV_SIGNING_KEYS).entries().next().value as [string, string];
  return [id, secret];
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
    const workers = r.workers?.length ? `  workers ${r.workers.length}: pids ${r.workers.join(', ')}` : '';
    lines.push(`${r.name.padEnd(w)}  pid ${String(r.pid ?? '-').padEnd(7)} ${r.alive ? 'alive' : 'DEAD '}  ${health.padEnd(9)}  (${r.health})${workers}`);
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
  if (supAlive) print(`\n${(await statusFigures(config)).join('\n')}\n`);
  if (!supAlive && rows.length === 0) return 3;
  return rows.every((r) => r.alive && r.healthy !== false) && supAlive ? 0 : 1;
}

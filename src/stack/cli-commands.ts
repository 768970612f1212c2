// Handlers for `adclick up | down | status`; src/cli.ts parses argv and calls these.
import { join } from 'node:path';
import { DEV_SIGNING_KEYS, flinkRestUrlFor, loadConfig, parseSigningKeys, type Config } from '../shared/config.ts';
import { adminRequest } from '../shared/admin-client.ts';
import { statusFigures } from './status-figures.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { isAlive, readSupervisorPid } from './pid-files.ts';
import { statusFromPidFiles, stopFromPidFiles, type ProcessStatus } from './supervisor.ts';
import { flinkStateFiles, readStopMarker, type StopMarker } from './checkpoints.ts';
import { runDirOf, up, type UpOptions } from './up.ts';
import { DEMO_ADVERTISER_ID, DEMO_CATALOGUE, DEMO_ID_FLOOR, demoRange } from '../simulate/demo-catalogue.ts';

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

export interface UpArgs {
  /** `--demo`: mint a demo API key and (unless trafficRate is 0) send demo traffic. */
  readonly demo: boolean;
  readonly trafficRate: number;
}

/** `adclick up [--demo [--no-traffic|--traffic-rate=N]]`; throws a message on bad input. */
export function parseUpArgs(argv: readonly string[]): UpArgs {
  let demo = false;
  let trafficRate = 20;
  for (const a of argv) {
    if (a === '--demo') demo = true;
    else if (a === '--no-traffic') trafficRate = 0;
    else if (a.startsWith('--traffic-rate=')) {
      trafficRate = Number(a.slice('--traffic-rate='.length));
      if (!Number.isFinite(trafficRate) || trafficRate < 0) throw new Error('--traffic-rate must be a number of clicks per second (0 = none)');
    } else throw new Error(`unknown option "${a}" (adclick up [--demo [--no-traffic|--traffic-rate=N]])`);
  }
  if (!demo && argv.some((a) => a === '--no-traffic' || a.startsWith('--traffic-rate='))) {
    throw new Error('--no-traffic and --traffic-rate only apply to the demo (adclick up --demo; npm start): `adclick up` alone sends no traffic');
  }
  return { demo, trafficRate };
}

/**
 * Foreground: start everything, then wait for SIGINT/SIGTERM/SIGHUP (or `adclick down`,
 * which sends SIGTERM) and stop in reverse order. Returns the exit code. Only with
 * `--demo` (what `npm start` passes) is a key minted and traffic sent.
 */
export async function upCommand(deps: CommandDeps & Partial<Pick<UpOptions, 'services' | 'output' | 'color'>> & { argv?: readonly string[] } = {}): Promise<number> {
  const { config, logger, print } = resolveDeps(deps);
  let args: UpArgs;
  try {
    args = parseUpArgs(deps.argv ?? []);
  } catch (err) {
    print(`${(err as Error).message}\n`);
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
  const bold = deps.color ?? process.stdout.isTTY === true;
  const banner = { urls: stackUrls(config), demo: undefined as DemoInfo | undefined };
  if (args.demo && !deps.services) banner.demo = await startDemo(config, logger, args.trafficRate, demo.signal);
  print(renderBanner(banner.urls, banner.demo, bold));
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

interface StackUrls {
  gateway: string;
  query: string;
  flinkUi: string;
}

interface DemoInfo {
  apiKey?: string;
  rate: number;
  ledgerPath?: string;
}

function stackUrls(config: Config): StackUrls {
  const h = config.host === '0.0.0.0' || config.host === '' ? '127.0.0.1' : config.host === '::' ? '[::1]' : config.host.includes(':') ? `[${config.host}]` : config.host;
  return { gateway: `http://${h}:${config.gatewayPort}`, query: `http://${h}:${config.queryPort}`, flinkUi: flinkRestUrlFor(config) };
}

/**
 * The end of start-up: where everything is, the demo key (if any) and what to type next,
 * set off from the log lines above it.
 */
export function renderBanner(urls: StackUrls, demo: DemoInfo | undefined, bold: boolean): string {
  const b = (t: string) => (bold ? `\x1b[1m${t}\x1b[0m` : t);
  const rule = '='.repeat(78);
  const lines = [
    '', rule, b('AdClick is running'),
    `  gateway     ${urls.gateway}   POST /v1/clicks, /v1/clicks/batch`,
    `  query API   ${urls.query}   GET /v1/campaigns ...`,
    `  dashboard   ${b(`${urls.query}/`)}`,
    `  flink UI    ${urls.flinkUi}`,
    '',
  ];
  if (demo) {
    lines.push(b('Demo') + ` (ids in the range reserved for the demo, above ${DEMO_ID_FLOOR}; they never mix with your own):`);
    lines.push(`  advertisers ${demoRange('advertisers')}, campaigns ${demoRange('campaigns')}, ads ${demoRange('ads')}`);
    if (demo.apiKey) {
      lines.push(`  demo API key for advertiser ${DEMO_ADVERTISER_ID} (sign in to the dashboard with it):`);
      lines.push(`    ${b(demo.apiKey)}`);
      lines.push(`  curl -s -H 'Authorization: Bearer ${demo.apiKey}' ${urls.query}/v1/campaigns`);
    } else lines.push('  (the demo API key could not be created; see the log above)');
    lines.push(demo.rate > 0
      ? `  demo traffic: ${demo.rate} clicks/s for 30 minutes, ledger ${demo.ledgerPath} (npm start -- --no-traffic to skip)`
      : '  no demo traffic (--no-traffic)');
    lines.push('');
  }
  lines.push(b('Next:'));
  if (!demo) lines.push('  ./bin/adclick keys create --advertiser 7             # an API key for advertiser 7 (shown once)');
  lines.push(
    '  ./bin/adclick simulate --rate 200 --duration 60s --batch 50 --ledger /tmp/run.ndjson   # signed traffic + ledger',
    '  ./bin/adclick verify --ledger /tmp/run.ndjson --wait 3m                     # compare the API with the ledger',
    '  ./bin/adclick status                                # every part, its pid and health',
    '  ./bin/adclick down                                  # stop (or Ctrl-C here)',
    rule, '',
  );
  return lines.join('\n');
}

/**
 * `--demo`: a demo API key for the demo advertiser and light simulated traffic (bounded:
 * 30 minutes) on the demo's reserved ids, so the dashboard has numbers to show.
 */
async function startDemo(config: Config, logger: Logger, rate: number, signal: AbortSignal): Promise<DemoInfo> {
  const info: DemoInfo = { rate };
  try {
    info.apiKey = (await adminRequest(config, '/admin/keys', { advertiser_id: DEMO_ADVERTISER_ID })).api_key;
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'could not create the demo API key');
  }
  if (rate <= 0) return info;
  const [keyId, secret] = firstSigningKey(config);
  const urls = stackUrls(config);
  info.ledgerPath = join(config.dataDir, 'ledgers', `demo-${Date.now()}.ndjson`);
  const { simulate } = await import('../simulate/simulator.ts');
  simulate({
    url: urls.gateway, keyId, secret, rate, durationMs: 30 * 60_000, batchSize: 20,
    ...DEMO_CATALOGUE, signal, ledgerPath: info.ledgerPath,
  }).then(
    (r) => logger.info({ accepted: r.ledgered, rejected: r.rejected }, 'demo traffic finished'),
    (err) => logger.warn({ err: (err as Error).message }, 'demo traffic stopped'),
  );
  return info;
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
  // After `adclick savepoint --stop` the job's process has exited 0 (not restarted: the
  // supervisor restarts on failure only), so it has no row; say so instead of nothing.
  const stopped = rows.some((r) => r.name === 'flink' && r.alive) ? undefined : readStopMarker(flinkStateFiles(config.dataDir).stopMarker);
  if (stopped) print(renderStoppedJob(stopped, supAlive));
  if (supAlive) print(`\n${(await statusFigures(config)).join('\n')}\n`);
  if (!supAlive && rows.length === 0) return 3;
  return !stopped && rows.every((r) => r.alive && r.healthy !== false) && supAlive ? 0 : 1;
}

/** The `adclick status` line for a job stopped by `adclick savepoint --stop`. */
export function renderStoppedJob(m: StopMarker, stackRunning: boolean): string {
  return stackRunning
    ? `flink       STOPPED with a savepoint at ${m.at} (adclick savepoint --stop): ${m.savepoint}\n` +
      '            clicks are still accepted into Kafka and counted once the job runs again; next: adclick down; upgrade; adclick up (starts from that savepoint)\n'
    : `flink job stopped with a savepoint at ${m.at}: ${m.savepoint}; \`adclick up\` starts from it\n`;
}

// `adclick savepoint [--stop]`: a savepoint of the running local Flink job through Flink's
// REST API, into <dataDir>/flink/savepoints, where the launcher finds it as a restore
// point (checkpoints.ts). With --stop it is stop-with-savepoint: the upgrade path.
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { flinkRestUrlFor, flinkRestUrlsFor, loadConfig, type Config } from '../shared/config.ts';
import { parseCommandLine, parseDuration, UsageError } from '../simulate/cli-options.ts';
import { flinkStateFiles, writeStopMarker } from './checkpoints.ts';

const HELP = `usage: adclick savepoint [--stop] [--timeout D]

Takes a savepoint of the running local Flink job (through its REST API) into
<ADCLICK_DATA_DIR>/flink/savepoints, waits until it is complete and prints its path.

  --stop        stop-with-savepoint: the job takes the savepoint, commits its output and
                ends (the rest of the stack keeps running; the gateway keeps accepting
                clicks into Kafka, counted once the job runs again). Then:
                  adclick down; upgrade or rebuild; adclick up
                and the job starts from this savepoint (the newest restore point).
  --timeout D   give up waiting after D (default 5m)

Without --stop the job keeps running and its next checkpoint becomes the newer restore
point; the savepoint stays as a fallback (savepoints are never removed automatically).

Exit status: 0 done; 1 failed (no running job, Flink refused or failed); 2 usage error.
`;

export interface SavepointDeps {
  readonly config?: Config;
  readonly fetch?: typeof fetch;
  readonly stdout?: { write(s: string): unknown };
  readonly stderr?: { write(s: string): unknown };
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
  /** Poll interval (default 500 ms). */
  readonly pollMs?: number;
}

export interface SavepointArgs {
  readonly stop: boolean;
  readonly timeoutMs: number;
  readonly help: boolean;
}

export function parseSavepointArgs(argv: readonly string[]): SavepointArgs {
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options: { stop: { type: 'boolean' }, timeout: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const timeoutMs = values.timeout === undefined ? 300_000 : parseDuration(values.timeout, 'timeout');
  if (!(timeoutMs > 0)) throw new UsageError('--timeout must be more than 0');
  return { stop: values.stop === true, timeoutMs, help: values.help === true };
}

/** The Flink REST base URL `adclick` talks to (ADCLICK_FLINK_REST_URL, else the local job's UI port). */
export function flinkRestUrlOf(config: Pick<Config, 'flinkRestUrl' | 'flinkBindHost' | 'flinkUiPort'>): string {
  return flinkRestUrlFor(config);
}

class Failure extends Error {}
/** The REST API did not answer at all (the job's JVM is gone, or never was there). */
class Unreachable extends Failure {
  constructor(message: string, readonly reason = message) { super(message); }
}
/** A 5xx: e.g. a JobManager between leaders (HA); the next one in the list may answer. */
class Unavailable extends Failure {}

interface JobOverview { jobs?: { jid: string; name?: string; state: string }[] }
interface OperationStatus {
  status?: { id?: string };
  operation?: { location?: string; 'failure-cause'?: { class?: string; 'stack-trace'?: string } };
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** A savepoint location as Flink reports it (`file:/…`) as a local path when it is one. */
export function localPath(location: string): string {
  if (/^file:/.test(location)) {
    try {
      return fileURLToPath(new URL(location));
    } catch {
      return location.replace(/^file:(\/\/)?/, '');
    }
  }
  return location;
}

export async function runSavepoint(argv: readonly string[], deps: SavepointDeps = {}): Promise<number> {
  const out = deps.stdout ?? process.stdout;
  const err = deps.stderr ?? process.stderr;
  const args = parseCommandLine<SavepointArgs>(() => parseSavepointArgs(argv), HELP, out, err);
  if (typeof args === 'number') return args;
  const config = deps.config ?? loadConfig();
  const doFetch = deps.fetch ?? fetch;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = deps.now ?? Date.now;
  const pollMs = deps.pollMs ?? 500;
  const bases = flinkRestUrlsFor(config);
  let base = bases[0]!;
  const files = flinkStateFiles(config.dataDir);
  const deadline = now() + args.timeoutMs;

  const call = async <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> => {
    let res: Response;
    try {
      res = await doFetch(`${base}${path}`, {
        method, signal: AbortSignal.timeout(15_000),
        ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      });
    } catch (e) {
      throw new Unreachable(`cannot reach the Flink REST API at ${base} (${(e as Error).message}); is the stack up? (adclick status)`, (e as Error).message);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const errors = (json as { errors?: unknown[] } | undefined)?.errors;
      const why = Array.isArray(errors) ? errors.map((x) => String(x).split('\n')[0]).join('; ') : text.slice(0, 300);
      const Err = res.status >= 500 ? Unavailable : Failure;
      throw new Err(`Flink REST ${method} ${path}: HTTP ${res.status}${why ? `: ${why}` : ''}`);
    }
    if (json === undefined) throw new Failure(`Flink REST ${method} ${path}: not JSON: ${text.slice(0, 200)}`);
    return json as T;
  };

  // Under HA every JobManager's REST API answers (ADCLICK_FLINK_REST_URL lists them all): the
  // first that does carries the whole operation, so the savepoint's status is asked where it was triggered.
  const overview = async (): Promise<JobOverview> => {
    const why: string[] = [];
    for (const b of bases) {
      base = b;
      try {
        return await call<JobOverview>('GET', '/jobs/overview');
      } catch (e) {
        if (bases.length === 1 || !(e instanceof Unreachable || e instanceof Unavailable)) throw e;
        why.push(`${b} (${e instanceof Unreachable ? e.reason : e.message})`);
      }
    }
    throw new Unreachable(`cannot reach the Flink REST API at any of ${why.join(', ')}; is the stack up? (adclick status)`);
  };

  try {
    const jobs = (await overview()).jobs ?? [];
    const running = jobs.filter((j) => j.state === 'RUNNING');
    const job = running.length > 1 ? running.filter((j) => j.name === 'adclick-click-aggregation') : running;
    if (job.length !== 1) {
      throw new Failure(running.length === 0
        ? `no RUNNING Flink job at ${base} (jobs: ${jobs.map((j) => `${j.jid} ${j.state}`).join(', ') || 'none'}); is the stack up? (adclick status)`
        : `more than one RUNNING Flink job at ${base}: ${running.map((j) => `${j.jid} ${j.name ?? ''}`).join(', ')}`);
    }
    const jid = job[0]!.jid;
    const target = pathToFileURL(files.savepointDir).href;
    // Flink names a savepoint directory savepoint-<first 6 of the job id>-<random>.
    const ours = () => new Set(readdirSafe(files.savepointDir).filter((n) => n.startsWith(`savepoint-${jid.slice(0, 6)}-`) && existsSync(join(files.savepointDir, n, '_metadata'))));
    const existing = ours();
    out.write(`${args.stop ? 'stopping' : 'savepoint of'} Flink job ${jid} ${args.stop ? 'with a savepoint ' : ''}into ${files.savepointDir} ...\n`);
    const trigger = args.stop
      ? await call<{ 'request-id'?: string }>('POST', `/jobs/${encodeURIComponent(jid)}/stop`, { targetDirectory: target, drain: false })
      : await call<{ 'request-id'?: string }>('POST', `/jobs/${encodeURIComponent(jid)}/savepoints`, { 'target-directory': target, 'cancel-job': false });
    const requestId = trigger['request-id'];
    if (!requestId) throw new Failure(`Flink did not return a request id for the savepoint: ${JSON.stringify(trigger)}`);

    let location: string | undefined;
    let unreachableSince: number | undefined;
    for (;;) {
      let s: OperationStatus;
      try {
        s = await call<OperationStatus>('GET', `/jobs/${encodeURIComponent(jid)}/savepoints/${encodeURIComponent(requestId)}`);
      } catch (e) {
        // With --stop the job ends as soon as the savepoint is complete, and the local job's
        // JVM exits with it (taking its REST API along) before the result can be polled: the
        // savepoint is then the new, complete one on disk (its _metadata is written last).
        if (!(e instanceof Unreachable) || !args.stop) throw e;
        const fresh = [...ours()].filter((n) => !existing.has(n));
        if (fresh.length === 1) {
          location = join(files.savepointDir, fresh[0]!);
          break;
        }
        unreachableSince ??= now();
        if (fresh.length > 1 || now() - unreachableSince > 10_000 || now() >= deadline) {
          throw new Failure(`${e.message}; the job's REST API went away before the savepoint was reported complete, and ${fresh.length === 0 ? 'no new savepoint is' : 'more than one new savepoint is'} in ${files.savepointDir}`);
        }
        await sleep(pollMs);
        continue;
      }
      unreachableSince = undefined;
      if (s.status?.id === 'COMPLETED') {
        const cause = s.operation?.['failure-cause'];
        if (cause) {
          const first = (cause['stack-trace'] ?? cause.class ?? 'unknown cause').split('\n').find((l) => l.trim()) ?? 'unknown cause';
          throw new Failure(`the savepoint failed: ${first.trim()}${args.stop ? ' (the job keeps running)' : ''}`);
        }
        location = s.operation?.location;
        if (!location) throw new Failure(`Flink reported the savepoint complete without a location: ${JSON.stringify(s)}`);
        break;
      }
      if (now() >= deadline) throw new Failure(`the savepoint did not complete within ${Math.round(args.timeoutMs / 1000)} s (request ${requestId}; it may still complete: see the Flink UI at ${base})`);
      await sleep(pollMs);
    }
    const path = localPath(location);
    out.write(`savepoint: ${path}\n`);
    if (!args.stop) {
      out.write('The job keeps running; its next checkpoint is the newer restore point. To upgrade, use `adclick savepoint --stop`.\n');
      return 0;
    }
    // Stop-with-savepoint: the job ends (FINISHED) right after the savepoint; its JVM then
    // exits 0 and the supervisor does not restart it (restart policy: on failure only).
    let state = 'RUNNING';
    while (now() < deadline) {
      try {
        state = (await call<JobOverview>('GET', '/jobs/overview')).jobs?.find((j) => j.jid === jid)?.state ?? 'GONE';
      } catch {
        state = 'GONE'; // the job's JVM exited, and its REST API with it
      }
      if (state !== 'RUNNING' && state !== 'CANCELLING' && state !== 'RESTARTING' && state !== 'CREATED') break;
      await sleep(pollMs);
    }
    if (state === 'RUNNING') throw new Failure(`the savepoint ${path} is complete but job ${jid} is still RUNNING after ${Math.round(args.timeoutMs / 1000)} s`);
    writeStopMarker(files.stopMarker, { savepoint: path, jobId: jid, at: new Date(now()).toISOString() });
    out.write(`The Flink job stopped (${state === 'GONE' ? 'its process exited' : state}); the gateway keeps accepting clicks into Kafka, counted once the job runs again.\n` +
      'Next: adclick down; upgrade or rebuild (a changed flink/ is rebuilt by `adclick up`); adclick up   # starts from this savepoint\n');
    return 0;
  } catch (e) {
    if (!(e instanceof Failure)) throw e;
    err.write(`adclick savepoint: ${e.message}\n`);
    return 1;
  }
}

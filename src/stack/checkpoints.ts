// Finding the checkpoint or savepoint the Flink job (re)starts from, falling back past ones
// that starts failed from, and cleaning up job directories no restore can need.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export interface CheckpointRef {
  /** `<dir>/<jobId>/chk-<n>`: what `--restore-from` takes */
  readonly path: string;
  readonly jobId: string;
  readonly id: number;
  /** mtime of its `_metadata` (written last, when the checkpoint completed) */
  readonly completedAtMs: number;
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The newest completed checkpoint under `dir` (layout `<dir>/<jobId>/chk-<n>/_metadata`),
 * or undefined. Only directories with `_metadata` count: an in-progress or aborted
 * checkpoint has none. Newest = latest `_metadata` mtime, then highest n — a restored
 * job gets a new job id, so n alone does not order checkpoints across runs.
 */
export function latestCheckpoint(dir: string): CheckpointRef | undefined {
  let best: CheckpointRef | undefined;
  for (const jobId of entries(dir)) {
    for (const chk of entries(join(dir, jobId))) {
      const m = /^chk-(\d+)$/.exec(chk);
      if (!m) continue;
      let mtime: number;
      try {
        const st = statSync(join(dir, jobId, chk, '_metadata'));
        if (!st.isFile()) continue;
        mtime = st.mtimeMs;
      } catch {
        continue;
      }
      const ref: CheckpointRef = { path: join(dir, jobId, chk), jobId, id: Number(m[1]), completedAtMs: mtime };
      if (!best || ref.completedAtMs > best.completedAtMs || (ref.completedAtMs === best.completedAtMs && ref.id > best.id)) best = ref;
    }
  }
  return best;
}

/** A completed checkpoint or savepoint the job can start from. */
export interface RestorePoint {
  readonly path: string;
  readonly kind: 'checkpoint' | 'savepoint';
  /** Checkpoints: the job directory holding it; savepoints: undefined. */
  readonly jobId?: string;
  readonly completedAtMs: number;
}

function metadataMtime(dir: string): number | undefined {
  try {
    const st = statSync(join(dir, '_metadata'));
    return st.isFile() && st.size > 0 ? st.mtimeMs : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Every completed checkpoint (`<checkpointDir>/<jobId>/chk-<n>/_metadata`) and savepoint
 * (`<savepointDir>/savepoint-*\/_metadata`), newest first (by `_metadata` mtime, then n).
 */
export function restorePoints(checkpointDir: string, savepointDir?: string): RestorePoint[] {
  const out: (RestorePoint & { n: number })[] = [];
  for (const jobId of entries(checkpointDir)) {
    for (const chk of entries(join(checkpointDir, jobId))) {
      const m = /^chk-(\d+)$/.exec(chk);
      const at = m ? metadataMtime(join(checkpointDir, jobId, chk)) : undefined;
      if (m && at !== undefined) out.push({ path: join(checkpointDir, jobId, chk), kind: 'checkpoint', jobId, completedAtMs: at, n: Number(m[1]) });
    }
  }
  if (savepointDir) {
    for (const sp of entries(savepointDir)) {
      const at = sp.startsWith('savepoint-') ? metadataMtime(join(savepointDir, sp)) : undefined;
      if (at !== undefined) out.push({ path: join(savepointDir, sp), kind: 'savepoint', completedAtMs: at, n: 0 });
    }
  }
  out.sort((a, b) => b.completedAtMs - a.completedAtMs || b.n - a.n);
  return out.map(({ n: _n, ...p }) => p);
}

/** What the launcher remembers between starts of the job (`<dataDir>/flink/restore-state.json`). */
interface RestoreState {
  /** The restore point the last start used, and how many starts in a row used it. */
  last?: { path: string; starts: number };
  /** Restore points given up on: started from this many times without a newer checkpoint completing. */
  failed: string[];
}

function readState(file: string): RestoreState {
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as Partial<RestoreState>;
    return { last: s.last && typeof s.last.path === 'string' && Number.isInteger(s.last.starts) ? s.last : undefined, failed: Array.isArray(s.failed) ? s.failed.filter((p) => typeof p === 'string') : [] };
  } catch {
    return { failed: [] };
  }
}

function writeState(file: string, s: object): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(s));
  renameSync(tmp, file);
}

export interface RestoreChoice {
  /** Where to start from; undefined = a fresh start (see `exhausted`). */
  readonly point?: RestorePoint;
  /** How many starts in a row (this one included) use `point`. */
  readonly starts: number;
  /** Restore points skipped this time because earlier starts from them never got further. */
  readonly skipped: readonly RestorePoint[];
  /**
   * Restore points exist but every one was given up on. Starting fresh would lose the dedup
   * and window state (counts would no longer be exact), so the caller must not start.
   */
  readonly exhausted: boolean;
  /** Job directories removed (all their checkpoints older than every restore point kept). */
  readonly removed: readonly string[];
  /** The bookkeeping could not be written (fallback cannot work until it can); the start goes on. */
  readonly stateError?: string;
}

export interface RestoreOptions {
  readonly checkpointDir: string;
  readonly savepointDir?: string;
  /** Where the bookkeeping lives. */
  readonly stateFile: string;
  /**
   * Starts from the same restore point without a newer checkpoint completing after which
   * it is given up on (default 2). A restore that works completes a checkpoint within one
   * interval, after which the newer checkpoint is chosen and the count starts over.
   */
  readonly maxStarts?: number;
  /** Restore points whose job directories are kept (the newest N usable ones; default 3). */
  readonly keep?: number;
  /** Clock (tests). */
  readonly now?: () => number;
}

/**
 * Picks the restore point for the next start of the job, newest first, skipping any that
 * starts already failed from (a corrupt newest checkpoint would otherwise crash-loop), and
 * removes checkpoint job directories that no restore can need any more (each restart makes
 * a new job id; without this the disk grows with every restart). Call it right before each
 * start, while no job runs on these directories.
 *
 * Falling back to an older restore point replays from Kafka what came after it; the sink's
 * rows have deterministic identities and count-ordered versions, so re-emitted results
 * collapse (docs/operations.md lists the limits). Savepoints are the user's: never removed.
 */
export function chooseRestorePoint(o: RestoreOptions): RestoreChoice {
  const maxStarts = o.maxStarts ?? 2;
  const now = o.now ?? Date.now;
  const state = readState(o.stateFile);
  const points = restorePoints(o.checkpointDir, o.savepointDir);
  // Given-up marks of points that no longer exist are forgotten.
  const failed = new Set(state.failed.filter((p) => points.some((x) => x.path === p)));
  const skipped: RestorePoint[] = [];
  let point: RestorePoint | undefined;
  for (const p of points) {
    if (failed.has(p.path)) {
      skipped.push(p);
      continue;
    }
    if (state.last?.path === p.path && state.last.starts >= maxStarts) {
      failed.add(p.path);
      skipped.push(p);
      continue;
    }
    point = p;
    break;
  }
  const starts = point && state.last?.path === point.path ? state.last.starts + 1 : point ? 1 : 0;
  let stateError: string | undefined;
  try {
    // When exhausted, `last` is kept: nothing was started, and the marks stay for the operator.
    writeState(o.stateFile, { last: point ? { path: point.path, starts } : points.length ? state.last : undefined, failed: [...failed] });
  } catch (err) {
    stateError = (err as Error).message;
  }

  // Job directories holding one of the newest `keep` usable points, and the chosen one's.
  const keepJobs = new Set<string>();
  for (const p of points.filter((x) => !failed.has(x.path)).slice(0, o.keep ?? 3)) if (p.jobId) keepJobs.add(p.jobId);
  if (point?.jobId) keepJobs.add(point.jobId);
  const removed: string[] = [];
  // Only when something is kept: cleaning up never leaves the job nothing to start from.
  if (keepJobs.size > 0) {
    const oldestKept = Math.min(...points.filter((p) => p.jobId !== undefined && keepJobs.has(p.jobId)).map((p) => p.completedAtMs));
    for (const jobId of entries(o.checkpointDir)) {
      if (keepJobs.has(jobId)) continue;
      const dir = join(o.checkpointDir, jobId);
      // A job directory goes only when all its checkpoints are older than every kept one.
      // A restore runs in NO_CLAIM mode (Flink's default; JobConfig sets no claim mode), so
      // the restored job's first checkpoint is a full one: a newer job never references
      // files in an older job's directory once it has completed a checkpoint.
      const own = points.filter((p) => p.jobId === jobId);
      if (own.some((p) => p.completedAtMs >= oldestKept)) continue;
      try {
        const st = statSync(dir);
        if (!st.isDirectory()) continue;
        // No completed checkpoint: a run that died early. Leave very fresh ones alone.
        if (own.length === 0 && now() - st.mtimeMs < 60_000) continue;
        rmSync(dir, { recursive: true, force: true });
        removed.push(dir);
      } catch {
        /* raced with something else: leave it */
      }
    }
  }
  return { point, starts, skipped, exhausted: points.length > 0 && point === undefined, removed, stateError };
}

/** Where the launcher keeps the job's restore bookkeeping, under `<dataDir>/flink/`. */
export function flinkStateFiles(dataDir: string) {
  const flink = join(resolve(dataDir), 'flink');
  return {
    checkpointDir: join(flink, 'checkpoints'),
    savepointDir: join(flink, 'savepoints'),
    stateFile: join(flink, 'restore-state.json'),
    /** Written by `adclick savepoint --stop` once the job ended; removed by the next start of the job. */
    stopMarker: join(flink, 'stopped-with-savepoint.json'),
  };
}

/** What `adclick savepoint --stop` leaves behind for `adclick status`. */
export interface StopMarker {
  readonly savepoint: string;
  readonly jobId: string;
  readonly at: string;
}

export function readStopMarker(file: string): StopMarker | undefined {
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as Partial<StopMarker>;
    return typeof m.savepoint === 'string' && typeof m.jobId === 'string' && typeof m.at === 'string' ? (m as StopMarker) : undefined;
  } catch {
    return undefined;
  }
}

export function writeStopMarker(file: string, m: StopMarker): void {
  writeState(file, m);
}

export function clearStopMarker(file: string): boolean {
  try {
    rmSync(file);
    return true;
  } catch {
    return false;
  }
}

// `<dataDir>/run/` layout: `<name>.pid` (the pid, plain) and `<name>.json` (what `status`
// and `down` need to check it from another process), plus `supervisor.pid`.
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { HealthCheck } from './health.ts';

export const SUPERVISOR_NAME = 'supervisor';

export interface PidRecord {
  readonly name: string;
  readonly pid: number;
  /** Start order; `down` stops the highest first. */
  readonly seq: number;
  /** argv[0] of the process, checked against /proc/<pid>/cmdline so a recycled pid is not killed. */
  readonly command: string;
  readonly health?: HealthCheck;
  readonly startedAt: string;
}

/**
 * Create `dir` (and missing parents) as 0700: the data and run directories hold every
 * tenant's clicks, API key hashes and the admin token. A directory this user owns that
 * others can enter (made before this rule, or under a lax umask) is tightened; a shared one
 * (sticky, like /tmp) or another user's is left alone.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await stat(dir);
  if ((st.mode & 0o077) !== 0 && (st.mode & 0o1000) === 0 && st.uid === process.getuid?.()) await chmod(dir, 0o700);
}

export async function writePidRecord(runDir: string, rec: PidRecord): Promise<void> {
  await ensurePrivateDir(runDir);
  await writeFile(join(runDir, `${rec.name}.json`), JSON.stringify(rec, null, 2) + '\n');
  await writeFile(join(runDir, `${rec.name}.pid`), `${rec.pid}\n`);
}

export async function removePidRecord(runDir: string, name: string, pid?: number): Promise<void> {
  // Only remove files that still describe this pid: a restarted child may already have
  // written its own.
  if (pid !== undefined) {
    const current = await readPid(join(runDir, `${name}.pid`));
    if (current !== undefined && current !== pid) return;
  }
  await rm(join(runDir, `${name}.pid`), { force: true });
  await rm(join(runDir, `${name}.json`), { force: true });
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const n = Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export function readSupervisorPid(runDir: string): Promise<number | undefined> {
  return readPid(join(runDir, `${SUPERVISOR_NAME}.pid`));
}

export async function writeSupervisorPid(runDir: string, pid = process.pid): Promise<void> {
  await ensurePrivateDir(runDir);
  await writeFile(join(runDir, `${SUPERVISOR_NAME}.pid`), `${pid}\n`);
}

export async function removeSupervisorPid(runDir: string, pid = process.pid): Promise<void> {
  if ((await readSupervisorPid(runDir)) === pid) await rm(join(runDir, `${SUPERVISOR_NAME}.pid`), { force: true });
}

/** Child records in start order. A `.pid` without `.json` is still returned (command unknown). */
export async function readPidRecords(runDir: string): Promise<PidRecord[]> {
  let files: string[];
  try {
    files = await readdir(runDir);
  } catch {
    return [];
  }
  const out: PidRecord[] = [];
  for (const f of files.filter((x) => x.endsWith('.pid'))) {
    const name = basename(f, '.pid');
    if (name === SUPERVISOR_NAME) continue;
    const pid = await readPid(join(runDir, f));
    if (pid === undefined) continue;
    let rec: PidRecord = { name, pid, seq: Number.MAX_SAFE_INTEGER, command: '', startedAt: '' };
    try {
      const meta = JSON.parse(await readFile(join(runDir, `${name}.json`), 'utf8')) as PidRecord;
      if (meta.pid === pid) rec = meta;
    } catch { /* keep the bare record */ }
    out.push(rec);
  }
  return out.sort((a, b) => a.seq - b.seq);
}

/** kill(pid, 0) plus, on Linux, a check that the process still runs `command`. */
export function isAlive(pid: number, command?: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (!command || process.platform !== 'linux') return true;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    // A zombie (exited, not yet reaped) has an empty cmdline: not alive for our purposes.
    if (argv.length === 0 || argv[0] === '') return false;
    return argv.some((a) => a === command || basename(a) === basename(command));
  } catch {
    return false;
  }
}

/**
 * Live children of `pid` that run the same executable (e.g. the node:cluster workers of a
 * gateway, not tsx's esbuild helper), in pid order. Linux only; elsewhere, or when /proc
 * cannot be read, an empty list.
 */
export function sameExecutableChildren(pid: number): number[] {
  if (process.platform !== 'linux') return [];
  const exe = (p: number) => basename(readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')[0] ?? '');
  try {
    const own = exe(pid);
    const kids = new Set<number>();
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      for (const c of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ')) if (c.trim()) kids.add(Number(c));
    }
    return [...kids].filter((c) => {
      try {
        return own !== '' && exe(c) === own;
      } catch {
        return false; // gone meanwhile
      }
    }).sort((a, b) => a - b);
  } catch {
    return [];
  }
}

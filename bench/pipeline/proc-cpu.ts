// CPU time of whole process trees from /proc, for "CPU µs per click per process": a
// service is its supervised pid plus every live descendant (gateway workers, tsx's
// esbuild helper). /proc/<pid>/stat's utime+stime cover all threads of a process (JVM
// GC and compiler threads, libuv's pool, librdkafka's threads); cutime+cstime add the
// children it already reaped, so a worker that exited mid-step is not lost, and no time
// is counted twice (a child's time moves to its parent only when it is reaped).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSec: number | undefined;

/** USER_HZ (almost always 100). */
export function clockTicksPerSec(): number {
  if (ticksPerSec === undefined) {
    try {
      ticksPerSec = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSec = 100;
    }
  }
  return ticksPerSec;
}

/** utime+stime+cutime+cstime of one process in ticks; 0 when it is gone. */
function ownTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may hold spaces): state is field 3.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
}

/** pid and all its live descendants. */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    try {
      for (const task of readdirSync(`/proc/${p}/task`)) {
        for (const c of readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').split(' ')) if (c.trim()) stack.push(Number(c));
      }
    } catch { /* gone meanwhile */ }
  }
  return out;
}

/** CPU seconds used so far by the tree under pid. */
export function treeCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  return processTree(pid).reduce((a, p) => a + ownTicks(p), 0) / clockTicksPerSec();
}

export type CpuSnapshot = Record<string, number>;

/** CPU seconds per named process tree (a missing pid counts 0). */
export function snapshot(pids: Record<string, number | undefined>): CpuSnapshot {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, treeCpuSeconds(pid)]));
}

/** µs of CPU per click per process between two snapshots. */
export function microsPerClick(before: CpuSnapshot, after: CpuSnapshot, clicks: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(after)) out[k] = clicks > 0 ? ((after[k]! - (before[k] ?? 0)) * 1e6) / clicks : NaN;
  return out;
}

// Every line a child process prints on stdout and stderr, in arrival order, for tests that
// wait for a log line or show the child's output when it failed.
import type { ChildProcess } from 'node:child_process';

export function collectLines(proc: ChildProcess): string[] {
  const lines: string[] = [];
  const collect = (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean));
  proc.stdout?.on('data', collect);
  proc.stderr?.on('data', collect);
  return lines;
}

// The Flink job jar: built with Maven from flink/ (and proto/) when missing or older than
// its sources, so `adclick up` after a code change runs the new job and otherwise skips
// the build.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../shared/logger.ts';

export const flinkJarPath = (repoRoot: string) => join(repoRoot, 'flink', 'target', 'adclick-flink-job.jar');

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return readdirSync(path).reduce((m, name) => Math.max(m, newestMtime(join(path, name))), st.mtimeMs);
}

export function flinkJarIsStale(repoRoot: string): boolean {
  const jar = flinkJarPath(repoRoot);
  if (!existsSync(jar)) return true;
  const sources = Math.max(
    newestMtime(join(repoRoot, 'flink', 'src', 'main')),
    newestMtime(join(repoRoot, 'flink', 'pom.xml')),
    newestMtime(join(repoRoot, 'proto')),
  );
  return sources > statSync(jar).mtimeMs;
}

export async function ensureFlinkJar(repoRoot: string, logger: Logger): Promise<string> {
  const jar = flinkJarPath(repoRoot);
  if (!flinkJarIsStale(repoRoot)) return jar;
  const log = logger.child({ module: 'flink-jar' });
  log.info('building the Flink job jar (mvn package; first time downloads dependencies)');
  const t0 = Date.now();
  const out: string[] = [];
  const code = await new Promise<number>((resolve, reject) => {
    const p = spawn('mvn', ['-B', '-q', '-DskipTests', 'package'], { cwd: join(repoRoot, 'flink'), stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer) => {
      out.push(b.toString());
      if (out.length > 200) out.shift();
    };
    p.stdout.on('data', keep);
    p.stderr.on('data', keep);
    p.on('error', reject);
    p.on('exit', (c) => resolve(c ?? 1));
  });
  if (code !== 0 || !existsSync(jar)) throw new Error(`building the Flink job failed (mvn exit ${code}):\n${out.join('').slice(-4000)}`);
  log.info({ ms: Date.now() - t0, jar }, 'Flink job jar built');
  return jar;
}

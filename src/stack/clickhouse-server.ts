// A throwaway ClickHouse server (Debian's clickhouse-server) in a temp dir on a free port,
// for server-mode tests and chaos scenarios.
// Starts a throwaway ClickHouse server (whatever `clickhouse-server` is installed, e.g.
// Debian's 18.16) on free loopback ports with its data in a temp dir, and removes it
// again — also when the test fails or the process exits early.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engineEnv } from './jvm-env.ts';

export interface ClickHouseServer {
  readonly url: string;
  readonly dir: string;
  readonly pid: number;
  stop(): Promise<void>;
}

const CANDIDATES = ['/usr/sbin/clickhouse-server', '/usr/bin/clickhouse-server', '/usr/bin/clickhouse', '/usr/local/bin/clickhouse'];

export function findClickHouseBinary(): string[] | null {
  for (const c of CANDIDATES) {
    if (!existsSync(c)) continue;
    return c.endsWith('clickhouse') ? [c, 'server'] : [c];
  }
  return null;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/**
 * The part of a clickhouse-server 18.16 config.xml every server of ours shares (the single
 * test server here, each replica of the cluster form): directories under `dir`, caches of
 * `cacheBytes`, UTC, users.xml, no mlock, 50 concurrent queries.
 */
export function serverBodyXml(dir: string, cacheBytes: number): string {
  return `  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <user_files_path>${dir}/user_files/</user_files_path>
  <format_schema_path>${dir}/format_schemas/</format_schema_path>
  <mark_cache_size>${cacheBytes}</mark_cache_size>
  <uncompressed_cache_size>${cacheBytes}</uncompressed_cache_size>
  <timezone>UTC</timezone>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mlock_executable>false</mlock_executable>
  <max_concurrent_queries>50</max_concurrent_queries>`;
}

/** users.xml quota element without limits (18.16 requires a quota per user). */
export const UNLIMITED_QUOTA_XML = '  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>';

export async function startClickHouseServer(opts: { timeoutMs?: number } = {}): Promise<ClickHouseServer> {
  const bin = findClickHouseBinary();
  if (!bin) throw new Error(`no clickhouse server binary found (looked at ${CANDIDATES.join(', ')})`);
  const dir = mkdtempSync(join(tmpdir(), 'adclick-ch-'));
  const [http, tcp] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'config.xml'), `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>${dir}/server.log</log><errorlog>${dir}/server.err.log</errorlog></logger>
  <http_port>${http}</http_port>
  <tcp_port>${tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
${serverBodyXml(dir, 64 * 1024 * 1024)}
</yandex>
`);
  writeFileSync(join(dir, 'users.xml'), `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
${UNLIMITED_QUOTA_XML}
</yandex>
`);
  const args = [...bin.slice(1), `--config-file=${join(dir, 'config.xml')}`];
  const child = spawn(bin[0]!, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: engineEnv() });
  live.add(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => { live.delete(child); resolve(); }));
  const url = `http://127.0.0.1:${http}`;

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`clickhouse-server exited with ${child.exitCode}: ${stderr}`);
    }
    try {
      const r = await fetch(`${url}/ping`);
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`clickhouse-server did not answer /ping within ${opts.timeoutMs ?? 30_000} ms: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, dir, pid: child.pid!, stop };
}

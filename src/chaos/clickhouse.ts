// ClickHouse server mode for the chaos run: the test helper starts a throwaway server
// (Debian's 18.16 when installed); this wrapper can stop it and start it again on the
// same data directory and ports, so "ClickHouse down for a while" is a real outage.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { findClickHouseBinary, startClickHouseServer, type ClickHouseServer } from '../stack/clickhouse-server.ts';
import { isAlive, signal, sleep } from './util.ts';

export interface ChaosClickHouse {
  readonly url: string;
  pid(): number | undefined;
  /** Stop the server (SIGTERM, then SIGKILL after 10 s). */
  down(): Promise<void>;
  /** Start it again on the same config and wait for /ping. */
  up(): Promise<void>;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => { for (const c of live) c.kill('SIGKILL'); });

export async function startChaosClickHouse(): Promise<ChaosClickHouse> {
  const first: ClickHouseServer = await startClickHouseServer();
  let current: { pid: number; child?: ChildProcess } = { pid: first.pid };
  const ping = async () => {
    try {
      return (await fetch(`${first.url}/ping`)).ok;
    } catch {
      return false;
    }
  };
  const down = async () => {
    const pid = current.pid;
    signal(pid, 'SIGTERM');
    const deadline = Date.now() + 10_000;
    while (isAlive(pid) && Date.now() < deadline) await sleep(100);
    if (isAlive(pid)) signal(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
  };
  const up = async () => {
    const bin = findClickHouseBinary()!;
    const child = spawn(bin[0]!, [...bin.slice(1), `--config-file=${join(first.dir, 'config.xml')}`], { cwd: first.dir, stdio: 'ignore' });
    live.add(child);
    child.once('exit', () => live.delete(child));
    current = { pid: child.pid!, child };
    const deadline = Date.now() + 60_000;
    while (!(await ping())) {
      if (child.exitCode !== null) throw new Error(`clickhouse-server exited with ${child.exitCode} on restart`);
      if (Date.now() > deadline) throw new Error('clickhouse-server did not come back within 60 s');
      await sleep(100);
    }
  };
  return {
    url: first.url,
    pid: () => (isAlive(current.pid) ? current.pid : undefined),
    down, up,
    async stop() {
      if (current.child) {
        await down();
      }
      await first.stop(); // kills the first child if still running, removes the data dir
    },
  };
}

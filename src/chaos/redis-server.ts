// A throwaway redis-server of our own on a free loopback port (never the system one on
// 6379), so the Redis scenario can kill it and start it again on the same port.
import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort, signal, sleep } from './util.ts';

export interface ChaosRedis {
  readonly url: string;
  readonly port: number;
  pid(): number | undefined;
  /** kill -9 it (no persistence: it comes back empty, as a fresh failover would). */
  kill(): Promise<void>;
  /** Start it again on the same port and wait for PING. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => { for (const c of live) c.kill('SIGKILL'); });

async function ping(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export async function startChaosRedis(): Promise<ChaosRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const start = async () => {
    const c = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'], { stdio: 'ignore' });
    child = c;
    live.add(c);
    exited = new Promise<void>((r) => c.once('exit', () => { live.delete(c); r(); }));
    c.once('error', () => undefined);
    const deadline = Date.now() + 10_000;
    while (!(await ping(url))) {
      if (c.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`);
      await sleep(100);
    }
  };
  const kill = async () => {
    if (child?.pid && child.exitCode === null) {
      signal(child.pid, 'SIGKILL');
      await exited;
    }
  };
  await start();
  return {
    url, port,
    pid: () => (child && child.exitCode === null && child.signalCode === null ? child.pid : undefined),
    kill, start, stop: kill,
  };
}

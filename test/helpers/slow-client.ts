// Clients that never finish a request, for the HTTP timeout tests of both ports.
import { connect } from 'node:net';

/** Rejects when `p` has not settled within `ms`. */
export async function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Sends `head`, then `drip` every 100 ms (never idle, never done), and resolves with how
 * long the server took to close the connection; fails after `limitMs`.
 */
export function msUntilServerCloses(port: number, head: string, drip: string, limitMs: number, what: string): Promise<number> {
  const t0 = Date.now();
  return within(limitMs, new Promise<number>((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(head);
      const timer = setInterval(() => s.write(drip), 100);
      s.on('close', () => {
        clearInterval(timer);
        resolve(Date.now() - t0);
      });
    });
    s.on('error', () => undefined);
    s.on('data', () => undefined);
  }), what);
}

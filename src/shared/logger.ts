import { pino, type Logger } from 'pino';

export type { Logger };

/** Root logger of one service. Children add `module`; errors go under `err`. */
export function createLogger(service: string, level = 'info'): Logger {
  return pino({ level, base: { service, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}

import { pino, type DestinationStream, type Logger } from 'pino';
import { defaultConsoleColor, defaultConsoleFormat, humanDestination } from '../stack/console-format.ts';

export type { Logger };

export interface LoggerOptions {
  /**
   * `human`: one readable line per event, for a person at a terminal; `json`: pino's
   * lines. Default: human when `stdout` is a TTY. A supervised child writes to a pipe, so
   * it keeps JSON and the supervisor formats it (or leaves it raw when it is not on a TTY).
   */
  readonly format?: 'human' | 'json';
  /** Where the lines go (default process.stdout). */
  readonly stdout?: { write(text: string): unknown; readonly isTTY?: boolean };
  /** ANSI colours in human lines (default: stdout is a TTY and NO_COLOR unset). */
  readonly color?: boolean;
}

/** Root logger of one service. Children add `module`; errors go under `err`. */
export function createLogger(service: string, level = 'info', opts: LoggerOptions = {}): Logger {
  const options = { level, base: { service, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  const stdout = opts.stdout ?? process.stdout;
  const format = opts.format ?? (defaultConsoleFormat(stdout) === 'human' ? 'human' : 'json');
  if (format === 'json') return opts.stdout ? pino(options, opts.stdout as DestinationStream) : pino(options);
  // Synchronous on purpose: a terminal write is, and a line must not be lost on exit.
  return pino(options, humanDestination(service, {
    color: opts.color ?? defaultConsoleColor(stdout),
    nameColor: 1,
    stacks: level === 'debug' || level === 'trace',
    write: (text) => stdout.write(text),
  }));
}

// Secrets given on a command line are visible to every local user (`ps`, /proc/<pid>/cmdline)
// and kept in shell history, so commands that need one also read it from a file or stdin.
import { readFile } from 'node:fs/promises';

async function readAll(stream: AsyncIterable<string | Buffer>): Promise<string> {
  let s = '';
  for await (const chunk of stream) s += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
  return s;
}

/**
 * The secret in `source`: a file path, or `-` for stdin. Its first line, trimmed (a trailing
 * newline from `echo` or an editor is not part of it). Errors name the source, never content.
 */
export async function readSecret(source: string, what: string, stdin: AsyncIterable<string | Buffer> = process.stdin): Promise<string> {
  let text: string;
  try {
    text = source === '-' ? await readAll(stdin) : await readFile(source, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${what} from ${source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const secret = (text.split(/\r?\n/, 1)[0] ?? '').trim();
  if (!secret) throw new Error(`no ${what} in ${source === '-' ? 'stdin' : source}`);
  return secret;
}

// Linux network namespaces, veth pairs, a bridge and nftables cuts, driven through Debian's
// iproute2 (`ip`) and `nft`: the pieces that make each cluster node a host of its own on
// one machine. Every function names exactly the object it touches; nothing here lists and
// deletes by pattern (other people's namespaces may share this machine).
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Our nftables table inside a cut-off namespace; deleting it is the heal. */
export const CUT_TABLE = 'adclick_cut';

async function run(cmd: string, args: readonly string[]): Promise<string> {
  try {
    return (await execFileP(cmd, [...args], { timeout: 30_000 })).stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string; code?: unknown };
    if (e.code === 'ENOENT') throw new Error(`${cmd} not found: the cluster form needs iproute2 (ip) and nftables (nft) — apt-get install iproute2 nftables`, { cause: err });
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
}

const ip = (...args: string[]) => run('ip', args);

/** Tolerates "already gone": cleanup must finish even after a half-done create or a crash. */
function gone(err: unknown): boolean {
  return /Cannot find device|No such file|does not exist|Cannot open network namespace|No such process/i.test(String((err as Error).message));
}

export async function listNamespaces(): Promise<string[]> {
  return (await ip('netns', 'list')).split('\n').map((l) => l.split(/\s+/)[0]!).filter(Boolean);
}

export async function listLinks(): Promise<string[]> {
  return (await ip('-o', 'link', 'show')).split('\n').map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1]).filter((n): n is string => !!n);
}

export async function createBridge(name: string, addressCidr: string): Promise<void> {
  await ip('link', 'add', name, 'type', 'bridge');
  await ip('addr', 'add', addressCidr, 'dev', name);
  await ip('link', 'set', name, 'up');
}

export async function deleteLink(name: string): Promise<void> {
  try {
    await ip('link', 'del', name);
  } catch (err) {
    if (!gone(err)) throw err;
  }
}

export async function createNamespace(ns: string): Promise<void> {
  await ip('netns', 'add', ns);
  await ip('-n', ns, 'link', 'set', 'lo', 'up');
}

/**
 * A veth pair from the bridge into the namespace; inside it is `eth0` with `addressCidr`.
 * No default route: the node reaches its subnet (the other nodes and the host's bridge
 * address) and nothing else.
 */
export async function attachToBridge(o: { ns: string; hostVeth: string; bridge: string; addressCidr: string }): Promise<void> {
  await ip('link', 'add', o.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', o.ns);
  await ip('link', 'set', o.hostVeth, 'master', o.bridge);
  await ip('link', 'set', o.hostVeth, 'up');
  await ip('-n', o.ns, 'addr', 'add', o.addressCidr, 'dev', 'eth0');
  await ip('-n', o.ns, 'link', 'set', 'eth0', 'up');
}

/** Deleting a namespace also deletes its end of the veth, and so the pair and its rules. */
export async function deleteNamespace(ns: string): Promise<void> {
  try {
    await ip('netns', 'del', ns);
  } catch (err) {
    if (!gone(err)) throw err;
  }
}

/** Processes whose network namespace is `ns` (empty when it does not exist). */
export async function namespacePids(ns: string): Promise<number[]> {
  try {
    return (await ip('netns', 'pids', ns)).split(/\s+/).filter(Boolean).map(Number);
  } catch (err) {
    if (gone(err)) return [];
    throw err;
  }
}

/**
 * Cut the node off: drop every packet in and out except loopback (no reject: a real cut
 * answers nothing, so peers find out by timeouts as they would in a data centre). With
 * `peers`, only traffic to and from those addresses is dropped (the node still answers
 * the host's clients): a partition between brokers, not between a broker and its clients.
 */
export async function cutOff(ns: string, peers?: readonly string[]): Promise<void> {
  await heal(ns);
  const match = (dir: 'saddr' | 'daddr') => (peers?.length ? `ip ${dir} { ${peers.join(', ')} } drop;` : '');
  const policy = peers?.length ? 'accept' : 'drop';
  const ruleset = `table inet ${CUT_TABLE} {
  chain input { type filter hook input priority -10; policy ${policy}; iif "lo" accept; ${match('saddr')} }
  chain output { type filter hook output priority -10; policy ${policy}; oif "lo" accept; ${match('daddr')} }
}
`;
  await new Promise<void>((resolve, reject) => {
    const child = execFile('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { timeout: 30_000 }, (err, _out, stderr) =>
      err ? reject(new Error(`nft in ${ns} failed: ${String(stderr).trim() || err.message}`, { cause: err })) : resolve());
    // A child that never ran (nft missing) closes its stdin: the callback above reports why.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(ruleset);
  });
}

export async function heal(ns: string): Promise<void> {
  try {
    await ip('netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', CUT_TABLE);
  } catch (err) {
    // No table to delete is healed already; nft itself missing is not ("exec of "nft" failed:
    // No such file or directory" would otherwise pass for a missing table).
    const message = String((err as Error).message);
    if (/exec of "?nft"? failed/i.test(message) || !/No such file|does not exist/i.test(message)) throw err;
  }
}

/** The namespace's nftables ruleset as text ('' when none or no namespace). */
export async function nftRuleset(ns: string): Promise<string> {
  try {
    return await ip('netns', 'exec', ns, 'nft', 'list', 'ruleset');
  } catch (err) {
    if (gone(err)) return '';
    throw err;
  }
}

/** Synchronous forms for process 'exit' hooks, where no promise runs any more. */
export function deleteNamespaceSync(ns: string): void {
  try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 }); } catch { /* gone or never made */ }
}

export function deleteLinkSync(name: string): void {
  try { execFileSync('ip', ['link', 'del', name], { stdio: 'ignore', timeout: 10_000 }); } catch { /* gone or never made */ }
}

export function namespacePidsSync(ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] })
      .split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

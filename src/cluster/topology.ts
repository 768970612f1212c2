// The cluster form's network: one bridge on the host and one namespace per node, each with
// its own address in a private /24. What is about to be created is written to a state file
// first, so a crash at any point (even SIGKILL) leaves a record `adclick cluster down` or a
// test's cleanup can finish from.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  attachToBridge, createBridge, createNamespace, deleteLink, deleteLinkSync, deleteNamespace, deleteNamespaceSync,
  namespacePids, namespacePidsSync,
} from './netns.ts';

const execFileP = promisify(execFile);

export interface ClusterNode {
  /** e.g. `kafka-1` */
  readonly name: string;
  readonly netns: string;
  readonly address: string;
  /** The host's end of the node's veth pair, enslaved to the bridge. */
  readonly hostVeth: string;
}

export interface Topology {
  /** Short tag in every object name, so two topologies (a test and `cluster up`) can coexist. */
  readonly tag: string;
  readonly subnet: string;
  readonly prefixLength: number;
  readonly bridge: string;
  /** The host's address on the bridge: how host processes reach the nodes. */
  readonly bridgeAddress: string;
  readonly nodes: readonly ClusterNode[];
}

export interface NetworkState {
  readonly topology: Topology;
  /** Appended BEFORE each create, so a crash between record and create costs a no-op delete. */
  readonly bridge?: string;
  readonly namespaces: readonly string[];
}

const TAG = /^[a-z0-9]{1,6}$/;

/** Private IPv4 /24s only (RFC 1918): this code must never put traffic on anybody's real network. */
export function parseSubnet(subnet: string): { base: [number, number, number]; prefixLength: number } {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(subnet.trim());
  const o = m ? [Number(m[1]), Number(m[2]), Number(m[3])] as [number, number, number] : undefined;
  const isPrivate = !!o && o.every((x) => x <= 255) && (o[0] === 10 || (o[0] === 172 && o[1] >= 16 && o[1] <= 31) || (o[0] === 192 && o[1] === 168));
  if (!o || !isPrivate) throw new Error(`ADCLICK_CLUSTER_SUBNET must be a private IPv4 /24 such as 10.231.0.0/24 (10/8, 172.16/12 or 192.168/16), got "${subnet}"`);
  return { base: o, prefixLength: 24 };
}

/** Names and addresses (pure): bridge `.1`, nodes `.11` upwards in the given order. */
export function planTopology(o: { tag: string; subnet: string; nodes: readonly string[] }): Topology {
  if (!TAG.test(o.tag)) throw new Error(`topology tag must be 1-6 of [a-z0-9], got "${o.tag}"`);
  if (o.nodes.length === 0 || o.nodes.length > 200) throw new Error(`a topology has 1-200 nodes, got ${o.nodes.length}`);
  const { base, prefixLength } = parseSubnet(o.subnet);
  const addr = (host: number) => `${base.join('.')}.${host}`;
  // Interface names are at most 15 bytes: adk-<tag(6)>-<n(3)> fits.
  return {
    tag: o.tag,
    subnet: o.subnet.trim(),
    prefixLength,
    bridge: `adk-${o.tag}`,
    bridgeAddress: addr(1),
    nodes: o.nodes.map((name, i) => {
      if (!/^[a-z0-9-]{1,32}$/.test(name)) throw new Error(`node name must be [a-z0-9-]{1,32}, got "${name}"`);
      return { name, netns: `adclick-${o.tag}-${name}`, address: addr(11 + i), hostVeth: `adk-${o.tag}-${i + 1}` };
    }),
  };
}

export async function readNetworkState(stateFile: string): Promise<NetworkState | undefined> {
  try {
    return JSON.parse(await readFile(stateFile, 'utf8')) as NetworkState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read the cluster network state ${stateFile}: ${(err as Error).message}`, { cause: err });
  }
}

async function writeState(stateFile: string, state: NetworkState): Promise<void> {
  await mkdir(dirname(stateFile), { recursive: true, mode: 0o700 });
  const tmp = `${stateFile}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, stateFile);
}

/** Refuse a subnet the host already routes (someone else's network, or another cluster's). */
async function assertSubnetFree(t: Topology): Promise<void> {
  const routes = (await execFileP('ip', ['-4', 'route', 'show', 'root', t.subnet])).stdout;
  const hits = (await execFileP('ip', ['-4', '-o', 'addr', 'show'])).stdout.split('\n')
    .filter((l) => l.includes(` ${t.subnet.replace(/\.0\/24$/, '.')}`));
  if (routes.trim() || hits.length) {
    throw new Error(`${t.subnet} is already in use on this host (${(routes.trim() || hits[0]!.trim()).split('\n')[0]}); ` +
      'run `adclick cluster down` if it is an earlier cluster of ours, or set ADCLICK_CLUSTER_SUBNET to another private /24');
  }
}

/**
 * Create the bridge and every node's namespace. A leftover state file (an earlier run that
 * crashed) is torn down first. On any failure everything created so far is removed again.
 */
export async function createNetwork(t: Topology, stateFile: string): Promise<NetworkState> {
  if (existsSync(stateFile)) await destroyNetwork(stateFile);
  await assertSubnetFree(t);
  let state: NetworkState = { topology: t, namespaces: [] };
  try {
    state = { ...state, bridge: t.bridge };
    await writeState(stateFile, state);
    await createBridge(t.bridge, `${t.bridgeAddress}/${t.prefixLength}`);
    for (const n of t.nodes) {
      state = { ...state, namespaces: [...state.namespaces, n.netns] };
      await writeState(stateFile, state);
      await createNamespace(n.netns);
      await attachToBridge({ ns: n.netns, hostVeth: n.hostVeth, bridge: t.bridge, addressCidr: `${n.address}/${t.prefixLength}` });
    }
    return state;
  } catch (err) {
    await destroyNetwork(stateFile).catch(() => undefined);
    throw err;
  }
}

export interface DestroyResult {
  readonly namespaces: string[];
  readonly links: string[];
  /** Processes still inside our namespaces that had to be killed. */
  readonly killed: number[];
}

/**
 * Stop what still runs inside our namespaces (SIGTERM, then SIGKILL after `graceMs`),
 * delete them (their veths and rules go with them) and the bridge, then the state file.
 * Only what the state file names is touched.
 */
export async function destroyNetwork(stateFile: string, graceMs = 5000): Promise<DestroyResult> {
  const state = await readNetworkState(stateFile);
  if (!state) return { namespaces: [], links: [], killed: [] };
  const killed: number[] = [];
  for (const ns of state.namespaces) {
    const pids = await namespacePids(ns);
    if (!pids.length) continue;
    killed.push(...pids);
    for (const pid of pids) signal(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && (await namespacePids(ns)).length) await new Promise((r) => setTimeout(r, 200));
    for (const pid of await namespacePids(ns)) signal(pid, 'SIGKILL');
  }
  for (const ns of state.namespaces) await deleteNamespace(ns);
  // A veth whose namespace creation failed half-way may still hang on the bridge.
  const links = [...state.topology.nodes.map((n) => n.hostVeth), ...(state.bridge ? [state.bridge] : [])];
  for (const l of links) await deleteLink(l);
  await rm(stateFile, { force: true });
  return { namespaces: [...state.namespaces], links, killed };
}

/** Synchronous teardown for process 'exit' hooks (SIGKILLs at once: no time to wait). */
export function destroyNetworkSync(stateFile: string): void {
  let state: NetworkState;
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as NetworkState;
  } catch {
    return;
  }
  for (const ns of state.namespaces) for (const pid of namespacePidsSync(ns)) signal(pid, 'SIGKILL');
  for (const ns of state.namespaces) deleteNamespaceSync(ns);
  for (const n of state.topology.nodes) deleteLinkSync(n.hostVeth);
  if (state.bridge) deleteLinkSync(state.bridge);
  rmSync(stateFile, { force: true });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try { process.kill(pid, sig); } catch { /* already gone */ }
}

// Summarise a V8 .cpuprofile (node --cpu-prof): self time per function and per category
// (our code by file, node_modules by package, node internals, GC, idle).
import { readFileSync } from 'node:fs';

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  startTime: number;
  nodes: CpuNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  byCategory: { name: string; selfMs: number; pct: number }[];
  topFunctions: { name: string; where: string; selfMs: number; pct: number }[];
}

function category(url: string, fn: string): string {
  if (fn === '(idle)') return '(idle)';
  if (fn === '(garbage collector)') return '(garbage collector)';
  if (fn === '(program)') return '(program: native/V8, not attributed)';
  if (!url) return `(native) ${fn || 'anonymous'}`.slice(0, 60);
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return `npm: ${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (url.startsWith('node:')) return `node: ${url.slice(5).split('/')[0]}`;
  const src = url.indexOf('/src/');
  if (src >= 0) return `src/${url.slice(src + 5)}`;
  return url.replace(/^file:\/\//, '');
}

/**
 * `window` (µs of CLOCK_MONOTONIC, the clock of V8 profile timestamps and of
 * process.hrtime in any process on the machine) keeps only the samples taken in it.
 */
export function summarizeCpuProfile(file: string, top = 25, window?: { fromUs: number; toUs: number }): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const d = p.timeDeltas[i] ?? 0;
    t += d;
    if (window && (t < window.fromUs || t > window.toUs)) continue;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + d);
  }
  let total = 0;
  const cats = new Map<string, number>();
  const fns = new Map<string, { name: string; where: string; us: number }>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    total += us;
    const cat = category(url, functionName);
    cats.set(cat, (cats.get(cat) ?? 0) + us);
    const where = url ? `${category(url, functionName)}:${lineNumber + 1}` : '';
    const key = `${functionName}|${where}`;
    const f = fns.get(key) ?? { name: functionName || '(anonymous)', where, us: 0 };
    f.us += us;
    fns.set(key, f);
  }
  const pct = (us: number) => Math.round((1000 * us) / total) / 10;
  return {
    totalMs: Math.round(total / 1000),
    byCategory: [...cats].sort((a, b) => b[1] - a[1]).slice(0, 20).map(([name, us]) => ({ name, selfMs: Math.round(us / 1000), pct: pct(us) })),
    topFunctions: [...fns.values()].sort((a, b) => b.us - a.us).slice(0, top).map((f) => ({ name: f.name, where: f.where, selfMs: Math.round(f.us / 1000), pct: pct(f.us) })),
  };
}

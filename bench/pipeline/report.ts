// The pipeline benchmark's printed tables: one per traffic shape, plus the summary lines
// (highest held rate, its ratio to the broker baseline, freshness at half of it).
import type { BaselineResult } from './broker-baseline.ts';
import type { StepResult, Trend } from './step.ts';

export const PROCESSES = ['gateway', 'kafka', 'flink', 'serving', 'redis', 'generator'] as const;

const int = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : Math.round(v).toLocaleString('en-US'));
const trendCell = (t: Trend, digits = 0) => (t.first === null ? '-' : `${t.first.toFixed(digits)}→${t.last!.toFixed(digits)}${t.growing ? ' ↑' : ''}`);

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

export function stepTable(steps: readonly StepResult[]): string {
  const head = ['step', 'offered/s', 'accepted/s', 'batch p99 ms', 'sink lag', 'wm delay s', 'exact', 'held', ...PROCESSES.map((p) => `${p} µs`), 'total µs'];
  const rows = steps.map((s) => {
    const us = PROCESSES.map((p) => s.cpuMicrosPerClick[p]);
    const pipeline = PROCESSES.filter((p) => p !== 'generator').reduce((a, p) => a + (s.cpuMicrosPerClick[p] ?? 0), 0);
    return [
      s.kind === 'freshness' ? `½ held ${s.rate}` : String(s.rate), int(s.rate), int(s.acceptedPerSec), int(s.generator.batchP99Ms),
      trendCell(s.sinkLag), trendCell(s.watermarkDelayS, 1), s.exact ? 'yes' : 'NO', s.kind === 'freshness' ? '' : s.held ? 'yes' : 'NO',
      ...us.map(int), `${int(pipeline)} (+${int(s.cpuMicrosPerClick.generator)})`,
    ];
  });
  return table(head, rows);
}

export function shapeReport(shape: string, steps: readonly StepResult[], baseline: BaselineResult | null): string {
  const ladder = steps.filter((s) => s.kind === 'ladder');
  const held = ladder.filter((s) => s.held).at(-1);
  const failed = ladder.find((s) => !s.held);
  const fresh = steps.find((s) => s.kind === 'freshness')?.freshness;
  const out = [`\n${shape} traffic${shape === 'hot' ? ' (one ad takes ~50% of all clicks)' : ' (Zipf over the ads)'}`, stepTable(steps)];
  out.push(`highest held rate: ${held ? `${held.rate.toLocaleString('en-US')} clicks/s` : 'none'}${held && baseline ? ` = ${(held.rate / baseline.recordsPerSec).toFixed(3)} × the broker baseline (${int(baseline.recordsPerSec)} records/s)` : ''}`);
  if (failed) out.push(`ladder stopped at ${failed.rate.toLocaleString('en-US')} clicks/s: ${failed.why.join('; ')}`);
  if (fresh) {
    out.push(`accepted → visible at half the held rate (${fresh.accepted} probes): ${['1m', '5m', '1h'].map((g) => `${g} p50 ${int(fresh.p50Ms[g])} ms / p99 ${int(fresh.p99Ms[g])} ms`).join('; ')}; 1m window end → final p50 ${int(fresh.finalP50Ms)} ms / p99 ${int(fresh.finalP99Ms)} ms`);
  }
  const top = ladder[0]?.generator.topAdShare;
  if (shape === 'hot' && top !== undefined) out.push(`hot ad's share of the first step's clicks: ${(top * 100).toFixed(1)}%`);
  const admin = steps.reduce((a, s) => a + s.adminUnanswered, 0);
  if (admin) out.push(`serving /metrics unanswered (2 s timeout) ${admin} times during the steps`);
  const probes = new Map<string, { probes: number; unanswered: number; maxMs: number }>();
  for (const s of steps) {
    for (const [name, f] of Object.entries(s.responsiveness?.endpoints ?? {})) {
      const a = probes.get(name) ?? { probes: 0, unanswered: 0, maxMs: 0 };
      probes.set(name, { probes: a.probes + f.probes, unanswered: a.unanswered + f.unanswered, maxMs: Math.max(a.maxMs, Number.isFinite(f.maxMs) ? f.maxMs : 0) });
    }
  }
  if (probes.size) out.push(`health/admin probes (1/s, 2 s timeout): ${[...probes].map(([n, a]) => `${n} ${a.unanswered}/${a.probes} unanswered, max ${Math.round(a.maxMs)} ms`).join('; ')}`);
  const loopMax = Math.max(...steps.map((s) => s.responsiveness?.servingLoopMaxMs ?? 0));
  if (loopMax > 0) out.push(`serving event-loop delay, largest reported in any step: ${loopMax} ms`);
  return out.join('\n');
}

export function baselineLine(b: BaselineResult | null, error: string | null): string {
  if (!b) return `broker baseline: ${error ? `FAILED (${error.split('\n')[0]})` : 'skipped'}`;
  return `broker baseline (ProducerPerformance, ${b.records.toLocaleString('en-US')} records of ${b.recordBytes} B, ${b.partitions} partitions, acks=all): ${int(b.recordsPerSec)} records/s, ${b.mbPerSec} MB/s, avg latency ${b.avgLatencyMs} ms`;
}

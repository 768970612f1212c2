// Responsiveness of every part under load (issue 17: "no part stops answering health or
// admin requests"): during a step, each health/admin endpoint is asked once a second,
// one request in flight per endpoint, 2 s timeout. Reported per endpoint: probes,
// unanswered (timeout, refused, non-2xx), p50/p99/max response time.
import { pct } from '../freshness-probe.ts';

export interface EndpointFigures { probes: number; unanswered: number; p50Ms: number; p99Ms: number; maxMs: number }

export interface Responsiveness {
  endpoints: Record<string, EndpointFigures>;
  /** Largest event-loop delay the serving process reported (prom-client's nodejs_eventloop_lag_max_seconds) during the step. */
  servingLoopMaxMs: number | null;
}

const TIMEOUT_MS = 2000;
const EVERY_MS = 1000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function startAdminProbe(urls: Record<string, string>): { stop(): Promise<Responsiveness> } {
  let running = true;
  const figures = new Map<string, { times: number[]; unanswered: number }>();
  const loops = Object.entries(urls).map(async ([name, url]) => {
    const f = { times: [] as number[], unanswered: 0 };
    figures.set(name, f);
    while (running) {
      const t0 = performance.now();
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
        await res.arrayBuffer();
        if (res.ok) f.times.push(performance.now() - t0);
        else f.unanswered++;
      } catch {
        f.unanswered++;
      }
      const spent = performance.now() - t0;
      if (running && spent < EVERY_MS) await sleep(EVERY_MS - spent);
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      const endpoints: Record<string, EndpointFigures> = {};
      for (const [name, f] of figures) {
        endpoints[name] = {
          probes: f.times.length + f.unanswered, unanswered: f.unanswered,
          p50Ms: f.times.length ? pct(f.times, 50) : NaN, p99Ms: f.times.length ? pct(f.times, 99) : NaN, maxMs: f.times.length ? Math.max(...f.times) : NaN,
        };
      }
      return { endpoints, servingLoopMaxMs: null };
    },
  };
}

/** One line per endpoint for the report. */
export function responsivenessLines(r: Responsiveness): string[] {
  const lines = Object.entries(r.endpoints).map(([name, f]) =>
    `    ${name}: ${f.probes} probes, ${f.unanswered} unanswered (2 s), p50 ${fmt(f.p50Ms)} ms, p99 ${fmt(f.p99Ms)} ms, max ${fmt(f.maxMs)} ms`);
  if (r.servingLoopMaxMs !== null) lines.push(`    serving event-loop delay, largest reported: ${r.servingLoopMaxMs} ms`);
  return lines;
}

const fmt = (v: number) => (Number.isFinite(v) ? String(Math.round(v)) : '-');

// Key pipeline figures for `adclick status`, read from outside like an operator would:
// the gateway's and the serving process's Prometheus endpoints and Flink's REST API.
// Every source is optional: a part that does not answer shows as "n/a".
import type { Config } from '../shared/config.ts';

async function getText(url: string, timeoutMs = 1500): Promise<string | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return res.ok ? await res.text() : null;
  } catch {
    return null;
  }
}

async function getJson<T>(url: string): Promise<T | null> {
  const text = await getText(url);
  try {
    return text === null ? null : (JSON.parse(text) as T);
  } catch {
    return null;
  }
}

/** Sum of every sample of `name` whose labels contain all of `match` (Prometheus text format). */
export function sumMetric(text: string, name: string, match: Record<string, string> = {}): number | null {
  let total: number | null = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    const labels = line.slice(name.length).match(/^\{([^}]*)\}/)?.[1] ?? '';
    if (!Object.entries(match).every(([k, v]) => labels.includes(`${k}="${v}"`))) continue;
    const value = Number(line.trim().split(/\s+/).at(-1));
    if (Number.isFinite(value)) total = (total ?? 0) + value;
  }
  return total;
}

interface FlinkJobs { jobs: { jid: string; name: string; state: string; 'start-time': number }[] }
interface FlinkCheckpoints {
  counts: { completed: number; failed: number; in_progress: number };
  latest: { completed: { id: number; end_to_end_duration: number; latest_ack_timestamp: number } | null };
}

export async function statusFigures(config: Config, now = Date.now()): Promise<string[]> {
  const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  const [gw, serving, jobs] = await Promise.all([
    getText(`http://${host}:${config.gatewayPort}/metrics`),
    getText(`http://127.0.0.1:${config.adminPort}/metrics`),
    getJson<FlinkJobs>(`http://${host}:${config.flinkUiPort}/jobs/overview`),
  ]);
  const n = (v: number | null) => (v === null ? 'n/a' : Math.round(v).toLocaleString('en-US'));
  const lines: string[] = [];
  if (gw) {
    const all = sumMetric(gw, 'adclick_gateway_clicks_total');
    const acc = sumMetric(gw, 'adclick_gateway_clicks_total', { outcome: 'accepted' });
    const dup = sumMetric(gw, 'adclick_gateway_clicks_total', { outcome: 'duplicate' });
    const rejected = all === null ? null : all - (acc ?? 0) - (dup ?? 0);
    lines.push(`gateway   clicks accepted ${n(acc)}, duplicates answered ${n(dup)}, rejected ${n(rejected)}, awaiting Kafka ack ${n(sumMetric(gw, 'adclick_gateway_kafka_inflight'))}, breaker ${sumMetric(gw, 'adclick_gateway_kafka_breaker_open') ? 'OPEN' : 'closed'}`);
  } else lines.push('gateway   n/a (metrics not reachable)');
  const job = jobs?.jobs.find((j) => j.state === 'RUNNING') ?? jobs?.jobs[0];
  if (job) {
    const cp = await getJson<FlinkCheckpoints>(`http://${host}:${config.flinkUiPort}/jobs/${job.jid}/checkpoints`);
    const last = cp?.latest.completed;
    lines.push(`flink     job ${job.state}${cp ? `, checkpoints ${cp.counts.completed} completed / ${cp.counts.failed} failed` : ''}${last ? `, last #${last.id} took ${last.end_to_end_duration} ms, ${((now - last.latest_ack_timestamp) / 1000).toFixed(1)} s ago` : ''}`);
  } else lines.push('flink     n/a (REST API not reachable)');
  if (serving) {
    lines.push(`sink      consumer lag ${n(sumMetric(serving, 'adclick_sink_consumer_lag'))} records, rows written ${n(sumMetric(serving, 'adclick_sink_rows_total'))}, dead letters ${n(sumMetric(serving, 'adclick_sink_dead_letters_total'))}, write failures ${n(sumMetric(serving, 'adclick_sink_write_failures_total'))}${sumMetric(serving, 'adclick_sink_paused') ? ', PAUSED' : ''}`);
  } else lines.push('sink      n/a (serving admin metrics not reachable)');
  return lines;
}

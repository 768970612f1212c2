// Key pipeline figures for `adclick status`, read from outside like an operator would:
// the gateway's and the serving process's Prometheus endpoints and Flink's REST API.
// Every source is optional: a part that does not answer shows as "n/a".
import { flinkRestUrlsFor, type Config } from '../shared/config.ts';

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

/** Every sample of `name` with its labels (Prometheus text format). */
export function samples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    const raw = line.slice(name.length).match(/^\{([^}]*)\}/)?.[1] ?? '';
    const labels: Record<string, string> = {};
    for (const m of raw.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    const value = Number(line.trim().split(/\s+/).at(-1));
    if (Number.isFinite(value)) out.push({ labels, value });
  }
  return out;
}

/** Mean of a Prometheus histogram (`_sum` / `_count`), null when it has no observation. */
export function histogramMean(text: string, name: string): number | null {
  const sum = sumMetric(text, `${name}_sum`);
  const count = sumMetric(text, `${name}_count`);
  return sum === null || !count ? null : sum / count;
}

/** Rows ClickHouse refused for good (quarantined in dead_letters): loud when any, so an operator replays them. */
function quarantine(rows: number | null): string {
  if (rows === null) return '';
  return rows > 0 ? `, QUARANTINED ${Math.round(rows).toLocaleString('en-US')} rows (dead_letters reason STORE_REFUSED: replay them)` : ', quarantined 0';
}

/** The pipeline lines of `adclick status` from the serving process's /metrics (the poller's figures and the sink's). */
export function pipelineLines(serving: string): string[] {
  const n = (v: number | null) => (v === null ? 'n/a' : Math.round(v).toLocaleString('en-US'));
  const lines: string[] = [];
  const late = samples(serving, 'adclick_flink_late_clicks');
  const lateBy = late.length ? ` (${late.map((s) => `${s.labels.granularity} ${n(s.value)}`).join(', ')})` : '';
  lines.push(`dropped   duplicates: ${n(sumMetric(serving, 'adclick_flink_duplicates_dropped'))} by the Flink dedup; late: ${n(late.length ? late.reduce((a, s) => a + s.value, 0) : null)}${lateBy}; dead letters: ${n(sumMetric(serving, 'adclick_flink_dead_letters'))} in Flink, ${n(sumMetric(serving, 'adclick_sink_dead_letters_total'))} in the sink`);
  const lostCommits = sumMetric(serving, 'adclick_flink_commit_failures_total');
  if (lostCommits) lines.push(`COMMITS   ${n(lostCommits)} Kafka transaction(s) of completed checkpoints Flink could NOT commit: their records may be LOST (serving log; docs/operations.md "Kafka transactions")`);
  const lag = samples(serving, 'adclick_sink_consumer_group_lag');
  const worst = lag.reduce<(typeof lag)[number] | null>((a, s) => (a === null || s.value > a.value ? s : a), null);
  const rows = histogramMean(serving, 'adclick_sink_batch_rows');
  const secs = histogramMean(serving, 'adclick_sink_batch_seconds');
  lines.push(`sink      lag ${n(lag.length ? lag.reduce((a, s) => a + s.value, 0) : null)} records${worst && worst.value > 0 ? ` (most: ${worst.labels.topic}/${worst.labels.partition} ${n(worst.value)})` : ''}, batches ${n(sumMetric(serving, 'adclick_sink_batch_rows_count'))} (mean ${n(rows)} records, ${secs === null ? 'n/a' : `${Math.round(secs * 1000)} ms`}), rows written ${n(sumMetric(serving, 'adclick_sink_rows_total'))}, write failures ${n(sumMetric(serving, 'adclick_sink_write_failures_total'))}${quarantine(sumMetric(serving, 'adclick_sink_quarantined_total'))}${sumMetric(serving, 'adclick_sink_paused') ? ', PAUSED' : ''}`);
  const checked = sumMetric(serving, 'adclick_conservation_checked_windows');
  if (checked !== null) {
    const unb = sumMetric(serving, 'adclick_conservation_unbalanced_windows');
    lines.push(`conserve  ${n(checked)} closed windows checked, ${unb ? `${n(unb)} UNBALANCED` : '0 unbalanced'}: accepted ${n(sumMetric(serving, 'adclick_conservation_accepted'))} = served ${n(sumMetric(serving, 'adclick_conservation_served'))} (late ${n(sumMetric(serving, 'adclick_conservation_late'))}) + duplicates ${n(sumMetric(serving, 'adclick_conservation_duplicates'))} + rejected ${n(sumMetric(serving, 'adclick_conservation_rejected'))}`);
  }
  const disks = samples(serving, 'adclick_store_aggregate_rows');
  if (disks.length) lines.push(`storage   aggregate rows ${disks.map((d) => `${d.labels.disk === 'default' ? 'hot' : d.labels.disk} ${n(d.value)}`).join(', ')}`);
  const delay = sumMetric(serving, 'adclick_pipeline_watermark_delay_seconds');
  lines.push(`watermark delay ${delay === null ? 'n/a (no watermark stored yet)' : `${delay.toFixed(1)} s`} (now − complete_before: how far closed windows trail the clock)`);
  return lines;
}

interface FlinkJobs { jobs: { jid: string; name: string; state: string; 'start-time': number }[] }
export interface FlinkCheckpoints {
  counts: { completed: number; failed: number; in_progress: number };
  latest: {
    completed: { id: number; end_to_end_duration: number; latest_ack_timestamp: number } | null;
    /** The latest checkpoint that started and failed (absent in older answers). */
    failed?: { id: number; failure_timestamp: number; failure_message?: string | null } | null;
  };
}

/**
 * The checkpoint part of `adclick status`'s Flink line. Flink counts a trigger refused before
 * any checkpoint started (not every task running yet, as at start-up) as a failed checkpoint,
 * with no history entry and no reason on the REST API; `latest.failed` holds only
 * checkpoints that started. So: failures and none started → said to be refused triggers;
 * otherwise the latest started one's reason and age.
 */
export function checkpointsText(cp: FlinkCheckpoints, now: number): string {
  let text = `checkpoints ${cp.counts.completed} completed / ${cp.counts.failed} failed`;
  const failed = cp.latest.failed;
  if (cp.counts.failed > 0 && !failed) text += ' (none started: triggers refused before they began, e.g. tasks still starting up)';
  else if (failed) {
    const why = String(failed.failure_message ?? 'no reason given').split('\n')[0]!.slice(0, 120);
    text += ` (latest #${failed.id}, ${((now - failed.failure_timestamp) / 1000).toFixed(0)} s ago: ${why})`;
  }
  const last = cp.latest.completed;
  if (last) text += `, last #${last.id} took ${last.end_to_end_duration} ms, ${((now - last.latest_ack_timestamp) / 1000).toFixed(1)} s ago`;
  return text;
}

export async function statusFigures(config: Config, now = Date.now()): Promise<string[]> {
  const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  // Every JobManager's URL under HA: the first that answers (one pass) is asked the rest.
  const firstFlink = async (): Promise<{ flinkUrl: string; jobs: FlinkJobs | null }> => {
    const urls = flinkRestUrlsFor(config);
    for (const flinkUrl of urls) {
      const jobs = await getJson<FlinkJobs>(`${flinkUrl}/jobs/overview`);
      if (jobs) return { flinkUrl, jobs };
    }
    return { flinkUrl: urls[0]!, jobs: null };
  };
  const [gw, serving, { flinkUrl, jobs }] = await Promise.all([
    getText(`http://${host}:${config.gatewayPort}/metrics`),
    getText(`http://127.0.0.1:${config.adminPort}/metrics`),
    firstFlink(),
  ]);
  const n = (v: number | null) => (v === null ? 'n/a' : Math.round(v).toLocaleString('en-US'));
  const lines: string[] = [];
  if (gw) {
    const all = sumMetric(gw, 'adclick_gateway_clicks_total');
    const acc = sumMetric(gw, 'adclick_gateway_clicks_total', { outcome: 'accepted' });
    const dup = sumMetric(gw, 'adclick_gateway_clicks_total', { outcome: 'duplicate' });
    const rejected = all === null ? null : all - (acc ?? 0) - (dup ?? 0);
    lines.push(`gateway   clicks accepted ${n(acc)}, duplicates answered (edge dedup) ${n(dup)}, rejected ${n(rejected)}, awaiting Kafka ack ${n(sumMetric(gw, 'adclick_gateway_kafka_inflight'))}, breaker ${sumMetric(gw, 'adclick_gateway_kafka_breaker_open') ? 'OPEN' : 'closed'}`);
  } else lines.push('gateway   n/a (metrics not reachable)');
  const job = jobs?.jobs.find((j) => j.state === 'RUNNING') ?? jobs?.jobs[0];
  if (job) {
    const [cp, restarts] = await Promise.all([
      getJson<FlinkCheckpoints>(`${flinkUrl}/jobs/${job.jid}/checkpoints`),
      getJson<{ id: string; value: string }[]>(`${flinkUrl}/jobs/${job.jid}/metrics?get=numRestarts`),
    ]);
    const r = restarts?.find((m) => m.id === 'numRestarts')?.value;
    lines.push(`flink     job ${job.state}${r !== undefined ? `, restarts ${r}` : ''}${cp ? `, ${checkpointsText(cp, now)}` : ''}`);
  } else lines.push('flink     n/a (REST API not reachable)');
  if (serving) lines.push(...pipelineLines(serving));
  else lines.push('sink      n/a (serving admin metrics not reachable)');
  return lines;
}

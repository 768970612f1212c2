// Conservation as metrics: every interval, the serving process checks the closed windows
// of a recent span (audit.ts) and publishes the 1m totals and the number of unbalanced
// windows. Windows newer than the watermark minus a settle margin are skipped: the audit
// and the counts reach ClickHouse through different topics and may be a batch apart.
// An alert should fire on a SUSTAINED non-zero `adclick_conservation_unbalanced_windows`.
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../shared/logger.ts';
import { conservation } from './audit.ts';
import { aggregatesByDisk } from './migrations.ts';
import { completeBefore } from './reads.ts';
import type { Store } from './store.ts';

export interface ConservationMonitorOptions {
  readonly intervalMs: number;
  /** How far back from the watermark windows are checked. */
  readonly spanMs: number;
  /** Windows ending later than watermark − settle are not checked yet. */
  readonly settleMs: number;
}

export function startConservationMonitor(store: Store, registry: Registry, logger: Logger, o: ConservationMonitorOptions): { stop(): void; checkNow(): Promise<void> } {
  const log = logger.child({ module: 'conservation' });
  const g = (name: string, help: string) => new Gauge({ name, help, registers: [registry] });
  const accepted = g('adclick_conservation_accepted', 'Records the Flink job read, closed 1m windows of the checked span');
  const served = g('adclick_conservation_served', 'Clicks the query API serves (streaming + late), same windows');
  const late = g('adclick_conservation_late', 'Late corrections included in served, same windows');
  const duplicates = g('adclick_conservation_duplicates', 'Duplicates dropped by the Flink dedup, same windows');
  const rejected = g('adclick_conservation_rejected', 'Records dead-lettered by the Flink job, same windows');
  const unbalanced = g('adclick_conservation_unbalanced_windows', 'Closed windows (any granularity) where accepted != served + duplicates + rejected');
  const checked = g('adclick_conservation_checked_windows', 'Windows checked in the last pass');
  const lastCheck = g('adclick_conservation_last_check_seconds', 'Unix time of the last completed check');
  const byDisk = new Gauge({ name: 'adclick_store_aggregate_rows', help: 'Rows of click_aggregates in active parts per disk (default = hot volume, cold = cold volume)', labelNames: ['disk'], registers: [registry] });
  let running = false;
  const checkNow = async () => {
    if (running) return;
    running = true;
    try {
      byDisk.reset();
      for (const d of await aggregatesByDisk(store).catch(() => [])) byDisk.set({ disk: d.disk_name }, Number(d.rows));
      const wm = await completeBefore(store);
      if (wm === null) return;
      const to = wm - o.settleMs;
      const r = await conservation(store, { fromMs: to - o.spanMs, toMs: to });
      accepted.set(r.totals.accepted);
      served.set(r.totals.served);
      late.set(r.totals.late);
      duplicates.set(r.totals.duplicates);
      rejected.set(r.totals.rejected);
      unbalanced.set(r.imbalanced);
      checked.set(r.windows.length);
      lastCheck.set(Math.floor(Date.now() / 1000));
      if (r.imbalanced > 0) {
        log.warn({ unbalanced: r.imbalanced, sample: r.windows.filter((w) => w.imbalance !== 0).slice(0, 5) }, 'conservation check: unbalanced windows');
      }
    } catch (err) {
      log.warn({ err }, 'conservation check failed');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => { void checkNow(); }, o.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer), checkNow };
}

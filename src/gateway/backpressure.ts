// Gateway back-pressure tied to the pipeline's real lag (issue 17). Every `pollMs` (never
// per request) the gateway reads how far behind the pipeline's consumers are — by default
// the Flink job's committed lag on `clicks` and the sink's on `click-aggregates`
// (consumer-lag.ts, createGroupLagReader) — and while the largest is above `maxLag` it
// refuses new clicks with 503 OVERLOADED + Retry-After, before reading their bodies,
// instead of accepting what the pipeline cannot carry. Hysteresis: it accepts again only
// once the lag is back at or below `resumeLag`, so it does not flap around one figure.
//
// Only new clicks are refused: a click already answered 202 is in Kafka (acks=all) and
// is counted whatever happens here. When the lag cannot be read (Kafka unreachable: the
// publisher's breaker answers that case) the last state holds for `staleAfterPolls` polls,
// then the gateway accepts again (fail-open, as with Redis), logged once.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../shared/logger.ts';
import type { Config } from '../shared/config.ts';
import { createGroupLagReader } from '../sink/consumer-lag.ts';

export interface WatchedLag { readonly group: string; readonly topic: string; readonly lag: number }

export interface BackpressureOptions {
  /** Refuse above this lag (records); 0: off. */
  readonly maxLag: number;
  /** Accept again at or below this lag; 0: maxLag / 2. */
  readonly resumeLag?: number;
  readonly pollMs: number;
  readonly read: () => Promise<readonly WatchedLag[]>;
  readonly close?: () => Promise<void>;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Retry-After of the refusals (seconds); at least one poll interval. */
  readonly retryAfterSec: number;
  /** Failed reads in a row after which a refusing gateway accepts again (default 3). */
  readonly staleAfterPolls?: number;
}

export interface Backpressure {
  /** True while new clicks are refused (a field read, no I/O: called per request). */
  refusing(): boolean;
  readonly retryAfterSec: number;
  /** One read and decision now (tests; the timer calls it). */
  pollOnce(): Promise<void>;
  stop(): Promise<void>;
}

/** The decision alone: refuse above max, accept again at or below resume. */
export function nextState(refusing: boolean, lag: number, maxLag: number, resumeLag: number): boolean {
  return refusing ? lag > resumeLag : lag > maxLag;
}

export function startBackpressure(o: BackpressureOptions): Backpressure {
  const log = o.logger.child({ module: 'backpressure' });
  const resumeLag = o.resumeLag && o.resumeLag > 0 ? Math.min(o.resumeLag, o.maxLag) : Math.floor(o.maxLag / 2);
  const staleAfter = o.staleAfterPolls ?? 3;
  const retryAfterSec = Math.max(o.retryAfterSec, Math.ceil(o.pollMs / 1000));
  const registers = [o.registry];
  const activeGauge = new Gauge({ name: 'adclick_gateway_backpressure_active', help: '1 while the gateway refuses new clicks with 503 OVERLOADED (pipeline lag above ADCLICK_BACKPRESSURE_MAX_LAG, until back at ADCLICK_BACKPRESSURE_RESUME_LAG)', registers });
  const lagGauge = new Gauge({ name: 'adclick_gateway_pipeline_lag_records', help: 'Committed consumer-group lag the gateway last read, per watched group@topic (ADCLICK_BACKPRESSURE_WATCH)', labelNames: ['group', 'topic'] as const, registers });
  const transitions = new Counter({ name: 'adclick_gateway_backpressure_transitions_total', help: 'Back-pressure state changes: to="refusing" when it started refusing clicks, to="accepting" when it stopped', labelNames: ['to'] as const, registers });
  const readFailures = new Counter({ name: 'adclick_gateway_backpressure_read_failures_total', help: 'Failed reads of the watched consumer-group lag', registers });
  activeGauge.set(0);
  transitions.inc({ to: 'refusing' }, 0);
  transitions.inc({ to: 'accepting' }, 0);

  let refusing = false;
  let failures = 0;
  let lastKeys = new Set<string>();
  const set = (next: boolean, fields: Record<string, unknown>, why: string) => {
    if (next === refusing) return;
    refusing = next;
    activeGauge.set(next ? 1 : 0);
    transitions.inc({ to: next ? 'refusing' : 'accepting' });
    if (next) log.warn({ ...fields, maxLag: o.maxLag, resumeLag, retryAfterSec }, `back-pressure ON: ${why}; new clicks are answered 503 OVERLOADED`);
    else log.info({ ...fields, maxLag: o.maxLag, resumeLag }, `back-pressure OFF: ${why}; clicks are accepted again`);
  };

  const pollOnce = async () => {
    let lags: readonly WatchedLag[];
    try {
      lags = await o.read();
    } catch (err) {
      readFailures.inc();
      log.debug({ err: (err as Error)?.message ?? String(err) }, 'pipeline lag read failed');
      if (++failures === staleAfter) {
        log.warn({ err: (err as Error)?.message ?? String(err), failures }, 'pipeline lag cannot be read; back-pressure falls back to accepting until it can');
        set(false, { failures }, 'pipeline lag unreadable');
      }
      return;
    }
    failures = 0;
    const keys = new Set<string>();
    let worst: WatchedLag | undefined;
    for (const l of lags) {
      keys.add(`${l.group}\u0000${l.topic}`);
      lagGauge.set({ group: l.group, topic: l.topic }, l.lag);
      if (!worst || l.lag > worst.lag) worst = l;
    }
    for (const k of lastKeys) {
      if (keys.has(k)) continue;
      const [group, topic] = k.split('\u0000') as [string, string];
      lagGauge.remove({ group, topic });
    }
    lastKeys = keys;
    const lag = worst?.lag ?? 0;
    const fields = { lag, group: worst?.group, topic: worst?.topic };
    set(nextState(refusing, lag, o.maxLag, resumeLag), fields, refusing ? `lag ${lag} is back at or below ${resumeLag}` : `lag ${lag} of ${worst?.group}@${worst?.topic} is above ${o.maxLag}`);
  };

  let running: Promise<void> | null = null;
  const tick = () => {
    running ??= pollOnce().finally(() => { running = null; });
  };
  tick();
  const timer = setInterval(tick, o.pollMs);
  timer.unref();
  log.info({ maxLag: o.maxLag, resumeLag, pollMs: o.pollMs }, 'back-pressure watching pipeline lag');
  return {
    refusing: () => refusing,
    retryAfterSec,
    pollOnce,
    async stop() {
      clearInterval(timer);
      await running;
      await o.close?.();
    },
  };
}

/** The gateway's back-pressure as configured (ADCLICK_BACKPRESSURE_*), reading lag from Kafka; null when off. */
export function backpressureFromConfig(config: Pick<Config, 'backpressureMaxLag' | 'backpressureResumeLag' | 'backpressureWatch' | 'backpressurePollMs' | 'kafkaBrokers' | 'retryAfterSec'>, logger: Logger, registry: Registry): Backpressure | null {
  if (config.backpressureMaxLag <= 0 || config.backpressureWatch.length === 0) return null;
  const watch = config.backpressureWatch.map((w) => {
    const i = w.lastIndexOf('@');
    return { group: w.slice(0, i), topic: w.slice(i + 1) };
  });
  const reader = createGroupLagReader({ brokers: config.kafkaBrokers, watch, timeoutMs: Math.min(5000, Math.max(1000, config.backpressurePollMs)) });
  return startBackpressure({
    maxLag: config.backpressureMaxLag, resumeLag: config.backpressureResumeLag, pollMs: config.backpressurePollMs,
    read: () => reader.read(), close: () => reader.close(), logger, registry, retryAfterSec: config.retryAfterSec,
  });
}

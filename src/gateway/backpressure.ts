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
//
// One reader per gateway, not per worker. With ADCLICK_GATEWAY_WORKERS = 1 the gateway
// process reads the lag itself (startBackpressure). With more, the cluster primary alone
// reads it (one admin client, one OffsetFetch/ListOffsets round per poll whatever the
// number of workers) and sends its decision to every worker over the cluster IPC channel
// (createBackpressureHub): on every change, again every `pollMs` as a heartbeat, and to a
// new or restarted worker when it asks (followBackpressure sends the request at start).
// A worker's `refusing()` stays a field read. A worker that hears nothing from the primary
// for `staleAfterPolls` × `pollMs` falls back to accepting, logged once, until it hears
// again: a stuck primary cannot leave the gateway refusing for good. The metrics live
// where the lag is read: in the primary's own registry, appended once to the gateway's
// aggregated /metrics (cluster.ts), so they are not summed over the workers.
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
  /**
   * Called with the current state on every change and again every `pollMs` (whether or not
   * a read is still under way): the cluster primary sends it to its workers (createBackpressureHub).
   */
  readonly onState?: (refusing: boolean) => void;
}

/** What the app needs: refuse or not, and for how long to tell clients to wait. */
export interface BackpressureGate {
  /** True while new clicks are refused (a field read, no I/O: called per request). */
  refusing(): boolean;
  readonly retryAfterSec: number;
  stop(): Promise<void>;
}

export interface Backpressure extends BackpressureGate {
  /** One read and decision now (tests; the timer calls it). */
  pollOnce(): Promise<void>;
}

/** Retry-After of the refusals: the configured one, but at least one poll interval. */
export function retryAfterFor(retryAfterSec: number, pollMs: number): number {
  return Math.max(retryAfterSec, Math.ceil(pollMs / 1000));
}

/** The decision alone: refuse above max, accept again at or below resume. */
export function nextState(refusing: boolean, lag: number, maxLag: number, resumeLag: number): boolean {
  return refusing ? lag > resumeLag : lag > maxLag;
}

export function startBackpressure(o: BackpressureOptions): Backpressure {
  const log = o.logger.child({ module: 'backpressure' });
  const resumeLag = o.resumeLag && o.resumeLag > 0 ? Math.min(o.resumeLag, o.maxLag) : Math.floor(o.maxLag / 2);
  const staleAfter = o.staleAfterPolls ?? 3;
  const retryAfterSec = retryAfterFor(o.retryAfterSec, o.pollMs);
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
    o.onState?.(next);
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
    o.onState?.(refusing); // heartbeat: the workers' sign that the primary is alive
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

type BackpressureConfig = Pick<Config, 'backpressureMaxLag' | 'backpressureResumeLag' | 'backpressureWatch' | 'backpressurePollMs' | 'kafkaBrokers' | 'retryAfterSec'>;

/** True when ADCLICK_BACKPRESSURE_* turn back-pressure on. */
export function backpressureEnabled(config: Pick<Config, 'backpressureMaxLag' | 'backpressureWatch'>): boolean {
  return config.backpressureMaxLag > 0 && config.backpressureWatch.length > 0;
}

export interface LagReader {
  read(): Promise<readonly WatchedLag[]>;
  close(): Promise<void>;
}

export interface BackpressureFromConfigOptions {
  /** See BackpressureOptions.onState (the cluster primary). */
  readonly onState?: (refusing: boolean) => void;
  /** Builds the lag reader (tests); default: createGroupLagReader, a Kafka admin client. */
  readonly createReader?: (o: { brokers: string; watch: readonly { group: string; topic: string }[]; timeoutMs: number }) => LagReader;
}

/**
 * The gateway's back-pressure as configured (ADCLICK_BACKPRESSURE_*), reading lag from
 * Kafka; null when off. Called by the one process that reads the lag: the gateway itself
 * with one worker, the cluster primary with several (never by a cluster worker:
 * followBackpressure).
 */
export function backpressureFromConfig(config: BackpressureConfig, logger: Logger, registry: Registry, extra: BackpressureFromConfigOptions = {}): Backpressure | null {
  if (!backpressureEnabled(config)) return null;
  const watch = config.backpressureWatch.map((w) => {
    const i = w.lastIndexOf('@');
    return { group: w.slice(0, i), topic: w.slice(i + 1) };
  });
  const reader = (extra.createReader ?? createGroupLagReader)({ brokers: config.kafkaBrokers, watch, timeoutMs: Math.min(5000, Math.max(1000, config.backpressurePollMs)) });
  return startBackpressure({
    maxLag: config.backpressureMaxLag, resumeLag: config.backpressureResumeLag, pollMs: config.backpressurePollMs,
    read: () => reader.read(), close: () => reader.close(), logger, registry, retryAfterSec: config.retryAfterSec, onState: extra.onState,
  });
}

// ---- The cluster split: the primary decides, the workers follow (IPC messages). ----

const STATE_MSG = 'adclick:backpressure-state';
const STATE_REQ = 'adclick:backpressure-req';

/** The primary's decision, as sent to a worker. */
export interface BackpressureStateMessage { readonly type: typeof STATE_MSG; readonly refusing: boolean }
/** A worker's request for the current decision (sent once, at its start). */
export interface BackpressureRequestMessage { readonly type: typeof STATE_REQ }

/** The primary's end of one worker's IPC channel. */
export interface WorkerPeer { send(msg: BackpressureStateMessage): void }

export interface BackpressureHub {
  /** Sends `refusing` to every worker (startBackpressure's onState: on change and as heartbeat). */
  publish(refusing: boolean): void;
  /** Handles a message from `peer`: a state request is answered with the current state. False if it was not one. */
  answer(peer: WorkerPeer, msg: unknown): boolean;
}

/** Primary side: holds the last decision and sends it to the workers. */
export function createBackpressureHub(peers: () => Iterable<WorkerPeer>): BackpressureHub {
  let state: BackpressureStateMessage = { type: STATE_MSG, refusing: false };
  return {
    publish(refusing) {
      if (refusing !== state.refusing) state = { type: STATE_MSG, refusing };
      for (const p of peers()) {
        try {
          p.send(state);
        } catch {
          // a worker going away between the listing and the send: it is replaced and asks anew
        }
      }
    },
    answer(peer, msg) {
      if ((msg as { type?: unknown } | null)?.type !== STATE_REQ) return false;
      peer.send(state);
      return true;
    },
  };
}

/** A worker's end of its IPC channel to the primary. */
export interface PrimaryChannel {
  send(msg: BackpressureRequestMessage): void;
  /** Subscribes to every message from the primary; returns the unsubscribe. */
  onMessage(listener: (msg: unknown) => void): () => void;
}

export interface FollowOptions {
  readonly pollMs: number;
  /** Heartbeats missed after which the worker accepts again (default 3): silent for staleAfterPolls × pollMs. */
  readonly staleAfterPolls?: number;
  readonly retryAfterSec: number;
  readonly logger: Logger;
  readonly channel: PrimaryChannel;
}

export interface BackpressureFollower extends BackpressureGate {
  /** Resolves true once the primary's state arrived, false after `timeoutMs` without it. */
  synced(timeoutMs: number): Promise<boolean>;
}

/**
 * Worker side: refuses while the primary says so. Asks for the current state at once (a
 * new or restarted worker starts with the gateway's decision); falls back to accepting,
 * logged once, after staleAfterPolls × pollMs without a message from the primary.
 */
export function followBackpressure(o: FollowOptions): BackpressureFollower {
  const log = o.logger.child({ module: 'backpressure' });
  const staleMs = (o.staleAfterPolls ?? 3) * o.pollMs;
  let refusing = false;
  let silent = false;
  let onFirst!: () => void;
  const first = new Promise<true>((resolve) => (onFirst = () => resolve(true)));
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      silent = true;
      log.warn({ silentMs: staleMs, wasRefusing: refusing }, 'no back-pressure state from the gateway primary; this worker falls back to accepting until it hears from it again');
      refusing = false;
    }, staleMs);
    timer.unref();
  };
  const off = o.channel.onMessage((msg) => {
    const m = msg as Partial<BackpressureStateMessage> | null;
    if (m?.type !== STATE_MSG || typeof m.refusing !== 'boolean') return;
    if (silent) {
      silent = false;
      log.info({ refusing: m.refusing }, 'back-pressure state from the gateway primary again');
    }
    refusing = m.refusing;
    onFirst();
    arm();
  });
  arm();
  o.channel.send({ type: STATE_REQ });
  return {
    refusing: () => refusing,
    retryAfterSec: retryAfterFor(o.retryAfterSec, o.pollMs),
    synced(timeoutMs) {
      let t: NodeJS.Timeout | undefined;
      const late = new Promise<false>((resolve) => (t = setTimeout(() => resolve(false), timeoutMs)));
      return Promise.race([first, late]).finally(() => clearTimeout(t));
    },
    async stop() {
      clearTimeout(timer);
      off();
    },
  };
}

/** A cluster worker's back-pressure as configured: follows the primary's decision; null when off. */
export function backpressureFollowerFromConfig(config: Pick<Config, 'backpressureMaxLag' | 'backpressureWatch' | 'backpressurePollMs' | 'retryAfterSec'>, logger: Logger, channel: PrimaryChannel): BackpressureFollower | null {
  if (!backpressureEnabled(config)) return null;
  return followBackpressure({ pollMs: config.backpressurePollMs, retryAfterSec: config.retryAfterSec, logger, channel });
}

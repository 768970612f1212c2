// The gateway as several worker processes sharing one port (node:cluster), so ingest uses
// more than one core: one JS thread saturates at roughly 30-40k clicks/s of batch ingest.
// Each worker is a complete gateway (own Kafka producer, own Redis connection); the
// primary only forks, restarts, stops, aggregates /metrics and reads the pipeline lag for
// back-pressure once for all workers (backpressure.ts; those metrics are the primary's
// own, appended once to the aggregate). Correctness does not depend on which worker a
// request lands on: dedup and rate limits live in Redis, the Flink job's dedup is
// authoritative, and every worker answers 202 only after its own ack.
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { Logger } from '../shared/logger.ts';

const METRICS_REQ = 'adclick:metrics-req';
const METRICS_RES = 'adclick:metrics-res';
const AGGREGATION_TIMEOUT_MS = 5000;

export interface ClusterPrimaryOptions {
  workers: number;
  logger: Logger;
  /** Grace period for the workers' own drain before they are killed. */
  stopTimeoutMs: number;
  /** More than `maxRestarts` unexpected worker exits within `restartWindowMs` stops the gateway (so its supervisor sees it fail). */
  maxRestarts?: number;
  restartWindowMs?: number;
  restartDelayMs?: number;
  /** Extra environment for every worker (e.g. a generated key they must share). */
  env?: Record<string, string>;
  /** Every other message from a worker (e.g. its request for the back-pressure state). */
  onWorkerMessage?: (worker: Worker, msg: unknown) => void;
  /** The primary's own metrics (text exposition), appended to the workers' aggregate: metrics that exist once per gateway. */
  primaryMetrics?: () => Promise<string>;
  /** Runs once the workers have exited, before the primary exits (bounded by stopTimeoutMs). */
  onStop?: () => Promise<void>;
}

/**
 * Runs in the primary process: forks the workers, replaces a worker that dies
 * unexpectedly, answers the workers' /metrics aggregation requests, and on SIGTERM/SIGINT
 * lets every worker drain (each stops taking requests and waits for its Kafka acks)
 * before exiting. A worker notices a vanished primary through its IPC channel and exits.
 */
export function runClusterPrimary(o: ClusterPrimaryOptions): void {
  const log = o.logger.child({ module: 'cluster' });
  const maxRestarts = o.maxRestarts ?? 10;
  const windowMs = o.restartWindowMs ?? 60_000;
  const restartDelayMs = o.restartDelayMs ?? 500;
  const aggregator = new AggregatorRegistry();
  const restarts: number[] = [];
  let stopping = false;

  const collect = async () => {
    const [workers, own] = await Promise.all([aggregator.clusterMetrics(), o.primaryMetrics?.() ?? '']);
    return own ? `${workers.replace(/\n*$/, '\n')}${own}` : workers;
  };

  const fork = (index: number) => {
    const w = cluster.fork(o.env);
    w.on('message', (msg: { type?: string; id?: number } | null) => {
      if (msg?.type !== METRICS_REQ) {
        o.onWorkerMessage?.(w, msg);
        return;
      }
      collect().then(
        (text) => w.isConnected() && w.send({ type: METRICS_RES, id: msg.id, text }),
        (err: unknown) => w.isConnected() && w.send({ type: METRICS_RES, id: msg.id, error: String(err) }),
      );
    });
    w.on('exit', (code, signal) => {
      if (stopping) return;
      const now = Date.now();
      restarts.push(now);
      while (restarts.length && restarts[0]! < now - windowMs) restarts.shift();
      if (restarts.length > maxRestarts) {
        log.fatal({ worker: index, code, signal, restarts: restarts.length, windowMs }, 'gateway workers keep dying; stopping the gateway');
        void stop(1);
        return;
      }
      log.error({ worker: index, code, signal }, 'gateway worker exited unexpectedly; starting a replacement');
      setTimeout(() => {
        if (!stopping) fork(index);
      }, restartDelayMs).unref();
    });
  };

  async function stop(exitCode: number) {
    if (stopping) return;
    stopping = true;
    const live = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && !w.isDead());
    log.info({ workers: live.length }, 'gateway stopping: workers drain their requests and Kafka acks');
    const exited = Promise.all(live.map((w) => new Promise((resolve) => (w.isDead() ? resolve(null) : w.once('exit', resolve)))));
    for (const w of live) w.process.kill('SIGTERM');
    const force = setTimeout(() => {
      for (const w of live) if (!w.isDead()) w.process.kill('SIGKILL');
    }, o.stopTimeoutMs);
    await exited;
    clearTimeout(force);
    if (o.onStop) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([o.onStop().catch((err: unknown) => log.warn({ err: String(err) }, 'gateway primary: stop hook failed')), new Promise((r) => (t = setTimeout(r, o.stopTimeoutMs)))]);
      clearTimeout(t);
    }
    process.exit(exitCode);
  }

  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));
  log.info({ workers: o.workers }, 'gateway primary: starting workers sharing one port');
  for (let i = 0; i < o.workers; i++) fork(i);
}

/**
 * In a cluster worker: makes the worker's registry part of the primary's aggregation and
 * returns how /metrics gets the whole gateway's metrics (every worker summed, by the
 * primary). Outside a cluster: undefined (the registry is the whole gateway).
 */
export function clusterMetrics(registry: Registry): (() => Promise<string>) | undefined {
  if (!cluster.isWorker) return undefined;
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // installs the worker's answer to the primary's collection request
  let seq = 0;
  const pending = new Map<number, { resolve: (s: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  process.on('message', (msg: { type?: string; id?: number; text?: string; error?: string } | null) => {
    if (msg?.type !== METRICS_RES || msg.id === undefined) return;
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.error !== undefined) p.reject(new Error(msg.error));
    else p.resolve(msg.text ?? '');
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = seq++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error('metrics aggregation timed out'));
      }, AGGREGATION_TIMEOUT_MS);
      pending.set(id, { resolve, reject, timer });
      process.send!({ type: METRICS_REQ, id });
    });
}

/** This worker's number, from 0 in fork order (a replacement gets the next one); undefined outside a cluster. Part of the gateway id. */
export function workerIndex(): number | undefined {
  return cluster.worker ? cluster.worker.id - 1 : undefined;
}

/** In the primary: the workers whose IPC channel is open, each as a sender of messages. */
export function connectedWorkers(): { send(msg: object): void }[] {
  return Object.values(cluster.workers ?? {})
    .filter((w): w is Worker => !!w && w.isConnected())
    .map((w) => ({ send: (msg: object) => void w.send(msg, () => undefined) }));
}

/** In a worker: its IPC channel to the primary (send, and subscribe to what the primary sends). */
export function primaryChannel(): { send(msg: object): void; onMessage(listener: (msg: unknown) => void): () => void } {
  return {
    send: (msg) => void process.send?.(msg, undefined, undefined, () => undefined),
    onMessage(listener) {
      process.on('message', listener);
      return () => void process.off('message', listener);
    },
  };
}

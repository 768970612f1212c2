// The embedded engine's waiting room. chdb runs one query at a time per process (measured:
// four concurrent 0.5 s sleeps take 2 s, parameterised or not), and a call handed to it
// cannot be taken back: it runs even after its caller gave up. So calls wait here, in JS,
// where waiting work can still be dropped, and only one at a time goes to the engine.
//
// Lanes (storage-scope.ts), served in this order:
//   interactive  a query API read someone waits for: bounded, shed when its client went
//                away or it waited past the deadline;
//   background   no scope (sink, migrations, monitors): never shed, never refused; behind
//                interactive reads because a delayed sink write only makes its next batch
//                bigger, while a delayed read is a user waiting — but never starved by
//                them: after every BACKGROUND_EVERY reads run while background work waits,
//                one background call runs (a dashboard crowd must not stop the sink, and
//                with it freshness);
//   lookup       an API-key lookup for a key not known to be good: anyone can cause one,
//                so they go last, in a smaller queue, are shed the same way, and take at
//                most `lookupShare` of the engine's time. A call cannot be interrupted,
//                so a read arriving while a lookup runs waits for it: the share bounds
//                how often that happens, whatever the flood.
import { AppError } from '../shared/errors.ts';
import { currentStorageScope, type StorageLane, type StorageScope } from './storage-scope.ts';

export interface StorageQueueOptions {
  /**
   * Most interactive calls waiting for the engine; a request whose first call would be one
   * more is refused at once (503). Its later calls are let in (a request makes a few).
   */
  readonly maxQueued: number;
  /** Most API-key lookups waiting for the engine; one more is refused at once (503). */
  readonly maxLookupQueued: number;
  /** Longest an interactive call or lookup waits for the engine; then 503, and it never runs. */
  readonly maxWaitMs: number;
  /** Retry-After (seconds) of those 503 answers. */
  readonly retryAfterSec: number;
  /**
   * Most of the engine's time lookups may take (0 < share <= 1): after a lookup that took
   * d ms, the next waits d * (1 - share) / share ms, however idle the engine.
   */
  readonly lookupShare: number;
  /**
   * Calls handed to the engine at once: 1 for chdb (one query at a time per process); a
   * ClickHouse server's HTTP client, the connections of its pool (beyond them its agent
   * would queue without bound, where nothing is shed). Lookups run one at a time either way.
   */
  readonly concurrency: number;
}

/** While background work waits, one background call runs after this many interactive ones. */
export const BACKGROUND_EVERY = 2;

export const DEFAULT_STORAGE_QUEUE: StorageQueueOptions = Object.freeze({ maxQueued: 200, maxLookupQueued: 32, maxWaitMs: 2000, retryAfterSec: 1, lookupShare: 0.25, concurrency: 1 });

export interface StorageQueueStats {
  /** Calls handed to the engine. */
  readonly ran: number;
  /** Dropped while waiting: the caller went away. */
  readonly shedGone: number;
  /** Dropped while waiting: past maxWaitMs. */
  readonly shedLate: number;
  /** Refused on arrival: their lane was full. */
  readonly refusedFull: number;
  readonly waiting: Readonly<Record<'interactive' | 'background' | 'lookup', number>>;
}

// Refusals and drops are the queue doing its job under load: callers answer them without
// logging each one (a flood would otherwise turn into a flood of log lines).
const shedErrors = new WeakSet<Error>();

/** Whether `err` is the queue refusing or dropping work (not a storage failure). */
export function isStorageShed(err: unknown): boolean {
  return err instanceof Error && shedErrors.has(err);
}

interface Waiting {
  readonly work: () => Promise<unknown>;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  readonly lane: StorageLane | 'background';
  timer?: NodeJS.Timeout;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class StorageQueue {
  // Sets keep arrival order and drop a shed entry in O(1).
  private readonly lanes = { interactive: new Set<Waiting>(), background: new Set<Waiting>(), lookup: new Set<Waiting>() };
  /** Calls the engine is running now. */
  private running = 0;
  private lookupRunning = false;
  /** Lookups wait until then (the share of engine time they may take). */
  private lookupsFrom = 0;
  private lookupTimer: NodeJS.Timeout | undefined;
  /** Interactive calls run in a row while background work was waiting. */
  private readsAheadOfBackground = 0;
  // Requests with a call already let in: their later calls are never refused as too many,
  // or the queue would throw away the work it already did for them.
  private readonly admitted = new WeakSet<StorageScope>();
  private counts = { ran: 0, shedGone: 0, shedLate: 0, refusedFull: 0 };
  /** When (clock) a call last came back from the engine without an error; -Infinity: never. */
  private lastAnsweredAt = -Infinity;
  /** Start times (clock) of the calls the engine is running now. */
  private readonly runningSince = new Set<{ at: number }>();
  private readonly opts: StorageQueueOptions;

  constructor(opts: Partial<StorageQueueOptions> = {}, private readonly clock: () => number = performance.now.bind(performance)) {
    this.opts = { ...DEFAULT_STORAGE_QUEUE, ...opts };
    if (!(this.opts.lookupShare > 0 && this.opts.lookupShare <= 1)) throw new Error('lookupShare must be in (0, 1]');
    if (!(Number.isInteger(this.opts.concurrency) && this.opts.concurrency >= 1)) throw new Error('concurrency must be a positive integer');
  }

  /** Runs `work` when the engine is free and it is its turn; the lane comes from the caller's storage scope. */
  run<T>(work: () => Promise<T>, scope: StorageScope | undefined = currentStorageScope()): Promise<T> {
    const lane = scope?.lane ?? 'background';
    const signal = scope?.signal;
    if (lane !== 'background') {
      if (signal?.aborted) {
        this.counts.shedGone++;
        return Promise.reject(this.unavailable('The caller went away before the storage call started'));
      }
      const bound = lane === 'lookup' ? this.opts.maxLookupQueued : this.opts.maxQueued;
      if (!this.admitted.has(scope!) && this.lanes[lane].size >= bound && (this.running >= this.opts.concurrency || this.lanes[lane].size > 0)) {
        this.counts.refusedFull++;
        return Promise.reject(this.unavailable('Too many storage calls are waiting; retry later'));
      }
      this.admitted.add(scope!);
    }
    return new Promise<T>((resolve, reject) => {
      const w: Waiting = { work, resolve: resolve as (v: unknown) => void, reject, lane };
      this.lanes[lane].add(w);
      if (lane !== 'background') {
        w.timer = setTimeout(() => this.shed(w, 'shedLate', 'The storage call waited too long for the engine; retry later'), this.opts.maxWaitMs);
        if (signal) {
          w.signal = signal;
          w.onAbort = () => this.shed(w, 'shedGone', 'The caller went away before the storage call started');
          signal.addEventListener('abort', w.onAbort, { once: true });
        }
      }
      this.pump();
    });
  }

  /**
   * Ms since a call last came back from the engine without an error (Infinity: never): a
   * readiness check can take a recent answer as its own instead of queueing a ping behind
   * the sink's insert (measured at 10,000 clicks/s: serving /readyz waited up to 2 s for its
   * turn; issue 17).
   */
  sinceAnswered(): number {
    return this.clock() - this.lastAnsweredAt;
  }

  /** How long (ms) the engine has been on the oldest call it is running now; undefined: idle. */
  busyFor(): number | undefined {
    let oldest = Infinity;
    for (const r of this.runningSince) oldest = Math.min(oldest, r.at);
    return oldest === Infinity ? undefined : this.clock() - oldest;
  }

  stats(): StorageQueueStats {
    return { ...this.counts, waiting: { interactive: this.lanes.interactive.size, background: this.lanes.background.size, lookup: this.lanes.lookup.size } };
  }

  private unavailable(message: string): AppError {
    const err = new AppError('UNAVAILABLE', message, { retryAfterSec: this.opts.retryAfterSec });
    shedErrors.add(err);
    return err;
  }

  private shed(w: Waiting, why: 'shedGone' | 'shedLate', message: string): void {
    if (!this.lanes[w.lane].delete(w)) return;
    this.release(w);
    this.counts[why]++;
    w.reject(this.unavailable(message));
  }

  private release(w: Waiting): void {
    if (w.timer) clearTimeout(w.timer);
    if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
  }

  private next(): Waiting | undefined {
    const waitingBackground = this.lanes.background.size > 0;
    const order = waitingBackground && this.readsAheadOfBackground >= BACKGROUND_EVERY
      ? [this.lanes.background, this.lanes.interactive, this.lanes.lookup]
      : [this.lanes.interactive, this.lanes.background, this.lanes.lookup];
    for (const lane of order) {
      const first = lane.values().next();
      if (first.done) continue;
      if (lane === this.lanes.lookup) {
        if (this.lookupRunning) continue;
        const wait = this.lookupsFrom - this.clock();
        if (wait > 0) {
          this.lookupTimer ??= setTimeout(() => {
            this.lookupTimer = undefined;
            this.pump();
          }, Math.ceil(wait));
          return undefined;
        }
      }
      lane.delete(first.value);
      if (lane === this.lanes.interactive) this.readsAheadOfBackground = waitingBackground ? this.readsAheadOfBackground + 1 : 0;
      else if (lane === this.lanes.background) this.readsAheadOfBackground = 0;
      return first.value;
    }
    return undefined;
  }

  private pump(): void {
    while (this.running < this.opts.concurrency && this.start()) { /* started one more */ }
  }

  /** Hands the next waiting call to the engine; false when none may run now. */
  private start(): boolean {
    const w = this.next();
    if (!w) return false;
    this.release(w);
    this.running++;
    if (w.lane === 'lookup') this.lookupRunning = true;
    this.counts.ran++;
    const started = this.clock();
    const mark = { at: started };
    this.runningSince.add(mark);
    let p: Promise<unknown>;
    try {
      p = w.work();
    } catch (err) {
      p = Promise.reject(err);
    }
    // Off the running list before the caller hears back (a caller's check sees it done).
    p.then((v) => {
      this.runningSince.delete(mark);
      this.lastAnsweredAt = this.clock();
      w.resolve(v);
    }, (err: unknown) => {
      this.runningSince.delete(mark);
      w.reject(err);
    }).finally(() => {
      this.running--;
      if (w.lane === 'lookup') {
        this.lookupRunning = false;
        const now = this.clock();
        this.lookupsFrom = now + ((now - started) * (1 - this.opts.lookupShare)) / this.opts.lookupShare;
      }
      this.pump();
    });
    return true;
  }
}

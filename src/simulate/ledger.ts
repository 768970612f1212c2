// The ground-truth ledger of a simulator run: every (impression_id, event_type) that the
// gateway answered 202 `accepted` or `duplicate` for, exactly once, however often it was
// sent. A `duplicate` answer proves an earlier send was accepted (maybe one whose answer
// was lost), so it counts too. Persisted as append-only NDJSON, one line per distinct
// click, so the e2e suite can compare every (ad, window) count after the fact.
import { closeSync, createReadStream, createWriteStream, ftruncateSync, fstatSync, mkdirSync, openSync, readSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { windowStartMs, type Granularity } from '../shared/window-math.ts';

export interface LedgerEntry {
  impression_id: string;
  event_type: string;
  ad_id: number;
  campaign_id: number;
  advertiser_id: number;
  timestamp: number;
}

/** Count maps are keyed `${id}|${window_start_ms}`. */
export type WindowCounts = Map<string, number>;

const key = (impressionId: string, eventType: string): string => `${impressionId}\u0000${eventType}`;

export class Ledger {
  private readonly entries = new Map<string, LedgerEntry>();
  private out: WriteStream | null = null;
  private writeError: Error | null = null;
  readonly path: string | null;

  private constructor(path: string | null) {
    this.path = path;
  }

  /** A ledger kept in memory only. */
  static inMemory(): Ledger {
    return new Ledger(null);
  }

  /**
   * A ledger backed by `path`: existing lines are loaded first, new entries are appended,
   * so several runs (phases of one e2e test) can share one ledger file.
   */
  static async open(path: string): Promise<Ledger> {
    const ledger = new Ledger(path);
    // A torn last line (the writer died mid-line) is cut off, so new entries start on a
    // line of their own and the file stays loadable.
    if (await ledger.loadLines(path, true)) truncateTornTail(path);
    mkdirSync(dirname(path), { recursive: true });
    ledger.out = createWriteStream(path, { flags: 'a' });
    ledger.out.on('error', (err) => {
      ledger.writeError = err;
    });
    return ledger;
  }

  get size(): number {
    return this.entries.size;
  }

  has(impressionId: string, eventType = 'click'): boolean {
    return this.entries.has(key(impressionId, eventType));
  }

  get(impressionId: string, eventType = 'click'): LedgerEntry | undefined {
    return this.entries.get(key(impressionId, eventType));
  }

  /** Records an accepted click; true if it was new. Later calls for the same key change nothing. */
  record(e: LedgerEntry): boolean {
    if (this.writeError) throw new Error(`ledger ${this.path} is not writable`, { cause: this.writeError });
    const k = key(e.impression_id, e.event_type);
    if (this.entries.has(k)) return false;
    const entry: LedgerEntry = {
      impression_id: e.impression_id,
      event_type: e.event_type,
      ad_id: e.ad_id,
      campaign_id: e.campaign_id,
      advertiser_id: e.advertiser_id,
      timestamp: e.timestamp,
    };
    this.entries.set(k, entry);
    this.out?.write(`${JSON.stringify(entry)}\n`);
    return true;
  }

  *[Symbol.iterator](): IterableIterator<LedgerEntry> {
    yield* this.entries.values();
  }

  /** Expected clicks per (ad, window): key `${ad_id}|${window_start_ms}`. */
  expectedCounts(g: Granularity): WindowCounts {
    return this.countBy(g, (e) => e.ad_id);
  }

  /** Expected clicks per (campaign, window): key `${campaign_id}|${window_start_ms}`. */
  expectedCampaignCounts(g: Granularity): WindowCounts {
    return this.countBy(g, (e) => e.campaign_id);
  }

  /** Expected clicks per (advertiser, window): key `${advertiser_id}|${window_start_ms}`. */
  expectedAdvertiserCounts(g: Granularity): WindowCounts {
    return this.countBy(g, (e) => e.advertiser_id);
  }

  /** All-time totals per campaign (what GET /v1/campaigns reports). */
  totalsByCampaign(): Map<number, number> {
    const m = new Map<number, number>();
    for (const e of this.entries.values()) m.set(e.campaign_id, (m.get(e.campaign_id) ?? 0) + 1);
    return m;
  }

  /** Entries whose event time is in [fromMs, toMs). */
  *between(fromMs: number, toMs: number): IterableIterator<LedgerEntry> {
    for (const e of this.entries.values()) if (e.timestamp >= fromMs && e.timestamp < toMs) yield e;
  }

  /** Waits until every appended line reached the OS. */
  async flush(): Promise<void> {
    const out = this.out;
    if (!out) return;
    if (out.writableNeedDrain) await new Promise<void>((res) => out.once('drain', () => res()));
    await new Promise<void>((res, rej) => out.write('', (err) => (err ? rej(err) : res())));
    if (this.writeError) throw this.writeError;
  }

  async close(): Promise<void> {
    const out = this.out;
    if (!out) return;
    this.out = null;
    await new Promise<void>((res, rej) => {
      out.once('error', rej);
      out.end(() => res());
    });
    if (this.writeError) throw this.writeError;
  }

  private countBy(g: Granularity, id: (e: LedgerEntry) => number): WindowCounts {
    const m: WindowCounts = new Map();
    for (const e of this.entries.values()) {
      const k = `${id(e)}|${windowStartMs(e.timestamp, g)}`;
      m.set(k, (m.get(k) ?? 0) + 1);
    }
    return m;
  }

  /** Rebuilds a ledger from its NDJSON file (read-only: nothing is appended). */
  static async load(path: string): Promise<Ledger> {
    const ledger = new Ledger(null);
    await ledger.loadLines(path, false);
    return ledger;
  }

  /** Returns true when the file ends in a torn (unterminated) line. */
  private async loadLines(path: string, missingOk: boolean): Promise<boolean> {
    const input = createReadStream(path, { encoding: 'utf8' });
    const opened = new Promise<boolean>((res, rej) => {
      input.once('open', () => res(true));
      input.once('error', (err: NodeJS.ErrnoException) => (missingOk && err.code === 'ENOENT' ? res(false) : rej(err)));
    });
    if (!(await opened)) return false;
    let lastChar = '\n';
    input.on('data', (chunk) => {
      if (chunk.length) lastChar = (chunk as string).slice(-1);
    });
    const lines = createInterface({ input, crlfDelay: Infinity });
    let n = 0;
    let bad: string | null = null;
    for await (const line of lines) {
      n++;
      if (bad !== null) throw new Error(`ledger ${path}: line ${n - 1} is not valid JSON: ${bad.slice(0, 80)}`);
      if (!line.trim()) continue;
      let e: LedgerEntry;
      try {
        e = JSON.parse(line) as LedgerEntry;
      } catch {
        // Only the very last line may be torn (the writer died mid-line); it was never
        // acknowledged to anyone, so it is dropped. A torn line in the middle is an error.
        bad = line;
        continue;
      }
      if (
        typeof e !== 'object' || e === null || typeof e.impression_id !== 'string' || typeof e.event_type !== 'string' ||
        ![e.ad_id, e.campaign_id, e.advertiser_id, e.timestamp].every((x) => Number.isSafeInteger(x))
      ) {
        throw new Error(`ledger ${path}: line ${n} is not a ledger entry: ${line.slice(0, 80)}`);
      }
      const k = key(e.impression_id, e.event_type);
      if (!this.entries.has(k)) this.entries.set(k, e);
    }
    return lastChar !== '\n';
  }
}

/** Cuts the file after its last newline. */
function truncateTornTail(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    const chunk = Buffer.alloc(64 * 1024);
    let end = fstatSync(fd).size;
    while (end > 0) {
      const start = Math.max(0, end - chunk.length);
      const n = readSync(fd, chunk, 0, end - start, start);
      const nl = chunk.subarray(0, n).lastIndexOf(0x0a);
      if (nl >= 0) {
        ftruncateSync(fd, start + nl + 1);
        return;
      }
      end = start;
    }
    ftruncateSync(fd, 0);
  } finally {
    closeSync(fd);
  }
}

/** Rebuilds a ledger from its NDJSON file (read-only: nothing is appended). */
export function loadLedger(path: string): Promise<Ledger> {
  return Ledger.load(path);
}

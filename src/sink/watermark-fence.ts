// Holding the job's watermark back until everything it vouches for is stored.
//
// The Flink job writes its watermark (click-watermarks) and the rows it covers (aggregates,
// late corrections, raw clicks) to different topics; the sink reads them with one consumer,
// and the small watermark topic is read ahead of a full-rate topic with a backlog. Stored
// as read, the watermark (complete_before, and the backfill's "closed for good" bound)
// would run ahead of rows still in Kafka: a backfill during sink lag recomputed windows from
// raw_clicks that were not all stored yet, and its lower count won for good (issue #15).
//
// A watermark record is visible (read_committed) only after the checkpoint that produced it
// completed, and every record the job wrote before that checkpoint is by then appended to
// its topic: below the partitions' high watermarks (read_uncommitted ends) taken after the
// watermark record was read. That snapshot is the record's fence; the watermark row is
// stored only once the sink has stored every partition of the fenced topics up to it.
// A partition counts as stored up to its fence when the sink's next offset there reached
// the fence, or when the consumer's position there (librdkafka's app offset, which moves
// past commit/abort markers and aborted records, unlike the offsets of delivered records)
// reached the fence a while ago and everything the sink was delivered from the partition
// is stored: the offsets left below the fence are then markers or aborted records, never
// a record to store. (The tail of a partition written by P transactional producers can
// hold up to P markers, so "one marker behind" is not a rule.)
//
// Several sink instances in one consumer group (issue 18). Each member stores and commits
// only the partitions it holds, but the watermark rows it reads vouch for every data
// partition. For a partition it cannot vouch for itself, a member asks the group's
// committed offset (Kafka OffsetFetch through its own consumer): every member commits an
// offset only after the rows below it are stored (aggregate-sink.ts), so a committed
// offset at or past the fence means that partition is stored up to the fence, whoever
// stored it. Three things keep that true and live:
//   - an owner that has stored everything it was delivered commits its position once it
//     settled past commit markers or aborted records (otherwise the committed offset of an
//     idle transactional partition stays one marker short of every fence, for good);
//   - a member commits only partitions it holds at the time (a batch of a revoked
//     partition is stored — rows are idempotent — but its offset is left to the new owner,
//     so the group's offset never moves back below what the new owner stored);
//   - the position of a partition a member no longer holds never counts: after a revoke
//     the client drops records it had fetched but not delivered, so that position can be
//     past records nobody stored yet.
// Why not one member storing all watermarks: it would still need every other member's
// progress, which is exactly the group offsets; and every member can store its own
// watermark rows (keyed by subtask, versioned) with complete_before the minimum over
// subtasks, each row's claim checked against the whole group. Why not a progress table in
// ClickHouse: the committed offsets already are that record, written in the right order.
import type { WatermarkRow } from '../store/rows.ts';

/** The high watermark (read_uncommitted end) of every fenced partition, keyed `topic\u0000partition`. */
export type PartitionEnds = ReadonlyMap<string, number>;

export const partitionKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/**
 * True when every fenced partition is stored up to its fence: the sink's next stored offset
 * reached it, or `caughtUp(key, fence)` says only markers or aborted records are left below it.
 */
export function passedFence(fence: ReadonlyMap<string, number>, stored: ReadonlyMap<string, number>, caughtUp: (key: string, fence: number) => boolean): boolean {
  for (const [key, f] of fence) {
    if (f <= 0) continue;
    const s = stored.get(key);
    if (s !== undefined && s >= f) continue;
    if (caughtUp(key, f)) continue;
    return false;
  }
  return true;
}

interface Held { rows: WatermarkRow[]; fence: Map<string, number> | null }

/** Most held entries; beyond it new rows join the newest entry under the newer fence. */
const MAX_HELD = 64;

export class WatermarkFence {
  private held: Held[] = [];

  constructor(private readonly readEnds: () => Promise<PartitionEnds>) {}

  /** Watermark rows waiting for their fence. */
  get pending(): number {
    return this.held.reduce((n, h) => n + h.rows.length, 0);
  }

  /** Keys of partitions a held fence waits on (to learn the sink's offsets there). */
  fencedKeys(): string[] {
    const keys = new Set<string>();
    for (const h of this.held) for (const [k, f] of h.fence ?? []) if (f > 0) keys.add(k);
    return [...keys];
  }

  /**
   * Take watermark rows just read. Their fence (the high watermark of every data partition)
   * is taken at the next release attempt: after the rows were read, so only later (more
   * conservative) than at the moment of reading, and off the sink's write path.
   */
  hold(rows: readonly WatermarkRow[]): void {
    if (rows.length === 0) return;
    const last = this.held.at(-1);
    if (last && this.held.length >= MAX_HELD) {
      last.rows = newestPerSubtask([...last.rows, ...rows]);
      last.fence = null; // re-taken later: covers the new rows too
      return;
    }
    this.held.push({ rows: [...rows], fence: null });
  }

  /**
   * The held rows whose fence the sink has passed (oldest first, a prefix: fences only
   * grow), removed from the held set. Throws when the ends cannot be read (nothing released).
   */
  async release(
    stored: ReadonlyMap<string, number>,
    caughtUp: (key: string, fence: number) => boolean = () => false,
    groupStored?: (keys: readonly string[]) => Promise<ReadonlyMap<string, number>>,
  ): Promise<WatermarkRow[]> {
    if (this.held.length === 0) return [];
    if (this.held.some((h) => h.fence === null)) {
      const ends = new Map(await this.readEnds());
      for (const h of this.held) h.fence ??= ends;
    }
    let known = stored;
    // Partitions this member cannot vouch for: the group's committed offsets (one request).
    const open = groupStored ? this.openKeys(stored, caughtUp) : [];
    if (open.length > 0) {
      const group = await groupStored!(open);
      const merged = new Map(stored);
      for (const [k, o] of group) if (o > (merged.get(k) ?? -1)) merged.set(k, o);
      known = merged;
    }
    const out: WatermarkRow[] = [];
    while (this.held.length > 0 && passedFence(this.held[0]!.fence!, known, caughtUp)) out.push(...this.held.shift()!.rows);
    return newestPerSubtask(out);
  }

  /**
   * Fenced partitions not passed on this member's own knowledge, for the newest held entry
   * (fences only grow, so that covers the older entries' too).
   */
  private openKeys(stored: ReadonlyMap<string, number>, caughtUp: (key: string, fence: number) => boolean): string[] {
    const keys: string[] = [];
    for (const [k, f] of this.held.at(-1)!.fence!) {
      if (f <= 0 || (stored.get(k) ?? -1) >= f || caughtUp(k, f)) continue;
      keys.push(k);
    }
    return keys;
  }
}

/** One row per subtask, the newest (as the batch builder keeps them). */
function newestPerSubtask(rows: readonly WatermarkRow[]): WatermarkRow[] {
  const m = new Map<number, WatermarkRow>();
  for (const r of rows) {
    const cur = m.get(r.subtask);
    if (!cur || cur.emitted_at_ms <= r.emitted_at_ms) m.set(r.subtask, r);
  }
  return [...m.values()];
}

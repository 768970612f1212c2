package io.adclick.flink.audit;

/**
 * Counts of one (1-minute window, bucket) added since the previous delta of the same operator
 * subtask. Deltas are small and rare (one per key per flush), so they are cheap to shuffle.
 */
public class AuditDelta {
    public long windowStartMs;
    public int bucket;
    public long accepted;
    public long duplicates;
    public long rejected;

    public AuditDelta() {}

    public AuditDelta(long windowStartMs, int bucket, long accepted, long duplicates, long rejected) {
        this.windowStartMs = windowStartMs;
        this.bucket = bucket;
        this.accepted = accepted;
        this.duplicates = duplicates;
        this.rejected = rejected;
    }

    /** Key of the (window, bucket) pair; buckets are < 2^8. */
    public long key() {
        return keyOf(windowStartMs, bucket);
    }

    public static long keyOf(long windowStartMs, int bucket) {
        return windowStartMs * 256 + bucket;
    }

    @Override
    public String toString() {
        return "AuditDelta{" + windowStartMs + "/" + bucket + " a=" + accepted + " d=" + duplicates + " r=" + rejected + "}";
    }
}

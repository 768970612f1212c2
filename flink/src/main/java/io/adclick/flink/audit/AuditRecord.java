package io.adclick.flink.audit;

/** Cumulative counts of one (1-minute window, bucket), as written to {@code click-audit}. */
public class AuditRecord {
    public long windowStartMs;
    public int bucket;
    public long accepted;
    public long duplicates;
    public long rejected;
    public long emittedAtMs;

    public AuditRecord() {}

    /** Only grows: every count only grows. Readers keep the row with the highest version. */
    public long version() {
        return accepted + duplicates + rejected;
    }

    @Override
    public String toString() {
        return "AuditRecord{" + windowStartMs + "/" + bucket + " a=" + accepted + " d=" + duplicates + " r=" + rejected + "}";
    }
}

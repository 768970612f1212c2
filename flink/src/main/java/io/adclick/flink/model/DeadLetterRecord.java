package io.adclick.flink.model;

/** A Kafka record that could not be turned into a valid click (goes to {@code clicks-dlq}). */
public class DeadLetterRecord {
    public String sourceTopic;
    public int partition;
    public long offset;
    public byte[] key;
    public byte[] payload;
    /** Stable UPPER_SNAKE reason code, see {@link io.adclick.flink.serde.ReasonCodes}. */
    public String reason;
    public String detail;
    public long detectedAtMs;
    /** Trace id of the source record's traceparent header (null: none or invalid); written back as a header. */
    public String traceId;
    public int traceFlags;

    public DeadLetterRecord() {}

    @Override
    public String toString() {
        return "DeadLetter{" + reason + " " + sourceTopic + "-" + partition + "@" + offset + ": " + detail + "}";
    }
}

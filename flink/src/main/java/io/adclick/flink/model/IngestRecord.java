package io.adclick.flink.model;

/**
 * Output of the Kafka deserializer: exactly one of {@link #click}, {@link #deadLetter} or a gateway
 * progress tick ({@link #tickAtMs}, see PartitionTick in click.proto) is set. Split into the main
 * stream and the dead-letter side output right after the source; ticks only move the watermark
 * and are dropped there.
 */
public class IngestRecord {
    public Click click;
    public DeadLetterRecord deadLetter;
    /** A gateway tick's time, else Long.MIN_VALUE. */
    public long tickAtMs = Long.MIN_VALUE;

    public IngestRecord() {}

    public static IngestRecord ofClick(Click c) {
        IngestRecord r = new IngestRecord();
        r.click = c;
        return r;
    }

    public static IngestRecord ofDeadLetter(DeadLetterRecord d) {
        IngestRecord r = new IngestRecord();
        r.deadLetter = d;
        return r;
    }

    public static IngestRecord ofTick(long atMs) {
        IngestRecord r = new IngestRecord();
        r.tickAtMs = atMs;
        return r;
    }

    public boolean isTick() {
        return click == null && deadLetter == null && tickAtMs != Long.MIN_VALUE;
    }

    public boolean isClick() {
        return click != null;
    }

    @Override
    public String toString() {
        return isClick() ? click.toString() : isTick() ? "tick@" + tickAtMs : String.valueOf(deadLetter);
    }
}

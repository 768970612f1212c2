package io.adclick.flink.model;

/**
 * Either-like output of the Kafka deserializer: exactly one of {@link #click} / {@link #deadLetter}
 * is set. Split into the main stream and the dead-letter side output right after the source.
 */
public class IngestRecord {
    public Click click;
    public DeadLetterRecord deadLetter;

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

    public boolean isClick() {
        return click != null;
    }

    @Override
    public String toString() {
        return isClick() ? click.toString() : String.valueOf(deadLetter);
    }
}

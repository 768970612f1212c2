package io.adclick.flink.functions;

import io.adclick.flink.model.Click;
import io.adclick.flink.model.DeadLetterRecord;
import io.adclick.flink.model.IngestRecord;

import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/** Valid clicks to the main output, dead letters to {@link #DEAD_LETTERS}; gateway ticks end here (they only moved the watermark). */
public class SplitDeadLetters extends ProcessFunction<IngestRecord, Click> {
    private static final long serialVersionUID = 1L;

    public static final OutputTag<DeadLetterRecord> DEAD_LETTERS = new OutputTag<>("dead-letters") {};

    @Override
    public void processElement(IngestRecord value, Context ctx, Collector<Click> out) {
        if (value.click != null) {
            out.collect(value.click);
        } else if (value.deadLetter != null) {
            ctx.output(DEAD_LETTERS, value.deadLetter);
        }
    }
}

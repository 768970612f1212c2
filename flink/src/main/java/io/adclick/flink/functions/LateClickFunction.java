package io.adclick.flink.functions;

import io.adclick.flink.model.Click;
import io.adclick.flink.model.LateClickRecord;
import io.adclick.flink.model.WindowGranularity;

import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;

/** Wraps a click dropped by a window operator (beyond allowed lateness) as a late-click record. */
public class LateClickFunction extends ProcessFunction<Click, LateClickRecord> {
    private static final long serialVersionUID = 1L;

    private final WindowGranularity granularity;

    public LateClickFunction(WindowGranularity granularity) {
        this.granularity = granularity;
    }

    @Override
    public void processElement(Click click, Context ctx, Collector<LateClickRecord> out) {
        LateClickRecord r = new LateClickRecord();
        r.click = click;
        r.granularity = granularity;
        r.windowStartMs = granularity.windowStart(click.eventTimeMs);
        r.watermarkMs = ctx.timerService().currentWatermark();
        r.detectedAtMs = ctx.timerService().currentProcessingTime();
        out.collect(r);
    }
}

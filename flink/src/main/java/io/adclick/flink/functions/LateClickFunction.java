package io.adclick.flink.functions;

import io.adclick.flink.model.Click;
import io.adclick.flink.model.LateClickRecord;
import io.adclick.flink.model.WindowGranularity;
import io.adclick.flink.serde.TraceContext;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Wraps a click dropped by a window operator (beyond allowed lateness) as a late-click record. Counted in
 * metric {@code lateClicks}; logged with its trace id (each of the first few per subtask, then every 1000th).
 */
public class LateClickFunction extends ProcessFunction<Click, LateClickRecord> {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(LateClickFunction.class);
    public static final String METRIC_LATE_CLICKS = "lateClicks";
    static final long LOG_EACH_FIRST = 20;

    private final WindowGranularity granularity;
    private transient Counter lateClicks;
    private transient long seen;

    public LateClickFunction(WindowGranularity granularity) {
        this.granularity = granularity;
    }

    @Override
    public void open(OpenContext openContext) {
        lateClicks = getRuntimeContext().getMetricGroup().counter(METRIC_LATE_CLICKS);
    }

    @Override
    public void processElement(Click click, Context ctx, Collector<LateClickRecord> out) {
        LateClickRecord r = new LateClickRecord();
        r.click = click;
        r.granularity = granularity;
        r.windowStartMs = granularity.windowStart(click.eventTimeMs);
        r.watermarkMs = ctx.timerService().currentWatermark();
        r.detectedAtMs = ctx.timerService().currentProcessingTime();
        if (lateClicks != null) lateClicks.inc();
        long n = ++seen;
        if (n <= LOG_EACH_FIRST || n % 1000 == 0) {
            LOG.info("late click granularity={} impression_id={} ad_id={} event_time_ms={} watermark_ms={} trace_id={} (late for {} on this subtask: {})",
                    granularity.label, click.impressionId, Long.toUnsignedString(click.adId), click.eventTimeMs,
                    r.watermarkMs, TraceContext.logId(click.traceId), granularity.label, n);
        }
        out.collect(r);
    }
}

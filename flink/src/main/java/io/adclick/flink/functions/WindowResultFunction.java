package io.adclick.flink.functions;

import io.adclick.flink.model.WindowGranularity;
import io.adclick.flink.model.WindowResult;

import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

/**
 * Turns the window's accumulator into a full-count {@link WindowResult}. A firing is final when the
 * operator watermark has reached the window's max timestamp (end-of-window firing or a late update
 * within allowed lateness); otherwise it is a provisional early firing.
 */
public class WindowResultFunction
        extends ProcessWindowFunction<ClickCountAggregate.Acc, WindowResult, Long, TimeWindow> {
    private static final long serialVersionUID = 1L;

    private final WindowGranularity granularity;

    public WindowResultFunction(WindowGranularity granularity) {
        this.granularity = granularity;
    }

    @Override
    public void process(Long adId, Context ctx, Iterable<ClickCountAggregate.Acc> accs, Collector<WindowResult> out) {
        ClickCountAggregate.Acc acc = accs.iterator().next();
        if (acc.count == 0) return;
        TimeWindow w = ctx.window();
        WindowResult r = new WindowResult();
        r.granularity = granularity;
        r.adId = adId;
        r.campaignId = acc.campaignId;
        r.advertiserId = acc.advertiserId;
        r.windowStartMs = w.getStart();
        r.windowEndMs = w.getEnd();
        r.clicks = acc.count;
        r.watermarkMs = ctx.currentWatermark();
        r.finalFiring = ctx.currentWatermark() >= w.maxTimestamp();
        r.emittedAtMs = ctx.currentProcessingTime();
        r.maxReceivedAtMs = acc.maxReceivedAtMs == Long.MIN_VALUE ? 0 : acc.maxReceivedAtMs;
        r.traceId = acc.traceId;
        r.traceFlags = acc.traceFlags;
        out.collect(r);
    }
}

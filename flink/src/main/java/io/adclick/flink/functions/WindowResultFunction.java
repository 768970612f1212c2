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
        // One result per owner the window's clicks were signed with (ClickCountAggregate).
        emit(adId, ctx, acc, acc.campaignId, acc.advertiserId, acc.count, acc.maxReceivedAtMs, out);
        int n = acc.otherCounts == null ? 0 : acc.otherCounts.length;
        for (int i = 0; i < n; i++) {
            emit(adId, ctx, acc, acc.otherCampaignIds[i], acc.otherAdvertiserIds[i], acc.otherCounts[i],
                    acc.otherMaxReceivedAtMs[i], out);
        }
    }

    private void emit(long adId, Context ctx, ClickCountAggregate.Acc acc, long campaignId, long advertiserId,
                      long clicks, long maxReceivedAtMs, Collector<WindowResult> out) {
        if (clicks == 0) return;
        TimeWindow w = ctx.window();
        WindowResult r = new WindowResult();
        r.granularity = granularity;
        r.adId = adId;
        r.campaignId = campaignId;
        r.advertiserId = advertiserId;
        r.windowStartMs = w.getStart();
        r.windowEndMs = w.getEnd();
        r.clicks = clicks;
        r.watermarkMs = ctx.currentWatermark();
        r.finalFiring = ctx.currentWatermark() >= w.maxTimestamp();
        r.emittedAtMs = ctx.currentProcessingTime();
        r.maxReceivedAtMs = maxReceivedAtMs == Long.MIN_VALUE ? 0 : maxReceivedAtMs;
        r.traceId = acc.traceId;
        r.traceFlags = acc.traceFlags;
        out.collect(r);
    }
}

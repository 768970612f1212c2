package io.adclick.flink.functions;

import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.windowing.triggers.Trigger;
import org.apache.flink.streaming.api.windowing.triggers.TriggerResult;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;

/**
 * Event-time trigger with provisional early firings.
 *
 * <ul>
 *   <li>FIRE when the watermark passes the window end (the final result);</li>
 *   <li>while the window is open: at most one processing-time timer per window, {@code earlyIntervalMs}
 *       after the first unreported element; when it fires, FIRE (provisional): it only exists because
 *       the window changed since the last firing. No elements, no timers, no firings;</li>
 *   <li>an element arriving after the end-of-window firing (but within allowed lateness, later ones never
 *       reach the trigger) FIREs immediately with the updated full count;</li>
 *   <li>never purges: the accumulator must survive for updates within allowed lateness; the window
 *       operator clears it at window end + allowed lateness, and {@link #clear} removes our timers/state.</li>
 * </ul>
 */
public class EarlyFiringEventTimeTrigger extends Trigger<Object, TimeWindow> {
    private static final long serialVersionUID = 1L;

    /** Processing time of the pending early-fire timer of this window, if any. */
    private static final ValueStateDescriptor<Long> EARLY_TIMER =
            new ValueStateDescriptor<>("early-fire-timer", Types.LONG);
    /**
     * Written by versions before issue #17's CPU work ("elements since the last firing"); always true
     * exactly while an early timer was pending, so the pending timer now says it and this is only
     * cleared, for windows restored from such a checkpoint.
     */
    private static final ValueStateDescriptor<Boolean> LEGACY_DIRTY =
            new ValueStateDescriptor<>("early-fire-dirty", Types.BOOLEAN);

    private final long earlyIntervalMs;

    /** @param earlyIntervalMs processing-time delay of provisional firings; {@code <= 0} disables them. */
    public EarlyFiringEventTimeTrigger(long earlyIntervalMs) {
        this.earlyIntervalMs = earlyIntervalMs;
    }

    @Override
    public TriggerResult onElement(Object element, long timestamp, TimeWindow window, TriggerContext ctx) throws Exception {
        if (window.maxTimestamp() <= ctx.getCurrentWatermark()) {
            // late, but within allowed lateness: publish the corrected full count right away
            return TriggerResult.FIRE;
        }
        if (earlyIntervalMs <= 0) {
            ctx.registerEventTimeTimer(window.maxTimestamp());
            return TriggerResult.CONTINUE;
        }
        // Only the first element since the last firing touches timers: each registration is a RocksDB
        // write, and one element per pre-aggregated partial and window size arrives (issue #17). The
        // final timer, once registered, stands until it fires or the window is cleared, so registering
        // it again (idempotently) with each early timer keeps it in place.
        ValueState<Long> timer = ctx.getPartitionedState(EARLY_TIMER);
        if (timer.value() == null) {
            ctx.registerEventTimeTimer(window.maxTimestamp());
            long at = ctx.getCurrentProcessingTime() + earlyIntervalMs;
            ctx.registerProcessingTimeTimer(at);
            timer.update(at);
        }
        return TriggerResult.CONTINUE;
    }

    @Override
    public TriggerResult onProcessingTime(long time, TimeWindow window, TriggerContext ctx) throws Exception {
        ValueState<Long> timer = ctx.getPartitionedState(EARLY_TIMER);
        Long pending = timer.value();
        if (pending == null || pending != time) {
            return TriggerResult.CONTINUE; // stale timer
        }
        timer.clear();
        // A pending early timer means elements arrived since the last firing.
        return ctx.getCurrentWatermark() < window.maxTimestamp() ? TriggerResult.FIRE : TriggerResult.CONTINUE;
    }

    @Override
    public TriggerResult onEventTime(long time, TimeWindow window, TriggerContext ctx) throws Exception {
        if (time != window.maxTimestamp()) {
            return TriggerResult.CONTINUE; // e.g. the window operator's cleanup timer
        }
        cancelEarlyTimer(ctx);
        return TriggerResult.FIRE;
    }

    @Override
    public void clear(TimeWindow window, TriggerContext ctx) throws Exception {
        cancelEarlyTimer(ctx);
        ctx.deleteEventTimeTimer(window.maxTimestamp());
    }

    private static void cancelEarlyTimer(TriggerContext ctx) throws Exception {
        ValueState<Long> timer = ctx.getPartitionedState(EARLY_TIMER);
        Long pending = timer.value();
        if (pending != null) {
            ctx.deleteProcessingTimeTimer(pending);
        }
        timer.clear();
        ctx.getPartitionedState(LEGACY_DIRTY).clear();
    }

    @Override
    public String toString() {
        return "EarlyFiringEventTimeTrigger(" + earlyIntervalMs + "ms)";
    }
}

package io.adclick.flink.functions;

import io.adclick.flink.model.ClickPartial;
import io.adclick.flink.model.LateClickRecord;
import io.adclick.flink.model.WindowGranularity;

import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;

/**
 * Reads a window operator's late side output, which must stay empty: {@link ClickPreAggregator} judges
 * lateness before the ad-keyed exchange and only sends partials that cannot be late at the window
 * operator. If one ever were, its clicks would be counted nowhere (a partial carries no clicks to make
 * late corrections of), so this fails the job loudly instead of losing counts silently. Its (always
 * empty) output joins the late stream only so that the operator is part of the job graph.
 */
public class LatePartialGuard extends ProcessFunction<ClickPartial, LateClickRecord> {
    private static final long serialVersionUID = 1L;

    private final WindowGranularity granularity;

    public LatePartialGuard(WindowGranularity granularity) {
        this.granularity = granularity;
    }

    @Override
    public void processElement(ClickPartial p, Context ctx, Collector<LateClickRecord> out) {
        throw new IllegalStateException("a partial count was late at the " + granularity.label
                + " window operator (watermark " + ctx.timerService().currentWatermark() + "): " + p
                + "; the pre-aggregation must have judged it late (see ClickPreAggregator)");
    }
}

package io.adclick.flink.functions;

import io.adclick.flink.model.Click;
import io.adclick.flink.model.ClickPartial;
import io.adclick.flink.model.WindowGranularity;

import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.runtime.watermarkstatus.WatermarkStatus;
import org.apache.flink.util.OutputTag;

import java.util.EnumMap;
import java.util.HashMap;
import java.util.Map;

/**
 * Local pre-aggregation in front of the ad-keyed window operators (issue #17, hot keys). Runs chained
 * behind dedup (keyed by impression, so a hot ad's clicks are already spread over every subtask) and the
 * {@link RestoredWatermarkGate}; sums the clicks it sees per (ad, campaign, advertiser, UTC minute, window
 * sizes) into {@link ClickPartial}s and sends those across the ad-keyed exchange instead of one record
 * per click. A hot ad's single window subtask then receives a few partials per flush and subtask rather
 * than half of all clicks. Same mini-batch pattern as the audit tally: no state of its own.
 *
 * <p>Exactly once: the buffer is flushed in {@link #prepareSnapshotPreBarrier}, before the checkpoint
 * barrier leaves this operator, so everything counted before a barrier is downstream of it and the
 * sources replay exactly the clicks not covered by the restored checkpoint; also at {@link #finish}.
 *
 * <p>Lateness is judged here, per window size, against this operator's input watermark (which the gate
 * in front of it has already raised to the restored pre-restart watermark): a click whose window's
 * cleanup time ({@code window end - 1 + allowed lateness}, as Flink's window operator computes it) is not
 * after the watermark goes to that size's late side output ({@link #lateTag}) as itself, exactly what the
 * window operator's late side output carried before; the window sizes it is still on time for count it.
 * Why here and not in the window operator: a partial stands for many clicks, a late correction needs each
 * click. Why this is safe: a partial is on time by this subtask's watermark {@code W}; the buffer is
 * flushed before any watermark advance is forwarded, so the partial travels ahead of every later
 * watermark of this subtask, and the window operator's watermark is the minimum over all its input
 * channels, at most {@code W}. So a partial is never late at the window operator (a guard there fails
 * loudly if it ever were). For that minimum to hold, this operator never forwards a watermark status: an
 * input channel marked IDLE would be left out of the window operator's minimum, and a partial from it
 * after it turned active again could then be behind that watermark. (Every subtask here reads the same
 * input channels through the dedup exchange, so they go idle together anyway.)
 *
 * <p>Early firings see partials at most {@code flushIntervalMs} late (processing-time flush) or at the
 * next watermark advance, whichever is first; final firings see every click before the watermark that
 * closes their window.
 */
public final class ClickPreAggregator extends AbstractStreamOperator<ClickPartial>
        implements OneInputStreamOperator<Click, ClickPartial>, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;
    public static final String METRIC_CLICKS_IN = "preAggregatedClicks";
    public static final String METRIC_PARTIALS_OUT = "partialsEmitted";

    private final long allowedLatenessMs;
    private final long flushIntervalMs;
    private final EnumMap<WindowGranularity, OutputTag<Click>> lateTags;

    private transient Map<Key, ClickPartial> pending;
    private transient boolean timerPending;
    private transient long watermark;
    private transient Counter clicksIn;
    private transient Counter partialsOut;

    /** The buffer key: (ad, owner, minute, window sizes). */
    private record Key(long adId, long campaignId, long advertiserId, long minuteStartMs, int granularities) {}

    public ClickPreAggregator(long allowedLatenessMs, long flushIntervalMs, Map<WindowGranularity, OutputTag<Click>> lateTags) {
        this.allowedLatenessMs = allowedLatenessMs;
        this.flushIntervalMs = Math.max(1, flushIntervalMs);
        this.lateTags = new EnumMap<>(lateTags);
    }

    @Override
    public void open() throws Exception {
        super.open();
        pending = new HashMap<>();
        timerPending = false;
        watermark = Long.MIN_VALUE;
        clicksIn = getMetricGroup().counter(METRIC_CLICKS_IN);
        partialsOut = getMetricGroup().counter(METRIC_PARTIALS_OUT);
    }

    @Override
    public void processElement(StreamRecord<Click> element) {
        Click c = element.getValue();
        int onTime = 0;
        for (WindowGranularity g : WindowGranularity.values()) {
            if (isLate(g, c.eventTimeMs, allowedLatenessMs, watermark)) {
                output.collect(lateTags.get(g), new StreamRecord<>(c, element.getTimestamp()));
            } else {
                onTime |= ClickPartial.bit(g);
            }
        }
        if (onTime == 0) return;
        clicksIn.inc();
        Key k = new Key(c.adId, c.campaignId, c.advertiserId, ClickPartial.minuteOf(c.eventTimeMs), onTime);
        ClickPartial p = pending.get(k);
        if (p == null) {
            p = ClickPartial.emptyFor(c, onTime);
            pending.put(k, p);
        }
        p.add(c);
        if (!timerPending) {
            timerPending = true;
            getProcessingTimeService().registerTimer(
                    getProcessingTimeService().getCurrentProcessingTime() + flushIntervalMs, this);
        }
    }

    /**
     * Flink's window operator's rule for a tumbling window: late once {@code maxTimestamp + allowed
     * lateness <= watermark} (saturating at Long.MAX_VALUE).
     */
    static boolean isLate(WindowGranularity g, long eventTimeMs, long allowedLatenessMs, long watermark) {
        long maxTimestamp = g.windowStart(eventTimeMs) + g.sizeMs() - 1;
        long cleanup = maxTimestamp + allowedLatenessMs;
        if (cleanup < maxTimestamp) cleanup = Long.MAX_VALUE;
        return cleanup <= watermark;
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        if (mark.getTimestamp() > watermark) {
            flush(); // everything judged on time before this watermark travels ahead of it
            watermark = mark.getTimestamp();
        }
        super.processWatermark(mark);
    }

    /** Never forwarded (see the class comment): the output stays ACTIVE. */
    @Override
    public void processWatermarkStatus(WatermarkStatus status) {}

    @Override
    public void onProcessingTime(long time) {
        timerPending = false;
        flush();
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        super.prepareSnapshotPreBarrier(checkpointId);
        flush();
    }

    @Override
    public void finish() throws Exception {
        flush();
        super.finish();
    }

    private void flush() {
        if (pending.isEmpty()) return;
        for (ClickPartial p : pending.values()) {
            output.collect(new StreamRecord<>(p, p.minuteStartMs));
        }
        partialsOut.inc(pending.size());
        pending.clear();
    }
}

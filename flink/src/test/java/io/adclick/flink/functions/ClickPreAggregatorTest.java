package io.adclick.flink.functions;

import io.adclick.flink.PipelineTopology;
import io.adclick.flink.TestClicks;
import io.adclick.flink.model.Click;
import io.adclick.flink.model.ClickPartial;
import io.adclick.flink.model.WindowGranularity;

import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.runtime.watermarkstatus.WatermarkStatus;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.util.OutputTag;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The pre-aggregation in front of the ad-keyed exchange (issue #17), through an operator harness. */
class ClickPreAggregatorTest {
    private static final long W0 = 1_700_000_040_000L; // minute aligned, 5m/1h not
    private static final long LATENESS = 120_000;
    private static final long FLUSH = 200;

    private OneInputStreamOperatorTestHarness<Click, ClickPartial> h;

    @BeforeEach
    void setUp() throws Exception {
        Map<WindowGranularity, OutputTag<Click>> tags = new EnumMap<>(WindowGranularity.class);
        for (WindowGranularity g : WindowGranularity.values()) tags.put(g, PipelineTopology.lateTag(g));
        h = new OneInputStreamOperatorTestHarness<>(new ClickPreAggregator(LATENESS, FLUSH, tags));
        h.setProcessingTime(0);
        h.open();
    }

    @AfterEach
    void tearDown() throws Exception {
        h.close();
    }

    private void add(String id, long ad, long ts) throws Exception {
        h.processElement(new StreamRecord<>(TestClicks.click(id, ad, ts), ts));
    }

    /** Output in order: "P:ad/campaign/minute-offset/granularities=clicks" for partials, "W:ts" for watermarks. */
    private List<String> drain() {
        List<String> out = new ArrayList<>();
        List<String> batch = new ArrayList<>();
        for (Object o : h.getOutput()) {
            if (o instanceof StreamRecord<?> r) {
                ClickPartial p = (ClickPartial) r.getValue();
                assertEquals(p.minuteStartMs, r.getTimestamp(), "a partial's timestamp is its minute");
                batch.add("P:" + p.adId + "/" + p.campaignId + "/" + (p.minuteStartMs - W0) + "/" + p.granularities + "=" + p.clicks);
            } else {
                batch.sort(null); // a flush emits in hash order
                out.addAll(batch);
                batch.clear();
                out.add(o instanceof Watermark w ? "W:" + (w.getTimestamp() - W0) : o.toString());
            }
        }
        batch.sort(null);
        out.addAll(batch);
        h.getOutput().clear();
        return out;
    }

    private List<String> late(WindowGranularity g) {
        var q = h.getSideOutput(PipelineTopology.lateTag(g));
        return q == null ? List.of() : q.stream().map(r -> r.getValue().impressionId).sorted().collect(Collectors.toList());
    }

    @Test
    void sumsPerAdOwnerAndMinuteAndFlushesBeforeTheWatermarkMovesOn() throws Exception {
        add("a", 1, W0 + 1_000);
        add("b", 1, W0 + 2_000);
        add("c", 1, W0 + 61_000);  // next minute
        add("d", 2, W0 + 3_000);
        Click moved = TestClicks.click("e", 1, W0 + 4_000);
        moved.campaignId = 11;     // the same ad signed for another campaign: its own partial
        h.processElement(new StreamRecord<>(moved, moved.eventTimeMs));
        assertEquals(List.of(), drain(), "buffered, nothing sent per click");
        h.processWatermark(new Watermark(W0 + 59_999));
        assertEquals(List.of("P:1/10/0/7=2", "P:1/10/60000/7=1", "P:1/11/0/7=1", "P:2/20/0/7=1", "W:59999"), drain(),
                "every click judged before a watermark is sent ahead of it");
        h.processWatermark(new Watermark(W0 + 59_999));
        assertEquals(List.of("W:59999"), drain(), "nothing buffered: a repeated watermark just passes");
    }

    @Test
    void flushesBeforeEveryCheckpointBarrierAndOnTheProcessingTimeTimer() throws Exception {
        add("a", 1, W0 + 1_000);
        h.prepareSnapshotPreBarrier(1);
        assertEquals(List.of("P:1/10/0/7=1"), drain(), "flushed before the barrier: the operator keeps no state");
        add("b", 1, W0 + 2_000);
        add("c", 1, W0 + 3_000);
        h.setProcessingTime(FLUSH - 1);
        assertEquals(List.of(), drain());
        h.setProcessingTime(FLUSH);
        assertEquals(List.of("P:1/10/0/7=2"), drain(), "early firings see partials within the flush interval");
        h.setProcessingTime(10 * FLUSH);
        assertEquals(List.of(), drain(), "nothing buffered, nothing sent");
    }

    /**
     * Lateness per window size, by the window operator's rule: late once window end - 1 + allowed
     * lateness <= watermark. A click late for its 1m window but not its 5m/1h ones goes to the 1m late output
     * and counts for 5m and 1h; a click late for all three is never counted, only late.
     */
    @Test
    void judgesLatenessPerWindowSizeLikeTheWindowOperator() throws Exception {
        long b = W0 + 60_000; // start of a 5m window (and of a 1m window); W0 itself is the last minute of a 5m window
        assertEquals(0, Math.floorMod(b, 300_000L));
        long h0 = b - Math.floorMod(b, 3_600_000L);
        long cleanup1m = b + 59_999 + LATENESS;
        h.processWatermark(new Watermark(cleanup1m - 1)); // the 1m window of b one ms before its cleanup time
        add("on-time", 1, b);
        h.processWatermark(new Watermark(cleanup1m));     // now past it; the 5m and 1h windows are not
        add("late-1m", 1, b + 5);
        h.processWatermark(new Watermark(h0 + 3_600_000 - 1 + LATENESS)); // past the 1h window's cleanup too
        add("late-all", 1, b + 10);
        h.prepareSnapshotPreBarrier(2);
        assertEquals(List.of("W:" + (cleanup1m - 1 - W0), "P:1/10/60000/7=1", "W:" + (cleanup1m - W0), "P:1/10/60000/6=1",
                "W:" + (h0 + 3_600_000 - 1 + LATENESS - W0)), drain(),
                "a click late for its 1m window only still counts for 5m and 1h (bits 2|4)");
        assertEquals(List.of("late-1m", "late-all"), late(WindowGranularity.MINUTE_1));
        assertEquals(List.of("late-all"), late(WindowGranularity.MINUTE_5));
        assertEquals(List.of("late-all"), late(WindowGranularity.HOUR_1));
    }

    @Test
    void neverForwardsAWatermarkStatus() throws Exception {
        h.processWatermarkStatus(WatermarkStatus.IDLE);
        h.processWatermarkStatus(WatermarkStatus.ACTIVE);
        assertEquals(List.of(), drain(), "an IDLE channel would be left out of the window operator's minimum");
    }

    @Test
    void finishFlushes() throws Exception {
        add("a", 3, W0 + 1_000);
        h.endInput();
        h.getOperator().finish();
        assertTrue(drain().contains("P:3/30/0/7=1"));
    }
}

package io.adclick.flink.functions;

import io.adclick.flink.model.Click;
import io.adclick.flink.model.IngestRecord;

import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;

class ClickWatermarksTest {
    static final class Out implements WatermarkOutput {
        final List<Long> wms = new ArrayList<>();

        @Override
        public void emitWatermark(Watermark w) {
            wms.add(w.getTimestamp());
        }

        @Override
        public void markIdle() {}

        @Override
        public void markActive() {}

        long last() {
            return wms.isEmpty() ? Long.MIN_VALUE : wms.get(wms.size() - 1);
        }
    }

    static IngestRecord click(long t) {
        Click c = new Click();
        c.eventTimeMs = t;
        return IngestRecord.ofClick(c);
    }

    @Test
    void boundedOutOfOrdernessWhileClicksFlowThenFollowsTheClockWhenQuiet() {
        AtomicLong now = new AtomicLong(1_000_000);
        var g = new ClickWatermarks.ClockFollowingWatermarks(5_000, 10_000, now::get);
        Out out = new Out();
        g.onPeriodicEmit(out);
        assertEquals(0, out.wms.size(), "nothing seen, not idle yet: no watermark");

        g.onEvent(click(900_000), 900_000, out);
        g.onEvent(click(890_000), 890_000, out); // out of order: does not move it back
        g.onPeriodicEmit(out);
        assertEquals(900_000 - 5_001, out.last());

        now.addAndGet(9_999);
        g.onPeriodicEmit(out);
        assertEquals(900_000 - 5_001, out.last(), "not idle yet");

        now.addAndGet(1);
        g.onPeriodicEmit(out);
        assertEquals(now.get() - 10_000 - 5_001, out.last(), "quiet: follows the clock");
        now.addAndGet(60_000);
        g.onPeriodicEmit(out);
        assertEquals(now.get() - 15_001, out.last(), "keeps following");

        // A dead letter is not activity; an old click does not move the watermark back.
        g.onEvent(IngestRecord.ofDeadLetter(null), Long.MIN_VALUE, out);
        long before = out.last();
        g.onEvent(click(500_000), 500_000, out);
        now.addAndGet(1_000);
        g.onPeriodicEmit(out);
        assertEquals(before, out.last(), "monotonic, and a partition delivering clicks is not idle");
        for (int i = 1; i < out.wms.size(); i++) {
            assertEquals(true, out.wms.get(i) > out.wms.get(i - 1), "strictly increasing emissions");
        }
    }

    /**
     * Issue #15, defect 9: the gateway accepts event times up to its clock skew allowance (5 min)
     * ahead of its receive time. Such a click must not push the watermark past the honest clicks
     * received with it (they would all be late, beyond the 2-minute allowed lateness): for the
     * watermark, a click's time is capped at its gateway receive time.
     */
    @Test
    void aClickFromTheFutureDoesNotPushTheWatermarkPastHonestClicks() {
        AtomicLong now = new AtomicLong(1_000_000);
        var g = new ClickWatermarks.ClockFollowingWatermarks(5_000, 0, now::get);
        Out out = new Out();
        g.onEvent(received(1_000_000, 999_500), 999_500, out);
        g.onEvent(received(1_000_100, 1_000_100 + 300_000), 1_000_100 + 300_000, out); // 5 min ahead
        g.onPeriodicEmit(out);
        assertEquals(1_000_100 - 5_001, out.last(), "watermark from the receive time, not the claimed future");
        g.onEvent(received(1_200_000, 1_199_000), 1_199_000, out);
        g.onPeriodicEmit(out);
        assertEquals(1_199_000 - 5_001, out.last(), "honest clicks move it on as before");
    }

    static IngestRecord received(long receivedAtMs, long eventTimeMs) {
        Click c = new Click();
        c.eventTimeMs = eventTimeMs;
        c.receivedAtMs = receivedAtMs;
        return IngestRecord.ofClick(c);
    }

    @Test
    void zeroIdleAfterDisablesClockFollowing() {
        AtomicLong now = new AtomicLong(1_000_000);
        var g = new ClickWatermarks.ClockFollowingWatermarks(5_000, 0, now::get);
        Out out = new Out();
        g.onEvent(click(100_000), 100_000, out);
        now.addAndGet(3_600_000);
        g.onPeriodicEmit(out);
        assertEquals(100_000 - 5_001, out.last());
    }

    static IngestRecord tick(long atMs) {
        return IngestRecord.ofTick(atMs);
    }

    /**
     * Issue #15, defect 2: a partition that is behind (back-pressure, a slow fetch, a job that was
     * stopped) also goes seconds without a record. With the job's default configuration its watermark
     * must stay where its records put it, not jump to the clock, or the rest of its backlog (clicks that
     * were on time at the gateway) becomes late corrections.
     */
    @Test
    void withTheDefaultConfigAPartitionWithABacklogIsNeverTakenForIdle() {
        io.adclick.flink.JobConfig cfg = io.adclick.flink.JobConfig.defaults();
        AtomicLong now = new AtomicLong(1_000_000);
        var g = new ClickWatermarks.ClockFollowingWatermarks(cfg.outOfOrdernessMs, cfg.idlenessMs, now::get);
        Out out = new Out();
        g.onEvent(received(700_000, 700_000), 700_000, out); // 5 min behind the clock: a backlog
        g.onPeriodicEmit(out);
        long wm = out.last();
        assertEquals(700_000 - cfg.outOfOrdernessMs - 1, wm);
        now.addAndGet(60_000); // a minute without a record: back-pressure, not idleness
        g.onPeriodicEmit(out);
        assertEquals(wm, out.last(), "the watermark waits for the partition's records");
    }

    /** Gateway ticks move a quiet partition's watermark like a click with event time = tick time. */
    @Test
    void ticksMoveTheWatermarkOfAQuietPartition() {
        AtomicLong now = new AtomicLong(1_000_000);
        var g = new ClickWatermarks.ClockFollowingWatermarks(5_000, 0, now::get);
        Out out = new Out();
        g.onEvent(click(990_000), 990_000, out);
        g.onPeriodicEmit(out);
        assertEquals(990_000 - 5_001, out.last());
        var assigner = new ClickWatermarks.EventTimeAssigner();
        IngestRecord t = tick(1_030_000);
        g.onEvent(t, assigner.extractTimestamp(t, 0), out);
        g.onPeriodicEmit(out);
        assertEquals(1_030_000 - 5_001, out.last(), "a tick advances it");
        IngestRecord old = tick(1_000_000);
        g.onEvent(old, assigner.extractTimestamp(old, 0), out);
        g.onPeriodicEmit(out);
        assertEquals(1_030_000 - 5_001, out.last(), "an older tick (another gateway) never moves it back");
    }
}

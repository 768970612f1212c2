package io.adclick.flink.functions;

import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.runtime.watermarkstatus.WatermarkStatus;
import org.apache.flink.streaming.util.AbstractStreamOperatorTestHarness;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The gate on its own: what it stores, what it restores, and what it emits in which order. */
class RestoredWatermarkGateTest {
    private static final int MAX_PARALLELISM = 128;

    private static OneInputStreamOperatorTestHarness<String, String> harness(int parallelism, int subtask) throws Exception {
        return new OneInputStreamOperatorTestHarness<>(
                new RestoredWatermarkGate<String>(), MAX_PARALLELISM, parallelism, subtask);
    }

    private static OneInputStreamOperatorTestHarness<String, String> restored(OperatorSubtaskState s) throws Exception {
        OneInputStreamOperatorTestHarness<String, String> h = harness(1, 0);
        h.initializeState(s);
        h.open();
        return h;
    }

    /** Output as short strings, in order: "wm:<ts>", "<value>@<ts>", "IDLE"/"ACTIVE"; then cleared. */
    private static List<String> drain(OneInputStreamOperatorTestHarness<String, String> h) {
        List<String> out = new ArrayList<>();
        for (Object o : h.getOutput()) {
            if (o instanceof Watermark w) {
                out.add("wm:" + w.getTimestamp());
            } else if (o instanceof StreamRecord<?> r) {
                out.add(r.getValue() + "@" + r.getTimestamp());
            } else if (o instanceof WatermarkStatus s) {
                out.add(s.isIdle() ? "IDLE" : "ACTIVE");
            }
        }
        h.getOutput().clear();
        return out;
    }

    private static RestoredWatermarkGate<String> gate(OneInputStreamOperatorTestHarness<String, String> h) {
        return (RestoredWatermarkGate<String>) h.getOneInputOperator();
    }

    private static OperatorSubtaskState runUpTo(long wm) throws Exception {
        try (var h = harness(1, 0)) {
            h.open();
            h.processElement("a", 10);
            h.processWatermark(new Watermark(wm));
            return h.snapshot(1L, 1L);
        }
    }

    @Test
    void freshStartForwardsUnchangedAndKeepsWatermarksMonotonic() throws Exception {
        try (var h = harness(1, 0)) {
            h.open();
            assertEquals(Long.MIN_VALUE, gate(h).restoredWatermark());
            h.processElement("a", 10);
            h.processWatermark(new Watermark(100));
            h.processWatermark(new Watermark(100)); // not increasing: not forwarded again
            h.processWatermark(new Watermark(50));
            h.processElement("b", 20); // late for the watermark: the gate never drops or reorders elements
            h.processWatermark(new Watermark(200));
            assertEquals(List.of("a@10", "wm:100", "b@20", "wm:200"), drain(h));
        }
    }

    @Test
    void restoredWatermarkPrecedesTheFirstElement() throws Exception {
        OperatorSubtaskState s = runUpTo(5_000);
        try (var h = restored(s)) {
            assertEquals(5_000, gate(h).restoredWatermark());
            assertEquals(List.of(), drain(h), "nothing is emitted before the first input");
            h.processElement("late", 100);
            h.processElement("next", 6_000);
            assertEquals(List.of("wm:5000", "late@100", "next@6000"), drain(h));
            h.processWatermark(new Watermark(3_000)); // the sources start over from below: held at the restored value
            h.processWatermark(new Watermark(5_000));
            assertEquals(List.of(), drain(h));
            h.processWatermark(new Watermark(5_001));
            assertEquals(List.of("wm:5001"), drain(h));
        }
    }

    @Test
    void restoredWatermarkPrecedesTheFirstWatermark() throws Exception {
        OperatorSubtaskState s = runUpTo(5_000);
        try (var h = restored(s)) {
            h.processWatermark(new Watermark(1_000));
            assertEquals(List.of("wm:5000"), drain(h), "max(incoming, restored)");
        }
        try (var h = restored(s)) {
            h.processWatermark(new Watermark(9_000));
            assertEquals(List.of("wm:5000", "wm:9000"), drain(h), "a higher first watermark follows the restored one");
        }
    }

    @Test
    void restoredWatermarkIsEmittedWhileActiveAndStatusPassesThrough() throws Exception {
        OperatorSubtaskState s = runUpTo(5_000);
        try (var h = restored(s)) {
            h.processWatermarkStatus(WatermarkStatus.IDLE); // e.g. an empty input after the restart
            h.processElement("late", 100);                  // records may still flow while idle
            h.processWatermarkStatus(WatermarkStatus.ACTIVE);
            h.processWatermark(new Watermark(4_000));       // below the restored value: held
            h.processWatermark(new Watermark(7_000));
            assertEquals(List.of("wm:5000", "IDLE", "late@100", "ACTIVE", "wm:7000"), drain(h),
                    "the restored watermark goes out before the output turns idle (an idle output drops watermarks)");
        }
    }

    @Test
    void restoredValueSurvivesARestoreBeforeAnythingWasForwarded() throws Exception {
        OperatorSubtaskState s = runUpTo(5_000);
        OperatorSubtaskState again;
        try (var h = restored(s)) {
            again = h.snapshot(2L, 2L); // crash again before any input
        }
        try (var h = restored(again)) {
            h.processElement("late", 100);
            assertEquals(List.of("wm:5000", "late@100"), drain(h));
            h.processWatermark(new Watermark(8_000));
            drain(h);
            OperatorSubtaskState third = h.snapshot(3L, 3L);
            try (var h3 = restored(third)) {
                h3.processElement("x", 1);
                assertEquals(List.of("wm:8000", "x@1"), drain(h3), "the newest forwarded watermark is stored");
            }
        }
    }

    @Test
    void endOfInputIsForwardedButNeverStored() throws Exception {
        OperatorSubtaskState s;
        try (var h = harness(1, 0)) {
            h.open();
            h.processWatermark(new Watermark(5_000));
            h.processWatermark(Watermark.MAX_WATERMARK);
            assertEquals(List.of("wm:5000", "wm:" + Long.MAX_VALUE), drain(h));
            s = h.snapshot(1L, 1L);
        }
        try (var h = restored(s)) {
            h.processElement("a", 100);
            assertEquals(List.of("wm:5000", "a@100"), drain(h), "restored from the last finite watermark");
        }
    }

    @Test
    void noStateNoRestoredWatermark() throws Exception {
        // e.g. a checkpoint taken before the gate existed, or a subtask that had not seen a watermark
        OperatorSubtaskState s;
        try (var h = harness(1, 0)) {
            h.open();
            h.processElement("a", 10);
            s = h.snapshot(1L, 1L);
        }
        try (var h = restored(s)) {
            h.processElement("b", 10);
            assertEquals(List.of("b@10"), drain(h));
        }
    }

    @Test
    void rescalingRestoresTheMinimumOfAllSubtasks() throws Exception {
        long[] wms = {7_000, 5_000, 6_000};
        OperatorSubtaskState[] snaps = new OperatorSubtaskState[wms.length];
        for (int i = 0; i < wms.length; i++) {
            try (var h = harness(wms.length, i)) {
                h.open();
                h.processWatermark(new Watermark(wms[i]));
                snaps[i] = h.snapshot(1L, 1L);
            }
        }
        OperatorSubtaskState merged = AbstractStreamOperatorTestHarness.repackageState(snaps);
        for (int newParallelism : new int[] {1, 2, 5}) {
            for (int i = 0; i < newParallelism; i++) {
                OperatorSubtaskState part = AbstractStreamOperatorTestHarness.repartitionOperatorState(
                        merged, MAX_PARALLELISM, wms.length, newParallelism, i);
                try (var h = harness(newParallelism, i)) {
                    h.initializeState(part);
                    h.open();
                    h.processElement("late", 100);
                    assertEquals(List.of("wm:5000", "late@100"), drain(h),
                            "subtask " + i + "/" + newParallelism + " restores the lowest pre-restart watermark");
                }
            }
        }
    }
}

package io.adclick.flink.functions;

import io.adclick.flink.PipelineTopology;
import io.adclick.flink.TestClicks;
import io.adclick.flink.model.Click;
import io.adclick.flink.model.ClickPartial;
import io.adclick.flink.model.WindowGranularity;
import io.adclick.flink.model.WindowResult;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.operators.StreamOperatorFactory;
import org.apache.flink.streaming.api.transformations.OneInputTransformation;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.runtime.watermarkstatus.WatermarkStatus;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.util.OutputTag;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The real window operator as wired by PipelineTopology (assigner + custom trigger + allowed lateness
 * + late side output + aggregate/process functions), driven through a keyed harness. Since issue #17 it
 * adds up {@link ClickPartial}s; here each click is fed as a partial of one click, so every count and
 * firing below is the one a click-by-click window gave before. The restore test chains gate,
 * pre-aggregation and window operator as PipelineTopology does.
 */
class WindowOperatorTest {
    private static final long W0 = 1_700_000_040_000L; // minute aligned
    private static final long LATENESS = 120_000;
    private static final long EARLY = 2_000;
    private static final OutputTag<ClickPartial> LATE = PipelineTopology.latePartialTag(WindowGranularity.MINUTE_1);

    private KeyedOneInputStreamOperatorTestHarness<Long, ClickPartial, WindowResult> h;

    @BeforeEach
    void setUp() throws Exception {
        h = windowHarness();
        h.setProcessingTime(0);
        h.open();
    }

    @SuppressWarnings("unchecked")
    private static KeyedOneInputStreamOperatorTestHarness<Long, ClickPartial, WindowResult> windowHarness() throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        DataStream<ClickPartial> src = env.fromData(TypeInformation.of(ClickPartial.class), one(TestClicks.click("x", 1, W0)));
        SingleOutputStreamOperator<WindowResult> w =
                PipelineTopology.windowAggregate(src.keyBy(new PipelineTopology.PartialAdIdKey(), Types.LONG),
                        WindowGranularity.MINUTE_1, LATENESS, EARLY, LATE);
        StreamOperatorFactory<WindowResult> factory =
                ((OneInputTransformation<ClickPartial, WindowResult>) w.getTransformation()).getOperatorFactory();
        return new KeyedOneInputStreamOperatorTestHarness<>(factory, new PipelineTopology.PartialAdIdKey(), Types.LONG);
    }

    private static ClickPartial one(Click c) {
        return ClickPartial.of(c, ClickPartial.ALL);
    }

    @AfterEach
    void tearDown() throws Exception {
        h.close();
    }

    private void add(String id, long ad, long ts) throws Exception {
        h.processElement(new StreamRecord<>(one(TestClicks.click(id, ad, ts)), ts));
    }

    private List<WindowResult> drain() {
        List<WindowResult> out = h.extractOutputValues();
        h.getOutput().clear();
        return out;
    }

    private static String brief(WindowResult r) {
        return r.adId + ":" + r.clicks + (r.finalFiring ? "F" : "E");
    }

    private static List<String> brief(List<WindowResult> rs) {
        return rs.stream().map(WindowOperatorTest::brief).sorted().collect(Collectors.toList());
    }

    @Test
    void earlyFinalLateWithinLatenessAndBeyond() throws Exception {
        add("a", 1, W0 + 10_000);
        add("b", 1, W0 + 20_000);
        add("c", 2, W0 + 5_000);
        h.setProcessingTime(1_999);
        assertEquals(List.of(), drain(), "no early firing before the interval");

        h.setProcessingTime(2_000);
        List<WindowResult> early = drain();
        assertEquals(List.of("1:2E", "2:1E"), brief(early), "provisional firing per changed window");
        WindowResult e1 = early.stream().filter(r -> r.adId == 1).findFirst().orElseThrow();
        assertEquals(W0, e1.windowStartMs);
        assertEquals(W0 + 60_000, e1.windowEndMs);
        assertEquals(10, e1.campaignId);
        assertEquals(100, e1.advertiserId);
        assertEquals(W0 + 20_050, e1.maxReceivedAtMs);
        assertEquals(2_000, e1.emittedAtMs);
        assertEquals(WindowGranularity.MINUTE_1, e1.granularity);

        h.setProcessingTime(4_000);
        assertEquals(List.of(), drain(), "unchanged windows do not re-fire");
        assertEquals(0, h.numProcessingTimeTimers(), "idle windows keep no processing-time timers");

        h.setProcessingTime(4_000);
        add("d", 1, W0 + 30_000);
        h.setProcessingTime(6_000);
        assertEquals(List.of("1:3E"), brief(drain()), "only the changed window re-fires, with the full count");

        add("e", 1, W0 + 59_999);
        h.processWatermark(new Watermark(W0 + 59_998));
        assertEquals(List.of(), drain(), "window still open one ms before its end");
        h.processWatermark(new Watermark(W0 + 59_999));
        List<WindowResult> fin = drain();
        assertEquals(List.of("1:4F", "2:1F"), brief(fin), "final firing when the watermark passes the end");
        assertTrue(fin.stream().allMatch(r -> r.watermarkMs == W0 + 59_999));
        assertEquals(0, h.numProcessingTimeTimers(), "final firing cancels the pending early timer");
        h.setProcessingTime(10_000);
        assertEquals(List.of(), drain(), "no early firing after final");

        add("f", 1, W0 + 40_000); // late, but within allowed lateness
        assertEquals(List.of("1:5F"), brief(drain()), "update within lateness re-fires the full count immediately");

        h.processWatermark(new Watermark(W0 + 59_999 + LATENESS)); // cleanup time of the window
        assertEquals(List.of(), drain());
        assertEquals(0, h.numEventTimeTimers(), "window cleaned up, no timers left");
        assertEquals(0, h.numProcessingTimeTimers());
        assertEquals(0, h.numKeyedStateEntries(), "window contents and trigger state cleared");

        add("g", 1, W0 + 50_000); // beyond allowed lateness
        assertEquals(List.of(), drain(), "never counted");
        var late = h.getSideOutput(LATE);
        assertEquals(1, late.size(), "goes to the late side output instead of being dropped");
        assertEquals("g", late.peek().getValue().click.impressionId);

        add("h", 1, W0 + 60_000); // a later window that is itself within lateness: immediate final update
        assertEquals(List.of("1:1F"), brief(drain()));
        add("i", 1, W0 + 180_000); // a window still open: early firing again
        assertEquals(1, h.numProcessingTimeTimers());
        h.setProcessingTime(12_000);
        List<WindowResult> next = drain();
        assertEquals(List.of("1:1E"), brief(next));
        assertEquals(W0 + 180_000, next.get(0).windowStartMs);
        assertFalse(next.get(0).finalFiring);
    }

    /**
     * Issue #15, defect 3: a window is per ad, but every click counts for exactly the (advertiser,
     * campaign, ad) it was signed with. An ad moved between campaigns (or a click claiming another
     * advertiser's ad) gives one result per owner in the same window, each with its own count,
     * never the whole window under its first click's owner.
     */
    @Test
    void aMovedAdCountsEachClickForTheOwnerItWasSignedWith() throws Exception {
        add("a", 1, W0 + 1_000);                       // campaign 10, advertiser 100
        addOwned("b", 1, 11, 100, W0 + 2_000);          // moved to campaign 11
        addOwned("c", 1, 11, 100, W0 + 3_000);
        addOwned("d", 1, 66, 600, W0 + 4_000);          // claims another advertiser
        add("e", 1, W0 + 5_000);
        h.processWatermark(new Watermark(W0 + 59_999));
        List<String> got = drain().stream()
                .map(r -> r.advertiserId + "/" + r.campaignId + "/" + r.adId + ":" + r.clicks + (r.finalFiring ? "F" : "E")
                        + "@" + r.maxReceivedAtMs)
                .sorted().collect(Collectors.toList());
        assertEquals(List.of(
                "100/10/1:2F@" + (W0 + 5_050),
                "100/11/1:2F@" + (W0 + 3_050),
                "600/66/1:1F@" + (W0 + 4_050)), got);
        addOwned("f", 1, 11, 100, W0 + 6_000); // within lateness: every owner's row re-fires, each exact
        assertEquals(List.of("1:1F", "1:2F", "1:3F"), brief(drain()));
    }

    private void addOwned(String id, long ad, long campaign, long advertiser, long ts) throws Exception {
        Click c = TestClicks.click(id, ad, ts);
        c.campaignId = campaign;
        c.advertiserId = advertiser;
        h.processElement(new StreamRecord<>(one(c), ts));
    }

    /**
     * Issue #15, defect 1: watermarks are not checkpointed. After a restore, a click older than the
     * pre-restart watermark minus the allowed lateness must still go to the late side output (a late
     * correction), never open a fresh window whose clicks=1 row would lose to the stored row downstream.
     * Gate, pre-aggregation and window operator are chained as in PipelineTopology (since issue #17 the
     * pre-aggregation judges lateness, behind the gate in the same chain): everything the gate emits is what
     * the pre-aggregation processes, and its partials and watermarks, in order, are the window's input.
     */
    @Test
    void veryLateClickAfterRestoreGoesToLateOutputNotAFreshWindow() throws Exception {
        OneInputStreamOperatorTestHarness<Click, Click> gate = gateHarness();
        gate.open();
        OneInputStreamOperatorTestHarness<Click, ClickPartial> pre = preHarness();
        pre.open();
        gatedAdd(gate, pre, "a", 1, W0 + 10_000);
        gatedAdd(gate, pre, "b", 1, W0 + 20_000);
        long wm = W0 + 59_999 + LATENESS + 60_000; // window closed, final and purged a minute ago
        gatedWatermark(gate, pre, wm);
        assertEquals(List.of("1:2F"), brief(drain()));
        assertEquals(0, h.numKeyedStateEntries(), "window purged before the checkpoint");
        OperatorSubtaskState gateSnapshot = gate.snapshot(1L, 1L);
        OperatorSubtaskState windowSnapshot = h.snapshot(1L, 1L);
        gate.close();
        pre.close();
        h.close();

        gate = gateHarness();
        gate.initializeState(gateSnapshot);
        gate.open();
        pre = preHarness();
        pre.open();
        h = windowHarness();
        h.setProcessingTime(0);
        h.initializeState(windowSnapshot);
        h.open();
        gatedAdd(gate, pre, "c", 1, W0 + 30_000); // first record after the restore, far beyond the allowed lateness
        h.setProcessingTime(10_000);
        gatedWatermark(gate, pre, W0 + 59_999 + LATENESS + 70_000); // the job moves on
        assertEquals(List.of(), brief(drain()), "no fresh window (its clicks=1 row would lose to the stored 2)");
        assertEquals(null, h.getSideOutput(LATE), "nothing is late at the window operator itself");
        var late = pre.getSideOutput(PipelineTopology.lateTag(WindowGranularity.MINUTE_1));
        assertEquals(1, late == null ? 0 : late.size(), "the click is a late correction");
        assertEquals("c", late.peek().getValue().impressionId);
        gate.close();
        pre.close();
    }

    /** The same, with a fresh (not restored) job: the first click is simply counted. */
    @Test
    void withoutRestoreTheGateChangesNothing() throws Exception {
        try (var gate = gateHarness(); var pre = preHarness()) {
            gate.open();
            pre.open();
            gatedAdd(gate, pre, "a", 1, W0 + 10_000);
            gatedWatermark(gate, pre, W0 + 60_000);
            assertEquals(List.of("1:1F"), brief(drain()));
            assertEquals(null, h.getSideOutput(LATE));
            assertEquals(null, pre.getSideOutput(PipelineTopology.lateTag(WindowGranularity.MINUTE_1)));
        }
    }

    private static OneInputStreamOperatorTestHarness<Click, Click> gateHarness() throws Exception {
        return new OneInputStreamOperatorTestHarness<>(new RestoredWatermarkGate<Click>());
    }

    private static OneInputStreamOperatorTestHarness<Click, ClickPartial> preHarness() throws Exception {
        Map<WindowGranularity, OutputTag<Click>> tags = new EnumMap<>(WindowGranularity.class);
        for (WindowGranularity g : WindowGranularity.values()) tags.put(g, PipelineTopology.lateTag(g));
        return new OneInputStreamOperatorTestHarness<>(new ClickPreAggregator(LATENESS, EARLY, tags));
    }

    private void gatedAdd(OneInputStreamOperatorTestHarness<Click, Click> gate, OneInputStreamOperatorTestHarness<Click, ClickPartial> pre,
                          String id, long ad, long ts) throws Exception {
        gate.processElement(new StreamRecord<>(TestClicks.click(id, ad, ts), ts));
        pump(gate, pre);
    }

    private void gatedWatermark(OneInputStreamOperatorTestHarness<Click, Click> gate, OneInputStreamOperatorTestHarness<Click, ClickPartial> pre,
                                long wm) throws Exception {
        gate.processWatermark(new Watermark(wm));
        pump(gate, pre);
    }

    /** Chains gate -> pre-aggregation -> window operator: each one's output, in order, is the next one's input. */
    @SuppressWarnings("unchecked")
    private void pump(OneInputStreamOperatorTestHarness<Click, Click> gate, OneInputStreamOperatorTestHarness<Click, ClickPartial> pre)
            throws Exception {
        for (Object o : gate.getOutput()) {
            if (o instanceof StreamRecord) {
                pre.processElement((StreamRecord<Click>) o);
            } else if (o instanceof Watermark) {
                pre.processWatermark((Watermark) o);
            } else if (o instanceof WatermarkStatus) {
                pre.processWatermarkStatus((WatermarkStatus) o);
            }
        }
        gate.getOutput().clear();
        pre.prepareSnapshotPreBarrier(0); // flush what is buffered (as a barrier would), then forward in order
        for (Object o : pre.getOutput()) {
            if (o instanceof StreamRecord) {
                StreamRecord<ClickPartial> r = (StreamRecord<ClickPartial>) o;
                if (r.getValue().countsFor(WindowGranularity.MINUTE_1)) h.processElement(r); // the router's job in the topology
            } else if (o instanceof Watermark) {
                h.processWatermark((Watermark) o);
            }
        }
        pre.getOutput().clear();
    }

    @Test
    void finalFiringWithoutAnyEarlyFiring() throws Exception {
        add("a", 7, W0 + 1);
        add("b", 7, W0 + 2);
        h.processWatermark(new Watermark(W0 + 60_000));
        assertEquals(List.of("7:2F"), brief(drain()));
        h.setProcessingTime(5_000);
        assertEquals(List.of(), drain());
    }

    @Test
    void earlyFiringDisabledWithZeroInterval() throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        DataStream<ClickPartial> src = env.fromData(TypeInformation.of(ClickPartial.class), one(TestClicks.click("x", 1, W0)));
        @SuppressWarnings("unchecked")
        StreamOperatorFactory<WindowResult> factory = ((OneInputTransformation<ClickPartial, WindowResult>) PipelineTopology
                .windowAggregate(src.keyBy(new PipelineTopology.PartialAdIdKey(), Types.LONG), WindowGranularity.MINUTE_5, LATENESS, 0, LATE)
                .getTransformation())
                .getOperatorFactory();
        try (var h2 = new KeyedOneInputStreamOperatorTestHarness<Long, ClickPartial, WindowResult>(
                factory, new PipelineTopology.PartialAdIdKey(), Types.LONG)) {
            h2.open();
            h2.processElement(new StreamRecord<>(one(TestClicks.click("a", 1, W0)), W0));
            assertEquals(0, h2.numProcessingTimeTimers());
            h2.processWatermark(new Watermark(W0 + 300_000));
            List<WindowResult> out = h2.extractOutputValues();
            assertEquals(1, out.size());
            assertEquals(W0 - Math.floorMod(W0, 300_000L), out.get(0).windowStartMs);
            assertTrue(out.get(0).finalFiring);
        }
    }
}

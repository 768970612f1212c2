package io.adclick.flink.functions;

import io.adclick.flink.TestClicks;
import io.adclick.flink.model.Click;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.state.rocksdb.EmbeddedRocksDBStateBackend;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

class DedupFunctionTest {
    private static final long TTL = Duration.ofHours(26).toMillis();

    private static KeyedOneInputStreamOperatorTestHarness<String, Click, Click> harness(DedupFunction f) throws Exception {
        KeyedOneInputStreamOperatorTestHarness<String, Click, Click> h = new KeyedOneInputStreamOperatorTestHarness<>(
                new KeyedProcessOperator<>(f), new DedupKeySelector(), Types.STRING);
        h.open();
        return h;
    }

    private static List<String> ids(KeyedOneInputStreamOperatorTestHarness<String, Click, Click> h) {
        return h.extractOutputValues().stream().map(c -> c.impressionId).collect(Collectors.toList());
    }

    @Test
    void firstOccurrencePassesDuplicatesAreDroppedAndCounted() throws Exception {
        DedupFunction f = new DedupFunction(TTL);
        try (var h = harness(f)) {
            h.setStateTtlProcessingTime(0);
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 1000), 1000));
            h.processElement(new StreamRecord<>(TestClicks.click("b", 1, 1000), 1000));
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 1000), 1000)); // exact duplicate
            h.processElement(new StreamRecord<>(TestClicks.click("a", 2, 9999), 9999)); // same key, other payload
            h.processElement(new StreamRecord<>(TestClicks.click("c", 1, 1000), 1000));
            assertEquals(List.of("a", "b", "c"), ids(h));
            assertEquals(2, f.duplicatesDroppedCount());
        }
    }

    @Test
    void keyIsImpressionAndEventType() throws Exception {
        DedupFunction f = new DedupFunction(TTL);
        try (var h = harness(f)) {
            Click view = TestClicks.click("a", 1, 1000);
            view.eventType = "view"; // not valid for v1 input, but proves the key includes event_type
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 1000), 1000));
            h.processElement(new StreamRecord<>(view, 1000));
            assertEquals(2, h.extractOutputValues().size());
            assertEquals(0, f.duplicatesDroppedCount());
        }
        // no collisions through separators inside impression ids
        assertNotEquals(DedupKeySelector.key("a|click", "x"), DedupKeySelector.key("a", "click|x"));
    }

    @Test
    void markIsOneLongPerKeyWithOneEventTimeTimerAndNoTtl() throws Exception {
        assertFalse(DedupFunction.stateDescriptor().getTtlConfig().isEnabled(), "no processing-time TTL");
        DedupFunction f = new DedupFunction(TTL);
        try (var h = harness(f)) {
            h.processWatermark(500);
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 1000), 1000));
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 1000), 1000));
            h.processElement(new StreamRecord<>(TestClicks.click("b", 1, 2000), 2000));
            assertEquals(2, h.numKeyedStateEntries(), "one mark per key");
            assertEquals(2, h.numEventTimeTimers(), "one timer per key");
            assertEquals(0, h.numProcessingTimeTimers());
            h.processWatermark(1000 + TTL);
            assertEquals(1, h.numKeyedStateEntries(), "a expired, b (event time 2000) not yet");
            h.processWatermark(2000 + TTL);
            assertEquals(0, h.numKeyedStateEntries());
            assertEquals(0, h.numEventTimeTimers());
        }
    }

    @Test
    void clickOlderThanTheWatermarkStillGetsAFullHorizon() throws Exception {
        long t = 1_700_000_040_000L;
        DedupFunction f = new DedupFunction(TTL);
        try (var h = harness(f)) {
            h.processWatermark(t + TTL + 10_000); // the click is already beyond the horizon (the gateway never accepts such)
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, t), t));
            h.processWatermark(t + TTL + 20_000); // the next watermark does not clear it
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, t), t));
            assertEquals(List.of("a"), ids(h));
            h.processWatermark(t + TTL + 10_000 + TTL - 1);
            assertEquals(1, h.numKeyedStateEntries(), "kept for a horizon from the watermark it was processed at");
            h.processWatermark(t + TTL + 10_000 + TTL);
            assertEquals(0, h.numKeyedStateEntries());
        }
    }

    @Test
    void duplicateWithALaterEventTimeExtendsTheMark() throws Exception {
        DedupFunction f = new DedupFunction(TTL);
        try (var h = harness(f)) {
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 1000), 1000));
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 5000), 5000)); // same key, other body
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 3000), 3000)); // earlier: no change
            assertEquals(1, h.numEventTimeTimers(), "the earlier timer was replaced");
            h.processWatermark(1000 + TTL);
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 5000), 5000));
            assertEquals(List.of("a"), ids(h), "kept until the later copy's event time + horizon");
            h.processWatermark(5000 + TTL);
            assertEquals(0, h.numKeyedStateEntries());
            assertEquals(3, f.duplicatesDroppedCount());
        }
    }

    /** The dedup function as it was before issue #15: a Boolean mark with a processing-time TTL. */
    static final class PreIssue15Dedup extends KeyedProcessFunction<String, Click, Click> {
        private static final long serialVersionUID = 1L;
        private transient ValueState<Boolean> seen;

        @Override
        public void open(OpenContext openContext) {
            ValueStateDescriptor<Boolean> d = new ValueStateDescriptor<>("seen", Types.BOOLEAN);
            d.enableTimeToLive(StateTtlConfig.newBuilder(Duration.ofMillis(TTL))
                    .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                    .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                    .cleanupInRocksdbCompactFilter(1000)
                    .build());
            seen = getRuntimeContext().getState(d);
        }

        @Override
        public void processElement(Click click, Context ctx, Collector<Click> out) throws Exception {
            if (seen.value() == null) {
                seen.update(Boolean.TRUE);
                out.collect(click);
            }
        }
    }

    /** A checkpoint taken before issue #15 (RocksDB, as in production) restores and its marks still count. */
    @Test
    void checkpointFromBeforeTheEventTimeHorizonRestoresAndItsMarksStillCount() throws Exception {
        OperatorSubtaskState old;
        try (var h = new KeyedOneInputStreamOperatorTestHarness<>(
                new KeyedProcessOperator<>(new PreIssue15Dedup()), new DedupKeySelector(), Types.STRING)) {
            h.setStateBackend(new EmbeddedRocksDBStateBackend());
            h.setStateTtlProcessingTime(0);
            h.open();
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 1000), 1000));
            h.processElement(new StreamRecord<>(TestClicks.click("b", 1, 1000), 1000));
            old = h.snapshot(1L, 1L);
        }
        DedupFunction f = new DedupFunction(TTL);
        try (var h = new KeyedOneInputStreamOperatorTestHarness<>(
                new KeyedProcessOperator<>(f), new DedupKeySelector(), Types.STRING)) {
            h.setStateBackend(new EmbeddedRocksDBStateBackend());
            h.setStateTtlProcessingTime(Duration.ofHours(1).toMillis());
            h.initializeState(old);
            h.open();
            h.processWatermark(500);
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 1000), 1000)); // retry of a pre-upgrade click
            h.processElement(new StreamRecord<>(TestClicks.click("c", 1, 1000), 1000)); // new click
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 1000), 1000)); // again: now a new-style mark
            assertEquals(List.of("c"), ids(h));
            assertEquals(2, f.duplicatesDroppedCount());
            h.processWatermark(1000 + TTL);
            h.setStateTtlProcessingTime(TTL + 1); // the old marks' TTL ran out too
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 1000), 1000));
            h.processElement(new StreamRecord<>(TestClicks.click("b", 1, 1000), 1000));
            h.processElement(new StreamRecord<>(TestClicks.click("c", 1, 1000), 1000));
            assertEquals(List.of("c", "a", "b", "c"), ids(h), "all marks expired: migrated (a), legacy by TTL (b), new (c)");
        }
    }

    /**
     * Issue #15, defect 5: after a pipeline lag longer than the horizon's margin (outage, backlog), a
     * retry within the accepted age must still be a duplicate: the horizon runs on event time (the
     * watermark), however much processing time has passed.
     */
    @Test
    void horizonFollowsEventTimeNotProcessingTime() throws Exception {
        long t = 1_700_000_040_000L;
        DedupFunction f = new DedupFunction(TTL);
        try (var h = harness(f)) {
            h.setProcessingTime(0);
            h.setStateTtlProcessingTime(0);
            h.processWatermark(t - 5_000);
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, t), t));

            // the job lags 30 h behind (processing time), the watermark is only 20 h past the click
            h.setProcessingTime(Duration.ofHours(30).toMillis());
            h.setStateTtlProcessingTime(Duration.ofHours(30).toMillis());
            h.processWatermark(t + Duration.ofHours(20).toMillis());
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, t), t)); // client retry, same body
            assertEquals(List.of("a"), ids(h), "a retry within the horizon (event time) is a duplicate however late it is processed");
            assertEquals(1, f.duplicatesDroppedCount());

            h.processWatermark(t + TTL - 1);
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, t), t));
            assertEquals(List.of("a"), ids(h), "still a duplicate one ms before the watermark passes event time + horizon");
            assertEquals(2, f.duplicatesDroppedCount());
            assertEquals(2, h.getSideOutput(DedupFunction.DUPLICATES).size(), "both retries on the DUPLICATES side output");

            h.processWatermark(t + TTL);
            assertEquals(0, h.numKeyedStateEntries(), "the mark is cleared once the watermark passes event time + horizon");
            assertEquals(0, h.numEventTimeTimers());
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, t), t));
            assertEquals(List.of("a", "a"), ids(h), "beyond the horizon (the gateway never accepts it) it would pass again");
        }
    }
}

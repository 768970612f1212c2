package io.adclick.flink.functions;

import io.adclick.flink.TestClicks;
import io.adclick.flink.model.Click;

import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
    void ttlIsConfiguredAndExpiresOnlyAfterTtl() throws Exception {
        StateTtlConfig ttl = DedupFunction.ttlConfig(TTL);
        assertEquals(Duration.ofHours(26), ttl.getTimeToLive());
        assertEquals(StateTtlConfig.UpdateType.OnCreateAndWrite, ttl.getUpdateType());
        assertEquals(StateTtlConfig.StateVisibility.NeverReturnExpired, ttl.getStateVisibility());
        assertTrue(ttl.getCleanupStrategies().inRocksdbCompactFilter());
        assertTrue(DedupFunction.stateDescriptor(TTL).getTtlConfig().isEnabled());

        DedupFunction f = new DedupFunction(TTL);
        try (var h = harness(f)) {
            h.setStateTtlProcessingTime(0);
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 1000), 1000));
            h.setStateTtlProcessingTime(TTL - 1); // 26h minus 1ms: still a duplicate
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 1000), 1000));
            assertEquals(1, h.extractOutputValues().size());
            h.setStateTtlProcessingTime(TTL + 1); // expired: would pass again (hence TTL > max click age)
            h.processElement(new StreamRecord<>(TestClicks.click("a", 1, 1000), 1000));
            assertEquals(2, h.extractOutputValues().size());
            assertEquals(1, f.duplicatesDroppedCount());
        }
    }
}

package io.adclick.flink;

import io.adclick.flink.model.WindowGranularity;
import io.adclick.flink.model.WindowResult;
import io.adclick.flink.serde.ProtoConverters;
import io.adclick.proto.v1.Granularity;
import io.adclick.proto.v1.WindowAggregate;

import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.WindowAssigner;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.junit.jupiter.api.Test;

import java.time.Instant;
import java.util.Collection;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WindowMathTest {
    // 2023-11-14T22:13:20.123Z
    private static final long T = 1_700_000_000_123L;

    @Test
    void utcAlignedStarts() {
        assertEquals(Instant.parse("2023-11-14T22:13:00Z").toEpochMilli(), WindowGranularity.MINUTE_1.windowStart(T));
        assertEquals(Instant.parse("2023-11-14T22:10:00Z").toEpochMilli(), WindowGranularity.MINUTE_5.windowStart(T));
        assertEquals(Instant.parse("2023-11-14T22:00:00Z").toEpochMilli(), WindowGranularity.HOUR_1.windowStart(T));
        assertEquals(Instant.parse("2023-11-14T22:00:00Z").toEpochMilli(),
                WindowGranularity.HOUR_1.windowStart(Instant.parse("2023-11-14T22:59:59.999Z").toEpochMilli()));
        assertEquals(Instant.parse("2023-11-14T23:00:00Z").toEpochMilli(),
                WindowGranularity.HOUR_1.windowStart(Instant.parse("2023-11-14T23:00:00Z").toEpochMilli()));
    }

    @Test
    void flinkAssignerAgreesWithOurWindowMath() {
        for (WindowGranularity g : WindowGranularity.values()) {
            TumblingEventTimeWindows assigner = TumblingEventTimeWindows.of(g.size);
            for (long ts : new long[] {T, T - T % g.sizeMs(), T - T % g.sizeMs() - 1, 1L, 59_999L, 60_000L}) {
                Collection<TimeWindow> ws = assigner.assignWindows(null, ts, new WindowAssigner.WindowAssignerContext() {
                    @Override
                    public long getCurrentProcessingTime() {
                        return 0;
                    }
                });
                assertEquals(1, ws.size());
                TimeWindow w = ws.iterator().next();
                assertEquals(g.windowStart(ts), w.getStart(), g + " @ " + ts);
                assertEquals(g.windowStart(ts) + g.sizeMs(), w.getEnd());
                assertTrue(ts >= w.getStart() && ts <= w.maxTimestamp());
            }
        }
    }

    @Test
    void aggregateKeyAndProto() {
        WindowResult r = new WindowResult();
        r.granularity = WindowGranularity.MINUTE_5;
        r.adId = -2L; // 2^64-2 as uint64
        r.campaignId = 3;
        r.advertiserId = 4;
        r.windowStartMs = 1_700_000_100_000L;
        r.windowEndMs = 1_700_000_400_000L;
        r.clicks = 9;
        r.finalFiring = true;
        r.watermarkMs = 1_700_000_400_001L;
        r.emittedAtMs = 5;
        r.maxReceivedAtMs = 6;
        assertEquals("5m|18446744073709551614|1700000100000",
                ProtoConverters.windowKey(r.granularity, r.adId, r.windowStartMs));
        WindowAggregate p = ProtoConverters.toProto(r);
        assertEquals(Granularity.GRANULARITY_5M, p.getGranularity());
        assertEquals(-2L, p.getAdId());
        assertEquals(9, p.getClicks());
        assertTrue(p.getFinal());
        assertEquals(1_700_000_400_000L, p.getWindowEndMs());
        assertEquals(6, p.getMaxReceivedAtMs());
    }
}

package io.adclick.flink.serde;

import io.adclick.flink.TestClicks;
import io.adclick.flink.model.Click;
import io.adclick.flink.model.LateClickRecord;
import io.adclick.flink.model.WindowGranularity;
import io.adclick.proto.v1.Granularity;
import io.adclick.proto.v1.LateClick;

import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The clicks-late record: granularity and window start in the value (LateClick 4/5), the key and the headers. */
class LateClickSerializerTest {
    private static final long T = 1_700_000_223_456L; // not aligned to any window; its 1m, 5m and 1h windows start apart

    private static LateClickRecord late(WindowGranularity g, Click c) {
        LateClickRecord r = new LateClickRecord();
        r.click = c;
        r.granularity = g;
        r.windowStartMs = g.windowStart(c.eventTimeMs);
        r.watermarkMs = T + 900_000;
        r.detectedAtMs = T + 901_000;
        return r;
    }

    private static String header(ProducerRecord<byte[], byte[]> rec, String name) {
        Header h = rec.headers().lastHeader(name);
        assertNotNull(h, "header " + name);
        return new String(h.value(), StandardCharsets.UTF_8);
    }

    @Test
    void eachGranularityIsCarriedInValueKeyAndHeaders() throws Exception {
        Click c = TestClicks.click("imp-late", 42, T);
        Serializers.LateClickSerializer ser = new Serializers.LateClickSerializer("clicks-late");
        Granularity[] protos = {Granularity.GRANULARITY_1M, Granularity.GRANULARITY_5M, Granularity.GRANULARITY_1H};
        long[] starts = {1_700_000_220_000L, 1_700_000_100_000L, 1_699_999_200_000L};
        String[] labels = {"1m", "5m", "1h"};
        WindowGranularity[] gs = WindowGranularity.values();
        assertEquals(3, gs.length);
        for (int i = 0; i < gs.length; i++) {
            ProducerRecord<byte[], byte[]> rec = ser.serialize(late(gs[i], c), null, null);
            assertEquals("clicks-late", rec.topic());

            LateClick v = LateClick.parseFrom(rec.value());
            assertEquals(protos[i], v.getGranularity(), labels[i]);
            assertEquals(starts[i], v.getWindowStartMs(), labels[i]);
            assertEquals(0, v.getWindowStartMs() % gs[i].sizeMs(), labels[i] + " aligned");
            assertEquals(T + 900_000, v.getWatermarkMs());
            assertEquals(T + 901_000, v.getDetectedAtMs());
            assertEquals(ProtoConverters.toClickEvent(c), v.getClick(), "original click re-emitted");

            assertEquals(labels[i] + "|42|" + starts[i], new String(rec.key(), StandardCharsets.UTF_8));
            assertEquals(labels[i], header(rec, Serializers.HEADER_GRANULARITY));
            assertEquals(Long.toString(starts[i]), header(rec, Serializers.HEADER_WINDOW_START));
        }
    }

    @Test
    void aLateClickWithoutGranularityIsABugNotAnUnspecifiedRecord() {
        LateClickRecord r = late(WindowGranularity.MINUTE_1, TestClicks.click("imp-x", 1, T));
        r.granularity = null;
        assertThrows(IllegalArgumentException.class, () -> ProtoConverters.toProto(r));
    }
}

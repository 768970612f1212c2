package io.adclick.flink.functions;

import io.adclick.flink.model.WatermarkProgressRecord;

import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WatermarkProgressOperatorTest {

    private static List<Long> wms(OneInputStreamOperatorTestHarness<Object, WatermarkProgressRecord> h) {
        return h.extractOutputValues().stream().map(r -> r.watermarkMs).collect(Collectors.toList());
    }

    @Test
    void emitsOnAdvanceAtMostOncePerIntervalAndFlushesTheLatest() throws Exception {
        try (var h = new OneInputStreamOperatorTestHarness<Object, WatermarkProgressRecord>(
                new WatermarkProgressOperator<>(1_000), 128, 3, 2)) {
            h.setProcessingTime(10_000);
            h.open();
            h.processWatermark(new Watermark(100));
            assertEquals(List.of(100L), wms(h), "first advance is reported immediately");
            WatermarkProgressRecord first = h.extractOutputValues().get(0);
            assertEquals(2, first.subtask);
            assertEquals(3, first.parallelism);
            assertEquals(10_000, first.emittedAtMs);

            h.setProcessingTime(10_300);
            h.processWatermark(new Watermark(200));
            h.processWatermark(new Watermark(300));
            h.processElement(new Object(), 5); // elements are ignored
            assertEquals(List.of(100L), wms(h), "rate limited");
            h.setProcessingTime(10_999);
            assertEquals(List.of(100L), wms(h));
            h.setProcessingTime(11_000);
            assertEquals(List.of(100L, 300L), wms(h), "latest value flushed when the interval ends");

            h.setProcessingTime(12_500);
            h.processWatermark(new Watermark(300));
            assertEquals(List.of(100L, 300L), wms(h), "no advance, no record");
            h.processWatermark(new Watermark(400));
            assertEquals(List.of(100L, 300L, 400L), wms(h));
            h.setProcessingTime(20_000);
            h.processWatermark(new Watermark(Long.MAX_VALUE));
            assertEquals(List.of(100L, 300L, 400L), wms(h), "end-of-input watermark is not reported");

            assertTrue(h.getOutput().contains(new Watermark(400)), "watermarks are forwarded");
        }
    }
}

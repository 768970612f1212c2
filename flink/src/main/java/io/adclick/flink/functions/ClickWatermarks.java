package io.adclick.flink.functions;

import io.adclick.flink.model.IngestRecord;

import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;

import java.time.Duration;

/** Event time = ClickEvent.event_time_ms; bounded out-of-orderness; per-partition idleness. */
public final class ClickWatermarks {
    private ClickWatermarks() {}

    public static WatermarkStrategy<IngestRecord> strategy(long outOfOrdernessMs, long idlenessMs) {
        WatermarkStrategy<IngestRecord> s = WatermarkStrategy
                .<IngestRecord>forBoundedOutOfOrderness(Duration.ofMillis(outOfOrdernessMs))
                .withTimestampAssigner(new EventTimeAssigner());
        return idlenessMs > 0 ? s.withIdleness(Duration.ofMillis(idlenessMs)) : s;
    }

    /** Dead letters carry no event time; Long.MIN_VALUE never advances the watermark. */
    public static final class EventTimeAssigner implements SerializableTimestampAssigner<IngestRecord> {
        private static final long serialVersionUID = 1L;

        @Override
        public long extractTimestamp(IngestRecord r, long recordTimestamp) {
            return r.click != null ? r.click.eventTimeMs : Long.MIN_VALUE;
        }
    }
}

package io.adclick.flink.functions;

import io.adclick.flink.model.IngestRecord;

import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;

import java.io.Serializable;
import java.util.function.LongSupplier;

/**
 * Event time = ClickEvent.event_time_ms with bounded out-of-orderness, per Kafka partition. Gateway
 * progress ticks (PartitionTick in click.proto) advance a partition's watermark like a click with
 * event time = tick time, so a quiet partition keeps moving while gateways are up and a partition with
 * a backlog waits for its records (issue #15, defect 2). With ticks, {@code idleAfterMs} is 0 (the
 * default): a partition is never taken for idle.
 *
 * <p>Only for producers that do not tick ({@code idleAfterMs > 0}): a partition that has delivered no
 * record for {@code idleAfterMs} of processing time lets its
 * watermark follow the clock ({@code now − idleAfterMs − outOfOrderness}) instead of standing
 * still. Flink's {@code withIdleness} only leaves idle partitions out of the minimum, so when
 * <em>every</em> partition is quiet the watermark stops and the last windows never become final
 * (complete_before stalls). Following the clock keeps windows closing in quiet periods and keeps
 * an idle partition from holding back busy ones, while a partition with a backlog (it keeps
 * delivering, however old the clicks) still holds the minimum. A click that arrives after its
 * window was closed this way is late like any other: updated in place within the allowed
 * lateness, a late correction after that, never lost. Its flaw: a partition that is merely behind
 * (back-pressure, a stopped job) is quiet too, and its backlog then becomes late.
 */
public final class ClickWatermarks {
    private ClickWatermarks() {}

    public static WatermarkStrategy<IngestRecord> strategy(long outOfOrdernessMs, long idleAfterMs) {
        return strategy(outOfOrdernessMs, idleAfterMs, new SystemClock());
    }

    static WatermarkStrategy<IngestRecord> strategy(long outOfOrdernessMs, long idleAfterMs, SerializableClock clock) {
        return WatermarkStrategy
                .<IngestRecord>forGenerator(ctx -> new ClockFollowingWatermarks(outOfOrdernessMs, idleAfterMs, clock))
                .withTimestampAssigner(new EventTimeAssigner());
    }

    /** A click's event time, a gateway tick's time; dead letters carry none (Long.MIN_VALUE never advances the watermark). */
    public static final class EventTimeAssigner implements SerializableTimestampAssigner<IngestRecord> {
        private static final long serialVersionUID = 1L;

        @Override
        public long extractTimestamp(IngestRecord r, long recordTimestamp) {
            return r.click != null ? r.click.eventTimeMs : r.tickAtMs; // tickAtMs is Long.MIN_VALUE unless a tick
        }
    }

    public interface SerializableClock extends LongSupplier, Serializable {}

    static final class SystemClock implements SerializableClock {
        private static final long serialVersionUID = 1L;

        @Override
        public long getAsLong() {
            return System.currentTimeMillis();
        }
    }

    /** Bounded out-of-orderness; after {@code idleAfterMs} without a click, follows the clock. */
    public static final class ClockFollowingWatermarks implements WatermarkGenerator<IngestRecord> {
        private final long outOfOrdernessMs;
        private final long idleAfterMs;
        private final LongSupplier clock;
        private long maxEventTime = Long.MIN_VALUE;
        private long lastClickAt;
        private long emitted = Long.MIN_VALUE;

        public ClockFollowingWatermarks(long outOfOrdernessMs, long idleAfterMs, LongSupplier clock) {
            this.outOfOrdernessMs = outOfOrdernessMs;
            this.idleAfterMs = idleAfterMs;
            this.clock = clock;
            this.lastClickAt = clock.getAsLong();
        }

        @Override
        public void onEvent(IngestRecord r, long eventTimestamp, WatermarkOutput output) {
            if (eventTimestamp == Long.MIN_VALUE) return; // dead letter: no time, not activity (ticks are both)
            maxEventTime = Math.max(maxEventTime, watermarkTimeOf(r, eventTimestamp));
            lastClickAt = clock.getAsLong();
        }

        /**
         * The time a click vouches for: its event time, but never later than its gateway receive time.
         * The gateway accepts event times up to its clock-skew allowance (5 min) in the future; such a
         * click must not push the watermark past the honest clicks received with it (issue #15, defect 9).
         * The click itself keeps its event time for its window.
         */
        static long watermarkTimeOf(IngestRecord r, long eventTimestamp) {
            long received = r != null && r.click != null ? r.click.receivedAtMs : 0;
            return received > 0 ? Math.min(eventTimestamp, received) : eventTimestamp;
        }

        @Override
        public void onPeriodicEmit(WatermarkOutput output) {
            long wm = maxEventTime == Long.MIN_VALUE ? Long.MIN_VALUE : maxEventTime - outOfOrdernessMs - 1;
            long now = clock.getAsLong();
            if (idleAfterMs > 0 && now - lastClickAt >= idleAfterMs) {
                wm = Math.max(wm, now - idleAfterMs - outOfOrdernessMs - 1);
            }
            if (wm > emitted) {
                emitted = wm;
                output.emitWatermark(new Watermark(wm));
            }
        }
    }
}

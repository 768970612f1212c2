package io.adclick.flink.audit;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

import java.time.Duration;

/**
 * Keyed by (window, bucket): adds the deltas to checkpointed cumulative counts and emits the
 * cumulative {@link AuditRecord} at most once per {@code emitIntervalMs} after a change. Output
 * is idempotent for readers (newest version wins), so a replay after a restore only repeats rows.
 * State expires after {@code ttlMs} of processing time without a write (unlike the dedup marks, whose
 * horizon runs on event time).
 */
public class AuditCounter extends KeyedProcessFunction<Long, AuditDelta, AuditRecord> {
    private static final long serialVersionUID = 1L;

    private final long emitIntervalMs;
    private final long ttlMs;
    private transient ValueState<AuditRecord> counts;
    private transient ValueState<Boolean> timerSet;

    public AuditCounter(long emitIntervalMs, long ttlMs) {
        this.emitIntervalMs = Math.max(1, emitIntervalMs);
        this.ttlMs = ttlMs;
    }

    @Override
    public void open(OpenContext openContext) {
        StateTtlConfig ttl = StateTtlConfig.newBuilder(Duration.ofMillis(ttlMs))
                .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                .cleanupInRocksdbCompactFilter(1000)
                .build();
        ValueStateDescriptor<AuditRecord> c = new ValueStateDescriptor<>("audit-counts", TypeInformation.of(AuditRecord.class));
        c.enableTimeToLive(ttl);
        counts = getRuntimeContext().getState(c);
        timerSet = getRuntimeContext().getState(new ValueStateDescriptor<>("audit-timer", Boolean.class));
    }

    @Override
    public void processElement(AuditDelta d, Context ctx, Collector<AuditRecord> out) throws Exception {
        AuditRecord r = counts.value();
        if (r == null) {
            r = new AuditRecord();
            r.windowStartMs = d.windowStartMs;
            r.bucket = d.bucket;
        }
        r.accepted += d.accepted;
        r.duplicates += d.duplicates;
        r.rejected += d.rejected;
        counts.update(r);
        if (timerSet.value() == null) {
            timerSet.update(Boolean.TRUE);
            ctx.timerService().registerProcessingTimeTimer(ctx.timerService().currentProcessingTime() + emitIntervalMs);
        }
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<AuditRecord> out) throws Exception {
        timerSet.clear();
        AuditRecord r = counts.value();
        if (r == null) return;
        AuditRecord copy = new AuditRecord();
        copy.windowStartMs = r.windowStartMs;
        copy.bucket = r.bucket;
        copy.accepted = r.accepted;
        copy.duplicates = r.duplicates;
        copy.rejected = r.rejected;
        copy.emittedAtMs = ctx.timerService().currentProcessingTime();
        out.collect(copy);
    }
}

package io.adclick.flink.functions;

import io.adclick.flink.model.Click;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

import java.time.Duration;

/**
 * Authoritative dedup, keyed by (impression_id, event_type): the first occurrence passes, later ones
 * are dropped and counted in metric {@code duplicatesDropped}. The "seen" flag lives in RocksDB with a
 * TTL (processing time) that must exceed the gateway's maximum accepted click age plus skew.
 */
public class DedupFunction extends KeyedProcessFunction<String, Click, Click> {
    private static final long serialVersionUID = 1L;
    public static final String METRIC_DUPLICATES_DROPPED = "duplicatesDropped";
    public static final String STATE_NAME = "seen";
    /** Every dropped duplicate, for the per-window audit (conservation). */
    public static final OutputTag<Click> DUPLICATES = new OutputTag<>("duplicates", TypeInformation.of(Click.class));

    private final long ttlMs;
    private transient ValueState<Boolean> seen;
    private transient Counter duplicatesDropped;

    public DedupFunction(long ttlMs) {
        if (ttlMs <= 0) throw new IllegalArgumentException("dedup TTL must be > 0");
        this.ttlMs = ttlMs;
    }

    /** TTL: refreshed on create/write only, expired values never visible, purged by RocksDB compaction. */
    public static StateTtlConfig ttlConfig(long ttlMs) {
        return StateTtlConfig.newBuilder(Duration.ofMillis(ttlMs))
                .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                .cleanupInRocksdbCompactFilter(1000)
                .build();
    }

    public static ValueStateDescriptor<Boolean> stateDescriptor(long ttlMs) {
        ValueStateDescriptor<Boolean> d = new ValueStateDescriptor<>(STATE_NAME, Types.BOOLEAN);
        d.enableTimeToLive(ttlConfig(ttlMs));
        return d;
    }

    @Override
    public void open(OpenContext openContext) {
        seen = getRuntimeContext().getState(stateDescriptor(ttlMs));
        duplicatesDropped = getRuntimeContext().getMetricGroup().counter(METRIC_DUPLICATES_DROPPED);
    }

    @Override
    public void processElement(Click click, Context ctx, Collector<Click> out) throws Exception {
        if (seen.value() != null) {
            duplicatesDropped.inc();
            ctx.output(DUPLICATES, click);
            return;
        }
        seen.update(Boolean.TRUE);
        out.collect(click);
    }

    /** For tests. */
    public long duplicatesDroppedCount() {
        return duplicatesDropped == null ? 0 : duplicatesDropped.getCount();
    }
}

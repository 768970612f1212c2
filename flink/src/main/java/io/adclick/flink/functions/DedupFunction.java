package io.adclick.flink.functions;

import io.adclick.flink.model.Click;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.TimerService;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

import java.io.IOException;
import java.time.Duration;

/**
 * Authoritative dedup, keyed by (impression_id, event_type): the first occurrence passes, later ones
 * are dropped, counted in metric {@code duplicatesDropped} and sent to {@link #DUPLICATES}.
 *
 * <p>Horizon rule (event time, never processing time): a key's mark is kept until the watermark
 * passes {@code max(event_time_ms of the first occurrence, watermark when it was processed) +
 * horizonMs}; an event-time timer then clears it. {@code horizonMs} is {@code --dedup-ttl-ms}: the
 * gateway's maximum accepted click age + clock skew + a margin. Why this is enough however far the job
 * lags behind the clock (outage, catch-up of a backlog): the gateway accepts a retry only while it is
 * at most max age (+ skew) older than the gateway's clock, and the watermark is derived from the event
 * times of accepted clicks, so it cannot have passed {@code event time + max age + skew} when the
 * retry is processed. A processing-time TTL (the rule before issue #15) expired during such a lag and
 * let the retry be counted twice.
 *
 * <p>Details: the watermark term gives a click that is already older than the watermark (the gateway
 * never accepts one older than the horizon) a full horizon of event-time progress instead of an expiry
 * in the past. A duplicate with a later event time than the first occurrence (same key, other body)
 * extends the mark to its own event time + horizon. While the watermark stands still nothing expires:
 * state only shrinks as event time moves on (in quiet periods {@link ClickWatermarks} lets the
 * watermark follow the clock, so marks still expire then).
 *
 * <p>State: one {@code Long} per key (the expiry in ms, name {@value #STATE_NAME}) and one event-time
 * timer; no TTL. Upgrade: checkpoints taken before issue #15 hold a {@code Boolean} mark named
 * {@value #LEGACY_STATE_NAME} with a processing-time TTL. It is still registered, unchanged, so such a
 * checkpoint restores, and it is consulted when a key has no new mark: an old mark still drops the
 * retry and is replaced by a new one. Old marks that are never hit again expire by their TTL (at most
 * {@code --dedup-ttl-ms} of processing time after the upgrade) and RocksDB compaction purges them; the
 * legacy lookup can be removed once no checkpoint from before the upgrade can be restored.
 */
public class DedupFunction extends KeyedProcessFunction<String, Click, Click> {
    private static final long serialVersionUID = 1L;
    public static final String METRIC_DUPLICATES_DROPPED = "duplicatesDropped";
    /** Expiry (event time, ms) of the key's mark. */
    public static final String STATE_NAME = "seen-until";
    /** The mark before issue #15: Boolean with a processing-time TTL. */
    public static final String LEGACY_STATE_NAME = "seen";
    /** Every dropped duplicate, for the per-window audit (conservation). */
    public static final OutputTag<Click> DUPLICATES = new OutputTag<>("duplicates", TypeInformation.of(Click.class));

    private final long horizonMs;
    private transient ValueState<Long> seenUntil;
    private transient ValueState<Boolean> legacySeen;
    private transient Counter duplicatesDropped;

    /** @param horizonMs {@code --dedup-ttl-ms}: max accepted click age + skew + margin, in event time */
    public DedupFunction(long horizonMs) {
        if (horizonMs <= 0) throw new IllegalArgumentException("dedup horizon must be > 0");
        this.horizonMs = horizonMs;
    }

    public static ValueStateDescriptor<Long> stateDescriptor() {
        return new ValueStateDescriptor<>(STATE_NAME, Types.LONG);
    }

    /**
     * The pre-#15 descriptor, exactly as it was (name, type, TTL enabled): a TTL-enabled state can
     * only be restored by a TTL-enabled descriptor.
     */
    public static ValueStateDescriptor<Boolean> legacyStateDescriptor(long ttlMs) {
        ValueStateDescriptor<Boolean> d = new ValueStateDescriptor<>(LEGACY_STATE_NAME, Types.BOOLEAN);
        d.enableTimeToLive(legacyTtlConfig(ttlMs));
        return d;
    }

    /** Legacy TTL: refreshed on create/write only, expired values never visible, purged by RocksDB compaction. */
    public static StateTtlConfig legacyTtlConfig(long ttlMs) {
        return StateTtlConfig.newBuilder(Duration.ofMillis(ttlMs))
                .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                .cleanupInRocksdbCompactFilter(1000)
                .build();
    }

    @Override
    public void open(OpenContext openContext) {
        seenUntil = getRuntimeContext().getState(stateDescriptor());
        legacySeen = getRuntimeContext().getState(legacyStateDescriptor(horizonMs));
        duplicatesDropped = getRuntimeContext().getMetricGroup().counter(METRIC_DUPLICATES_DROPPED);
    }

    @Override
    public void processElement(Click click, Context ctx, Collector<Click> out) throws Exception {
        TimerService timers = ctx.timerService();
        Long until = seenUntil.value();
        if (until != null) {
            keepUntil(plus(click.eventTimeMs, horizonMs), until, timers);
            drop(click, ctx);
            return;
        }
        long expiry = plus(Math.max(click.eventTimeMs, timers.currentWatermark()), horizonMs);
        if (legacySeen.value() != null) {
            legacySeen.clear();
            keepUntil(expiry, null, timers);
            drop(click, ctx);
            return;
        }
        keepUntil(expiry, null, timers);
        out.collect(click);
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<Click> out) throws Exception {
        Long until = seenUntil.value();
        if (until != null && timestamp >= until) {
            seenUntil.clear();
        }
    }

    private void drop(Click click, Context ctx) {
        duplicatesDropped.inc();
        ctx.output(DUPLICATES, click);
    }

    /** Moves the key's expiry (and its single timer) to {@code expiry} unless it is already later. */
    private void keepUntil(long expiry, Long current, TimerService timers) throws IOException {
        if (current != null) {
            if (expiry <= current) return;
            timers.deleteEventTimeTimer(current);
        }
        seenUntil.update(expiry);
        timers.registerEventTimeTimer(expiry);
    }

    private static long plus(long t, long d) {
        return t > Long.MAX_VALUE - d ? Long.MAX_VALUE : t + d;
    }

    /** For tests. */
    public long duplicatesDroppedCount() {
        return duplicatesDropped == null ? 0 : duplicatesDropped.getCount();
    }
}

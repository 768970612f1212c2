package io.adclick.flink;

import io.adclick.flink.audit.AuditClassifier;
import io.adclick.flink.audit.AuditCounter;
import io.adclick.flink.audit.AuditDelta;
import io.adclick.flink.audit.AuditKind;
import io.adclick.flink.audit.AuditRecord;
import io.adclick.flink.audit.AuditTally;
import io.adclick.flink.functions.ClickCountAggregate;
import io.adclick.flink.functions.ClickPreAggregator;
import io.adclick.flink.functions.LatePartialGuard;
import io.adclick.flink.functions.DedupFunction;
import io.adclick.flink.functions.DedupKeySelector;
import io.adclick.flink.functions.EarlyFiringEventTimeTrigger;
import io.adclick.flink.functions.LateClickFunction;
import io.adclick.flink.functions.RestoredWatermarkGate;
import io.adclick.flink.functions.SplitDeadLetters;
import io.adclick.flink.functions.WatermarkProgressOperator;
import io.adclick.flink.functions.WindowResultFunction;
import io.adclick.flink.model.Click;
import io.adclick.flink.model.ClickPartial;
import io.adclick.flink.model.DeadLetterRecord;
import io.adclick.flink.model.IngestRecord;
import io.adclick.flink.model.LateClickRecord;
import io.adclick.flink.model.WatermarkProgressRecord;
import io.adclick.flink.model.WindowGranularity;
import io.adclick.flink.model.WindowResult;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamUtils;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

import java.time.Duration;
import java.util.EnumMap;
import java.util.Map;

/**
 * The source- and sink-independent core of the job, so tests can run it over in-memory input.
 * Input must already carry event timestamps and watermarks (see ClickWatermarks).
 */
public final class PipelineTopology {
    private PipelineTopology() {}

    /** The six output streams, one per Kafka topic. */
    public static final class Outputs {
        public final DataStream<WindowResult> aggregates;
        public final DataStream<WatermarkProgressRecord> watermarks;
        public final DataStream<LateClickRecord> lateClicks;
        public final DataStream<DeadLetterRecord> deadLetters;
        /** Every click that passed dedup, exactly once (on time or late alike): raw storage and backfill. */
        public final DataStream<Click> deduped;
        /** Cumulative per-(1m window, bucket) counts of accepted, duplicate and rejected records. */
        public final DataStream<AuditRecord> audit;
        /**
         * What crosses the ad-keyed exchange into the window operators (for tests that measure how a hot
         * ad's work is spread): {@link ClickPartial}s of the pre-aggregation.
         */
        public final DataStream<?> windowInput;

        Outputs(DataStream<WindowResult> aggregates, DataStream<WatermarkProgressRecord> watermarks,
                DataStream<LateClickRecord> lateClicks, DataStream<DeadLetterRecord> deadLetters,
                DataStream<Click> deduped, DataStream<AuditRecord> audit, DataStream<?> windowInput) {
            this.aggregates = aggregates;
            this.watermarks = watermarks;
            this.lateClicks = lateClicks;
            this.deadLetters = deadLetters;
            this.deduped = deduped;
            this.audit = audit;
            this.windowInput = windowInput;
        }
    }

    public static Outputs build(DataStream<IngestRecord> ingest, JobConfig cfg) {
        SingleOutputStreamOperator<Click> clicks = ingest
                .process(new SplitDeadLetters(), TypeInformation.of(Click.class))
                .name("split-dead-letters").uid("split-dead-letters");
        DataStream<DeadLetterRecord> deadLetters = clicks.getSideOutput(SplitDeadLetters.DEAD_LETTERS);

        SingleOutputStreamOperator<Click> deduped = clicks
                .keyBy(new DedupKeySelector(), Types.STRING)
                .process(new DedupFunction(cfg.dedupTtlMs), TypeInformation.of(Click.class))
                .name("dedup-impression-event").uid("dedup-impression-event");

        // Hot keys (issue #17): the restored-watermark gate and the pre-aggregation run chained behind dedup
        // (spread by impression); only partial counts cross the ad-keyed exchange into the windows.
        Map<WindowGranularity, OutputTag<Click>> lateTags = new EnumMap<>(WindowGranularity.class);
        for (WindowGranularity g : WindowGranularity.values()) lateTags.put(g, lateTag(g));
        SingleOutputStreamOperator<ClickPartial> partials = preAggregate(deduped, cfg, lateTags);
        Map<WindowGranularity, KeyedStream<ClickPartial, Long>> byAd = partialsByAd(partials);
        Map<WindowGranularity, SingleOutputStreamOperator<WindowResult>> windows = new EnumMap<>(WindowGranularity.class);
        DataStream<WindowResult> aggregates = null;
        DataStream<LateClickRecord> late = null;
        for (WindowGranularity g : WindowGranularity.values()) {
            OutputTag<ClickPartial> guardTag = latePartialTag(g);
            SingleOutputStreamOperator<WindowResult> w =
                    windowAggregate(byAd.get(g), g, cfg.allowedLatenessMs, cfg.earlyFireIntervalMs, guardTag);
            windows.put(g, w);
            DataStream<LateClickRecord> guard = w.getSideOutput(guardTag)
                    .process(new LatePartialGuard(g), TypeInformation.of(LateClickRecord.class))
                    .name("late-partial-guard-" + g.label).uid("late-partial-guard-" + g.label);
            DataStream<LateClickRecord> l = partials.getSideOutput(lateTags.get(g))
                    .process(new LateClickFunction(g), TypeInformation.of(LateClickRecord.class))
                    .name("late-clicks-" + g.label).uid("late-clicks-" + g.label)
                    .union(guard);
            aggregates = aggregates == null ? w : aggregates.union(w);
            late = late == null ? l : late.union(l);
        }

        // Directly behind the 1m window operator (forward edge, same parallelism): reports exactly the
        // watermark the window operators fire on (all three share the same input watermark).
        DataStream<WatermarkProgressRecord> watermarks = windows.get(WindowGranularity.MINUTE_1)
                .transform("watermark-progress", TypeInformation.of(WatermarkProgressRecord.class),
                        new WatermarkProgressOperator<WindowResult>(cfg.watermarkEmitIntervalMs))
                .uid("watermark-progress");

        DataStream<AuditRecord> audit = audit(ingest, deduped.getSideOutput(DedupFunction.DUPLICATES), deadLetters, cfg);

        return new Outputs(aggregates, watermarks, late, deadLetters, deduped, audit, partials);
    }

    /**
     * Conservation audit: every record read (accepted), every duplicate dropped and every record
     * dead-lettered, counted per 1-minute event-time window of the click (dead letters: window 0).
     * Served counts (streaming + late corrections) are not counted here on purpose: readers compare
     * the audit with what the query API serves, so the two come from independent paths.
     */
    static DataStream<AuditRecord> audit(DataStream<IngestRecord> ingest, DataStream<Click> duplicates,
                                         DataStream<DeadLetterRecord> deadLetters, JobConfig cfg) {
        long flush = cfg.earlyFireIntervalMs;
        DataStream<AuditDelta> accepted = ingest.transform("audit-tally-accepted", TypeInformation.of(AuditDelta.class),
                new AuditTally<>(AuditKind.ACCEPTED, new IngestClassifier(), flush)).uid("audit-tally-accepted");
        DataStream<AuditDelta> dups = duplicates.transform("audit-tally-duplicates", TypeInformation.of(AuditDelta.class),
                new AuditTally<>(AuditKind.DUPLICATE, new ClickClassifier(), flush)).uid("audit-tally-duplicates");
        DataStream<AuditDelta> rejected = deadLetters.transform("audit-tally-rejected", TypeInformation.of(AuditDelta.class),
                new AuditTally<>(AuditKind.REJECTED, new DeadLetterClassifier(), flush)).uid("audit-tally-rejected");
        return accepted.union(dups, rejected)
                .keyBy(AuditDelta::key, Types.LONG)
                .process(new AuditCounter(flush, cfg.dedupTtlMs), TypeInformation.of(AuditRecord.class))
                .name("audit-counter").uid("audit-counter");
    }

    /** A click by its event time's minute, bucketed by ad. */
    public static final class ClickClassifier implements AuditClassifier<Click> {
        private static final long serialVersionUID = 1L;

        @Override
        public long windowStartMs(Click c) {
            return AuditClassifier.minuteOf(c.eventTimeMs);
        }

        @Override
        public int bucket(Click c) {
            return AuditClassifier.bucketOf(c.adId);
        }
    }

    /** A record as read: a valid click by its event time, a dead letter in window 0. */
    public static final class IngestClassifier implements AuditClassifier<IngestRecord> {
        private static final long serialVersionUID = 1L;

        @Override
        public long windowStartMs(IngestRecord r) {
            return r.click != null ? AuditClassifier.minuteOf(r.click.eventTimeMs) : 0L;
        }

        /** Gateway ticks are not records of the ledger: never accepted, never rejected. */
        @Override
        public boolean counts(IngestRecord r) {
            return !r.isTick();
        }

        @Override
        public int bucket(IngestRecord r) {
            return r.click != null ? AuditClassifier.bucketOf(r.click.adId)
                    : r.deadLetter != null ? AuditClassifier.bucketOf(r.deadLetter.partition) : 0;
        }
    }

    static final class DeadLetterClassifier implements AuditClassifier<DeadLetterRecord> {
        private static final long serialVersionUID = 1L;

        @Override
        public long windowStartMs(DeadLetterRecord d) {
            return 0L;
        }

        @Override
        public int bucket(DeadLetterRecord d) {
            return AuditClassifier.bucketOf(d.partition);
        }
    }

    public static OutputTag<Click> lateTag(WindowGranularity g) {
        return new OutputTag<>("late-" + g.label, TypeInformation.of(Click.class));
    }

    /** The window operator's own late side output: never used (see {@link LatePartialGuard}). */
    public static OutputTag<ClickPartial> latePartialTag(WindowGranularity g) {
        return new OutputTag<>("late-partial-" + g.label, TypeInformation.of(ClickPartial.class));
    }

    /** How often the pre-aggregation flushes without a watermark advance or a checkpoint. */
    static long preAggregateFlushMs(JobConfig cfg) {
        return cfg.earlyFireIntervalMs > 0 ? Math.min(cfg.earlyFireIntervalMs, 200L) : 200L;
    }

    /**
     * Deduplicated clicks behind the {@link RestoredWatermarkGate}, pre-aggregated into partial counts
     * ({@link ClickPreAggregator}); clicks late for a window size leave on that size's side output. Gate
     * and pre-aggregation are chained behind dedup (forward edges, same parallelism): the operator that
     * judges lateness reads exactly one gate, so the restored watermark precedes the first click it judges.
     * The gate keeps its uid and state: it used to run keyed by ad in front of the windows (until issue
     * #17); its state is operator union state, so a checkpoint or savepoint from then restores into it.
     */
    public static SingleOutputStreamOperator<ClickPartial> preAggregate(
            DataStream<Click> deduped, JobConfig cfg, Map<WindowGranularity, OutputTag<Click>> lateTags) {
        DataStream<Click> gated = deduped
                .transform("restored-watermark-gate", deduped.getType(), new RestoredWatermarkGate<Click>())
                .uid("restored-watermark-gate");
        return gated
                .transform("pre-aggregate", TypeInformation.of(ClickPartial.class),
                        new ClickPreAggregator(cfg.allowedLatenessMs, preAggregateFlushMs(cfg), lateTags))
                .uid("pre-aggregate");
    }

    /**
     * Partials keyed by ad, one stream per window size (the sizes each partial counts for). One exchange:
     * a keyed router sends each partial to a side output per size, and the three window operators read
     * those as keyed streams over forward edges (chained).
     */
    public static Map<WindowGranularity, KeyedStream<ClickPartial, Long>> partialsByAd(DataStream<ClickPartial> partials) {
        SingleOutputStreamOperator<ClickPartial> routed = partials
                .keyBy(new PartialAdIdKey(), Types.LONG)
                .process(new RouteByGranularity(), TypeInformation.of(ClickPartial.class))
                .name("partials-by-ad").uid("partials-by-ad");
        Map<WindowGranularity, KeyedStream<ClickPartial, Long>> out = new EnumMap<>(WindowGranularity.class);
        for (WindowGranularity g : WindowGranularity.values()) {
            out.put(g, DataStreamUtils.reinterpretAsKeyedStream(routed.getSideOutput(RouteByGranularity.tag(g)),
                    new PartialAdIdKey(), Types.LONG));
        }
        return out;
    }

    /** Each partial to the side output of every window size it counts for; no main output. */
    public static final class RouteByGranularity extends KeyedProcessFunction<Long, ClickPartial, ClickPartial> {
        private static final long serialVersionUID = 1L;

        static OutputTag<ClickPartial> tag(WindowGranularity g) {
            return new OutputTag<>("partials-" + g.label, TypeInformation.of(ClickPartial.class));
        }

        private transient EnumMap<WindowGranularity, OutputTag<ClickPartial>> tags;

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            tags = new EnumMap<>(WindowGranularity.class);
            for (WindowGranularity g : WindowGranularity.values()) tags.put(g, tag(g));
        }

        @Override
        public void processElement(ClickPartial p, Context ctx, Collector<ClickPartial> out) {
            for (WindowGranularity g : WindowGranularity.values()) {
                if (p.countsFor(g)) ctx.output(tags.get(g), p);
            }
        }
    }

    /** One tumbling event-time window aggregation per ad (exposed for the operator harness test). */
    public static SingleOutputStreamOperator<WindowResult> windowAggregate(
            KeyedStream<ClickPartial, Long> byAd, WindowGranularity g, long allowedLatenessMs, long earlyFireIntervalMs,
            OutputTag<ClickPartial> lateTag) {
        return byAd
                .window(TumblingEventTimeWindows.of(g.size))
                .trigger(new EarlyFiringEventTimeTrigger(earlyFireIntervalMs))
                .allowedLateness(Duration.ofMillis(allowedLatenessMs))
                .sideOutputLateData(lateTag)
                .aggregate(new ClickCountAggregate(), new WindowResultFunction(g),
                        TypeInformation.of(ClickCountAggregate.Acc.class),
                        TypeInformation.of(ClickCountAggregate.Acc.class),
                        TypeInformation.of(WindowResult.class))
                .name("window-" + g.label).uid("window-" + g.label);
    }

    public static final class PartialAdIdKey implements KeySelector<ClickPartial, Long> {
        private static final long serialVersionUID = 1L;

        @Override
        public Long getKey(ClickPartial p) {
            return p.adId;
        }
    }

    public static final class AdIdKey implements KeySelector<Click, Long> {
        private static final long serialVersionUID = 1L;

        @Override
        public Long getKey(Click c) {
            return c.adId;
        }
    }
}

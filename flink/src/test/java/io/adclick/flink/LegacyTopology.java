package io.adclick.flink;

import io.adclick.flink.audit.AuditRecord;
import io.adclick.flink.functions.ClickCountAggregate;
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

import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamUtils;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.util.OutputTag;

import java.time.Duration;
import java.util.EnumMap;
import java.util.Map;

/**
 * The topology as it was before issue #17 (same operators, uids and state): clicks keyed by ad behind
 * the keyed {@link RestoredWatermarkGate}, one window record per click. Tests only: the upgrade test
 * takes a savepoint of it and restores the current topology from it, and the hot-ad throughput
 * measurement runs it next to the current one.
 */
final class LegacyTopology {
    private LegacyTopology() {}

    /** The pre-#17 window input: one click at a time, into the same accumulator. */
    static final class CountClicks implements AggregateFunction<Click, ClickCountAggregate.Acc, ClickCountAggregate.Acc> {
        private static final long serialVersionUID = 1L;
        private final ClickCountAggregate partials = new ClickCountAggregate();

        @Override
        public ClickCountAggregate.Acc createAccumulator() {
            return partials.createAccumulator();
        }

        @Override
        public ClickCountAggregate.Acc add(Click c, ClickCountAggregate.Acc acc) {
            return partials.add(ClickPartial.of(c, ClickPartial.ALL), acc);
        }

        @Override
        public ClickCountAggregate.Acc getResult(ClickCountAggregate.Acc acc) {
            return acc;
        }

        @Override
        public ClickCountAggregate.Acc merge(ClickCountAggregate.Acc a, ClickCountAggregate.Acc b) {
            return partials.merge(a, b);
        }
    }

    static PipelineTopology.Outputs build(DataStream<IngestRecord> ingest, JobConfig cfg) {
        SingleOutputStreamOperator<Click> clicks = ingest
                .process(new SplitDeadLetters(), TypeInformation.of(Click.class))
                .name("split-dead-letters").uid("split-dead-letters");
        DataStream<DeadLetterRecord> deadLetters = clicks.getSideOutput(SplitDeadLetters.DEAD_LETTERS);
        SingleOutputStreamOperator<Click> deduped = clicks
                .keyBy(new DedupKeySelector(), Types.STRING)
                .process(new DedupFunction(cfg.dedupTtlMs), TypeInformation.of(Click.class))
                .name("dedup-impression-event").uid("dedup-impression-event");
        DataStream<Click> gated = deduped
                .keyBy(new PipelineTopology.AdIdKey(), Types.LONG)
                .transform("restored-watermark-gate", deduped.getType(), new RestoredWatermarkGate<Click>())
                .uid("restored-watermark-gate");
        KeyedStream<Click, Long> byAd = DataStreamUtils.reinterpretAsKeyedStream(gated, new PipelineTopology.AdIdKey(), Types.LONG);
        Map<WindowGranularity, SingleOutputStreamOperator<WindowResult>> windows = new EnumMap<>(WindowGranularity.class);
        DataStream<WindowResult> aggregates = null;
        DataStream<LateClickRecord> late = null;
        for (WindowGranularity g : WindowGranularity.values()) {
            OutputTag<Click> lateTag = PipelineTopology.lateTag(g);
            SingleOutputStreamOperator<WindowResult> w = byAd
                    .window(TumblingEventTimeWindows.of(g.size))
                    .trigger(new EarlyFiringEventTimeTrigger(cfg.earlyFireIntervalMs))
                    .allowedLateness(Duration.ofMillis(cfg.allowedLatenessMs))
                    .sideOutputLateData(lateTag)
                    .aggregate(new CountClicks(), new WindowResultFunction(g),
                            TypeInformation.of(ClickCountAggregate.Acc.class),
                            TypeInformation.of(ClickCountAggregate.Acc.class),
                            TypeInformation.of(WindowResult.class))
                    .name("window-" + g.label).uid("window-" + g.label);
            windows.put(g, w);
            DataStream<LateClickRecord> l = w.getSideOutput(lateTag)
                    .process(new LateClickFunction(g), TypeInformation.of(LateClickRecord.class))
                    .name("late-clicks-" + g.label).uid("late-clicks-" + g.label);
            aggregates = aggregates == null ? w : aggregates.union(w);
            late = late == null ? l : late.union(l);
        }
        DataStream<WatermarkProgressRecord> watermarks = windows.get(WindowGranularity.MINUTE_1)
                .transform("watermark-progress", TypeInformation.of(WatermarkProgressRecord.class),
                        new WatermarkProgressOperator<WindowResult>(cfg.watermarkEmitIntervalMs))
                .uid("watermark-progress");
        DataStream<AuditRecord> audit = PipelineTopology.audit(ingest, deduped.getSideOutput(DedupFunction.DUPLICATES), deadLetters, cfg);
        return new PipelineTopology.Outputs(aggregates, watermarks, late, deadLetters, deduped, audit, deduped);
    }
}

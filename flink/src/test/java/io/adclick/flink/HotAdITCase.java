package io.adclick.flink;

import io.adclick.flink.functions.ClickWatermarks;
import io.adclick.flink.model.IngestRecord;
import io.adclick.flink.model.LateClickRecord;
import io.adclick.flink.model.WindowGranularity;
import io.adclick.flink.model.WindowResult;

import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue #17, hot keys: one ad takes half of all clicks. On a MiniCluster with parallelism 2, RocksDB and
 * checkpoints every 200 ms (so flushes before barriers happen many times), every (granularity, ad, window)
 * final count must equal a ledger computed by plain arithmetic, and the hot ad's work must be spread: the
 * records of the hot ad that cross the ad-keyed exchange into its (single) window subtask must be far fewer
 * than its clicks, and both subtasks in front of that exchange must carry hot-ad work.
 */
class HotAdITCase {
    @RegisterExtension
    static final MiniClusterExtension MINI_CLUSTER = TestMiniCluster.twoSlots();

    static final Map<String, List<Object>> RESULTS = CollectSink.RESULTS;

    private static final long T0 = 1_700_000_000_000L; // not hour aligned on purpose
    private static final long HOT = 7;
    private static final int COLD_ADS = 50;

    /** (subtask, ad id) of each record entering the ad-keyed exchange. */
    static final class TagSubtask extends RichMapFunction<Object, Tuple2<Integer, Long>> {
        private static final long serialVersionUID = 1L;

        @Override
        public Tuple2<Integer, Long> map(Object o) throws Exception {
            return Tuple2.of(getRuntimeContext().getTaskInfo().getIndexOfThisSubtask(), o.getClass().getField("adId").getLong(o));
        }
    }

    @Test
    @SuppressWarnings("unchecked")
    void hotAdCountsAreExactAndItsWorkIsSpread(@TempDir Path tmp) throws Exception {
        RESULTS.clear();
        Random rnd = new Random(17);
        int n = 20_000;
        List<IngestRecord> input = new ArrayList<>(n);
        Map<String, Long> ledger = new HashMap<>();
        long hotClicks = 0;
        for (int i = 0; i < n; i++) {
            boolean hot = rnd.nextBoolean();
            long ad = hot ? HOT : 100 + rnd.nextInt(COLD_ADS);
            if (hot) hotClicks++;
            // ~6 minutes of event time, in order up to 1 s (well inside the 5 s out-of-orderness bound): nothing is late
            long t = T0 + i * 18L + rnd.nextInt(1_000);
            input.add(IngestRecord.ofClick(TestClicks.click("imp-" + i, ad, t)));
            for (WindowGranularity g : WindowGranularity.values()) {
                ledger.merge(g.label + "|" + ad + "|" + g.windowStart(t), 1L, Long::sum);
            }
        }

        Configuration conf = new Configuration();
        conf.set(PipelineOptions.OBJECT_REUSE, true); // as the job runs (JobConfig.toFlinkConfiguration)
        conf.set(StateBackendOptions.STATE_BACKEND, "rocksdb");
        conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofMillis(200));
        conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
        conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, tmp.toUri().toString());
        conf.set(PipelineOptions.AUTO_WATERMARK_INTERVAL, Duration.ofMillis(20));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        JobConfig cfg = JobConfig.parse(new String[] {"--early-fire-interval-ms", "50", "--watermark-emit-interval-ms", "10"}, Map.of());
        DataStream<IngestRecord> ingest = env
                .fromData(input, TypeInformation.of(IngestRecord.class)).setParallelism(1)
                .assignTimestampsAndWatermarks(ClickWatermarks.strategy(cfg.outOfOrdernessMs, 0)).setParallelism(1);
        PipelineTopology.Outputs out = PipelineTopology.build(ingest, cfg);
        out.aggregates.sinkTo(new CollectSink<>("hot-agg"));
        out.lateClicks.sinkTo(new CollectSink<>("hot-late"));
        ((DataStream<Object>) out.windowInput)
                .map(new TagSubtask(), Types.TUPLE(Types.INT, Types.LONG))
                .sinkTo(new CollectSink<>("hot-window-input"));
        env.execute("adclick-hot-ad-itcase");

        // --- exact counts ------------------------------------------------------------------------
        List<WindowResult> aggs = (List<WindowResult>) (List<?>) RESULTS.getOrDefault("hot-agg", List.of());
        List<LateClickRecord> late = (List<LateClickRecord>) (List<?>) RESULTS.getOrDefault("hot-late", List.of());
        assertEquals(List.of(), late, "nothing is late in this input");
        Map<String, Long> finals = new HashMap<>();
        for (WindowResult r : aggs) {
            String k = r.granularity.label + "|" + r.adId + "|" + r.windowStartMs;
            Long expected = ledger.get(k);
            assertTrue(expected != null, "unexpected window " + k);
            assertTrue(r.clicks <= expected, "never over-count " + k + ": " + r.clicks + " > " + expected);
            assertEquals(r.adId * 10, r.campaignId);
            if (r.finalFiring) finals.merge(k, r.clicks, Math::max);
        }
        assertEquals(ledger, finals, "every window's final count equals the ledger");

        // --- spread ------------------------------------------------------------------------------
        List<Tuple2<Integer, Long>> in = (List<Tuple2<Integer, Long>>) (List<?>) RESULTS.getOrDefault("hot-window-input", List.of());
        long hotRecords = in.stream().filter(t -> t.f1 == HOT).count();
        long hotSubtasks = in.stream().filter(t -> t.f1 == HOT).map(t -> t.f0).distinct().count();
        System.err.printf("HotAdITCase: %d clicks, %d of the hot ad; %d records of the hot ad entered the ad-keyed exchange (%.4f per click), from %d subtasks; %d records in all%n",
                n, hotClicks, hotRecords, hotRecords / (double) hotClicks, hotSubtasks, in.size());
        assertEquals(2, hotSubtasks, "both subtasks in front of the ad-keyed exchange carry hot-ad work");
        assertTrue(hotRecords * 20 <= hotClicks,
                "the hot ad's single window subtask receives far fewer records than it has clicks: " + hotRecords + " for " + hotClicks + " clicks");
    }
}

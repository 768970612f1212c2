package io.adclick.flink;

import io.adclick.flink.functions.ClickWatermarks;
import io.adclick.flink.model.IngestRecord;
import io.adclick.flink.model.WindowResult;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A measurement, not a test (skipped unless {@code -Dadclick.bench=true}): clicks/s through the job's core
 * on a MiniCluster (parallelism 2, RocksDB, checkpoints every second) with one ad at 50% of the clicks,
 * the topology before issue #17 ({@link LegacyTopology}) against the current one, alternated in the same
 * JVM (A B A B), plus a check that both give the same final count for every window. Run:
 * {@code cd flink && mvn -B -q test -Dtest=HotAdThroughputBench -Dadclick.bench=true [-Dadclick.bench.clicks=400000]}.
 * On a shared machine only the ratio of the two in the same run means something.
 */
@EnabledIfSystemProperty(named = "adclick.bench", matches = "true")
class HotAdThroughputBench {
    @RegisterExtension
    static final MiniClusterExtension MINI_CLUSTER = new MiniClusterExtension(
            new MiniClusterResourceConfiguration.Builder()
                    .setNumberTaskManagers(1)
                    .setNumberSlotsPerTaskManager(2)
                    .build());

    private static final long T0 = 1_700_000_000_000L;

    /** The i-th click: every other one for the hot ad 7, the rest spread over 1,000 ads; 50 clicks per ms of event time. */
    static final class Gen implements MapFunction<Long, IngestRecord> {
        private static final long serialVersionUID = 1L;

        @Override
        public IngestRecord map(Long i) {
            long h = i * 0x9E3779B97F4A7C15L;
            long ad = (i & 1) == 0 ? 7 : 1_000 + Math.floorMod(h >>> 7, 1_000L);
            long t = T0 + i / 50 + Math.floorMod(h >>> 31, 500L); // 50,000 clicks per second of event time, 0.5 s disorder
            return IngestRecord.ofClick(TestClicks.click("imp-" + i, ad, t));
        }
    }

    private static double run(boolean legacy, long n, Path tmp, Map<String, Long> finals) throws Exception {
        Configuration conf = new Configuration();
        conf.set(StateBackendOptions.STATE_BACKEND, "rocksdb");
        conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofSeconds(1));
        conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
        conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, tmp.resolve(legacy ? "a" : "b").toUri().toString());
        conf.set(PipelineOptions.AUTO_WATERMARK_INTERVAL, Duration.ofMillis(200));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        JobConfig cfg = JobConfig.parse(new String[0], Map.of());
        DataStream<IngestRecord> ingest = env.fromSequence(0, n - 1).setParallelism(1)
                .map(new Gen(), TypeInformation.of(IngestRecord.class)).setParallelism(1)
                .assignTimestampsAndWatermarks(ClickWatermarks.strategy(cfg.outOfOrdernessMs, 0)).setParallelism(1);
        PipelineTopology.Outputs out = legacy ? LegacyTopology.build(ingest, cfg) : PipelineTopology.build(ingest, cfg);
        String name = "bench-" + (legacy ? "legacy" : "pre") + "-" + System.nanoTime();
        out.aggregates.sinkTo(new CollectSink<>(name));
        out.lateClicks.sinkTo(new CollectSink<>(name + "-late"));
        long start = System.nanoTime();
        env.execute(name);
        double secs = (System.nanoTime() - start) / 1e9;
        for (Object o : CollectSink.RESULTS.getOrDefault(name, List.of())) {
            WindowResult r = (WindowResult) o;
            if (r.finalFiring) finals.merge(r.granularity.label + "|" + r.adId + "|" + r.windowStartMs + "|" + r.campaignId, r.clicks, Math::max);
        }
        assertEquals(0, CollectSink.RESULTS.getOrDefault(name + "-late", List.of()).size(), "nothing late in this input");
        CollectSink.RESULTS.remove(name);
        return n / secs;
    }

    @Test
    void hotAdClicksPerSecondBeforeAndAfter(@TempDir Path tmp) throws Exception {
        long n = Long.getLong("adclick.bench.clicks", 400_000L);
        Map<String, Long> legacyFinals = new HashMap<>();
        Map<String, Long> preFinals = new HashMap<>();
        double[] legacy = new double[2];
        double[] pre = new double[2];
        for (int round = 0; round < 2; round++) {
            legacy[round] = run(true, n, tmp.resolve("r" + round), legacyFinals);
            pre[round] = run(false, n, tmp.resolve("r" + round), preFinals);
            System.err.printf("HotAdThroughputBench round %d: %,d clicks, 50%% one ad: before (click by click) %,.0f clicks/s, after (pre-aggregated) %,.0f clicks/s, ratio %.2f%n",
                    round + 1, n, legacy[round], pre[round], pre[round] / legacy[round]);
        }
        assertEquals(legacyFinals, preFinals, "both topologies give the same final count for every window");
        long total = legacyFinals.entrySet().stream().filter(e -> e.getKey().startsWith("1m|")).mapToLong(Map.Entry::getValue).sum();
        assertEquals(n, total, "every click counted once in the 1m windows");
        System.err.printf("HotAdThroughputBench: best before %,.0f clicks/s, best after %,.0f clicks/s, ratio of bests %.2f; %d windows identical%n",
                Math.max(legacy[0], legacy[1]), Math.max(pre[0], pre[1]), Math.max(pre[0], pre[1]) / Math.max(legacy[0], legacy[1]), legacyFinals.size());
    }
}

package io.adclick.flink;

import io.adclick.flink.functions.ClickWatermarks;
import io.adclick.flink.model.IngestRecord;
import io.adclick.flink.model.LateClickRecord;
import io.adclick.flink.model.WatermarkProgressRecord;
import io.adclick.flink.model.WindowGranularity;
import io.adclick.flink.model.WindowResult;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.configuration.StateRecoveryOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue #17 upgrade path: a savepoint of the topology before the pre-aggregation ({@link LegacyTopology}:
 * gate keyed by ad in front of windows fed click by click) restores into the current one. The gate's
 * union state (same uid, now unkeyed behind dedup) must carry the pre-upgrade watermark, so a very late
 * first click after the upgrade is a late correction for 1m and 5m, never a fresh window; the window
 * state (same accumulator, now fed partials) must carry the open 1h window's count. Same scenario as
 * {@link RestoreLatenessITCase}, with the old topology in phase 1.
 */
class UpgradeToPreAggregationITCase {
    @RegisterExtension
    static final MiniClusterExtension MINI_CLUSTER = TestMiniCluster.twoSlots();

    static final Map<String, List<Object>> RESULTS = CollectSink.RESULTS;
    private static final long T0 = 1_700_000_040_000L;

    private static IngestRecord click(String id, long ts) {
        return IngestRecord.ofClick(TestClicks.click(id, 1, ts));
    }

    private static StreamExecutionEnvironment env(Path tmp, String savepoint) {
        Configuration conf = new Configuration();
        conf.set(StateBackendOptions.STATE_BACKEND, "rocksdb");
        conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofMillis(500));
        conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
        conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, tmp.resolve("chk").toUri().toString());
        conf.set(PipelineOptions.AUTO_WATERMARK_INTERVAL, Duration.ofMillis(20));
        if (savepoint != null) {
            conf.set(StateRecoveryOptions.SAVEPOINT_PATH, savepoint);
            conf.set(StateRecoveryOptions.SAVEPOINT_IGNORE_UNCLAIMED_STATE, true); // only the per-phase test sources
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        return env;
    }

    private static void topology(StreamExecutionEnvironment env, String phase, long to, boolean legacy) {
        JobConfig cfg = JobConfig.parse(new String[] {"--early-fire-interval-ms", "50", "--watermark-emit-interval-ms", "10"}, Map.of());
        DataStream<IngestRecord> ingest = env.fromSequence(0, to).setParallelism(1).uid("seq-" + phase)
                .flatMap(new RestoreLatenessITCase.Replay(phase), TypeInformation.of(IngestRecord.class)).setParallelism(1).uid("replay-" + phase)
                .assignTimestampsAndWatermarks(ClickWatermarks.strategy(cfg.outOfOrdernessMs, 0)).setParallelism(1)
                .uid("watermarks-" + phase);
        PipelineTopology.Outputs out = legacy ? LegacyTopology.build(ingest, cfg) : PipelineTopology.build(ingest, cfg);
        out.aggregates.sinkTo(new CollectSink<>(phase + "-agg")).uid("agg-sink-" + phase);
        out.lateClicks.sinkTo(new CollectSink<>(phase + "-late")).uid("late-sink-" + phase);
        out.watermarks.sinkTo(new CollectSink<>(phase + "-wm")).uid("wm-sink-" + phase);
    }

    @Test
    @SuppressWarnings("unchecked")
    void savepointOfTheKeyedGateTopologyRestoresWatermarkAndWindows(@TempDir Path tmp) throws Exception {
        RESULTS.clear();
        List<IngestRecord> first = new ArrayList<>();
        for (int i = 0; i <= 60; i++) first.add(click("u1-" + i, T0 + i * 10_000L));
        RestoreLatenessITCase.INPUTS.put("u1", first);
        long target = T0 + 600_000 - 5_001;

        StreamExecutionEnvironment env1 = env(tmp, null);
        topology(env1, "u1", Long.MAX_VALUE - 1, true);
        JobClient job1 = env1.executeAsync("adclick-upgrade-phase-1-legacy");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (true) {
            List<WatermarkProgressRecord> wms = (List<WatermarkProgressRecord>) (List<?>) RESULTS.getOrDefault("u1-wm", List.of());
            List<WindowResult> aggs1 = (List<WindowResult>) (List<?>) RESULTS.getOrDefault("u1-agg", List.of());
            boolean reached;
            boolean firstMinuteFinal;
            synchronized (wms) {
                reached = wms.stream().filter(w -> w.watermarkMs >= target).map(w -> w.subtask).distinct().count() == 2;
            }
            synchronized (aggs1) {
                firstMinuteFinal = aggs1.stream().anyMatch(r -> r.granularity == WindowGranularity.MINUTE_1
                        && r.windowStartMs == T0 && r.finalFiring && r.clicks == 6);
            }
            if (reached && firstMinuteFinal) break;
            assertTrue(System.nanoTime() < deadline, "phase 1 never reached watermark " + target + ": " + wms + " " + aggs1);
            Thread.sleep(20);
        }
        String savepoint = job1.stopWithSavepoint(false, tmp.resolve("sp").toUri().toString(), SavepointFormatType.CANONICAL)
                .get(60, TimeUnit.SECONDS);

        RestoreLatenessITCase.INPUTS.put("u2", List.of(click("very-late", T0 + 1_000), click("u2-next", T0 + 610_000)));
        StreamExecutionEnvironment env2 = env(tmp, savepoint);
        topology(env2, "u2", 1, false);
        env2.execute("adclick-upgrade-phase-2-pre-aggregation");

        List<LateClickRecord> late = (List<LateClickRecord>) (List<?>) RESULTS.getOrDefault("u2-late", List.of());
        List<WindowResult> aggs2 = (List<WindowResult>) (List<?>) RESULTS.getOrDefault("u2-agg", List.of());
        List<String> lateFor = late.stream().filter(l -> l.click.impressionId.equals("very-late"))
                .map(l -> l.granularity.label).sorted().collect(Collectors.toList());
        List<String> freshRows = aggs2.stream()
                .filter(r -> r.granularity != WindowGranularity.HOUR_1 && r.windowStartMs <= T0 + 1_000 && T0 + 1_000 < r.windowEndMs)
                .map(Object::toString).collect(Collectors.toList());
        assertEquals(List.of(), freshRows, "no fresh 1m/5m window for the very late click after the upgrade");
        assertEquals(List.of(WindowGranularity.MINUTE_1.label, WindowGranularity.MINUTE_5.label), lateFor,
                "the very late click is a late correction for the 1m and 5m windows (the gate's state was restored)");
        long hourStart = T0 - Math.floorMod(T0, 3_600_000L);
        assertTrue(aggs2.stream().anyMatch(r -> r.granularity == WindowGranularity.HOUR_1 && r.windowStartMs == hourStart
                && r.finalFiring && r.clicks == 63), "the restored 1h window (61 clicks, click by click) adds both partials: " + aggs2);
        for (LateClickRecord l : late) {
            assertTrue(l.watermarkMs >= target, "lateness judged against the pre-upgrade watermark: " + l);
        }
    }
}

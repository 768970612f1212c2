package io.adclick.flink;

import io.adclick.flink.functions.ClickWatermarks;
import io.adclick.flink.model.IngestRecord;
import io.adclick.flink.model.LateClickRecord;
import io.adclick.flink.model.WatermarkProgressRecord;
import io.adclick.flink.model.WindowGranularity;
import io.adclick.flink.model.WindowResult;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.configuration.StateRecoveryOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.runtime.jobgraph.JobGraph;
import org.apache.flink.runtime.jobgraph.JobVertex;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue #15, defect 1, end to end on a MiniCluster: watermarks are not part of a checkpoint, so a
 * restored job must still judge lateness against the watermark it had before the restart. Phase 1
 * runs the real topology until its watermark is ~10 minutes past the first clicks, then stops with a
 * savepoint; phase 2 restores from it and its very first record is a click from the first minute.
 * That click must become a late correction (1m and 5m windows, long closed and purged before the
 * restart), never a fresh window whose clicks=1 row would lose downstream to the stored row.
 */
class RestoreLatenessITCase {
    @RegisterExtension
    static final MiniClusterExtension MINI_CLUSTER = TestMiniCluster.twoSlots();

    static final Map<String, List<Object>> RESULTS = CollectSink.RESULTS;
    static final Map<String, List<IngestRecord>> INPUTS = new ConcurrentHashMap<>();

    private static final long T0 = 1_700_000_040_000L; // 1m aligned, 5m/1h not
    private static final long AD = 1;

    /**
     * Sequence number -> the n-th record of a named input; past its end it emits nothing and sleeps a
     * little, so an (effectively) unbounded sequence keeps the job running without burning a core.
     */
    static final class Replay implements FlatMapFunction<Long, IngestRecord> {
        private static final long serialVersionUID = 1L;
        private final String input;

        Replay(String input) {
            this.input = input;
        }

        @Override
        public void flatMap(Long i, Collector<IngestRecord> out) throws Exception {
            List<IngestRecord> records = INPUTS.get(input);
            if (i < records.size()) {
                out.collect(records.get(i.intValue()));
            } else {
                Thread.sleep(20);
            }
        }
    }

    private static IngestRecord click(String id, long ts) {
        return IngestRecord.ofClick(TestClicks.click(id, AD, ts));
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
            // only the test's own sequence source/replay (other uids per phase) is left unclaimed
            conf.set(StateRecoveryOptions.SAVEPOINT_IGNORE_UNCLAIMED_STATE, true);
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        return env;
    }

    private static PipelineTopology.Outputs topology(StreamExecutionEnvironment env, String phase, long to) {
        JobConfig cfg = JobConfig.parse(new String[] {"--early-fire-interval-ms", "50", "--watermark-emit-interval-ms", "10"}, Map.of());
        DataStream<IngestRecord> ingest = env.fromSequence(0, to).setParallelism(1).uid("seq-" + phase)
                .flatMap(new Replay(phase), TypeInformation.of(IngestRecord.class)).setParallelism(1).uid("replay-" + phase)
                .assignTimestampsAndWatermarks(ClickWatermarks.strategy(cfg.outOfOrdernessMs, 0)).setParallelism(1)
                .uid("watermarks-" + phase);
        PipelineTopology.Outputs out = PipelineTopology.build(ingest, cfg);
        out.aggregates.sinkTo(new CollectSink<>(phase + "-agg")).uid("agg-sink-" + phase);
        out.lateClicks.sinkTo(new CollectSink<>(phase + "-late")).uid("late-sink-" + phase);
        out.watermarks.sinkTo(new CollectSink<>(phase + "-wm")).uid("wm-sink-" + phase);
        return out;
    }

    @Test
    @SuppressWarnings("unchecked")
    void veryLateClickAfterRestoreIsLateCorrectionNotFreshWindow(@TempDir Path tmp) throws Exception {
        RESULTS.clear();
        // phase 1: one click every 10 s for 10 minutes; the watermark ends ~T0 + 10 min - 5 s
        List<IngestRecord> first = new ArrayList<>();
        for (int i = 0; i <= 60; i++) first.add(click("p1-" + i, T0 + i * 10_000L));
        INPUTS.put("p1", first);
        long target = T0 + 600_000 - 5_001; // max event time - out-of-orderness - 1

        StreamExecutionEnvironment env1 = env(tmp, null);
        topology(env1, "p1", Long.MAX_VALUE - 1);
        JobClient job1 = env1.executeAsync("adclick-restore-phase-1");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (true) {
            List<WatermarkProgressRecord> wms = (List<WatermarkProgressRecord>) (List<?>) RESULTS.getOrDefault("p1-wm", List.of());
            List<WindowResult> aggs1 = (List<WindowResult>) (List<?>) RESULTS.getOrDefault("p1-agg", List.of());
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
            assertTrue(System.nanoTime() < deadline, "phase 1 never reached watermark " + target
                    + " with the first minute final (6 clicks): " + wms + " " + aggs1);
            Thread.sleep(20);
        }
        String savepoint = job1.stopWithSavepoint(false, tmp.resolve("sp").toUri().toString(), SavepointFormatType.CANONICAL)
                .get(60, TimeUnit.SECONDS);

        // phase 2: restored; the first record is a click from the first minute, far beyond allowed lateness
        INPUTS.put("p2", List.of(click("very-late", T0 + 1_000), click("p2-next", T0 + 610_000)));
        StreamExecutionEnvironment env2 = env(tmp, savepoint);
        topology(env2, "p2", 1);
        env2.execute("adclick-restore-phase-2");

        List<LateClickRecord> late = (List<LateClickRecord>) (List<?>) RESULTS.getOrDefault("p2-late", List.of());
        List<WindowResult> aggs2 = (List<WindowResult>) (List<?>) RESULTS.getOrDefault("p2-agg", List.of());
        List<String> lateFor = late.stream().filter(l -> l.click.impressionId.equals("very-late"))
                .map(l -> l.granularity.label).sorted().collect(Collectors.toList());
        List<String> freshRows = aggs2.stream()
                .filter(r -> r.granularity != WindowGranularity.HOUR_1 && r.windowStartMs <= T0 + 1_000 && T0 + 1_000 < r.windowEndMs)
                .map(Object::toString).collect(Collectors.toList());
        assertEquals(List.of(), freshRows, "no fresh 1m/5m window for the very late click after the restore");
        assertEquals(List.of(WindowGranularity.MINUTE_1.label, WindowGranularity.MINUTE_5.label), lateFor,
                "the very late click is a late correction for the 1m and 5m windows");
        // the 1h window of the very late click is still within allowed lateness: updated in place
        long hourStart = T0 - Math.floorMod(T0, 3_600_000L);
        assertTrue(aggs2.stream().anyMatch(r -> r.granularity == WindowGranularity.HOUR_1 && r.windowStartMs == hourStart
                && r.finalFiring && r.clicks == 63), "1h window counts phase 1 (61) + both phase 2 clicks: " + aggs2);
        for (LateClickRecord l : late) {
            assertTrue(l.watermarkMs >= target, "lateness judged against the pre-restart watermark: " + l);
        }
    }

    /**
     * Race-free only if the operator that judges lateness reads exactly one gate subtask: same chain, forward
     * edges. Since issue #17 that operator is the pre-aggregation behind dedup (the gate moved with it); the
     * window operators sit behind the single ad-keyed exchange, chained to its router.
     */
    @Test
    void gateRunsInTheSameChainAsTheOperatorThatJudgesLateness() {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        INPUTS.put("graph", List.of());
        topology(env, "graph", 0);
        JobGraph graph = env.getStreamGraph().getJobGraph();
        List<String> gateVertices = new ArrayList<>();
        List<String> windowVertices = new ArrayList<>();
        for (JobVertex v : graph.getVertices()) {
            if (v.getName().contains("restored-watermark-gate")) gateVertices.add(v.getName());
            if (v.getName().contains("window-1m")) windowVertices.add(v.getName());
        }
        assertEquals(1, gateVertices.size(), "one gate vertex: " + gateVertices);
        assertTrue(gateVertices.get(0).contains("pre-aggregate"), gateVertices.get(0));
        assertEquals(1, windowVertices.size(), "one window vertex: " + windowVertices);
        assertTrue(windowVertices.get(0).contains("partials-by-ad"), windowVertices.get(0));
        for (WindowGranularity g : WindowGranularity.values()) {
            assertTrue(windowVertices.get(0).contains("window-" + g.label), windowVertices.get(0));
        }
    }
}

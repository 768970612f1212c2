package io.adclick.flink;

import io.adclick.flink.functions.ClickWatermarks;
import io.adclick.flink.model.Click;
import io.adclick.flink.model.DeadLetterRecord;
import io.adclick.flink.model.IngestRecord;
import io.adclick.flink.model.LateClickRecord;
import io.adclick.flink.model.WatermarkProgressRecord;
import io.adclick.flink.model.WindowResult;
import io.adclick.flink.serde.ClickDeserializationSchema;
import io.adclick.flink.serde.ProtoConverters;
import io.adclick.flink.serde.ReasonCodes;
import io.adclick.flink.serde.Serializers;
import io.adclick.flink.serde.TraceContextTest;
import io.adclick.proto.v1.ClickEvent;
import io.adclick.proto.v1.Granularity;
import io.adclick.proto.v1.LateClick;
import io.adclick.proto.v1.WindowAggregate;

import org.apache.flink.api.common.typeinfo.TypeInformation;
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
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Runs the real topology (PipelineTopology) on a MiniCluster with RocksDB and checkpointing, over a
 * bounded in-memory input with duplicates, bounded disorder, very late clicks and poison records, and
 * checks the final counts against an independently computed expectation.
 */
class PipelineITCase {
    @RegisterExtension
    static final MiniClusterExtension MINI_CLUSTER = TestMiniCluster.twoSlots();

    static final Map<String, List<Object>> RESULTS = CollectSink.RESULTS;

    private static final long T0 = 1_700_000_000_000L; // not hour aligned on purpose
    private static final long[] SIZES = {60_000L, 300_000L, 3_600_000L};
    private static final Granularity[] GRANS = {Granularity.GRANULARITY_1M, Granularity.GRANULARITY_5M, Granularity.GRANULARITY_1H};

    /** A deterministic 32-hex trace id per label. */
    private static String traceOf(String label) {
        return java.util.UUID.nameUUIDFromBytes(label.getBytes(java.nio.charset.StandardCharsets.UTF_8)).toString().replace("-", "");
    }

    private static String key(Granularity g, long ad, long start) {
        return g.getNumber() + "|" + ad + "|" + start;
    }

    @Test
    @SuppressWarnings("unchecked")
    void finalCountsMatchIndependentExpectation(@TempDir Path tmp) throws Exception {
        RESULTS.clear();
        Random rnd = new Random(42);
        ClickDeserializationSchema deser = new ClickDeserializationSchema();

        // --- ground truth -----------------------------------------------------------------------
        int n = 3000;
        List<ClickEvent> distinct = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            long ad = 1 + rnd.nextInt(5);
            distinct.add(TestClicks.event("imp-" + i, ad, T0 + i * 2_400L + rnd.nextInt(1_000)));
        }
        // emission order: bounded disorder (< 5s out-of-orderness bound, so none of these is ever late)
        List<long[]> order = new ArrayList<>(); // {sortKey, index}
        for (int i = 0; i < n; i++) {
            order.add(new long[] {distinct.get(i).getEventTimeMs() + rnd.nextInt(4_000), i});
        }
        order.sort((a, b) -> Long.compare(a[0], b[0]));
        List<ClickEvent> stream = new ArrayList<>();
        for (long[] o : order) stream.add(distinct.get((int) o[1]));
        // ~10% duplicates (gateway/client retries), re-inserted up to 60 positions later
        int dups = 0;
        for (int i = 0; i < n; i += 10) {
            ClickEvent d = distinct.get(i);
            int pos = Math.min(stream.size(), stream.indexOf(d) + 1 + rnd.nextInt(60));
            stream.add(pos, d);
            dups++;
        }
        // very late clicks (event time near the start, arriving at the end): each must end up either
        // in a window count or on the late stream, never lost and never both
        for (int i = 0; i < 5; i++) {
            ClickEvent late = TestClicks.event("late-" + i, 1 + i, T0 + 600_000 + i);
            distinct.add(late);
            stream.add(late);
        }
        stream.add(distinct.get(n + 2)); // and one duplicate of a late click

        // expected per (granularity, ad, window): computed by plain arithmetic
        Map<String, Long> expected = new HashMap<>();
        for (ClickEvent e : distinct) {
            for (int g = 0; g < 3; g++) {
                long start = e.getEventTimeMs() - Math.floorMod(e.getEventTimeMs(), SIZES[g]);
                expected.merge(key(GRANS[g], e.getAdId(), start), 1L, Long::sum);
            }
        }

        // Kafka-level input, through the real deserializer, plus poison records
        // Every record carries a W3C traceparent (as the gateway writes it), a different trace per record, so a
        // retried duplicate has a trace of its own.
        List<IngestRecord> input = new ArrayList<>();
        long offset = 0;
        Map<String, Set<String>> tracesOf = new HashMap<>(); // impression id -> traces of its records (retries included)
        for (ClickEvent e : stream) {
            String trace = traceOf("rec-" + offset);
            tracesOf.computeIfAbsent(e.getImpressionId(), k -> new java.util.HashSet<>()).add(trace);
            input.add(deser.convert(TraceContextTest.traced(
                    TestClicks.record(offset++, Long.toString(e.getAdId()), e.toByteArray()), "00-" + trace + "-00f067aa0ba902b7-01")));
        }
        String poisonTrace = traceOf("poison");
        input.add(100, deser.convert(TraceContextTest.traced(
                TestClicks.record(offset++, "1", new byte[] {0x0A, (byte) 0xFF, 0x7F}), "00-" + poisonTrace + "-00f067aa0ba902b7-01")));
        input.add(200, deser.convert(TestClicks.record(offset++, "1", ClickEvent.newBuilder().setImpressionId("x").build().toByteArray())));
        input.add(300, deser.convert(TestClicks.record(offset++, null, null)));

        // --- run -------------------------------------------------------------------------------
        Configuration conf = new Configuration();
        conf.set(PipelineOptions.OBJECT_REUSE, true); // as the job runs (JobConfig.toFlinkConfiguration)
        conf.set(StateBackendOptions.STATE_BACKEND, "rocksdb");
        conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofMillis(500));
        conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
        conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, tmp.toUri().toString());
        conf.set(CheckpointingOptions.INCREMENTAL_CHECKPOINTS, true);
        conf.set(PipelineOptions.AUTO_WATERMARK_INTERVAL, Duration.ofMillis(20));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);

        JobConfig cfg = JobConfig.parse(new String[] {"--early-fire-interval-ms", "50", "--watermark-emit-interval-ms", "10"}, Map.of());
        DataStream<IngestRecord> ingest = env
                .fromData(input, TypeInformation.of(IngestRecord.class)).setParallelism(1)
                .assignTimestampsAndWatermarks(ClickWatermarks.strategy(cfg.outOfOrdernessMs, 0)).setParallelism(1);
        PipelineTopology.Outputs out = PipelineTopology.build(ingest, cfg);
        out.aggregates.sinkTo(new CollectSink<>("agg"));
        out.lateClicks.sinkTo(new CollectSink<>("late"));
        out.deadLetters.sinkTo(new CollectSink<>("dlq"));
        out.watermarks.sinkTo(new CollectSink<>("wm"));
        out.deduped.sinkTo(new CollectSink<>("deduped"));
        env.execute("adclick-itcase");

        // --- check -----------------------------------------------------------------------------
        List<WindowAggregate> aggs = RESULTS.getOrDefault("agg", List.of()).stream()
                .map(o -> ProtoConverters.toProto((WindowResult) o)).collect(Collectors.toList());
        List<LateClickRecord> late = (List<LateClickRecord>) (List<?>) RESULTS.getOrDefault("late", List.of());
        List<DeadLetterRecord> dlq = (List<DeadLetterRecord>) (List<?>) RESULTS.getOrDefault("dlq", List.of());

        Map<String, Long> finalCounts = new HashMap<>();
        Map<String, Long> maxAnyCount = new HashMap<>();
        for (WindowAggregate a : aggs) {
            String k = key(a.getGranularity(), a.getAdId(), a.getWindowStartMs());
            assertTrue(expected.containsKey(k), "unexpected window " + k);
            assertEquals(a.getAdId() * 10, a.getCampaignId());
            assertEquals(a.getAdId() * 100, a.getAdvertiserId());
            assertEquals(a.getWindowStartMs() + SIZES[a.getGranularity().getNumber() - 1], a.getWindowEndMs());
            maxAnyCount.merge(k, a.getClicks(), Math::max);
            if (a.getFinal()) {
                assertTrue(a.getWatermarkMs() >= a.getWindowEndMs() - 1, "final only after the watermark passed");
                finalCounts.merge(k, a.getClicks(), Math::max); // counts only grow; the last final is the max
            }
        }
        Map<String, Long> lateCounts = new HashMap<>();
        for (LateClickRecord l : late) {
            assertTrue(l.click.impressionId.startsWith("late-"), "only the very late clicks may be late: " + l);
            // counted from the LateClick message as the sink sees it (granularity/window_start fields)
            LateClick lp = ProtoConverters.toProto(l);
            assertEquals(l.granularity.proto, lp.getGranularity(), "LateClick carries its granularity");
            lateCounts.merge(key(lp.getGranularity(), lp.getClick().getAdId(), lp.getWindowStartMs()), 1L, Long::sum);
        }

        long mismatches = 0;
        for (Map.Entry<String, Long> e : expected.entrySet()) {
            long fin = finalCounts.getOrDefault(e.getKey(), 0L);
            long lc = lateCounts.getOrDefault(e.getKey(), 0L);
            if (fin + lc != e.getValue()) {
                mismatches++;
                System.err.println("MISMATCH " + e.getKey() + " expected=" + e.getValue() + " final=" + fin + " late=" + lc);
            }
            assertTrue(maxAnyCount.getOrDefault(e.getKey(), 0L) <= e.getValue(), "never over-count " + e.getKey());
        }
        assertEquals(0, mismatches, "final + late must equal the ground truth for every window");
        // windows without very late clicks are exact, and every expected window got a final result
        long exactWindows = expected.keySet().stream().filter(k -> !lateCounts.containsKey(k))
                .filter(k -> finalCounts.getOrDefault(k, -1L).equals(expected.get(k))).count();
        assertEquals(expected.size() - lateCounts.keySet().stream().filter(k -> !finalCounts.containsKey(k)).count(),
                finalCounts.size(), "every window that has counted clicks has a final emission");
        assertTrue(exactWindows >= expected.size() - 15, "exact windows: " + exactWindows + "/" + expected.size());
        assertTrue(late.size() <= 15, "each very late click is reported at most once per granularity");

        assertEquals(3, dlq.size(), "poison records go to the DLQ, nothing else does");
        assertEquals(List.of(ReasonCodes.EMPTY_PAYLOAD, ReasonCodes.INVALID_FIELD, ReasonCodes.PROTOBUF_DECODE_FAILED),
                dlq.stream().map(d -> d.reason).sorted().collect(Collectors.toList()));

        // Deduped stream: every distinct click exactly once (on-time and very late alike), no duplicate,
        // no poison record, and each serialized as its original ClickEvent keyed by ad_id.
        List<Click> deduped = (List<Click>) (List<?>) RESULTS.getOrDefault("deduped", List.of());
        Map<String, Long> dedupedIds = deduped.stream()
                .collect(Collectors.groupingBy(c -> c.impressionId + "|" + c.eventType, Collectors.counting()));
        assertEquals(deduped.size(), dedupedIds.size(), "no click appears twice on the deduped stream");
        Set<String> distinctIds = distinct.stream().map(e -> e.getImpressionId() + "|" + e.getEventType()).collect(Collectors.toSet());
        assertEquals(distinctIds, dedupedIds.keySet(), "deduped stream = the distinct clicks");
        Map<String, ClickEvent> byId = distinct.stream().collect(Collectors.toMap(e -> e.getImpressionId() + "|" + e.getEventType(), e -> e));
        Serializers.DedupedClickSerializer ser = new Serializers.DedupedClickSerializer("clicks-deduped");
        for (Click c : deduped) {
            var rec = ser.serialize(c, null, null);
            assertEquals("clicks-deduped", rec.topic());
            assertEquals(Long.toString(c.adId), new String(rec.key(), java.nio.charset.StandardCharsets.UTF_8));
            assertEquals(byId.get(c.impressionId + "|" + c.eventType), ClickEvent.parseFrom(rec.value()), "original event");
        }

        // --- trace context ---------------------------------------------------------------------
        // The source feeds the parallel split round-robin, so which occurrence of a retried click reaches dedup
        // first is not fixed; the survivor must keep the trace of one of ITS OWN records (retries have other
        // traces), and it is written as a traceparent continuing that trace.
        Map<String, String> keptTrace = new HashMap<>();
        for (Click c : deduped) {
            assertTrue(tracesOf.get(c.impressionId).contains(c.traceId), "deduped click keeps the trace of one of its records: " + c);
            TraceContextTest.assertContinues(ser.serialize(c, null, null), c.traceId, "01");
            keptTrace.put(c.impressionId, c.traceId);
        }
        // Each aggregate emission carries the trace of a click that was counted in that very window (the most
        // recent one to change it): a kept trace of a click in the window, not late for that granularity.
        Set<String> lateFor = late.stream().map(l -> l.granularity.proto.getNumber() + "|" + l.click.impressionId).collect(Collectors.toSet());
        Map<String, Set<String>> windowTraces = new HashMap<>();
        for (Click c : deduped) {
            for (int g = 0; g < 3; g++) {
                if (lateFor.contains(GRANS[g].getNumber() + "|" + c.impressionId)) continue;
                long start = c.eventTimeMs - Math.floorMod(c.eventTimeMs, SIZES[g]);
                windowTraces.computeIfAbsent(key(GRANS[g], c.adId, start), k -> new java.util.HashSet<>()).add(c.traceId);
            }
        }
        Serializers.WindowAggregateSerializer aggSer = new Serializers.WindowAggregateSerializer("click-aggregates");
        for (Object o : RESULTS.getOrDefault("agg", List.of())) {
            WindowResult r = (WindowResult) o;
            String k = key(r.granularity.proto, r.adId, r.windowStartMs);
            assertTrue(windowTraces.getOrDefault(k, Set.of()).contains(r.traceId), "aggregate " + r + " carries the trace of a click it counted");
            TraceContextTest.assertContinues(aggSer.serialize(r, null, null), r.traceId, "01");
        }
        Serializers.LateClickSerializer lateSer = new Serializers.LateClickSerializer("clicks-late");
        for (LateClickRecord l : late) {
            assertEquals(keptTrace.get(l.click.impressionId), l.click.traceId, "late click keeps its trace");
            TraceContextTest.assertContinues(lateSer.serialize(l, null, null), l.click.traceId, "01");
        }
        DeadLetterRecord poison = dlq.stream().filter(d -> d.reason.equals(ReasonCodes.PROTOBUF_DECODE_FAILED)).findFirst().orElseThrow();
        assertEquals(poisonTrace, poison.traceId, "a dead letter keeps the trace of its record");
        TraceContextTest.assertContinues(new Serializers.DeadLetterSerializer("clicks-dlq").serialize(poison, null, null), poisonTrace, "01");

        List<WatermarkProgressRecord> wms = (List<WatermarkProgressRecord>) (List<?>) RESULTS.getOrDefault("wm", List.of());
        for (int s = 0; s < 2; s++) {
            final int sub = s;
            List<Long> seq = wms.stream().filter(w -> w.subtask == sub).map(w -> w.watermarkMs).collect(Collectors.toList());
            for (int i = 1; i < seq.size(); i++) assertTrue(seq.get(i) > seq.get(i - 1), "watermark progress is monotonic");
        }
        System.err.printf("ITCase: %d input records, %d duplicates, %d distinct, %d windows, %d emissions (%d final), %d late, %d dlq, %d wm, %d deduped%n",
                input.size(), dups + 1, distinct.size(), expected.size(), aggs.size(),
                aggs.stream().filter(WindowAggregate::getFinal).count(), late.size(), dlq.size(), wms.size(), deduped.size());
    }
}

package io.adclick.flink.audit;

import io.adclick.flink.PipelineTopology;
import io.adclick.flink.model.Click;

import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;

import java.util.Comparator;
import java.util.List;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AuditTest {
    static Click click(long ad, long t) {
        Click c = new Click();
        c.impressionId = "i" + ad + "-" + t;
        c.eventType = "click";
        c.adId = ad;
        c.eventTimeMs = t;
        return c;
    }

    private static String summary(List<AuditDelta> ds) {
        return ds.stream().sorted(Comparator.comparingLong(AuditDelta::key))
                .map(d -> d.windowStartMs + "/" + d.bucket + ":" + d.accepted + "," + d.duplicates + "," + d.rejected)
                .collect(Collectors.joining(" "));
    }

    @Test
    void tallyFlushesBeforeEveryCheckpointBarrierAndOnItsTimer() throws Exception {
        try (var h = new OneInputStreamOperatorTestHarness<Click, AuditDelta>(
                new AuditTally<>(AuditKind.ACCEPTED, new PipelineTopology.ClickClassifier(), 1_000))) {
            h.setProcessingTime(0);
            h.open();
            h.processElement(click(1, 60_000), 0);
            h.processElement(click(1, 119_999), 0);
            h.processElement(click(17, 61_000), 0); // 17 % 16 = bucket 1, like ad 1
            h.processElement(click(2, 120_000), 0);
            assertEquals(0, h.extractOutputValues().size(), "counts are buffered");
            // A checkpoint: everything counted so far leaves BEFORE the barrier, and the operator keeps no state.
            h.prepareSnapshotPreBarrier(1);
            assertEquals("60000/1:3,0,0 120000/2:1,0,0", summary(h.extractOutputValues()));
            h.getOutput().clear();
            h.processElement(click(2, 120_001), 0);
            h.setProcessingTime(999);
            assertEquals(0, h.extractOutputValues().size());
            h.setProcessingTime(1_000);
            assertEquals("120000/2:1,0,0", summary(h.extractOutputValues()), "timer flush");
            h.getOutput().clear();
            h.prepareSnapshotPreBarrier(2);
            assertEquals(0, h.extractOutputValues().size(), "nothing pending, nothing sent");
        }
    }

    @Test
    void counterIsCumulativeAndEmitsNewestCountsOncePerInterval() throws Exception {
        AuditCounter fn = new AuditCounter(500, 3_600_000);
        try (var h = new KeyedOneInputStreamOperatorTestHarness<Long, AuditDelta, AuditRecord>(
                new KeyedProcessOperator<>(fn), AuditDelta::key, Types.LONG)) {
            h.setProcessingTime(0);
            h.open();
            h.processElement(new AuditDelta(60_000, 3, 5, 0, 0), 0);
            h.processElement(new AuditDelta(60_000, 3, 0, 2, 0), 0);
            h.processElement(new AuditDelta(0, 1, 1, 0, 1), 0);
            assertEquals(0, h.extractOutputValues().size());
            h.setProcessingTime(500);
            List<AuditRecord> out = h.extractOutputValues();
            assertEquals(2, out.size());
            AuditRecord r = out.stream().filter(x -> x.windowStartMs == 60_000).findFirst().orElseThrow();
            assertEquals(5, r.accepted);
            assertEquals(2, r.duplicates);
            assertEquals(7, r.version());
            assertEquals(500, r.emittedAtMs);
            AuditRecord dl = out.stream().filter(x -> x.windowStartMs == 0).findFirst().orElseThrow();
            assertEquals(1, dl.rejected);

            // Survives a restore: counts continue from the checkpoint, versions only grow.
            var snapshot = h.snapshot(1, 600);
            try (var h2 = new KeyedOneInputStreamOperatorTestHarness<Long, AuditDelta, AuditRecord>(
                    new KeyedProcessOperator<>(new AuditCounter(500, 3_600_000)), AuditDelta::key, Types.LONG)) {
                h2.setProcessingTime(600);
                h2.initializeState(snapshot);
                h2.open();
                h2.processElement(new AuditDelta(60_000, 3, 4, 0, 0), 0);
                h2.setProcessingTime(1_100);
                AuditRecord after = h2.extractOutputValues().get(h2.extractOutputValues().size() - 1);
                assertEquals(9, after.accepted);
                assertTrue(after.version() > r.version());
            }
        }
    }

    /** Gateway ticks pass through the ingest stream but are no records of the ledger. */
    @Test
    void ticksAreNeverCountedAsAccepted() throws Exception {
        try (var h = new OneInputStreamOperatorTestHarness<io.adclick.flink.model.IngestRecord, AuditDelta>(
                new AuditTally<>(AuditKind.ACCEPTED, new PipelineTopology.IngestClassifier(), 1_000))) {
            h.setProcessingTime(0);
            h.open();
            h.processElement(io.adclick.flink.model.IngestRecord.ofTick(60_500), 0);
            h.processElement(io.adclick.flink.model.IngestRecord.ofClick(click(1, 60_000)), 0);
            h.processElement(io.adclick.flink.model.IngestRecord.ofTick(61_500), 0);
            h.prepareSnapshotPreBarrier(1);
            assertEquals("60000/1:1,0,0", summary(h.extractOutputValues()));
        }
    }
}

package io.adclick.flink.serde;

import io.adclick.flink.TestClicks;
import io.adclick.flink.functions.ClickCountAggregate;
import io.adclick.flink.model.Click;
import io.adclick.flink.model.ClickPartial;
import io.adclick.flink.model.DeadLetterRecord;
import io.adclick.flink.model.IngestRecord;
import io.adclick.flink.model.LateClickRecord;
import io.adclick.flink.model.WindowGranularity;
import io.adclick.flink.model.WindowResult;
import io.adclick.proto.v1.ClickEvent;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** W3C traceparent: read by the deserializer, kept off the counts, written by every serializer. */
public class TraceContextTest {
    static final String TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
    static final String PARENT = "00-" + TRACE + "-00f067aa0ba902b7-01";
    private static final long T = 1_700_000_223_456L;

    public static ConsumerRecord<byte[], byte[]> traced(ConsumerRecord<byte[], byte[]> r, String traceparent) {
        r.headers().add(TraceContext.HEADER, traceparent.getBytes(StandardCharsets.US_ASCII));
        return r;
    }

    /** Asserts the record carries exactly one traceparent continuing TRACE with a fresh span id. */
    public static void assertContinues(ProducerRecord<byte[], byte[]> rec, String traceId, String flags) {
        int n = 0;
        for (Header h : rec.headers()) if (h.key().equals(TraceContext.HEADER)) n++;
        assertEquals(1, n, "one traceparent header on " + rec.topic());
        String v = new String(rec.headers().lastHeader(TraceContext.HEADER).value(), StandardCharsets.US_ASCII);
        TraceContext.Parent p = TraceContext.parse(v);
        assertNotNull(p, "valid traceparent: " + v);
        assertEquals(traceId, p.traceId);
        assertTrue(v.endsWith("-" + flags), v);
        assertNotEquals("00f067aa0ba902b7", v.substring(36, 52), "the job writes a span id of its own");
    }

    @Test
    void parsesValidAndRejectsInvalidHeaders() {
        TraceContext.Parent p = TraceContext.parse(PARENT);
        assertEquals(TRACE, p.traceId);
        assertEquals(1, p.flags);
        assertEquals(TRACE, TraceContext.parse("01-" + TRACE + "-00f067aa0ba902b7-00-future").traceId, "later versions: first four fields");
        String[] bad = {
            null, "", "garbage", PARENT + "-x", // version 00 has exactly four fields
            "ff-" + TRACE + "-00f067aa0ba902b7-01", // forbidden version
            "00-" + TRACE.toUpperCase() + "-00f067aa0ba902b7-01", // upper case
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            "00-" + TRACE + "-0000000000000000-01", // zero span id
            "00-" + TRACE.substring(1) + "-00f067aa0ba902b7-01", "00_" + TRACE + "-00f067aa0ba902b7-01",
        };
        for (String b : bad) assertNull(TraceContext.parse(b), String.valueOf(b));
        String next = TraceContext.continueTrace(TRACE, 1);
        assertEquals(TRACE, TraceContext.parse(next).traceId);
        assertNotEquals(TraceContext.continueTrace(TRACE, 1), next, "a new span id each time");
    }

    @Test
    void continuedTracesAreWellFormedForEveryFlagAndManySpans() {
        java.util.Set<String> spans = new java.util.HashSet<>();
        for (int i = 0; i < 20_000; i++) {
            int flags = i & 0xff;
            String v = TraceContext.continueTrace(TRACE, flags);
            TraceContext.Parent p = TraceContext.parse(v);
            assertNotNull(p, v);
            assertEquals(TRACE, p.traceId);
            assertEquals(flags, p.flags, v);
            assertEquals(String.format("%02x", flags), v.substring(53), "flags as two lower-case hex digits");
            spans.add(v.substring(36, 52));
        }
        assertTrue(spans.size() > 19_990, "span ids are random: " + spans.size() + " distinct of 20,000");
        String id = TraceContext.newSpanId();
        assertEquals(16, id.length());
        assertTrue(id.matches("[0-9a-f]{16}") && !id.equals("0000000000000000"), id);
        byte[] header = TraceContext.headers(TRACE, 1).get(0).value();
        assertEquals(TRACE, TraceContext.parse(new String(header, java.nio.charset.StandardCharsets.US_ASCII)).traceId);
        assertTrue(TraceContext.headers(null, 1).isEmpty());
    }

    @Test
    void deserializerKeepsTheTraceOnClicksAndDeadLetters() {
        ClickDeserializationSchema schema = new ClickDeserializationSchema(() -> 1L);
        ClickEvent e = TestClicks.event("imp-t1", 7, T);
        IngestRecord ok = schema.convert(traced(TestClicks.record(1, "7", e.toByteArray()), PARENT));
        assertEquals(TRACE, ok.click.traceId);
        assertEquals(1, ok.click.traceFlags);
        // the trace id never changes what the click is
        IngestRecord plain = schema.convert(TestClicks.record(1, "7", e.toByteArray()));
        assertNull(plain.click.traceId);
        assertEquals(plain.click, ok.click);
        assertEquals(plain.click.hashCode(), ok.click.hashCode());

        IngestRecord bad = schema.convert(traced(TestClicks.record(2, "7", new byte[] {0x0A, (byte) 0xFF}), PARENT));
        assertEquals(ReasonCodes.PROTOBUF_DECODE_FAILED, bad.deadLetter.reason);
        assertEquals(TRACE, bad.deadLetter.traceId);

        IngestRecord invalidHeader = schema.convert(traced(TestClicks.record(3, "7", e.toByteArray()), "00-nothex"));
        assertNotNull(invalidHeader.click, "an invalid traceparent never rejects a click");
        assertNull(invalidHeader.click.traceId);
    }

    @Test
    void serializersWriteATraceparentContinuingTheClicksTrace() {
        Click c = TestClicks.click("imp-t2", 42, T);
        c.traceId = TRACE;
        c.traceFlags = 1;

        LateClickRecord late = new LateClickRecord();
        late.click = c;
        late.granularity = WindowGranularity.MINUTE_1;
        late.windowStartMs = WindowGranularity.MINUTE_1.windowStart(T);
        ProducerRecord<byte[], byte[]> lateRec = new Serializers.LateClickSerializer("clicks-late").serialize(late, null, null);
        assertContinues(lateRec, TRACE, "01");
        assertNotNull(lateRec.headers().lastHeader(Serializers.HEADER_GRANULARITY), "existing headers stay");

        assertContinues(new Serializers.DedupedClickSerializer("clicks-deduped").serialize(c, null, null), TRACE, "01");

        DeadLetterRecord d = new DeadLetterRecord();
        d.sourceTopic = "clicks";
        d.reason = ReasonCodes.EMPTY_PAYLOAD;
        d.traceId = TRACE;
        assertContinues(new Serializers.DeadLetterSerializer("clicks-dlq").serialize(d, null, null), TRACE, "00");

        // aggregate: the trace of the most recent click added to the window
        ClickCountAggregate agg = new ClickCountAggregate();
        ClickCountAggregate.Acc acc = agg.createAccumulator();
        Click first = TestClicks.click("imp-t3", 42, T);
        first.traceId = "11111111111111111111111111111111";
        agg.add(ClickPartial.of(first, ClickPartial.ALL), acc); // the window adds partials (issue #17); one click each here
        agg.add(ClickPartial.of(c, ClickPartial.ALL), acc);
        assertEquals(2, acc.count);
        assertEquals(TRACE, acc.traceId);
        WindowResult r = new WindowResult();
        r.granularity = WindowGranularity.MINUTE_1;
        r.adId = 42;
        r.campaignId = 420;
        r.advertiserId = 4200;
        r.windowStartMs = WindowGranularity.MINUTE_1.windowStart(T);
        r.windowEndMs = r.windowStartMs + 60_000;
        r.clicks = acc.count;
        r.traceId = acc.traceId;
        r.traceFlags = acc.traceFlags;
        assertContinues(new Serializers.WindowAggregateSerializer("click-aggregates").serialize(r, null, null), TRACE, "01");

        // untraced records carry no traceparent
        Click untraced = TestClicks.click("imp-t4", 42, T);
        assertNull(new Serializers.DedupedClickSerializer("clicks-deduped").serialize(untraced, null, null)
                .headers().lastHeader(TraceContext.HEADER));
        r.traceId = null;
        assertNull(new Serializers.WindowAggregateSerializer("click-aggregates").serialize(r, null, null)
                .headers().lastHeader(TraceContext.HEADER));
    }
}

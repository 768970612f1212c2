package io.adclick.flink.serde;

import io.adclick.flink.TestClicks;
import io.adclick.flink.model.IngestRecord;
import io.adclick.proto.v1.ClickEvent;
import io.adclick.proto.v1.DeadLetter;

import org.apache.flink.util.Collector;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ClickDeserializationSchemaTest {
    private final ClickDeserializationSchema schema = new ClickDeserializationSchema(() -> 777L);

    private IngestRecord run(byte[] value) {
        List<IngestRecord> out = new ArrayList<>();
        schema.deserialize(TestClicks.record(41, "7", value), new Collector<>() {
            @Override
            public void collect(IngestRecord r) {
                out.add(r);
            }

            @Override
            public void close() {}
        });
        assertEquals(1, out.size(), "exactly one record per Kafka record");
        return out.get(0);
    }

    @Test
    void validClickPasses() {
        ClickEvent e = TestClicks.event("imp-1", 7, 1_700_000_000_000L);
        IngestRecord r = run(e.toByteArray());
        assertNotNull(r.click);
        assertNull(r.deadLetter);
        assertEquals("imp-1", r.click.impressionId);
        assertEquals(7, r.click.adId);
        assertEquals(70, r.click.campaignId);
        assertEquals(700, r.click.advertiserId);
        assertEquals(1_700_000_000_000L, r.click.eventTimeMs);
        assertEquals(1_700_000_000_050L, r.click.receivedAtMs);
        assertArrayEquals(e.toByteArray(), r.click.raw);
        assertEquals(e, ProtoConverters.toClickEvent(r.click), "late clicks re-emit the original event");
    }

    @Test
    void unsignedAdIdAboveLongMaxIsKept() {
        ClickEvent e = TestClicks.event("imp-2", 1, 5).toBuilder().setAdId(-1L).build(); // 2^64-1
        IngestRecord r = run(e.toByteArray());
        assertNotNull(r.click);
        assertEquals("18446744073709551615", Long.toUnsignedString(r.click.adId));
    }

    @Test
    void garbageBytesGoToDlqWithSourceCoordinates() {
        byte[] garbage = {0x0A, (byte) 0xFF, (byte) 0xFF, 0x01, 0x02};
        IngestRecord r = run(garbage);
        assertNull(r.click);
        assertEquals(ReasonCodes.PROTOBUF_DECODE_FAILED, r.deadLetter.reason);
        assertEquals("clicks", r.deadLetter.sourceTopic);
        assertEquals(3, r.deadLetter.partition);
        assertEquals(41, r.deadLetter.offset);
        assertArrayEquals(garbage, r.deadLetter.payload);
        assertEquals(777L, r.deadLetter.detectedAtMs);

        DeadLetter proto = ProtoConverters.toProto(r.deadLetter);
        assertEquals("PROTOBUF_DECODE_FAILED", proto.getReason());
        assertEquals("flink", proto.getStage());
        assertEquals("7", proto.getKey().toStringUtf8());
        assertEquals(41, proto.getOffset());
    }

    @Test
    void invalidUtf8InStringFieldIsDecodeFailure() {
        // field 1 (impression_id), length 2, bytes C3 28 = invalid UTF-8 (proto3 strings must be UTF-8)
        IngestRecord r = run(new byte[] {0x0A, 0x02, (byte) 0xC3, 0x28});
        assertEquals(ReasonCodes.PROTOBUF_DECODE_FAILED, r.deadLetter.reason);
    }

    @Test
    void emptyAndNullPayload() {
        assertEquals(ReasonCodes.EMPTY_PAYLOAD, run(new byte[0]).deadLetter.reason);
        assertEquals(ReasonCodes.EMPTY_PAYLOAD, run(null).deadLetter.reason);
    }

    @Test
    void invalidFieldsGoToDlq() {
        ClickEvent ok = TestClicks.event("imp-3", 7, 1_700_000_000_000L);
        ClickEvent[] bad = {
            ok.toBuilder().setImpressionId("").build(),
            ok.toBuilder().setEventType("view").build(),
            ok.toBuilder().setEventType("").build(),
            ok.toBuilder().setAdId(0).build(),
            ok.toBuilder().setCampaignId(0).build(),
            ok.toBuilder().setAdvertiserId(0).build(),
            ok.toBuilder().setEventTimeMs(0).build(),
            ok.toBuilder().setEventTimeMs(-5).build(),
        };
        String[] fields = {"impression_id", "event_type", "event_type", "ad_id", "campaign_id", "advertiser_id",
            "event_time_ms", "event_time_ms"};
        for (int i = 0; i < bad.length; i++) {
            IngestRecord r = run(bad[i].toByteArray());
            assertNull(r.click, "case " + i);
            assertEquals(ReasonCodes.INVALID_FIELD, r.deadLetter.reason, "case " + i);
            assertTrue(r.deadLetter.detail.startsWith(fields[i]), "case " + i + ": " + r.deadLetter.detail);
        }
    }

    private IngestRecord runWithKind(byte[] value, String kind) {
        var rec = TestClicks.record(42, "tick", value);
        rec.headers().add(ClickDeserializationSchema.RECORD_KIND_HEADER, kind.getBytes(java.nio.charset.StandardCharsets.UTF_8));
        return schema.convert(rec);
    }

    @Test
    void aGatewayTickBecomesATickNotAClickNorADeadLetter() {
        byte[] v = io.adclick.proto.v1.PartitionTick.newBuilder().setAtMs(1_700_000_001_000L).setGatewayId("g1").build().toByteArray();
        IngestRecord r = runWithKind(v, "tick");
        assertTrue(r.isTick());
        assertNull(r.click);
        assertNull(r.deadLetter);
        assertEquals(1_700_000_001_000L, r.tickAtMs);
    }

    @Test
    void anUnreadableTickIsADeadLetterAndAClickWithoutTheHeaderStaysAClick() {
        IngestRecord bad = runWithKind(new byte[] {(byte) 0xff, 0x01}, "tick");
        assertNotNull(bad.deadLetter);
        assertEquals(ReasonCodes.PROTOBUF_DECODE_FAILED, bad.deadLetter.reason);
        IngestRecord zero = runWithKind(new byte[0], "tick");
        assertNotNull(zero.deadLetter, "a tick without a time is refused, not taken for time 0");
        IngestRecord other = runWithKind(TestClicks.event("imp-9", 7, 1_700_000_000_000L).toByteArray(), "something-else");
        assertNotNull(other.click, "only the tick kind is special");
    }
}

package io.adclick.flink.serde;

import io.adclick.flink.model.Click;
import io.adclick.flink.model.DeadLetterRecord;
import io.adclick.flink.model.IngestRecord;
import io.adclick.proto.v1.ClickEvent;
import io.adclick.proto.v1.DeadLetter;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Fuzz tests of the Flink job's Kafka deserializer (records of topic {@code clicks}): random bytes,
 * mutated valid ClickEvent bytes and random ClickEvents built field by field. Every record must give
 * exactly one output, never an exception: a click that passes the contract checks, or a dead letter
 * with a stable reason code, the source coordinates and the original payload.
 *
 * <p>Plain JUnit 5 with a seeded {@link Random} (no extra dependency). The seed is printed on failure
 * and can be fixed with {@code -Dfuzz.seed=<n>}; {@code -Dfuzz.runs=<n>} scales every property.
 */
class ClickDeserializationFuzzTest {
    private static final long SEED = Long.getLong("fuzz.seed", System.nanoTime());
    private static final int RUNS = Integer.getInteger("fuzz.runs", 2000);
    private static final long NOW = 1_764_237_600_000L;
    /** Reason codes that a valid input may produce. DESERIALIZATION_ERROR is the bug guard: never expected. */
    private static final Set<String> EXPECTED_REASONS =
            Set.of(ReasonCodes.EMPTY_PAYLOAD, ReasonCodes.PROTOBUF_DECODE_FAILED, ReasonCodes.INVALID_FIELD);
    private static final AtomicLong CASES = new AtomicLong();

    private final ClickDeserializationSchema schema = new ClickDeserializationSchema(() -> NOW);

    @AfterAll
    static void report() {
        System.out.println("fuzz: flink-deserializer " + CASES.get() + " cases (seed " + SEED + ")");
    }

    // ---------------------------------------------------------------- generators

    private static final String[] STRINGS = {
        "", "click", "CLICK", "click ", "view", "imp_7f9c2b1e4a", "\u0000", "é", "\uD83D\uDE00", "\u202Eevil",
        "x".repeat(300), "k1", "u_93af",
    };
    private static final long[] LONGS = {
        0, 1, -1, 2, Long.MAX_VALUE, Long.MIN_VALUE, (1L << 53) - 1, 1L << 53, 1L << 63, NOW, -NOW, 4294967295000L,
    };

    private static long anyLong(Random r) {
        switch (r.nextInt(4)) {
            case 0: return LONGS[r.nextInt(LONGS.length)];
            case 1: return r.nextInt(1000) - 10;
            case 2: return NOW + r.nextInt(1_000_000) - 500_000;
            default: return r.nextLong();
        }
    }

    private static String anyString(Random r) {
        switch (r.nextInt(4)) {
            case 0: return STRINGS[r.nextInt(STRINGS.length)];
            case 1: {
                // arbitrary Unicode scalar values (invalid UTF-8 on the wire comes from the byte-level fuzzers)
                StringBuilder sb = new StringBuilder();
                int n = r.nextInt(40);
                for (int i = 0; i < n; i++) {
                    int cp = r.nextBoolean() ? r.nextInt(0x800) : r.nextInt(0x110000);
                    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
                    sb.appendCodePoint(cp);
                }
                return sb.toString();
            }
            case 2: {
                StringBuilder sb = new StringBuilder();
                int n = 1 + r.nextInt(40);
                String alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-";
                for (int i = 0; i < n; i++) sb.append(alphabet.charAt(r.nextInt(alphabet.length())));
                return sb.toString();
            }
            default: return "imp-" + r.nextInt(1_000_000);
        }
    }

    private static byte[] randomBytes(Random r, int maxLen) {
        byte[] b = new byte[r.nextInt(maxLen + 1)];
        r.nextBytes(b);
        return b;
    }

    private static ClickEvent validEvent(Random r) {
        long ad = 1 + r.nextInt(1_000_000);
        return ClickEvent.newBuilder()
                .setImpressionId("imp_" + Long.toHexString(r.nextLong()))
                .setEventType("click")
                .setAdId(ad)
                .setCampaignId(1 + r.nextInt(10_000))
                .setAdvertiserId(1 + r.nextInt(1000))
                .setUserId("u_" + r.nextInt(100_000))
                .setEventTimeMs(NOW - r.nextInt(86_400_000))
                .setReceivedAtMs(NOW)
                .setClientIpHash(ByteString.copyFrom(randomBytes(r, 16)))
                .setKeyId("k1")
                .setGatewayId("gw-1")
                .build();
    }

    /** Each field independently kept valid, cleared, or set to an arbitrary value. */
    private static ClickEvent randomEvent(Random r) {
        ClickEvent.Builder b = validEvent(r).toBuilder();
        for (int f = 0; f < 11; f++) {
            int mode = r.nextInt(3);
            if (mode == 0) continue;
            boolean clear = mode == 1;
            switch (f) {
                case 0: if (clear) b.clearImpressionId(); else b.setImpressionId(anyString(r)); break;
                case 1: if (clear) b.clearEventType(); else b.setEventType(anyString(r)); break;
                case 2: if (clear) b.clearAdId(); else b.setAdId(anyLong(r)); break;
                case 3: if (clear) b.clearCampaignId(); else b.setCampaignId(anyLong(r)); break;
                case 4: if (clear) b.clearAdvertiserId(); else b.setAdvertiserId(anyLong(r)); break;
                case 5: if (clear) b.clearUserId(); else b.setUserId(anyString(r)); break;
                case 6: if (clear) b.clearEventTimeMs(); else b.setEventTimeMs(anyLong(r)); break;
                case 7: if (clear) b.clearReceivedAtMs(); else b.setReceivedAtMs(anyLong(r)); break;
                case 8: if (clear) b.clearClientIpHash(); else b.setClientIpHash(ByteString.copyFrom(randomBytes(r, 64))); break;
                case 9: if (clear) b.clearKeyId(); else b.setKeyId(anyString(r)); break;
                default: if (clear) b.clearGatewayId(); else b.setGatewayId(anyString(r)); break;
            }
        }
        return b.build();
    }

    private static void writeVarint(ByteArrayOutputStream out, long v) {
        while ((v & ~0x7FL) != 0) {
            out.write((int) ((v & 0x7F) | 0x80));
            v >>>= 7;
        }
        out.write((int) v);
    }

    /** A random, mostly well-framed protobuf field: unknown field numbers, wrong wire types, bad lengths. */
    private static byte[] randomField(Random r) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int field = r.nextBoolean() ? 1 + r.nextInt(12) : 1 + r.nextInt(1 << 20);
        int wireType = r.nextInt(8); // 6 and 7 are invalid
        writeVarint(out, ((long) field << 3) | wireType);
        switch (wireType) {
            case 0: writeVarint(out, anyLong(r)); break;
            case 1: out.writeBytes(randomBytes(r, 8)); break;
            case 2: {
                byte[] payload = randomBytes(r, 32);
                writeVarint(out, r.nextInt(10) == 0 ? anyLong(r) : payload.length); // sometimes a lying length
                out.writeBytes(payload);
                break;
            }
            case 5: out.writeBytes(randomBytes(r, 4)); break;
            default: out.writeBytes(randomBytes(r, 6)); break;
        }
        return out.toByteArray();
    }

    private static byte[] mutate(Random r, byte[] in) {
        byte[] b = in.clone();
        int rounds = 1 + r.nextInt(4);
        for (int k = 0; k < rounds; k++) {
            switch (r.nextInt(8)) {
                case 0: // bit flip
                    if (b.length > 0) b[r.nextInt(b.length)] ^= (byte) (1 << r.nextInt(8));
                    break;
                case 1: // random byte
                    if (b.length > 0) b[r.nextInt(b.length)] = (byte) r.nextInt(256);
                    break;
                case 2: // truncate
                    b = Arrays.copyOf(b, b.length == 0 ? 0 : r.nextInt(b.length));
                    break;
                case 3: { // insert random bytes
                    int at = r.nextInt(b.length + 1);
                    byte[] ins = randomBytes(r, 8);
                    byte[] nb = new byte[b.length + ins.length];
                    System.arraycopy(b, 0, nb, 0, at);
                    System.arraycopy(ins, 0, nb, at, ins.length);
                    System.arraycopy(b, at, nb, at + ins.length, b.length - at);
                    b = nb;
                    break;
                }
                case 4: { // delete a slice
                    if (b.length == 0) break;
                    int from = r.nextInt(b.length);
                    int to = Math.min(b.length, from + 1 + r.nextInt(8));
                    byte[] nb = new byte[b.length - (to - from)];
                    System.arraycopy(b, 0, nb, 0, from);
                    System.arraycopy(b, to, nb, from, b.length - to);
                    b = nb;
                    break;
                }
                case 5: { // append a random field (protobuf: later fields override earlier ones)
                    byte[] f = randomField(r);
                    byte[] nb = Arrays.copyOf(b, b.length + f.length);
                    System.arraycopy(f, 0, nb, b.length, f.length);
                    b = nb;
                    break;
                }
                case 6: { // concatenate another event (a valid protobuf merge)
                    byte[] other = randomEvent(r).toByteArray();
                    byte[] nb = Arrays.copyOf(b, b.length + other.length);
                    System.arraycopy(other, 0, nb, b.length, other.length);
                    b = nb;
                    break;
                }
                default: { // set a byte to a boundary value
                    if (b.length > 0) b[r.nextInt(b.length)] = new byte[] {0, (byte) 0x7F, (byte) 0x80, (byte) 0xFF}[r.nextInt(4)];
                    break;
                }
            }
        }
        return b;
    }

    // ---------------------------------------------------------------- the property

    private IngestRecord runOne(String label, int run, ConsumerRecord<byte[], byte[]> rec) {
        CASES.incrementAndGet();
        List<IngestRecord> out = new ArrayList<>();
        try {
            schema.deserialize(rec, new Collector<>() {
                @Override
                public void collect(IngestRecord r) {
                    out.add(r);
                }

                @Override
                public void close() {}
            });
        } catch (Throwable t) {
            fail(label + " run " + run + " (seed " + SEED + "): deserialize threw on value " + hex(rec.value()), t);
        }
        String ctx = label + " run " + run + " (seed " + SEED + ") value=" + hex(rec.value());
        assertEquals(1, out.size(), ctx + ": exactly one output per record");
        IngestRecord r = out.get(0);
        assertTrue((r.click == null) != (r.deadLetter == null), ctx + ": exactly one of click / dead letter");
        byte[] value = rec.value();
        if (r.click != null) {
            Click c = r.click;
            // A click only when the bytes really are a ClickEvent that passes the contract checks.
            ClickEvent parsed;
            try {
                parsed = ClickEvent.parseFrom(value);
            } catch (InvalidProtocolBufferException e) {
                fail(ctx + ": a click came out of bytes that do not parse", e);
                return r;
            }
            assertNull(ClickValidator.validate(parsed), ctx);
            assertFalse(c.impressionId.isEmpty(), ctx);
            assertEquals("click", c.eventType, ctx);
            assertNotEquals(0L, c.adId, ctx);
            assertNotEquals(0L, c.campaignId, ctx);
            assertNotEquals(0L, c.advertiserId, ctx);
            assertTrue(c.eventTimeMs > 0, ctx);
            assertEquals(parsed.getImpressionId(), c.impressionId, ctx);
            assertEquals(parsed.getAdId(), c.adId, ctx);
            assertEquals(parsed.getEventTimeMs(), c.eventTimeMs, ctx);
            assertArrayEquals(value, c.raw, ctx + ": original bytes kept for late re-emission");
        } else {
            DeadLetterRecord d = r.deadLetter;
            assertNotNull(d.reason, ctx);
            assertTrue(EXPECTED_REASONS.contains(d.reason), ctx + ": unexpected reason " + d.reason + " / " + d.detail);
            assertNotNull(d.detail, ctx);
            assertTrue(d.detail.length() <= 1000, ctx);
            assertEquals(rec.topic(), d.sourceTopic, ctx);
            assertEquals(rec.partition(), d.partition, ctx);
            assertEquals(rec.offset(), d.offset, ctx);
            assertArrayEquals(value, d.payload, ctx + ": payload kept verbatim");
            assertArrayEquals(rec.key(), d.key, ctx);
            assertEquals(NOW, d.detectedAtMs, ctx);
            if (value == null || value.length == 0) assertEquals(ReasonCodes.EMPTY_PAYLOAD, d.reason, ctx);
            // The dead letter can always be written to clicks-dlq and read back.
            DeadLetter proto;
            try {
                proto = DeadLetter.parseFrom(ProtoConverters.toProto(d).toByteArray());
            } catch (Throwable t) {
                fail(ctx + ": dead letter does not serialize", t);
                return r;
            }
            assertEquals(d.reason, proto.getReason(), ctx);
            assertEquals("flink", proto.getStage(), ctx);
            assertFalse(proto.getReason().isEmpty(), ctx);
        }
        return r;
    }

    private static ConsumerRecord<byte[], byte[]> record(Random r, byte[] value) {
        byte[] key = r.nextInt(5) == 0 ? null : randomBytes(r, 12);
        return new ConsumerRecord<>("clicks", r.nextInt(64), r.nextLong() & Long.MAX_VALUE, key, value);
    }

    private static String hex(byte[] b) {
        if (b == null) return "null";
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x));
        return sb.toString();
    }

    // ---------------------------------------------------------------- tests

    @Test
    void randomBytesNeverThrow() {
        Random r = new Random(SEED);
        int clicks = 0;
        for (int i = 0; i < RUNS; i++) {
            byte[] v = i == 0 ? null : randomBytes(r, r.nextBoolean() ? 16 : 512);
            if (runOne("random-bytes", i, record(r, v)).click != null) clicks++;
        }
        // Random bytes essentially never form a valid click; more than a handful would mean the
        // validator lets anything through.
        assertTrue(clicks < RUNS / 20, "too many random byte arrays accepted as clicks: " + clicks);
    }

    @Test
    void randomFieldSequencesNeverThrow() {
        Random r = new Random(SEED + 1);
        for (int i = 0; i < RUNS; i++) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            int n = r.nextInt(12);
            for (int k = 0; k < n; k++) out.writeBytes(randomField(r));
            runOne("random-fields", i, record(r, out.toByteArray()));
        }
    }

    @Test
    void mutatedValidClicksNeverThrow() {
        Random r = new Random(SEED + 2);
        for (int i = 0; i < RUNS; i++) {
            byte[] v = mutate(r, validEvent(r).toByteArray());
            runOne("mutated-valid", i, record(r, v));
        }
    }

    @Test
    void randomEventsAreClicksExactlyWhenTheyPassTheContract() {
        Random r = new Random(SEED + 3);
        int clicks = 0, invalid = 0;
        for (int i = 0; i < RUNS; i++) {
            ClickEvent e = randomEvent(r);
            IngestRecord out = runOne("random-event", i, record(r, e.toByteArray()));
            // What went in is what the validator judges.
            ClickEvent reparsed;
            try {
                reparsed = ClickEvent.parseFrom(e.toByteArray());
            } catch (InvalidProtocolBufferException ex) {
                fail("encoder produced unparseable bytes", ex);
                return;
            }
            String violation = ClickValidator.validate(reparsed);
            if (violation == null) {
                clicks++;
                assertNotNull(out.click, "run " + i + " (seed " + SEED + "): a valid event became " + out.deadLetter);
            } else {
                invalid++;
                assertNotNull(out.deadLetter, "run " + i + " (seed " + SEED + "): invalid event (" + violation + ") became a click");
                if (e.getSerializedSize() == 0) {
                    assertEquals(ReasonCodes.EMPTY_PAYLOAD, out.deadLetter.reason, "run " + i);
                } else {
                    assertEquals(ReasonCodes.INVALID_FIELD, out.deadLetter.reason, "run " + i);
                    String expected = violation.length() > 1000 ? violation.substring(0, 1000) : violation;
                    assertEquals(expected, out.deadLetter.detail, "run " + i + ": detail names the violation");
                }
            }
        }
        assertTrue(clicks > 0 && invalid > 0, "generator covers both sides: clicks=" + clicks + " invalid=" + invalid);
    }

    @Test
    void validClicksSurviveUnknownTrailingFields() {
        // Forward compatibility: a newer gateway may add fields; the job must keep accepting the click.
        Random r = new Random(SEED + 4);
        for (int i = 0; i < RUNS / 4; i++) {
            ClickEvent e = validEvent(r);
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            out.writeBytes(e.toByteArray());
            int field = 100 + r.nextInt(1000);
            writeVarint(out, ((long) field << 3) | 2);
            byte[] payload = anyString(r).getBytes(StandardCharsets.UTF_8);
            writeVarint(out, payload.length);
            out.writeBytes(payload);
            IngestRecord res = runOne("unknown-field", i, record(r, out.toByteArray()));
            assertNotNull(res.click, "run " + i + ": unknown field made a valid click a dead letter: " + res.deadLetter);
            assertEquals(e.getImpressionId(), res.click.impressionId);
        }
    }
}

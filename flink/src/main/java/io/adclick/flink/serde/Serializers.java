package io.adclick.flink.serde;

import io.adclick.flink.model.Click;
import io.adclick.flink.model.DeadLetterRecord;
import io.adclick.flink.model.LateClickRecord;
import io.adclick.flink.model.WatermarkProgressRecord;
import io.adclick.flink.model.WindowResult;

import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;

import java.util.ArrayList;
import java.util.List;

/**
 * Kafka record serializers for the five output topics. Record timestamps are left to the producer
 * (create time), the partition to the default partitioner over the key. Every record derived from a traced
 * click (aggregate: the most recent click that changed the window) carries a {@code traceparent} header with
 * the click's trace id and a new span id ({@link TraceContext}).
 */
public final class Serializers {
    /** Header carried by late clicks: the window granularity the click missed ("1m", "5m", "1h"). */
    public static final String HEADER_GRANULARITY = "adclick-granularity";
    /** Header carried by late clicks: start of the window the click missed (decimal ms). */
    public static final String HEADER_WINDOW_START = "adclick-window-start-ms";

    private Serializers() {}

    /** click-aggregates: key {@code <granularity>|<ad_id>|<window_start_ms>}, value WindowAggregate. */
    public static class WindowAggregateSerializer implements KafkaRecordSerializationSchema<WindowResult> {
        private static final long serialVersionUID = 1L;
        private final String topic;

        public WindowAggregateSerializer(String topic) {
            this.topic = topic;
        }

        @Override
        public ProducerRecord<byte[], byte[]> serialize(WindowResult r, KafkaSinkContext ctx, Long timestamp) {
            return new ProducerRecord<>(topic, null, null,
                    ProtoConverters.utf8(ProtoConverters.windowKey(r.granularity, r.adId, r.windowStartMs)),
                    ProtoConverters.toProto(r).toByteArray(), TraceContext.headers(r.traceId, r.traceFlags));
        }
    }

    /** click-watermarks: key = decimal subtask index, value WatermarkProgress. */
    public static class WatermarkProgressSerializer implements KafkaRecordSerializationSchema<WatermarkProgressRecord> {
        private static final long serialVersionUID = 1L;
        private final String topic;

        public WatermarkProgressSerializer(String topic) {
            this.topic = topic;
        }

        @Override
        public ProducerRecord<byte[], byte[]> serialize(WatermarkProgressRecord r, KafkaSinkContext ctx, Long timestamp) {
            return new ProducerRecord<>(topic, ProtoConverters.utf8(Integer.toString(r.subtask)),
                    ProtoConverters.toProto(r).toByteArray());
        }
    }

    /**
     * clicks-late: key {@code <granularity>|<ad_id>|<window_start_ms>} of the missed window, value
     * LateClick (which carries the granularity and window start itself, fields 4 and 5), plus headers
     * repeating both for consumers that route without decoding the value.
     */
    public static class LateClickSerializer implements KafkaRecordSerializationSchema<LateClickRecord> {
        private static final long serialVersionUID = 1L;
        private final String topic;

        public LateClickSerializer(String topic) {
            this.topic = topic;
        }

        @Override
        public ProducerRecord<byte[], byte[]> serialize(LateClickRecord r, KafkaSinkContext ctx, Long timestamp) {
            List<Header> headers = new ArrayList<>(3);
            headers.add(new RecordHeader(HEADER_GRANULARITY, ProtoConverters.utf8(r.granularity.label)));
            headers.add(new RecordHeader(HEADER_WINDOW_START, ProtoConverters.utf8(Long.toString(r.windowStartMs))));
            headers.addAll(TraceContext.headers(r.click.traceId, r.click.traceFlags));
            return new ProducerRecord<>(topic, null, null,
                    ProtoConverters.utf8(ProtoConverters.windowKey(r.granularity, r.click.adId, r.windowStartMs)),
                    ProtoConverters.toProto(r).toByteArray(), headers);
        }
    }

    /**
     * clicks-deduped: key = decimal ad_id (as on `clicks`), value = the original ClickEvent (its wire bytes
     * when present, so fields the job does not model survive).
     */
    public static class DedupedClickSerializer implements KafkaRecordSerializationSchema<Click> {
        private static final long serialVersionUID = 1L;
        private final String topic;

        public DedupedClickSerializer(String topic) {
            this.topic = topic;
        }

        @Override
        public ProducerRecord<byte[], byte[]> serialize(Click c, KafkaSinkContext ctx, Long timestamp) {
            byte[] value = c.raw != null ? c.raw : ProtoConverters.toClickEvent(c).toByteArray();
            return new ProducerRecord<>(topic, null, null, ProtoConverters.utf8(Long.toUnsignedString(c.adId)), value,
                    TraceContext.headers(c.traceId, c.traceFlags));
        }
    }

    /** clicks-dlq: key = the original record key (may be null), value DeadLetter. */
    public static class DeadLetterSerializer implements KafkaRecordSerializationSchema<DeadLetterRecord> {
        private static final long serialVersionUID = 1L;
        private final String topic;

        public DeadLetterSerializer(String topic) {
            this.topic = topic;
        }

        @Override
        public ProducerRecord<byte[], byte[]> serialize(DeadLetterRecord r, KafkaSinkContext ctx, Long timestamp) {
            return new ProducerRecord<>(topic, null, null, r.key, ProtoConverters.toProto(r).toByteArray(),
                    TraceContext.headers(r.traceId, r.traceFlags));
        }
    }
}

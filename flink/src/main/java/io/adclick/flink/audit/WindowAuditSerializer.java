package io.adclick.flink.audit;

import io.adclick.proto.v1.WindowAudit;

import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.kafka.clients.producer.ProducerRecord;

import java.nio.charset.StandardCharsets;

/** click-audit: key {@code <window_start_ms>|<bucket>}, value WindowAudit. */
public class WindowAuditSerializer implements KafkaRecordSerializationSchema<AuditRecord> {
    private static final long serialVersionUID = 1L;
    private final String topic;

    public WindowAuditSerializer(String topic) {
        this.topic = topic;
    }

    public static WindowAudit toProto(AuditRecord r) {
        return WindowAudit.newBuilder()
                .setWindowStartMs(r.windowStartMs)
                .setBucket(r.bucket)
                .setAccepted(r.accepted)
                .setDuplicates(r.duplicates)
                .setRejected(r.rejected)
                .setVersion(r.version())
                .setEmittedAtMs(r.emittedAtMs)
                .build();
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(AuditRecord r, KafkaSinkContext ctx, Long timestamp) {
        return new ProducerRecord<>(topic, (r.windowStartMs + "|" + r.bucket).getBytes(StandardCharsets.UTF_8),
                toProto(r).toByteArray());
    }
}

package io.adclick.flink.serde;

import io.adclick.flink.model.Click;
import io.adclick.flink.model.DeadLetterRecord;
import io.adclick.flink.model.IngestRecord;
import io.adclick.proto.v1.ClickEvent;

import com.google.protobuf.InvalidProtocolBufferException;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

import java.util.function.LongSupplier;

/**
 * Turns every Kafka record of topic {@code clicks} into exactly one {@link IngestRecord}: a valid
 * {@link Click} or a {@link DeadLetterRecord}. It never throws, so a poison record can never stall or
 * crash-loop the job.
 */
public class ClickDeserializationSchema implements KafkaRecordDeserializationSchema<IngestRecord> {
    private static final long serialVersionUID = 1L;

    private final SerializableClock clock;

    public ClickDeserializationSchema() {
        this(System::currentTimeMillis);
    }

    public ClickDeserializationSchema(SerializableClock clock) {
        this.clock = clock;
    }

    /** Serializable time source (tests inject a fixed clock). */
    public interface SerializableClock extends LongSupplier, java.io.Serializable {}

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<IngestRecord> out) {
        out.collect(convert(record));
    }

    /** Pure conversion, exposed for tests and for the in-memory ITCase input. */
    public IngestRecord convert(ConsumerRecord<byte[], byte[]> record) {
        byte[] value = record.value();
        try {
            if (value == null || value.length == 0) {
                return deadLetter(record, ReasonCodes.EMPTY_PAYLOAD, "record value is null or empty");
            }
            ClickEvent event;
            try {
                event = ClickEvent.parseFrom(value);
            } catch (InvalidProtocolBufferException e) {
                return deadLetter(record, ReasonCodes.PROTOBUF_DECODE_FAILED, String.valueOf(e.getMessage()));
            }
            String violation = ClickValidator.validate(event);
            if (violation != null) {
                return deadLetter(record, ReasonCodes.INVALID_FIELD, violation);
            }
            return IngestRecord.ofClick(Click.fromProto(event, value));
        } catch (RuntimeException e) {
            return deadLetter(record, ReasonCodes.DESERIALIZATION_ERROR, e.getClass().getName() + ": " + e.getMessage());
        }
    }

    private IngestRecord deadLetter(ConsumerRecord<byte[], byte[]> record, String reason, String detail) {
        DeadLetterRecord d = new DeadLetterRecord();
        d.sourceTopic = record.topic();
        d.partition = record.partition();
        d.offset = record.offset();
        d.key = record.key();
        d.payload = record.value();
        d.reason = reason;
        d.detail = detail == null ? "" : (detail.length() > 1000 ? detail.substring(0, 1000) : detail);
        d.detectedAtMs = clock.getAsLong();
        return IngestRecord.ofDeadLetter(d);
    }

    @Override
    public TypeInformation<IngestRecord> getProducedType() {
        return TypeInformation.of(IngestRecord.class);
    }
}

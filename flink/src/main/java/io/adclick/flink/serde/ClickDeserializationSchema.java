package io.adclick.flink.serde;

import io.adclick.flink.model.Click;
import io.adclick.flink.model.DeadLetterRecord;
import io.adclick.flink.model.IngestRecord;
import io.adclick.proto.v1.ClickEvent;
import io.adclick.proto.v1.PartitionTick;

import com.google.protobuf.InvalidProtocolBufferException;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.metrics.Counter;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.header.Header;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.util.function.LongSupplier;

/**
 * Turns every Kafka record of topic {@code clicks} into exactly one {@link IngestRecord}: a valid
 * {@link Click} or a {@link DeadLetterRecord}. It never throws, so a poison record can never stall or
 * crash-loop the job. The record's W3C {@code traceparent} header (see {@link TraceContext}) is kept on the
 * click or dead letter. Dead letters are counted in metric {@code deadLetters} and logged (bounded) with their
 * trace id.
 */
public class ClickDeserializationSchema implements KafkaRecordDeserializationSchema<IngestRecord> {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(ClickDeserializationSchema.class);
    public static final String METRIC_DEAD_LETTERS = "deadLetters";
    /** Header that marks a gateway progress tick (value {@link #TICK_KIND}); clicks carry none. */
    public static final String RECORD_KIND_HEADER = "adclick-record";
    public static final String TICK_KIND = "tick";
    /** The first this many dead letters of a reader are logged one by one, later ones every 1000th. */
    static final long LOG_EACH_FIRST = 20;

    private final SerializableClock clock;
    private transient Counter deadLetters;
    private transient long deadLetterCount;

    public ClickDeserializationSchema() {
        this(System::currentTimeMillis);
    }

    public ClickDeserializationSchema(SerializableClock clock) {
        this.clock = clock;
    }

    /** Serializable time source (tests inject a fixed clock). */
    public interface SerializableClock extends LongSupplier, java.io.Serializable {}

    @Override
    public void open(DeserializationSchema.InitializationContext context) {
        deadLetters = context.getMetricGroup().counter(METRIC_DEAD_LETTERS);
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<IngestRecord> out) {
        IngestRecord r = convert(record);
        if (r.deadLetter != null) onDeadLetter(r.deadLetter);
        out.collect(r);
    }

    private void onDeadLetter(DeadLetterRecord d) {
        if (deadLetters != null) deadLetters.inc();
        long n = ++deadLetterCount;
        if (n <= LOG_EACH_FIRST || n % 1000 == 0) {
            LOG.warn("dead letter reason={} source={}-{}@{} trace_id={} detail={} (dead letters of this reader: {})",
                    d.reason, d.sourceTopic, d.partition, d.offset, TraceContext.logId(d.traceId), d.detail, n);
        }
    }

    /** Pure conversion, exposed for tests and for the in-memory ITCase input. */
    public IngestRecord convert(ConsumerRecord<byte[], byte[]> record) {
        byte[] value = record.value();
        TraceContext.Parent trace = null;
        try {
            trace = TraceContext.fromHeaders(record.headers());
        } catch (RuntimeException e) {
            // a malformed header never makes a record a dead letter: the click is processed untraced
        }
        if (isTick(record)) return convertTick(record, value);
        IngestRecord r = convertValue(record, value);
        if (trace != null) {
            if (r.click != null) {
                r.click.traceId = trace.traceId;
                r.click.traceFlags = trace.flags;
            } else {
                r.deadLetter.traceId = trace.traceId;
                r.deadLetter.traceFlags = trace.flags;
            }
        }
        return r;
    }

    private static boolean isTick(ConsumerRecord<byte[], byte[]> record) {
        Header h = record.headers() == null ? null : record.headers().lastHeader(RECORD_KIND_HEADER);
        return h != null && h.value() != null && TICK_KIND.equals(new String(h.value(), StandardCharsets.UTF_8));
    }

    /** A tick that cannot be read is a dead letter like any other record (visible, never silently dropped). */
    private IngestRecord convertTick(ConsumerRecord<byte[], byte[]> record, byte[] value) {
        try {
            PartitionTick t = PartitionTick.parseFrom(value == null ? new byte[0] : value);
            if (t.getAtMs() <= 0) return deadLetter(record, ReasonCodes.INVALID_FIELD, "tick at_ms must be positive, got " + t.getAtMs());
            return IngestRecord.ofTick(t.getAtMs());
        } catch (InvalidProtocolBufferException e) {
            return deadLetter(record, ReasonCodes.PROTOBUF_DECODE_FAILED, "tick: " + e.getMessage());
        }
    }

    private IngestRecord convertValue(ConsumerRecord<byte[], byte[]> record, byte[] value) {
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

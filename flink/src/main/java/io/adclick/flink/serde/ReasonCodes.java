package io.adclick.flink.serde;

/** Stable dead-letter reason codes (UPPER_SNAKE). Consumers may switch on these; never rename. */
public final class ReasonCodes {
    /** Kafka record had a null / empty value. */
    public static final String EMPTY_PAYLOAD = "EMPTY_PAYLOAD";
    /** Value bytes are not a parseable adclick.v1.ClickEvent. */
    public static final String PROTOBUF_DECODE_FAILED = "PROTOBUF_DECODE_FAILED";
    /** Parsed, but a field violates the contract (detail names the field). */
    public static final String INVALID_FIELD = "INVALID_FIELD";
    /** Anything unexpected while deserializing (bug guard; the job never fails on input). */
    public static final String DESERIALIZATION_ERROR = "DESERIALIZATION_ERROR";

    private ReasonCodes() {}
}

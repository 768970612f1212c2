package io.adclick.flink.model;

import io.adclick.proto.v1.ClickEvent;

import java.util.Objects;

/**
 * Internal, Flink-POJO representation of a validated click. Protobuf messages are only used at the
 * Kafka edges (serde); inside the job we move POJOs so Flink uses its own efficient serializer instead
 * of Kryo. The original wire bytes are kept so a late click can be re-emitted verbatim.
 */
public class Click {
    public String impressionId;
    public String eventType;
    public long adId;
    public long campaignId;
    public long advertiserId;
    public long eventTimeMs;
    public long receivedAtMs;
    /** The original ClickEvent protobuf bytes as read from Kafka. */
    public byte[] raw;
    /**
     * W3C trace id (32 lowercase hex) from the record's {@code traceparent} header, null when it had none.
     * Observability only: never part of the dedup key, the counts, equals or hashCode.
     */
    public String traceId;
    /** W3C trace flags of that header (bit 0: sampled). */
    public int traceFlags;

    public Click() {}

    public static Click fromProto(ClickEvent e, byte[] raw) {
        Click c = new Click();
        c.impressionId = e.getImpressionId();
        c.eventType = e.getEventType();
        c.adId = e.getAdId();
        c.campaignId = e.getCampaignId();
        c.advertiserId = e.getAdvertiserId();
        c.eventTimeMs = e.getEventTimeMs();
        c.receivedAtMs = e.getReceivedAtMs();
        c.raw = raw;
        return c;
    }

    @Override
    public String toString() {
        return "Click{" + impressionId + "/" + eventType + " ad=" + Long.toUnsignedString(adId)
                + " t=" + eventTimeMs + "}";
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof Click)) return false;
        Click c = (Click) o;
        return adId == c.adId && campaignId == c.campaignId && advertiserId == c.advertiserId
                && eventTimeMs == c.eventTimeMs && receivedAtMs == c.receivedAtMs
                && Objects.equals(impressionId, c.impressionId) && Objects.equals(eventType, c.eventType);
    }

    @Override
    public int hashCode() {
        return Objects.hash(impressionId, eventType, adId, eventTimeMs);
    }
}

package io.adclick.flink;

import io.adclick.flink.model.Click;
import io.adclick.proto.v1.ClickEvent;

import org.apache.kafka.clients.consumer.ConsumerRecord;

import java.nio.charset.StandardCharsets;

/** Test data helpers. */
public final class TestClicks {
    private TestClicks() {}

    public static ClickEvent event(String impressionId, long adId, long eventTimeMs) {
        return ClickEvent.newBuilder()
                .setImpressionId(impressionId)
                .setEventType("click")
                .setAdId(adId)
                .setCampaignId(adId * 10)
                .setAdvertiserId(adId * 100)
                .setUserId("u-" + impressionId)
                .setEventTimeMs(eventTimeMs)
                .setReceivedAtMs(eventTimeMs + 50)
                .setKeyId("k1")
                .setGatewayId("gw-1")
                .build();
    }

    public static Click click(String impressionId, long adId, long eventTimeMs) {
        ClickEvent e = event(impressionId, adId, eventTimeMs);
        return Click.fromProto(e, e.toByteArray());
    }

    public static ConsumerRecord<byte[], byte[]> record(long offset, String key, byte[] value) {
        return new ConsumerRecord<>("clicks", 3, offset,
                key == null ? null : key.getBytes(StandardCharsets.UTF_8), value);
    }
}

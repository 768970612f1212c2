package io.adclick.flink.functions;

import io.adclick.flink.model.Click;

import org.apache.flink.api.java.functions.KeySelector;

/**
 * Composite idempotency key (impression_id, event_type) as one String. The impression id is
 * length-prefixed so no choice of characters in it can make two different pairs collide.
 */
public class DedupKeySelector implements KeySelector<Click, String> {
    private static final long serialVersionUID = 1L;

    @Override
    public String getKey(Click c) {
        return key(c.impressionId, c.eventType);
    }

    public static String key(String impressionId, String eventType) {
        return impressionId.length() + ":" + impressionId + "|" + eventType;
    }
}

package io.adclick.flink.serde;

import io.adclick.proto.v1.ClickEvent;

/** Contract checks the Flink job relies on (the gateway validates more; this is the last line). */
public final class ClickValidator {
    public static final String EVENT_TYPE_CLICK = "click";

    private ClickValidator() {}

    /** @return null when valid, otherwise a human-readable description of the first violation. */
    public static String validate(ClickEvent e) {
        if (e.getImpressionId().isEmpty()) return "impression_id is empty";
        if (!EVENT_TYPE_CLICK.equals(e.getEventType())) return "event_type must be 'click' but was '" + e.getEventType() + "'";
        if (e.getAdId() == 0) return "ad_id is 0";
        if (e.getCampaignId() == 0) return "campaign_id is 0";
        if (e.getAdvertiserId() == 0) return "advertiser_id is 0";
        if (e.getEventTimeMs() <= 0) return "event_time_ms must be > 0 but was " + e.getEventTimeMs();
        return null;
    }
}

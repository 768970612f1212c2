package io.adclick.flink.model;

import io.adclick.proto.v1.Granularity;

import java.time.Duration;

/** The three tumbling window sizes (epoch = UTC aligned). */
public enum WindowGranularity {
    MINUTE_1("1m", Duration.ofMinutes(1), Granularity.GRANULARITY_1M),
    MINUTE_5("5m", Duration.ofMinutes(5), Granularity.GRANULARITY_5M),
    HOUR_1("1h", Duration.ofHours(1), Granularity.GRANULARITY_1H);

    /** Short label used in record keys, operator names and uids. */
    public final String label;
    public final Duration size;
    public final Granularity proto;

    WindowGranularity(String label, Duration size, Granularity proto) {
        this.label = label;
        this.size = size;
        this.proto = proto;
    }

    public long sizeMs() {
        return size.toMillis();
    }

    /** Start of the UTC-aligned window containing {@code timestampMs} (works for negatives too). */
    public long windowStart(long timestampMs) {
        return timestampMs - Math.floorMod(timestampMs, sizeMs());
    }
}

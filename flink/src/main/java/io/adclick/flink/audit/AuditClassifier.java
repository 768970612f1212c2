package io.adclick.flink.audit;

import java.io.Serializable;

/** The 1-minute window (0 = unattributed) and bucket (0..BUCKETS-1) an element is counted in. */
public interface AuditClassifier<T> extends Serializable {
    int BUCKETS = 16;
    long MINUTE_MS = 60_000L;

    long windowStartMs(T element);

    int bucket(T element);

    /** False for elements that are not counted at all (gateway progress ticks). */
    default boolean counts(T element) {
        return true;
    }

    /** Floor to the 1-minute window; negative times floor too (never seen: the gateway bounds them). */
    static long minuteOf(long eventTimeMs) {
        return Math.floorDiv(eventTimeMs, MINUTE_MS) * MINUTE_MS;
    }

    static int bucketOf(long id) {
        return (int) Math.floorMod(id, (long) BUCKETS);
    }
}

package io.adclick.flink.model;

/**
 * A partial count: {@code clicks} deduplicated, on-time clicks of one ad, signed for one (campaign,
 * advertiser), in one UTC minute, for the window sizes in {@code granularities} (issue #17). Made by
 * {@code ClickPreAggregator} in front of the ad-keyed exchange, so a hot ad crosses that exchange as a few
 * partials per flush instead of one record per click; the window operators add partials up.
 *
 * <p>A minute lies in exactly one window of every size (1m, 5m and 1h windows are UTC aligned), so one
 * partial serves all three window operators; {@code granularities} leaves out the sizes its clicks were
 * already late for (those went to the late stream instead). {@code click} is set only on a partial made from
 * a single click ({@link #of}), which tests and the window operator's lateness guard use.
 */
public class ClickPartial {
    /** Bit of a granularity in {@link #granularities}. */
    public static int bit(WindowGranularity g) {
        return 1 << g.ordinal();
    }

    public static final int ALL = (1 << WindowGranularity.values().length) - 1;

    public long adId;
    public long campaignId;
    public long advertiserId;
    /** Start of the UTC minute of the clicks' event times; also the record's timestamp. */
    public long minuteStartMs;
    /** Bit set of the window sizes this partial counts for. */
    public int granularities;
    public long clicks;
    public long maxReceivedAtMs = Long.MIN_VALUE;
    /** Trace of the last click added (null: untraced). */
    public String traceId;
    public int traceFlags;
    /** The click itself when the partial stands for exactly one click made by {@link #of}; otherwise null. */
    public Click click;

    public ClickPartial() {}

    public boolean countsFor(WindowGranularity g) {
        return (granularities & bit(g)) != 0;
    }

    public static long minuteOf(long eventTimeMs) {
        return eventTimeMs - Math.floorMod(eventTimeMs, 60_000L);
    }

    /** An empty partial for the click's (ad, owner, minute). */
    public static ClickPartial emptyFor(Click c, int granularities) {
        ClickPartial p = new ClickPartial();
        p.adId = c.adId;
        p.campaignId = c.campaignId;
        p.advertiserId = c.advertiserId;
        p.minuteStartMs = minuteOf(c.eventTimeMs);
        p.granularities = granularities;
        return p;
    }

    /** A partial of one click, carrying it. */
    public static ClickPartial of(Click c, int granularities) {
        ClickPartial p = emptyFor(c, granularities);
        p.add(c);
        p.click = c;
        return p;
    }

    public void add(Click c) {
        clicks++;
        maxReceivedAtMs = Math.max(maxReceivedAtMs, c.receivedAtMs);
        traceId = c.traceId;
        traceFlags = c.traceFlags;
    }

    @Override
    public String toString() {
        return "ClickPartial{ad=" + Long.toUnsignedString(adId) + " c=" + campaignId + " minute=" + minuteStartMs
                + " g=" + granularities + " clicks=" + clicks + "}";
    }
}

package io.adclick.flink.model;

/** One emission of an (ad, window) count; converted to proto WindowAggregate at the sink. */
public class WindowResult {
    public WindowGranularity granularity;
    public long adId;
    public long campaignId;
    public long advertiserId;
    public long windowStartMs;
    /** Exclusive. */
    public long windowEndMs;
    /** Full count so far, never a delta. */
    public long clicks;
    /** True once the operator watermark passed the window end (final / late update). */
    public boolean finalFiring;
    public long watermarkMs;
    public long emittedAtMs;
    public long maxReceivedAtMs;
    /** Trace of the most recent click that changed this window (null: untraced); written as a traceparent header. */
    public String traceId;
    public int traceFlags;

    public WindowResult() {}

    @Override
    public String toString() {
        return "WindowResult{" + granularity.label + " ad=" + Long.toUnsignedString(adId) + " [" + windowStartMs
                + "," + windowEndMs + ") clicks=" + clicks + (finalFiring ? " FINAL" : " early") + " wm="
                + watermarkMs + "}";
    }
}

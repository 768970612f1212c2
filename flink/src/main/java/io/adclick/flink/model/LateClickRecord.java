package io.adclick.flink.model;

/**
 * A click that arrived after allowed lateness of its window of the given granularity. One click can be
 * late for the 1m window but still on time for the 1h window, hence one record per granularity.
 */
public class LateClickRecord {
    public Click click;
    public WindowGranularity granularity;
    public long windowStartMs;
    public long watermarkMs;
    public long detectedAtMs;

    public LateClickRecord() {}

    @Override
    public String toString() {
        return "LateClick{" + granularity.label + " " + click + " wm=" + watermarkMs + "}";
    }
}

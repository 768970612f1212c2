package io.adclick.flink.model;

/** Watermark of one aggregation subtask at a point in processing time. */
public class WatermarkProgressRecord {
    public int subtask;
    public int parallelism;
    public long watermarkMs;
    public long emittedAtMs;

    public WatermarkProgressRecord() {}

    public WatermarkProgressRecord(int subtask, int parallelism, long watermarkMs, long emittedAtMs) {
        this.subtask = subtask;
        this.parallelism = parallelism;
        this.watermarkMs = watermarkMs;
        this.emittedAtMs = emittedAtMs;
    }

    @Override
    public String toString() {
        return "WatermarkProgress{" + subtask + "/" + parallelism + " wm=" + watermarkMs + "}";
    }
}

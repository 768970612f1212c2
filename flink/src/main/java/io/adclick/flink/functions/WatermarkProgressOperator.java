package io.adclick.flink.functions;

import io.adclick.flink.model.WatermarkProgressRecord;

import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;

/**
 * Reports the watermark this subtask sees, as {@link WatermarkProgressRecord}s: whenever it advances,
 * at most once per {@code minIntervalMs} per subtask; an advance that falls inside the interval is
 * reported when the interval ends (so the last value is never withheld). Elements are ignored.
 *
 * <p>Placed directly behind a window operator (same parallelism, forward edge), it sees exactly the
 * watermark that window operator used for firing. {@code Long.MAX_VALUE} (end of input / drain) is not
 * reported: after a restart the watermark would go back and "complete" would have been a lie.
 */
public class WatermarkProgressOperator<IN> extends AbstractStreamOperator<WatermarkProgressRecord>
        implements OneInputStreamOperator<IN, WatermarkProgressRecord>, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;

    private final long minIntervalMs;

    private transient long latestWatermark;
    private transient long lastEmittedWatermark;
    private transient long lastEmitTime;
    private transient boolean emittedOnce;
    private transient boolean timerPending;

    public WatermarkProgressOperator(long minIntervalMs) {
        this.minIntervalMs = Math.max(0, minIntervalMs);
    }

    @Override
    public void open() throws Exception {
        super.open();
        latestWatermark = Long.MIN_VALUE;
        lastEmittedWatermark = Long.MIN_VALUE;
        emittedOnce = false;
        timerPending = false;
    }

    @Override
    public void processElement(StreamRecord<IN> element) {
        // only the watermark matters
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        super.processWatermark(mark);
        long wm = mark.getTimestamp();
        if (wm == Long.MAX_VALUE || wm <= latestWatermark) {
            return;
        }
        latestWatermark = wm;
        long now = getProcessingTimeService().getCurrentProcessingTime();
        if (!emittedOnce || now >= lastEmitTime + minIntervalMs) {
            emit(now);
        } else if (!timerPending) {
            timerPending = true;
            getProcessingTimeService().registerTimer(lastEmitTime + minIntervalMs, this);
        }
    }

    @Override
    public void onProcessingTime(long time) {
        timerPending = false;
        if (latestWatermark > lastEmittedWatermark) {
            emit(getProcessingTimeService().getCurrentProcessingTime());
        }
    }

    private void emit(long now) {
        output.collect(new StreamRecord<>(new WatermarkProgressRecord(
                getRuntimeContext().getTaskInfo().getIndexOfThisSubtask(),
                getRuntimeContext().getTaskInfo().getNumberOfParallelSubtasks(),
                latestWatermark,
                now)));
        lastEmittedWatermark = latestWatermark;
        lastEmitTime = now;
        emittedOnce = true;
    }
}

package io.adclick.flink.functions;

import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.runtime.watermarkstatus.WatermarkStatus;

import java.util.List;

/**
 * Carries the watermark across a restore, so lateness after a restart is judged against the
 * watermark the job had before it (issue #15, defect 1).
 *
 * <p>Why: watermarks are not part of a checkpoint. A restored window operator starts at
 * {@code Long.MIN_VALUE}; until the sources have produced a new watermark, a click older than the
 * allowed lateness is not late for it, opens a fresh window (its window was finalised and purged
 * before the restart) and becomes a {@code clicks=1} final row that loses downstream against the
 * stored row (newest version wins): the click would be counted nowhere. Through this gate it goes to
 * the late side output and becomes a late correction, as it would have without the restart.
 *
 * <p>How: the operator remembers the highest watermark it has forwarded, in operator <em>union</em>
 * list state (one entry per subtask). On restore it takes the minimum of all entries, a lower bound
 * of every subtask's watermark at checkpoint time, whatever the old and new parallelism. Before it
 * forwards anything after a restore (element, watermark or watermark status) it emits
 * {@code Watermark(restored)}; from then on it forwards {@code max(incoming, restored)}, and only when
 * that increases, so the output stays monotonic. A restore from a checkpoint without this operator's
 * state (taken before the gate existed) simply restores nothing.
 *
 * <p>Where (since issue #17): chained directly behind dedup, in front of the {@link ClickPreAggregator},
 * which judges lateness (the window operators behind the ad-keyed exchange never see a late click). The
 * operator that judges lateness therefore reads only this gate's output, and the restored watermark
 * always precedes the first click it judges. (A gate in front of an exchange would not be enough for an
 * operator behind it: that operator combines the watermarks of all its input channels, and an element
 * from one channel can arrive before another channel has sent the restored watermark.) Until issue #17
 * the gate ran keyed by ad in front of the window operators, with the same uid and the same (operator
 * union) state, so checkpoints and savepoints from then restore into it. The minimum over all subtasks
 * is a lower bound of every subtask's watermark at the checkpoint, and every window operator's watermark
 * was at most the minimum of the pre-aggregations' watermarks it had received, so a window purged before
 * the restart is late for the pre-aggregation after it.
 *
 * <p>Watermark status passes through unchanged; the restored watermark is emitted before the first
 * status change, i.e. while the output is still ACTIVE (an output drops watermarks while IDLE).
 * {@code Long.MAX_VALUE} (end of input, drain) is forwarded but never stored: a job restored after it
 * must not treat every click as late.
 */
public final class RestoredWatermarkGate<T> extends AbstractStreamOperator<T> implements OneInputStreamOperator<T, T> {
    private static final long serialVersionUID = 1L;
    public static final String STATE_NAME = "forwarded-watermark";
    public static final String METRIC_RESTORED_WATERMARK = "restoredWatermark";

    private transient ListState<Long> forwardedState;
    /** Lower bound restored from the checkpoint; {@code Long.MIN_VALUE} when there is none. */
    private transient long restored;
    /** Whether {@link #restored} still has to be emitted before anything else. */
    private transient boolean restoredPending;
    /** Highest watermark forwarded since this subtask started (including the restored one). */
    private transient long forwarded;
    /** Highest forwarded watermark below {@code Long.MAX_VALUE}: what a checkpoint stores. */
    private transient long forwardedFinite;

    @Override
    public void initializeState(StateInitializationContext context) throws Exception {
        super.initializeState(context);
        forwardedState = context.getOperatorStateStore()
                .getUnionListState(new ListStateDescriptor<>(STATE_NAME, Types.LONG));
        restored = Long.MIN_VALUE;
        if (context.isRestored()) {
            long min = Long.MAX_VALUE;
            int entries = 0;
            for (Long wm : forwardedState.get()) {
                min = Math.min(min, wm);
                entries++;
            }
            if (entries > 0 && min != Long.MAX_VALUE) {
                restored = min;
            }
            LOG.info("restored-watermark-gate: restored watermark {} (minimum of {} subtask entries)",
                    restored == Long.MIN_VALUE ? "none" : Long.toString(restored), entries);
        }
        restoredPending = restored != Long.MIN_VALUE;
        forwarded = Long.MIN_VALUE;
        forwardedFinite = Long.MIN_VALUE;
    }

    @Override
    public void open() throws Exception {
        super.open();
        getMetricGroup().gauge(METRIC_RESTORED_WATERMARK, () -> restored);
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
        super.snapshotState(context);
        // the restored value counts even if nothing has been forwarded since the restore
        forwardedState.update(List.of(Math.max(restored, forwardedFinite)));
    }

    @Override
    public void processElement(StreamRecord<T> element) throws Exception {
        releaseRestored();
        output.collect(element);
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        releaseRestored();
        long wm = Math.max(mark.getTimestamp(), restored);
        if (wm > forwarded) {
            emit(wm == mark.getTimestamp() ? mark : new Watermark(wm));
        }
    }

    @Override
    public void processWatermarkStatus(WatermarkStatus status) throws Exception {
        releaseRestored();
        super.processWatermarkStatus(status);
    }

    private void releaseRestored() {
        if (restoredPending) {
            restoredPending = false;
            if (restored > forwarded) {
                emit(new Watermark(restored));
            }
        }
    }

    private void emit(Watermark mark) {
        forwarded = mark.getTimestamp();
        if (forwarded != Long.MAX_VALUE) {
            forwardedFinite = forwarded;
        }
        output.emitWatermark(mark);
    }

    /** For tests: the restored lower bound ({@code Long.MIN_VALUE} = none). */
    public long restoredWatermark() {
        return restored;
    }
}

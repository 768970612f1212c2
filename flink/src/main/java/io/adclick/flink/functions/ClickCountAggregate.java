package io.adclick.flink.functions;

import io.adclick.flink.model.Click;

import org.apache.flink.api.common.functions.AggregateFunction;

/**
 * Incremental per-(ad, window) aggregate: count, newest gateway receive time, and the W3C trace of the most
 * recent click that changed the window (observability only; the count never depends on it).
 */
public class ClickCountAggregate implements AggregateFunction<Click, ClickCountAggregate.Acc, ClickCountAggregate.Acc> {
    private static final long serialVersionUID = 1L;

    /** Accumulator (Flink POJO). campaign/advertiser are fixed per ad: taken from the first click. */
    public static class Acc {
        public long count;
        public long maxReceivedAtMs = Long.MIN_VALUE;
        public long campaignId;
        public long advertiserId;
        /**
         * Trace id and flags of the last click added (null: that click had no trace). New POJO fields: window
         * state from checkpoints taken before they existed restores with null here (POJO schema evolution).
         */
        public String traceId;
        public int traceFlags;

        public Acc() {}
    }

    @Override
    public Acc createAccumulator() {
        return new Acc();
    }

    @Override
    public Acc add(Click c, Acc acc) {
        if (acc.count == 0) {
            acc.campaignId = c.campaignId;
            acc.advertiserId = c.advertiserId;
        }
        acc.count++;
        acc.maxReceivedAtMs = Math.max(acc.maxReceivedAtMs, c.receivedAtMs);
        acc.traceId = c.traceId;
        acc.traceFlags = c.traceFlags;
        return acc;
    }

    @Override
    public Acc getResult(Acc acc) {
        return acc;
    }

    @Override
    public Acc merge(Acc a, Acc b) {
        Acc m = new Acc();
        Acc first = a.count > 0 ? a : b;
        m.campaignId = first.campaignId;
        m.advertiserId = first.advertiserId;
        m.count = a.count + b.count;
        m.maxReceivedAtMs = Math.max(a.maxReceivedAtMs, b.maxReceivedAtMs);
        Acc traced = b.traceId != null ? b : a;
        m.traceId = traced.traceId;
        m.traceFlags = traced.traceFlags;
        return m;
    }
}

package io.adclick.flink.functions;

import io.adclick.flink.model.Click;

import org.apache.flink.api.common.functions.AggregateFunction;

/** Incremental per-(ad, window) aggregate: count and newest gateway receive time. */
public class ClickCountAggregate implements AggregateFunction<Click, ClickCountAggregate.Acc, ClickCountAggregate.Acc> {
    private static final long serialVersionUID = 1L;

    /** Accumulator (Flink POJO). campaign/advertiser are fixed per ad: taken from the first click. */
    public static class Acc {
        public long count;
        public long maxReceivedAtMs = Long.MIN_VALUE;
        public long campaignId;
        public long advertiserId;

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
        return m;
    }
}

package io.adclick.flink.functions;

import io.adclick.flink.model.ClickPartial;

import org.apache.flink.api.common.functions.AggregateFunction;

/**
 * Incremental per-(ad, window) aggregate of {@link ClickPartial}s (issue #17: the window operators add up
 * the partial counts of the pre-aggregation instead of counting clicks), counted per owner: every click counts for exactly the
 * (advertiser, campaign) it was signed with (issue #15, defect 3). Nearly every window has one owner
 * (the fields {@code campaignId}, {@code advertiserId}, {@code count}, {@code maxReceivedAtMs}); an ad
 * moved between campaigns, or a click claiming another advertiser's ad, adds an entry to the
 * {@code other*} arrays, and {@link WindowResultFunction} emits one result per owner. Also keeps the W3C
 * trace of the most recent click (observability only; counts never depend on it): the last partial's.
 *
 * <p>The window key stays the ad id: the window state of existing checkpoints restores unchanged
 * (POJO schema evolution: the new array fields restore as null = no other owner). The accumulator is the
 * same whether its input is a click or a partial, so window state taken before issue #17 restores as is.
 */
public class ClickCountAggregate implements AggregateFunction<ClickPartial, ClickCountAggregate.Acc, ClickCountAggregate.Acc> {
    private static final long serialVersionUID = 1L;

    /** Accumulator (Flink POJO). */
    public static class Acc {
        /** Clicks of the first owner seen in the window. */
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
        /** Further owners of the ad in this window, parallel arrays (null: none). */
        public long[] otherCampaignIds;
        public long[] otherAdvertiserIds;
        public long[] otherCounts;
        public long[] otherMaxReceivedAtMs;

        public Acc() {}

        /** Owners with their counts: 1 + others. */
        public int owners() {
            return otherCounts == null ? 1 : 1 + otherCounts.length;
        }

        void addOwned(long campaign, long advertiser, long clicks, long maxReceived) {
            if (clicks <= 0) return;
            if (count == 0 && otherCounts == null) {
                campaignId = campaign;
                advertiserId = advertiser;
            }
            if (campaign == campaignId && advertiser == advertiserId) {
                count += clicks;
                maxReceivedAtMs = Math.max(maxReceivedAtMs, maxReceived);
                return;
            }
            int n = otherCounts == null ? 0 : otherCounts.length;
            for (int i = 0; i < n; i++) {
                if (otherCampaignIds[i] == campaign && otherAdvertiserIds[i] == advertiser) {
                    otherCounts[i] += clicks;
                    otherMaxReceivedAtMs[i] = Math.max(otherMaxReceivedAtMs[i], maxReceived);
                    return;
                }
            }
            otherCampaignIds = append(otherCampaignIds, campaign);
            otherAdvertiserIds = append(otherAdvertiserIds, advertiser);
            otherCounts = append(otherCounts, clicks);
            otherMaxReceivedAtMs = append(otherMaxReceivedAtMs, maxReceived);
        }

        private static long[] append(long[] a, long v) {
            int n = a == null ? 0 : a.length;
            long[] b = new long[n + 1];
            if (n > 0) System.arraycopy(a, 0, b, 0, n);
            b[n] = v;
            return b;
        }
    }

    @Override
    public Acc createAccumulator() {
        return new Acc();
    }

    @Override
    public Acc add(ClickPartial p, Acc acc) {
        acc.addOwned(p.campaignId, p.advertiserId, p.clicks, p.maxReceivedAtMs);
        acc.traceId = p.traceId;
        acc.traceFlags = p.traceFlags;
        return acc;
    }

    @Override
    public Acc getResult(Acc acc) {
        return acc;
    }

    @Override
    public Acc merge(Acc a, Acc b) {
        Acc m = new Acc();
        for (Acc x : new Acc[] {a, b}) {
            m.addOwned(x.campaignId, x.advertiserId, x.count, x.maxReceivedAtMs);
            int n = x.otherCounts == null ? 0 : x.otherCounts.length;
            for (int i = 0; i < n; i++) {
                m.addOwned(x.otherCampaignIds[i], x.otherAdvertiserIds[i], x.otherCounts[i], x.otherMaxReceivedAtMs[i]);
            }
        }
        Acc traced = b.traceId != null ? b : a;
        m.traceId = traced.traceId;
        m.traceFlags = traced.traceFlags;
        return m;
    }
}

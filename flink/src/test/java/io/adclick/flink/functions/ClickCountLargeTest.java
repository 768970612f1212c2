package io.adclick.flink.functions;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.adclick.flink.model.Click;
import io.adclick.flink.model.ClickPartial;
import io.adclick.flink.model.WindowGranularity;
import io.adclick.flink.model.WindowResult;
import io.adclick.flink.serde.ProtoConverters;
import io.adclick.proto.v1.WindowAggregate;

import org.junit.jupiter.api.Test;

/**
 * Counts at and past 2^31 stay exact on the job's side (issue #15, defect 10): the accumulator, its merge
 * and the WindowAggregate the sink reads are 64-bit all the way; the sink holds up to 2^53 - 1 exactly.
 */
class ClickCountLargeTest {
    private static final long INT_MAX = Integer.MAX_VALUE;

    @Test
    void accumulatorAndMergeCountPastTwoToThe31() {
        ClickCountAggregate f = new ClickCountAggregate();
        ClickCountAggregate.Acc a = f.createAccumulator();
        a.campaignId = 2;
        a.advertiserId = 3;
        a.count = INT_MAX;
        a.otherCampaignIds = new long[] {5};
        a.otherAdvertiserIds = new long[] {3};
        a.otherCounts = new long[] {INT_MAX};
        a.otherMaxReceivedAtMs = new long[] {1};
        Click c = new Click();
        c.campaignId = 2;
        c.advertiserId = 3;
        c.receivedAtMs = 10;
        f.add(ClickPartial.of(c, ClickPartial.ALL), a);
        assertEquals(INT_MAX + 1, a.count);

        ClickCountAggregate.Acc b = f.createAccumulator();
        b.campaignId = 2;
        b.advertiserId = 3;
        b.count = (1L << 53) - 1 - (INT_MAX + 1);
        b.otherCampaignIds = new long[] {5};
        b.otherAdvertiserIds = new long[] {3};
        b.otherCounts = new long[] {INT_MAX + 2};
        b.otherMaxReceivedAtMs = new long[] {2};
        ClickCountAggregate.Acc m = f.merge(a, b);
        assertEquals((1L << 53) - 1, m.count);
        assertEquals(2 * INT_MAX + 2, m.otherCounts[0]);
    }

    @Test
    void windowAggregateCarriesTheFullCount() throws Exception {
        for (long clicks : new long[] {INT_MAX + 1, (1L << 32) + 1, (1L << 53) - 1}) {
            WindowResult r = new WindowResult();
            r.granularity = WindowGranularity.MINUTE_1;
            r.adId = 1;
            r.campaignId = 2;
            r.advertiserId = 3;
            r.windowStartMs = 60_000;
            r.windowEndMs = 120_000;
            r.clicks = clicks;
            byte[] wire = ProtoConverters.toProto(r).toByteArray();
            assertEquals(clicks, WindowAggregate.parseFrom(wire).getClicks());
        }
    }
}

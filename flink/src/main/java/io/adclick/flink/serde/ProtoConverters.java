package io.adclick.flink.serde;

import io.adclick.flink.model.Click;
import io.adclick.flink.model.DeadLetterRecord;
import io.adclick.flink.model.LateClickRecord;
import io.adclick.flink.model.WatermarkProgressRecord;
import io.adclick.flink.model.WindowGranularity;
import io.adclick.flink.model.WindowResult;
import io.adclick.proto.v1.ClickEvent;
import io.adclick.proto.v1.DeadLetter;
import io.adclick.proto.v1.LateClick;
import io.adclick.proto.v1.WatermarkProgress;
import io.adclick.proto.v1.WindowAggregate;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;

import java.nio.charset.StandardCharsets;

/** POJO to protobuf conversion and Kafka record keys. */
public final class ProtoConverters {
    public static final String STAGE = "flink";

    private ProtoConverters() {}

    /** Record key of an aggregate: {@code <granularity>|<ad_id>|<window_start_ms>}, e.g. {@code 1m|42|1700000040000}. */
    public static String windowKey(WindowGranularity g, long adId, long windowStartMs) {
        return g.label + "|" + Long.toUnsignedString(adId) + "|" + windowStartMs;
    }

    public static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    public static WindowAggregate toProto(WindowResult r) {
        return WindowAggregate.newBuilder()
                .setGranularity(r.granularity.proto)
                .setAdId(r.adId)
                .setCampaignId(r.campaignId)
                .setAdvertiserId(r.advertiserId)
                .setWindowStartMs(r.windowStartMs)
                .setWindowEndMs(r.windowEndMs)
                .setClicks(r.clicks)
                .setFinal(r.finalFiring)
                .setWatermarkMs(r.watermarkMs)
                .setEmittedAtMs(r.emittedAtMs)
                .setMaxReceivedAtMs(r.maxReceivedAtMs)
                .build();
    }

    public static WatermarkProgress toProto(WatermarkProgressRecord r) {
        return WatermarkProgress.newBuilder()
                .setSubtask(r.subtask)
                .setParallelism(r.parallelism)
                .setWatermarkMs(r.watermarkMs)
                .setEmittedAtMs(r.emittedAtMs)
                .build();
    }

    /** One late click for the window of {@code r.granularity} it missed; the correction applies to that granularity only. */
    public static LateClick toProto(LateClickRecord r) {
        if (r.granularity == null) throw new IllegalArgumentException("late click without granularity: " + r.click);
        return LateClick.newBuilder()
                .setClick(toClickEvent(r.click))
                .setWatermarkMs(r.watermarkMs)
                .setDetectedAtMs(r.detectedAtMs)
                .setGranularity(r.granularity.proto)
                .setWindowStartMs(r.windowStartMs)
                .build();
    }

    public static DeadLetter toProto(DeadLetterRecord d) {
        DeadLetter.Builder b = DeadLetter.newBuilder()
                .setSourceTopic(nullToEmpty(d.sourceTopic))
                .setPartition(d.partition)
                .setOffset(d.offset)
                .setReason(nullToEmpty(d.reason))
                .setDetail(nullToEmpty(d.detail))
                .setDetectedAtMs(d.detectedAtMs)
                .setStage(STAGE);
        if (d.key != null) b.setKey(ByteString.copyFrom(d.key));
        if (d.payload != null) b.setPayload(ByteString.copyFrom(d.payload));
        return b.build();
    }

    /** The original event (from the raw bytes when present, so unknown/extra fields survive). */
    public static ClickEvent toClickEvent(Click c) {
        if (c.raw != null) {
            try {
                return ClickEvent.parseFrom(c.raw);
            } catch (InvalidProtocolBufferException e) {
                // cannot happen: raw bytes were parsed successfully at the source; fall through
            }
        }
        return ClickEvent.newBuilder()
                .setImpressionId(nullToEmpty(c.impressionId))
                .setEventType(nullToEmpty(c.eventType))
                .setAdId(c.adId)
                .setCampaignId(c.campaignId)
                .setAdvertiserId(c.advertiserId)
                .setEventTimeMs(c.eventTimeMs)
                .setReceivedAtMs(c.receivedAtMs)
                .build();
    }

    private static String nullToEmpty(String s) {
        return s == null ? "" : s;
    }
}

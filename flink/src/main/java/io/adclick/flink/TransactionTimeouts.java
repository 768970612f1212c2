package io.adclick.flink;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.config.ConfigResource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Sizes the sinks' Kafka transaction timeout to the broker's {@code transaction.max.timeout.ms}
 * (issue #15, defect 6). A checkpoint's transactions are committed only after the checkpoint completes;
 * a crash in between followed by a recovery longer than the timeout means the broker has aborted them
 * and their records are lost. The longest timeout the broker allows gives recovery the most time; a
 * configured timeout above it would only fail later, inside the sink, with a less clear error.
 */
public final class TransactionTimeouts {
    private static final Logger LOG = LoggerFactory.getLogger(TransactionTimeouts.class);
    public static final String BROKER_MAX = "transaction.max.timeout.ms";

    private TransactionTimeouts() {}

    /** The timeout to use: the broker's maximum when none is configured; a configured one must not exceed it. */
    public static long choose(long configuredMs, long brokerMaxMs) {
        if (brokerMaxMs <= 0) throw new IllegalArgumentException("broker " + BROKER_MAX + " unknown: " + brokerMaxMs);
        if (configuredMs == 0) return brokerMaxMs;
        if (configuredMs > brokerMaxMs) {
            throw new IllegalArgumentException("--transaction-timeout-ms " + configuredMs + " exceeds the broker's "
                    + BROKER_MAX + " " + brokerMaxMs + "; raise the broker's maximum or leave the flag unset (0)");
        }
        if (configuredMs < brokerMaxMs) {
            LOG.warn("--transaction-timeout-ms {} is below the broker's {} {}: a recovery longer than {} after a crash"
                    + " between checkpoint and commit loses committed output", configuredMs, BROKER_MAX, brokerMaxMs,
                    Duration.ofMillis(configuredMs));
        }
        return configuredMs;
    }

    /** The smallest {@code transaction.max.timeout.ms} over the cluster's brokers (they should agree). */
    public static long brokerMaxTimeoutMs(String bootstrap, Duration patience) throws InterruptedException {
        long deadline = System.nanoTime() + patience.toNanos();
        RuntimeException last = null;
        while (true) {
            try (Admin admin = Admin.create(Map.of(
                    AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                    AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000,
                    AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 15_000))) {
                Collection<Node> nodes = admin.describeCluster().nodes().get(15, TimeUnit.SECONDS);
                List<ConfigResource> brokers = nodes.stream()
                        .map(n -> new ConfigResource(ConfigResource.Type.BROKER, n.idString())).toList();
                Map<ConfigResource, Config> configs = admin.describeConfigs(brokers).all().get(15, TimeUnit.SECONDS);
                long min = Long.MAX_VALUE;
                for (Config c : configs.values()) {
                    ConfigEntry e = c.get(BROKER_MAX);
                    if (e != null && e.value() != null) min = Math.min(min, Long.parseLong(e.value()));
                }
                if (min == Long.MAX_VALUE) throw new IllegalStateException("no broker reported " + BROKER_MAX);
                return min;
            } catch (InterruptedException e) {
                throw e;
            } catch (Exception e) {
                last = e instanceof RuntimeException re ? re : new RuntimeException(e);
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("cannot read " + BROKER_MAX + " from Kafka at " + bootstrap
                        + " within " + patience + ": " + last.getMessage(), last);
            }
            LOG.warn("reading the broker's {} failed ({}); retrying", BROKER_MAX, last.toString());
            Thread.sleep(1000);
        }
    }
}

package io.adclick.flink;

import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.CoreOptions;
import org.apache.flink.configuration.MemorySize;
import org.apache.flink.configuration.ExternalizedCheckpointRetention;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.configuration.StateRecoveryOptions;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.configuration.WebOptions;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.state.rocksdb.RocksDBConfigurableOptions;
import org.apache.flink.util.ParameterTool;

import java.io.Serializable;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;

/**
 * All knobs of the job. Each flag {@code --some-flag} can also be given as environment variable
 * {@code ADCLICK_SOME_FLAG}; the CLI wins. Unknown flags are rejected (typos must not silently fall
 * back to defaults).
 */
public final class JobConfig implements Serializable {
    private static final long serialVersionUID = 1L;
    public static final String ENV_PREFIX = "ADCLICK_";

    /** flag -> default (null = no default). Order = help order. */
    static final Map<String, String> DEFAULTS = new LinkedHashMap<>();

    static {
        DEFAULTS.put("bootstrap-servers", "127.0.0.1:9092");
        DEFAULTS.put("group-id", "adclick-flink");
        DEFAULTS.put("topic-clicks", "clicks");
        DEFAULTS.put("topic-aggregates", "click-aggregates");
        DEFAULTS.put("topic-watermarks", "click-watermarks");
        DEFAULTS.put("topic-late", "clicks-late");
        DEFAULTS.put("topic-dlq", "clicks-dlq");
        DEFAULTS.put("topic-deduped", "clicks-deduped");
        DEFAULTS.put("topic-audit", "click-audit");
        DEFAULTS.put("checkpoint-dir", Paths.get(".data/flink/checkpoints").toAbsolutePath().toUri().toString());
        DEFAULTS.put("checkpoint-interval-ms", "5000");
        DEFAULTS.put("checkpoint-min-pause-ms", "1000");
        DEFAULTS.put("checkpoint-timeout-ms", "120000");
        DEFAULTS.put("checkpoints-retained", "3");
        DEFAULTS.put("tolerable-checkpoint-failures", "3");
        DEFAULTS.put("out-of-orderness-ms", "5000");
        // 0: never idle; gateway ticks move quiet partitions (issue #15, defect 2)
        DEFAULTS.put("idleness-ms", "0");
        DEFAULTS.put("allowed-lateness-ms", "120000");
        DEFAULTS.put("early-fire-interval-ms", "2000");
        // dedup horizon in event time (not a processing-time TTL), see dedupTtlMs
        DEFAULTS.put("dedup-ttl-ms", Long.toString(Duration.ofHours(26).toMillis()));
        // 0: the broker's transaction.max.timeout.ms, read at start (issue #15, defect 6)
        DEFAULTS.put("transaction-timeout-ms", "0");
        // pooling: transactional ids reused from a bounded pool (issue #15, defect 7); incrementing: one per checkpoint
        DEFAULTS.put("transaction-naming", "pooling");
        DEFAULTS.put("transactional-id-prefix", "adclick-agg");
        DEFAULTS.put("parallelism", "2");
        DEFAULTS.put("max-parallelism", "128");
        DEFAULTS.put("watermark-emit-interval-ms", "1000");
        DEFAULTS.put("restore-from", null);
        DEFAULTS.put("web-ui-port", "8082");
        DEFAULTS.put("web-ui-bind-address", "127.0.0.1");
        DEFAULTS.put("restart-attempts", "10");
        DEFAULTS.put("restart-initial-backoff-ms", "1000");
        DEFAULTS.put("restart-max-backoff-ms", "30000");
        DEFAULTS.put("job-name", "adclick-click-aggregation");
    }

    public final String bootstrapServers;
    public final String groupId;
    public final String topicClicks;
    public final String topicAggregates;
    public final String topicWatermarks;
    public final String topicLate;
    public final String topicDlq;
    /** Every click that passed dedup (the original ClickEvent), for raw storage, audit and backfill. */
    public final String topicDeduped;
    public final String topicAudit;
    public final String checkpointDir;
    public final long checkpointIntervalMs;
    public final long checkpointMinPauseMs;
    public final long checkpointTimeoutMs;
    public final int checkpointsRetained;
    public final int tolerableCheckpointFailures;
    public final long outOfOrdernessMs;
    public final long idlenessMs;
    public final long allowedLatenessMs;
    public final long earlyFireIntervalMs;
    /**
     * Dedup horizon, in event time: a click's (impression_id, event_type) mark is kept until the
     * watermark passes its event time + this (see DedupFunction). Must cover the gateway's maximum
     * accepted click age + clock skew + a margin (the launcher passes 24 h + 5 min + 1 h); however far
     * the job lags behind the clock, a retry within that age is dropped. (Named "ttl" for compatibility:
     * before issue #15 it was a processing-time state TTL.)
     */
    public final long dedupTtlMs;
    /**
     * Kafka transaction timeout of the sinks. A checkpoint's transactions are committed after the checkpoint
     * completes; if the job dies in between and recovers only after this long, the broker has aborted them and
     * their records are gone. So it is sized to the broker's maximum: 0 (the default) means "read the broker's
     * transaction.max.timeout.ms at start" ({@link #withTransactionTimeoutMs}).
     */
    public final long transactionTimeoutMs;
    /** {@code pooling} (bounded transactional ids, reused) or {@code incrementing} (a new id per checkpoint). */
    public final String transactionNaming;
    public final String transactionalIdPrefix;
    public final int parallelism;
    public final int maxParallelism;
    public final long watermarkEmitIntervalMs;
    /** Retained checkpoint (or savepoint) to restore from, e.g. {@code file:///…/<job-id>/chk-42}; may be null. */
    public final String restoreFrom;
    public final int webUiPort;
    public final String webUiBindAddress;
    public final int restartAttempts;
    public final long restartInitialBackoffMs;
    public final long restartMaxBackoffMs;
    public final String jobName;

    private final transient Function<String, String> source;

    private JobConfig(Function<String, String> get) {
        source = get;
        bootstrapServers = str(get, "bootstrap-servers");
        groupId = str(get, "group-id");
        topicClicks = str(get, "topic-clicks");
        topicAggregates = str(get, "topic-aggregates");
        topicWatermarks = str(get, "topic-watermarks");
        topicLate = str(get, "topic-late");
        topicDlq = str(get, "topic-dlq");
        topicDeduped = str(get, "topic-deduped");
        topicAudit = str(get, "topic-audit");
        checkpointDir = normalizeDir(str(get, "checkpoint-dir"));
        checkpointIntervalMs = positive(get, "checkpoint-interval-ms");
        checkpointMinPauseMs = nonNegative(get, "checkpoint-min-pause-ms");
        checkpointTimeoutMs = positive(get, "checkpoint-timeout-ms");
        checkpointsRetained = (int) positive(get, "checkpoints-retained");
        tolerableCheckpointFailures = (int) nonNegative(get, "tolerable-checkpoint-failures");
        outOfOrdernessMs = nonNegative(get, "out-of-orderness-ms");
        idlenessMs = nonNegative(get, "idleness-ms");
        allowedLatenessMs = nonNegative(get, "allowed-lateness-ms");
        earlyFireIntervalMs = nonNegative(get, "early-fire-interval-ms");
        dedupTtlMs = positive(get, "dedup-ttl-ms");
        transactionTimeoutMs = nonNegative(get, "transaction-timeout-ms");
        transactionNaming = str(get, "transaction-naming").toLowerCase(Locale.ROOT);
        if (!transactionNaming.equals("pooling") && !transactionNaming.equals("incrementing")) {
            throw new IllegalArgumentException("--transaction-naming must be pooling or incrementing, got " + transactionNaming);
        }
        transactionalIdPrefix = str(get, "transactional-id-prefix");
        parallelism = (int) positive(get, "parallelism");
        maxParallelism = (int) positive(get, "max-parallelism");
        watermarkEmitIntervalMs = nonNegative(get, "watermark-emit-interval-ms");
        String restore = get.apply("restore-from");
        restoreFrom = restore == null || restore.isBlank() ? null : restore.trim();
        webUiPort = (int) nonNegative(get, "web-ui-port");
        webUiBindAddress = str(get, "web-ui-bind-address");
        restartAttempts = (int) nonNegative(get, "restart-attempts");
        restartInitialBackoffMs = positive(get, "restart-initial-backoff-ms");
        restartMaxBackoffMs = positive(get, "restart-max-backoff-ms");
        jobName = str(get, "job-name");

        if (maxParallelism < parallelism) {
            throw new IllegalArgumentException("--max-parallelism must be >= --parallelism");
        }
        if (transactionTimeoutMs != 0 && transactionTimeoutMs <= checkpointIntervalMs + checkpointTimeoutMs) {
            throw new IllegalArgumentException("--transaction-timeout-ms must exceed checkpoint interval + timeout,"
                    + " otherwise Kafka may abort transactions Flink still has to commit");
        }
    }

    /** Defaults only (tests). */
    public static JobConfig defaults() {
        return parse(new String[0], Map.of());
    }

    /** This configuration with the transaction timeout resolved (e.g. to the broker's maximum). */
    public JobConfig withTransactionTimeoutMs(long ms) {
        return new JobConfig(key -> "transaction-timeout-ms".equals(key) ? Long.toString(ms) : source.apply(key));
    }

    public static JobConfig parse(String[] args, Map<String, String> env) {
        ParameterTool cli = ParameterTool.fromArgs(args);
        for (String key : cli.toMap().keySet()) {
            if (!DEFAULTS.containsKey(key)) {
                throw new IllegalArgumentException("unknown flag --" + key + "; known flags: " + DEFAULTS.keySet());
            }
        }
        return new JobConfig(key -> {
            String v = cli.get(key);
            if (v == null || "__NO_VALUE_KEY".equals(v)) {
                v = env.get(envName(key));
            }
            if (v == null || v.isBlank()) {
                v = DEFAULTS.get(key);
            }
            return v;
        });
    }

    public static String envName(String flag) {
        return ENV_PREFIX + flag.toUpperCase(Locale.ROOT).replace('-', '_');
    }

    public static String usage() {
        StringBuilder sb = new StringBuilder("flags (env var fallback in brackets):\n");
        DEFAULTS.forEach((k, v) -> sb.append("  --").append(k).append(" [").append(envName(k)).append("] default: ")
                .append(v == null ? "(none)" : v).append('\n'));
        return sb.toString();
    }

    /** Flink configuration: checkpointing, state backend, restart strategy, recovery path, web UI. */
    public Configuration toFlinkConfiguration() {
        Configuration c = new Configuration();
        c.set(CoreOptions.DEFAULT_PARALLELISM, parallelism);
        c.set(PipelineOptions.MAX_PARALLELISM, maxParallelism);
        c.set(PipelineOptions.NAME, jobName);
        // Chained operators hand records over without a copy (issue #17: PojoSerializer.copy of every
        // click between chained operators was ~3 % of the job's CPU). Safe because no operator changes a
        // record it received or keeps one it emitted: ClickPreAggregator and AuditTally buffer objects of
        // their own, and every emitted record is new. PipelineITCase and HotAdITCase run with it on.
        c.set(PipelineOptions.OBJECT_REUSE, true);

        c.set(CheckpointingOptions.CHECKPOINTING_CONSISTENCY_MODE, CheckpointingMode.EXACTLY_ONCE);
        c.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofMillis(checkpointIntervalMs));
        c.set(CheckpointingOptions.MIN_PAUSE_BETWEEN_CHECKPOINTS, Duration.ofMillis(checkpointMinPauseMs));
        c.set(CheckpointingOptions.CHECKPOINTING_TIMEOUT, Duration.ofMillis(checkpointTimeoutMs));
        c.set(CheckpointingOptions.MAX_CONCURRENT_CHECKPOINTS, 1);
        c.set(CheckpointingOptions.TOLERABLE_FAILURE_NUMBER, tolerableCheckpointFailures);
        c.set(CheckpointingOptions.EXTERNALIZED_CHECKPOINT_RETENTION, ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION);
        c.set(CheckpointingOptions.MAX_RETAINED_CHECKPOINTS, checkpointsRetained);
        c.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
        c.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, checkpointDir);
        c.set(CheckpointingOptions.INCREMENTAL_CHECKPOINTS, true);
        // Back-pressure (a hot ad, a slow sink) must not time out checkpoints (issue #17): a barrier that
        // waits longer than 1 s for alignment overtakes the in-flight buffers, which become part of the
        // checkpoint (still exactly-once; savepoints stay aligned), and buffer debloating keeps in-flight
        // data to about a second's worth, so neither aligned nor unaligned checkpoints carry much of it.
        c.set(CheckpointingOptions.ENABLE_UNALIGNED, true);
        c.set(CheckpointingOptions.ALIGNED_CHECKPOINT_TIMEOUT, Duration.ofSeconds(1));
        c.set(TaskManagerOptions.BUFFER_DEBLOAT_ENABLED, true);
        c.set(StateBackendOptions.STATE_BACKEND, "rocksdb");
        // Bloom filters on every column family (10 bits per key, ~1% false positives): the dedup's
        // lookup of a new (impression, event) key, i.e. nearly every click, is a miss, and without a filter
        // RocksDB searches each L0 file and one file per level for it; the window state's misses (a new
        // window) too. Only the SST files written from now on carry filters: old checkpoints restore as is.
        c.set(RocksDBConfigurableOptions.USE_BLOOM_FILTER, true);
        // The local MiniCluster's managed memory (RocksDB block cache and memtables, shared per slot): Flink's
        // local default is 128 MiB. With the dedup state of a few million keys, a second 7,500 clicks/s step
        // cost the job 2.5x the CPU of the first (JFR: JVM system time x3, RocksDB reads). A session
        // cluster's TaskManagers size it in their own configuration; this setting only applies locally.
        c.set(TaskManagerOptions.MANAGED_MEMORY_SIZE, MemorySize.ofMebiBytes(1024));

        c.set(RestartStrategyOptions.RESTART_STRATEGY, "exponential-delay");
        c.set(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_INITIAL_BACKOFF, Duration.ofMillis(restartInitialBackoffMs));
        c.set(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_MAX_BACKOFF, Duration.ofMillis(restartMaxBackoffMs));
        c.set(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_BACKOFF_MULTIPLIER, 2.0);
        c.set(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_RESET_BACKOFF_THRESHOLD, Duration.ofMinutes(10));
        c.set(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_JITTER_FACTOR, 0.1);
        c.set(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_ATTEMPTS, restartAttempts);

        if (restoreFrom != null) {
            c.set(StateRecoveryOptions.SAVEPOINT_PATH, restoreFrom);
            c.set(StateRecoveryOptions.SAVEPOINT_IGNORE_UNCLAIMED_STATE, false);
        }

        c.set(RestOptions.PORT, webUiPort);
        c.set(RestOptions.BIND_PORT, Integer.toString(webUiPort));
        c.set(RestOptions.ADDRESS, webUiBindAddress);
        c.set(RestOptions.BIND_ADDRESS, webUiBindAddress);
        // Jar upload/run over REST would run anyone's code in this JVM (Kafka access, checkpoint
        // files). The job is started from the command line, so the handlers are not even loaded.
        // Cancel and stop-with-savepoint stay: `adclick savepoint --stop` uses them, and
        // web.cancel.enable only hides the dashboard's button in this Flink version.
        c.set(WebOptions.SUBMIT_ENABLE, false);
        return c;
    }

    private static String str(Function<String, String> get, String key) {
        String v = get.apply(key);
        if (v == null || v.isBlank()) throw new IllegalArgumentException("--" + key + " must not be empty");
        return v.trim();
    }

    private static long num(Function<String, String> get, String key) {
        String v = str(get, key);
        try {
            return Long.parseLong(v.replace("_", ""));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + key + " must be an integer, got '" + v + "'");
        }
    }

    private static long positive(Function<String, String> get, String key) {
        long v = num(get, key);
        if (v <= 0) throw new IllegalArgumentException("--" + key + " must be > 0, got " + v);
        return v;
    }

    private static long nonNegative(Function<String, String> get, String key) {
        long v = num(get, key);
        if (v < 0) throw new IllegalArgumentException("--" + key + " must be >= 0, got " + v);
        return v;
    }

    /** Plain absolute paths become file:// URIs; URIs are kept. */
    static String normalizeDir(String dir) {
        if (dir.contains("://")) return dir;
        return Paths.get(dir).toAbsolutePath().toUri().toString();
    }

    @Override
    public String toString() {
        return "JobConfig{bootstrap=" + bootstrapServers + ", group=" + groupId + ", checkpointDir=" + checkpointDir
                + ", checkpointIntervalMs=" + checkpointIntervalMs + ", parallelism=" + parallelism
                + ", outOfOrdernessMs=" + outOfOrdernessMs + ", idlenessMs=" + idlenessMs
                + ", allowedLatenessMs=" + allowedLatenessMs + ", earlyFireIntervalMs=" + earlyFireIntervalMs
                + ", dedupTtlMs=" + dedupTtlMs + ", transactionTimeoutMs=" + transactionTimeoutMs + ", transactionNaming=" + transactionNaming
                + ", transactionalIdPrefix=" + transactionalIdPrefix + ", restoreFrom=" + restoreFrom
                + ", webUi=" + webUiBindAddress + ":" + webUiPort + "}";
    }
}

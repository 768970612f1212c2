package io.adclick.flink;

import io.adclick.flink.audit.WindowAuditSerializer;
import io.adclick.flink.functions.ClickWatermarks;
import io.adclick.flink.model.IngestRecord;
import io.adclick.flink.serde.ClickDeserializationSchema;
import io.adclick.flink.serde.Serializers;
import io.adclick.flink.serde.TopicDeclaringSerializer;

import org.apache.flink.api.common.JobStatus;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.sink.TransactionNamingStrategy;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.LocalStreamEnvironment;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.kafka.clients.consumer.OffsetResetStrategy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.concurrent.TimeUnit;

/*
 * AdClick Flink job: exactly-once click aggregation.
 *
 * Topology (every operator has a stable uid, listed in brackets):
 *
 *   Kafka `clicks` [kafka-source-clicks]          value = ClickEvent protobuf, key = decimal ad_id;
 *     |  ClickDeserializationSchema never throws;  event time = event_time_ms, bounded out-of-orderness
 *     |  + per-partition idleness watermarks, offsets committed-or-earliest
 *   split [split-dead-letters] --(side: DeadLetter)--------------------------> `clicks-dlq` [sink-clicks-dlq]
 *     |
 *   keyBy(impression_id, event_type) -> dedup [dedup-impression-event]  (RocksDB ValueState: mark kept until
 *     |   the watermark passes event time + --dedup-ttl-ms (event-time timer), metric duplicatesDropped)
 *   keyBy(ad_id) -> [restored-watermark-gate]  (after a restore, first emits the pre-restart watermark
 *     |   from union operator state, so lateness is judged as before the restart)
 *     |-- forward (chained) x3 -> tumbling event-time windows 1m/5m/1h [window-1m|5m|1h], counted per owner
 *     |   trigger: provisional early firing every --early-fire-interval-ms if changed (final=false),
 *     |   final firing when the watermark passes the window end, immediate re-firing for clicks within
 *     |   --allowed-lateness-ms (final=true, full count); later clicks -> side output
 *     |-- late side outputs [late-clicks-1m|5m|1h] ----------------------------> `clicks-late` [sink-clicks-late]
 *     |-- window-1m -> [watermark-progress] (<= 1/interval/subtask) ----------> `click-watermarks` [sink-click-watermarks]
 *     '-- union of window results (key granularity|ad_id|window_start) -------> `click-aggregates` [sink-click-aggregates]
 *   dedup output (every click that passed dedup, original ClickEvent, key ad_id) --> `clicks-deduped` [sink-clicks-deduped]
 *
 * All sinks are KafkaSink EXACTLY_ONCE with transactional-id prefix <--transactional-id-prefix>-<topic role>;
 * transactions commit on checkpoint completion (readers must use read_committed).
 * Checkpoints: exactly-once, RocksDB incremental, retained on cancellation, stored under
 * <--checkpoint-dir>/<job-id>/chk-<n>. --restore-from <.../chk-n> resumes from such a checkpoint.
 *
 * Run locally (MiniCluster in this JVM, web UI on --web-ui-port):
 *   java -cp adclick-flink-job.jar io.adclick.flink.ClickAggregationJob --checkpoint-dir file:///... [--restore-from file:///.../chk-N]
 * Prints "ADCLICK_FLINK_JOB_ID <id>" and then "ADCLICK_FLINK_READY" on stdout once the job is RUNNING, then
 * blocks until the job ends (exit 0 = finished, 1 = failed, 2 = bad arguments). Logs go to stderr.
 * Every flag also reads env var ADCLICK_<FLAG_IN_UPPER_SNAKE>; see JobConfig or run with --help.
 *
 * Submitted to a session cluster (the JobManager's REST API: /jars/upload then /jars/:id/run, see
 * src/cluster/flink-cluster.ts), main runs inside the JobManager's JVM: it submits the job and returns.
 * There it never calls System.exit (that would end the JobManager and every job on it), registers no
 * shutdown hook (the JobManager's own shutdown must not cancel the job) and does not wait for the job
 * (a web submission's JobClient cannot even report the job's status). Bad arguments are thrown instead,
 * so /jars/:id/run answers with the message.
 */
public final class ClickAggregationJob {
    private static final Logger LOG = LoggerFactory.getLogger(ClickAggregationJob.class);

    public static final String READY_LINE = "ADCLICK_FLINK_READY";
    public static final String JOB_ID_PREFIX = "ADCLICK_FLINK_JOB_ID ";

    private ClickAggregationJob() {}

    public static void main(String[] args) throws Exception {
        for (String a : args) {
            if (a.equals("--help") || a.equals("-h")) {
                System.out.print(JobConfig.usage());
                return;
            }
        }
        boolean inCluster = submittedToCluster();
        JobConfig cfg;
        try {
            cfg = JobConfig.parse(args, System.getenv());
        } catch (IllegalArgumentException e) {
            if (inCluster) throw new IllegalArgumentException("adclick-flink: " + e.getMessage(), e);
            System.err.println("adclick-flink: " + e.getMessage());
            System.err.print(JobConfig.usage());
            System.exit(2);
            return;
        }
        try {
            // Sized to the broker's maximum (issue #15, defect 6); a configured timeout above it fails here, clearly.
            long brokerMax = TransactionTimeouts.brokerMaxTimeoutMs(cfg.bootstrapServers, java.time.Duration.ofMinutes(2));
            cfg = cfg.withTransactionTimeoutMs(TransactionTimeouts.choose(cfg.transactionTimeoutMs, brokerMax));
            LOG.info("Kafka transaction timeout {} ms (broker maximum {} ms), transactional ids: {}", cfg.transactionTimeoutMs, brokerMax, cfg.transactionNaming);
        } catch (IllegalArgumentException | IllegalStateException e) {
            if (inCluster) throw new IllegalStateException("adclick-flink: " + e.getMessage(), e);
            System.err.println("adclick-flink: " + e.getMessage());
            System.exit(2);
            return;
        }
        LOG.info("starting with {}", cfg);

        StreamExecutionEnvironment env = createEnvironment(cfg.toFlinkConfiguration());
        buildJob(env, cfg);
        if (!(env instanceof LocalStreamEnvironment)) {
            // Inside a JobManager (web submission) or a Flink client: submit and return, nothing more.
            JobClient client = env.executeAsync(cfg.jobName);
            System.out.println(JOB_ID_PREFIX + client.getJobID());
            System.out.flush();
            LOG.info("job {} submitted to the cluster", client.getJobID());
            return;
        }
        if (env instanceof LocalStreamEnvironment && cfg.webUiPort > 0) {
            LocalTaskManagerWatchdog.start(cfg.webUiBindAddress, cfg.webUiPort, 5_000, 15_000, () -> Runtime.getRuntime().halt(1));
        }

        JobClient client = env.executeAsync(cfg.jobName);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                JobStatus s = client.getJobStatus().get(2, TimeUnit.SECONDS);
                if (!s.isGloballyTerminalState()) {
                    LOG.info("shutdown requested, cancelling job {} (checkpoints are retained)", client.getJobID());
                    client.cancel().get(15, TimeUnit.SECONDS);
                }
            } catch (Exception e) {
                LOG.warn("cancel on shutdown failed: {}", e.toString());
            }
        }, "adclick-shutdown"));

        int exit = awaitRunningThenEnd(client);
        System.exit(exit);
    }

    /**
     * True when a Flink client or a JobManager runs this main (a context environment is installed, e.g. by
     * /jars/:id/run): then the job goes to that cluster, and this JVM is not ours to exit.
     */
    static boolean submittedToCluster() {
        return !(StreamExecutionEnvironment.getExecutionEnvironment() instanceof LocalStreamEnvironment);
    }

    /** In-process MiniCluster with web UI unless we are running inside a Flink client/cluster. */
    static StreamExecutionEnvironment createEnvironment(Configuration conf) {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        if (env instanceof LocalStreamEnvironment) {
            env = StreamExecutionEnvironment.createLocalEnvironmentWithWebUI(conf);
        }
        return env;
    }

    /** Kafka source -> core topology -> five exactly-once Kafka sinks. */
    static void buildJob(StreamExecutionEnvironment env, JobConfig cfg) {
        KafkaSource<IngestRecord> source = KafkaSource.<IngestRecord>builder()
                .setBootstrapServers(cfg.bootstrapServers)
                .setTopics(cfg.topicClicks)
                .setGroupId(cfg.groupId)
                .setStartingOffsets(OffsetsInitializer.committedOffsets(OffsetResetStrategy.EARLIEST))
                .setDeserializer(new ClickDeserializationSchema())
                .setProperty("partition.discovery.interval.ms", "30000")
                .setProperty("commit.offsets.on.checkpoint", "true")
                .setProperty("client.id.prefix", cfg.groupId)
                // Kafka's own client metrics are not registered with Flink (also on the sinks): nothing here
                // reads them, and each metrics request through the REST API (the serving process polls it)
                // dumped hundreds of them from the TaskManager: about 5 % of the job's CPU at 5,000
                // clicks/s in a JFR profile (issue #17). Flink's own operator metrics stay.
                .setProperty("register.consumer.metrics", "false")
                .build();

        DataStream<IngestRecord> ingest = env
                .fromSource(source, ClickWatermarks.strategy(cfg.outOfOrdernessMs, cfg.idlenessMs), "kafka-source-clicks")
                .uid("kafka-source-clicks");

        PipelineTopology.Outputs out = PipelineTopology.build(ingest, cfg);

        out.aggregates.sinkTo(kafkaSink(cfg, "aggregates", cfg.topicAggregates, new Serializers.WindowAggregateSerializer(cfg.topicAggregates)))
                .name("sink-click-aggregates").uid("sink-click-aggregates");
        out.watermarks.sinkTo(kafkaSink(cfg, "watermarks", cfg.topicWatermarks, new Serializers.WatermarkProgressSerializer(cfg.topicWatermarks)))
                .name("sink-click-watermarks").uid("sink-click-watermarks");
        out.lateClicks.sinkTo(kafkaSink(cfg, "late", cfg.topicLate, new Serializers.LateClickSerializer(cfg.topicLate)))
                .name("sink-clicks-late").uid("sink-clicks-late");
        out.deadLetters.sinkTo(kafkaSink(cfg, "dlq", cfg.topicDlq, new Serializers.DeadLetterSerializer(cfg.topicDlq)))
                .name("sink-clicks-dlq").uid("sink-clicks-dlq");
        out.deduped.sinkTo(kafkaSink(cfg, "deduped", cfg.topicDeduped, new Serializers.DedupedClickSerializer(cfg.topicDeduped)))
                .name("sink-clicks-deduped").uid("sink-clicks-deduped");
        out.audit.sinkTo(kafkaSink(cfg, "audit", cfg.topicAudit, new WindowAuditSerializer(cfg.topicAudit)))
                .name("sink-click-audit").uid("sink-click-audit");
    }

    static <T> KafkaSink<T> kafkaSink(JobConfig cfg, String role, String topic, KafkaRecordSerializationSchema<T> serializer) {
        if (cfg.transactionTimeoutMs <= 0) throw new IllegalStateException("transaction timeout not resolved against the broker");
        return KafkaSink.<T>builder()
                .setBootstrapServers(cfg.bootstrapServers)
                .setRecordSerializer(new TopicDeclaringSerializer<>(serializer, topic))
                .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
                .setTransactionalIdPrefix(cfg.transactionalIdPrefix + "-" + role)
                .setTransactionNamingStrategy("incrementing".equals(cfg.transactionNaming)
                        ? TransactionNamingStrategy.INCREMENTING : TransactionNamingStrategy.POOLING)
                .setProperty("transaction.timeout.ms", Long.toString(cfg.transactionTimeoutMs))
                .setProperty("acks", "all")
                // A record waits up to 10 min for its send (Kafka's default: 2 min). A frozen JVM (a long GC
                // pause, a stopped container) otherwise expires its batches on resume, which fails the task
                // and, in the local form, the only TaskManager (see LocalTaskManagerWatchdog). Checkpoints
                // still fail after --checkpoint-timeout-ms when the broker is really gone.
                .setProperty("delivery.timeout.ms", "600000")
                .setProperty("register.producer.metrics", "false")
                .build();
    }

    private static int awaitRunningThenEnd(JobClient client) throws InterruptedException {
        System.out.println(JOB_ID_PREFIX + client.getJobID());
        System.out.flush();
        try {
            while (true) {
                JobStatus s = client.getJobStatus().get(30, TimeUnit.SECONDS);
                if (s == JobStatus.RUNNING) {
                    System.out.println(READY_LINE);
                    System.out.flush();
                    LOG.info("job {} is RUNNING", client.getJobID());
                    break;
                }
                if (s.isGloballyTerminalState()) {
                    LOG.error("job {} ended before running: {}", client.getJobID(), s);
                    break;
                }
                Thread.sleep(200);
            }
            client.getJobExecutionResult().get();
            LOG.info("job {} finished", client.getJobID());
            return 0;
        } catch (Exception e) {
            LOG.error("job {} failed", client.getJobID(), e);
            return 1;
        }
    }
}

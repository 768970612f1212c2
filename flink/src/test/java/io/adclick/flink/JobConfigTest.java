package io.adclick.flink;

import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ExternalizedCheckpointRetention;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.configuration.StateRecoveryOptions;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class JobConfigTest {
    @Test
    void defaults() {
        JobConfig c = JobConfig.defaults();
        assertEquals("127.0.0.1:9092", c.bootstrapServers);
        assertEquals("adclick-flink", c.groupId);
        assertEquals(5_000, c.checkpointIntervalMs);
        assertEquals(5_000, c.outOfOrdernessMs);
        assertEquals(0, c.idlenessMs, "never idle by default: gateway ticks move quiet partitions");
        assertEquals(120_000, c.allowedLatenessMs);
        assertEquals(2_000, c.earlyFireIntervalMs);
        assertEquals(Duration.ofHours(26).toMillis(), c.dedupTtlMs);
        assertEquals(0, c.transactionTimeoutMs, "0: the broker's transaction.max.timeout.ms, read at start");
        assertEquals("pooling", c.transactionNaming);
        assertEquals(86_400_000, c.withTransactionTimeoutMs(86_400_000).transactionTimeoutMs);
        assertEquals(c.checkpointIntervalMs, c.withTransactionTimeoutMs(86_400_000).checkpointIntervalMs, "the rest unchanged");
        assertEquals("adclick-agg", c.transactionalIdPrefix);
        assertEquals(2, c.parallelism);
        assertEquals(1_000, c.watermarkEmitIntervalMs);
        assertEquals(8082, c.webUiPort);
        assertNull(c.restoreFrom);
        assertTrue(c.checkpointDir.startsWith("file:/"));
    }

    @Test
    void cliBeatsEnvBeatsDefault() {
        JobConfig c = JobConfig.parse(
                new String[] {"--group-id", "g-cli", "--checkpoint-dir", "/tmp/x/cp", "--restore-from", "file:///tmp/x/cp/j/chk-3"},
                Map.of("ADCLICK_GROUP_ID", "g-env", "ADCLICK_BOOTSTRAP_SERVERS", "h:1", "ADCLICK_PARALLELISM", "4"));
        assertEquals("g-cli", c.groupId);
        assertEquals("h:1", c.bootstrapServers);
        assertEquals(4, c.parallelism);
        assertEquals("file:///tmp/x/cp", c.checkpointDir);

        Configuration f = c.toFlinkConfiguration();
        assertEquals("file:///tmp/x/cp/j/chk-3", f.get(StateRecoveryOptions.SAVEPOINT_PATH));
        assertEquals("execution.state-recovery.path", StateRecoveryOptions.SAVEPOINT_PATH.key());
        assertEquals(ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION,
                f.get(CheckpointingOptions.EXTERNALIZED_CHECKPOINT_RETENTION));
        assertEquals("execution.checkpointing.externalized-checkpoint-retention",
                CheckpointingOptions.EXTERNALIZED_CHECKPOINT_RETENTION.key());
        assertEquals("rocksdb", f.get(StateBackendOptions.STATE_BACKEND));
        assertTrue(f.get(org.apache.flink.state.rocksdb.RocksDBConfigurableOptions.USE_BLOOM_FILTER), "dedup lookups of new keys are misses");
        assertEquals(org.apache.flink.configuration.MemorySize.ofMebiBytes(1024), f.get(org.apache.flink.configuration.TaskManagerOptions.MANAGED_MEMORY_SIZE));
        assertTrue(f.get(CheckpointingOptions.INCREMENTAL_CHECKPOINTS));
        assertTrue(f.get(CheckpointingOptions.ENABLE_UNALIGNED), "back-pressure cannot time out checkpoints");
        assertEquals(Duration.ofSeconds(1), f.get(CheckpointingOptions.ALIGNED_CHECKPOINT_TIMEOUT));
        assertTrue(f.get(org.apache.flink.configuration.TaskManagerOptions.BUFFER_DEBLOAT_ENABLED));
        assertTrue(f.get(org.apache.flink.configuration.PipelineOptions.OBJECT_REUSE), "chained operators share records (the ITCases run so)");
        assertEquals("file:///tmp/x/cp", f.get(CheckpointingOptions.CHECKPOINTS_DIRECTORY));
        assertEquals(8082, f.get(RestOptions.PORT));
        assertFalse(JobConfig.defaults().toFlinkConfiguration().contains(StateRecoveryOptions.SAVEPOINT_PATH));
    }

    @Test
    void rejectsTyposAndBadValues() {
        assertThrows(IllegalArgumentException.class, () -> JobConfig.parse(new String[] {"--paralelism", "2"}, Map.of()));
        assertThrows(IllegalArgumentException.class, () -> JobConfig.parse(new String[] {"--parallelism", "two"}, Map.of()));
        assertThrows(IllegalArgumentException.class, () -> JobConfig.parse(new String[] {"--parallelism", "0"}, Map.of()));
        assertThrows(IllegalArgumentException.class,
                () -> JobConfig.parse(new String[] {"--transaction-timeout-ms", "10000"}, Map.of()));
    }
}

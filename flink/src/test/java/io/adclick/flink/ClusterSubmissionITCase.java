package io.adclick.flink;

import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.security.Permission;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * main run the way a JobManager runs it for /jars/:id/run: with a cluster's context environment
 * installed (MiniClusterExtension installs one for each test). It must never System.exit: in a
 * JobManager that ends the JobManager and every job on it (issue 18). Exits are turned into a
 * SecurityException here, so a call fails the test instead of the test JVM.
 */
@SuppressWarnings({"removal", "deprecation"})
class ClusterSubmissionITCase {

    @RegisterExtension
    static final MiniClusterExtension MINI_CLUSTER = new MiniClusterExtension(
            new MiniClusterResourceConfiguration.Builder().setNumberTaskManagers(1).setNumberSlotsPerTaskManager(1).build());

    static final class ExitCalled extends SecurityException {
        ExitCalled(int status) { super("System.exit(" + status + ") called"); }
    }

    private SecurityManager previous;

    @BeforeEach
    void forbidExit() {
        previous = System.getSecurityManager();
        System.setSecurityManager(new SecurityManager() {
            @Override public void checkExit(int status) { throw new ExitCalled(status); }
            @Override public void checkPermission(Permission perm) { }
            @Override public void checkPermission(Permission perm, Object context) { }
        });
    }

    @AfterEach
    void allowExit() {
        System.setSecurityManager(previous);
    }

    @Test
    void aClusterContextIsRecognised() {
        assertTrue(ClickAggregationJob.submittedToCluster());
    }

    @Test
    void badArgumentsUnderAClusterAreThrownNotExited() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ClickAggregationJob.main(new String[] {"--no-such-flag", "1"}));
        assertTrue(e.getMessage().contains("no-such-flag"), e.getMessage());
    }
}

package io.adclick.flink;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue #15, defect 6: the sinks' transaction timeout is the broker's maximum unless configured lower. */
class TransactionTimeoutsTest {
    @Test
    void unsetMeansTheBrokersMaximum() {
        assertEquals(86_400_000, TransactionTimeouts.choose(0, 86_400_000));
    }

    @Test
    void aConfiguredTimeoutAboveTheBrokersMaximumIsRefusedClearly() {
        var e = assertThrows(IllegalArgumentException.class, () -> TransactionTimeouts.choose(90_000_000, 86_400_000));
        assertTrue(e.getMessage().contains("transaction.max.timeout.ms"), e.getMessage());
    }

    @Test
    void aLowerOneIsKeptWithAWarning() {
        assertEquals(900_000, TransactionTimeouts.choose(900_000, 86_400_000));
    }

    @Test
    void anUnknownBrokerMaximumIsAnError() {
        assertThrows(IllegalArgumentException.class, () -> TransactionTimeouts.choose(0, 0));
    }

    @Test
    void namingIsPoolingOrIncrementing() {
        assertEquals("incrementing", JobConfig.parse(new String[] {"--transaction-naming", "INCREMENTING"}, java.util.Map.of()).transactionNaming);
        assertThrows(IllegalArgumentException.class, () -> JobConfig.parse(new String[] {"--transaction-naming", "random"}, java.util.Map.of()));
    }
}

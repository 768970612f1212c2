package io.adclick.flink.tools;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.TransactionListing;

import java.util.Collection;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * How many transactional ids the brokers keep, in all and under one prefix, by state — one JSON line.
 * The job's sinks reuse a bounded pool of ids (issue #15, defect 7); with one id per checkpoint the
 * brokers would keep ~200k a day. {@code adclick status} and the tests read this.
 *
 * <pre>java -cp adclick-flink.jar io.adclick.flink.tools.TransactionCount BOOTSTRAP [PREFIX]</pre>
 */
public final class TransactionCount {
    private TransactionCount() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || args.length > 2) {
            System.err.println("usage: TransactionCount BOOTSTRAP [PREFIX]");
            System.exit(2);
        }
        String prefix = args.length == 2 ? args[1] : "";
        try (Admin admin = Admin.create(Map.of(
                AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0],
                AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000,
                AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000))) {
            Collection<TransactionListing> all = admin.listTransactions().all().get(30, TimeUnit.SECONDS);
            Map<String, Integer> states = new TreeMap<>();
            int matching = 0;
            for (TransactionListing t : all) {
                if (!t.transactionalId().startsWith(prefix)) continue;
                matching++;
                states.merge(t.state().toString(), 1, Integer::sum);
            }
            StringBuilder sb = new StringBuilder();
            sb.append("{\"total\":").append(all.size()).append(",\"withPrefix\":").append(matching).append(",\"states\":{");
            boolean first = true;
            for (var e : states.entrySet()) {
                if (!first) sb.append(',');
                first = false;
                sb.append('"').append(e.getKey()).append("\":").append(e.getValue());
            }
            System.out.println(sb.append("}}"));
        }
    }
}

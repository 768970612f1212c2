package io.adclick.flink;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.regex.Pattern;

/**
 * The local form runs the job in a MiniCluster with one TaskManager, which Flink does not replace when
 * it fails. After a long freeze of the JVM (found by the chaos suite's 5-minute flink-pause: the sinks'
 * producers expire their batches, a writer's close throws and the MiniCluster fails its TaskManager)
 * the job then restarts into "no slots" until its restart attempts run out, about 3 minutes. This
 * watchdog asks the job's own REST API for its TaskManagers and ends the process when there has been
 * none for {@code graceMs}: the launcher restarts it from the latest retained checkpoint (exactly-once,
 * as after any crash) within seconds instead.
 */
final class LocalTaskManagerWatchdog {
    private static final Logger LOG = LoggerFactory.getLogger(LocalTaskManagerWatchdog.class);
    private static final Pattern TM_ID = Pattern.compile("\"id\"\\s*:");

    private LocalTaskManagerWatchdog() {}

    /** Polls until {@code onLost} runs (main passes a halt of the process); returns the daemon thread. */
    static Thread start(String host, int port, long pollMs, long graceMs, Runnable onLost) {
        String h = host == null || host.isBlank() || host.equals("0.0.0.0") || host.equals("::") ? "127.0.0.1" : host;
        URI uri = URI.create("http://" + (h.contains(":") ? "[" + h + "]" : h) + ":" + port + "/taskmanagers");
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        Thread t = new Thread(() -> {
            long noneSince = -1;
            while (true) {
                try {
                    Thread.sleep(pollMs);
                } catch (InterruptedException e) {
                    return;
                }
                int count;
                try {
                    HttpResponse<String> r = http.send(HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(10)).GET().build(),
                            HttpResponse.BodyHandlers.ofString());
                    if (r.statusCode() != 200) continue;
                    count = (int) TM_ID.matcher(r.body()).results().count();
                } catch (Exception e) {
                    continue; // the REST API not answering is not evidence of a lost TaskManager
                }
                long now = System.nanoTime();
                if (count > 0) {
                    noneSince = -1;
                } else if (noneSince < 0) {
                    noneSince = now;
                    LOG.warn("the local cluster has no TaskManager; exiting in {} ms unless one registers", graceMs);
                } else if (now - noneSince >= graceMs * 1_000_000L) {
                    LOG.error("the local cluster lost its only TaskManager and Flink does not replace it: exiting, so that the"
                            + " launcher restarts the job from its latest retained checkpoint");
                    onLost.run();
                    return;
                }
            }
        }, "adclick-taskmanager-watchdog");
        t.setDaemon(true);
        t.start();
        return t;
    }
}

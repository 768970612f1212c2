package io.adclick.flink;

import com.sun.net.httpserver.HttpServer;
import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The local form's watchdog against a stand-in for the job's REST API (the real one answers the same shape). */
class LocalTaskManagerWatchdogTest {
    private static final String ONE_TM = "{\"taskmanagers\":[{\"id\":\"127.0.0.1:0-abc\",\"path\":\"pekko://flink/user/rpc/taskmanager_0\",\"slotsNumber\":2}]}";
    private static final String NO_TM = "{\"taskmanagers\":[]}";

    private static HttpServer serve(AtomicReference<String> body) throws Exception {
        HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        s.createContext("/taskmanagers", ex -> {
            byte[] b = body.get().getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, b.length);
            ex.getResponseBody().write(b);
            ex.close();
        });
        s.start();
        return s;
    }

    @Test
    void endsTheProcessOnlyAfterTheTaskManagerHasBeenGoneForTheGracePeriod() throws Exception {
        AtomicReference<String> body = new AtomicReference<>(ONE_TM);
        HttpServer s = serve(body);
        try {
            CountDownLatch lost = new CountDownLatch(1);
            Thread t = LocalTaskManagerWatchdog.start("127.0.0.1", s.getAddress().getPort(), 20, 300, lost::countDown);
            assertFalse(lost.await(500, TimeUnit.MILLISECONDS), "a registered TaskManager: nothing happens");
            body.set(NO_TM);
            Thread.sleep(150);
            body.set(ONE_TM); // gone for less than the grace period, then back (a re-registration)
            assertFalse(lost.await(600, TimeUnit.MILLISECONDS), "back within the grace period: nothing happens");
            body.set(NO_TM);
            assertTrue(lost.await(3, TimeUnit.SECONDS), "gone for good: the process is ended");
            t.join(2000);
            assertFalse(t.isAlive());
        } finally {
            s.stop(0);
        }
    }

    @Test
    void aRestApiThatDoesNotAnswerIsNoEvidence() throws Exception {
        CountDownLatch lost = new CountDownLatch(1);
        Thread t = LocalTaskManagerWatchdog.start("127.0.0.1", 1, 20, 100, lost::countDown);
        assertFalse(lost.await(800, TimeUnit.MILLISECONDS));
        t.interrupt();
    }
}

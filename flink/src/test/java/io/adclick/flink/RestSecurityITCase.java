package io.adclick.flink;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.jar.JarOutputStream;
import java.util.zip.ZipEntry;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The job's REST endpoint on a real MiniCluster with the job's own configuration: nobody who
 * reaches it can upload and run a jar (code execution in a JVM that holds the job's Kafka access),
 * and it listens on loopback unless told otherwise.
 */
class RestSecurityITCase {

    @Test
    void jarUploadIsRefusedAndRestListensOnLoopback() throws Exception {
        Configuration conf = JobConfig.parse(new String[] {"--web-ui-port", "0"}, java.util.Map.of()).toFlinkConfiguration();
        MiniClusterConfiguration mcc = new MiniClusterConfiguration.Builder()
                .setConfiguration(conf).setNumTaskManagers(1).setNumSlotsPerTaskManager(1).build();
        try (MiniCluster cluster = new MiniCluster(mcc)) {
            cluster.start();
            URI rest = cluster.getRestAddress().get();
            assertEquals("127.0.0.1", rest.getHost());

            HttpClient http = HttpClient.newHttpClient();
            HttpResponse<String> overview = http.send(HttpRequest.newBuilder(rest.resolve("/jobs/overview")).GET().build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, overview.statusCode(), "the REST API itself is up");

            String boundary = "adclick" + System.nanoTime();
            ByteArrayOutputStream body = new ByteArrayOutputStream();
            body.write(("--" + boundary + "\r\nContent-Disposition: form-data; name=\"jarfile\"; filename=\"evil.jar\"\r\n"
                    + "Content-Type: application/x-java-archive\r\n\r\n").getBytes(StandardCharsets.UTF_8));
            body.write(tinyJar());
            body.write(("\r\n--" + boundary + "--\r\n").getBytes(StandardCharsets.UTF_8));
            HttpResponse<String> upload = http.send(HttpRequest.newBuilder(rest.resolve("/jars/upload"))
                    .header("Content-Type", "multipart/form-data; boundary=" + boundary)
                    .POST(HttpRequest.BodyPublishers.ofByteArray(body.toByteArray())).build(),
                    HttpResponse.BodyHandlers.ofString());
            // Without the handler the static-file fallback answers 400 "POST request not allowed".
            assertTrue(upload.statusCode() >= 400 && !upload.body().contains("success"), "POST /jars/upload must be refused: " + upload.statusCode() + " " + upload.body());
            HttpResponse<String> jars = http.send(HttpRequest.newBuilder(rest.resolve("/jars")).GET().build(),
                    HttpResponse.BodyHandlers.ofString());
            assertTrue(jars.statusCode() >= 400, "GET /jars must not exist: " + jars.statusCode() + " " + jars.body());
            HttpResponse<String> config = http.send(HttpRequest.newBuilder(rest.resolve("/config")).GET().build(),
                    HttpResponse.BodyHandlers.ofString());
            assertTrue(config.body().contains("\"web-submit\":false"), config.body());
        }
    }

    private static byte[] tinyJar() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (JarOutputStream jar = new JarOutputStream(out)) {
            jar.putNextEntry(new ZipEntry("hello.txt"));
            jar.write("hi".getBytes(StandardCharsets.UTF_8));
            jar.closeEntry();
        }
        return out.toByteArray();
    }
}

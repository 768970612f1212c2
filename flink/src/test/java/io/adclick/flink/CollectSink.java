package io.adclick.flink;

import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** Test sink collecting into a static map by name (MiniCluster tests: same JVM). */
final class CollectSink<T> implements Sink<T> {
    private static final long serialVersionUID = 1L;
    static final Map<String, List<Object>> RESULTS = new ConcurrentHashMap<>();
    private final String name;

    CollectSink(String name) {
        this.name = name;
    }

    @Override
    public SinkWriter<T> createWriter(WriterInitContext context) {
        List<Object> list = RESULTS.computeIfAbsent(name, k -> Collections.synchronizedList(new ArrayList<>()));
        return new SinkWriter<>() {
            @Override
            public void write(T element, Context ctx) {
                list.add(element);
            }

            @Override
            public void flush(boolean endOfInput) {}

            @Override
            public void close() {}
        };
    }
}

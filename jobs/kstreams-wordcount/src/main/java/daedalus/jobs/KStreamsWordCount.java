package daedalus.jobs;

import java.time.Duration;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * Word count with Kafka Streams, scaled by the number of application instances: input topic
 * (lines) -> split into words -> count per word in a state store (burning {@code --cost-us}
 * of CPU per record, so a test can saturate an instance at a known rate) -> output topic
 * ("word count"). Exactly-once (v2), one stream thread per instance by default.
 *
 * <p>Usage: {@code java -javaagent:jmx_prometheus_javaagent.jar=127.0.0.1:9400:jmx-exporter.yaml
 * -jar kstreams-wordcount.jar --bootstrap 127.0.0.1:9092 --input words --output counts
 * --app-id daedalus-kstreams --cost-us 1500 --threads 1 --state-dir /tmp/ks-0}
 *
 * <p>With {@code --instance-id ID} the instance is a static member of the group
 * ({@code group.instance.id}): a restarted instance takes its place back without a rebalance,
 * and on SIGTERM it closes the streams client (which commits) and leaves the group at once, so
 * a scale-down does not wait out the session timeout before the remaining instances take its
 * partitions. Without it the instance is a dynamic member and Kafka Streams does not leave the
 * group on close (its default, which keeps a member through a restart).
 */
public final class KStreamsWordCount {
    private KStreamsWordCount() {}

    static Map<String, String> args(String[] argv) {
        Map<String, String> a = new HashMap<>();
        a.put("bootstrap", "127.0.0.1:9092");
        a.put("input", "words");
        a.put("output", "counts");
        a.put("app-id", "daedalus-kstreams");
        a.put("cost-us", "20");
        a.put("threads", "1");
        a.put("state-dir", System.getProperty("java.io.tmpdir") + "/kstreams-wordcount");
        a.put("commit-ms", "1000");
        for (int i = 0; i + 1 < argv.length; i += 2) {
            if (!argv[i].startsWith("--")) {
                throw new IllegalArgumentException("expected --key value, got " + argv[i]);
            }
            a.put(argv[i].substring(2), argv[i + 1]);
        }
        return a;
    }

    static void burn(long nanos) {
        if (nanos <= 0) return;
        long end = System.nanoTime() + nanos;
        while (System.nanoTime() < end) {
            Thread.onSpinWait();
        }
    }

    public static void main(String[] argv) throws InterruptedException {
        Map<String, String> a = args(argv);
        long costNanos = Long.parseLong(a.get("cost-us")) * 1_000L;
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, a.get("app-id"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(a.get("threads")));
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Integer.parseInt(a.get("commit-ms")));
        p.put(StreamsConfig.STATE_DIR_CONFIG, a.get("state-dir"));
        if (a.containsKey("instance-id")) {
            // The main consumer's only (the restore consumer has no group); Kafka Streams
            // suffixes it per stream thread.
            p.put(StreamsConfig.mainConsumerPrefix(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG),
                    a.get("instance-id"));
        }
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        // Every instance counts as caught up, so a new instance gets its active tasks in the
        // rebalance it joins (and restores them from the changelog), instead of warming up
        // standbys until a probing rebalance minutes later: an autoscaler must see a scale-up
        // take effect.
        p.put(StreamsConfig.ACCEPTABLE_RECOVERY_LAG_CONFIG, Long.MAX_VALUE);
        // Rebalances after scaling should be quick on a local broker.
        p.put(StreamsConfig.consumerPrefix("session.timeout.ms"), 10_000);
        p.put(StreamsConfig.consumerPrefix("heartbeat.interval.ms"), 1_000);
        p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");

        StreamsBuilder b = new StreamsBuilder();
        b.stream(a.get("input"), Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> java.util.Arrays.asList(
                        line.toLowerCase(Locale.ROOT).split("\\W+")))
                .filter((k, w) -> !w.isEmpty())
                .peek((k, w) -> burn(costNanos))
                .groupBy((k, w) -> w, Grouped.with(Serdes.String(), Serdes.String()))
                .count(Materialized.as("word-counts"))
                .toStream()
                .mapValues((w, c) -> w + " " + c)
                .to(a.get("output"), Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(b.build(), p);
        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            // Leaving takes a static member out of the group (Kafka Streams 4.1 removes static
            // members only; a dynamic one stays until its session times out).
            streams.close(new KafkaStreams.CloseOptions()
                    .timeout(Duration.ofSeconds(20))
                    .leaveGroup(a.containsKey("instance-id")));
            done.countDown();
        }, "shutdown"));
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("stream thread failed: " + e);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                    .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setStateListener((now, before) -> System.out.println("STATE " + before + " -> " + now));
        streams.start();
        done.await();
    }
}

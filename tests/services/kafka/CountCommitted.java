// Prints the exact number of committed records in a Kafka topic, for tests/services/kafka.sh count.
// read_committed: aborted records, open transactions and transaction markers are not counted.
// Takes a snapshot of each partition's last stable offset (LSO) and counts the records below it,
// so it terminates deterministically. Run with the single-file launcher:
//   java -cp '<state>/kafka/libs/*' CountCommitted.java BOOTSTRAP TOPIC [TIMEOUT_MS]
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class CountCommitted {
    public static void main(String[] args) {
        String bootstrap = args[0], topic = args[1];
        long timeoutMs = args.length > 2 ? Long.parseLong(args[2]) : 60_000;
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("isolation.level", "read_committed");
        p.put("enable.auto.commit", "false");
        p.put("allow.auto.create.topics", "false");
        p.put("max.poll.records", "5000");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<PartitionInfo> infos = c.partitionsFor(topic, Duration.ofSeconds(30));
            if (infos == null || infos.isEmpty()) {
                System.err.println("topic not found: " + topic);
                System.exit(2);
            }
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : infos) tps.add(new TopicPartition(topic, pi.partition()));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps); // = LSO under read_committed
            long count = 0, deadline = System.currentTimeMillis() + timeoutMs;
            while (!tps.stream().allMatch(tp -> c.position(tp) >= end.get(tp))) {
                if (System.currentTimeMillis() > deadline) {
                    System.err.println("timed out after " + timeoutMs + " ms; counted " + count + " so far");
                    System.exit(3);
                }
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                    if (r.offset() < end.get(new TopicPartition(r.topic(), r.partition()))) count++;
                }
            }
            System.out.println(count);
        }
    }
}

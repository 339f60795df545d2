package daedalus.jobs;

import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.serialization.SimpleStringSchema;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.OffsetResetStrategy;

/**
 * Streaming word count used by daedalus' integration tests: Kafka topic of text lines -> words ->
 * per-word count kept in keyed state (burning {@code --cost-us} of CPU per record) -> "word count"
 * lines written exactly-once to another Kafka topic. Each input word yields exactly one output record.
 *
 * <p>Job graph (3 vertices, each rescalable on its own): "Source: source -> split" (chained),
 * "count" (after keyBy), "sink: Writer -> sink: Committer".
 *
 * <p>Args (all optional): --bootstrap 127.0.0.1:9092 --input words --output counts
 * --group daedalus-wordcount --cost-us 20 --tx-timeout-ms 300000 --tx-prefix daedalus-wordcount
 * --name daedalus-wordcount (the Flink job name)
 */
public final class WordCount {

    public static void main(String[] args) throws Exception {
        Map<String, String> a = new LinkedHashMap<>();
        a.put("bootstrap", "127.0.0.1:9092");
        a.put("input", "words");
        a.put("output", "counts");
        a.put("group", "daedalus-wordcount");
        a.put("cost-us", "20");
        a.put("tx-timeout-ms", "300000"); // must stay below the broker's transaction.max.timeout.ms (15 min)
        a.put("tx-prefix", "daedalus-wordcount");
        a.put("name", "daedalus-wordcount");
        for (int i = 0; i < args.length; i += 2) {
            String key = args[i].replaceFirst("^--", "");
            if (!a.containsKey(key) || i + 1 >= args.length) {
                throw new IllegalArgumentException("bad argument " + args[i] + "; known: " + a.keySet());
            }
            a.put(key, args[i + 1]);
        }

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.enableCheckpointing(2000, CheckpointingMode.EXACTLY_ONCE);
        env.setMaxParallelism(128);

        KafkaSource<String> source = KafkaSource.<String>builder()
                .setBootstrapServers(a.get("bootstrap"))
                .setTopics(a.get("input"))
                .setGroupId(a.get("group"))
                .setStartingOffsets(OffsetsInitializer.committedOffsets(OffsetResetStrategy.EARLIEST))
                .setValueOnlyDeserializer(new SimpleStringSchema())
                .setProperty("partition.discovery.interval.ms", "10000")
                .build();

        KafkaSink<String> sink = KafkaSink.<String>builder()
                .setBootstrapServers(a.get("bootstrap"))
                .setRecordSerializer(KafkaRecordSerializationSchema.builder()
                        .setTopic(a.get("output"))
                        .setValueSerializationSchema(new SimpleStringSchema())
                        .build())
                .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
                .setTransactionalIdPrefix(a.get("tx-prefix"))
                .setProperty("transaction.timeout.ms", a.get("tx-timeout-ms"))
                .build();

        env.fromSource(source, WatermarkStrategy.noWatermarks(), "source").uid("source")
                .flatMap(new Split()).name("split").uid("split")
                .keyBy(word -> word)
                .process(new CountWords(Long.parseLong(a.get("cost-us")))).name("count").uid("count")
                .disableChaining() // keep "count" and "sink" as separate vertices
                .sinkTo(sink).name("sink").uid("sink");

        env.execute(a.get("name"));
    }

    /** Splits a line on whitespace. */
    static final class Split implements FlatMapFunction<String, String> {
        @Override
        public void flatMap(String line, Collector<String> out) {
            for (String w : line.trim().split("\\s+")) {
                if (!w.isEmpty()) out.collect(w);
            }
        }
    }

    /** Per-word running count in ValueState; burns costUs microseconds of CPU per record. */
    static final class CountWords extends KeyedProcessFunction<String, String, String> {
        private final long costNanos;
        private transient ValueState<Long> count;
        private transient long sinkhole; // keeps the busy loop from being optimised away

        CountWords(long costUs) {
            this.costNanos = costUs * 1_000L;
        }

        @Override
        public void open(OpenContext ctx) {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
        }

        @Override
        public void processElement(String word, Context ctx, Collector<String> out) throws Exception {
            burnCpu(word.hashCode());
            Long c = count.value();
            long n = c == null ? 1 : c + 1;
            count.update(n);
            out.collect(word + " " + n);
        }

        private void burnCpu(long seed) {
            if (costNanos <= 0) return;
            long end = System.nanoTime() + costNanos;
            long h = seed;
            do {
                for (int i = 0; i < 64; i++) h = (h ^ (h >>> 31)) * 0x9E3779B97F4A7C15L + i;
            } while (System.nanoTime() < end);
            sinkhole += h;
        }
    }
}

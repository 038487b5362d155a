package sluice;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueBytesStoreSupplier;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.core.appender.ConsoleAppender;
import org.apache.logging.log4j.core.config.Configurator;
import org.apache.logging.log4j.core.config.builder.api.AppenderComponentBuilder;
import org.apache.logging.log4j.core.config.builder.api.ConfigurationBuilder;
import org.apache.logging.log4j.core.config.builder.api.ConfigurationBuilderFactory;
import org.apache.logging.log4j.core.config.builder.impl.BuiltConfiguration;

/**
 * A Kafka Streams word count with exactly-once processing (exactly_once_v2), for checking a
 * broker's transactions, compacted changelog topics and the group/offset APIs Streams uses.
 * tests/python/test_streams_eos.py drives it; it also runs by hand against any broker.
 *
 * <pre>
 * produce BOOTSTRAP INPUT N
 *     Creates INPUT (3 partitions) if missing, writes N lines (line i = "w(i%7) w(i%11) w(i%13)",
 *     key i), and prints the exact expected final counts as one JSON line on stdout:
 *     {"lines":N,"counts":{"w0":...,...}}
 * run BOOTSTRAP INPUT OUTPUT APP_ID STATE_DIR [DELAY_MS]
 *     Creates OUTPUT (3 partitions) if missing and runs the word count until killed (or
 *     SIGTERM: a clean close). DELAY_MS (default 0) is a sleep per count update (3 per input
 *     line), so a test can kill the app mid-way. Prints on stdout, flushed, every 500 ms:
 *       progress processed=P updates=U input_committed=C input_end=E
 *                repartition_committed=R group_lag=L state=S
 *     (one line). P = input lines and U = count updates this process has handled (including
 *     ones in aborted transactions); C = the group's committed offsets on INPUT (summed),
 *     E = INPUT's end offsets (summed), R = its committed offsets on the repartition topic
 *     (summed: the count updates committed, plus one per transaction marker),
 *     L = the group's lag summed over every partition it has offsets for (INPUT and the
 *     repartition topic), against the last stable offsets. C == E and L == 0: all done.
 *     Also "state OLD->NEW" on each KafkaStreams state change and "error ..." on a fatal one
 *     (then exits 1). The count's store is in memory (env WORDCOUNT_STORE=rocksdb: RocksDB).
 * verify BOOTSTRAP OUTPUT EXPECTED_JSON_FILE [read_uncommitted]
 *     Reads OUTPUT read_committed from the beginning up to its end offsets and compares the last
 *     count per word with the expected one. Also checks that each word's committed updates are
 *     exactly 1, 2, ..., final (with caching off every update is emitted once: a repeated or
 *     skipped value means a duplicate or a lost update) and that no count ever exceeded the
 *     expected final count (double counting). Prints a JSON verdict; exit 0 = ok, 1 = mismatch.
 *     With read_uncommitted (diagnostics only) it reads aborted records too: its "records"
 *     minus "expected_records" is how many output records aborted transactions left.
 * </pre>
 *
 * Kafka's log output goes to stderr (level WARN; env WORDCOUNT_LOG_LEVEL changes it, a
 * -Dlog4j2.configurationFile replaces it), so stdout carries only the lines above.
 */
public final class WordCountEos {
    private static final int PARTITIONS = 3;
    private static final int[] MODULI = {7, 11, 13};
    private static final String STORE = "counts";

    private WordCountEos() {}

    public static void main(String[] args) throws Exception {
        configureLogging();
        if (args.length == 0) {
            usage();
        }
        switch (args[0]) {
            case "produce":
                if (args.length != 4) usage();
                System.exit(produce(args[1], args[2], Integer.parseInt(args[3])));
                break;
            case "run":
                if (args.length != 6 && args.length != 7) usage();
                System.exit(run(args[1], args[2], args[3], args[4], args[5],
                        args.length == 7 ? Long.parseLong(args[6]) : 0L));
                break;
            case "verify":
                if (args.length != 4 && !(args.length == 5 && args[4].equals("read_uncommitted"))) {
                    usage();
                }
                System.exit(verify(args[1], args[2], args[3],
                        args.length == 5 ? "read_uncommitted" : "read_committed"));
                break;
            default:
                usage();
        }
    }

    private static void usage() {
        System.err.println("usage: WordCountEos produce BOOTSTRAP INPUT N\n"
                + "       WordCountEos run BOOTSTRAP INPUT OUTPUT APP_ID STATE_DIR [DELAY_MS]\n"
                + "       WordCountEos verify BOOTSTRAP OUTPUT EXPECTED_JSON_FILE"
                + " [read_uncommitted]");
        System.exit(2);
    }

    /** Kafka logs at WARN to stderr unless a log4j2 configuration file is given. */
    private static void configureLogging() {
        if (System.getProperty("log4j2.configurationFile") != null) {
            return;
        }
        String level = System.getenv().getOrDefault("WORDCOUNT_LOG_LEVEL", "WARN");
        ConfigurationBuilder<BuiltConfiguration> b =
                ConfigurationBuilderFactory.newConfigurationBuilder();
        b.setStatusLevel(Level.ERROR);
        b.setConfigurationName("wordcount-eos");
        AppenderComponentBuilder err = b.newAppender("err", "Console")
                .addAttribute("target", ConsoleAppender.Target.SYSTEM_ERR);
        err.add(b.newLayout("PatternLayout").addAttribute("pattern", "[%d] %p %m (%c)%n"));
        b.add(err);
        b.add(b.newRootLogger(Level.toLevel(level, Level.WARN)).add(b.newAppenderRef("err")));
        Configurator.initialize(b.build());
    }

    // ---------------------------------------------------------------------------------------
    // produce
    // ---------------------------------------------------------------------------------------

    static String[] words(long i) {
        String[] w = new String[MODULI.length];
        for (int k = 0; k < MODULI.length; k++) {
            w[k] = "w" + (i % MODULI[k]);
        }
        return w;
    }

    static Map<String, Long> expectedCounts(int n) {
        Map<String, Long> counts = new TreeMap<>();
        for (long i = 0; i < n; i++) {
            for (String w : words(i)) {
                counts.merge(w, 1L, Long::sum);
            }
        }
        return counts;
    }

    private static Properties adminProps(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "wordcount-eos-admin");
        return p;
    }

    /** Creates the topic unless it exists, then waits until its partitions are described. */
    private static void ensureTopic(Admin admin, String topic, int partitions) throws Exception {
        try {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
                    .all().get(30, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            if (!(e.getCause() instanceof TopicExistsException)) {
                throw e;
            }
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            try {
                TopicDescription d = admin.describeTopics(List.of(topic))
                        .allTopicNames().get(15, TimeUnit.SECONDS).get(topic);
                if (d != null && !d.partitions().isEmpty()) {
                    return;
                }
            } catch (ExecutionException e) {
                if (System.nanoTime() > deadline) throw e;
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("topic " + topic + " has no partitions after 30 s");
            }
            Thread.sleep(200);
        }
    }

    static int produce(String bootstrap, String input, int n) throws Exception {
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            ensureTopic(admin, input, PARTITIONS);
        }
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "wordcount-eos-producer");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30000);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        AtomicReference<Exception> failure = new AtomicReference<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (int i = 0; i < n; i++) {
                String line = String.join(" ", words(i));
                producer.send(new ProducerRecord<>(input, Integer.toString(i), line), (md, e) -> {
                    if (e != null) failure.compareAndSet(null, e);
                });
            }
            producer.flush();
        }
        if (failure.get() != null) {
            System.err.println("produce failed: " + failure.get());
            return 1;
        }
        StringBuilder sb = new StringBuilder("{\"lines\":").append(n).append(",\"counts\":");
        appendCounts(sb, expectedCounts(n));
        System.out.println(sb.append('}'));
        System.out.flush();
        return 0;
    }

    private static void appendCounts(StringBuilder sb, Map<String, Long> counts) {
        sb.append('{');
        boolean first = true;
        for (Map.Entry<String, Long> e : counts.entrySet()) {
            if (!first) sb.append(',');
            first = false;
            sb.append('"').append(e.getKey()).append("\":").append(e.getValue());
        }
        sb.append('}');
    }

    // ---------------------------------------------------------------------------------------
    // run
    // ---------------------------------------------------------------------------------------

    static int run(String bootstrap, String input, String output, String appId, String stateDir,
                   long delayMs) throws Exception {
        PrintStream out = System.out;
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            ensureTopic(admin, output, PARTITIONS);
        }

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        // No record cache: every count update reaches the changelog and OUTPUT.
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0L);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        // DeleteRecords on the consumed part of the repartition topic every second (30 s by
        // default: longer than a test's run).
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 1000);
        // A killed member must leave the group soon, so the restarted app gets its tasks.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG), 30000);
        p.put(StreamsConfig.mainConsumerPrefix(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG), 100);
        // A transaction left open by a killed process (with a fresh state dir, so a new
        // transactional.id that does not fence it) is aborted by the coordinator after this.
        p.put(StreamsConfig.producerPrefix(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG), 10000);
        // Streams lingers 100 ms under EOS; 5 ms sends each update at once, so a killed
        // run leaves records of its open transaction in the topics (for the abort to hide).
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 5);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG), 60000);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.MAX_BLOCK_MS_CONFIG), 30000);

        AtomicLong processed = new AtomicLong();
        AtomicLong updates = new AtomicLong();
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .peek((k, v) -> processed.incrementAndGet())
                .flatMapValues(line -> Arrays.asList(line.split(" ")))
                .groupBy((k, word) -> word, Grouped.with(Serdes.String(), Serdes.String()))
                .count(materialized())
                .toStream()
                // The delay is here, after the count, so that most of the time goes to the
                // sub-topology that writes OUTPUT and the changelog: a kill then leaves output
                // and changelog records of the open transaction in the log.
                .peek((k, v) -> {
                    updates.incrementAndGet();
                    if (delayMs > 0) {
                        try {
                            Thread.sleep(delayMs);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                    }
                })
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));

        KafkaStreams streams = new KafkaStreams(builder.build(), p);
        AtomicReference<Throwable> fatal = new AtomicReference<>();
        // PrintStream.println is atomic; flushing at once lets a test react to each line.
        streams.setStateListener((now, before) -> {
            out.println("state " + before + "->" + now);
            out.flush();
        });
        streams.setUncaughtExceptionHandler(e -> {
            fatal.compareAndSet(null, e);
            out.println("error " + e.toString().replace('\n', ' '));
            out.flush();
            e.printStackTrace();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Thread closer = new Thread(() -> streams.close(Duration.ofSeconds(20)), "wordcount-close");
        Runtime.getRuntime().addShutdownHook(closer);
        streams.start();

        Set<KafkaStreams.State> finished = Set.of(KafkaStreams.State.NOT_RUNNING,
                KafkaStreams.State.ERROR, KafkaStreams.State.PENDING_SHUTDOWN,
                KafkaStreams.State.PENDING_ERROR);
        try (Admin admin = Admin.create(adminProps(bootstrap))) {
            List<TopicPartition> inputParts = partitions(admin, input);
            while (!finished.contains(streams.state())) {
                String committed = "?";
                String end = "?";
                String lag = "?";
                String repartition = "?";
                try {
                    Map<TopicPartition, OffsetAndMetadata> offsets = admin
                            .listConsumerGroupOffsets(appId).partitionsToOffsetAndMetadata()
                            .get(10, TimeUnit.SECONDS);
                    Map<TopicPartition, Long> ends = stableEnds(admin, offsets.keySet());
                    long c = 0;
                    long r = 0;
                    long l = 0;
                    for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
                        if (e.getValue() == null) continue;
                        if (inputParts.contains(e.getKey())) {
                            c += e.getValue().offset();
                        } else {
                            r += e.getValue().offset();
                        }
                        l += Math.max(0, ends.get(e.getKey()) - e.getValue().offset());
                    }
                    committed = Long.toString(c);
                    repartition = Long.toString(r);
                    lag = Long.toString(l);
                    end = Long.toString(stableEnds(admin, inputParts).values().stream()
                            .mapToLong(Long::longValue).sum());
                } catch (Exception e) {
                    System.err.println("progress lookup failed: " + e);
                }
                String line = "progress processed=" + processed.get() + " updates="
                        + updates.get() + " input_committed=" + committed + " input_end=" + end
                        + " repartition_committed=" + repartition + " group_lag=" + lag
                        + " state=" + streams.state();
                out.println(line);
                out.flush();
                Thread.sleep(500);
            }
        }
        if (fatal.get() != null) {
            // Do not wait for the shutdown hook's close: SHUTDOWN_CLIENT already closes.
            streams.close(Duration.ofSeconds(10));
            return 1;
        }
        return 0;
    }

    /**
     * The count's store: in memory by default, RocksDB with env WORDCOUNT_STORE=rocksdb. Both
     * have the same compacted changelog, and after a SIGKILL under EOS both are rebuilt from it
     * (a RocksDB store without a checkpoint is wiped), so the broker sees the same requests;
     * the in-memory one spares the test RocksDB's native library (15 MB extracted per JVM).
     */
    private static Materialized<String, Long, KeyValueStore<Bytes, byte[]>> materialized() {
        KeyValueBytesStoreSupplier supplier = "rocksdb".equals(System.getenv("WORDCOUNT_STORE"))
                ? Stores.persistentKeyValueStore(STORE)
                : Stores.inMemoryKeyValueStore(STORE);
        return Materialized.<String, Long>as(supplier)
                .withKeySerde(Serdes.String())
                .withValueSerde(Serdes.Long());
    }

    private static List<TopicPartition> partitions(Admin admin, String topic) throws Exception {
        TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                .get(30, TimeUnit.SECONDS).get(topic);
        List<TopicPartition> parts = new ArrayList<>();
        d.partitions().forEach(pi -> parts.add(new TopicPartition(topic, pi.partition())));
        return parts;
    }

    /** The last stable offsets (read_committed end offsets) of the partitions. */
    private static Map<TopicPartition, Long> stableEnds(Admin admin,
                                                        java.util.Collection<TopicPartition> parts)
            throws Exception {
        Map<TopicPartition, OffsetSpec> req = new HashMap<>();
        parts.forEach(tp -> req.put(tp, OffsetSpec.latest()));
        Map<TopicPartition, Long> ends = new HashMap<>();
        if (req.isEmpty()) return ends;
        admin.listOffsets(req, new ListOffsetsOptions(IsolationLevel.READ_COMMITTED))
                .all().get(10, TimeUnit.SECONDS)
                .forEach((tp, info) -> ends.put(tp, info.offset()));
        return ends;
    }

    // ---------------------------------------------------------------------------------------
    // verify
    // ---------------------------------------------------------------------------------------

    static Map<String, Long> parseCounts(String json) {
        int at = json.indexOf("\"counts\"");
        if (at < 0) throw new IllegalArgumentException("no \"counts\" in expected JSON");
        int open = json.indexOf('{', at);
        int close = json.indexOf('}', open);
        Matcher m = Pattern.compile("\"([^\"]+)\"\\s*:\\s*(\\d+)")
                .matcher(json.substring(open + 1, close));
        Map<String, Long> counts = new TreeMap<>();
        while (m.find()) counts.put(m.group(1), Long.parseLong(m.group(2)));
        return counts;
    }

    static int verify(String bootstrap, String output, String expectedFile, String isolation)
            throws Exception {
        Map<String, Long> expected = parseCounts(
                new String(Files.readAllBytes(Paths.get(expectedFile)), StandardCharsets.UTF_8));
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "wordcount-eos-verify");
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());

        Map<String, Long> last = new TreeMap<>();
        Map<String, Long> max = new TreeMap<>();
        Map<String, List<String>> sequenceErrors = new TreeMap<>();
        long records = 0;
        Map<TopicPartition, Long> ends;
        try (KafkaConsumer<String, Long> consumer = new KafkaConsumer<>(p)) {
            List<PartitionInfo> infos = consumer.partitionsFor(output, Duration.ofSeconds(30));
            List<TopicPartition> parts = new ArrayList<>();
            infos.forEach(pi -> parts.add(new TopicPartition(output, pi.partition())));
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            // read_committed: the end offsets are the last stable offsets.
            // read_uncommitted (diagnostics): the high watermarks; records of aborted
            // transactions are then read too, so a verdict fails if there were any.
            ends = consumer.endOffsets(parts, Duration.ofSeconds(30));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!caughtUp(consumer, ends)) {
                if (System.nanoTime() > deadline) {
                    System.out.println("{\"ok\":false,\"error\":\"not caught up to the end offsets "
                            + "within 60 s\",\"records\":" + records + "}");
                    return 1;
                }
                ConsumerRecords<String, Long> batch = consumer.poll(Duration.ofMillis(500));
                for (ConsumerRecord<String, Long> r : batch) {
                    records++;
                    String w = r.key();
                    long v = r.value() == null ? -1 : r.value();
                    long want = last.getOrDefault(w, 0L) + 1;
                    if (v != want) {
                        List<String> errs =
                                sequenceErrors.computeIfAbsent(w, k -> new ArrayList<>());
                        if (errs.size() < 5) {
                            errs.add("p" + r.partition() + "@" + r.offset() + ": " + v
                                    + " after " + (want - 1));
                        }
                    }
                    last.put(w, v);
                    max.merge(w, v, Math::max);
                }
            }
        }

        Map<String, String> mismatches = new TreeMap<>();
        Map<String, String> overcounted = new TreeMap<>();
        Set<String> all = new TreeSet<>(expected.keySet());
        all.addAll(last.keySet());
        for (String w : all) {
            Long want = expected.get(w);
            Long got = last.get(w);
            if (want == null || !want.equals(got)) {
                mismatches.put(w, "expected " + want + " got " + got);
            }
            Long m = max.get(w);
            if (m != null && (want == null || m > want)) {
                overcounted.put(w, "max " + m + " > expected " + want);
            }
        }
        boolean ok = mismatches.isEmpty() && overcounted.isEmpty() && sequenceErrors.isEmpty();
        long expectedRecords = 0;
        for (long c : expected.values()) expectedRecords += c;
        StringBuilder sb = new StringBuilder("{\"ok\":").append(ok)
                .append(",\"isolation\":\"").append(isolation).append('"')
                .append(",\"records\":").append(records)
                .append(",\"expected_records\":").append(expectedRecords)
                .append(",\"words\":").append(last.size())
                .append(",\"mismatches\":");
        appendStrings(sb, mismatches);
        sb.append(",\"double_counted\":");
        appendStrings(sb, overcounted);
        sb.append(",\"sequence_errors\":");
        Map<String, String> seq = new TreeMap<>();
        sequenceErrors.forEach((w, errs) -> seq.put(w, String.join("; ", errs)));
        appendStrings(sb, seq);
        sb.append(",\"last\":");
        appendCounts(sb, last);
        sb.append(",\"end_offsets\":{");
        List<TopicPartition> sorted = new ArrayList<>(ends.keySet());
        sorted.sort((a, b) -> Integer.compare(a.partition(), b.partition()));
        for (int i = 0; i < sorted.size(); i++) {
            if (i > 0) sb.append(',');
            sb.append("\"").append(sorted.get(i).partition()).append("\":")
                    .append(ends.get(sorted.get(i)));
        }
        sb.append("}}");
        System.out.println(sb);
        System.out.flush();
        return ok ? 0 : 1;
    }

    private static boolean caughtUp(KafkaConsumer<String, Long> consumer,
                                    Map<TopicPartition, Long> ends) {
        for (Map.Entry<TopicPartition, Long> e : ends.entrySet()) {
            if (consumer.position(e.getKey(), Duration.ofSeconds(30)) < e.getValue()) {
                return false;
            }
        }
        return true;
    }

    private static void appendStrings(StringBuilder sb, Map<String, String> m) {
        sb.append('{');
        boolean first = true;
        for (Map.Entry<String, String> e : m.entrySet()) {
            if (!first) sb.append(',');
            first = false;
            sb.append('"').append(e.getKey()).append("\":\"")
                    .append(e.getValue().replace("\\", "\\\\").replace("\"", "\\\"")).append('"');
        }
        sb.append('}');
    }
}

package sluice;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsOptions;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.core.config.Configurator;
import org.apache.logging.log4j.core.config.builder.api.ConfigurationBuilder;
import org.apache.logging.log4j.core.config.builder.api.ConfigurationBuilderFactory;
import org.apache.logging.log4j.core.config.builder.impl.BuiltConfiguration;

/**
 * Black-box checks of Kafka transactions with Apache Kafka's own Java client.
 *
 * <pre>
 * java -cp 'target/java-tests/classes:target/java-tests/libs/*' sluice.TxnCheck SCENARIO BOOTSTRAP TOPIC [args]
 *
 *   commit            BOOTSTRAP TOPIC [TXN_ID]
 *   abort             BOOTSTRAP TOPIC [TXN_ID]
 *   offsets           BOOTSTRAP TOPIC [GROUP [TXN_ID]]   (input TOPIC, output TOPIC-out)
 *   zombie            BOOTSTRAP TOPIC [TXN_ID]
 *   open              BOOTSTRAP TOPIC TXN_ID             (prints ready, then sleeps forever)
 *   check-after-crash BOOTSTRAP TOPIC TXN_ID
 * </pre>
 *
 * Topics that do not exist are created with 3 partitions. Every result is one line of JSON
 * on stdout; a failed check prints {"ok":false,...} there, the reason on stderr, and exits 1.
 * The clients log WARN and above to stderr (set -Dlog4j2.configurationFile to override).
 */
public final class TxnCheck {
    static final int PARTITIONS = 3;
    static final Duration WAIT = Duration.ofSeconds(30);

    final String bootstrap;
    final String topic;
    final String[] args;
    final String scenario;

    TxnCheck(String scenario, String bootstrap, String topic, String[] args) {
        this.scenario = scenario;
        this.bootstrap = bootstrap;
        this.topic = topic;
        this.args = args;
    }

    /** A check that did not hold: reported on stderr, exit code 1. */
    static final class CheckFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;
        CheckFailed(String message) {
            super(message);
        }
    }

    public static void main(String[] argv) {
        quietLogs();
        if (argv.length < 3) {
            System.err.println("usage: sluice.TxnCheck SCENARIO BOOTSTRAP TOPIC [args]");
            System.exit(2);
        }
        String[] rest = new String[argv.length - 3];
        System.arraycopy(argv, 3, rest, 0, rest.length);
        TxnCheck check = new TxnCheck(argv[0], argv[1], argv[2], rest);
        int code = 0;
        try {
            switch (argv[0]) {
                case "commit": check.commit(); break;
                case "abort": check.abort(); break;
                case "offsets": check.offsets(); break;
                case "zombie": check.zombie(); break;
                case "open": check.open(); break;
                case "check-after-crash": check.checkAfterCrash(); break;
                default:
                    System.err.println("unknown scenario " + argv[0]);
                    code = 2;
            }
        } catch (CheckFailed e) {
            check.emit(obj("ok", false, "error", e.getMessage()));
            System.err.println("FAILED " + argv[0] + ": " + e.getMessage());
            code = 1;
        } catch (Throwable e) {
            check.emit(obj("ok", false, "error", e.toString()));
            System.err.println("FAILED " + argv[0] + " with an exception: " + e);
            e.printStackTrace();
            code = 1;
        }
        System.out.flush();
        System.exit(code);
    }

    // ------------------------------------------------------------------ scenarios

    /** 300 keyed records in 3 committed transactions; read_committed reads exactly them. */
    void commit() throws Exception {
        String txnId = arg(0, "txn-commit-");
        createTopics(topic);
        List<Sent> sent = new ArrayList<>();
        try (KafkaProducer<String, String> p = producer(txnId, 60000)) {
            p.initTransactions();
            for (int t = 0; t < 3; t++) {
                p.beginTransaction();
                List<Future<RecordMetadata>> fs = new ArrayList<>();
                List<String> values = new ArrayList<>();
                for (int i = t * 100; i < (t + 1) * 100; i++) {
                    values.add("v-" + i);
                    fs.add(p.send(new ProducerRecord<>(topic, "k-" + i, "v-" + i)));
                }
                p.commitTransaction();
                sent.addAll(collect(fs, values));
            }
        }
        List<TopicPartition> tps = partitions(topic);
        awaitStable(tps, WAIT);
        Map<Integer, List<String>> got = readAll(tps, IsolationLevel.READ_COMMITTED).values;
        expectSame("read_committed", byPartition(sent), got);
        emit(obj("ok", true, "txn_id", txnId, "records", count(got), "per_partition", sizes(got)));
    }

    /** committed 50, aborted 50, committed 50: read_committed sees 100, read_uncommitted 150. */
    void abort() throws Exception {
        String txnId = arg(0, "txn-abort-");
        createTopics(topic);
        List<Sent> committed = new ArrayList<>();
        List<Sent> all = new ArrayList<>();
        try (KafkaProducer<String, String> p = producer(txnId, 60000)) {
            p.initTransactions();
            String[] kinds = {"c1", "a2", "c3"};
            for (String kind : kinds) {
                p.beginTransaction();
                List<Future<RecordMetadata>> fs = new ArrayList<>();
                List<String> values = new ArrayList<>();
                for (int i = 0; i < 50; i++) {
                    values.add(kind + "-" + i);
                    fs.add(p.send(new ProducerRecord<>(topic, "k-" + i, kind + "-" + i)));
                }
                p.flush();
                List<Sent> s = collect(fs, values);
                if (kind.startsWith("a")) {
                    p.abortTransaction();
                } else {
                    p.commitTransaction();
                    committed.addAll(s);
                }
                all.addAll(s);
            }
        }
        List<TopicPartition> tps = partitions(topic);
        awaitStable(tps, WAIT);
        Read rc = readAll(tps, IsolationLevel.READ_COMMITTED);
        expectSame("read_committed", byPartition(committed), rc.values);
        Read ru = readAll(tps, IsolationLevel.READ_UNCOMMITTED);
        expectSame("read_uncommitted", byPartition(all), ru.values);
        emit(obj("ok", true, "txn_id", txnId,
                "read_committed", count(rc.values), "read_uncommitted", count(ru.values),
                "committed_end_offsets", offsetsJson(rc.ends),
                "committed_positions", offsetsJson(rc.positions)));
    }

    /** Consume-transform-produce with sendOffsetsToTransaction; then an aborted round. */
    void offsets() throws Exception {
        String group = arg(0, "grp-offsets-");
        String txnId = arg(1, "txn-offsets-");
        String output = topic + "-out";
        createTopics(topic, output);
        List<TopicPartition> inTps = partitions(topic);
        List<TopicPartition> outTps = partitions(output);
        fillPlain(topic, 0, 200);
        Map<TopicPartition, Long> inEnds1 = endOffsets(inTps, IsolationLevel.READ_UNCOMMITTED);

        try (KafkaConsumer<String, String> c = consumer(group, IsolationLevel.READ_COMMITTED);
             KafkaProducer<String, String> p = producer(txnId, 60000)) {
            p.initTransactions();
            c.subscribe(Collections.singletonList(topic));

            // Round 1: one committed transaction per non-empty poll, until all 200 are in.
            int txns = transformUntil(c, p, output, 200, true);
            Map<TopicPartition, Long> committed1 = awaitGroupOffsets(group, inEnds1, WAIT);
            awaitStable(outTps, WAIT);
            int out1 = count(readAll(outTps, IsolationLevel.READ_COMMITTED).values);
            if (out1 != 200) {
                throw new CheckFailed("output read_committed has " + out1 + " records, expected 200");
            }
            emit(obj("round", 1, "ok", true, "group", group, "txn_id", txnId, "transactions", txns,
                    "committed_offsets", offsetsJson(committed1), "output_read_committed", out1));

            // Round 2: 50 more input records, transformed and their offsets sent, then aborted.
            fillPlain(topic, 200, 250);
            transformUntil(c, p, output, 50, false);
            awaitStable(outTps, WAIT);
            Map<TopicPartition, Long> committed2 = groupOffsets(group, false);
            if (!committed2.equals(committed1)) {
                throw new CheckFailed("after the aborted round the committed offsets are "
                        + committed2 + ", expected them unchanged at " + committed1);
            }
            Map<TopicPartition, Long> stable2 = groupOffsets(group, true);
            if (!stable2.equals(committed1)) {
                throw new CheckFailed("after the aborted round the committed offsets (require_stable) are "
                        + stable2 + ", expected them unchanged at " + committed1);
            }
            int out2 = count(readAll(outTps, IsolationLevel.READ_COMMITTED).values);
            int outAll = count(readAll(outTps, IsolationLevel.READ_UNCOMMITTED).values);
            if (out2 != 200 || outAll != 250) {
                throw new CheckFailed("after the aborted round output read_committed has " + out2
                        + " records (expected 200) and read_uncommitted " + outAll + " (expected 250)");
            }
            emit(obj("round", 2, "ok", true, "committed_offsets", offsetsJson(committed2),
                    "output_read_committed", out2, "output_read_uncommitted", outAll));
        }
    }

    /** A second producer with the same transactional id fences the first and aborts its txn. */
    void zombie() throws Exception {
        String txnId = arg(0, "txn-zombie-");
        createTopics(topic);
        String fencedSend;
        String fencedCommit;
        try (KafkaProducer<String, String> a = producer(txnId, 60000)) {
            a.initTransactions();
            a.beginTransaction();
            a.send(new ProducerRecord<>(topic, "zombie", "from-A")).get();
            a.flush();
            try (KafkaProducer<String, String> b = producer(txnId, 60000)) {
                b.initTransactions();

                fencedSend = expectFenced("A's send after B's initTransactions", () ->
                        a.send(new ProducerRecord<>(topic, "zombie", "from-A-again")).get());
                fencedCommit = expectFenced("A's commitTransaction after B's initTransactions",
                        a::commitTransaction);

                b.beginTransaction();
                List<Future<RecordMetadata>> fs = new ArrayList<>();
                List<String> values = new ArrayList<>();
                for (int i = 0; i < 10; i++) {
                    values.add("from-B-" + i);
                    fs.add(b.send(new ProducerRecord<>(topic, "k-" + i, "from-B-" + i)));
                }
                b.commitTransaction();
                List<Sent> sent = collect(fs, values);
                List<TopicPartition> tps = partitions(topic);
                awaitStable(tps, WAIT);
                Map<Integer, List<String>> got = readAll(tps, IsolationLevel.READ_COMMITTED).values;
                expectSame("read_committed", byPartition(sent), got);
                emit(obj("ok", true, "txn_id", txnId, "a_send_error", fencedSend,
                        "a_commit_error", fencedCommit, "read_committed", count(got)));
            }
        }
    }

    /** Leaves a transaction open (transaction.timeout.ms=5000) and sleeps forever. */
    void open() throws Exception {
        String txnId = required(0, "TXN_ID");
        createTopics(topic);
        KafkaProducer<String, String> p = producer(txnId, 5000);
        p.initTransactions();
        p.beginTransaction();
        for (int i = 0; i < 20; i++) {
            p.send(new ProducerRecord<>(topic, "k-" + i, "open-" + i));
        }
        p.flush();
        emit(obj("ready", true, "txn_id", txnId));
        System.out.flush();
        while (true) {
            Thread.sleep(60_000);
        }
    }

    /** After a broker crash: the open txn is resolved all-or-nothing and the id is usable. */
    void checkAfterCrash() throws Exception {
        String txnId = required(0, "TXN_ID");
        List<TopicPartition> tps = partitions(topic);
        long t0 = System.nanoTime();
        awaitStable(tps, Duration.ofSeconds(60));
        long resolvedMs = (System.nanoTime() - t0) / 1_000_000;
        Map<Integer, List<String>> before = readAll(tps, IsolationLevel.READ_COMMITTED).values;
        int visible = countPrefix(before, "open-");
        if (visible != 0 && visible != 20) {
            throw new CheckFailed(visible + " of the 20 records of the interrupted transaction are "
                    + "visible read_committed; expected 0 or 20: " + before);
        }
        if (count(before) != visible) {
            throw new CheckFailed("read_committed shows records that are not the open transaction's: " + before);
        }
        try (KafkaProducer<String, String> p = producer(txnId, 60000)) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 5; i++) {
                p.send(new ProducerRecord<>(topic, "k-" + i, "after-" + i));
            }
            p.commitTransaction();
        }
        awaitStable(tps, WAIT);
        Map<Integer, List<String>> after = readAll(tps, IsolationLevel.READ_COMMITTED).values;
        int newVisible = countPrefix(after, "after-");
        if (newVisible != 5 || countPrefix(after, "open-") != visible || count(after) != visible + 5) {
            throw new CheckFailed("after committing 5 records with the same transactional id, "
                    + "read_committed has " + newVisible + " of them and " + countPrefix(after, "open-")
                    + " open- records (expected 5 and " + visible + "): " + after);
        }
        emit(obj("ok", true, "txn_id", txnId, "open_visible", visible,
                "resolved_after_ms", resolvedMs, "after_visible", newVisible));
    }

    // ------------------------------------------------------------------ transform loop

    /**
     * Polls c until n records came; for each non-empty poll a transaction writes them,
     * transformed, to output and sends the consumed offsets; it commits, or aborts when
     * commit is false. Returns the number of transactions.
     */
    int transformUntil(KafkaConsumer<String, String> c, KafkaProducer<String, String> p,
                       String output, int n, boolean commit) {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        int seen = 0;
        int txns = 0;
        while (seen < n) {
            if (System.nanoTime() > deadline) {
                throw new CheckFailed("group consumer read " + seen + " of " + n + " input records in 60 s"
                        + " (assignment " + c.assignment() + ")");
            }
            ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(500));
            if (recs.isEmpty()) {
                continue;
            }
            p.beginTransaction();
            Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
            for (ConsumerRecord<String, String> r : recs) {
                p.send(new ProducerRecord<>(output, r.key(), "out-" + r.value()));
                offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                seen++;
            }
            // Written before the offsets are sent: abortTransaction drops unsent records.
            p.flush();
            p.sendOffsetsToTransaction(offsets, c.groupMetadata());
            if (commit) {
                p.commitTransaction();
            } else {
                p.abortTransaction();
            }
            txns++;
        }
        if (seen != n) {
            throw new CheckFailed("group consumer read " + seen + " input records, expected " + n);
        }
        return txns;
    }

    // ------------------------------------------------------------------ clients

    KafkaProducer<String, String> producer(String txnId, int txnTimeoutMs) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "txncheck-" + scenario + "-producer");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30000);
        if (txnId != null) {
            p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
            p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, txnTimeoutMs);
        }
        return new KafkaProducer<>(p);
    }

    KafkaConsumer<String, String> consumer(String group, IsolationLevel isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "txncheck-" + scenario + "-consumer");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation.toString().toLowerCase());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10000);
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
            p.put(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, 60000);
        }
        return new KafkaConsumer<>(p);
    }

    Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "txncheck-" + scenario + "-admin");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        return Admin.create(p);
    }

    // ------------------------------------------------------------------ helpers

    /** Creates the topics with PARTITIONS partitions unless they exist. */
    void createTopics(String... names) throws Exception {
        try (Admin admin = admin()) {
            for (String name : names) {
                try {
                    admin.createTopics(Collections.singletonList(new NewTopic(name, PARTITIONS, (short) 1)))
                            .all().get();
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        throw e;
                    }
                }
            }
        }
    }

    /** The topic's partitions, waiting until its metadata lists all of them. */
    List<TopicPartition> partitions(String name) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        try (KafkaConsumer<String, String> c = consumer(null, IsolationLevel.READ_UNCOMMITTED)) {
            while (true) {
                List<PartitionInfo> infos = c.partitionsFor(name);
                if (infos != null && !infos.isEmpty() && infos.stream().allMatch(i -> i.leader() != null)) {
                    List<TopicPartition> tps = new ArrayList<>();
                    for (PartitionInfo i : infos) {
                        tps.add(new TopicPartition(name, i.partition()));
                    }
                    tps.sort((x, y) -> Integer.compare(x.partition(), y.partition()));
                    return tps;
                }
                if (System.nanoTime() > deadline) {
                    throw new CheckFailed("topic " + name + " has no partitions with leaders after " + WAIT);
                }
                Thread.sleep(200);
            }
        }
    }

    /** Writes values in-FROM..in-(TO-1) keyed k-i with a plain idempotent producer. */
    void fillPlain(String name, int from, int to) throws Exception {
        try (KafkaProducer<String, String> p = producer(null, 0)) {
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = from; i < to; i++) {
                fs.add(p.send(new ProducerRecord<>(name, "k-" + i, "in-" + i)));
            }
            for (Future<RecordMetadata> f : fs) {
                f.get();
            }
        }
    }

    Map<TopicPartition, Long> endOffsets(Collection<TopicPartition> tps, IsolationLevel isolation)
            throws Exception {
        try (Admin admin = admin()) {
            Map<TopicPartition, OffsetSpec> req = new HashMap<>();
            for (TopicPartition tp : tps) {
                req.put(tp, OffsetSpec.latest());
            }
            Map<TopicPartition, Long> out = new TreeMap<>(TxnCheck::compareTp);
            for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e :
                    admin.listOffsets(req, new ListOffsetsOptions(isolation)).all().get().entrySet()) {
                out.put(e.getKey(), e.getValue().offset());
            }
            return out;
        }
    }

    /** Waits until the read_committed end offsets (LSO) equal the high watermarks. */
    void awaitStable(List<TopicPartition> tps, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            Map<TopicPartition, Long> lso = endOffsets(tps, IsolationLevel.READ_COMMITTED);
            Map<TopicPartition, Long> hw = endOffsets(tps, IsolationLevel.READ_UNCOMMITTED);
            if (lso.equals(hw)) {
                return;
            }
            if (System.nanoTime() > deadline) {
                throw new CheckFailed("read_committed end offsets " + lso + " did not reach the "
                        + "read_uncommitted end offsets " + hw + " within " + timeout.getSeconds() + " s");
            }
            Thread.sleep(200);
        }
    }

    static final class Read {
        final Map<Integer, List<String>> values = new TreeMap<>();
        final Map<TopicPartition, Long> ends = new TreeMap<>(TxnCheck::compareTp);
        final Map<TopicPartition, Long> positions = new TreeMap<>(TxnCheck::compareTp);
    }

    /**
     * Reads the partitions from the beginning with an assigned consumer until its position
     * reaches the end offset of its isolation level on every partition.
     */
    Read readAll(List<TopicPartition> tps, IsolationLevel isolation) {
        Read read = new Read();
        for (TopicPartition tp : tps) {
            read.values.put(tp.partition(), new ArrayList<>());
        }
        try (KafkaConsumer<String, String> c = consumer(null, isolation)) {
            c.assign(tps);
            c.seekToBeginning(tps);
            read.ends.putAll(c.endOffsets(tps));
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) {
                    long pos = c.position(tp);
                    read.positions.put(tp, pos);
                    if (pos < read.ends.get(tp)) {
                        done = false;
                    }
                }
                if (done) {
                    break;
                }
                if (System.nanoTime() > deadline) {
                    throw new CheckFailed(isolation + " consumer is stuck: positions " + read.positions
                            + ", end offsets " + read.ends + ", read so far " + sizes(read.values));
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    read.values.get(r.partition()).add(r.value());
                }
            }
            // Nothing may come after the end offset.
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(300))) {
                throw new CheckFailed(isolation + " consumer got a record past the end offsets "
                        + read.ends + ": partition " + r.partition() + " offset " + r.offset());
            }
        }
        return read;
    }

    /** The group's committed offsets; requireStable asks the broker to wait out pending txns. */
    Map<TopicPartition, Long> groupOffsets(String group, boolean requireStable) throws Exception {
        try (Admin admin = admin()) {
            Map<TopicPartition, OffsetAndMetadata> m = admin.listConsumerGroupOffsets(group,
                    new ListConsumerGroupOffsetsOptions().requireStable(requireStable))
                    .partitionsToOffsetAndMetadata().get();
            Map<TopicPartition, Long> out = new TreeMap<>(TxnCheck::compareTp);
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : m.entrySet()) {
                if (e.getValue() != null) {
                    out.put(e.getKey(), e.getValue().offset());
                }
            }
            return out;
        }
    }

    /** Waits until the group's committed offsets equal expected (markers are written async). */
    Map<TopicPartition, Long> awaitGroupOffsets(String group, Map<TopicPartition, Long> expected,
                                                Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            Map<TopicPartition, Long> got = groupOffsets(group, false);
            if (got.equals(expected)) {
                return got;
            }
            if (System.nanoTime() > deadline) {
                throw new CheckFailed("group " + group + " committed offsets are " + got
                        + ", expected the input end offsets " + expected);
            }
            Thread.sleep(200);
        }
    }

    interface Action {
        void run() throws Exception;
    }

    /** Runs an action that must fail because the producer was fenced; returns the error seen. */
    static String expectFenced(String what, Action action) {
        try {
            action.run();
        } catch (Exception e) {
            for (Throwable t = e; t != null; t = t.getCause()) {
                if (t instanceof ProducerFencedException || t instanceof InvalidProducerEpochException) {
                    return t == e ? t.getClass().getSimpleName()
                            : e.getClass().getSimpleName() + "(" + t.getClass().getSimpleName() + ")";
                }
            }
            throw new CheckFailed(what + " failed with " + e + ", expected ProducerFencedException or "
                    + "InvalidProducerEpochException (possibly wrapped)");
        }
        throw new CheckFailed(what + " succeeded; the producer should have been fenced");
    }

    static final class Sent {
        final int partition;
        final long offset;
        final String value;

        Sent(int partition, long offset, String value) {
            this.partition = partition;
            this.offset = offset;
            this.value = value;
        }
    }

    static List<Sent> collect(List<Future<RecordMetadata>> fs, List<String> values) throws Exception {
        List<Sent> out = new ArrayList<>();
        for (int i = 0; i < fs.size(); i++) {
            RecordMetadata m = fs.get(i).get();
            out.add(new Sent(m.partition(), m.offset(), values.get(i)));
        }
        return out;
    }

    /** Values per partition in offset order. */
    static Map<Integer, List<String>> byPartition(List<Sent> sent) {
        Map<Integer, TreeMap<Long, String>> sorted = new TreeMap<>();
        for (Sent s : sent) {
            sorted.computeIfAbsent(s.partition, k -> new TreeMap<>()).put(s.offset, s.value);
        }
        Map<Integer, List<String>> out = new TreeMap<>();
        sorted.forEach((p, m) -> out.put(p, new ArrayList<>(m.values())));
        return out;
    }

    static void expectSame(String what, Map<Integer, List<String>> expected, Map<Integer, List<String>> got) {
        Map<Integer, List<String>> e = withoutEmpty(expected);
        Map<Integer, List<String>> g = withoutEmpty(got);
        if (!e.equals(g)) {
            StringBuilder sb = new StringBuilder(what + " read " + count(g) + " records " + sizes(g)
                    + ", expected " + count(e) + " " + sizes(e));
            for (Integer p : e.keySet()) {
                List<String> ev = e.get(p);
                List<String> gv = g.getOrDefault(p, Collections.emptyList());
                if (!ev.equals(gv)) {
                    int i = 0;
                    while (i < ev.size() && i < gv.size() && ev.get(i).equals(gv.get(i))) {
                        i++;
                    }
                    sb.append("; partition ").append(p).append(" differs at index ").append(i)
                            .append(": expected ").append(i < ev.size() ? ev.get(i) : "<end>")
                            .append(", got ").append(i < gv.size() ? gv.get(i) : "<end>");
                }
            }
            for (Integer p : g.keySet()) {
                if (!e.containsKey(p)) {
                    sb.append("; partition ").append(p).append(" has unexpected records ").append(g.get(p));
                }
            }
            throw new CheckFailed(sb.toString());
        }
    }

    static Map<Integer, List<String>> withoutEmpty(Map<Integer, List<String>> m) {
        Map<Integer, List<String>> out = new TreeMap<>();
        m.forEach((p, v) -> {
            if (!v.isEmpty()) {
                out.put(p, v);
            }
        });
        return out;
    }

    static int count(Map<Integer, List<String>> m) {
        return m.values().stream().mapToInt(List::size).sum();
    }

    static int countPrefix(Map<Integer, List<String>> m, String prefix) {
        return (int) m.values().stream().flatMap(List::stream).filter(v -> v.startsWith(prefix)).count();
    }

    static Map<String, Object> sizes(Map<Integer, List<String>> m) {
        Map<String, Object> out = new LinkedHashMap<>();
        m.forEach((p, v) -> out.put(String.valueOf(p), v.size()));
        return out;
    }

    static Map<String, Object> offsetsJson(Map<TopicPartition, Long> m) {
        Map<String, Object> out = new LinkedHashMap<>();
        m.forEach((tp, o) -> out.put(tp.toString(), o));
        return out;
    }

    static int compareTp(TopicPartition a, TopicPartition b) {
        int c = a.topic().compareTo(b.topic());
        return c != 0 ? c : Integer.compare(a.partition(), b.partition());
    }

    String arg(int i, String randomPrefix) {
        return i < args.length ? args[i] : randomPrefix + UUID.randomUUID().toString().substring(0, 8);
    }

    String required(int i, String name) {
        if (i >= args.length) {
            throw new CheckFailed("scenario " + scenario + " needs the argument " + name);
        }
        return args[i];
    }

    // ------------------------------------------------------------------ output

    static Map<String, Object> obj(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }

    void emit(Map<String, Object> fields) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("scenario", scenario);
        m.putAll(fields);
        System.out.println(json(m));
        System.out.flush();
    }

    static String json(Object o) {
        if (o == null) {
            return "null";
        }
        if (o instanceof Number || o instanceof Boolean) {
            return o.toString();
        }
        if (o instanceof Map) {
            StringBuilder sb = new StringBuilder("{");
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                if (sb.length() > 1) {
                    sb.append(',');
                }
                sb.append(json(String.valueOf(e.getKey()))).append(':').append(json(e.getValue()));
            }
            return sb.append('}').toString();
        }
        if (o instanceof Collection) {
            StringBuilder sb = new StringBuilder("[");
            for (Object v : (Collection<?>) o) {
                if (sb.length() > 1) {
                    sb.append(',');
                }
                sb.append(json(v));
            }
            return sb.append(']').toString();
        }
        StringBuilder sb = new StringBuilder("\"");
        for (char ch : o.toString().toCharArray()) {
            if (ch == '"' || ch == '\\') {
                sb.append('\\').append(ch);
            } else if (ch < 0x20) {
                sb.append(String.format("\\u%04x", (int) ch));
            } else {
                sb.append(ch);
            }
        }
        return sb.append('"').toString();
    }

    /** Client logs: WARN and above on stderr, so that stdout carries only the JSON lines. */
    static void quietLogs() {
        if (System.getProperty("log4j2.configurationFile") != null) {
            return;
        }
        ConfigurationBuilder<BuiltConfiguration> b = ConfigurationBuilderFactory.newConfigurationBuilder();
        b.setStatusLevel(Level.ERROR);
        b.add(b.newAppender("err", "Console").addAttribute("target", "SYSTEM_ERR")
                .add(b.newLayout("PatternLayout").addAttribute("pattern", "[%d] %p %m (%c)%n")));
        b.add(b.newRootLogger(Level.WARN).add(b.newAppenderRef("err")));
        Configurator.initialize(b.build());
    }
}

"""kafka-python producer -> sluice -> kafka-python consumer round trips.

Consumers never use consumer groups (group_id=None + assign()).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
from kafka import TopicPartition

import kafka_wire
from conftest import unique_name
from helpers import (CODECS, assert_contiguous, consume, create_topic, make_consumer,
                     make_producer, send_all, wait_for_partitions)


def _mixed_records(n, base_ts):
    """Keys (some null), values (some tombstones), headers, explicit timestamps."""
    recs = []
    for i in range(n):
        key = None if i % 10 == 9 else f"key-{i % 37}".encode()
        value = f"value-{i}-".encode() * (1 + i % 5)
        if key is not None and i % 7 == 3:
            value = None  # tombstone
        headers = []
        if i % 3 == 0:
            headers = [("h1", b"x"), ("h-empty", b""), ("h1", f"dup-{i}".encode()),
                       ("bin", bytes(range(256)))]
        recs.append({"key": key, "value": value, "headers": headers,
                     "timestamp_ms": base_ts + i})
    return recs


def _check_consumed_against_sent(sent, got, full=True):
    by_pos = {(md.partition, md.offset): rec for rec, md in sent}
    for p, recs in got.items():
        for r in recs:
            want = by_pos.get((p, r.offset))
            assert want is not None, f"consumed unexpected record {p}@{r.offset}"
            assert r.key == want["key"], f"{p}@{r.offset}: key {r.key!r} != {want['key']!r}"
            assert r.value == want["value"], (
                f"{p}@{r.offset}: value {r.value!r:.80} != {want['value']!r:.80}")
            if not full:
                continue
            assert [(k, v) for k, v in r.headers] == want["headers"], (
                f"{p}@{r.offset}: headers {r.headers!r} != {want['headers']!r}")
            assert r.timestamp == want["timestamp_ms"], (
                f"{p}@{r.offset}: timestamp {r.timestamp} != {want['timestamp_ms']}")
            assert r.timestamp_type == 0, f"{p}@{r.offset}: timestamp type {r.timestamp_type}"


def _counts_from_metadata(sent, partitions):
    counts = {p: 0 for p in range(partitions)}
    offsets = {p: [] for p in range(partitions)}
    for _, md in sent:
        counts[md.partition] += 1
        offsets[md.partition].append(md.offset)
    for p in range(partitions):
        assert sorted(offsets[p]) == list(range(counts[p])), (
            f"partition {p}: produce acks gave offsets {sorted(offsets[p])[:20]}..., expected "
            f"0..{counts[p] - 1}")
    return counts


@pytest.mark.parametrize("partitions", [1, 12])
@pytest.mark.parametrize("codec", CODECS)
def test_roundtrip_keys_headers_tombstones(bootstrap, admin, codec, partitions):
    topic = unique_name(f"rt-{codec}-{partitions}")
    create_topic(admin, topic, partitions)
    base_ts = int(time.time() * 1000) - 60_000
    records = _mixed_records(300, base_ts)
    producer = make_producer(bootstrap, codec)
    try:
        sent = send_all(producer, topic, records)
    finally:
        producer.close(timeout=10)
    counts = _counts_from_metadata(sent, partitions)
    assert sum(counts.values()) == len(records)
    if partitions > 1:
        used = sum(1 for c in counts.values() if c)
        assert used >= 2, f"records went to only {used} partition(s): {counts}"

    consumer = make_consumer(bootstrap)
    try:
        got = consume(bootstrap, topic, counts, consumer=consumer)
        assert_contiguous(got, counts)
        _check_consumed_against_sent(sent, got)
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        end = consumer.end_offsets(tps, timeout_ms=10000)
        begin = consumer.beginning_offsets(tps, timeout_ms=10000)
        assert {tp.partition: o for tp, o in end.items()} == counts, "ListOffsets latest != count"
        assert all(o == 0 for o in begin.values()), f"ListOffsets earliest: {begin}"
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", CODECS)
def test_roundtrip_stored_batches_keep_producer_codec(bootstrap, admin, codec):
    """A raw Fetch v4 shows the batches in the codec the producer used (compression.type=producer)."""
    topic = unique_name(f"codec-{codec}")
    create_topic(admin, topic, 1)
    producer = make_producer(bootstrap, codec, linger_ms=50, batch_size=1 << 20)
    try:
        sent = send_all(producer, topic, [{"key": b"k", "value": b"abc" * 200} for _ in range(50)])
    finally:
        producer.close(timeout=10)
    batches = kafka_wire.fetch_all_batches(bootstrap, topic, 0, len(sent))
    assert batches, "no batches fetched"
    assert all(b.magic == 2 for b in batches), [b.magic for b in batches]
    assert all(b.crc_ok for b in batches), "fetched batch has a bad CRC-32C"
    codecs = {b.codec for b in batches}
    assert codecs == {codec}, f"stored batches use {codecs}, producer sent {codec}"
    assert sum(b.record_count for b in batches) == 50


@pytest.mark.parametrize("codec", ["none", "zstd", "gzip"])
def test_roundtrip_1mib_values(bootstrap, admin, codec):
    topic = unique_name(f"big-{codec}")
    create_topic(admin, topic, 1, {"max.message.bytes": str(4 * 1024 * 1024)})
    values = [os.urandom(1024 * 1024) for _ in range(3)]
    values.append(b"z" * (1024 * 1024))  # compressible one too
    producer = make_producer(bootstrap, codec, max_request_size=8 * 1024 * 1024,
                             batch_size=64 * 1024, linger_ms=0)
    try:
        sent = send_all(producer, topic, [{"key": f"big-{i}".encode(), "value": v}
                                          for i, v in enumerate(values)], timeout=60)
    finally:
        producer.close(timeout=10)
    assert sorted(md.offset for _, md in sent) == [0, 1, 2, 3]
    got = consume(bootstrap, topic, {0: len(values)}, timeout=60,
                  max_partition_fetch_bytes=8 * 1024 * 1024,
                  fetch_max_bytes=32 * 1024 * 1024)
    assert_contiguous(got, {0: len(values)})
    for r in got[0]:
        want = values[r.offset]
        assert r.key == f"big-{r.offset}".encode()
        assert len(r.value) == len(want) and hashlib.sha256(r.value).digest() == \
            hashlib.sha256(want).digest(), f"1 MiB value at offset {r.offset} differs"


def test_roundtrip_read_from_middle(bootstrap, admin):
    topic = unique_name("middle")
    partitions = 12
    create_topic(admin, topic, partitions)
    producer = make_producer(bootstrap)
    try:
        records = [{"value": f"p{p}-{i}".encode(), "partition": p}
                   for i in range(40) for p in range(partitions)]
        send_all(producer, topic, records)
    finally:
        producer.close(timeout=10)
    starts = {p: (p * 3) % 40 for p in range(partitions)}  # 0, 3, 6, ..., 33
    expected = {p: 40 - starts[p] for p in range(partitions)}
    got = consume(bootstrap, topic, expected, start=starts)
    assert_contiguous(got, expected, start=starts)
    for p, recs in got.items():
        assert [r.value for r in recs] == [f"p{p}-{i}".encode() for i in range(starts[p], 40)]

    # Seeking into the middle of a multi-record batch returns records from that
    # exact offset on (the client drops the batch's earlier records).
    got = consume(bootstrap, topic, {5: 3}, start={5: 37})
    assert [r.offset for r in got[5]] == [37, 38, 39]


def test_roundtrip_tail_with_long_poll(bootstrap, admin):
    """A consumer waiting at the end gets new records quickly (broker wakes the long poll)."""
    topic = unique_name("tail")
    create_topic(admin, topic, 1)
    producer = make_producer(bootstrap, linger_ms=0)
    # Long fetch wait: if the broker only answered after max wait, records
    # would arrive ~10 s late.
    consumer = make_consumer(bootstrap, fetch_max_wait_ms=10_000, fetch_min_bytes=1)
    try:
        send_all(producer, topic, [{"value": b"before"}])
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 1)
        received = []
        errors = []
        stop = threading.Event()

        def poll_loop():
            try:
                while not stop.is_set():
                    for recs in consumer.poll(timeout_ms=500).values():
                        for r in recs:
                            received.append((time.monotonic(), r))
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        t = threading.Thread(target=poll_loop, daemon=True)
        t.start()
        try:
            time.sleep(1.5)  # the consumer is now parked in a long-poll Fetch
            assert not received, f"unexpected records before producing: {received}"
            latencies = []
            for i in range(3):
                (_, md), = send_all(producer, topic, [{"value": f"tail-{i}".encode()}])
                acked = time.monotonic()
                deadline = acked + 5
                while time.monotonic() < deadline and len(received) < i + 1:
                    time.sleep(0.01)
                assert len(received) >= i + 1, f"record {i} not received within 5s of its ack"
                latencies.append(received[i][0] - acked)
                assert received[i][1].offset == md.offset == i + 1
                assert received[i][1].value == f"tail-{i}".encode()
                time.sleep(0.5)
        finally:
            stop.set()
            t.join(timeout=15)
        assert not errors, errors
        assert max(latencies) < 2.0, f"tail latencies {latencies} (long poll not woken?)"
    finally:
        consumer.close()
        producer.close(timeout=10)


def test_roundtrip_idempotent_producer(bootstrap, admin):
    topic = unique_name("idem")
    partitions = 3
    create_topic(admin, topic, partitions)
    producer = make_producer(bootstrap, "lz4", enable_idempotence=True, acks="all",
                             max_in_flight_requests_per_connection=5, linger_ms=2,
                             batch_size=2048)
    try:
        records = [{"key": f"k{i % 11}".encode(), "value": f"idem-{i}".encode()}
                   for i in range(600)]
        sent = send_all(producer, topic, records)
    finally:
        producer.close(timeout=10)
    counts = _counts_from_metadata(sent, partitions)
    got = consume(bootstrap, topic, counts, extra_poll_s=1.0)
    assert_contiguous(got, counts)
    values = [r.value for recs in got.values() for r in recs]
    assert len(values) == len(set(values)) == 600, "duplicates or losses with idempotence"
    _check_consumed_against_sent(sent, got, full=False)
    # The stored batches carry the producer id, epoch and sequences (Kafka keeps them).
    for p in range(partitions):
        if not counts[p]:
            continue
        batches = kafka_wire.fetch_all_batches(bootstrap, topic, p, counts[p])
        assert all(b.producer_id >= 0 for b in batches), (
            f"partition {p}: batches lost their producer id: {[b.producer_id for b in batches]}")
        seqs = [(b.base_sequence, b.record_count) for b in batches]
        expected_seq = 0
        for base_seq, n in seqs:
            assert base_seq == expected_seq, f"partition {p}: sequences {seqs}"
            expected_seq += n


def test_roundtrip_auto_create_uses_default_partitions(start_sluice):
    server = start_sluice("--auto-create-topics", "true", "--default-partitions", "3")
    topic = unique_name("auto")
    producer = make_producer(server.bootstrap)
    try:
        sent = send_all(producer, topic, [{"key": f"k{i}".encode(), "value": b"v"}
                                          for i in range(30)])
    finally:
        producer.close(timeout=10)
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap, request_timeout_ms=15000)
    try:
        wait_for_partitions(admin, topic, 3)
    finally:
        admin.close()
    counts = _counts_from_metadata(sent, 3)
    got = consume(server.bootstrap, topic, counts)
    assert_contiguous(got, counts)


def test_roundtrip_across_many_files(start_sluice):
    """Small --max-file-bytes: data spread over many files still reads back in order."""
    server = start_sluice("--max-file-bytes", "1MiB")
    topic = unique_name("files")
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap, request_timeout_ms=15000)
    try:
        create_topic(admin, topic, 2)
    finally:
        admin.close()
    producer = make_producer(server.bootstrap, "none", linger_ms=0)
    payloads = {p: [os.urandom(32 * 1024) for _ in range(80)] for p in range(2)}  # 2.5 MiB each
    try:
        # Several sends, each flushed, so that the broker writes several files.
        for chunk in range(8):
            send_all(producer, topic, [{"value": payloads[p][i], "partition": p}
                                       for i in range(chunk * 10, chunk * 10 + 10)
                                       for p in range(2)])
    finally:
        producer.close(timeout=10)
    expected = {0: 80, 1: 80}
    got = consume(server.bootstrap, topic, expected, timeout=60)
    assert_contiguous(got, expected)
    for p in range(2):
        assert [r.value for r in got[p]] == payloads[p]
    got = consume(server.bootstrap, topic, {1: 25}, start={1: 55})
    assert [r.value for r in got[1]] == payloads[1][55:]

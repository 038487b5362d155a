"""Error paths: missing topics without auto-creation, oversized record batches."""

from __future__ import annotations

import logging

import kafka.errors as Errors
import pytest
from kafka import KafkaAdminClient

import kafka_wire
from conftest import unique_name
from helpers import consume, create_topic, make_producer, send_all


@pytest.fixture
def no_autocreate(start_sluice):
    return start_sluice("--auto-create-topics", "false", label="auto-create off")


def test_produce_to_missing_topic_without_auto_create_kafka_python(no_autocreate, caplog):
    """kafka-python keeps asking Metadata for the topic, logs UNKNOWN_TOPIC_OR_PARTITION
    and finally raises KafkaTimeoutError from send() (it never gets partitions)."""
    topic = unique_name("missing")
    producer = make_producer(no_autocreate.bootstrap, max_block_ms=3000)
    try:
        with caplog.at_level(logging.ERROR, logger="kafka.cluster"):
            with pytest.raises(Errors.KafkaTimeoutError):
                producer.send(topic, value=b"nope").get(timeout=10)
    finally:
        producer.close(timeout=5)
    assert any(f"Topic {topic} not found in cluster metadata" in r.getMessage()
               for r in caplog.records), (
        "kafka-python never saw UNKNOWN_TOPIC_OR_PARTITION for the topic: "
        f"{[r.getMessage() for r in caplog.records][:5]}")
    admin = KafkaAdminClient(bootstrap_servers=no_autocreate.bootstrap, request_timeout_ms=15000)
    try:
        assert topic not in admin.list_topics(), "topic was auto-created although disabled"
    finally:
        admin.close()


def test_missing_topic_without_auto_create_protocol_level(no_autocreate):
    topic = unique_name("missing-raw")
    with kafka_wire.RawConn(no_autocreate.bootstrap) as c:
        md = c.metadata_v4([topic], allow_auto_create=True)
        (t,) = md["topics"]
        assert t["name"] == topic
        assert t["error_code"] == kafka_wire.ERR_UNKNOWN_TOPIC_OR_PARTITION, t
        assert not t["partitions"]

        batch = kafka_wire.encode_batch([kafka_wire.Record(b"k", b"v")])
        part = c.produce_v3(topic, 0, batch)
        assert part["error_code"] == kafka_wire.ERR_UNKNOWN_TOPIC_OR_PARTITION, part

        md = c.metadata_v4([topic], allow_auto_create=True)
        assert md["topics"][0]["error_code"] == kafka_wire.ERR_UNKNOWN_TOPIC_OR_PARTITION


def test_existing_topic_works_without_auto_create(no_autocreate):
    topic = unique_name("explicit")
    admin = KafkaAdminClient(bootstrap_servers=no_autocreate.bootstrap, request_timeout_ms=15000)
    try:
        create_topic(admin, topic, 2)
    finally:
        admin.close()
    producer = make_producer(no_autocreate.bootstrap)
    try:
        send_all(producer, topic, [{"value": b"a", "partition": 0}, {"value": b"b", "partition": 1}])
    finally:
        producer.close(timeout=10)
    got = consume(no_autocreate.bootstrap, topic, {0: 1, 1: 1})
    assert got[0][0].value == b"a" and got[1][0].value == b"b"


def test_unknown_partition_of_existing_topic(bootstrap, admin):
    topic = unique_name("badpart")
    create_topic(admin, topic, 2)
    batch = kafka_wire.encode_batch([kafka_wire.Record(None, b"v")])
    with kafka_wire.RawConn(bootstrap) as c:
        part = c.produce_v3(topic, 7, batch)
        assert part["error_code"] == kafka_wire.ERR_UNKNOWN_TOPIC_OR_PARTITION, part
        fetched = c.fetch_v4(topic, 7, 0)
        assert fetched["error_code"] == kafka_wire.ERR_UNKNOWN_TOPIC_OR_PARTITION, fetched


def test_message_too_large_kafka_python(bootstrap, admin):
    topic = unique_name("toolarge")
    create_topic(admin, topic, 1, {"max.message.bytes": "2048"})
    # max_request_size is large so the client-side check passes and the broker decides.
    producer = make_producer(bootstrap, max_request_size=1 << 20, linger_ms=0)
    try:
        with pytest.raises(Errors.MessageSizeTooLargeError):
            producer.send(topic, value=b"x" * 8000).get(timeout=20)
        md = producer.send(topic, value=b"small").get(timeout=20)
    finally:
        producer.close(timeout=10)
    assert md.offset == 0, "the rejected batch used up an offset"
    got = consume(bootstrap, topic, {0: 1})
    assert [r.value for r in got[0]] == [b"small"]


def test_message_too_large_protocol_level(bootstrap, admin):
    topic = unique_name("toolarge-raw")
    create_topic(admin, topic, 1, {"max.message.bytes": "2048"})
    big = kafka_wire.encode_batch([kafka_wire.Record(None, b"y" * 4000)])
    assert len(big) > 2048
    small = kafka_wire.encode_batch([kafka_wire.Record(b"k", b"y" * 500),
                                     kafka_wire.Record(b"k", b"z" * 500)])
    assert len(small) < 2048
    with kafka_wire.RawConn(bootstrap) as c:
        part = c.produce_v3(topic, 0, big)
        assert part["error_code"] == kafka_wire.ERR_MESSAGE_TOO_LARGE, part
        part = c.produce_v3(topic, 0, small)
        assert part["error_code"] == 0, part
        assert part["base_offset"] == 0, part
        fetched = c.fetch_v4(topic, 0, 0)
        assert fetched["error_code"] == 0
        assert fetched["high_watermark"] == 2
        recs = [r for b in fetched["batches"] for r in b.records]
        assert [(r.offset, r.value) for r in recs] == [(0, b"y" * 500), (1, b"z" * 500)]

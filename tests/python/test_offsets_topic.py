"""The internal __consumer_offsets topic: a group's commits, readable in Kafka's format.

A plain kafka-python reader decodes the records (key v1 + value v3, as Kafka 3.x writes
them) from the partition Kafka would use (Java's String.hashCode of the group, mod 50);
a newer commit of a key replaces the older record; clients may not write the topic.
"""

from __future__ import annotations

import struct
import time

import pytest
from kafka import TopicPartition

import kafka_wire
from kafka_wire import RawConn

from conftest import unique_name
from helpers import create_topic, make_consumer, make_producer, send_all

OFFSETS_TOPIC = "__consumer_offsets"


def java_partition(group: str, partitions: int = 50) -> int:
    h = 0
    data = group.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    if h >= 1 << 31:
        h -= 1 << 32
    h = 0 if h == -(1 << 31) else abs(h)
    return h % partitions


def read_string(b: bytes, at: int):
    (n,) = struct.unpack_from(">h", b, at)
    return b[at + 2:at + 2 + n].decode(), at + 2 + n


def decode_offset_record(key: bytes, value: bytes | None):
    (version,) = struct.unpack_from(">h", key, 0)
    if version not in (0, 1):
        return None  # group metadata (v2) or anything else
    group, at = read_string(key, 2)
    topic, at = read_string(key, at)
    (partition,) = struct.unpack_from(">i", key, at)
    if value is None:
        return group, topic, partition, None
    (vv,) = struct.unpack_from(">h", value, 0)
    assert vv in (1, 3), vv
    if vv == 3:
        offset, epoch = struct.unpack_from(">qi", value, 2)
        metadata, at = read_string(value, 14)
    else:
        (offset,) = struct.unpack_from(">q", value, 2)
        metadata, at = read_string(value, 10)
    return group, topic, partition, (offset, metadata)


def read_offsets_topic(bootstrap, group, timeout=10.0):
    """Every offset record of `group` in its partition, in order."""
    tp = TopicPartition(OFFSETS_TOPIC, java_partition(group))
    c = make_consumer(bootstrap)
    c.assign([tp])
    c.seek_to_beginning(tp)
    out = []
    deadline = time.monotonic() + timeout
    end = c.end_offsets([tp])[tp]
    while time.monotonic() < deadline and c.position(tp) < end:
        for records in c.poll(timeout_ms=300).values():
            for r in records:
                rec = decode_offset_record(r.key, r.value)
                if rec and rec[0] == group:
                    out.append((r.offset, rec))
    c.close()
    return out


def commit(bootstrap, group, topic, partition, offset):
    from kafka import OffsetAndMetadata
    c = make_consumer(bootstrap, group_id=group)
    tp = TopicPartition(topic, partition)
    c.assign([tp])
    c.commit({tp: OffsetAndMetadata(offset, "note", -1)})
    c.close()


def test_commits_appear_in_the_offsets_topic(bootstrap, admin):
    topic = unique_name("off")
    group = unique_name("g")
    create_topic(admin, topic, partitions=2)
    p = make_producer(bootstrap)
    send_all(p, topic, [{"key": b"k", "value": b"v", "partition": i % 2} for i in range(5)])
    p.close()
    commit(bootstrap, group, topic, 0, 3)
    commit(bootstrap, group, topic, 1, 1)
    got = read_offsets_topic(bootstrap, group)
    latest = {(t, part): v for _, (_, t, part, v) in got}
    assert latest == {(topic, 0): (3, "note"), (topic, 1): (1, "note")}
    # A newer commit of the same key replaces the record: the topic stays compacted.
    commit(bootstrap, group, topic, 0, 5)
    got = read_offsets_topic(bootstrap, group)
    keys = [(t, part) for _, (_, t, part, _) in got]
    assert sorted(keys) == [(topic, 0), (topic, 1)], got
    assert dict(((t, part), v) for _, (_, t, part, v) in got)[(topic, 0)] == (5, "note")
    offsets = [o for o, _ in got]
    assert offsets == sorted(offsets) and offsets[-1] > 1, "offsets only grow"


def test_the_offsets_topic_is_internal_and_read_only(bootstrap, admin):
    group = unique_name("g")
    topic = unique_name("off")
    create_topic(admin, topic)
    commit(bootstrap, group, topic, 0, 0)
    (meta,) = admin.describe_topics([OFFSETS_TOPIC])
    assert meta["is_internal"] is True
    assert len(meta["partitions"]) == 50
    # kafka-python will not even try; a raw Produce is refused with INVALID_TOPIC (17).
    with RawConn(bootstrap) as c:
        forged = kafka_wire.encode_batch([kafka_wire.Record(b"forged", b"x", [])])
        part = c.produce_v3(OFFSETS_TOPIC, java_partition(group), forged)
        assert part["error_code"] == 17, part
    with pytest.raises(Exception):
        admin.delete_topics([OFFSETS_TOPIC])

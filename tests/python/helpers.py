"""kafka-python helpers shared by the test modules (no consumer groups)."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]

# Bounded timeouts everywhere so a misbehaving broker fails a test instead of
# hanging it.
CLIENT_TIMEOUTS = dict(request_timeout_ms=15000, bootstrap_timeout_ms=15000)


def make_producer(bootstrap, codec="none", **overrides) -> KafkaProducer:
    cfg = dict(
        bootstrap_servers=bootstrap,
        client_id="sluice-pytest-producer",
        acks="all",
        compression_type=None if codec == "none" else codec,
        linger_ms=5,
        max_block_ms=15000,
        delivery_timeout_ms=30000,
        # Plain round trips do not depend on InitProducerId; the idempotent
        # producer has a test of its own.
        enable_idempotence=False,
        **CLIENT_TIMEOUTS,
    )
    cfg.update(overrides)
    return KafkaProducer(**cfg)


def make_consumer(bootstrap, **overrides) -> KafkaConsumer:
    cfg = dict(
        bootstrap_servers=bootstrap,
        client_id="sluice-pytest-consumer",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=200,
        **CLIENT_TIMEOUTS,
    )
    cfg.update(overrides)
    return KafkaConsumer(**cfg)


def create_topic(admin, name, partitions=1, configs=None):
    admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1,
                                "configs": dict(configs or {})}})
    wait_for_partitions(admin, name, partitions)


def wait_for_partitions(admin, name, partitions, timeout=15.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            (t,) = admin.describe_topics([name])
            last = t
            if t["error_code"] == 0 and len(t["partitions"]) == partitions and all(
                    p["error_code"] == 0 and p["leader_id"] >= 0 for p in t["partitions"]):
                return t
        except Exception as e:  # noqa: BLE001 - keep polling until the deadline
            last = e
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not ready with {partitions} partitions: {last!r}")


def send_all(producer, topic, records, timeout=30.0):
    """records: iterable of dicts with key/value/headers/partition/timestamp_ms.

    Returns a list of (record dict, RecordMetadata) in send order.
    """
    futures = []
    for rec in records:
        fut = producer.send(topic, key=rec.get("key"), value=rec.get("value"),
                            headers=rec.get("headers") or None,
                            partition=rec.get("partition"),
                            timestamp_ms=rec.get("timestamp_ms"))
        futures.append((rec, fut))
    producer.flush(timeout=timeout)
    return [(rec, fut.get(timeout=timeout)) for rec, fut in futures]


def consume(bootstrap, topic, expected, start=None, timeout=30.0, consumer=None,
            extra_poll_s=0.5, **consumer_cfg):
    """Reads ``expected[partition]`` records from each partition of ``expected``.

    ``start``: {partition: offset}; default: from the beginning.
    Returns {partition: [ConsumerRecord, ...]}. After the expected counts are
    reached it keeps polling for ``extra_poll_s`` to catch duplicates or extras.
    """
    own = consumer is None
    if own:
        consumer = make_consumer(bootstrap, **consumer_cfg)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(expected)]
        consumer.assign(tps)
        for tp in tps:
            if start and tp.partition in start:
                consumer.seek(tp, start[tp.partition])
            else:
                consumer.seek_to_beginning(tp)
        got = {p: [] for p in expected}
        deadline = time.monotonic() + timeout
        done_at = None
        while True:
            now = time.monotonic()
            if done_at is None and all(len(got[p]) >= expected[p] for p in expected):
                done_at = now
            if done_at is not None and now - done_at >= extra_poll_s:
                break
            if now > deadline:
                summary = {p: f"{len(got[p])}/{expected[p]}" for p in expected}
                raise AssertionError(f"timed out after {timeout}s consuming {topic}: got {summary}")
            batch = consumer.poll(timeout_ms=200)
            for tp, recs in batch.items():
                got[tp.partition].extend(recs)
        return got
    finally:
        if own:
            consumer.close()


def assert_contiguous(got, expected, start=None):
    """Offsets per partition are start, start+1, ... with no gap or duplicate."""
    for p, recs in got.items():
        first = (start or {}).get(p, 0)
        offsets = [r.offset for r in recs]
        want = list(range(first, first + expected[p]))
        assert offsets == want, (
            f"partition {p}: offsets not contiguous from {first}: got {len(offsets)} records, "
            f"first few {offsets[:10]}, expected {len(want)} (duplicates: "
            f"{sorted({o for o in offsets if offsets.count(o) > 1})[:10]}, missing: "
            f"{sorted(set(want) - set(offsets))[:10]})")

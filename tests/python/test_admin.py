"""Topic administration through kafka-python's KafkaAdminClient."""

from __future__ import annotations

import time

import kafka.errors as Errors
import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from conftest import unique_name
from helpers import (assert_contiguous, consume, create_topic, make_producer, send_all,
                     wait_for_partitions)

KEYS = ["retention.ms", "retention.bytes", "cleanup.policy", "max.message.bytes",
        "message.timestamp.type"]


def topic_configs(admin, topic, config_filter="all"):
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                 config_filter=config_filter)
    return res.get("topic", {}).get(topic, {})


def wait_until(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_controller_is_a_live_broker(admin, bootstrap):
    cluster = admin.describe_cluster()
    ids = {b["broker_id"] for b in cluster["brokers"]}
    assert len(ids) == 1, cluster
    assert cluster["controller_id"] in ids, f"controller {cluster['controller_id']} not in {ids}"
    (broker,) = cluster["brokers"]
    assert f"{broker['host']}:{broker['port']}" == bootstrap


def test_create_topic_with_partitions_and_configs(admin):
    topic = unique_name("adm-create")
    configs = {"retention.ms": "3600000", "retention.bytes": "1073741824",
               "cleanup.policy": "delete", "max.message.bytes": "2097152",
               "message.timestamp.type": "LogAppendTime"}
    res = admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1,
                                       "configs": configs}})
    (t,) = res["topics"]
    assert t["name"] == topic and t["error_code"] == 0, res
    info = wait_for_partitions(admin, topic, 3)
    assert sorted(p["partition_index"] for p in info["partitions"]) == [0, 1, 2]
    assert topic in admin.list_topics()

    all_cfg = topic_configs(admin, topic, "all")
    for k, v in configs.items():
        assert k in all_cfg, f"{k} missing from DescribeConfigs: {sorted(all_cfg)}"
        assert all_cfg[k]["value"] == v, f"{k}: {all_cfg[k]['value']!r} != {v!r}"
    # The default filter keeps only values set on the topic: all five were set.
    modified = topic_configs(admin, topic, "modified")
    assert set(configs) <= set(modified), (
        f"configs set at creation not reported as topic overrides: {sorted(modified)}")
    for k in configs:
        assert modified[k]["config_source"] == "DYNAMIC_TOPIC_CONFIG", modified[k]


def test_describe_configs_defaults(admin):
    topic = unique_name("adm-defaults")
    create_topic(admin, topic, 1)
    cfg = topic_configs(admin, topic, "all")
    missing = [k for k in KEYS if k not in cfg]
    assert not missing, f"DescribeConfigs lacks {missing}; has {sorted(cfg)}"
    assert cfg["cleanup.policy"]["value"] == "delete"
    assert cfg["message.timestamp.type"]["value"] == "CreateTime"
    assert cfg["retention.bytes"]["value"] == "-1"
    retention_ms = int(cfg["retention.ms"]["value"])
    assert retention_ms == -1 or retention_ms > 0
    assert int(cfg["max.message.bytes"]["value"]) > 0
    for k in KEYS:
        assert cfg[k]["read_only"] is False, f"{k} should be alterable: {cfg[k]}"
    # Nothing was set on this topic: the 'modified' view lists none of them.
    modified = topic_configs(admin, topic, "modified")
    assert not set(KEYS) & set(modified), f"defaults reported as overrides: {modified}"


def test_describe_selected_config_keys(admin):
    topic = unique_name("adm-select")
    create_topic(admin, topic, 1, {"retention.ms": "123456"})
    res = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, ["retention.ms", "cleanup.policy"])],
        config_filter="all")
    cfg = res["topic"][topic]
    assert set(cfg) == {"retention.ms", "cleanup.policy"}, sorted(cfg)
    assert cfg["retention.ms"]["value"] == "123456"


def test_alter_configs(admin):
    topic = unique_name("adm-alter")
    create_topic(admin, topic, 1, {"max.message.bytes": "2097152"})
    res = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                              {"retention.ms": "7200000",
                                               "retention.bytes": "5000000"})])
    assert res == {"topic": {topic: "OK"}}, res
    cfg = topic_configs(admin, topic, "all")
    assert cfg["retention.ms"]["value"] == "7200000"
    assert cfg["retention.bytes"]["value"] == "5000000"
    assert cfg["max.message.bytes"]["value"] == "2097152", "an unrelated override was lost"
    modified = topic_configs(admin, topic, "modified")
    assert {"retention.ms", "retention.bytes", "max.message.bytes"} <= set(modified)


def test_alter_max_message_bytes_takes_effect(admin, bootstrap):
    topic = unique_name("adm-mmb")
    create_topic(admin, topic, 1, {"max.message.bytes": "1000"})
    producer = make_producer(bootstrap, max_request_size=1 << 20, linger_ms=0, retries=0)
    try:
        with pytest.raises(Errors.MessageSizeTooLargeError):
            producer.send(topic, value=b"x" * 5000).get(timeout=20)
        res = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  {"max.message.bytes": "100000"})])
        assert res == {"topic": {topic: "OK"}}, res
        md = producer.send(topic, value=b"x" * 5000).get(timeout=20)
        assert md.offset == 0
    finally:
        producer.close(timeout=10)


def test_invalid_config_value_on_create(admin):
    topic = unique_name("adm-bad")
    with pytest.raises(Errors.InvalidConfigurationError):
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1,
                                     "configs": {"retention.ms": "not-a-number"}}})
    assert topic not in admin.list_topics(), "topic created despite an invalid config"
    with pytest.raises(Errors.InvalidConfigurationError):
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1,
                                     "configs": {"cleanup.policy": "shred"}}})
    with pytest.raises(Errors.InvalidConfigurationError):
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1,
                                     "configs": {"no.such.config": "1"}}})
    assert topic not in admin.list_topics()


def test_invalid_config_value_on_alter(admin):
    topic = unique_name("adm-bad-alter")
    create_topic(admin, topic, 1, {"retention.ms": "3600000"})
    res = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                              {"retention.ms": "soon"})])
    result = res["topic"][topic]
    # kafka-python formats a failed resource as "[Error 40] InvalidConfigurationError: ...".
    assert result != "OK" and "InvalidConfigurationError" in result, res
    assert topic_configs(admin, topic)["retention.ms"]["value"] == "3600000", \
        "a rejected alter changed the value"


def test_create_partitions(admin, bootstrap):
    topic = unique_name("adm-parts")
    create_topic(admin, topic, 2)
    admin.create_partitions({topic: 5})
    wait_for_partitions(admin, topic, 5)
    producer = make_producer(bootstrap)
    try:
        sent = send_all(producer, topic, [{"value": f"p{p}".encode(), "partition": p}
                                          for p in range(5)])
    finally:
        producer.close(timeout=10)
    assert sorted((md.partition, md.offset) for _, md in sent) == [(p, 0) for p in range(5)]
    got = consume(bootstrap, topic, {p: 1 for p in range(5)})
    assert_contiguous(got, {p: 1 for p in range(5)})
    assert all(got[p][0].value == f"p{p}".encode() for p in range(5))
    with pytest.raises(Errors.InvalidPartitionsError):
        admin.create_partitions({topic: 3})


def test_create_existing_topic_fails(admin):
    topic = unique_name("adm-dup")
    create_topic(admin, topic, 1)
    with pytest.raises(Errors.TopicAlreadyExistsError):
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})


def test_create_topic_with_zero_partitions_fails(admin):
    topic = unique_name("adm-zero")
    with pytest.raises(Errors.InvalidPartitionsError):
        admin.create_topics({topic: {"num_partitions": 0, "replication_factor": 1}})


def test_delete_topic_and_recreate(admin, bootstrap):
    topic = unique_name("adm-del")
    create_topic(admin, topic, 2)
    producer = make_producer(bootstrap)
    try:
        send_all(producer, topic, [{"value": b"old", "partition": i % 2} for i in range(10)])
    finally:
        producer.close(timeout=10)
    res = admin.delete_topics([topic])
    (t,) = res["topics"]
    assert t["error_code"] == 0, res
    wait_until(lambda: topic not in admin.list_topics(), what=f"{topic} to leave list_topics")
    with pytest.raises(Errors.UnknownTopicOrPartitionError):
        admin.delete_topics([topic])

    # Same name again: a brand-new, empty topic.
    create_topic(admin, topic, 1)
    producer = make_producer(bootstrap)
    try:
        ((_, md),) = send_all(producer, topic, [{"value": b"new"}])
    finally:
        producer.close(timeout=10)
    assert md.offset == 0, "recreated topic kept the old topic's offsets"
    got = consume(bootstrap, topic, {0: 1})
    assert [r.value for r in got[0]] == [b"new"]


def test_list_topics(admin):
    names = [unique_name("adm-list") for _ in range(3)]
    for n in names:
        create_topic(admin, n, 1)
    listed = admin.list_topics()
    assert set(names) <= set(listed)
    assert len(listed) == len(set(listed)), "duplicate names in list_topics"

"""Kafka ACLs and client quotas per virtual cluster, with kafka-python against the real
binary (--kafka-auth sasl): ACLs made, described and deleted with KafkaAdminClient; the
cluster's `acls_enabled` turned on through the JSON API (PATCH /api/v1/clusters/C);
TOPIC_AUTHORIZATION_FAILED without WRITE, a PREFIXED ALLOW that lets a key produce, a DENY
that wins over it; quotas set with AlterClientQuotas and a producer throttled to its
producer_byte_rate."""

from __future__ import annotations

import http.cookiejar
import json
import re
import time
import urllib.request

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                         NewTopic, ResourcePattern, ResourcePatternFilter, ResourceType)
from kafka.errors import (ClusterAuthorizationFailedError, GroupAuthorizationFailedError,
                          TopicAuthorizationFailedError)
from kafka.protocol.admin import AlterClientQuotasRequest, DescribeClientQuotasRequest

from conftest import unique_name

PASSWORD = "correct horse battery"


class Console:
    """A signed-in console user speaking the JSON API (session cookie + X-CSRF-Token)."""

    def __init__(self, server):
        self.base = server.http_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        page = self.opener.open(self.base + "/signup", timeout=10).read().decode()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"csrf": csrf, "email": f"{unique_name('o')}@example.com",
                                       "password": PASSWORD, "org": "ACL testers"}).encode()
        self.opener.open(urllib.request.Request(self.base + "/signup", data=form), timeout=10)
        self.csrf = self.call("GET", "/api/v1/me")["csrf_token"]

    def call(self, method, path, body=None):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        req.add_header("Content-Type", "application/json")
        if getattr(self, "csrf", None):
            req.add_header("X-CSRF-Token", self.csrf)
        with self.opener.open(req, timeout=10) as resp:
            text = resp.read().decode()
            return json.loads(text) if text else None

    def cluster(self, name):
        return self.call("POST", "/api/v1/clusters", {"name": name})

    def key(self, cluster_id, name):
        made = self.call("POST", f"/api/v1/clusters/{cluster_id}/api-keys", {"name": name})
        return made["key"]["id"], made["secret"]


def sasl(bootstrap, key):
    return dict(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="SCRAM-SHA-256", sasl_plain_username=key[0],
                sasl_plain_password=key[1], request_timeout_ms=15000)


@pytest.fixture
def setup(start_sluice):
    server = start_sluice("--kafka-auth", "sasl", label="acl")
    console = Console(server)
    cluster = console.cluster(unique_name("acl"))
    return server, console, cluster


def acl(principal, op, rtype, name, pattern=ACLResourcePatternType.LITERAL,
        perm=ACLPermissionType.ALLOW):
    return ACL(principal=principal, host="*", operation=op, permission_type=perm,
               resource_pattern=ResourcePattern(rtype, name, pattern))


def every_acl_of(principal=None):
    return ACLFilter(principal=principal, host=None, operation=ACLOperation.ANY,
                     permission_type=ACLPermissionType.ANY,
                     resource_pattern=ResourcePatternFilter(ResourceType.ANY, None,
                                                            ACLResourcePatternType.ANY))


def test_acls_managed_and_enforced(setup):
    server, console, cluster = setup
    boss = console.key(cluster["id"], "boss")
    app = console.key(cluster["id"], "app")
    admin = KafkaAdminClient(**sasl(server.bootstrap, boss))
    boss_p, app_p = f"User:{boss[0]}", f"User:{app[0]}"

    # ACLs off: every key may manage ACLs. The boss gets everything on the cluster and
    # every topic; the app may write topics under "orders." but not "orders.secret".
    made = admin.create_acls([
        acl(boss_p, ACLOperation.ALL, ResourceType.CLUSTER, "kafka-cluster"),
        acl(boss_p, ACLOperation.ALL, ResourceType.TOPIC, "*"),
        acl(app_p, ACLOperation.WRITE, ResourceType.TOPIC, "orders.", ACLResourcePatternType.PREFIXED),
        acl(app_p, ACLOperation.WRITE, ResourceType.TOPIC, "orders.secret",
            perm=ACLPermissionType.DENY),
        acl(app_p, ACLOperation.READ, ResourceType.TOPIC, "audit"),
    ])
    assert len(made["succeeded"]) == 5 and not made["failed"], made
    bad = admin.create_acls([acl(app_p, ACLOperation.ALL, ResourceType.CLUSTER, "not-the-cluster")])
    assert len(bad["failed"]) == 1, "the cluster resource must be named kafka-cluster"

    found, _ = admin.describe_acls(every_acl_of(app_p))
    assert {(a.operation, a.permission_type, a.resource_pattern.resource_name,
             a.resource_pattern.pattern_type) for a in found} == {
        (ACLOperation.WRITE, ACLPermissionType.ALLOW, "orders.", ACLResourcePatternType.PREFIXED),
        (ACLOperation.WRITE, ACLPermissionType.DENY, "orders.secret", ACLResourcePatternType.LITERAL),
        (ACLOperation.READ, ACLPermissionType.ALLOW, "audit", ACLResourcePatternType.LITERAL),
    }
    # MATCH finds every pattern that applies to one topic (the prefix and the literal).
    matching, _ = admin.describe_acls(ACLFilter(
        principal=None, host=None, operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, "orders.secret",
                                               ACLResourcePatternType.MATCH)))
    assert {a.resource_pattern.resource_name for a in matching} == {"orders.", "orders.secret", "*"}

    for t in ("orders.eu", "orders.secret", "payments", "audit"):
        admin.create_topics([NewTopic(t, 1, 1)])

    enabled = console.call("PATCH", f"/api/v1/clusters/{cluster['id']}", {"acls_enabled": True})
    assert enabled["acls_enabled"] is True

    producer = KafkaProducer(max_block_ms=10000, **sasl(server.bootstrap, app))
    producer.send("orders.eu", b"allowed by the prefix").get(timeout=15)
    for refused in ("payments", "orders.secret"):
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(refused, b"refused").get(timeout=15)
    producer.close()

    # Metadata lists only what the key may describe (WRITE and READ imply DESCRIBE; the
    # DENY of WRITE does not deny DESCRIBE).
    app_admin = KafkaAdminClient(**sasl(server.bootstrap, app))
    assert set(app_admin.list_topics()) == {"orders.eu", "orders.secret", "audit"}
    # Describing ACLs needs DESCRIBE on the cluster, which the app lacks.
    with pytest.raises(ClusterAuthorizationFailedError):
        app_admin.describe_acls(every_acl_of())
    app_admin.close()

    # Reading with a group needs READ on the group too.
    consumer = KafkaConsumer(group_id="audit-readers", consumer_timeout_ms=5000,
                             auto_offset_reset="earliest", **sasl(server.bootstrap, app))
    consumer.subscribe(["audit"])
    with pytest.raises(GroupAuthorizationFailedError):
        consumer.poll(timeout_ms=10000)
        consumer.poll(timeout_ms=5000)
    consumer.close()

    # The boss deletes the app's DENY: orders.secret takes writes at once on this agent.
    deleted = admin.delete_acls([ACLFilter(
        principal=app_p, host="*", operation=ACLOperation.WRITE,
        permission_type=ACLPermissionType.DENY,
        resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, "orders.secret",
                                               ACLResourcePatternType.LITERAL))])
    assert len(deleted[0][1]) == 1, deleted
    producer = KafkaProducer(max_block_ms=10000, **sasl(server.bootstrap, app))
    producer.send("orders.secret", b"now allowed").get(timeout=15)
    producer.close()

    # Enforcement off again: everything is allowed.
    console.call("PATCH", f"/api/v1/clusters/{cluster['id']}", {"acls_enabled": False})
    time.sleep(2.5)  # the agent's ACL cache (changes from the API are dropped at once, too)
    producer = KafkaProducer(max_block_ms=10000, **sasl(server.bootstrap, app))
    producer.send("payments", b"no acls enforced").get(timeout=15)
    producer.close()
    admin.close()


def test_acl_page_in_the_console(setup):
    server, console, cluster = setup
    key = console.key(cluster["id"], "viewer")
    page = console.opener.open(f"{server.http_url}/clusters/{cluster['id']}/acls", timeout=10).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({
        "csrf": csrf, "principal": key[0], "permission": "ALLOW", "operation": "READ",
        "resource_type": "TOPIC", "pattern_type": "PREFIXED", "resource_name": "logs.", "host": "*",
    }).encode()
    console.opener.open(urllib.request.Request(
        f"{server.http_url}/clusters/{cluster['id']}/acls", data=form), timeout=10)
    admin = KafkaAdminClient(**sasl(server.bootstrap, key))
    found, _ = admin.describe_acls(every_acl_of(f"User:{key[0]}"))
    assert [(a.operation, a.resource_pattern.resource_name) for a in found] == [(ACLOperation.READ, "logs.")]
    admin.close()
    keys_page = console.opener.open(f"{server.http_url}/clusters/{cluster['id']}/keys", timeout=10).read().decode()
    assert "1 ACL" in keys_page and f"principal=User%3A{key[0]}" in keys_page


def alter_quota(admin, key_id, name, value):
    req = AlterClientQuotasRequest(
        entries=[AlterClientQuotasRequest.EntryData(
            entity=[AlterClientQuotasRequest.EntryData.EntityData(entity_type="user",
                                                                  entity_name=key_id)],
            ops=[AlterClientQuotasRequest.EntryData.OpData(key=name, value=value or 0.0,
                                                           remove=value is None)])],
        validate_only=False)
    resp = admin._manager.run(admin._manager.send, req)
    assert [e.error_code for e in resp.entries] == [0], resp


def describe_quotas(admin, key_id):
    req = DescribeClientQuotasRequest(
        components=[DescribeClientQuotasRequest.ComponentData(entity_type="user", match_type=0,
                                                              match=key_id)],
        strict=False)
    resp = admin._manager.run(admin._manager.send, req)
    assert resp.error_code == 0, resp
    return {v.key: v.value for e in resp.entries for v in e.values}


def test_producer_throttled_to_its_quota(setup):
    server, console, cluster = setup
    key = console.key(cluster["id"], "bulk")
    admin = KafkaAdminClient(**sasl(server.bootstrap, key))
    topic = unique_name("quota")
    admin.create_topics([NewTopic(topic, 1, 1)])
    alter_quota(admin, key[0], "producer_byte_rate", 1_000_000.0)
    assert describe_quotas(admin, key[0]) == {"producer_byte_rate": 1_000_000.0}

    producer = KafkaProducer(max_block_ms=30000, linger_ms=5, batch_size=256 * 1024,
                             max_request_size=2 << 20, compression_type=None,
                             request_timeout_ms=30000, **{k: v for k, v in sasl(server.bootstrap, key).items()
                                                          if k != "request_timeout_ms"})
    value = bytes(range(256)) * 400  # 100 KiB, incompressible enough not to matter
    started = time.monotonic()
    futures = [producer.send(topic, value) for _ in range(50)]  # ~5 MB
    for f in futures:
        f.get(timeout=60)
    producer.flush()
    elapsed = time.monotonic() - started
    metrics = producer.metrics()
    # The broker-connection metrics of kafka-python record each throttle_time_ms received.
    throttle_max = max((v for group in metrics.values() for k, v in group.items()
                        if k == "throttle-time-max" and isinstance(v, (int, float))), default=0)
    producer.close()
    # 5.1 MB at 1 MB/s after a one-second burst: about 4 s (and well under 5 s unthrottled
    # would take a fraction of a second on loopback).
    print(f"5 MB took {elapsed:.2f} s at 1 MB/s; largest throttle_time_ms {throttle_max}")
    assert 3.0 <= elapsed <= 12.0, f"5 MB took {elapsed:.1f} s at 1 MB/s"
    assert throttle_max > 0, metrics

    # Removing the quota lifts the throttle.
    alter_quota(admin, key[0], "producer_byte_rate", None)
    assert describe_quotas(admin, key[0]) == {}
    admin.close()


def test_consumer_throttled_to_its_quota(setup):
    server, console, cluster = setup
    key = console.key(cluster["id"], "reader")
    admin = KafkaAdminClient(**sasl(server.bootstrap, key))
    topic = unique_name("fetch-quota")
    admin.create_topics([NewTopic(topic, 1, 1)])
    producer = KafkaProducer(max_block_ms=30000, batch_size=256 * 1024, max_request_size=2 << 20,
                             **sasl(server.bootstrap, key))
    value = bytes(range(256)) * 400  # 100 KiB
    for f in [producer.send(topic, value) for _ in range(40)]:  # ~4 MB
        f.get(timeout=60)
    producer.close()
    alter_quota(admin, key[0], "consumer_byte_rate", 1_000_000.0)
    assert describe_quotas(admin, key[0]) == {"consumer_byte_rate": 1_000_000.0}

    consumer = KafkaConsumer(consumer_timeout_ms=15000, fetch_max_bytes=1 << 20,
                             max_partition_fetch_bytes=1 << 20, **sasl(server.bootstrap, key))
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    started = time.monotonic()
    got = 0
    for _ in consumer:
        got += 1
        if got == 40:
            break
    elapsed = time.monotonic() - started
    consumer.close()
    print(f"4 MB read in {elapsed:.2f} s at consumer_byte_rate 1 MB/s")
    assert got == 40
    # 4.1 MB at 1 MB/s after a one-second burst: 2.5-3 s (unthrottled: a fraction of one).
    assert 1.5 <= elapsed <= 12.0, f"4 MB read in {elapsed:.1f} s at 1 MB/s"
    admin.close()

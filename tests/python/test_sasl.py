"""SASL on the Kafka port (--kafka-auth sasl) with kafka-python and kcat: API keys of
virtual clusters over PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, including old librdkafka's
SCRAM nonce quirk (Debian's kcat), and isolation between clusters."""

from __future__ import annotations

import subprocess

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from conftest import unique_name


def admin_cli(server, *args) -> str:
    cmd = [str(server.binary), *args, "--data-dir", str(server.data_dir)]
    if server._pg is not None:
        cmd += ["--database-url", server._pg.url]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"{cmd}: {res.stderr}"
    return res.stdout


def new_key(server, cluster) -> tuple[str, str]:
    out = admin_cli(server, "api-keys", "create", "--cluster", cluster)
    fields = {}
    for line in out.splitlines():
        if "key id" in line:
            fields["id"] = line.split()[-1]
        if "secret (" in line:
            fields["secret"] = line.split()[-1]
    return fields["id"], fields["secret"]


@pytest.fixture
def sasl_server(start_sluice):
    server = start_sluice("--kafka-auth", "sasl", label="sasl")
    admin_cli(server, "clusters", "create", "red")
    admin_cli(server, "clusters", "create", "blue")
    return server


def client_kwargs(bootstrap, mechanism, key):
    return dict(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=mechanism, sasl_plain_username=key[0], sasl_plain_password=key[1],
                request_timeout_ms=10000)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kafka_python_every_mechanism(sasl_server, mechanism):
    key = new_key(sasl_server, "red")
    topic = unique_name("sasl-py")
    producer = KafkaProducer(max_block_ms=10000, **client_kwargs(sasl_server.bootstrap, mechanism, key))
    for i in range(5):
        producer.send(topic, key=b"k", value=f"v{i}".encode()).get(timeout=15)
    producer.close()
    consumer = KafkaConsumer(consumer_timeout_ms=5000, **client_kwargs(sasl_server.bootstrap, mechanism, key))
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    values = [m.value for m in consumer]
    consumer.close()
    assert values == [f"v{i}".encode() for i in range(5)]


def test_wrong_secret_is_refused(sasl_server):
    key_id, _ = new_key(sasl_server, "red")
    with pytest.raises(KafkaError):
        p = KafkaProducer(max_block_ms=5000,
                          **client_kwargs(sasl_server.bootstrap, "SCRAM-SHA-256", (key_id, "nope")))
        p.send(unique_name("x"), b"x").get(timeout=10)


def kcat_sasl(kcat, server, mechanism, key, args, input_text=None):
    base = [kcat, "-b", server.bootstrap, "-X", "security.protocol=SASL_PLAINTEXT",
            "-X", f"sasl.mechanisms={mechanism}", "-X", f"sasl.username={key[0]}",
            "-X", f"sasl.password={key[1]}", "-X", "message.timeout.ms=15000"]
    return subprocess.run(base + args, input=input_text, capture_output=True, text=True, timeout=60,
                          stdin=None if input_text is not None else subprocess.DEVNULL)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kcat_every_mechanism_and_cluster_isolation(kcat, sasl_server, mechanism):
    red = new_key(sasl_server, "red")
    blue = new_key(sasl_server, "blue")
    topic = unique_name("sasl-kcat")
    res = kcat_sasl(kcat, sasl_server, mechanism, red, ["-P", "-t", topic], "r1\nr2\n")
    assert res.returncode == 0, res.stderr
    res = kcat_sasl(kcat, sasl_server, mechanism, blue, ["-P", "-t", topic], "b1\n")
    assert res.returncode == 0, res.stderr
    red_read = kcat_sasl(kcat, sasl_server, mechanism, red, ["-C", "-t", topic, "-o", "beginning", "-e", "-q"])
    blue_read = kcat_sasl(kcat, sasl_server, mechanism, blue, ["-C", "-t", topic, "-o", "beginning", "-e", "-q"])
    assert red_read.stdout.split() == ["r1", "r2"], red_read.stderr
    assert blue_read.stdout.split() == ["b1"], "the same topic name is another topic in another cluster"


def test_unauthenticated_clients_are_disconnected(kcat, sasl_server):
    res = subprocess.run([kcat, "-b", sasl_server.bootstrap, "-L", "-m", "5"], capture_output=True,
                         text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert res.returncode != 0

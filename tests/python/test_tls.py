"""TLS on the Kafka port with real clients: kafka-python and kcat over SSL and SASL_SSL,
client certificates acting as API keys (mTLS), the plaintext listener turned off, and
curl over HTTPS. Certificates are made with the openssl CLI for each module."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from conftest import unique_name
from test_sasl import admin_cli, new_key


def openssl(cwd: Path, *args: str):
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"openssl {args}: {res.stderr}"


class Pki:
    """A CA and the certificates it signs, under ``dir``."""

    def __init__(self, dir: Path):
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        openssl(dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-days", "2", "-subj", "/CN=Sluice pytest CA", "-keyout", "ca.key",
                "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.ca = str(dir / "ca.pem")

    def issue(self, name: str, cn: str, ext: str) -> tuple[str, str]:
        (self.dir / f"{name}.ext").write_text(ext)
        openssl(self.dir, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-subj", f"/CN={cn}", "-keyout", f"{name}.key", "-out", f"{name}.csr")
        openssl(self.dir, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey",
                "ca.key", "-CAcreateserial", "-days", "2", "-out", f"{name}.pem",
                "-extfile", f"{name}.ext")
        return str(self.dir / f"{name}.pem"), str(self.dir / f"{name}.key")

    def server(self) -> tuple[str, str]:
        return self.issue("server", "localhost", "basicConstraints=CA:FALSE\n"
                          "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                          "extendedKeyUsage=serverAuth\n")

    def client(self, name: str, cn: str) -> tuple[str, str]:
        return self.issue(name, cn, "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def tls_args(pki: Pki, *extra: str) -> list[str]:
    cert, key = pki.server()
    return ["--kafka-tls-addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, *extra]


def ssl_kwargs(pki: Pki, bootstrap: str, cert: tuple[str, str] | None = None, **extra) -> dict:
    kw = dict(bootstrap_servers=bootstrap, security_protocol="SSL", ssl_cafile=pki.ca,
              ssl_check_hostname=True, request_timeout_ms=10000, **extra)
    if cert is not None:
        kw.update(ssl_certfile=cert[0], ssl_keyfile=cert[1])
    return kw


def roundtrip(kwargs: dict, n: int = 5) -> list[bytes]:
    topic = unique_name("tls")
    producer = KafkaProducer(max_block_ms=10000, **kwargs)
    for i in range(n):
        producer.send(topic, value=f"v{i}".encode()).get(timeout=15)
    producer.close()
    consumer = KafkaConsumer(consumer_timeout_ms=5000, **kwargs)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    values = [m.value for m in consumer]
    consumer.close()
    return values


def test_kafka_python_over_ssl_is_told_the_tls_address(start_sluice, pki):
    server = start_sluice(*tls_args(pki), label="tls")
    assert server.kafka_tls_addr and server.kafka_tls_addr != server.kafka_addr
    assert roundtrip(ssl_kwargs(pki, server.kafka_tls_addr)) == [f"v{i}".encode() for i in range(5)]
    # The brokers a TLS client learns from Metadata are the TLS addresses.
    consumer = KafkaConsumer(**ssl_kwargs(pki, server.kafka_tls_addr))
    consumer.topics()
    brokers = consumer._client.cluster.brokers()
    consumer.close()
    assert [f"{b.host}:{b.port}" for b in brokers] == [server.kafka_tls_addr]


def test_kafka_python_sasl_ssl(start_sluice, pki):
    server = start_sluice(*tls_args(pki, "--kafka-auth", "sasl"), label="sasl-ssl")
    admin_cli(server, "clusters", "create", "red")
    key = new_key(server, "red")
    kw = ssl_kwargs(pki, server.kafka_tls_addr, sasl_mechanism="SCRAM-SHA-256",
                    sasl_plain_username=key[0], sasl_plain_password=key[1])
    kw["security_protocol"] = "SASL_SSL"
    assert roundtrip(kw) == [f"v{i}".encode() for i in range(5)]


def kcat_tls(kcat, bootstrap, pki: Pki, args, extra=(), input_text=None):
    base = [kcat, "-b", bootstrap, "-X", "ssl.ca.location=" + pki.ca,
            "-X", "message.timeout.ms=15000", *extra]
    return subprocess.run(base + args, input=input_text, capture_output=True, text=True,
                          timeout=60, stdin=None if input_text is not None else subprocess.DEVNULL)


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_kcat_ssl_and_sasl_ssl(start_sluice, pki, kcat, protocol):
    auth = ["--kafka-auth", "sasl"] if protocol == "SASL_SSL" else []
    server = start_sluice(*tls_args(pki, *auth), label=f"kcat-{protocol}")
    extra = ["-X", f"security.protocol={protocol}"]
    if protocol == "SASL_SSL":
        admin_cli(server, "clusters", "create", "red")
        key = new_key(server, "red")
        extra += ["-X", "sasl.mechanisms=PLAIN", "-X", f"sasl.username={key[0]}",
                  "-X", f"sasl.password={key[1]}"]
    topic = unique_name("kcat-tls")
    res = kcat_tls(kcat, server.kafka_tls_addr, pki, ["-P", "-t", topic], extra, "a\nb\nc\n")
    assert res.returncode == 0, res.stderr
    res = kcat_tls(kcat, server.kafka_tls_addr, pki, ["-C", "-t", topic, "-o", "beginning", "-e"],
                   extra)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["a", "b", "c"]


def test_client_certificate_acts_as_its_key(start_sluice, pki, kcat):
    server = start_sluice(*tls_args(pki, "--tls-client-ca", pki.ca, "--kafka-auth", "sasl"),
                          label="mtls")
    admin_cli(server, "clusters", "create", "red")
    key = new_key(server, "red")
    cert = pki.client(f"key-{key[0]}", key[0])
    # kcat with only a certificate (security.protocol=SSL, no SASL) produces into red.
    topic = unique_name("mtls")
    cert_args = ["-X", "security.protocol=SSL", "-X", f"ssl.certificate.location={cert[0]}",
                 "-X", f"ssl.key.location={cert[1]}"]
    res = kcat_tls(kcat, server.kafka_tls_addr, pki, ["-P", "-t", topic], cert_args, "x\ny\n")
    assert res.returncode == 0, res.stderr
    # kafka-python with the certificate reads them back.
    consumer = KafkaConsumer(consumer_timeout_ms=5000, **ssl_kwargs(pki, server.kafka_tls_addr, cert))
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    assert [m.value for m in consumer] == [b"x", b"y"]
    consumer.close()
    # The topic is red's: the key over SASL_PLAINTEXT sees it.
    red = KafkaConsumer(bootstrap_servers=server.bootstrap, security_protocol="SASL_PLAINTEXT",
                        sasl_mechanism="PLAIN", sasl_plain_username=key[0],
                        sasl_plain_password=key[1], request_timeout_ms=10000)
    assert topic in red.topics()
    red.close()
    # Without a certificate, the TLS listener refuses the client.
    res = kcat_tls(kcat, server.kafka_tls_addr, pki, ["-L", "-m", "5"], ["-X", "security.protocol=SSL"])
    assert res.returncode != 0


def test_tls_only_agent(start_sluice, pki):
    server = start_sluice(*tls_args(pki, "--kafka-addr", "none"), label="tls-only")
    assert server.kafka_addr == "none"
    assert roundtrip(ssl_kwargs(pki, server.kafka_tls_addr), 2) == [b"v0", b"v1"]


def test_curl_over_https(start_sluice, pki):
    cert, key = pki.server()
    server = start_sluice("--https-addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
                          label="https")
    res = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", pki.ca,
                          f"https://{server.https_addr}/healthz"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and res.stdout == "ok\n", res.stderr
    # The plain HTTP port keeps serving the same router.
    res = subprocess.run(["curl", "-sS", "--max-time", "20", f"{server.http_url}/healthz"],
                         capture_output=True, text=True, timeout=30)
    assert res.stdout == "ok\n"

"""Compatibility with Debian's kcat (librdkafka 2.0.2)."""

from __future__ import annotations

import re
import subprocess

import pytest

import kafka_wire
from conftest import unique_name
from helpers import CODECS, create_topic

KCAT_TIMEOUT_S = 45
# librdkafka retries for message.timeout.ms (default 300 s): bound it.
PRODUCER_X = ["-X", "message.timeout.ms=20000", "-X", "socket.timeout.ms=10000"]


def run_kcat(kcat, args, input_text=None, timeout=KCAT_TIMEOUT_S):
    try:
        res = subprocess.run([kcat, *args], input=input_text, capture_output=True, text=True,
                             timeout=timeout, stdin=None if input_text is not None
                             else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"kcat {' '.join(args)} did not finish within {timeout}s\n"
                    f"stdout: {e.stdout!r:.2000}\nstderr: {e.stderr!r:.2000}")
    return res


def kcat_ok(kcat, args, input_text=None):
    res = run_kcat(kcat, args, input_text)
    assert res.returncode == 0, (
        f"kcat {' '.join(args)} exited {res.returncode}\nstdout:\n{res.stdout[-2000:]}\n"
        f"stderr:\n{res.stderr[-4000:]}")
    return res


def produce_lines(kcat, bootstrap, topic, lines, codec="none", extra=()):
    args = ["-b", bootstrap, "-t", topic, "-P", "-K", ":", *PRODUCER_X, *extra]
    if codec != "none":
        args += ["-z", codec]
    kcat_ok(kcat, args, "".join(line + "\n" for line in lines))


def consume_lines(kcat, bootstrap, topic, offset="beginning", partition=None):
    args = ["-b", bootstrap, "-t", topic, "-C", "-o", str(offset), "-e", "-q",
            "-f", "%p|%o|%k|%s\n"]
    if partition is not None:
        args += ["-p", str(partition)]
    res = kcat_ok(kcat, args)
    out = []
    for line in res.stdout.splitlines():
        p, o, k, v = line.split("|", 3)
        out.append((int(p), int(o), k, v))
    return out


def test_kcat_metadata_lists_broker(kcat, bootstrap, admin):
    topic = unique_name("kcat-md")
    create_topic(admin, topic, 4)
    res = kcat_ok(kcat, ["-b", bootstrap, "-L"])
    host, port = kafka_wire.parse_addr(bootstrap)
    assert " 1 brokers:" in res.stdout, res.stdout
    assert re.search(rf"broker -?\d+ at {re.escape(host)}:{port}\b", res.stdout), res.stdout
    assert f'topic "{topic}" with 4 partitions:' in res.stdout, res.stdout
    res = kcat_ok(kcat, ["-b", bootstrap, "-L", "-t", topic])
    assert f'topic "{topic}" with 4 partitions:' in res.stdout
    for p in range(4):
        assert re.search(rf"partition {p}, leader -?\d+, replicas: ", res.stdout), res.stdout


def test_kcat_features_enabled(kcat, bootstrap):
    """librdkafka 2.0.2 prints which protocol features the advertised ApiVersions enable."""
    res = kcat_ok(kcat, ["-b", bootstrap, "-d", "feature", "-L"])
    log = res.stderr
    enabled = set(re.findall(r"Enabling feature (\w+)", log))
    disabled = set(re.findall(r"Disabling feature (\w+)", log))
    for feature in ("MsgVer2", "LZ4", "ZSTD", "ApiVersion", "OffsetTime"):
        assert feature in enabled and feature not in disabled, (
            f"feature {feature} not enabled by kcat (enabled {sorted(enabled)}, disabled "
            f"{sorted(disabled)})\n{log[-3000:]}")
    m = re.findall(r"Updated enabled protocol features to (\S+)", log)
    if m:
        final = set(m[-1].split(","))
        assert {"MsgVer2", "LZ4", "ZSTD"} <= final, m[-1]


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_roundtrip(kcat, bootstrap, admin, codec):
    topic = unique_name(f"kcat-{codec}")
    create_topic(admin, topic, 1)
    lines = [f"key{i % 7}:line {i} {codec} " + "abc" * (i % 13) for i in range(200)]
    produce_lines(kcat, bootstrap, topic, lines, codec)
    got = consume_lines(kcat, bootstrap, topic)
    assert [o for _, o, _, _ in got] == list(range(200)), "offsets not contiguous from 0"
    assert [f"{k}:{v}" for _, _, k, v in got] == lines
    # kcat must really have compressed: the stored batches carry its codec
    # (old librdkafka silently sends uncompressed data if Produce v0 is not advertised).
    batches = kafka_wire.fetch_all_batches(bootstrap, topic, 0, 200)
    codecs = {b.codec for b in batches}
    assert codecs == {codec}, f"kcat -z {codec}: stored batches use {codecs}"


def test_kcat_roundtrip_multi_partition(kcat, bootstrap, admin):
    topic = unique_name("kcat-multi")
    create_topic(admin, topic, 6)
    lines = [f"k{i}:v{i}" for i in range(300)]
    produce_lines(kcat, bootstrap, topic, lines, "lz4")
    got = consume_lines(kcat, bootstrap, topic)
    assert sorted(f"{k}:{v}" for _, _, k, v in got) == sorted(lines)
    by_part = {}
    for p, o, k, _ in got:
        by_part.setdefault(p, []).append(o)
    assert len(by_part) > 1, "all keys landed in one partition"
    for p, offs in by_part.items():
        assert offs == list(range(len(offs))), f"partition {p}: offsets {offs[:20]}..."


def test_kcat_roundtrip_auto_create(kcat, bootstrap):
    """Producing to a fresh topic name auto-creates it (COMPAT.md trap 5)."""
    topic = unique_name("kcat-auto")
    lines = [f"a:{i}" for i in range(10)]
    produce_lines(kcat, bootstrap, topic, lines)
    got = consume_lines(kcat, bootstrap, topic)
    assert sorted(f"{k}:{v}" for _, _, k, v in got) == sorted(lines)


def test_kcat_consume_from_middle(kcat, bootstrap, admin):
    topic = unique_name("kcat-mid")
    create_topic(admin, topic, 1)
    lines = [f"k:{i}" for i in range(50)]
    # Two produce runs so the middle offset falls inside the second batch too.
    produce_lines(kcat, bootstrap, topic, lines[:30], "gzip")
    produce_lines(kcat, bootstrap, topic, lines[30:], "snappy")
    for start in (20, 35):
        got = consume_lines(kcat, bootstrap, topic, offset=start, partition=0)
        assert [o for _, o, _, _ in got] == list(range(start, 50))
        assert [v for _, _, _, v in got] == [str(i) for i in range(start, 50)]
    # Negative offsets count back from the end (ListOffsets latest - N).
    got = consume_lines(kcat, bootstrap, topic, offset=-5, partition=0)
    assert [o for _, o, _, _ in got] == list(range(45, 50))

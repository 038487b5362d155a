"""Raw-socket protocol tests: plain `socket` + `struct`, no client library."""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time

import pytest

import kafka_wire
from kafka_wire import RawConn, Reader, i16, i32, string
from conftest import unique_name
from helpers import create_topic

CLOSE_TIMEOUT_S = 5.0
_RNG = random.Random(20261125)  # fixed seed: the same "random" garbage on every run


@pytest.fixture
def hostile(start_sluice):
    """A fresh server per hostile-input test, so that a crash is pinned on its input."""
    return start_sluice(label="hostile-input target").bootstrap


def assert_server_serves_new_client(addr):
    with RawConn(addr, timeout=10) as c:
        error, ranges, _ = c.api_versions_v0()
    assert error == 0
    assert kafka_wire.API_API_VERSIONS in ranges


def test_api_versions_v0(bootstrap):
    with RawConn(bootstrap) as c:
        corr = c.send_request(kafka_wire.API_API_VERSIONS, 0, b"")
        frame = c.recv_frame()
    r = Reader(frame)
    assert r.i32() == corr, "response header v0 must start with the correlation id"
    error, ranges, keys = kafka_wire.parse_api_versions_v0(r)
    assert error == 0
    assert r.remaining() == 0, f"{r.remaining()} trailing bytes after the v0 body"
    assert len(keys) == len(ranges), "an API key is listed twice"
    for key, (lo, hi) in ranges.items():
        assert 0 <= lo <= hi, f"api {key}: bad range {lo}..{hi}"
    for key in (kafka_wire.API_PRODUCE, kafka_wire.API_FETCH, kafka_wire.API_LIST_OFFSETS,
                kafka_wire.API_METADATA, kafka_wire.API_API_VERSIONS):
        assert key in ranges, f"api key {key} missing from ApiVersions: {sorted(ranges)}"
    lo, hi = ranges[kafka_wire.API_API_VERSIONS]
    assert lo == 0 and hi >= 3, f"ApiVersions range {lo}..{hi}"


def test_api_versions_ranges_satisfy_old_librdkafka(bootstrap):
    """librdkafka < 2.11 (Debian's 2.0.2) enables features only if the advertised
    ranges contain specific versions (see shared COMPAT.md, trap 2)."""
    with RawConn(bootstrap) as c:
        _, ranges, _ = c.api_versions_v0()

    def contains(key, v):
        lo, hi = ranges.get(key, (1, 0))
        return lo <= v <= hi

    assert contains(kafka_wire.API_PRODUCE, 0), f"Produce {ranges.get(0)} (gzip/snappy/lz4)"
    assert contains(kafka_wire.API_PRODUCE, 3) and contains(kafka_wire.API_FETCH, 4), \
        f"message format v2 needs Produce 3 / Fetch 4: {ranges.get(0)} {ranges.get(1)}"
    assert contains(kafka_wire.API_PRODUCE, 7) and contains(kafka_wire.API_FETCH, 10), \
        f"zstd needs Produce 7 / Fetch 10: {ranges.get(0)} {ranges.get(1)}"
    assert contains(kafka_wire.API_LIST_OFFSETS, 1), f"ListOffsets {ranges.get(2)}"
    assert 63 not in ranges, "GetTelemetrySubscriptions must not be advertised (trap 9)"


def test_api_versions_too_new_gets_error_35_in_v0_layout(bootstrap):
    with RawConn(bootstrap) as c:
        # What a future client sends: header v2, compact v3+ body
        # (client_software_name, client_software_version, tagged fields).
        body = b"\x07sluice" + b"\x041.0" + b"\x00"
        corr = c.send_request(kafka_wire.API_API_VERSIONS, 99, body, header_version=2, corr=4242)
        frame = c.recv_frame()
        r = Reader(frame)
        assert r.i32() == corr
        error = r.i16()
        assert error == kafka_wire.ERR_UNSUPPORTED_VERSION, f"error code {error}, want 35"
        n = r.i32()
        assert 0 < n < 1000, f"array length {n}: not an int32-length (v0) array"
        keys = {}
        for _ in range(n):
            key, lo, hi = r.i16(), r.i16(), r.i16()
            keys[key] = (lo, hi)
        assert r.remaining() == 0, (
            f"{r.remaining()} bytes after the v0 body (error + int32 array only)")
        assert kafka_wire.API_API_VERSIONS in keys, "the error reply must list the supported ranges"
        lo, hi = keys[kafka_wire.API_API_VERSIONS]
        assert lo == 0 and 3 <= hi < 99
        # The connection stays usable: the client retries with a supported version.
        error, ranges, _ = c.api_versions_v0()
        assert error == 0 and ranges == keys


def test_pipelined_requests_answered_in_order(bootstrap):
    with RawConn(bootstrap) as c:
        corrs = [c.send_request(kafka_wire.API_API_VERSIONS, 0, b"", corr=1000 + i)
                 for i in range(5)]
        seen = []
        for _ in corrs:
            r = c.recv_response()
            seen.append(struct.unpack(">i", r.data[:4])[0])
    assert seen == corrs


def test_truncated_frame_closes_connection(hostile):
    with RawConn(hostile) as c:
        frame = c.header(kafka_wire.API_METADATA, 1, 7) + i32(-1)
        c.send_raw(i32(len(frame) + 50) + frame)  # promises 50 bytes more than it sends
        c.sock.shutdown(socket.SHUT_WR)
        outcome = c.wait_closed(CLOSE_TIMEOUT_S)
    assert outcome in ("closed", "reset"), f"broker did not close a truncated frame: {outcome}"
    assert_server_serves_new_client(hostile)


@pytest.mark.parametrize("garbage", [
    pytest.param(b"\xff" * 8, id="all-ones-header"),
    pytest.param(_RNG.randbytes(64), id="random-bytes"),
    # A Metadata v1 header whose client_id length runs past the frame.
    pytest.param(i16(3) + i16(1) + i32(9) + i16(30000) + b"abc", id="bad-string-length"),
    # A Metadata v1 request whose topic array claims 1e9 entries.
    pytest.param(i16(3) + i16(1) + i32(9) + string("x") + i32(1_000_000_000), id="huge-array"),
    # A Produce v3 whose records field is not a record batch.
    pytest.param(i16(0) + i16(3) + i32(9) + string("x") + i16(-1) + i16(1) + i32(1000)
                 + i32(1) + string("t") + i32(1) + i32(0) + i32(12) + b"\x00" * 12,
                 id="produce-bad-batch"),
])
def test_garbage_frame_closes_or_errors(hostile, garbage):
    with RawConn(hostile) as c:
        c.send_raw(i32(len(garbage)) + garbage)
        outcome = c.wait_closed(CLOSE_TIMEOUT_S)
    # Closing is the norm; an error response is acceptable too. Silence is not.
    assert outcome in ("closed", "reset", "data"), f"no reaction to garbage: {outcome}"
    assert_server_serves_new_client(hostile)


@pytest.mark.parametrize("size", [100 * 1024 * 1024 + 1, 0x7FFFFFFF, -1, -2147483648],
                         ids=["100MiB+1", "2GiB", "minus-one", "int-min"])
def test_bad_length_prefix_closes_connection(hostile, size):
    with RawConn(hostile) as c:
        c.send_raw(struct.pack(">i", size) + b"\x00\x12\x00\x00\x00\x00\x00\x01")
        outcome = c.wait_closed(CLOSE_TIMEOUT_S)
    assert outcome in ("closed", "reset"), (
        f"length prefix {size}: the broker must close the connection, got {outcome}")
    assert_server_serves_new_client(hostile)


def test_unknown_api_key_closes_connection(hostile):
    with RawConn(hostile) as c:
        c.send_request(12345, 0, b"\x00\x00\x00\x00")
        outcome = c.wait_closed(CLOSE_TIMEOUT_S)
    assert outcome in ("closed", "reset"), f"unknown API key: got {outcome}, want a close"
    assert_server_serves_new_client(hostile)


def test_many_bad_clients_then_good_one(hostile):
    """A burst of misbehaving connections leaves the broker healthy."""
    for i in range(20):
        s = socket.create_connection(kafka_wire.parse_addr(hostile), timeout=5)
        try:
            s.sendall(_RNG.randbytes(i * 7 + 1))
        except OSError:
            pass
        s.close()
    assert_server_serves_new_client(hostile)


def test_metadata_v4_lists_this_broker(bootstrap, admin):
    topic = unique_name("raw-md")
    create_topic(admin, topic, 3)
    with RawConn(bootstrap) as c:
        md = c.metadata_v4([topic], allow_auto_create=False)
    (b,) = md["brokers"]
    assert f"{b['host']}:{b['port']}" == bootstrap
    assert md["controller_id"] == b["node_id"], "controller id must be a live broker"
    (t,) = md["topics"]
    assert t["error_code"] == 0 and t["name"] == topic
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    assert all(p["leader"] == b["node_id"] and p["error_code"] == 0 for p in t["partitions"])


def test_produce_fetch_v3_v4_roundtrip_and_high_watermark(bootstrap, admin):
    topic = unique_name("raw-rt")
    create_topic(admin, topic, 1)
    with RawConn(bootstrap) as c:
        offsets = []
        for n in (1, 5, 3):
            recs = [kafka_wire.Record(f"k{i}".encode(), f"v{len(offsets)}-{i}".encode(),
                                      [("h", b"1")], timestamp_delta=i)
                    for i in range(n)]
            part = c.produce_v3(topic, 0, kafka_wire.encode_batch(recs))
            assert part["error_code"] == 0, part
            offsets.append(part["base_offset"])
        assert offsets == [0, 1, 6], f"base offsets {offsets}"
        fetched = c.fetch_v4(topic, 0, 0)
        assert fetched["error_code"] == 0
        assert fetched["high_watermark"] == 9, "high watermark is last offset + 1 per record"
        batches = fetched["batches"]
        assert all(b.crc_ok and b.magic == 2 for b in batches)
        recs = [r for b in batches for r in b.records]
        assert [r.offset for r in recs] == list(range(9))
        assert recs[0].value == b"v0-0" and recs[1].value == b"v1-0" and recs[8].value == b"v2-2"
        assert all(r.headers == [("h", b"1")] for r in recs)
        # Fetching from the middle of a batch returns that batch (clients skip ahead).
        mid = c.fetch_v4(topic, 0, 3)
        assert mid["batches"] and mid["batches"][0].base_offset <= 3 <= mid["batches"][0].last_offset
        # Fetching at the end returns nothing, and past the end OFFSET_OUT_OF_RANGE (1).
        end = c.fetch_v4(topic, 0, 9, max_wait_ms=0)
        assert end["error_code"] == 0 and not end["batches"]
        past = c.fetch_v4(topic, 0, 50, max_wait_ms=0)
        assert past["error_code"] == 1, past


def test_fetch_long_poll_waits_and_wakes(bootstrap, admin):
    topic = unique_name("raw-poll")
    create_topic(admin, topic, 1)
    with RawConn(bootstrap, timeout=15) as c:
        # Nothing arrives: the broker holds the fetch for about max_wait_ms.
        t0 = time.monotonic()
        empty = c.fetch_v4(topic, 0, 0, max_wait_ms=1500, min_bytes=1)
        waited = time.monotonic() - t0
        assert empty["error_code"] == 0 and not empty["batches"]
        assert 1.2 <= waited < 5, f"empty long poll returned after {waited:.2f}s, want ~1.5s"

        # Data arrives 0.5 s into a 10 s wait: the fetch returns right after it.
        def produce_later():
            time.sleep(0.5)
            with RawConn(bootstrap) as p:
                p.produce_v3(topic, 0, kafka_wire.encode_batch([kafka_wire.Record(None, b"wake")]))

        t = threading.Thread(target=produce_later)
        t0 = time.monotonic()
        t.start()
        got = c.fetch_v4(topic, 0, 0, max_wait_ms=10_000, min_bytes=1)
        waited = time.monotonic() - t0
        t.join(timeout=15)
        assert got["error_code"] == 0
        recs = [r for b in got["batches"] for r in b.records]
        assert [r.value for r in recs] == [b"wake"]
        assert waited < 3, f"long poll returned {waited:.2f}s after start; produce was at 0.5s"


def test_advertised_kafka_addr_is_used_in_metadata(start_sluice):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = start_sluice("--kafka-addr", f"127.0.0.1:{port}",
                          "--advertised-kafka-addr", f"localhost:{port}")
    assert server.bootstrap == f"127.0.0.1:{port}"
    with RawConn(server.bootstrap) as c:
        md = c.metadata_v4(None)
    (b,) = md["brokers"]
    assert (b["host"], b["port"]) == ("localhost", port), md["brokers"]
    assert md["controller_id"] == b["node_id"]

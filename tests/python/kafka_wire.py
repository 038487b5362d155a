"""A tiny, hand-written Kafka wire-protocol toolkit for black-box tests.

No client library is used here: requests are assembled with ``struct`` and
sent over a plain ``socket`` so the tests can see exactly what the broker
answers (error codes, response layouts, closed connections).

Only the handful of non-flexible request versions the tests need are
implemented:

* ApiVersions v0 (and an arbitrary "too new" version, header v2)
* Metadata v4
* Produce v3 (magic-2 record batches, uncompressed)
* Fetch v4
* Consumer groups: FindCoordinator v0, JoinGroup v1, SyncGroup v1, Heartbeat v1,
  LeaveGroup v1, OffsetCommit v2, OffsetFetch v1
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2
API_METADATA = 3
API_OFFSET_COMMIT = 8
API_OFFSET_FETCH = 9
API_FIND_COORDINATOR = 10
API_JOIN_GROUP = 11
API_HEARTBEAT = 12
API_LEAVE_GROUP = 13
API_SYNC_GROUP = 14
API_API_VERSIONS = 18
API_INIT_PRODUCER_ID = 22

ERR_NONE = 0
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_MESSAGE_TOO_LARGE = 10
ERR_OFFSET_METADATA_TOO_LARGE = 12
ERR_ILLEGAL_GENERATION = 22
ERR_UNKNOWN_MEMBER_ID = 25
ERR_INVALID_SESSION_TIMEOUT = 26
ERR_REBALANCE_IN_PROGRESS = 27
ERR_UNSUPPORTED_VERSION = 35

CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
CODEC_IDS = {v: k for k, v in CODEC_NAMES.items()}


# --------------------------------------------------------------------------
# CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, table driven.
# --------------------------------------------------------------------------
def _make_crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "crc32c self-check failed"


# --------------------------------------------------------------------------
# Primitive encoders
# --------------------------------------------------------------------------
def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def string(s):
    """Kafka STRING / NULLABLE_STRING (int16 length, -1 for null)."""
    if s is None:
        return i16(-1)
    b = s.encode() if isinstance(s, str) else s
    return i16(len(b)) + b


def nbytes(b):
    """Kafka BYTES / NULLABLE_BYTES (int32 length, -1 for null)."""
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def array(items, enc):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(enc(x) for x in items)


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(n: int) -> bytes:
    """Zig-zag encoded signed varint (works for varlong too)."""
    return uvarint((n << 1) ^ (n >> 63))


# --------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------
class Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def _take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(
                f"short read: want {n} bytes at {self.pos}, have {len(self.data) - self.pos}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self):
        return struct.unpack(">b", self._take(1))[0]

    def i16(self):
        return struct.unpack(">h", self._take(2))[0]

    def i32(self):
        return struct.unpack(">i", self._take(4))[0]

    def u32(self):
        return struct.unpack(">I", self._take(4))[0]

    def i64(self):
        return struct.unpack(">q", self._take(8))[0]

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        return self._take(n).decode()

    def nbytes(self):
        n = self.i32()
        if n < 0:
            return None
        return self._take(n)

    def array(self, fn):
        n = self.i32()
        if n < 0:
            return None
        return [fn(self) for _ in range(n)]

    def uvarint(self):
        shift = 0
        result = 0
        while True:
            b = self._take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def varint(self):
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)

    def raw(self, n):
        return self._take(n)


# --------------------------------------------------------------------------
# Record batches (magic 2)
# --------------------------------------------------------------------------
@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    headers: list = field(default_factory=list)  # [(str, bytes|None)]
    timestamp_delta: int = 0
    offset_delta: int = 0
    offset: int = -1  # absolute, filled in by the decoder


def encode_record(rec: Record, offset_delta: int) -> bytes:
    body = bytearray()
    body += i8(0)  # attributes
    body += varint(rec.timestamp_delta)
    body += varint(offset_delta)
    if rec.key is None:
        body += varint(-1)
    else:
        body += varint(len(rec.key)) + rec.key
    if rec.value is None:
        body += varint(-1)
    else:
        body += varint(len(rec.value)) + rec.value
    body += varint(len(rec.headers))
    for hk, hv in rec.headers:
        hkb = hk.encode()
        body += varint(len(hkb)) + hkb
        if hv is None:
            body += varint(-1)
        else:
            body += varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


def encode_batch(records, base_timestamp=None, producer_id=-1, producer_epoch=-1,
                 base_sequence=-1, attributes=0) -> bytes:
    """An uncompressed magic-2 record batch with base offset 0."""
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    recs = b"".join(encode_record(r, i) for i, r in enumerate(records))
    max_ts = base_timestamp + max((r.timestamp_delta for r in records), default=0)
    after_crc = (
        i16(attributes)
        + i32(len(records) - 1)  # last offset delta
        + i64(base_timestamp)
        + i64(max_ts)
        + i64(producer_id)
        + i16(producer_epoch)
        + i32(base_sequence)
        + i32(len(records))
        + recs
    )
    crc = crc32c(after_crc)
    after_length = i32(-1) + i8(2) + struct.pack(">I", crc) + after_crc  # leader epoch, magic, crc
    return i64(0) + i32(len(after_length)) + after_length


@dataclass
class Batch:
    base_offset: int
    length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int
    crc_ok: bool
    records: list | None  # decoded only for uncompressed batches

    @property
    def codec(self) -> str:
        return CODEC_NAMES.get(self.attributes & 0x07, f"unknown({self.attributes & 7})")

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta


def decode_batches(data: bytes | None) -> list[Batch]:
    """Decodes the record batches in a Fetch response's records field.

    A trailing partial batch (allowed by the protocol) is ignored.
    """
    out = []
    if not data:
        return out
    pos = 0
    while len(data) - pos >= 12:
        base_offset, length = struct.unpack_from(">qi", data, pos)
        if length < 0 or pos + 12 + length > len(data):
            break  # partial batch at the end
        r = Reader(data[pos + 12:pos + 12 + length])
        leader_epoch = r.i32()
        magic = r.i8()
        crc = r.u32()
        crc_ok = crc32c(r.data[r.pos:]) == crc
        attributes = r.i16()
        last_offset_delta = r.i32()
        base_ts = r.i64()
        max_ts = r.i64()
        pid = r.i64()
        epoch = r.i16()
        base_seq = r.i32()
        count = r.i32()
        records = None
        if attributes & 0x07 == 0 and magic == 2:
            records = []
            for _ in range(count):
                rlen = r.varint()
                rr = Reader(r.raw(rlen))
                rr.i8()
                ts_delta = rr.varint()
                off_delta = rr.varint()
                klen = rr.varint()
                key = None if klen < 0 else rr.raw(klen)
                vlen = rr.varint()
                value = None if vlen < 0 else rr.raw(vlen)
                headers = []
                for _ in range(rr.varint()):
                    hkl = rr.varint()
                    hk = rr.raw(hkl).decode()
                    hvl = rr.varint()
                    hv = None if hvl < 0 else rr.raw(hvl)
                    headers.append((hk, hv))
                records.append(Record(key, value, headers, ts_delta, off_delta,
                                      base_offset + off_delta))
        out.append(Batch(base_offset, length, leader_epoch, magic, crc, attributes,
                         last_offset_delta, base_ts, max_ts, pid, epoch, base_seq,
                         count, crc_ok, records))
        pos += 12 + length
    return out


# --------------------------------------------------------------------------
# Connection
# --------------------------------------------------------------------------
class ConnectionClosed(Exception):
    pass


def parse_addr(addr: str):
    host, _, port = addr.rpartition(":")
    return host, int(port)


class RawConn:
    """One TCP connection speaking length-prefixed Kafka frames."""

    def __init__(self, addr: str, timeout: float = 10.0, client_id: str = "sluice-pytest-raw"):
        self.sock = socket.create_connection(parse_addr(addr), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_id = client_id
        self._next_corr = 1
        self._buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- sending
    def header(self, api_key, version, corr, header_version=1) -> bytes:
        h = i16(api_key) + i16(version) + i32(corr) + string(self.client_id)
        if header_version >= 2:
            h += uvarint(0)  # empty tagged fields
        return h

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def send_request(self, api_key, version, body: bytes, header_version=1, corr=None) -> int:
        if corr is None:
            corr = self._next_corr
            self._next_corr += 1
        frame = self.header(api_key, version, corr, header_version) + body
        self.sock.sendall(i32(len(frame)) + frame)
        return corr

    # -- receiving
    def _recv_exact(self, n):
        while len(self._buf) < n:
            try:
                chunk = self.sock.recv(max(65536, n - len(self._buf)))
            except ConnectionResetError as e:
                raise ConnectionClosed("connection reset by broker") from e
            if not chunk:
                raise ConnectionClosed(
                    f"broker closed the connection ({len(self._buf)} of {n} bytes received)")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def recv_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self._recv_exact(4))
        assert 0 <= size <= 200 * 1024 * 1024, f"absurd response size {size}"
        return self._recv_exact(size)

    def recv_response(self, expected_corr=None, header_version=0) -> Reader:
        frame = self.recv_frame()
        r = Reader(frame)
        corr = r.i32()
        if expected_corr is not None:
            assert corr == expected_corr, f"correlation id {corr} != expected {expected_corr}"
        if header_version >= 1:
            # skip tagged fields
            for _ in range(r.uvarint()):
                r.uvarint()
                r.raw(r.uvarint())
        return r

    def request(self, api_key, version, body, header_version=1, resp_header_version=0) -> Reader:
        corr = self.send_request(api_key, version, body, header_version)
        try:
            return self.recv_response(corr, resp_header_version)
        except ConnectionClosed as e:
            raise ConnectionClosed(
                f"{e} while waiting for the answer to api key {api_key} v{version} "
                f"(is that version advertised by ApiVersions?)") from e

    def wait_closed(self, timeout: float) -> str:
        """Reads until the peer closes. Returns 'closed', 'reset', 'data' or 'timeout'.

        'data' means the broker sent bytes (e.g. an error response) before
        closing or before the timeout.
        """
        deadline = time.monotonic() + timeout
        got_data = bool(self._buf)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "data" if got_data else "timeout"
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return "data" if got_data else "timeout"
            except (ConnectionResetError, BrokenPipeError):
                return "reset"
            if not chunk:
                return "closed"
            got_data = True

    # -- high level requests
    def api_versions_v0(self):
        r = self.request(API_API_VERSIONS, 0, b"")
        return parse_api_versions_v0(r)

    def metadata_v4(self, topics, allow_auto_create=True):
        body = array(topics, string) + i8(1 if allow_auto_create else 0)
        r = self.request(API_METADATA, 4, body)
        return parse_metadata_v4(r)

    def produce_v3(self, topic, partition, batch: bytes, acks=-1, timeout_ms=10000):
        body = (string(None) + i16(acks) + i32(timeout_ms)
                + array([(topic, [(partition, batch)])],
                        lambda t: string(t[0]) + array(t[1], lambda p: i32(p[0]) + nbytes(p[1]))))
        r = self.request(API_PRODUCE, 3, body)
        responses = r.array(lambda r: (r.string(), r.array(
            lambda r: {"partition": r.i32(), "error_code": r.i16(), "base_offset": r.i64(),
                       "log_append_time": r.i64()})))
        r.i32()  # throttle
        return _only_partition("Produce", responses, topic, partition)

    def fetch_v4(self, topic, partition, offset, max_wait_ms=100, min_bytes=1,
                 max_bytes=64 * 1024 * 1024, partition_max_bytes=64 * 1024 * 1024):
        body = (i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(max_bytes) + i8(0)
                + array([topic], lambda t: string(t) + array(
                    [partition], lambda p: i32(p) + i64(offset) + i32(partition_max_bytes))))
        r = self.request(API_FETCH, 4, body)
        r.i32()  # throttle
        topics = r.array(lambda r: (r.string(), r.array(lambda r: {
            "partition": r.i32(),
            "error_code": r.i16(),
            "high_watermark": r.i64(),
            "last_stable_offset": r.i64(),
            "aborted": r.array(lambda r: (r.i64(), r.i64())),
            "records": r.nbytes(),
        })))
        part = _only_partition("Fetch", topics, topic, partition)
        part["batches"] = decode_batches(part["records"])
        return part


    # -- consumer groups (non-flexible versions; see the Kafka protocol guide)
    def find_coordinator_v0(self, group):
        r = self.request(API_FIND_COORDINATOR, 0, string(group))
        return {"error_code": r.i16(), "node_id": r.i32(), "host": r.string(), "port": r.i32()}

    def join_group_v1(self, group, member_id="", protocols=(), session_timeout_ms=10000,
                      rebalance_timeout_ms=10000, protocol_type="consumer"):
        """protocols: [(name, metadata bytes)]. Waits for the rebalance to complete."""
        body = (string(group) + i32(session_timeout_ms) + i32(rebalance_timeout_ms)
                + string(member_id) + string(protocol_type)
                + array(list(protocols), lambda p: string(p[0]) + nbytes(p[1])))
        r = self.request(API_JOIN_GROUP, 1, body)
        return {"error_code": r.i16(), "generation_id": r.i32(), "protocol_name": r.string(),
                "leader": r.string(), "member_id": r.string(),
                "members": r.array(lambda r: (r.string(), r.nbytes()))}

    def sync_group_v1(self, group, generation_id, member_id, assignments=()):
        """assignments: [(member id, assignment bytes)] (the leader's only)."""
        body = (string(group) + i32(generation_id) + string(member_id)
                + array(list(assignments), lambda a: string(a[0]) + nbytes(a[1])))
        r = self.request(API_SYNC_GROUP, 1, body)
        return {"throttle_time_ms": r.i32(), "error_code": r.i16(), "assignment": r.nbytes()}

    def heartbeat_v1(self, group, generation_id, member_id):
        r = self.request(API_HEARTBEAT, 1, string(group) + i32(generation_id) + string(member_id))
        r.i32()  # throttle
        return r.i16()

    def leave_group_v1(self, group, member_id):
        r = self.request(API_LEAVE_GROUP, 1, string(group) + string(member_id))
        r.i32()  # throttle
        return r.i16()

    def offset_commit_v2(self, group, generation_id, member_id, offsets, retention_ms=-1):
        """offsets: {(topic, partition): (offset, metadata str or None)}.

        Returns {(topic, partition): error code}.
        """
        by_topic = {}
        for (t, p), (off, md) in offsets.items():
            by_topic.setdefault(t, []).append((p, off, md))
        body = (string(group) + i32(generation_id) + string(member_id) + i64(retention_ms)
                + array(list(by_topic.items()), lambda t: string(t[0]) + array(
                    t[1], lambda p: i32(p[0]) + i64(p[1]) + string(p[2]))))
        r = self.request(API_OFFSET_COMMIT, 2, body)
        out = {}
        for name, parts in r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16())))):
            for p, err in parts:
                out[(name, p)] = err
        return out

    def offset_fetch_v1(self, group, partitions):
        """partitions: [(topic, partition)]. Returns {(topic, partition): (offset, metadata,
        error code)}."""
        by_topic = {}
        for t, p in partitions:
            by_topic.setdefault(t, []).append(p)
        body = string(group) + array(list(by_topic.items()),
                                     lambda t: string(t[0]) + array(t[1], i32))
        r = self.request(API_OFFSET_FETCH, 1, body)
        out = {}
        for name, parts in r.array(lambda r: (r.string(), r.array(
                lambda r: (r.i32(), r.i64(), r.string(), r.i16())))):
            for p, off, md, err in parts:
                out[(name, p)] = (off, md, err)
        return out


def consumer_subscription(topics, user_data=None) -> bytes:
    """ConsumerProtocolSubscription v0 (JoinGroup metadata of protocol type "consumer")."""
    return i16(0) + array(list(topics), string) + nbytes(user_data)


def consumer_assignment(partitions, user_data=None) -> bytes:
    """ConsumerProtocolAssignment v0; partitions: {topic: [partition, ...]}."""
    return (i16(0) + array(list(partitions.items()),
                           lambda t: string(t[0]) + array(list(t[1]), i32))
            + nbytes(user_data))


def parse_consumer_assignment(data: bytes | None) -> dict:
    """{topic: [partition, ...]} from a ConsumerProtocolAssignment (any version)."""
    if not data:
        return {}
    r = Reader(data)
    r.i16()  # version
    return dict(r.array(lambda r: (r.string(), r.array(lambda r: r.i32()))))


def _only_partition(api, topics, topic, partition):
    assert topics is not None and len(topics) == 1, (
        f"{api} response lists {0 if topics is None else len(topics)} topics, "
        f"expected exactly the requested one ({topic}): {topics!r:.500}")
    name, parts = topics[0]
    assert name == topic, f"{api} response names topic {name!r}, requested {topic!r}"
    assert parts is not None and len(parts) == 1, (
        f"{api} response lists {0 if parts is None else len(parts)} partitions for {topic}, "
        f"expected exactly partition {partition}: {parts!r:.500}")
    assert parts[0]["partition"] == partition, (
        f"{api} response names partition {parts[0]['partition']}, requested {partition}")
    return parts[0]


def parse_api_versions_v0(r: Reader):
    """ApiVersions v0 body: int16 error, [int16 key, int16 min, int16 max]."""
    error = r.i16()
    keys = r.array(lambda r: (r.i16(), r.i16(), r.i16()))
    return error, {k: (lo, hi) for k, lo, hi in keys}, keys


def parse_metadata_v4(r: Reader):
    r.i32()  # throttle
    brokers = r.array(lambda r: {"node_id": r.i32(), "host": r.string(), "port": r.i32(),
                                 "rack": r.string()})
    cluster_id = r.string()
    controller = r.i32()
    topics = r.array(lambda r: {
        "error_code": r.i16(),
        "name": r.string(),
        "is_internal": r.i8(),
        "partitions": r.array(lambda r: {
            "error_code": r.i16(), "partition": r.i32(), "leader": r.i32(),
            "replicas": r.array(lambda r: r.i32()), "isr": r.array(lambda r: r.i32())}),
    })
    return {"brokers": brokers, "cluster_id": cluster_id, "controller_id": controller,
            "topics": topics}


def fetch_all_batches(addr, topic, partition, until_offset, timeout=20.0):
    """Fetches (v4) from offset 0 until ``until_offset`` is covered; returns batches."""
    batches = []
    offset = 0
    deadline = time.monotonic() + timeout
    with RawConn(addr) as c:
        while offset < until_offset:
            assert time.monotonic() < deadline, (
                f"raw fetch of {topic}/{partition} stuck at offset {offset} (< {until_offset})")
            part = c.fetch_v4(topic, partition, offset)
            assert part["error_code"] == 0, f"fetch error {part['error_code']}"
            for b in part["batches"]:
                if b.last_offset >= offset:
                    batches.append(b)
                    offset = b.last_offset + 1
    return batches

"""Consumer groups (classic protocol): kafka-python group consumers and admin, kcat -G,
committed offsets across consumer and server restarts, protocol-level error codes.

The module server starts with a short ``--group-initial-rebalance-delay`` so that the
first rebalance of every new group does not wait the 3 s default; the restart tests use
servers of their own (factory) with no delay at all.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import traceback

import kafka.errors as Errors
import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.structs import OffsetAndMetadata

import kafka_wire
from conftest import unique_name
from helpers import CLIENT_TIMEOUTS, create_topic, make_consumer, make_producer, send_all

SLUICE_SERVER_ARGS = ["--group-initial-rebalance-delay", "200ms"]

# Group timings that keep rebalances fast but bounded: a member that leaves is noticed by
# the others at their next heartbeat (500 ms), and a member that never rejoins holds a
# rebalance for at most max_poll_interval_ms (the JoinGroup rebalance timeout).
GROUP_CFG = dict(enable_auto_commit=False, auto_offset_reset="earliest",
                 session_timeout_ms=10000, heartbeat_interval_ms=500,
                 max_poll_interval_ms=30000)

# Errors a commit may legitimately meet while the group rebalances; the next owner of
# the partition re-reads from the last successful commit (at-least-once).
REBALANCE_COMMIT_ERRORS = (Errors.CommitFailedError, Errors.RebalanceInProgressError,
                           Errors.IllegalGenerationError, Errors.UnknownMemberIdError)

KCAT_TIMEOUT_S = 60


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def group_consumer(bootstrap, group, topics=(), **overrides):
    """A kafka-python group member, subscribed to ``topics``.

    It learns the topics' partitions before subscribing. Otherwise its first JoinGroup may
    go out before its first Metadata answer, the leader assigns nothing, and the
    metadata-triggered rejoin hits a kafka-python 3.0.12 race: when poll()'s timer ends
    while that JoinGroup/SyncGroup task is in flight, the next poll() finds
    need_rejoin() False (the leader's assignment snapshot already matches) and never
    completes the join. Heartbeats stay off, the assignment is never applied, and the
    broker rightly expires the member after session.timeout.ms.
    """
    cfg = dict(GROUP_CFG, group_id=group, client_id=overrides.pop("client_id", "grp-pytest"))
    cfg.update(overrides)
    consumer = make_consumer(bootstrap, **cfg)
    try:
        for t in topics:
            assert consumer.partitions_for_topic(t), f"no partitions known for topic {t}"
        if topics:
            consumer.subscribe(list(topics))
    except BaseException:
        consumer.close()
        raise
    return consumer


def new_admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="sluice-pytest-grp-admin",
                            **CLIENT_TIMEOUTS)


def wait_until(pred, timeout, what, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}. {detail()}")
        time.sleep(0.1)


def poll_until(consumer, pred, timeout, what):
    """Polls ``consumer`` collecting records until ``pred(records)``; returns the records."""
    got = []
    deadline = time.monotonic() + timeout
    while not pred(got):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s polling for {what}; got {len(got)} records "
                f"({[(r.partition, r.offset) for r in got][:20]}), assignment "
                f"{sorted(tp.partition for tp in consumer.assignment())}")
        for recs in consumer.poll(timeout_ms=200).values():
            got.extend(recs)
    return got


def end_offsets_from_acks(sent, partitions):
    ends = {p: 0 for p in range(partitions)}
    for _, md in sent:
        ends[md.partition] = max(ends[md.partition], md.offset + 1)
    return ends


def committed_offsets(admin, group):
    """{TopicPartition: OffsetAndMetadata} committed for ``group`` (OffsetFetch)."""
    return admin.list_group_offsets(group).get(group, {})


def assigned_partitions(member, topic):
    """Partitions of ``topic`` in a DescribeGroups member's decoded assignment."""
    assignment = member.get("member_assignment") or {}
    out = set()
    for entry in assignment.get("assigned_partitions") or []:
        if entry["topic"] == topic:
            out.update(entry["partitions"])
    return out


class GroupWorker(threading.Thread):
    """One group member in its own thread: subscribe, poll, record, commit() per batch.

    KafkaConsumer is not thread-safe, so everything touching the consumer (including
    close(), which sends LeaveGroup) happens in this thread; the test reads the plain
    attributes below.
    """

    def __init__(self, name, bootstrap, group, topic):
        super().__init__(name=f"grp-worker-{name}", daemon=True)
        self.label = name
        self.bootstrap = bootstrap
        self.group = group
        self.topic = topic
        self.stop_evt = threading.Event()
        self.lock = threading.Lock()
        self.records = []            # (partition, offset, key)
        self.assignment = frozenset()
        self.history = []            # distinct assignments seen, in order
        self.commits = 0
        self.commit_failures = []    # names of rebalance-time commit errors
        self.error = None
        self.closed = False

    def run(self):
        consumer = None
        try:
            consumer = group_consumer(self.bootstrap, self.group, [self.topic],
                                      client_id=f"grp-worker-{self.label}")
            while not self.stop_evt.is_set():
                batch = consumer.poll(timeout_ms=200, max_records=250)
                got = [(tp.partition, r.offset, r.key) for tp, recs in batch.items()
                       for r in recs]
                with self.lock:
                    self.records.extend(got)
                if got:
                    try:
                        consumer.commit(timeout_ms=10000)
                        self.commits += 1
                    except REBALANCE_COMMIT_ERRORS as e:
                        self.commit_failures.append(type(e).__name__)
                assignment = frozenset(tp.partition for tp in consumer.assignment())
                if assignment != self.assignment:
                    self.history.append(sorted(assignment))
                self.assignment = assignment
        except BaseException:  # noqa: BLE001 - reported by the test thread
            self.error = traceback.format_exc()
        finally:
            if consumer is not None:
                try:
                    consumer.close(timeout_ms=10000)
                except BaseException:  # noqa: BLE001
                    self.error = (self.error or "") + "close(): " + traceback.format_exc()
            self.assignment = frozenset()
            self.closed = True

    def keys(self):
        with self.lock:
            return {k for _, _, k in self.records}

    def stop(self, timeout=30.0):
        self.stop_evt.set()
        self.join(timeout)
        assert not self.is_alive(), f"worker {self.label} did not stop within {timeout}s"

    def summary(self):
        return (f"{self.label}: assignment {sorted(self.assignment)}, history {self.history}, "
                f"{len(self.records)} records, {self.commits} commits, commit failures "
                f"{self.commit_failures[:5]}, error {self.error!s:.1500}")


def check_workers(workers):
    for w in workers:
        assert w.error is None, f"worker {w.label} failed:\n{w.error}"


def partitions_cover(workers, partitions):
    """Each worker owns a non-empty set, the sets are disjoint and cover all partitions."""
    sets = [w.assignment for w in workers]
    if any(not s for s in sets):
        return False
    if sum(len(s) for s in sets) != partitions:
        return False
    return frozenset().union(*sets) == frozenset(range(partitions))


def wait_for_cover(workers, partitions, timeout, stage):
    def detail():
        check_workers(workers)
        return "\n".join(w.summary() for w in workers)
    wait_until(lambda: (check_workers(workers), partitions_cover(workers, partitions))[1],
               timeout, f"{stage}: {len(workers)} members sharing {partitions} partitions",
               detail)
    # Still the same a moment later (not a snapshot taken mid-rebalance).
    time.sleep(0.5)
    assert partitions_cover(workers, partitions), (
        f"{stage}: assignment changed right after it looked stable:\n" + detail())
    return {w.label: sorted(w.assignment) for w in workers}


# --------------------------------------------------------------------------
# 1. three members share a topic; one leaves, one joins; at-least-once + commits
# --------------------------------------------------------------------------
def test_group_members_share_partitions_and_commit_everything(bootstrap, admin):
    partitions = 12
    topic = unique_name("grp-share")
    group = unique_name("g-share")
    create_topic(admin, topic, partitions)
    keys = [f"key-{i:05d}".encode() for i in range(3000)]
    workers = []

    def seen():
        return set().union(*(w.keys() for w in workers))

    def summaries():
        return "\n".join(w.summary() for w in workers)

    producer = make_producer(bootstrap)
    try:
        # Phase 1: a third of the data exists before anyone joins.
        sent = send_all(producer, topic, [{"key": k, "value": b"v-" + k} for k in keys[:1000]])
        a, b, c = (GroupWorker(n, bootstrap, group, topic) for n in "abc")
        workers += [a, b, c]
        for w in (a, b, c):
            w.start()
        first = wait_for_cover([a, b, c], partitions, 60, "three members")
        # The assignors kafka-python offers (range, roundrobin) split 12 over 3 evenly.
        assert sorted(len(p) for p in first.values()) == [4, 4, 4], first

        # Phase 2: more data while they consume, then one member leaves (LeaveGroup).
        sent += send_all(producer, topic, [{"key": k, "value": b"v-" + k}
                                           for k in keys[1000:2000]])
        wait_until(lambda: len(seen()) >= 1200, 60, "the group to consume 1200 records",
                   summaries)
        c.stop()
        check_workers(workers)
        second = wait_for_cover([a, b], partitions, 30, "two members after c left")
        assert sorted(len(p) for p in second.values()) == [6, 6], second

        # Phase 3: a new member joins, then the rest of the data arrives.
        d = GroupWorker("d", bootstrap, group, topic)
        workers.append(d)
        d.start()
        third = wait_for_cover([a, b, d], partitions, 60, "three members after d joined")
        assert sorted(len(p) for p in third.values()) == [4, 4, 4], third
        sent += send_all(producer, topic, [{"key": k, "value": b"v-" + k} for k in keys[2000:]])
        producer.close(timeout=10)

        ends = end_offsets_from_acks(sent, partitions)
        assert all(ends.values()), f"some partition got no records: {ends}"
        wait_until(lambda: seen() >= set(keys), 90, "every produced key to be consumed",
                   lambda: f"missing {len(set(keys) - seen())} keys, e.g. "
                           f"{sorted(set(keys) - seen())[:5]}\n" + summaries())
        want = {TopicPartition(topic, p): o for p, o in ends.items()}
        last = {}

        def committed_at_end():
            last.clear()
            last.update({tp: om.offset for tp, om in committed_offsets(admin, group).items()})
            return last == want

        wait_until(committed_at_end, 30, "committed offsets to reach the end offsets",
                   lambda: f"committed {sorted((tp.partition, o) for tp, o in last.items())}, "
                           f"end offsets {sorted(ends.items())}\n" + summaries())
    finally:
        producer.close(timeout=10)
        for w in workers:
            w.stop_evt.set()
        for w in workers:
            w.join(30)
    check_workers(workers)
    assert seen() == set(keys), (
        f"consumed keys that were never produced: {sorted(seen() - set(keys))[:5]}")
    # Every offset of every partition was delivered to some member.
    by_part = {}
    for w in workers:
        for p, o, _ in w.records:
            by_part.setdefault(p, set()).add(o)
    for p, end in ends.items():
        assert by_part.get(p, set()) == set(range(end)), (
            f"partition {p}: offsets missing {sorted(set(range(end)) - by_part.get(p, set()))[:10]}")
    for w in workers:
        assert w.records and w.commits, f"member {w.label} consumed or committed nothing: " \
                                        f"{w.summary()}"


# --------------------------------------------------------------------------
# 2. a new consumer of the same group resumes after the committed offset
# --------------------------------------------------------------------------
def test_restarted_consumer_resumes_from_committed_offset(bootstrap, admin):
    topic = unique_name("grp-resume")
    group = unique_name("g-resume")
    create_topic(admin, topic, 1)
    tp = TopicPartition(topic, 0)
    producer = make_producer(bootstrap)
    try:
        send_all(producer, topic, [{"key": b"k", "value": f"v{i}".encode()} for i in range(20)])

        c1 = group_consumer(bootstrap, group, [topic], max_poll_records=7)
        try:
            got = poll_until(c1, lambda g: g, 30, "the first records")
            assert [r.offset for r in got] == list(range(len(got))), [r.offset for r in got]
            last = got[-1].offset
            c1.commit()  # the consumed position: last + 1
            assert c1.committed(tp) == last + 1
        finally:
            c1.close()
        assert committed_offsets(admin, group)[tp].offset == last + 1

        send_all(producer, topic, [{"key": b"k", "value": f"v{i}".encode()}
                                   for i in range(20, 30)])

        c2 = group_consumer(bootstrap, group, [topic])
        try:
            got = poll_until(c2, lambda g: g and g[-1].offset >= 29, 30, "offsets up to 29")
            assert got[0].offset == last + 1, (
                f"restarted consumer started at offset {got[0].offset}, committed was "
                f"{last + 1}")
            assert got[0].value == f"v{last + 1}".encode()
            assert [r.offset for r in got] == list(range(last + 1, 30))
            assert [r.value for r in got] == [f"v{i}".encode() for i in range(last + 1, 30)]
            # Rewind explicitly: a commit may move the offset backwards.
            c2.commit({tp: OffsetAndMetadata(3, "rewound", -1)})
            assert c2.committed(tp, metadata=True)[:2] == (3, "rewound")
        finally:
            c2.close()

        c3 = group_consumer(bootstrap, group, [topic])
        try:
            got = poll_until(c3, lambda g: g, 30, "records after the rewind")
            assert got[0].offset == 3 and got[0].value == b"v3", (got[0].offset, got[0].value)
        finally:
            c3.close()
    finally:
        producer.close(timeout=10)


# --------------------------------------------------------------------------
# 3. committed offsets and their metadata survive a server restart
# --------------------------------------------------------------------------
METADATA = {0: "my-meta", 1: "ünïcødé ✓ {\"json\": [1, 2]}", 2: ""}
COMMITS = {0: 4, 1: 10, 2: 0}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_committed_offsets_survive_server_restart(start_sluice, sig):
    server = start_sluice("--group-initial-rebalance-delay", "0ms", label="groups restart")
    topic = unique_name("grp-restart")
    group = unique_name("g-restart")
    other = unique_name("g-other")
    tps = {p: TopicPartition(topic, p) for p in range(3)}
    offsets = {tps[p]: OffsetAndMetadata(COMMITS[p], METADATA[p], -1) for p in tps}

    admin = new_admin(server.bootstrap)
    producer = make_producer(server.bootstrap)
    try:
        create_topic(admin, topic, 3)
        send_all(producer, topic, [{"partition": p, "key": b"k", "value": f"p{p}-{i}".encode()}
                                   for p in range(3) for i in range(10)])
        consumer = group_consumer(server.bootstrap, group, [topic])
        try:
            wait_until(lambda: (consumer.poll(timeout_ms=100, max_records=1) is not None
                                and len(consumer.assignment()) == 3),
                       30, "the consumer to be assigned all 3 partitions")
            consumer.commit(offsets)  # as a member of the group's current generation
            for tp, om in offsets.items():
                got = consumer.committed(tp, metadata=True)
                assert (got.offset, got.metadata) == (om.offset, om.metadata), (tp, got)
        finally:
            consumer.close()
        # A second group with an offset committed outside the group protocol (assign()).
        simple = make_consumer(server.bootstrap, group_id=other)
        try:
            simple.assign([tps[0]])
            simple.commit({tps[0]: OffsetAndMetadata(7, "simple", -1)})
        finally:
            simple.close()
        before = committed_offsets(admin, group)
    finally:
        producer.close(timeout=10)
        admin.close()
    assert {tp: (o.offset, o.metadata) for tp, o in before.items()} == \
        {tp: (o.offset, o.metadata) for tp, o in offsets.items()}

    server.restart(sig)

    admin = new_admin(server.bootstrap)
    try:
        after = committed_offsets(admin, group)
        assert {tp: (o.offset, o.metadata) for tp, o in after.items()} == \
            {tp: (o.offset, o.metadata) for tp, o in offsets.items()}, (
            f"after a restart ({sig.name}) the committed offsets differ:\n  before {before}\n"
            f"  after  {after}")
        other_after = committed_offsets(admin, other)
        assert {tp: (o.offset, o.metadata) for tp, o in other_after.items()} == \
            {tps[0]: (7, "simple")}
        groups = {g["group_id"]: g for g in admin.list_groups()}
        assert group in groups and other in groups, sorted(groups)
    finally:
        admin.close()

    # A member of the restarted server's group resumes from the committed offsets.
    consumer = group_consumer(server.bootstrap, group, [topic])
    try:
        expected = {p: 10 - COMMITS[p] for p in range(3)}  # records after the commit
        got = poll_until(consumer, lambda g: len(g) >= sum(expected.values()), 30,
                         "the records after the committed offsets")
        time.sleep(0.3)
        got += [r for recs in consumer.poll(timeout_ms=300).values() for r in recs]
        for p in range(3):
            offs = [r.offset for r in got if r.partition == p]
            assert offs == list(range(COMMITS[p], 10)), (
                f"partition {p}: resumed at {offs[:3]}..., committed {COMMITS[p]}")
    finally:
        consumer.close()


# --------------------------------------------------------------------------
# 4. admin: list, describe, delete
# --------------------------------------------------------------------------
def test_admin_list_describe_delete_groups(bootstrap, admin):
    partitions = 4
    topic = unique_name("grp-admin")
    group = unique_name("g-admin")
    create_topic(admin, topic, partitions)
    producer = make_producer(bootstrap)
    try:
        sent = send_all(producer, topic, [{"key": f"k{i}".encode(), "value": b"x"}
                                          for i in range(200)])
    finally:
        producer.close(timeout=10)
    ends = end_offsets_from_acks(sent, partitions)
    workers = [GroupWorker(n, bootstrap, group, topic) for n in ("x", "y")]
    try:
        for w in workers:
            w.start()
        wait_for_cover(workers, partitions, 60, "two members")
        wait_until(lambda: {tp.partition: o.offset for tp, o in
                            committed_offsets(admin, group).items()} == ends,
                   30, "the members to commit the end offsets")

        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert group in listed, f"ListGroups lacks {group}: {sorted(listed)}"
        assert listed[group]["protocol_type"] == "consumer", listed[group]
        if "group_state" in listed[group]:
            assert listed[group]["group_state"] == "Stable", listed[group]
        stable = admin.list_groups(states_filter=["Stable"])
        assert group in {g["group_id"] for g in stable}, stable
        assert group not in {g["group_id"] for g in admin.list_groups(states_filter=["Empty"])}

        desc = admin.describe_groups([group])[group]
        assert desc["error"] is None, desc
        assert desc["group_state"] == "Stable", desc
        assert desc["protocol_type"] == "consumer", desc
        assert desc["protocol_data"] in ("range", "roundrobin", "sticky", "cooperative-sticky"), desc
        members = desc["members"]
        assert len(members) == 2, members
        assert len({m["member_id"] for m in members}) == 2, members
        by_client = {m["client_id"]: m for m in members}
        assert set(by_client) == {"grp-worker-x", "grp-worker-y"}, members
        for w in workers:
            m = by_client[f"grp-worker-{w.label}"]
            assert m["client_host"].lstrip("/") in ("127.0.0.1", "localhost"), m
            assert topic in (m["member_metadata"] or {}).get("topics", []), m
            assert assigned_partitions(m, topic) == set(w.assignment), (
                f"DescribeGroups assignment of {w.label} {assigned_partitions(m, topic)} != "
                f"the consumer's {sorted(w.assignment)}")

        res = admin.delete_groups([group])
        assert res == {group: "NonEmptyGroupError"}, res
        assert committed_offsets(admin, group), "a refused DeleteGroups removed the offsets"
    finally:
        for w in workers:
            w.stop_evt.set()
        for w in workers:
            w.join(30)
    check_workers(workers)

    # Both members sent LeaveGroup on close: the group is empty at once.
    wait_until(lambda: admin.describe_groups([group])[group]["group_state"] == "Empty", 10,
               "the group to become Empty", lambda: str(admin.describe_groups([group])))
    desc = admin.describe_groups([group])[group]
    assert desc["members"] == [], desc
    listed = {g["group_id"]: g for g in admin.list_groups()}
    assert group in listed, "an empty group with offsets must still be listed"

    res = admin.delete_groups([group])
    assert res == {group: "OK"}, res
    assert committed_offsets(admin, group) == {}, "offsets survived DeleteGroups"
    assert group not in {g["group_id"] for g in admin.list_groups()}
    assert admin.describe_groups([group])[group]["group_state"] == "Dead"
    res = admin.delete_groups([group])
    assert res == {group: "GroupIdNotFoundError"}, res


# --------------------------------------------------------------------------
# 5. kcat balanced consumer (-G)
# --------------------------------------------------------------------------
def run_kcat_group(kcat, bootstrap, group, topic):
    args = [kcat, "-b", bootstrap, "-G", group, "-X", "auto.offset.reset=earliest",
            "-X", "session.timeout.ms=10000", "-X", "heartbeat.interval.ms=500",
            "-e", "-q", "-f", "%p|%o|%k|%s\\n", topic]
    try:
        res = subprocess.run(args, capture_output=True, text=True, timeout=KCAT_TIMEOUT_S,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(args)} did not exit within {KCAT_TIMEOUT_S}s\n"
                    f"stdout: {e.stdout!r:.2000}\nstderr: {e.stderr!r:.3000}")
    assert res.returncode == 0, (f"{' '.join(args)} exited {res.returncode}\n"
                                 f"stdout:\n{res.stdout[-2000:]}\nstderr:\n{res.stderr[-4000:]}")
    out = []
    for line in res.stdout.splitlines():
        p, o, k, v = line.split("|", 3)
        out.append((int(p), int(o), k, v))
    return out, res


def test_kcat_balanced_consumer_commits(kcat, bootstrap, admin):
    partitions = 3
    topic = unique_name("grp-kcat")
    group = unique_name("g-kcat")
    create_topic(admin, topic, partitions)
    producer = make_producer(bootstrap)
    try:
        sent = send_all(producer, topic, [{"key": f"k{i}".encode(), "value": f"v{i}".encode()}
                                          for i in range(60)])
        got, res = run_kcat_group(kcat, bootstrap, group, topic)
        assert sorted(v for *_, v in got) == sorted(f"v{i}" for i in range(60)), (
            f"kcat -G read {len(got)} records\nstderr:\n{res.stderr[-3000:]}")
        assert len(got) == 60, "duplicates in the first kcat -G run"
        ends = end_offsets_from_acks(sent, partitions)
        committed = {tp.partition: o.offset for tp, o in committed_offsets(admin, group).items()}
        assert committed == {p: e for p, e in ends.items() if e}, (
            f"kcat -G committed {committed}, end offsets {ends}")

        again, res = run_kcat_group(kcat, bootstrap, group, topic)
        assert again == [], f"second kcat -G run re-read {len(again)} records: {again[:5]}"

        sent += send_all(producer, topic, [{"key": f"k{i}".encode(), "value": f"v{i}".encode()}
                                           for i in range(60, 65)])
        third, res = run_kcat_group(kcat, bootstrap, group, topic)
        assert sorted(v for *_, v in third) == [f"v{i}" for i in range(60, 65)], third
    finally:
        producer.close(timeout=10)
    ends = end_offsets_from_acks(sent, partitions)
    committed = {tp.partition: o.offset for tp, o in committed_offsets(admin, group).items()}
    assert committed == {p: e for p, e in ends.items() if e}, (committed, ends)


# --------------------------------------------------------------------------
# 6. protocol-level errors (raw frames)
# --------------------------------------------------------------------------
def _join_and_lead(conn, group, topic, partitions):
    """Joins ``group`` alone (JoinGroup v1) and syncs an assignment; returns (gen, member)."""
    sub = kafka_wire.consumer_subscription([topic])
    join = conn.join_group_v1(group, "", [("range", sub)])
    assert join["error_code"] == 0, join
    me, gen = join["member_id"], join["generation_id"]
    assert me and gen >= 1, join
    assert join["leader"] == me and join["protocol_name"] == "range", join
    assert join["members"] == [(me, sub)], join
    sync = conn.sync_group_v1(group, gen, me, [(me, kafka_wire.consumer_assignment(
        {topic: list(range(partitions))}))])
    assert sync["error_code"] == 0, sync
    assert kafka_wire.parse_consumer_assignment(sync["assignment"]) == \
        {topic: list(range(partitions))}, sync
    return gen, me


def test_raw_unknown_member_and_illegal_generation(bootstrap, admin):
    topic = unique_name("grp-raw")
    group = unique_name("g-raw")
    create_topic(admin, topic, 2)
    with kafka_wire.RawConn(bootstrap, timeout=20) as conn:
        fc = conn.find_coordinator_v0(group)
        assert fc["error_code"] == 0, fc
        assert f"{fc['host']}:{fc['port']}" == bootstrap, fc

        # No such group at all.
        assert conn.heartbeat_v1(group, 1, "nobody") == kafka_wire.ERR_UNKNOWN_MEMBER_ID

        gen, me = _join_and_lead(conn, group, topic, 2)
        assert conn.heartbeat_v1(group, gen, me) == 0
        assert conn.heartbeat_v1(group, gen, "not-a-member") == kafka_wire.ERR_UNKNOWN_MEMBER_ID
        assert conn.heartbeat_v1(group, gen, "") == kafka_wire.ERR_UNKNOWN_MEMBER_ID
        assert conn.heartbeat_v1(group, gen + 1, me) == kafka_wire.ERR_ILLEGAL_GENERATION

        p0, p1 = (topic, 0), (topic, 1)
        assert conn.offset_commit_v2(group, gen, me, {p0: (5, "good")}) == {p0: 0}
        res = conn.offset_commit_v2(group, gen + 1, me, {p0: (7, "bad"), p1: (3, "bad")})
        assert res == {p0: kafka_wire.ERR_ILLEGAL_GENERATION,
                       p1: kafka_wire.ERR_ILLEGAL_GENERATION}, res
        if gen > 1:
            res = conn.offset_commit_v2(group, gen - 1, me, {p0: (8, "old")})
            assert res == {p0: kafka_wire.ERR_ILLEGAL_GENERATION}, res
        res = conn.offset_commit_v2(group, gen, "not-a-member", {p0: (9, "stranger")})
        assert res == {p0: kafka_wire.ERR_UNKNOWN_MEMBER_ID}, res
        # A commit from outside the group protocol while the group has members (Kafka 3.x
        # answers UNKNOWN_MEMBER_ID; ILLEGAL_GENERATION is also a refusal).
        res = conn.offset_commit_v2(group, -1, "", {p0: (10, "outsider")})
        assert res[p0] in (kafka_wire.ERR_UNKNOWN_MEMBER_ID, kafka_wire.ERR_ILLEGAL_GENERATION), res
        res = conn.offset_commit_v2(group, gen, me, {p1: (1, "x" * 5000)})
        assert res == {p1: kafka_wire.ERR_OFFSET_METADATA_TOO_LARGE}, res

        fetched = conn.offset_fetch_v1(group, [p0, p1])
        assert fetched[p0] == (5, "good", 0), (
            f"refused commits changed the stored offset: {fetched}")
        assert fetched[p1][0] == -1 and fetched[p1][2] == 0, fetched

        assert conn.leave_group_v1(group, "not-a-member") == kafka_wire.ERR_UNKNOWN_MEMBER_ID
        assert conn.leave_group_v1(group, me) == 0
        assert conn.heartbeat_v1(group, gen, me) == kafka_wire.ERR_UNKNOWN_MEMBER_ID
        res = conn.offset_commit_v2(group, gen, me, {p0: (11, "after-leave")})
        assert res[p0] in (kafka_wire.ERR_UNKNOWN_MEMBER_ID, kafka_wire.ERR_ILLEGAL_GENERATION), res
        # With no members left, commits from outside the group protocol are accepted.
        assert conn.offset_commit_v2(group, -1, "", {p0: (12, "simple")}) == {p0: 0}
        assert conn.offset_fetch_v1(group, [p0])[p0] == (12, "simple", 0)


def test_raw_rebalance_fences_old_generation(bootstrap, admin):
    """A second member joining bumps the generation; the first member's commits with the
    old generation are refused, commits during CompletingRebalance get REBALANCE_IN_PROGRESS."""
    topic = unique_name("grp-raw-reb")
    group = unique_name("g-raw-reb")
    create_topic(admin, topic, 2)
    sub = kafka_wire.consumer_subscription([topic])
    p0, p1 = (topic, 0), (topic, 1)
    with kafka_wire.RawConn(bootstrap, timeout=30) as a, \
            kafka_wire.RawConn(bootstrap, timeout=30) as b:
        gen1, ma = _join_and_lead(a, group, topic, 2)
        assert a.offset_commit_v2(group, gen1, ma, {p0: (1, "gen1")}) == {p0: 0}

        b_join = {}

        def join_b():
            try:
                b_join.update(b.join_group_v1(group, "", [("range", sub)]))
            except BaseException as e:  # noqa: BLE001
                b_join["exception"] = repr(e)

        t = threading.Thread(target=join_b, daemon=True)
        t.start()
        codes = []
        wait_until(lambda: codes.append(a.heartbeat_v1(group, gen1, ma)) or
                   codes[-1] == kafka_wire.ERR_REBALANCE_IN_PROGRESS, 10,
                   "heartbeat to report REBALANCE_IN_PROGRESS", lambda: f"codes {codes[-5:]}")
        assert set(codes) <= {0, kafka_wire.ERR_REBALANCE_IN_PROGRESS}, codes

        rejoin = a.join_group_v1(group, ma, [("range", sub)])
        t.join(15)
        assert not t.is_alive(), "the second member's JoinGroup never returned"
        assert "exception" not in b_join, b_join
        assert rejoin["error_code"] == 0 and b_join["error_code"] == 0, (rejoin, b_join)
        gen2, mb = rejoin["generation_id"], b_join["member_id"]
        assert gen2 > gen1 and b_join["generation_id"] == gen2, (gen1, rejoin, b_join)
        assert rejoin["member_id"] == ma and mb and mb != ma
        assert rejoin["leader"] == b_join["leader"] == ma, (rejoin, b_join)
        assert sorted(m for m, _ in rejoin["members"]) == sorted([ma, mb]), rejoin
        assert b_join["members"] == [], "only the leader gets the member list"

        # Old generation: fenced. Current generation before the leader's SyncGroup: the
        # group is CompletingRebalance.
        res = a.offset_commit_v2(group, gen1, ma, {p0: (2, "stale")})
        assert res == {p0: kafka_wire.ERR_ILLEGAL_GENERATION}, res
        res = a.offset_commit_v2(group, gen2, ma, {p0: (3, "too-early")})
        assert res == {p0: kafka_wire.ERR_REBALANCE_IN_PROGRESS}, res
        assert a.heartbeat_v1(group, gen1, ma) == kafka_wire.ERR_ILLEGAL_GENERATION

        sync_a = a.sync_group_v1(group, gen2, ma, [
            (ma, kafka_wire.consumer_assignment({topic: [0]})),
            (mb, kafka_wire.consumer_assignment({topic: [1]}))])
        assert sync_a["error_code"] == 0, sync_a
        assert kafka_wire.parse_consumer_assignment(sync_a["assignment"]) == {topic: [0]}
        sync_b = b.sync_group_v1(group, gen2, mb)
        assert sync_b["error_code"] == 0, sync_b
        assert kafka_wire.parse_consumer_assignment(sync_b["assignment"]) == {topic: [1]}

        assert a.heartbeat_v1(group, gen2, ma) == 0
        assert b.heartbeat_v1(group, gen2, mb) == 0
        assert a.offset_commit_v2(group, gen2, ma, {p0: (4, "gen2-a")}) == {p0: 0}
        assert b.offset_commit_v2(group, gen2, mb, {p1: (6, "gen2-b")}) == {p1: 0}
        res = b.offset_commit_v2(group, gen1, mb, {p1: (7, "stale-b")})
        assert res == {p1: kafka_wire.ERR_ILLEGAL_GENERATION}, res
        assert a.offset_fetch_v1(group, [p0, p1]) == {p0: (4, "gen2-a", 0), p1: (6, "gen2-b", 0)}

        desc = admin.describe_groups([group])[group]
        assert desc["group_state"] == "Stable" and desc["protocol_data"] == "range", desc
        assert {m["member_id"]: assigned_partitions(m, topic) for m in desc["members"]} == \
            {ma: {0}, mb: {1}}, desc

        assert b.leave_group_v1(group, mb) == 0
        assert a.leave_group_v1(group, ma) == 0


def test_raw_session_timeout_expires_member(bootstrap, admin):
    """A member that stops heartbeating is removed after its session timeout; a JoinGroup
    with a session timeout below the broker's minimum is refused."""
    topic = unique_name("grp-raw-exp")
    group = unique_name("g-raw-exp")
    create_topic(admin, topic, 1)
    sub = kafka_wire.consumer_subscription([topic])
    with kafka_wire.RawConn(bootstrap, timeout=20) as conn:
        bad = conn.join_group_v1(group, "", [("range", sub)], session_timeout_ms=10)
        assert bad["error_code"] == kafka_wire.ERR_INVALID_SESSION_TIMEOUT, (
            f"session timeout 10 ms accepted: {bad}")

        join = conn.join_group_v1(group, "", [("range", sub)], session_timeout_ms=1500,
                                  rebalance_timeout_ms=1500)
        assert join["error_code"] == 0, join
        gen, me = join["generation_id"], join["member_id"]
        sync = conn.sync_group_v1(group, gen, me, [(me, kafka_wire.consumer_assignment(
            {topic: [0]}))])
        assert sync["error_code"] == 0, sync
        # Heartbeats within the session keep the member.
        for _ in range(4):
            time.sleep(0.5)
            assert conn.heartbeat_v1(group, gen, me) == 0
        assert admin.describe_groups([group])[group]["group_state"] == "Stable"
        started = time.monotonic()
        wait_until(lambda: admin.describe_groups([group])[group]["group_state"] != "Stable",
                   10, "the silent member to expire", lambda: str(admin.describe_groups([group])))
        waited = time.monotonic() - started
        assert waited >= 1.0, f"member expired {waited:.2f}s after its last heartbeat (< 1.5 s)"
        desc = admin.describe_groups([group])[group]
        assert desc["group_state"] in ("Empty", "Dead") and desc["members"] == [], desc
        assert conn.heartbeat_v1(group, gen, me) == kafka_wire.ERR_UNKNOWN_MEMBER_ID

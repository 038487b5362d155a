"""Kafka Streams exactly-once (processing.guarantee=exactly_once_v2) against Sluice: a word
count killed with SIGKILL mid-way and restarted must still publish exact counts.

The app is tests/java/src/sluice/WordCountEos.java (Kafka Streams 4.4.0): input lines ->
words -> repartition topic -> KTable count (in-memory store, compacted changelog topic created
by Streams) -> output topic, with commit.interval.ms=100 and no record cache, so every count
update is one output record inside a transaction. What it exercises on the broker:
transactions (InitProducerId with fencing of the killed instance's epoch, AddPartitionsToTxn,
AddOffsetsToTxn, TxnOffsetCommit, EndTxn, markers and the last stable offset),
read_committed Fetch / ListOffsets, OffsetFetch with requireStable, CreateTopics with
configs (cleanup.policy=compact for the changelog; delete, retention.ms=-1, segment.bytes for
the repartition topic), DeleteRecords on the repartition topic, classic consumer groups with
Streams' "stream" assignor, and OffsetForLeaderEpoch.

The check: after the restart every word's committed updates in the output are exactly
1, 2, ..., final, and the final counts are the expected ones (WordCountEos verify): an
aborted transaction that leaked, or a committed one that was replayed, shows up as a
repeated or skipped value, a count above the expected final one (double counting).

The module fixture ``wordcount_java`` copies the jars named by tests/java/pom.xml into
target/java-tests/libs with Maven (when missing) and compiles WordCountEos.java with javac
(again when the source is newer than its class). Without java/javac/mvn the test fails,
unless SLUICE_SKIP_JAVA=1 (skip).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from conftest import REPO_ROOT, unique_name

SLUICE_SERVER_ARGS = ["--group-initial-rebalance-delay", "0ms"]

JAVA_SRC = REPO_ROOT / "tests" / "java" / "src"
SOURCE = JAVA_SRC / "sluice" / "WordCountEos.java"
POM = REPO_ROOT / "tests" / "java" / "pom.xml"
OUT_DIR = REPO_ROOT / "target" / "java-tests"
LIBS = OUT_DIR / "libs"
CLASSES = OUT_DIR / "classes"
CLASS_FILE = CLASSES / "sluice" / "WordCountEos.class"
CLASSPATH = f"{CLASSES}{os.pathsep}{LIBS}/*"
# Present once copy-dependencies has run (the pom's versions).
NEEDED_JARS = ("kafka-clients-4.4.0.jar", "kafka-streams-4.4.0.jar")
NEEDED_PREFIXES = ("log4j-slf4j-impl-",)

LINES = 3000
# Sleep per count update in the app (3 per line): ~10 s of processing for 3000 lines, so
# the first run is surely still busy when the test kills it, most likely while writing the
# output and changelog records of an open transaction.
DELAY_MS = 1
# The first run is killed once this many repartition offsets (count updates, of 9000, and
# transaction markers) are committed, i.e. a good part of the output.
KILL_AFTER_UPDATES = 2000
START_TIMEOUT_S = 120
FINISH_TIMEOUT_S = 120
TOOL_TIMEOUT_S = 120

PROGRESS_RE = re.compile(r"^progress processed=(\d+) updates=(\d+) input_committed=(\d+|\?) "
                         r"input_end=(\d+|\?) repartition_committed=(\d+|\?) "
                         r"group_lag=(\d+|\?) state=(\S+)")


# --------------------------------------------------------------------------
# Java preparation
# --------------------------------------------------------------------------
def _missing_tool(what: str):
    msg = (f"`{what}` is not on PATH: the Kafka Streams exactly-once test needs a JDK (17+) and "
           f"Maven (apt-get install openjdk-17-jdk-headless maven). Set SLUICE_SKIP_JAVA=1 to "
           f"skip it.")
    if os.environ.get("SLUICE_SKIP_JAVA") == "1":
        pytest.skip(f"skipped: {msg}")
    pytest.fail(msg, pytrace=False)


def _run_tool(cmd: list[str], what: str, timeout: float):
    try:
        res = subprocess.run(cmd, cwd=str(REPO_ROOT), capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not finish within {timeout:.0f} s: {' '.join(cmd)}",
                    pytrace=False)
    if res.returncode != 0:
        pytest.fail(f"{what} failed (exit {res.returncode}): {' '.join(cmd)}\n--- stdout ---\n"
                    f"{res.stdout[-4000:]}\n--- stderr ---\n{res.stderr[-4000:]}", pytrace=False)


def _jars_present() -> bool:
    if not LIBS.is_dir():
        return False
    names = [p.name for p in LIBS.iterdir()]
    return (all(j in names for j in NEEDED_JARS)
            and all(any(n.startswith(p) for n in names) for p in NEEDED_PREFIXES))


@pytest.fixture(scope="module")
def wordcount_java() -> str:
    """The `java` binary, with the jars in target/java-tests/libs and WordCountEos compiled
    into target/java-tests/classes (only this source: another module's may be mid-edit)."""
    if os.environ.get("SLUICE_SKIP_JAVA") == "1":
        pytest.skip("skipped: SLUICE_SKIP_JAVA=1 (the Kafka Streams exactly-once test needs "
                    "java, javac and mvn)")
    java = shutil.which("java")
    javac = shutil.which("javac")
    if java is None:
        _missing_tool("java")
    if javac is None:
        _missing_tool("javac")
    if not _jars_present():
        mvn = shutil.which("mvn")
        if mvn is None:
            _missing_tool("mvn")
        # An absolute output directory: Maven resolves relative ones against the pom's folder.
        _run_tool([mvn, "-q", "-f", str(POM), "dependency:copy-dependencies",
                   f"-DoutputDirectory={LIBS}"], "mvn dependency:copy-dependencies", 600)
        if not _jars_present():
            pytest.fail(f"mvn copy-dependencies ran but {LIBS} lacks {NEEDED_JARS} / "
                        f"{NEEDED_PREFIXES}*", pytrace=False)
    if not CLASS_FILE.exists() or CLASS_FILE.stat().st_mtime < SOURCE.stat().st_mtime:
        CLASSES.mkdir(parents=True, exist_ok=True)
        _run_tool([javac, "-d", str(CLASSES), "-cp", f"{LIBS}/*", str(SOURCE)], "javac", 300)
    return java


def java_cmd(java: str, tmp: Path, *args: str) -> list[str]:
    # C1 only and the serial collector: quicker start-up and less CPU taken from the broker
    # on a small machine. java.io.tmpdir inside the test's directory so nothing the JVM
    # extracts outlives the test.
    return [java, "-Xmx512m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
            f"-Djava.io.tmpdir={tmp}", "-cp", CLASSPATH, "sluice.WordCountEos", *args]


def run_tool(java: str, tmp: Path, *args: str) -> tuple[int, dict | None, str, str]:
    """Runs produce / verify to completion: (exit code, its JSON line, stdout, stderr)."""
    cmd = java_cmd(java, tmp, *args)
    try:
        res = subprocess.run(cmd, cwd=str(tmp), capture_output=True, text=True,
                             timeout=TOOL_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"WordCountEos {args[0]} did not finish within {TOOL_TIMEOUT_S} s\n"
                    f"--- stdout ---\n{e.stdout or ''}\n--- stderr ---\n"
                    f"{(e.stderr or '')[-6000:]}", pytrace=False)
    doc = None
    for line in res.stdout.splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
    return res.returncode, doc, res.stdout, res.stderr


# --------------------------------------------------------------------------
# The Streams app as a child process
# --------------------------------------------------------------------------
class StreamsApp:
    """One `WordCountEos run` process; a thread keeps reading its stdout (progress lines)."""

    def __init__(self, java: str, tmp: Path, label: str, *args: str):
        self.label = label
        self.stderr_path = tmp / f"{label}.stderr.log"
        self.stdout_path = tmp / f"{label}.stdout.log"
        self.lines: list[str] = []
        self.progress: dict | None = None
        self.started_at = time.monotonic()
        self.working_at: float | None = None
        self._lock = threading.Lock()
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(java_cmd(java, tmp, "run", *args), cwd=str(tmp),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._pump, daemon=True,
                                        name=f"wordcount-{label}")
        self._reader.start()

    def _pump(self):
        with open(self.stdout_path, "w") as out:
            for line in iter(self.proc.stdout.readline, ""):
                out.write(line)
                out.flush()
                line = line.rstrip("\n")
                m = PROGRESS_RE.match(line)
                with self._lock:
                    self.lines.append(line)
                    if m:
                        num = lambda s: None if s == "?" else int(s)  # noqa: E731
                        self.progress = {"processed": int(m.group(1)),
                                         "updates": int(m.group(2)),
                                         "committed": num(m.group(3)),
                                         "end": num(m.group(4)),
                                         "repartition_committed": num(m.group(5)),
                                         "lag": num(m.group(6)), "state": m.group(7)}
                        busy = self.progress["processed"] or self.progress["updates"]
                        if busy and self.working_at is None:
                            self.working_at = time.monotonic()

    def snapshot(self) -> dict | None:
        with self._lock:
            return dict(self.progress) if self.progress else None

    def errors(self) -> list[str]:
        with self._lock:
            return [line for line in self.lines if line.startswith("error ")]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def describe(self) -> str:
        with self._lock:
            out = "\n".join(self.lines[-15:])
        try:
            err = self.stderr_path.read_bytes()[-5000:].decode(errors="replace")
        except OSError as e:
            err = f"<cannot read {self.stderr_path}: {e}>"
        state = "running" if self.alive() else f"exited with {self.proc.returncode}"
        return (f"WordCountEos run ({self.label}, pid {self.proc.pid}, {state})\n"
                f"--- stdout (last lines) ---\n{out}\n--- stderr (tail) ---\n{err}")

    def wait_for(self, pred, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if snap is not None and pred(snap):
                return snap
            if self.errors() or not self.alive():
                pytest.fail(f"the Streams app stopped or failed while waiting for {what}.\n"
                            f"{self.describe()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last progress "
                            f"{snap}.\n{self.describe()}", pytrace=False)
            time.sleep(0.1)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30.0):
        if self.alive():
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._reader.join(timeout=5)


@pytest.fixture
def streams_apps(wordcount_java, tmp_path):
    """Factory: ``start(label, *run_args)`` -> StreamsApp; every app is killed on teardown."""
    apps: list[StreamsApp] = []

    def start(label: str, *args: str) -> StreamsApp:
        app = StreamsApp(wordcount_java, tmp_path, label, *args)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.kill(signal.SIGKILL)


# --------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------
def test_word_count_exactly_once_across_sigkill(wordcount_java, bootstrap, admin, tmp_path,
                                                streams_apps):
    """3000 lines; the app is SIGKILLed mid-way (with a transaction open) and restarted with
    the same application id and state dir; the committed output must hold exact counts, each
    word's updates 1..final with none repeated or skipped."""
    java = wordcount_java
    input_topic = unique_name("wc-in")
    output_topic = unique_name("wc-out")
    app_id = unique_name("wc-app")
    state_dir = tmp_path / "state"

    code, expected, out, err = run_tool(java, tmp_path, "produce", bootstrap, input_topic,
                                        str(LINES))
    assert code == 0 and expected is not None, \
        f"WordCountEos produce failed (exit {code})\n{out}\n--- stderr ---\n{err[-5000:]}"
    assert expected["lines"] == LINES
    expected_file = tmp_path / "expected.json"
    expected_file.write_text(json.dumps(expected))
    total_updates = sum(expected["counts"].values())

    run_args = (bootstrap, input_topic, output_topic, app_id, str(state_dir), str(DELAY_MS))

    # Run 1: killed once some of its transactions are committed, well before the end.
    first = streams_apps("run1", *run_args)
    snap = first.wait_for(lambda s: (s["repartition_committed"] or 0) >= KILL_AFTER_UPDATES,
                          START_TIMEOUT_S,
                          f"the first run to commit {KILL_AFTER_UPDATES} count updates")
    if snap["committed"] == LINES and snap["lag"] == 0:
        pytest.fail(f"the first run had done everything before it could be killed "
                    f"(raise DELAY_MS); progress {snap}", pytrace=False)
    first.kill(signal.SIGKILL)
    killed_at = first.snapshot()
    first_working = (first.working_at or time.monotonic()) - first.started_at

    # Run 2: same application id and state dir (so the same transactional.id, which fences
    # the killed producer and aborts its open transaction), to the end of the input.
    second = streams_apps("run2", *run_args)
    done = second.wait_for(
        lambda s: s["committed"] == LINES and s["end"] == LINES and s["lag"] == 0,
        FINISH_TIMEOUT_S, f"the restarted app to commit all {LINES} input lines "
                          f"(and the repartition topic) with no lag")
    second_total = time.monotonic() - second.started_at
    second_working = (second.working_at or time.monotonic()) - second.started_at

    # The output is complete once every input offset is committed (the same transactions
    # carry the output); verify again while the verdict only says "not there yet".
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    while True:
        code, verdict, out, err = run_tool(java, tmp_path, "verify", bootstrap, output_topic,
                                           str(expected_file))
        if verdict is None:
            pytest.fail(f"WordCountEos verify printed no verdict (exit {code})\n{out}\n"
                        f"--- stderr ---\n{err[-5000:]}", pytrace=False)
        if code == 0 and verdict.get("ok"):
            break
        final_error = verdict.get("double_counted") or verdict.get("sequence_errors")
        if final_error or time.monotonic() > deadline:
            break
        time.sleep(1)

    summary = (f"first run: processing after {first_working:.1f} s, killed at {killed_at}; "
               f"second run: processing after {second_working:.1f} s, done after "
               f"{second_total:.1f} s ({done}).")
    assert verdict.get("ok") and code == 0, (
        f"exactly-once violated or output incomplete: {json.dumps(verdict)}\n{summary}\n"
        f"{second.describe()}")
    assert verdict["records"] == total_updates, (verdict, summary)
    assert not second.errors(), second.describe()

    # Diagnostics only: read_uncommitted also returns what aborted transactions left (the
    # killed run's open one, unless its records were still in the producer's buffer).
    _, raw, _, _ = run_tool(java, tmp_path, "verify", bootstrap, output_topic,
                            str(expected_file), "read_uncommitted")
    aborted = raw["records"] - total_updates if raw else "?"
    print(f"{summary} Output records of aborted transactions: {aborted}.")

    # Streams created the changelog compacted and the repartition topic deletable.
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, f"{app_id}-counts-"
                                                 "changelog"),
                                  ConfigResource(ConfigResourceType.TOPIC, f"{app_id}-counts-"
                                                 "repartition")], config_filter="all")
    topics = res.get("topic", {})
    changelog = topics.get(f"{app_id}-counts-changelog", {})
    repartition = topics.get(f"{app_id}-counts-repartition", {})
    assert changelog.get("cleanup.policy", {}).get("value") == "compact", changelog
    assert repartition.get("cleanup.policy", {}).get("value") == "delete", repartition

    # A clean close (SIGTERM runs KafkaStreams.close) must not hang either.
    second.kill(signal.SIGTERM, timeout=40)

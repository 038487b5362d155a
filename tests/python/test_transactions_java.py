"""Kafka transactions with Apache Kafka's own Java client (4.4.0): commit, abort,
consume-transform-produce with sendOffsetsToTransaction, zombie fencing, and a
transaction left open across a SIGKILL of the broker.

The checks live in tests/java/src/sluice/TxnCheck.java (one scenario per run, one JSON
line per result on stdout, exit code 0 when every check held). The module fixture
``java_tests`` copies the jars named by tests/java/pom.xml into target/java-tests/libs
with Maven (once) and compiles the sources with javac (again when a source is newer than
its class). Without java/javac/mvn the tests fail, unless SLUICE_SKIP_JAVA=1 (skip).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, unique_name

SLUICE_SERVER_ARGS = ["--group-initial-rebalance-delay", "0ms"]

JAVA_SRC = REPO_ROOT / "tests" / "java" / "src"
POM = REPO_ROOT / "tests" / "java" / "pom.xml"
OUT_DIR = REPO_ROOT / "target" / "java-tests"
LIBS = OUT_DIR / "libs"
CLASSES = OUT_DIR / "classes"
CLASSPATH = f"{CLASSES}:{LIBS}/*"
# The jar whose presence means copy-dependencies already ran (the pom's Kafka version).
MARKER_JAR = "kafka-clients-4.4.0.jar"

RUN_TIMEOUT_S = 180
READY_TIMEOUT_S = 90


# --------------------------------------------------------------------------
# Java preparation
# --------------------------------------------------------------------------
def _missing_tool(what: str):
    msg = (f"`{what}` is not on PATH: the Java client transaction tests need a JDK (17+) and "
           f"Maven (apt-get install openjdk-17-jdk-headless maven). Set SLUICE_SKIP_JAVA=1 to "
           f"skip them.")
    if os.environ.get("SLUICE_SKIP_JAVA") == "1":
        pytest.skip(msg)
    pytest.fail(msg, pytrace=False)


def _run_tool(cmd: list[str], what: str, timeout: float):
    try:
        res = subprocess.run(cmd, cwd=str(REPO_ROOT), capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not finish within {timeout:.0f} s: {' '.join(cmd)}", pytrace=False)
    if res.returncode != 0:
        pytest.fail(f"{what} failed (exit {res.returncode}): {' '.join(cmd)}\n--- stdout ---\n"
                    f"{res.stdout[-4000:]}\n--- stderr ---\n{res.stderr[-4000:]}", pytrace=False)


def _needs_compile(sources: list[Path]) -> bool:
    for src in sources:
        cls = CLASSES / src.relative_to(JAVA_SRC).with_suffix(".class")
        if not cls.exists() or cls.stat().st_mtime < src.stat().st_mtime:
            return True
    return False


@pytest.fixture(scope="module")
def java_tests() -> str:
    """The `java` binary, with target/java-tests/{libs,classes} ready."""
    java = shutil.which("java")
    javac = shutil.which("javac")
    if java is None:
        _missing_tool("java")
    if javac is None:
        _missing_tool("javac")
    if not (LIBS / MARKER_JAR).exists():
        mvn = shutil.which("mvn")
        if mvn is None:
            _missing_tool("mvn")
        # An absolute output directory: Maven resolves relative ones against the pom's folder.
        _run_tool([mvn, "-q", "-f", str(POM), "dependency:copy-dependencies",
                   f"-DoutputDirectory={LIBS}"], "mvn dependency:copy-dependencies", 600)
    sources = sorted(JAVA_SRC.glob("sluice/*.java"))
    assert sources, f"no Java sources under {JAVA_SRC / 'sluice'}"
    if _needs_compile(sources):
        CLASSES.mkdir(parents=True, exist_ok=True)
        _run_tool([javac, "-d", str(CLASSES), "-cp", f"{LIBS}/*"] + [str(s) for s in sources],
                  "javac", 300)
    return java


def txn_check_cmd(java: str, scenario: str, bootstrap: str, topic: str, *args: str) -> list[str]:
    return [java, "-Xmx256m", "-cp", CLASSPATH, "sluice.TxnCheck", scenario, bootstrap, topic,
            *args]


def parse_results(stdout: str) -> list[dict]:
    results = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            results.append(json.loads(line))
    return results


def run_check(java: str, scenario: str, bootstrap: str, topic: str, *args: str,
              timeout: float = RUN_TIMEOUT_S) -> list[dict]:
    """Runs one TxnCheck scenario; fails the test unless it exits 0. Returns its JSON lines."""
    cmd = txn_check_cmd(java, scenario, bootstrap, topic, *args)
    try:
        res = subprocess.run(cmd, cwd=str(REPO_ROOT), capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"TxnCheck {scenario} did not finish within {timeout:.0f} s\n--- stdout ---\n"
                    f"{e.stdout or ''}\n--- stderr ---\n{(e.stderr or '')[-6000:]}", pytrace=False)
    results = parse_results(res.stdout)
    if res.returncode != 0:
        pytest.fail(f"TxnCheck {scenario} failed (exit {res.returncode})\n--- stdout ---\n"
                    f"{res.stdout[-4000:]}\n--- stderr ---\n{res.stderr[-6000:]}", pytrace=False)
    assert results and all(r.get("ok") for r in results), res.stdout
    return results


# --------------------------------------------------------------------------
# scenarios on the module server
# --------------------------------------------------------------------------
def test_commit(java_tests, bootstrap):
    """300 keyed records in 3 committed transactions: read_committed reads exactly them,
    in per-partition order, and no control record surfaces."""
    [r] = run_check(java_tests, "commit", bootstrap, unique_name("txn-commit"),
                    unique_name("txid-commit"))
    assert r["records"] == 300


def test_abort(java_tests, bootstrap):
    """committed / aborted / committed: read_committed 100, read_uncommitted 150, and the
    read_committed consumer's position reaches the end offsets (not stuck behind the LSO)."""
    [r] = run_check(java_tests, "abort", bootstrap, unique_name("txn-abort"),
                    unique_name("txid-abort"))
    assert (r["read_committed"], r["read_uncommitted"]) == (100, 150)
    assert r["committed_positions"] == r["committed_end_offsets"]


def test_send_offsets_to_transaction(java_tests, bootstrap):
    """Consume-transform-produce: committed transactions commit the group's offsets with
    them; an aborted transaction leaves the offsets (and the output) unchanged."""
    group = unique_name("grp-txn")
    round1, round2 = run_check(java_tests, "offsets", bootstrap, unique_name("txn-offsets"),
                               group, unique_name("txid-offsets"))
    assert round1["round"] == 1 and round1["output_read_committed"] == 200
    assert sum(round1["committed_offsets"].values()) == 200
    assert round2["round"] == 2 and round2["committed_offsets"] == round1["committed_offsets"]
    assert (round2["output_read_committed"], round2["output_read_uncommitted"]) == (200, 250)


def test_zombie_fencing(java_tests, bootstrap):
    """A second producer with the same transactional id aborts the first one's open
    transaction and fences it; only the second producer's records are visible."""
    [r] = run_check(java_tests, "zombie", bootstrap, unique_name("txn-zombie"),
                    unique_name("txid-zombie"))
    assert r["read_committed"] == 10
    for key in ("a_send_error", "a_commit_error"):
        assert "ProducerFenced" in r[key] or "InvalidProducerEpoch" in r[key], r


# --------------------------------------------------------------------------
# a transaction left open across a broker crash
# --------------------------------------------------------------------------
def _wait_ready(proc: subprocess.Popen, stderr_path: Path):
    lines: queue.Queue = queue.Queue()

    def pump():
        for raw in iter(proc.stdout.readline, ""):
            lines.put(raw)
        lines.put(None)

    threading.Thread(target=pump, daemon=True, name="txncheck-open-stdout").start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            line = lines.get(timeout=min(left, 0.5))
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if any(r.get("ready") for r in parse_results(line)):
            return
    code = proc.poll()
    pytest.fail(f"TxnCheck open printed no ready line within {READY_TIMEOUT_S} s "
                f"(exit code {code})\n--- stdout ---\n{''.join(seen)}\n--- stderr ---\n"
                f"{stderr_path.read_text(errors='replace')[-6000:]}", pytrace=False)


def test_open_transaction_survives_broker_sigkill(java_tests, start_sluice, tmp_path):
    """A transaction with 20 records (transaction.timeout.ms=5000) is open when the broker
    is SIGKILLed. After the restart the transaction is resolved all-or-nothing (0 or 20
    records visible read_committed, the LSO moves up to the high watermark within 60 s)
    and the transactional id works again for a new producer."""
    server = start_sluice(*SLUICE_SERVER_ARGS, label="txn crash")
    topic, txn_id = unique_name("txn-crash"), unique_name("txid-crash")
    stderr_path = tmp_path / "open.stderr"
    with open(stderr_path, "w") as err:
        opener = subprocess.Popen(txn_check_cmd(java_tests, "open", server.bootstrap, topic, txn_id),
                                  cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        _wait_ready(opener, stderr_path)
        server.restart(signal.SIGKILL)
    finally:
        if opener.poll() is None:
            os.kill(opener.pid, signal.SIGKILL)
        opener.wait(timeout=30)
        opener.stdout.close()
    [r] = run_check(java_tests, "check-after-crash", server.bootstrap, topic, txn_id)
    assert r["open_visible"] in (0, 20)
    assert r["after_visible"] == 5

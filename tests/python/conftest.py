"""Fixtures that run the real `sluice` binary for black-box tests.

* ``sluice``          - one server per test module (fresh temp data dir). A module can
                        give it extra flags with a module-level ``SLUICE_SERVER_ARGS``
                        list, e.g. ``["--group-initial-rebalance-delay", "200ms"]``.
* ``bootstrap``       - that server's Kafka address, "127.0.0.1:PORT".
* ``start_sluice``    - factory: start extra servers with extra flags for one test.
* ``admin``           - a kafka-python KafkaAdminClient on the module server.
* ``kcat``            - path of the kcat binary (fails clearly when missing).

``SluiceServer.restart()`` stops a server (SIGTERM or, e.g., SIGKILL) and starts it
again on the same data dir, database and bucket; it listens on new ports afterwards.

Environment:
* ``SLUICE_BIN``                 - the binary (default <repo>/target/debug/sluice).
* ``SLUICE_PYTEST_DATABASE_URL`` - optional ``--database-url`` for every server.
  For ``postgres://`` URLs a fresh database is created per server start (see
  ``_PostgresDatabase``).
* ``SLUICE_PYTEST_BUCKET_URL``   - optional ``--bucket-url`` for every server.
"""

from __future__ import annotations

import atexit
import itertools
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# kafka=none when the plaintext listener is off; kafka_tls=... https=... follow when set.
LISTEN_RE = re.compile(r"^sluice listening kafka=(\S+) http=(\S+)((?: \w+=\S+)*)\s*$")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0

# Servers currently running, so a failing test report can show their logs.
_LIVE_SERVERS: list["SluiceServer"] = []
_counter = itertools.count()


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


_NOTABLE = re.compile(rb"panicked at|memory allocation of|fatal runtime error|Segmentation|"
                      rb"stack overflow|thread '.*' panicked")
_ANSI = re.compile(rb"\x1b\[[0-9;]*m")


def _tail(path: Path, max_bytes: int = 6000) -> str:
    """The end of a log, preceded by any panic / abort lines found anywhere in it."""
    try:
        data = _ANSI.sub(b"", path.read_bytes())
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    notable = []
    for i, line in enumerate(data.splitlines()):
        if _NOTABLE.search(line) and len(notable) < 10:
            notable.append(f"  line {i + 1}: {line.decode(errors='replace')[:500]}")
    if len(data) > max_bytes:
        data = b"...\n" + data[-max_bytes:]
    text = data.decode(errors="replace")
    if notable:
        text = "panic/abort lines:\n" + "\n".join(notable) + "\n--- last lines ---\n" + text
    return text


def find_sluice_bin() -> Path:
    env = os.environ.get("SLUICE_BIN")
    if env:
        p = Path(env)
        if not p.is_absolute():
            # CI passes a path relative to the repo root; accept cwd-relative too.
            p = (Path.cwd() / p) if (Path.cwd() / p).exists() else (REPO_ROOT / p)
    else:
        p = REPO_ROOT / "target" / "debug" / "sluice"
    return p


class _PostgresDatabase:
    """A uniquely named database on the server of a ``postgres://`` URL.

    Why a database per server start: the metadata store holds topics, offsets
    and the list of files in the bucket.  Sharing one database between server
    starts would let a new server see topics whose data lives in another
    server's (deleted) temp directory, and would make test outcomes depend on
    test order.  Creating a database costs ~50 ms, so every server gets a clean
    slate.  It is created with ``psql`` (installed with the postgresql package)
    through the maintenance connection given in the URL, and dropped again
    (WITH (FORCE)) when the server stops.
    """

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.name = f"sluice_pytest_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
        parts = urllib.parse.urlsplit(base_url)
        self.url = urllib.parse.urlunsplit(parts._replace(path="/" + self.name))

    def _psql(self, sql: str):
        psql = shutil.which("psql")
        if psql is None:
            pytest.fail("SLUICE_PYTEST_DATABASE_URL is a postgres URL but `psql` is not on "
                        "PATH (apt-get install postgresql-client)", pytrace=False)
        res = subprocess.run([psql, "-v", "ON_ERROR_STOP=1", "-qAt", "-d", self.base_url,
                              "-c", sql], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL)
        return res

    def create(self):
        res = self._psql(f'CREATE DATABASE "{self.name}"')
        if res.returncode != 0:
            pytest.fail(f"could not create test database {self.name} via {self.base_url}: "
                        f"{res.stderr.strip()}", pytrace=False)

    def drop(self):
        self._psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class SluiceServer:
    def __init__(self, binary: Path, workdir: Path, extra_args=(), label="server"):
        self.binary = binary
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = workdir / "stderr.log"
        self.stdout_path = workdir / "stdout.log"
        self.extra_args = list(extra_args)
        self.label = label
        self.proc: subprocess.Popen | None = None
        self.kafka_addr: str | None = None
        self.http_addr: str | None = None
        # The Kafka TLS listener and the HTTPS port, when the server was given them.
        self.kafka_tls_addr: str | None = None
        self.https_addr: str | None = None
        self._pg: _PostgresDatabase | None = None
        self._stdout_thread: threading.Thread | None = None
        self.stopped = False
        self.starts = 0

    # -- helpers
    @property
    def bootstrap(self) -> str:
        return self.kafka_addr

    @property
    def http_url(self) -> str:
        return f"http://{self.http_addr}"

    def stderr_tail(self, max_bytes=6000) -> str:
        return _tail(self.stderr_path, max_bytes)

    def describe(self) -> str:
        return (f"sluice {self.label} (pid {self.proc.pid if self.proc else '-'}, "
                f"args {' '.join(self.args())})")

    def args(self) -> list[str]:
        defaults = {"--data-dir": str(self.data_dir),
                    "--kafka-addr": "127.0.0.1:0",
                    "--http-addr": "127.0.0.1:0",
                    "--batch-timeout": "20ms"}
        db = os.environ.get("SLUICE_PYTEST_DATABASE_URL")
        if db:
            defaults["--database-url"] = self._pg.url if self._pg else db
        bucket = os.environ.get("SLUICE_PYTEST_BUCKET_URL")
        if bucket:
            defaults["--bucket-url"] = bucket
        # A flag given by the test replaces the default (clap rejects repeats).
        for a in self.extra_args:
            defaults.pop(a.split("=", 1)[0], None)
        args = [str(self.binary), "serve"]
        for k, v in defaults.items():
            args += [k, v]
        return args + self.extra_args

    def start(self):
        db = os.environ.get("SLUICE_PYTEST_DATABASE_URL")
        # A restart keeps the database of the first start (see restart()).
        if self._pg is None and db and db.startswith(("postgres://", "postgresql://")):
            self._pg = _PostgresDatabase(db)
            self._pg.create()
        self.starts += 1
        # The first start truncates the logs, restarts append to them.
        log_mode = "wb" if self.starts == 1 else "ab"
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        # The SLUICE_* variables are the binary's own configuration; the test
        # harness variables must not leak into it as unknown settings.
        for k in list(env):
            if k.startswith("SLUICE_PYTEST_") or k.startswith("SLUICE_TEST_") or k == "SLUICE_BIN":
                env.pop(k)
        stderr_f = open(self.stderr_path, log_mode)
        if self.starts > 1:
            stderr_f.write(f"\n===== sluice start #{self.starts} (restart) =====\n".encode())
            stderr_f.flush()
        try:
            self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=stderr_f,
                                         env=env, cwd=str(self.workdir),
                                         start_new_session=True)
        finally:
            stderr_f.close()
        lines: queue.Queue = queue.Queue()

        def pump():
            # Keeps draining stdout for the server's whole life so it never blocks.
            with open(self.stdout_path, log_mode) as out:
                for raw in iter(self.proc.stdout.readline, b""):
                    out.write(raw)
                    out.flush()
                    lines.put(raw.decode(errors="replace"))
            lines.put(None)

        self._stdout_thread = threading.Thread(target=pump, daemon=True,
                                               name=f"sluice-stdout-{self.proc.pid}")
        self._stdout_thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                pytest.fail(f"{self.describe()} printed no 'sluice listening kafka=... http=...' "
                            f"line within {START_TIMEOUT_S:.0f}s.\n--- stdout ---\n"
                            f"{_tail(self.stdout_path)}\n--- stderr (tail) ---\n"
                            f"{self.stderr_tail()}", pytrace=False)
            try:
                line = lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait(timeout=5)
                self.stop()
                pytest.fail(f"{self.describe()} exited with code {code} before listening.\n"
                            f"--- stdout ---\n{_tail(self.stdout_path)}\n"
                            f"--- stderr (tail) ---\n{self.stderr_tail()}", pytrace=False)
            m = LISTEN_RE.match(line.strip())
            if m:
                self.kafka_addr, self.http_addr = m.group(1), m.group(2)
                extra = dict(f.split("=", 1) for f in m.group(3).split())
                self.kafka_tls_addr = extra.get("kafka_tls")
                self.https_addr = extra.get("https")
                break
        _LIVE_SERVERS.append(self)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, _keep_database: bool = False) -> int | None:
        """Stops the server; returns its exit code if it had already exited by itself.

        ``sig`` is the first signal sent (SIGKILL follows if SIGTERM is not obeyed in
        time). ``_keep_database`` is for restart(): the Postgres database is not dropped.
        """
        if self.stopped:
            return None
        self.stopped = True
        if self in _LIVE_SERVERS:
            _LIVE_SERVERS.remove(self)
        died_early = None
        if self.proc is not None:
            died_early = self.proc.poll()
            if died_early is None:
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    self.proc.wait(timeout=STOP_TIMEOUT_S)
            if self._stdout_thread is not None:
                self._stdout_thread.join(timeout=5)
            if self.proc.stdout:
                self.proc.stdout.close()
        if self._pg is not None and not _keep_database:
            self._pg.drop()
        return died_early

    def restart(self, sig: int = signal.SIGTERM) -> "SluiceServer":
        """Stops the server with ``sig`` and starts it again with the same arguments on the
        same data dir, metadata database and bucket.

        The new process binds new ports: read ``bootstrap`` / ``http_url`` again and make
        new clients. Fails the test if the server had already exited by itself.
        """
        died_early = self.stop(sig, _keep_database=True)
        if died_early is not None:
            if self._pg is not None:
                self._pg.drop()
            pytest.fail(f"{self.describe()} had exited by itself with code {died_early} "
                        f"before the restart.\n--- stderr (tail) ---\n{self.stderr_tail()}",
                        pytrace=False)
        self.stopped = False
        self.kafka_addr = self.http_addr = self.kafka_tls_addr = self.https_addr = None
        return self.start()


@atexit.register
def _kill_leftover_servers():
    """Last resort (e.g. pytest interrupted): never leave a server running."""
    for s in list(_LIVE_SERVERS):
        if s.proc is not None and s.proc.poll() is None:
            try:
                os.killpg(s.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _start_checked(binary: Path, tmp: Path, extra_args, label) -> SluiceServer:
    if not binary.exists():
        pytest.fail(
            f"sluice binary not found at {binary}. Build it first (`cargo build -p sluice`) "
            f"or point SLUICE_BIN at it.", pytrace=False)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"sluice binary at {binary} is not executable", pytrace=False)
    return SluiceServer(binary, tmp, extra_args, label).start()


def _teardown(server: SluiceServer):
    code = server.stop()
    if code is not None:
        pytest.fail(f"{server.describe()} had exited by itself with code {code} before the "
                    f"end of its tests.\n--- stderr (tail) ---\n{server.stderr_tail()}",
                    pytrace=False)


@pytest.fixture(scope="session")
def sluice_bin() -> Path:
    return find_sluice_bin()


@pytest.fixture(scope="module")
def sluice(sluice_bin, tmp_path_factory, request):
    """One server per test module, default flags, fresh data dir."""
    tmp = tmp_path_factory.mktemp(f"sluice-{request.module.__name__}")
    extra = [str(a) for a in getattr(request.module, "SLUICE_SERVER_ARGS", ())]
    server = _start_checked(sluice_bin, tmp, extra, f"module {request.module.__name__}")
    yield server
    _teardown(server)


@pytest.fixture(scope="module")
def bootstrap(sluice) -> str:
    return sluice.bootstrap


@pytest.fixture
def start_sluice(sluice_bin, tmp_path_factory):
    """Factory: ``start_sluice("--auto-create-topics", "false")`` -> SluiceServer."""
    started = []

    def start(*extra_args, label="factory"):
        tmp = tmp_path_factory.mktemp("sluice-extra")
        server = _start_checked(sluice_bin, tmp, [str(a) for a in extra_args], label)
        started.append(server)
        return server

    yield start
    errors = []
    for s in started:
        try:
            _teardown(s)
        except pytest.fail.Exception as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture(autouse=True)
def _servers_still_alive():
    """Fails a test after which any running server has died (panic, crash)."""
    before = list(_LIVE_SERVERS)
    yield
    dead = [s for s in _LIVE_SERVERS + before if s.proc is not None and not s.stopped
            and s.proc.poll() is not None]
    if dead:
        s = dead[0]
        pytest.fail(f"{s.describe()} died during this test with exit code "
                    f"{s.proc.returncode}.\n--- stderr (tail) ---\n{s.stderr_tail()}",
                    pytrace=False)


@pytest.fixture(scope="module")
def admin(bootstrap):
    from kafka import KafkaAdminClient

    client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000,
                              client_id="sluice-pytest-admin")
    yield client
    client.close()


@pytest.fixture(scope="session")
def kcat() -> str:
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        pytest.fail("kcat is not installed (CI installs it: `apt-get install kcat`); the kcat "
                    "compatibility tests cannot run without it.", pytrace=False)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _LIVE_SERVERS:
        for s in list(_LIVE_SERVERS):
            rep.sections.append((f"{s.describe()} stderr (tail)", s.stderr_tail(4000)))

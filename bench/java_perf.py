#!/usr/bin/env python3
"""Benchmark Sluice with Apache Kafka's own perf tools, optionally side by side with Kafka.

For every round and every target broker (interleaved: sluice, kafka, sluice, kafka, ...)
the script creates a fresh topic with TopicCommand, writes it with ProducerPerformance
(the Java producer's default settings) and reads it back with ConsumerPerformance (a
fresh consumer group). It prints every run as it finishes and then a summary table:
the median of each metric per target and, with --vs-kafka, the ratio Sluice/Kafka.

The Kafka jars (clients, tools and broker, 4.4.0) are fetched from Maven Central once,
by `mvn dependency:copy-dependencies` on bench/java-perf/pom.xml, into
target/java-perf/libs. Every broker and every connection stays on 127.0.0.1.
"""

import argparse
import hashlib
import ipaddress
import json
import os
import platform
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
POM = os.path.join(HERE, "java-perf", "pom.xml")
TOOLS_LOG4J = os.path.join(HERE, "java-perf", "log4j2.properties")
BROKER_LOG4J = os.path.join(HERE, "java-perf", "log4j2-broker.properties")
CACHE = os.path.join(REPO, "target", "java-perf")
LIBS = os.path.join(CACHE, "libs")
LIBS_STAMP = os.path.join(CACHE, "libs.stamp")

KAFKA_VERSION = "4.4.0"
TOPIC_TOOL = "org.apache.kafka.tools.TopicCommand"
PRODUCER_TOOL = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_TOOL = "org.apache.kafka.tools.ConsumerPerformance"

SLUICE_READY = re.compile(r"^sluice listening kafka=(\S+) http=(\S+)")

# ProducerPerformance's closing line, e.g.
# "300000 records sent, 41152.3 records/sec (40.19 MB/sec), 612.12 ms avg latency,
#  1450.00 ms max latency, 590 ms 50th, 1100 ms 95th, 1300 ms 99th, 1420 ms 99.9th."
PRODUCER_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<records_per_sec>[\d.]+) records/sec "
    r"\((?P<mb_per_sec>[\d.]+) MB/sec\), (?P<avg_latency_ms>[\d.]+) ms avg latency, "
    r"(?P<max_latency_ms>[\d.]+) ms max latency, (?P<p50_ms>[\d.]+) ms 50th, "
    r"(?P<p95_ms>[\d.]+) ms 95th, (?P<p99_ms>[\d.]+) ms 99th, (?P<p999_ms>[\d.]+) ms 99\.9th"
)

# ConsumerPerformance columns this script reports (parsed by the header's names).
CONSUMER_COLUMNS = [
    "data.consumed.in.MB",
    "MB.sec",
    "data.consumed.in.nMsg",
    "nMsg.sec",
    "rebalance.time.ms",
    "fetch.time.ms",
    "fetch.MB.sec",
    "fetch.nMsg.sec",
]

# (key in a run's result, label, direction) for the summary table.
PRODUCER_METRICS = [
    ("mb_per_sec", "producer MB/s", "higher"),
    ("records_per_sec", "producer records/s", "higher"),
    ("p50_ms", "producer p50 latency ms", "lower"),
    ("p99_ms", "producer p99 latency ms", "lower"),
    ("broker_cpu_s", "producer broker CPU s", "lower"),
]
CONSUMER_METRICS = [
    ("MB.sec", "consumer MB/s", "higher"),
    ("fetch.MB.sec", "consumer fetch MB/s", "higher"),
    ("rebalance.time.ms", "consumer group join ms", "lower"),
    ("broker_cpu_s", "consumer broker CPU s", "lower"),
]


class BenchError(Exception):
    """A failure that ends the run with a clear message (exit status 1)."""


def log(msg):
    print(msg, flush=True)


def tail(text, lines=40):
    parts = text.rstrip("\n").splitlines()
    return "\n".join(parts[-lines:])


def read_tail(path, lines=40):
    try:
        with open(path, "r", errors="replace") as f:
            return tail(f.read(), lines)
    except OSError as e:
        return f"(could not read {path}: {e})"


def free_port():
    """A TCP port on 127.0.0.1 that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def split_hostport(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def process_cpu_seconds(pid):
    """user + system CPU seconds of a running process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def children_cpu_seconds():
    """CPU seconds of all children this script has waited for (here: the tool runs)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class CpuMeter:
    """CPU used during one tool run by the broker (when this script started it) and the tool."""

    def __init__(self, broker):
        self.pid = broker.proc.pid if getattr(broker, "proc", None) else None
        self.broker0 = process_cpu_seconds(self.pid) if self.pid else None
        self.tool0 = children_cpu_seconds()

    def finish(self, res):
        b1 = process_cpu_seconds(self.pid) if self.pid else None
        res["broker_cpu_s"] = round(b1 - self.broker0, 2) if b1 is not None and self.broker0 is not None else None
        res["tool_cpu_s"] = round(children_cpu_seconds() - self.tool0, 2)


def kill_group(proc, sig):
    """Send sig to the process group the child leads (every child starts its own)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_process(proc, name, grace):
    """SIGTERM, then SIGKILL after `grace` seconds. Returns the exit code."""
    if proc.poll() is not None:
        return proc.returncode
    kill_group(proc, signal.SIGTERM)
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log(f"  {name} did not stop within {grace:g} s of SIGTERM; sending SIGKILL")
        kill_group(proc, signal.SIGKILL)
        return proc.wait(timeout=30)


# --------------------------------------------------------------------------- java side


def check_java(java):
    path = shutil.which(java)
    if not path:
        raise BenchError(f"'{java}' not found: install a Java 17+ runtime (e.g. openjdk-17-jre-headless)")
    out = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=60)
    text = out.stderr + out.stdout
    m = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not m:
        raise BenchError(f"could not read the Java version from `{java} -version`:\n{text}")
    major = int(m.group(1))
    if major == 1 and m.group(2):
        major = int(m.group(2))
    if major < 17:
        raise BenchError(f"Kafka {KAFKA_VERSION} needs Java 17 or newer; `{java} -version` says {major}")
    return path, text.splitlines()[0] if text else ""


def ensure_jars(mvn, refresh):
    """Copy the Kafka jars into target/java-perf/libs unless the copy matches the pom."""
    with open(POM, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if not refresh and os.path.isdir(LIBS):
        try:
            with open(LIBS_STAMP) as f:
                if f.read().strip() == digest:
                    return
        except OSError:
            pass
    mvn_path = shutil.which(mvn)
    if not mvn_path:
        raise BenchError(f"'{mvn}' not found: install Maven (apt-get install maven) so the Kafka jars can be fetched")
    log(f"fetching Kafka {KAFKA_VERSION} jars from Maven Central into {LIBS} ...")
    shutil.rmtree(LIBS, ignore_errors=True)
    os.makedirs(CACHE, exist_ok=True)
    cmd = [mvn_path, "-q", "-f", POM, "dependency:copy-dependencies", f"-DoutputDirectory={LIBS}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` failed (exit {out.returncode}):\n{tail(out.stdout + out.stderr)}")
    jars = [n for n in os.listdir(LIBS) if n.endswith(".jar")]
    log(f"  {len(jars)} jars")
    with open(LIBS_STAMP, "w") as f:
        f.write(digest + "\n")


class Children:
    """Every process this script starts, so that all of them are stopped on the way out."""

    def __init__(self):
        self.procs = []

    def add(self, proc):
        self.procs.append(proc)

    def discard(self, proc):
        if proc in self.procs:
            self.procs.remove(proc)

    def kill_all(self):
        for proc in list(self.procs):
            if proc.poll() is None:
                kill_group(proc, signal.SIGKILL)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
        self.procs.clear()


CHILDREN = Children()


class Java:
    def __init__(self, java, workdir, heap):
        self.java = java
        self.workdir = workdir
        self.heap = heap
        self.classpath = os.path.join(LIBS, "*")

    def command(self, main_class, args, log4j=TOOLS_LOG4J, jvm_args=()):
        return [
            self.java,
            f"-Xmx{self.heap}",
            f"-Dlog4j2.configurationFile={log4j}",
            *jvm_args,
            "-cp",
            self.classpath,
            main_class,
            *args,
        ]

    def run(self, main_class, args, timeout, echo_prefix=None):
        """Run a tool to completion; raise BenchError on a non-zero exit or a timeout.

        stdout is returned as a list of lines (and echoed with echo_prefix when given);
        stderr goes to a file whose tail is shown on failure."""
        cmd = self.command(main_class, args)
        short = main_class.rsplit(".", 1)[-1]
        err_file = tempfile.TemporaryFile(mode="w+", dir=self.workdir)
        proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        CHILDREN.add(proc)
        lines = []

        def reader():
            for line in proc.stdout:
                line = line.rstrip("\n")
                lines.append(line)
                if echo_prefix is not None:
                    log(f"{echo_prefix}{line}")

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_group(proc, signal.SIGKILL)
                proc.wait()
                t.join(5)
                err_file.seek(0)
                raise BenchError(
                    f"{short} did not finish within {timeout:g} s and was killed\n"
                    f"  command: {' '.join(cmd)}\n"
                    f"--- stdout (last lines) ---\n{tail(chr(10).join(lines))}\n"
                    f"--- stderr (last lines) ---\n{tail(err_file.read())}"
                )
            t.join(10)
            err_file.seek(0)
            err = err_file.read()
            if rc != 0:
                raise BenchError(
                    f"{short} exited with status {rc}\n"
                    f"  command: {' '.join(cmd)}\n"
                    f"--- stdout (last lines) ---\n{tail(chr(10).join(lines))}\n"
                    f"--- stderr (last lines) ---\n{tail(err)}"
                )
            return lines, err
        finally:
            if proc.poll() is None:
                kill_group(proc, signal.SIGKILL)
                proc.wait()
            CHILDREN.discard(proc)
            err_file.close()


# --------------------------------------------------------------------------- brokers


class SluiceServer:
    name = "sluice"

    def __init__(self, binary, root, server_args, start_timeout):
        self.binary = binary
        self.data_dir = os.path.join(root, "sluice-data")
        self.log_path = os.path.join(root, "sluice.log")
        self.server_args = server_args
        self.start_timeout = start_timeout
        self.proc = None
        self.bootstrap = None
        self.http = None
        self.version = None

    def start(self):
        if not os.path.isfile(self.binary) or not os.access(self.binary, os.X_OK):
            raise BenchError(f"no executable Sluice binary at {self.binary} (build it with cargo build --release -p sluice, or pass --sluice PATH)")
        try:
            v = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=30)
            self.version = (v.stdout or v.stderr).strip() or None
        except (OSError, subprocess.TimeoutExpired):
            pass
        os.makedirs(self.data_dir)
        cmd = [
            self.binary,
            "serve",
            "--data-dir",
            self.data_dir,
            "--kafka-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            *self.server_args,
        ]
        # SLUICE_* variables from the caller's shell would change the configuration under
        # test (bucket, database, timeouts): the benchmark measures the defaults plus
        # --server-arg only.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        env["NO_COLOR"] = "1"  # the log goes to a file
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            text=True,
            errors="replace",
            env=env,
            cwd=os.path.dirname(self.data_dir),
            start_new_session=True,
        )
        CHILDREN.add(self.proc)
        ready = queue.Queue()

        def reader():
            # Find the readiness line, then keep draining stdout into the log file.
            found = False
            for line in self.proc.stdout:
                if not found:
                    m = SLUICE_READY.match(line.strip())
                    if m:
                        found = True
                        ready.put((m.group(1), m.group(2)))
                        continue
                self.log_file.write(line)
                self.log_file.flush()
            if not found:
                ready.put(None)

        threading.Thread(target=reader, daemon=True).start()
        try:
            got = ready.get(timeout=self.start_timeout)
        except queue.Empty:
            got = None
            why = f"printed no 'sluice listening' line within {self.start_timeout:g} s"
        else:
            if got is None:  # stdout closed without the line: the process is ending
                try:
                    why = f"exited with status {self.proc.wait(timeout=10)} before it was ready"
                except subprocess.TimeoutExpired:
                    why = "closed its stdout without printing the 'sluice listening' line"
        if got is None:
            raise BenchError(f"sluice {why}\n  command: {' '.join(cmd)}\n--- sluice log (last lines) ---\n{read_tail(self.log_path)}")
        self.bootstrap, self.http = got
        log(f"sluice listening on kafka={self.bootstrap} http={self.http} (pid {self.proc.pid}, data dir {self.data_dir})")

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"sluice exited with status {self.proc.returncode} during the run\n--- sluice log (last lines) ---\n{read_tail(self.log_path)}")

    def stop(self):
        if self.proc is None:
            return
        was_running = self.proc.poll() is None
        rc = stop_process(self.proc, "sluice", 10)
        CHILDREN.discard(self.proc)
        self.proc = None
        self.log_file.close()
        if was_running and rc not in (0, -signal.SIGTERM):
            log(f"  note: sluice exited with status {rc} on SIGTERM")


class KafkaServer:
    name = "kafka"

    def __init__(self, java, root, rebalance_delay_ms, jvm_args, start_timeout):
        self.java = java
        self.root = root
        self.log_dir = os.path.join(root, "kafka-logs")
        self.config = os.path.join(root, "kafka-server.properties")
        self.log_path = os.path.join(root, "kafka.log")
        self.rebalance_delay_ms = rebalance_delay_ms
        self.jvm_args = jvm_args
        self.start_timeout = start_timeout
        self.proc = None
        self.bootstrap = None
        self.version = KAFKA_VERSION

    def write_config(self, port, controller_port):
        # Kafka's defaults, except what a single KRaft node on loopback needs: its roles and
        # listeners, and replication factors of 1 for the internal topics.
        lines = [
            "process.roles=broker,controller",
            "node.id=1",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.log_dir}",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            f"group.initial.rebalance.delay.ms={self.rebalance_delay_ms}",
        ]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout):
        port, controller_port = free_port(), free_port()
        while controller_port == port:
            controller_port = free_port()
        self.write_config(port, controller_port)
        cluster_id = None
        lines, _ = self.java.run("kafka.tools.StorageTool", ["random-uuid"], timeout)
        for line in lines:
            if re.fullmatch(r"[A-Za-z0-9_-]{22}", line.strip()):
                cluster_id = line.strip()
        if not cluster_id:
            raise BenchError(f"StorageTool random-uuid printed no cluster id: {lines!r}")
        self.java.run(
            "kafka.tools.StorageTool",
            ["format", "--standalone", "-t", cluster_id, "-c", self.config],
            timeout,
        )
        cmd = self.java.command("kafka.Kafka", [self.config], log4j=BROKER_LOG4J, jvm_args=self.jvm_args)
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        CHILDREN.add(self.proc)
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"Kafka exited with status {self.proc.returncode} while starting\n  command: {' '.join(cmd)}\n--- kafka log (last lines) ---\n{read_tail(self.log_path)}")
            try:
                with open(self.log_path, errors="replace") as f:
                    started = "Kafka Server started" in f.read()
            except OSError:
                started = False
            if started and port_open("127.0.0.1", port):
                break
            if time.monotonic() - t0 > self.start_timeout:
                raise BenchError(f"Kafka was not ready within {self.start_timeout:g} s\n--- kafka log (last lines) ---\n{read_tail(self.log_path)}")
            time.sleep(0.25)
        self.bootstrap = f"127.0.0.1:{port}"
        log(f"kafka {KAFKA_VERSION} listening on {self.bootstrap} (controller 127.0.0.1:{controller_port}, pid {self.proc.pid}, ready in {time.monotonic() - t0:.1f} s)")

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"Kafka exited with status {self.proc.returncode} during the run\n--- kafka log (last lines) ---\n{read_tail(self.log_path)}")

    def stop(self):
        if self.proc is None:
            return
        was_running = self.proc.poll() is None
        rc = stop_process(self.proc, "kafka", 30)
        CHILDREN.discard(self.proc)
        self.proc = None
        self.log_file.close()
        if was_running and rc not in (0, 143, -signal.SIGTERM):
            log(f"  note: kafka exited with status {rc} on SIGTERM")


class ExternalBroker:
    """--bootstrap: a broker somebody else runs."""

    name = "sluice"

    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.version = None

    def start(self):
        host, port = split_hostport(self.bootstrap)
        if not port_open(host, port):
            raise BenchError(f"nothing accepts connections at --bootstrap {self.bootstrap}")
        log(f"benchmarking the broker at {self.bootstrap} (not started by this script)")

    def check_alive(self):
        pass

    def stop(self):
        pass


# --------------------------------------------------------------------------- workloads


def parse_producer(lines):
    for line in reversed(lines):
        m = PRODUCER_SUMMARY.search(line)
        if m:
            res = {k: (int(v) if k == "records" else float(v)) for k, v in m.groupdict().items()}
            res["summary_line"] = line.strip()
            return res
    return None


def parse_consumer(lines):
    header = None
    for i, line in enumerate(lines):
        cols = [c.strip() for c in line.split(",")]
        if "MB.sec" in cols and "rebalance.time.ms" in cols:
            header = (i, cols)
    if header is None:
        return None
    i, cols = header
    for line in lines[i + 1:]:
        vals = [v.strip() for v in line.split(",")]
        if len(vals) != len(cols):
            continue
        row = dict(zip(cols, vals))
        res = {}
        try:
            for c in CONSUMER_COLUMNS:
                if c in row:
                    res[c] = float(row[c])
        except ValueError:
            continue
        res["start.time"] = row.get("start.time")
        res["end.time"] = row.get("end.time")
        res["header_line"] = lines[i].strip()
        res["result_line"] = line.strip()
        return res
    return None


def create_topic(java, broker, topic, partitions, timeout):
    java.run(
        TOPIC_TOOL,
        [
            "--bootstrap-server",
            broker.bootstrap,
            "--create",
            "--topic",
            topic,
            "--partitions",
            str(partitions),
            "--replication-factor",
            "1",
        ],
        timeout,
    )


def run_producer(java, broker, topic, args):
    cmd = [
        "--topic",
        topic,
        "--num-records",
        str(args.records),
        "--record-size",
        str(args.record_size),
        "--throughput",
        "-1",
        "--bootstrap-server",
        broker.bootstrap,
    ]
    if args.producer_prop:
        cmd += ["--command-property", *args.producer_prop]
    t0 = time.monotonic()
    cpu = CpuMeter(broker)
    lines, _ = java.run(PRODUCER_TOOL, cmd, args.timeout, echo_prefix="    | " if args.verbose else None)
    wall = time.monotonic() - t0
    res = parse_producer(lines)
    if res is None:
        raise BenchError(f"ProducerPerformance printed no summary line; its output:\n{tail(chr(10).join(lines))}")
    if res["records"] != args.records:
        raise BenchError(f"ProducerPerformance sent {res['records']} records, not {args.records}: {res['summary_line']}")
    res["tool_wall_s"] = round(wall, 3)  # includes the JVM's start
    cpu.finish(res)
    return res


def run_consumer(java, broker, topic, args):
    group = f"perf-{uuid.uuid4()}"
    cmd = [
        "--bootstrap-server",
        broker.bootstrap,
        "--topic",
        topic,
        "--num-records",
        str(args.records),
        "--group",
        group,
    ]
    if args.consumer_prop:
        cmd += ["--command-property", *args.consumer_prop]
    t0 = time.monotonic()
    cpu = CpuMeter(broker)
    lines, err = java.run(CONSUMER_TOOL, cmd, args.timeout, echo_prefix="    | " if args.verbose else None)
    wall = time.monotonic() - t0
    res = parse_consumer(lines)
    if res is None:
        raise BenchError(f"ConsumerPerformance printed no result line; its output:\n{tail(chr(10).join(lines))}\n--- stderr ---\n{tail(err)}")
    got = int(res.get("data.consumed.in.nMsg", -1))
    if got != args.records:
        raise BenchError(
            f"ConsumerPerformance consumed {got} of {args.records} records (it gives up after 10 s without records)\n"
            f"{res['header_line']}\n{res['result_line']}\n--- stdout ---\n{tail(chr(10).join(lines))}\n--- stderr ---\n{tail(err)}"
        )
    res["group"] = group
    res["tool_wall_s"] = round(wall, 3)  # includes the JVM's start
    cpu.finish(res)
    return res


def fmt_num(v):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.2f}"


def describe_producer(r):
    return (
        f"{r['mb_per_sec']:.2f} MB/s, {r['records_per_sec']:,.0f} records/s, latency avg {r['avg_latency_ms']:.1f} / "
        f"p50 {r['p50_ms']:g} / p95 {r['p95_ms']:g} / p99 {r['p99_ms']:g} / p99.9 {r['p999_ms']:g} / max {r['max_latency_ms']:g} ms"
    )


def describe_cpu(r):
    broker = "-" if r.get("broker_cpu_s") is None else f"{r['broker_cpu_s']:.1f} s"
    return f"; CPU: broker {broker}, tool {r['tool_cpu_s']:.1f} s, tool wall {r['tool_wall_s']:.1f} s"


def describe_consumer(r):
    return (
        f"{r['MB.sec']:.2f} MB/s, {r['nMsg.sec']:,.0f} records/s, group join (rebalance.time.ms) {r['rebalance.time.ms']:g} ms, "
        f"fetch {r['fetch.time.ms']:g} ms at {r['fetch.MB.sec']:.2f} MB/s"
    )


def summarize(runs, targets, workloads):
    """Median of every reported metric per target, plus Sluice/Kafka ratios."""
    rows = []
    metrics = []
    if "producer" in workloads:
        metrics += [("producer", *m) for m in PRODUCER_METRICS]
    if "consumer" in workloads:
        metrics += [("consumer", *m) for m in CONSUMER_METRICS]
    for workload, key, label, direction in metrics:
        row = {"workload": workload, "metric": key, "label": label, "better": direction}
        for t in targets:
            vals = [r["result"][key] for r in runs
                    if r["target"] == t and r["workload"] == workload and r["result"].get(key) is not None]
            row[t] = statistics.median(vals) if vals else None
            row[f"{t}_values"] = vals
        if "sluice" in targets and "kafka" in targets and row["sluice"] is not None and row["kafka"]:
            row["ratio"] = row["sluice"] / row["kafka"]
        else:
            row["ratio"] = None
        rows.append(row)
    return rows


def print_summary(rows, targets, args, rounds_done):
    log("")
    log(
        f"== summary: median over {rounds_done} round(s); {args.records:,} records x {args.record_size} B, "
        f"{args.partitions} partitions; MB = 2^20 bytes as the Kafka tools count =="
    )
    head = f"{'metric':<26}" + "".join(f"{t:>12}" for t in targets)
    both = "sluice" in targets and "kafka" in targets
    if both:
        head += f"{'sluice/kafka':>14}"
    log(head)
    log("-" * len(head) + ("-" * 22 if both else ""))
    for row in rows:
        line = f"{row['label']:<26}" + "".join(f"{fmt_num(row[t]):>12}" for t in targets)
        if both:
            ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}x"
            line += f"{ratio:>14}"
            line += "   (lower is better)" if row["better"] == "lower" else "   (higher is better)"
        log(line)
    if "consumer" in {r["workload"] for r in rows}:
        log("group join = ConsumerPerformance's rebalance.time.ms (subscribe until the first assignment).")
    log("broker CPU = user+system CPU seconds the broker process used during the tool run (spawned brokers only).")


# --------------------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="java_perf.py",
        description=(
            "Benchmark Sluice with Apache Kafka's own perf tools (Kafka " + KAFKA_VERSION + "), optionally\n"
            "against a real Apache Kafka broker that this script starts (--vs-kafka), in interleaved\n"
            "rounds (sluice, kafka, sluice, kafka, ...). Per round and target:\n"
            "  1. TopicCommand creates a fresh topic (--partitions, replication factor 1);\n"
            "  2. ProducerPerformance writes --records records of --record-size bytes, unthrottled,\n"
            "     with the Java producer's defaults (idempotent, acks=all, batch.size 16384,\n"
            "     linger.ms 5) unless --producer-prop says otherwise;\n"
            "  3. ConsumerPerformance reads them all back in a fresh consumer group.\n"
            "Prints each run as it finishes, then the median per target and the ratio Sluice/Kafka.\n"
            "Needs java 17+ and mvn: the Kafka jars are fetched from Maven Central once, into\n"
            "target/java-perf/libs (bench/java-perf/pom.xml lists them)."
        ),
        epilog=(
            "Examples:\n"
            "  python3 bench/java_perf.py                      # spawn target/release/sluice\n"
            "  python3 bench/java_perf.py --vs-kafka           # ... and Apache Kafka, ratios\n"
            "  python3 bench/java_perf.py --bootstrap 127.0.0.1:9092 --only producer\n"
            "  python3 bench/java_perf.py --vs-kafka --producer-prop linger.ms=50\n"
            "Sluice is spawned with its defaults (file bucket and SQLite inside a temporary data dir),\n"
            "SLUICE_* environment variables removed. Both brokers run for the whole benchmark,\n"
            "on 127.0.0.1 only; their temporary directories are deleted at the end, also after a\n"
            "failure or Ctrl-C. Exit status: 0 = every run finished, 1 = a run or a broker failed,\n"
            "2 = bad arguments."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("brokers")
    g.add_argument("--sluice", metavar="PATH", default=os.path.join(REPO, "target", "release", "sluice"),
                   help="Sluice binary to spawn as `PATH serve --data-dir <tmp> --kafka-addr 127.0.0.1:0 "
                        "--http-addr 127.0.0.1:0 [--server-arg ...]` (default: %(default)s)")
    g.add_argument("--server-arg", metavar="ARG", action="append", default=[],
                   help="extra flag for the spawned Sluice, repeatable; use the = form: --server-arg=--batch-timeout=50ms")
    g.add_argument("--bootstrap", metavar="HOST:PORT",
                   help="benchmark a broker that is already running there instead of spawning Sluice")
    g.add_argument("--vs-kafka", action="store_true",
                   help="also start Apache Kafka " + KAFKA_VERSION + " (single KRaft node, broker+controller, "
                        "on free 127.0.0.1 ports, Kafka's defaults otherwise) and print Sluice/Kafka ratios")
    g.add_argument("--no-sluice", action="store_true",
                   help="benchmark only the Kafka broker (requires --vs-kafka); for checking the setup")
    g.add_argument("--kafka-initial-rebalance-delay-ms", metavar="MS", type=int, default=0,
                   help="group.initial.rebalance.delay.ms for the Kafka broker (default: %(default)s). Kafka's "
                        "built-in default is 3000, but the server.properties Kafka ships (what a newcomer starts "
                        "with) sets 0 so that a single consumer joins at once; the group join time (rebalance.time.ms) "
                        "depends on it directly. Sluice has its own --group-initial-rebalance-delay (and -quiet), "
                        "see `sluice serve --help`; pass those with --server-arg to change them")
    g.add_argument("--kafka-jvm-arg", metavar="ARG", action="append", default=[],
                   help="extra JVM flag for the Kafka broker, repeatable (its heap is --heap)")
    g = p.add_argument_group("workload")
    g.add_argument("--rounds", type=int, default=2, help="rounds; each runs every target once (default: %(default)s)")
    g.add_argument("--records", type=int, default=300000, help="records per run (default: %(default)s)")
    g.add_argument("--record-size", type=int, default=1024, metavar="BYTES", help="record value size (default: %(default)s)")
    g.add_argument("--partitions", type=int, default=6, help="partitions of each fresh topic, replication 1 (default: %(default)s)")
    g.add_argument("--only", choices=["producer", "consumer"],
                   help="report only one workload; 'consumer' still fills each topic with ProducerPerformance first")
    g.add_argument("--producer-prop", metavar="K=V", action="append", default=[],
                   help="extra producer setting for ProducerPerformance, repeatable (none by default: the client's "
                        "defaults are the point)")
    g.add_argument("--consumer-prop", metavar="K=V", action="append", default=[],
                   help="extra consumer setting for ConsumerPerformance, repeatable")
    g = p.add_argument_group("tools and output")
    g.add_argument("--json", metavar="FILE", help="write the configuration, every run's raw results and the summary as JSON")
    g.add_argument("--timeout", type=float, default=600, metavar="SECONDS",
                   help="limit for each tool run, in seconds (default: %(default)s)")
    g.add_argument("--start-timeout", type=float, default=120, metavar="SECONDS",
                   help="limit for a broker to become ready (default: %(default)s)")
    g.add_argument("--heap", default="1g", help="-Xmx for every JVM: the tools and the Kafka broker (default: %(default)s)")
    g.add_argument("--java", default=os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else "java",
                   help="java executable (default: $JAVA_HOME/bin/java, else java on PATH)")
    g.add_argument("--mvn", default="mvn", help="Maven executable used to fetch the jars (default: %(default)s)")
    g.add_argument("--refresh-jars", action="store_true", help="copy the jars again even if target/java-perf/libs matches the pom")
    g.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (data dirs, broker logs) for inspection")
    g.add_argument("-v", "--verbose", action="store_true", help="echo the tools' own output lines (progress every 5 s)")
    args = p.parse_args(argv)
    if args.no_sluice and not args.vs_kafka:
        p.error("--no-sluice needs --vs-kafka (otherwise there is nothing to benchmark)")
    if args.no_sluice and (args.bootstrap or args.server_arg):
        p.error("--no-sluice cannot be combined with --bootstrap or --server-arg")
    if args.bootstrap and args.server_arg:
        p.error("--server-arg applies only to a spawned Sluice, not to --bootstrap")
    for name in ("rounds", "records", "record_size", "partitions"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    for kv in args.producer_prop + args.consumer_prop:
        if "=" not in kv:
            p.error(f"expected K=V, got {kv!r}")
    if args.bootstrap:
        try:
            host, _ = split_hostport(args.bootstrap)
        except ValueError:
            p.error(f"--bootstrap wants HOST:PORT, got {args.bootstrap!r}")
        if not is_loopback(host):
            p.error(f"--bootstrap {args.bootstrap}: this benchmark only talks to brokers on this machine's loopback "
                    f"(127.0.0.0/8, ::1, localhost)")
    args.sluice = os.path.abspath(args.sluice)
    return args


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv):
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    workloads = [args.only] if args.only else ["producer", "consumer"]
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    java_version = None
    root = None
    brokers = []
    runs = []
    rounds_done = 0
    status = 0
    load = load_average()
    if load is not None and load > 1.0:
        log(f"note: the machine is busy before the start (1-minute load average {load:.2f} on {os.cpu_count()} CPUs); "
            f"the figures will be noisy")
    try:
        java_path, java_version = check_java(args.java)
        ensure_jars(args.mvn, args.refresh_jars)
        root = tempfile.mkdtemp(prefix="sluice-java-perf-")
        java = Java(java_path, root, args.heap)
        if not args.no_sluice:
            if args.bootstrap:
                brokers.append(ExternalBroker(args.bootstrap))
            else:
                brokers.append(SluiceServer(args.sluice, root, args.server_arg, args.start_timeout))
        if args.vs_kafka:
            brokers.append(KafkaServer(java, root, args.kafka_initial_rebalance_delay_ms,
                                       args.kafka_jvm_arg, args.start_timeout))
        for b in brokers:
            if isinstance(b, KafkaServer):
                b.start(args.timeout)
            else:
                b.start()
        targets = [b.name for b in brokers]
        log(
            f"{args.rounds} round(s) x {', '.join(targets)}: {args.records:,} records x {args.record_size} B, "
            f"{args.partitions} partitions, producer props: {' '.join(args.producer_prop) or '(client defaults)'}"
        )
        for rnd in range(1, args.rounds + 1):
            for b in brokers:
                topic = f"java-perf-{b.name}-r{rnd}-{uuid.uuid4().hex[:8]}"
                tag = f"[round {rnd}/{args.rounds}] {b.name:<6}"
                b.check_alive()
                create_topic(java, b, topic, args.partitions, args.timeout)
                res = run_producer(java, b, topic, args)
                b.check_alive()
                if "producer" in workloads:
                    log(f"{tag} producer: {describe_producer(res)}{describe_cpu(res)}")
                    runs.append({"round": rnd, "target": b.name, "workload": "producer", "topic": topic, "result": res})
                else:
                    log(f"{tag} filled {topic} ({res['mb_per_sec']:.2f} MB/s, not reported)")
                if "consumer" in workloads:
                    res = run_consumer(java, b, topic, args)
                    b.check_alive()
                    log(f"{tag} consumer: {describe_consumer(res)}{describe_cpu(res)}")
                    runs.append({"round": rnd, "target": b.name, "workload": "consumer", "topic": topic, "result": res})
            rounds_done = rnd
    except BenchError as e:
        log(f"\nFAILED: {e}")
        status = 1
    except KeyboardInterrupt:
        log("\ninterrupted; stopping the brokers and cleaning up")
        status = 130
    except Exception:
        log("\nFAILED with an unexpected error (a bug in this script):")
        traceback.print_exc()
        status = 1
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for b in reversed(brokers):
            try:
                b.stop()
            except Exception as e:  # keep cleaning up
                log(f"  stopping {b.name} failed: {e}")
        CHILDREN.kill_all()
        if root:
            if args.keep_tmp:
                log(f"kept {root}")
            else:
                shutil.rmtree(root, ignore_errors=True)

    targets = [b.name for b in brokers]
    rows = summarize(runs, targets, workloads) if runs else []
    if rows:
        print_summary(rows, targets, args, rounds_done)
    if args.json:
        doc = {
            "started_at": started_at,
            "status": "ok" if status == 0 else "failed",
            "config": {
                "argv": argv,
                "records": args.records,
                "record_size": args.record_size,
                "partitions": args.partitions,
                "rounds": args.rounds,
                "rounds_done": rounds_done,
                "producer_props": args.producer_prop,
                "consumer_props": args.consumer_prop,
                "server_args": args.server_arg,
                "kafka_initial_rebalance_delay_ms": args.kafka_initial_rebalance_delay_ms if args.vs_kafka else None,
                "heap": args.heap,
                "kafka_tools_version": KAFKA_VERSION,
                "java": java_version,
            },
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "load_average_at_start": load, "load_average_at_end": load_average()},
            "brokers": [
                {"target": b.name, "bootstrap": b.bootstrap, "version": b.version,
                 "binary": getattr(b, "binary", None), "server_args": getattr(b, "server_args", None)}
                for b in brokers
            ],
            "runs": runs,
            "summary": rows,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        log(f"wrote {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

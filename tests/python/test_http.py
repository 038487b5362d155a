"""The HTTP side: /healthz and Prometheus /metrics (open, or behind --metrics-token)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

from conftest import unique_name
from helpers import create_topic, make_producer, send_all

SAMPLE_RE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"(?P<labels>\{(?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\]|\\.)*\",?)*\})?"
    r" (?P<value>\S+)(?: (?P<ts>-?\d+))?$")


def get(url, timeout=10, headers=None):
    try:
        req = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode(errors="replace")


def parse_prometheus(text):
    samples = {}
    types = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                assert len(parts) == 4 and parts[3] in (
                    "counter", "gauge", "histogram", "summary", "untyped"), f"line {n}: {line}"
                types[parts[2]] = parts[3]
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"line {n} is not a Prometheus sample: {line!r}"
        float(m.group("value"))  # accepts NaN, +Inf, -Inf too
        samples[m.group("name") + (m.group("labels") or "")] = float(m.group("value"))
    return types, samples


def test_healthz(sluice):
    status, _, _ = get(f"{sluice.http_url}/healthz")
    assert status == 200


def test_metrics_prometheus_text(sluice, admin):
    # Some traffic first so that request/produce metrics exist.
    topic = unique_name("metrics")
    create_topic(admin, topic, 1)
    producer = make_producer(sluice.bootstrap)
    try:
        send_all(producer, topic, [{"value": b"m"} for _ in range(5)])
    finally:
        producer.close(timeout=10)
    status, headers, body = get(f"{sluice.http_url}/metrics")
    assert status == 200
    ctype = headers.get("Content-Type", "")
    assert ctype.startswith("text/plain"), f"Content-Type {ctype!r}"
    types, samples = parse_prometheus(body)
    assert types, "no # TYPE lines in /metrics"
    assert samples, "no samples in /metrics"
    for fam in types:
        assert any(k == fam or k.startswith(fam + "{") or k.startswith(fam + "_")
                   for k in samples), f"# TYPE {fam} without samples"



def test_metrics_token_guards_metrics_only(start_sluice):
    server = start_sluice("--metrics-token", "scrape-secret")
    status, _, body = get(f"{server.http_url}/metrics")
    assert status == 401, body
    assert "--metrics-token" in body, "the refusal says what is missing"
    status, _, _ = get(f"{server.http_url}/metrics",
                       headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, _, body = get(f"{server.http_url}/metrics",
                          headers={"Authorization": "Bearer scrape-secret"})
    assert status == 200 and "# TYPE" in body
    status, _, _ = get(f"{server.http_url}/healthz")
    assert status == 200, "health checks need no token"

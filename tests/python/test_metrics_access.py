"""/metrics with --kafka-auth sasl (issue 12): its labels name every tenant's topics and
consumer groups, so a multi-tenant server closes it unless --metrics-token is set (then the
token opens it) or --metrics-public says it may be open. --kafka-auth none keeps it open."""

from __future__ import annotations

import urllib.error
import urllib.request


def get(url, headers=None, timeout=10):
    try:
        req = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def test_sasl_server_closes_metrics_without_a_token(start_sluice):
    server = start_sluice("--kafka-auth", "sasl", label="sasl-metrics")
    status, body = get(f"{server.http_url}/metrics")
    assert status == 401, body
    assert "--metrics-token" in body, "the refusal says what to set"
    # No bearer value opens it, not even an empty or a guessed one.
    for sent in ["", "x", "\t"]:
        status, _ = get(f"{server.http_url}/metrics", headers={"Authorization": f"Bearer {sent}"})
        assert status == 401
    assert "/metrics is closed" in server.stderr_tail(20000), "a warning at start-up"
    status, _ = get(f"{server.http_url}/healthz")
    assert status == 200, "health checks stay open"


def test_sasl_server_with_a_token_or_metrics_public(start_sluice):
    server = start_sluice("--kafka-auth", "sasl", "--metrics-token", "scrape-secret",
                          label="sasl-token")
    assert get(f"{server.http_url}/metrics")[0] == 401
    status, body = get(f"{server.http_url}/metrics",
                       headers={"Authorization": "Bearer scrape-secret"})
    assert status == 200 and "# TYPE" in body
    server.stop()

    public = start_sluice("--kafka-auth", "sasl", "--metrics-public", label="sasl-public")
    status, body = get(f"{public.http_url}/metrics")
    assert status == 200 and "# TYPE" in body


def test_plaintext_server_keeps_metrics_open(start_sluice):
    server = start_sluice(label="none-metrics")
    status, body = get(f"{server.http_url}/metrics")
    assert status == 200 and "# TYPE" in body

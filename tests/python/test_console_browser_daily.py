"""A day of work in the web console, in headless Chromium (Selenium): the features of
issue 14, used as an operator would.

* API keys: right after creating one, the keys page shows ready-to-paste client settings
  with the real key id and secret (#connect-new-key) and Copy buttons.
* Topics: create topics with the form (and, for paging, many more with the JSON API and
  the key), search the list, sort it by a column, page through it, add partitions on a
  topic page, see the consumer groups of a topic and its configs in words.
* Messages: produce records with the produce form (one with a header), filter them by key,
  by header and with a VRL program, page through them with a small limit ("Older →"),
  duplicate a record, download the page as JSON lines, open a long value with "show all",
  and watch the live tail pick up a record produced with kcat without a reload.
* Consumer groups: reset a group's offsets (shift back), preview first (nothing changes),
  then apply.
* Lag alerts: a rule made with the form on the group page fires (a webhook POST received by
  a tiny HTTP server in this test; the overview lists it), and resolves once the group is
  reset to the log end.
* Layout: dark mode (prefers-color-scheme emulated through Chrome DevTools) on a topic page
  and a group page with charts, and an 800 px wide window without horizontal page scroll.

Screenshots go to ``<SLUICE_SCREENSHOT_DIR or artifacts/screenshots>/daily/NN-name.png``
(a directory of their own, so the newcomer walk's screenshots stay). Browser requirements:
as in test_console_browser.py (skipped without Chromium, failed with SLUICE_REQUIRE_BROWSER).
"""

from __future__ import annotations

import http.server
import itertools
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from test_console_browser import (  # noqa: F401 - browser_factory is a fixture
    PASSWORD,
    SERVER_ARGS,
    WINDOW,
    Browser,
    browser_factory,
    kcat_sasl,
    require_browser,
    sasl_kwargs,
    wait_charts_shown,
)

CLUSTER = "daily"
TOPIC = "daily-orders"       # 1 partition: the message steps count offsets on it
WIDE = "daily-wide"          # 4 partitions: first when sorted by partitions
GROWN = "daily-payments"     # 1 partition, grown to 3 with the add-partitions form
API_TOPICS = [GROWN] + [f"daily-{n}" for n in (
    "invoices", "shipments", "refunds", "users", "sessions", "clicks", "audit", "stock", "mail")]
BULK = [f"bulk-{i:02d}" for i in range(45)]
ALL_TOPICS = 2 + len(API_TOPICS) + len(BULK)   # 57: two pages of 50
DAILY_TOPICS = 2 + len(API_TOPICS)             # 12 whose name contains "daily"
GROUP = "daily-group"


def shots_dir() -> Path:
    base = Path(os.environ.get("SLUICE_SCREENSHOT_DIR") or REPO_ROOT / "artifacts" / "screenshots")
    d = base / "daily"
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("[0-9][0-9]-*.png"):
        old.unlink()
    return d


class Webhooks:
    """A webhook receiver on 127.0.0.1: keeps every JSON body POSTed to it."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsable": raw.decode(errors="replace")}
                with outer.lock:
                    outer.bodies.append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/sluice-test"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="webhook-receiver")
        self.thread.start()

    def statuses(self) -> list[str]:
        with self.lock:
            return [b.get("status") for b in self.bodies]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhooks():
    w = Webhooks()
    yield w
    w.close()


def api(base: str, method: str, path: str, key: tuple[str, str], body=None):
    """A JSON API call with an API key (Authorization: Bearer KEY_ID:SECRET)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": f"Bearer {key[0]}:{key[1]}", "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=15) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def cells(b: Browser, row_css: str) -> list[list[str]]:
    return [[c.text.strip() for c in r.find_elements("css selector", "td")]
            for r in b.all(row_css)]


def offsets_shown(b: Browser) -> list[int]:
    """The offsets of table#messages, top to bottom."""
    return [int(r[1]) for r in cells(b, "table#messages tbody tr") if len(r) > 1]


def is_dark(rgb: str) -> bool:
    m = re.match(r"rgba?\((\d+),\s*(\d+),\s*(\d+)", rgb)
    if not m:
        return False
    r, g, bl = (int(x) / 255 for x in m.groups())
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl < 0.2


def no_page_scroll(b: Browser):
    widths = b.d.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth];")
    b.check(widths[0] <= widths[1] + 1,
            f"the page scrolls sideways at {widths[1]} px: scrollWidth {widths[0]}")


def test_console_daily_work(start_sluice, browser_factory, kcat, webhooks):
    require_browser()
    from kafka import KafkaConsumer, TopicPartition

    started = time.monotonic()
    server = start_sluice(*SERVER_ARGS, label="console-daily")
    b = Browser(browser_factory("daily"), server.http_url, shots_dir(), itertools.count(1),
                "owner")

    # -- sign up, a cluster -------------------------------------------------------------
    b.go("/signup")
    b.fill("form#signup-form", {"email": "ops@example.com", "password": PASSWORD,
                                "org": "Daily ops"})
    b.submit("form#signup-form")
    b.expect_h1("Overview", exact=True)
    b.go("/clusters")
    b.fill("form#create-cluster", {"name": CLUSTER})
    b.submit("form#create-cluster")
    b.expect_h1(f"Cluster {CLUSTER}")
    cluster_path = b.path()
    cluster_id = cluster_path.rsplit("/", 1)[1]
    bootstrap = b.text("code#bootstrap")

    # -- 1. API key: the connect snippets carry the new key ------------------------------
    b.click_and_load(b.link("nav.tabs a", "API keys"))
    b.fill("form#create-key", {"name": "daily-ops"})
    b.submit("form#create-key")
    m = re.search(r"Key id:\s*(\S+)", b.flash())
    b.check(m, f"the flash should give the key id, got {b.flash()!r}")
    key_id = m.group(1).rstrip(".")
    secret = b.text("code.secret-value")
    connect = b.one("section#connect-new-key", "client settings for the new key")
    b.check(key_id in connect.find_element("css selector", "h2").text,
            f"#connect-new-key should name the key: {connect.text[:200]!r}")
    for snippet in ("snippet-kcat", "snippet-java", "snippet-rdkafka", "snippet-python"):
        text = b.one(f"#connect-new-key #{snippet}").get_attribute("textContent")
        b.check(key_id in text and secret in text,
                f"#{snippet} should hold the key id {key_id} and its secret: {text!r}")
        b.check("KEY_SECRET" not in text and "KEY_ID" not in text,
                f"#{snippet} still has a placeholder: {text!r}")
        b.check(bootstrap in text, f"#{snippet} should name the bootstrap {bootstrap}: {text!r}")
    copy = [x for x in b.all("#connect-new-key button[data-copy]") if x.is_displayed()]
    b.check(copy, "console.js should show the Copy buttons of #connect-new-key")
    b.shot("key-connect")
    # The snippets carry the secret, so they are shown once: not after a reload.
    b.go(cluster_path + "/keys")
    b.check(not b.all("#connect-new-key"), "#connect-new-key must not come back on reload")
    key = (key_id, secret)

    # -- 2. Topics: create, search, sort, page, add partitions ---------------------------
    b.go(cluster_path + "/topics")
    b.expect_h1(f"Topics of {CLUSTER}", exact=True)
    b.check(b.one("details#new-topic").get_attribute("open") is not None,
            "with no topics yet, the New topic form should be open")
    b.fill("form#create-topic", {"name": TOPIC, "partitions": "1"})
    b.submit("form#create-topic", "Create topic")
    b.expect_h1(f"Topic {TOPIC}", exact=True)
    b.check(f"Topic '{TOPIC}' created." in b.flash(), f"flash: {b.flash()!r}")
    b.go(cluster_path + "/topics")
    details = b.one("details#new-topic")
    b.check(details.get_attribute("open") is None,
            "with topics, the New topic form should be folded away")
    b.one("details#new-topic > summary").click()
    b.fill("form#create-topic", {"name": WIDE, "partitions": "4",
                                 "configs": "retention.ms=86400000"})
    b.shot("topic-create-form")
    b.submit("form#create-topic", "Create topic")
    b.expect_h1(f"Topic {WIDE}", exact=True)
    b.check(len(b.all("table#partitions tbody tr")) == 4, "the new topic should have 4 partitions")
    row = next((r for r in cells(b, "table#topic-config-values tbody tr")
                if r and r[0] == "retention.ms"), None)
    b.check(row and row[1] == "1 day" and row[2] == "set on topic",
            f"retention.ms=86400000 should read '1 day', set on topic: {row}")
    for name in API_TOPICS + BULK:
        status, text = api(server.http_url, "POST", f"/api/v1/clusters/{cluster_id}/topics",
                           key, {"name": name, "partitions": 1})
        assert status == 201, f"creating topic {name} with the API key: {status} {text}"

    b.go(cluster_path + "/topics")
    shown = b.text("#topics-shown")
    b.check(shown == f"Showing 1–50 of {ALL_TOPICS} topics",
            f"#topics-shown on page 1: {shown!r}")
    b.check(len(b.all("table#topics tbody tr")) == 50, "page 1 should list 50 topics")
    b.check("Page 1 of 2" in b.text("#topics-pager"), f"pager: {b.text('#topics-pager')!r}")
    b.click_and_load(b.one("#topics-pager a[rel=next]", "Next page link"))
    b.check("page=2" in b.d.current_url, f"Next should go to page 2: {b.d.current_url}")
    names = [r[0] for r in cells(b, "table#topics tbody tr")]
    b.check(len(names) == ALL_TOPICS - 50 and b.text("#topics-shown").startswith("Showing 51–"),
            f"page 2 should list the last {ALL_TOPICS - 50}: {names}, {b.text('#topics-shown')!r}")
    b.check("Page 2 of 2" in b.text("#topics-pager") and not b.all("#topics-pager a[rel=next]"),
            f"page 2 is the last: {b.text('#topics-pager')!r}")
    b.shot("topics-page-2")

    b.fill("form#topic-search", {"q": "daily"})
    b.submit("form#topic-search", "Search")
    names = [r[0] for r in cells(b, "table#topics tbody tr")]
    b.check(len(names) == DAILY_TOPICS and all("daily" in n for n in names),
            f"searching 'daily' should list the {DAILY_TOPICS} daily topics: {names}")
    shown = b.text("#topics-shown")
    b.check(f"whose name contains 'daily' ({ALL_TOPICS} topics in the cluster)" in shown,
            f"#topics-shown after the search: {shown!r}")
    b.check(b.one("form#topic-search input[name=q]").get_attribute("value") == "daily",
            "the search field should keep 'daily'")
    b.click_and_load(b.one("table#topics th a[title='Sort by partitions']"))
    b.check("sort=partitions" in b.d.current_url and "q=daily" in b.d.current_url,
            f"the sort link keeps the search: {b.d.current_url}")
    th = b.one("table#topics th[aria-sort='descending']", "the sorted column")
    th_text = th.get_attribute("textContent").strip()  # .text is upper-cased by the CSS
    b.check(th_text == "Partitions ▼", f"sorted column: {th_text!r}")
    rows = cells(b, "table#topics tbody tr")
    b.check(rows and rows[0][0] == WIDE and rows[0][1] == "4",
            f"sorted by partitions (largest first) {WIDE} comes first: {rows[:3]}")
    b.shot("topics-search-sorted")
    b.click_and_load(b.one("table#topics th a[title='Sort by partitions']"))
    b.check(b.all("table#topics th[aria-sort='ascending']"), "a second click sorts ascending")
    b.check(cells(b, "table#topics tbody tr")[-1][0] == WIDE,
            "ascending, the 4-partition topic comes last")

    b.go(f"{cluster_path}/topics/{GROWN}")
    b.fill("form#add-partitions", {"count": "3"})
    b.submit("form#add-partitions", "Add partitions")
    b.check(f"Topic '{GROWN}' now has 3 partitions." in b.flash(), f"flash: {b.flash()!r}")
    parts = [r[0] for r in cells(b, "table#partitions tbody tr")]
    b.check(parts == ["0", "1", "2"], f"table#partitions after adding: {parts}")
    b.check(b.text("p.lead").startswith("3 partitions"), f"summary: {b.text('p.lead')!r}")
    label = b.one("form#add-partitions label").text
    b.check("now 3 partitions" in label, f"the form should say the new count: {label!r}")
    b.shot("topic-partitions-added")

    # -- 3. Messages: produce, filter, page, duplicate, download, live tail --------------
    messages = f"{cluster_path}/topics/{TOPIC}/messages"
    b.go(messages)
    b.expect_h1(f"Messages of {TOPIC}", exact=True)
    produced = [("k-alpha", '{"n": 1, "item": "tea"}', ""),
                ("k-beta", '{"n": 2, "item": "coffee"}', "source: console"),
                ("k-gamma", '{"n": 3, "item": "cake"}', "")]
    for i, (k, v, h) in enumerate(produced):
        b.fill("form#produce-form", {"key": k, "value": v, "headers": h})
        b.submit("form#produce-form", "Produce")
        b.check(f"Produced to partition 0 at offset {i}." in b.flash(),
                f"flash after producing {k}: {b.flash()!r}")
    b.check(b.path() == messages, f"producing should come back to the browser: {b.path()}")
    b.check(offsets_shown(b) == [2, 1, 0], f"newest first, offsets 2, 1, 0: {offsets_shown(b)}")
    b.check(b.text("#count") == "3 records · newest first", f"#count: {b.text('#count')!r}")
    rows = cells(b, "table#messages tbody tr")
    b.check([r[3] for r in rows] == ["k-gamma", "k-beta", "k-alpha"]
            and rows[1][5] == "source: console" and rows[0][4] == produced[2][1],
            f"keys, values and headers as produced: {rows}")
    b.shot("messages-produced")

    b.fill("form#browse", {"key_contains": "beta"})
    b.submit("form#browse", "Show")
    b.check("key_contains=beta" in b.d.current_url, f"url: {b.d.current_url}")
    b.check(offsets_shown(b) == [1], f"key contains 'beta': only offset 1: {offsets_shown(b)}")
    b.fill("form#browse", {"key_contains": "", "header": "source:console"})
    b.submit("form#browse", "Show")
    b.check(offsets_shown(b) == [1], f"header source:console: only offset 1: {offsets_shown(b)}")
    b.fill("form#browse", {"header": "", "filter": '.offset == 2 || .key == "k-alpha"'})
    b.submit("form#browse", "Show")
    b.check(offsets_shown(b) == [2, 0], f"VRL filter: offsets 2 and 0: {offsets_shown(b)}")
    b.check(not b.all("#filter-errors"), "the VRL filter should run without errors")
    b.shot("messages-vrl-filter")
    b.fill("form#browse", {"filter": "parse_json!(string!(.value)).n >"})
    b.submit("form#browse", "Show")
    err = b.text("main .flash.error")
    b.check(err, "a VRL program that does not compile should be refused with a message")
    b.check(b.one("form#browse textarea[name=filter]").get_attribute("value").startswith(
        "parse_json!"), "the refused filter should stay in the form")
    b.fill("form#browse", {"filter": "", "limit": "1"})
    b.submit("form#browse", "Show")
    seen = [offsets_shown(b)]
    while b.all("a#next"):
        nxt = b.one("a#next")
        b.check(nxt.text.strip() == "Older →", f"the next page of newest-first: {nxt.text!r}")
        b.click_and_load(nxt)
        seen.append(offsets_shown(b))
        if len(seen) > 5:
            break
    b.check(seen == [[2], [1], [0]], f"pages of 1 through 'Older →': {seen}")
    b.check(b.all("a#newer"), "an older page should link to newer records")
    b.shot("messages-oldest-page")

    b.go(messages)
    row = next(r for r in b.all("table#messages tbody tr") if "k-beta" in r.text)
    dup = [a for a in b.all("a", within=row) if a.text.strip() == "duplicate"]
    b.check(dup, "each record should have a 'duplicate' link")
    b.click_and_load(dup[0])
    form = b.one("form#produce-form")
    got = {n: b.one(f"[name={n}]", within=form).get_attribute("value")
           for n in ("key", "value", "headers")}
    b.check(got == {"key": "k-beta", "value": produced[1][1], "headers": "source: console"},
            f"duplicate should fill the produce form with the record: {got}")
    b.shot("messages-duplicate")
    b.submit("form#produce-form", "Produce")
    b.check("at offset 3." in b.flash(), f"flash after the duplicate: {b.flash()!r}")
    rows = cells(b, "table#messages tbody tr")
    b.check(rows[0][1] == "3" and rows[0][3] == "k-beta" and rows[0][5] == "source: console",
            f"the duplicate is the newest record: {rows[:1]}")

    href = b.one("a#download").get_attribute("href")
    status, ctype, text = b.fetch(href)
    lines = [json.loads(x) for x in text.splitlines() if x.strip()]
    b.check(status == 200 and ctype.startswith("application/x-ndjson")
            and [x["offset"] for x in lines] == [3, 2, 1, 0]
            and lines[0]["headers"] == [{"key": "source", "value": "console"}],
            f"download: {status} {ctype} {text[:500]!r}")

    # A value longer than a cell's preview: cut, with a link to the whole record.
    big = "{" + ", ".join(f'"field{i:03d}": {i}' for i in range(200)) + "}"
    status, text = api(server.http_url, "POST",
                       f"/api/v1/clusters/{cluster_id}/topics/daily-invoices/messages", key,
                       {"key": "big", "value": big})
    assert status in (200, 201), f"producing a big record with the API: {status} {text}"
    b.go(f"{cluster_path}/topics/daily-invoices/messages")
    more = b.one("table#messages a.show-all", "the 'show all' link of a long value")
    b.check(re.fullmatch(r"show all \(\d+(\.\d+)? KiB\)", more.text.strip()),
            f"show-all link text: {more.text!r}")
    preview = [p.get_attribute("textContent") for p in b.all("table#messages pre.cell")]
    b.check(any(re.search(r"\n… \d+ more bytes$", p) for p in preview),
            f"a cut value should say how much more there is: {[p[-60:] for p in preview]}")
    b.click_and_load(more)
    b.check("full=1" in b.d.current_url, f"show all url: {b.d.current_url}")
    shown = [p.get_attribute("textContent") for p in b.all("table#messages pre.cell")]
    b.check(big in shown, f"show all should show the whole value ({len(big)} bytes)")
    b.go(messages)

    b.click_and_load(b.one("a#tail", "Live tail link"))
    b.check("tail=1" in b.d.current_url, f"live tail url: {b.d.current_url}")
    b.check(b.one("table#messages").get_attribute("data-tail"), "table#messages needs data-tail")
    b.check(b.text("a#tail") == "Stop live tail", f"link while tailing: {b.text('a#tail')!r}")
    b.d.execute_script("window.__sluiceNoReload = true;")
    res = kcat_sasl(kcat, bootstrap, key_id, secret,
                    ["-X", "message.timeout.ms=15000", "-t", TOPIC, "-P", "-k", "k-tail"],
                    "tail-record-1\n")
    assert res.returncode == 0, f"kcat produce: {res.stderr}"

    def tail_row():
        rows = b.all("table#messages tbody tr.new")
        return [r for r in rows if "tail-record-1" in r.text]

    new = b.wait_for(tail_row, "the record produced with kcat should appear in the live tail "
                               "(tail.js polls every 2 s)", timeout=15)
    b.check(b.d.execute_script("return window.__sluiceNoReload === true;"),
            "the live tail must add rows without reloading the page")
    tds = [c.text.strip() for c in new[0].find_elements("css selector", "td")]
    b.check(tds[:2] == ["0", "4"] and tds[3] == "k-tail",
            f"the tailed row: partition 0, offset 4, key k-tail: {tds}")
    b.shot("messages-live-tail")
    b.click_and_load(b.one("a#tail"))
    b.check("tail=1" not in b.d.current_url, "Stop live tail should leave the tail")

    # -- 4. A consumer group: commit, then reset with a preview --------------------------
    consumer = KafkaConsumer(TOPIC, group_id=GROUP, auto_offset_reset="earliest",
                             enable_auto_commit=False, fetch_max_wait_ms=200,
                             client_id="daily-consumer", **sasl_kwargs(bootstrap, key_id, secret))
    try:
        got = 0
        deadline = time.monotonic() + 30
        while got < 5 and time.monotonic() < deadline:
            got += sum(len(r) for r in consumer.poll(timeout_ms=500).values())
        assert got == 5, f"the group consumer read {got} records, expected 5"
        consumer.commit()
        assert consumer.committed(TopicPartition(TOPIC, 0)) == 5
    finally:
        consumer.close()

    def topic_groups():
        b.go(f"{cluster_path}/topics/{TOPIC}")
        rows = cells(b, "table#topic-groups tbody tr")
        return rows if rows and rows[0][0] == GROUP and rows[0][3] == "0" else None

    b.wait_for(topic_groups, f"the topic page should list {GROUP} with offset lag 0")
    b.click_and_load(b.link("table#topic-groups a", GROUP))
    b.expect_h1(f"Group {GROUP}", exact=True)
    group_path = b.path()

    def group_rows():
        return cells(b, "table#group-partitions tbody tr")

    def group_empty():
        b.go(group_path)
        return "State Empty" in b.text("#group-summary")

    b.wait_for(group_empty, "the group should be Empty once its consumer has left")
    b.check(group_rows()[0][:5] == [TOPIC, "0", "5", "5", "0"], f"before: {group_rows()}")
    b.fill("form#reset-offsets", {"topic": TOPIC, "to": "shift", "shift": "-2"})
    b.submit("form#reset-offsets", "Preview")
    plan = cells(b, "table#reset-plan tbody tr")
    b.check(plan == [[TOPIC, "0", "5", "3", "-2"]],
            f"#reset-plan should plan 5 -> 3 (-2) on {TOPIC} 0: {plan}")
    b.check(group_rows()[0][2] == "5", f"a preview commits nothing: {group_rows()}")
    apply = b.one("form#apply-reset button[type=submit]")
    b.check(apply.text.strip() == "Apply to 1 partition", f"apply button: {apply.text!r}")
    b.shot("group-reset-preview")
    b.submit("form#apply-reset")
    b.check(b.flash() == "Offsets reset on 1 partition.", f"flash after applying: {b.flash()!r}")
    b.check(b.path() == group_path, f"applying comes back to the group: {b.path()}")
    b.check(group_rows()[0][:5] == [TOPIC, "0", "3", "5", "2"], f"after: {group_rows()}")

    # -- 5. A lag alert fires (webhook, overview), then resolves -------------------------
    b.fill("form#create-lag-alert", {"max_time_lag_seconds": "1", "for_seconds": "0",
                                     "webhook_url": webhooks.url})
    b.submit("form#create-lag-alert", "Add alert")
    b.check(b.flash().startswith(f"Lag alert added: it fires when the time lag of {GROUP}"),
            f"flash after adding the alert: {b.flash()!r}")
    b.check(b.path() == group_path, f"adding an alert comes back to the group: {b.path()}")
    b.wait_for(lambda: "firing" in webhooks.statuses(),
               f"the webhook should receive status 'firing' (got {webhooks.statuses()})",
               timeout=20)
    fired = next(x for x in webhooks.bodies if x.get("status") == "firing")
    assert fired["group"] == GROUP and fired["max_time_lag_seconds"] == 1 \
        and fired["time_lag_seconds"] > 1, f"firing webhook body: {fired}"
    b.go(group_path)
    rules = cells(b, "#lag-alerts table#lag-alert-rules tbody tr")
    b.check(rules and rules[0][0].startswith("firing") and webhooks.url in rules[0][4],
            f"the group's rule should show as firing: {rules}")
    b.go("/")
    panel = b.one("#firing-alerts", "the overview's firing lag alerts")
    b.check(GROUP in panel.text and CLUSTER in panel.text, f"#firing-alerts: {panel.text!r}")
    b.shot("overview-firing")
    b.click_and_load(b.link("#firing-alerts a", GROUP))
    b.check(b.path() == group_path, f"the firing rule links to its group: {b.path()}")

    # -- 7. Dark mode and a narrow window, while there is lag to draw ---------------------
    b.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        b.go(f"{cluster_path}/topics/{TOPIC}")
        bg = b.d.execute_script("return getComputedStyle(document.body).backgroundColor;")
        b.check(is_dark(bg), f"dark mode: the topic page's background is {bg}")
        b.shot("dark-topic")
        b.go(group_path)
        wait_charts_shown(b)
        bg = b.d.execute_script("return getComputedStyle(document.body).backgroundColor;")
        b.check(is_dark(bg), f"dark mode: the group page's background is {bg}")
        chart_bg = b.d.execute_script(
            "var r = document.querySelector('svg.lag-chart .bg');"
            " return r ? getComputedStyle(r).fill : null;")
        b.check(chart_bg is None or is_dark(chart_bg),
                f"dark mode: the inlined chart's background is {chart_bg}")
        b.shot("dark-group")
    finally:
        b.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": "light"}]})
    b.d.set_window_size(800, 1000)
    try:
        for name, path in [("narrow-messages", messages), ("narrow-group", group_path),
                           ("narrow-topics", cluster_path + "/topics")]:
            b.go(path)
            if name == "narrow-group":
                wait_charts_shown(b)
            no_page_scroll(b)
            b.shot(name)
    finally:
        b.d.set_window_size(*WINDOW)

    # -- 5 (end). Catch up: reset to the log end, the rule resolves ----------------------
    b.go(group_path)
    b.fill("form#reset-offsets", {"topic": "", "to": "latest"})
    b.submit("form#reset-offsets", "Preview")
    plan = cells(b, "table#reset-plan tbody tr")
    b.check(plan == [[TOPIC, "0", "3", "5", "+2"]], f"reset to latest plans 3 -> 5: {plan}")
    b.submit("form#apply-reset")
    b.check(b.flash() == "Offsets reset on 1 partition.", f"flash: {b.flash()!r}")
    b.wait_for(lambda: "resolved" in webhooks.statuses(),
               f"the webhook should receive status 'resolved' (got {webhooks.statuses()})",
               timeout=20)
    assert webhooks.statuses()[-1] == "resolved", webhooks.statuses()
    b.go("/")
    b.check(not b.all("#firing-alerts"), "no firing alert once the group caught up")
    b.go(cluster_path + "/alerts")
    rules = cells(b, "table#lag-alert-rules tbody tr")
    b.check(rules and rules[0][0] == GROUP and rules[0][1].startswith("ok"),
            f"the cluster's alert list: {rules}")
    b.shot("alerts-resolved")
    took = time.monotonic() - started
    assert took < 150, f"the daily walk took {took:.0f}s"

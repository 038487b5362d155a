"""A newcomer's walk through the web console in headless Chromium (Selenium).

Signs up, creates a cluster and an API key, produces and consumes with real Kafka
clients over SASL/SCRAM-SHA-256 with that key, browses topics, messages and the consumer
group with its lag charts, invites a second user (read-only member), and revokes the key.
Every action is a real form submission (typing into fields, clicking buttons). A window
screenshot is saved after each step (NN-name.png) into ``SLUICE_SCREENSHOT_DIR``
(default ``<repo>/artifacts/screenshots``).

Browser: ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (Debian packages ``chromium``
and ``chromium-driver``; override with ``SLUICE_CHROMIUM`` / ``SLUICE_CHROMEDRIVER``) and
the ``selenium`` Python package. Selenium is given both paths, so it never runs Selenium
Manager or downloads anything (``SE_OFFLINE=true`` as well). When one of them is missing
the test is skipped, unless ``SLUICE_REQUIRE_BROWSER`` is set (CI sets it): then it fails.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO_ROOT

SERVER_ARGS = ["--lag-interval", "1s", "--group-initial-rebalance-delay", "200ms"]
WINDOW = (1400, 1000)
PASSWORD = "correct horse battery"  # >= 10 characters
ORG = "Acme data team"
CLUSTER = "prod"
TOPIC = "orders"
GROUP = "browser-group"
# Series colours of the lag charts (app/src/chart.rs: TIME_COLOUR, OFFSET_COLOUR). The axes
# are <polyline>s too, so "a line was drawn" means a polyline in the series colour.
TIME_LAG_STROKE = "#3B82F6"
OFFSET_LAG_STROKE = "#D97706"
# public/console.js replaces each <img class="chart"> by the same SVG inlined into the page
# (<svg class="chart lag-chart">); without scripts, or when the fetch fails, the img stays.
CHART_CSS = "img.chart, svg.lag-chart"


def _required() -> bool:
    return os.environ.get("SLUICE_REQUIRE_BROWSER", "").strip().lower() not in (
        "", "0", "false", "no")


def _find_exe(env: str, candidates: list[str]) -> str | None:
    if os.environ.get(env):
        p = os.environ[env]
        return p if os.path.isfile(p) and os.access(p, os.X_OK) else None
    for c in candidates:
        p = c if os.path.isabs(c) else shutil.which(c)
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def require_browser() -> tuple[str, str]:
    """(chromium, chromedriver). Skips the test when the browser, its driver or selenium
    is missing, or fails it when SLUICE_REQUIRE_BROWSER is set (CI)."""
    chromium = _find_exe("SLUICE_CHROMIUM", ["/usr/bin/chromium", "chromium", "chromium-browser"])
    chromedriver = _find_exe("SLUICE_CHROMEDRIVER", ["/usr/bin/chromedriver", "chromedriver"])
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium Python package (pip install selenium)")
    if chromium is None:
        missing.append("Chromium (/usr/bin/chromium: apt-get install chromium)")
    if chromedriver is None:
        missing.append("chromedriver (/usr/bin/chromedriver: apt-get install chromium-driver)")
    if missing:
        msg = "the console browser test needs " + ", ".join(missing)
        if _required():
            pytest.fail(f"{msg}; SLUICE_REQUIRE_BROWSER is set, so this is a failure",
                        pytrace=False)
        pytest.skip(f"SKIPPED BROWSER TEST: {msg} (set SLUICE_REQUIRE_BROWSER=1 to fail instead)")
    return chromium, chromedriver


@pytest.fixture
def browser_factory(tmp_path, monkeypatch):
    """Factory of headless Chromium drivers, all quit at the end of the test."""
    # Never let Selenium Manager look for (or download) a browser or driver.
    monkeypatch.setenv("SE_OFFLINE", "true")
    drivers = []
    counter = itertools.count(1)

    def make(label: str):
        chromium, chromedriver = require_browser()
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        n = next(counter)
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for arg in [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
            f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / f'chrome-profile-{n}'}",
            # Loopback only: nothing in the background may reach out.
            "--no-proxy-server", "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update",
            "--disable-default-apps", "--disable-sync", "--disable-extensions",
            "--disable-features=Translate,OptimizationHints,MediaRouter,"
            "PasswordLeakDetection,AutofillServerCommunication",
            "--lang=en-US",
        ]:
            opts.add_argument(arg)
        service = Service(executable_path=chromedriver,
                          log_output=str(tmp_path / f"chromedriver-{n}-{label}.log"))
        driver = webdriver.Chrome(service=service, options=opts)
        drivers.append(driver)
        driver.set_window_size(*WINDOW)
        driver.set_page_load_timeout(30)
        return driver

    yield make
    for d in drivers:
        try:
            d.quit()
        except Exception:  # noqa: BLE001 - teardown must not hide the test's own failure
            pass


def screenshots_dir() -> Path:
    d = Path(os.environ.get("SLUICE_SCREENSHOT_DIR") or REPO_ROOT / "artifacts" / "screenshots")
    d.mkdir(parents=True, exist_ok=True)
    # Screenshots of an earlier run would mix with this one's.
    for old in d.glob("[0-9][0-9]-*.png"):
        old.unlink()
    return d


class Browser:
    """One browser session on the console, with checks that explain themselves."""

    def __init__(self, driver, base_url: str, shots_dir: Path, shot_counter, who: str):
        self.d = driver
        self.base = base_url.rstrip("/")
        self.shots_dir = shots_dir
        self.counter = shot_counter
        self.who = who

    # -- basics
    def path(self) -> str:
        return urllib.parse.urlsplit(self.d.current_url).path

    def url(self, path: str) -> str:
        return self.base + path

    def go(self, path: str):
        self.d.get(self.url(path))
        self._loaded()

    def _loaded(self):
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(self.d, 15).until(
            lambda d: d.execute_script("return document.readyState") == "complete")

    def shot(self, name: str) -> Path:
        p = self.shots_dir / f"{next(self.counter):02d}-{name}.png"
        assert self.d.save_screenshot(str(p)), f"could not save screenshot {p}"
        return p

    def context(self) -> str:
        src = self.d.page_source
        m = re.search(r"<main.*?</main>", src, re.S)
        snippet = m.group(0) if m else src
        if len(snippet) > 3000:
            snippet = snippet[:3000] + " …"
        return (f"\n  browser: {self.who}\n  url: {self.d.current_url}\n  title: {self.d.title!r}"
                f"\n  page (main):\n{snippet}")

    def fail(self, msg: str):
        try:
            self.shot("FAILED")
        except Exception:  # noqa: BLE001
            pass
        raise AssertionError(msg + self.context())

    def check(self, cond, msg: str):
        if not cond:
            self.fail(msg)

    def wait_for(self, cond, msg: str, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                value = cond()
                if value:
                    return value
            except Exception as e:  # noqa: BLE001 - keep waiting
                last = e
            time.sleep(0.2)
        self.fail(f"{msg} (waited {timeout:.0f}s{f'; last error: {last!r}' if last else ''})")

    # -- elements
    def all(self, css: str, within=None):
        from selenium.webdriver.common.by import By
        return (within or self.d).find_elements(By.CSS_SELECTOR, css)

    def one(self, css: str, what: str | None = None, within=None):
        found = self.all(css, within)
        if not found:
            self.fail(f"no element {css!r}{f' ({what})' if what else ''} on this page")
        return found[0]

    def text(self, css: str) -> str:
        return self.one(css).text.strip()

    def h1(self) -> str:
        found = self.all("main h1")
        return found[0].text.strip() if found else ""

    def flash(self) -> str:
        found = self.all(".flash")
        return found[0].text.strip() if found else ""

    def expect_h1(self, want: str, exact: bool = False):
        h = self.h1()
        ok = h == want if exact else h.startswith(want)
        self.check(ok, f"expected the page heading {'to be' if exact else 'to start with'} "
                       f"{want!r}, got {h!r}")

    def link(self, css: str, label: str):
        for a in self.all(css):
            if a.text.strip() == label:
                return a
        self.fail(f"no link {label!r} among {css!r} "
                  f"(found {[a.text.strip() for a in self.all(css)]})")

    def click_and_load(self, element):
        """Clicks something that navigates and waits until the next page has loaded.

        The old page is marked with a window property that the new page does not have
        (element staleness checks race with the navigation: chromedriver can answer
        "Node with given id does not belong to the document" instead of "stale")."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        self.d.execute_script("window.__sluiceOldPage = true;")
        element.click()

        def next_page_loaded(d):
            try:
                return d.execute_script("return window.__sluiceOldPage === undefined"
                                        " && document.readyState === 'complete';")
            except WebDriverException:  # mid-navigation
                return False

        try:
            WebDriverWait(self.d, 15, poll_frequency=0.1).until(next_page_loaded)
        except Exception:  # noqa: BLE001 - TimeoutException: explain with the page
            self.fail("clicking did not lead to a new page within 15 s")

    def fill(self, form_css: str, fields: dict[str, str]):
        from selenium.webdriver.support.ui import Select
        form = self.one(form_css, "form")
        for name, value in fields.items():
            el = self.one(f"[name='{name}']", f"field {name} of {form_css}", within=form)
            if el.tag_name == "select":
                Select(el).select_by_value(value)
            else:
                el.clear()
                el.send_keys(value)
        return form

    def submit(self, form_css: str, button_label: str | None = None):
        form = self.one(form_css, "form")
        buttons = self.all("button[type=submit]", within=form)
        if button_label is not None:
            buttons = [b for b in buttons if b.text.strip() == button_label]
        self.check(buttons, f"no submit button {button_label or ''!r} in {form_css}")
        self.click_and_load(buttons[0])

    def session_cookie(self) -> str:
        for c in self.d.get_cookies():
            if c["name"] == "sluice_session":
                return c["value"]
        self.fail(f"no sluice_session cookie in the browser (cookies: "
                  f"{[c['name'] for c in self.d.get_cookies()]})")

    def fetch(self, path_or_url: str) -> tuple[int, str, str]:
        """GET with this browser's session cookie (no proxy): status, content type, body."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        req = urllib.request.Request(url, headers={"Cookie": f"sluice_session={self.session_cookie()}"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=10) as resp:
                return resp.status, resp.headers.get("content-type", ""), resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("content-type", ""), e.read().decode(errors="replace")


# -- Kafka clients with an API key -----------------------------------------------------

def kcat_sasl(kcat, bootstrap, key_id, secret, args, input_text=None, timeout=60):
    cmd = [kcat, "-b", bootstrap, "-X", "security.protocol=SASL_PLAINTEXT",
           "-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", f"sasl.username={key_id}",
           "-X", f"sasl.password={secret}", *args]
    return subprocess.run(cmd, input=input_text, capture_output=True, text=True, timeout=timeout,
                          stdin=None if input_text is not None else subprocess.DEVNULL)


def sasl_kwargs(bootstrap, key_id, secret):
    return dict(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="SCRAM-SHA-256", sasl_plain_username=key_id,
                sasl_plain_password=secret, request_timeout_ms=15000)


def has_series_line(svg: str, stroke: str) -> bool:
    return re.search(rf'<polyline[^>]*stroke="{re.escape(stroke)}"', svg, re.I) is not None


def latest_point_value(svg: str, stroke: str) -> float | None:
    """The value at the height of the series' last point, read off the y axis (None: no
    line, or fewer than two numeric y-axis labels).

    Reads plotters' SVG: the series is a <polyline stroke=COLOUR points="x,y ...">, the
    y-axis labels are <text y=".." text-anchor="end">LABEL</text> (plotters picks round
    ticks, e.g. 0, 2, 4, so a point may sit between two labels: the value is interpolated
    linearly between the lowest and the highest tick)."""
    lines = re.findall(rf'<polyline[^>]*stroke="{re.escape(stroke)}"[^>]*points="([^"]*)"',
                       svg, re.I)
    if not lines or not lines[-1].split():
        return None
    y = float(lines[-1].split()[-1].split(",")[1])
    ticks = []
    for ty, label in re.findall(
            r'<text[^>]*\sy="([-\d.]+)"[^>]*text-anchor="end"[^>]*>\s*([^<]*?)\s*</text>', svg):
        try:
            ticks.append((float(ty), float(label)))
        except ValueError:  # a label with a unit ("2 s") or a suffix ("1.2k")
            continue
    if len(ticks) < 2:
        return None
    (y0, v0), (y1, v1) = max(ticks), min(ticks)  # bottom (largest y) and top
    if y0 == y1:
        return None
    return round(v0 + (y - y0) * (v1 - v0) / (y1 - y0), 1)


def chart_sources(b: Browser, group_path: str) -> tuple[str, str]:
    """The time-lag and offset-lag chart addresses of a group page, read from the page as
    the server sends it (console.js may already have replaced the <img>s)."""
    status, _, html = b.fetch(group_path)
    b.check(status == 200, f"GET {group_path} answered {status}")
    srcs = [s.replace("&amp;", "&") for s in
            re.findall(r'<img[^>]*class="chart"[^>]*src="([^"]+)"', html)
            + re.findall(r'<img[^>]*src="([^"]+)"[^>]*class="chart"', html)]
    time_src = next((s for s in srcs if "metric=time" in s), None)
    offset_src = next((s for s in srcs if "metric=offset" in s), None)
    b.check(time_src and offset_src, f"chart sources in the group page's HTML: {srcs}")
    return time_src, offset_src


def wait_charts_shown(b: Browser, want: int = 2):
    """Waits until the page shows `want` charts: inline <svg class="lag-chart"> with a
    drawing in it (console.js), or loaded <img class="chart">. Returns what was seen."""
    def shown():
        found = b.d.execute_script(
            "return Array.from(document.querySelectorAll('img.chart, svg.lag-chart')).map(e =>"
            " e.localName === 'svg' ? ['svg', e.querySelectorAll('polyline').length > 0]"
            " : ['img', e.complete && e.naturalWidth > 0]);")
        return found if len(found) == want and all(ok for _, ok in found) else None

    return b.wait_for(shown, f"{want} lag charts should show in the browser (inline SVG with "
                             f"lines drawn, or loaded images)")


# -- the walk ---------------------------------------------------------------------------

def test_console_newcomer_walkthrough(start_sluice, browser_factory, kcat):
    require_browser()  # before anything else: skip (or fail in CI) without a browser
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from selenium.webdriver.support.ui import Select

    shots_dir = screenshots_dir()
    server = start_sluice(*SERVER_ARGS, label="console")
    counter = itertools.count(1)
    owner_email = "owner@example.com"
    member_email = "member@example.com"
    b = Browser(browser_factory("owner"), server.http_url, shots_dir, counter, "owner")

    # a. First visit: redirected to sign-up; create the account and the organisation.
    b.go("/")
    b.check(b.path() == "/signup", f"a fresh server should send / to /signup, got {b.path()}")
    b.expect_h1("Sign up", exact=True)
    b.fill("form#signup-form", {"email": owner_email, "password": PASSWORD, "org": ORG})
    b.shot("signup")
    b.submit("form#signup-form")
    b.check(b.path() == "/", f"sign-up should land on the overview (/), got {b.path()}")
    b.expect_h1("Overview", exact=True)
    b.check("Welcome" in b.flash(), f"expected a 'Welcome' flash after sign-up, got {b.flash()!r}")
    b.check(b.text("header .org") == ORG,
            f"header should name the organisation {ORG!r}, got {b.text('header .org')!r}")
    b.shot("overview")

    # b. Create a cluster.
    b.click_and_load(b.link("header nav a", "Clusters"))
    b.expect_h1("Clusters", exact=True)
    b.fill("form#create-cluster", {"name": CLUSTER})
    b.submit("form#create-cluster")
    b.expect_h1(f"Cluster {CLUSTER}")
    b.check(re.fullmatch(r"/clusters/[^/]+", b.path()), f"expected a cluster page, got {b.path()}")
    cluster_path = b.path()
    bootstrap = b.text("code#bootstrap")
    b.check(bootstrap == server.bootstrap,
            f"code#bootstrap shows {bootstrap!r}, the server listens on {server.bootstrap}")
    b.check("created" in b.flash(), f"expected a 'created' flash, got {b.flash()!r}")
    b.shot("cluster")

    # c. Create an API key from the "API keys" tab.
    b.click_and_load(b.link("nav.tabs a", "API keys"))
    b.expect_h1(f"API keys of {CLUSTER}", exact=True)
    b.fill("form#create-key", {"name": "browser-test"})
    b.submit("form#create-key")
    m = re.search(r"Key id:\s*(\S+)", b.flash())
    b.check(m, f"the flash should give the key id ('Key id: ...'), got {b.flash()!r}")
    key_id = m.group(1).rstrip(".")
    secret = b.text("code.secret-value")
    b.check(len(secret) >= 16, f"the secret in code.secret-value looks wrong: {secret!r}")
    key_rows = [r for r in b.all("table tbody tr") if key_id in r.text]
    b.check(key_rows and "active" in key_rows[0].text,
            f"the keys table should list {key_id} as active")
    b.shot("api-key")

    # d. Produce with kcat over SASL/SCRAM-SHA-256 with the new key.
    values = [f'{{"order": {i}}}' for i in (1, 2, 3)]
    res = kcat_sasl(kcat, bootstrap, key_id, secret,
                    ["-X", "message.timeout.ms=15000", "-t", TOPIC, "-P", "-k", "key1"],
                    "\n".join(values) + "\n")
    assert res.returncode == 0, f"kcat produce with the new key failed: {res.stderr}"

    # e. Topics tab -> topic -> message browser (text, then JSON).
    b.go(cluster_path)
    b.click_and_load(b.link("nav.tabs a", "Topics"))
    b.expect_h1(f"Topics of {CLUSTER}", exact=True)
    topic_links = [a for a in b.all("table#topics a") if a.text.strip() == TOPIC]
    b.check(topic_links, f"table#topics should list {TOPIC!r} produced with the key")
    b.shot("topics")
    b.click_and_load(topic_links[0])
    b.expect_h1(f"Topic {TOPIC}", exact=True)
    rows = [[c.text.strip() for c in r.find_elements("css selector", "td")]
            for r in b.all("table#partitions tbody tr")]
    b.check(rows and rows[0][:4] == ["0", "0", "3", "3"],
            f"table#partitions should show partition 0 with offsets 0..3 and 3 records, got {rows}")
    b.shot("topic")
    b.click_and_load(b.link("a.button", "Browse messages"))
    b.expect_h1(f"Messages of {TOPIC}", exact=True)
    table = b.one("table#messages", "message table")
    b.check(all(v in table.text for v in values),
            f"table#messages should contain the produced values {values}, has:\n{table.text}")
    b.check("key1" in table.text, "the record key 'key1' should be shown")
    b.shot("messages")
    b.fill("form#browse", {"format": "json"})
    b.submit("form#browse", "Show")
    b.check("format=json" in b.d.current_url, f"Show should reload with format=json: {b.d.current_url}")
    b.check(Select(b.one("form#browse select[name=format]")).first_selected_option.text == "JSON",
            "the format select should keep JSON selected")
    cells = [p.text for p in b.all("table#messages pre.cell")]
    b.check(any(c.strip() == '{\n  "order": 1\n}' for c in cells),
            f"JSON format should pretty-print the values, cells: {cells}")
    b.check("key1" in cells and not any("(not JSON)" in c for c in cells),
            f"in JSON format, plain-text keys should show as text, cells: {cells}")
    b.shot("messages-json")

    # f. Consume everything in a group with the key, commit, then produce more (lag).
    consumer = KafkaConsumer(TOPIC, group_id=GROUP, auto_offset_reset="earliest",
                             enable_auto_commit=False, fetch_max_wait_ms=200,
                             client_id="browser-test-consumer",
                             **sasl_kwargs(bootstrap, key_id, secret))
    try:
        got = []
        deadline = time.monotonic() + 30
        while len(got) < len(values) and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                got.extend(r.value.decode() for r in recs)
        assert got == values, f"group consumer read {got}, expected {values}"
        consumer.commit()
        committed = consumer.committed(TopicPartition(TOPIC, 0))
        assert committed == 3, f"committed offset after consuming 3 records: {committed}"
        producer = KafkaProducer(acks="all", max_block_ms=15000, enable_idempotence=False,
                                 **sasl_kwargs(bootstrap, key_id, secret))
        try:
            # One batch, so the lag job sees the offset lag go from 0 straight to 3.
            futures = [producer.send(TOPIC, key=b"key2", value=f'{{"order": {i}}}'.encode())
                       for i in (4, 5, 6)]
            producer.flush(timeout=15)
            offsets = [f.get(timeout=15).offset for f in futures]
            assert offsets == [3, 4, 5], f"offsets of the records produced after the commit: {offsets}"
        finally:
            producer.close()
    finally:
        consumer.close()

    # g. Consumer groups tab -> the group, its lag table and charts.
    b.go(cluster_path)
    b.click_and_load(b.link("nav.tabs a", "Consumer groups"))
    b.expect_h1(f"Consumer groups of {CLUSTER}", exact=True)
    group_links = [a for a in b.all("table#groups a") if a.text.strip() == GROUP]
    b.check(group_links, f"table#groups should list {GROUP!r}")
    b.shot("groups")
    b.click_and_load(group_links[0])
    b.expect_h1(f"Group {GROUP}", exact=True)
    group_path = b.path()
    charts = b.all(CHART_CSS)
    b.check(len(charts) == 2, f"the group page should show two lag charts ({CHART_CSS}), "
                              f"found {len(charts)}")
    time_src, offset_src = chart_sources(b, group_path)

    deadline = time.monotonic() + 25
    state = {}
    while True:
        status, ctype, svg = b.fetch(time_src)
        _, _, offset_svg = b.fetch(offset_src)
        summary = b.text("#group-summary")
        state = dict(status=status, ctype=ctype, summary=summary,
                     time_line=has_series_line(svg, TIME_LAG_STROKE),
                     offset_line=has_series_line(offset_svg, OFFSET_LAG_STROKE),
                     offset_chart_latest=latest_point_value(offset_svg, OFFSET_LAG_STROKE),
                     time_empty="no lag recorded" in svg)
        # Done when both charts draw a line, the offset-lag line ends at 3 (the lag job's
        # latest pass saw all three new records) and the summary has a computed time lag.
        if (status == 200 and state["time_line"] and state["offset_line"]
                and state["offset_chart_latest"] == 3.0
                and "offset lag 3" in summary and "time lag —" not in summary):
            break
        if time.monotonic() > deadline:
            b.fail(f"the lag charts did not show the group's lag within 25 s (--lag-interval 1s): "
                   f"{state}\ntime chart SVG (start): {svg[:1500]}")
        time.sleep(1)
        b.d.refresh()
        b._loaded()
    b.check(ctype.startswith("image/svg+xml"), f"chart content type: {ctype}")
    b.check(not state["time_empty"], "the time-lag chart still says 'no lag recorded'")
    b.go(group_path)

    loaded = wait_charts_shown(b)
    b.check(len(loaded) == 2, f"charts shown: {loaded}")
    summary = b.text("#group-summary")
    b.check("offset lag 3" in summary, f"#group-summary should report offset lag 3: {summary!r}")
    prow = [[c.text.strip() for c in r.find_elements("css selector", "td")]
            for r in b.all("table#group-partitions tbody tr")]
    b.check(prow and prow[0][:5] == [TOPIC, "0", "3", "6", "3"],
            f"table#group-partitions should show {TOPIC} 0 committed 3, log end 6, lag 3: {prow}")
    b.shot("group")

    # h. Team: invite a member, who signs up in a fresh browser and is read-only.
    b.click_and_load(b.link("header nav a", "Team"))
    b.expect_h1("Team", exact=True)
    b.fill("form#create-invite", {"role": "member", "note": "browser test member"})
    b.submit("form#create-invite")
    invite_url = b.text("code.secret-value")
    b.check(invite_url.startswith(f"{server.http_url}/invite/"),
            f"the invite link should point at this console ({server.http_url}/invite/...): "
            f"{invite_url!r}")
    b.check("Invite created" in b.flash(), f"flash after creating an invite: {b.flash()!r}")
    b.shot("team-invite")

    mb = Browser(browser_factory("member"), server.http_url, shots_dir, counter, "member")
    mb.d.get(invite_url)
    mb._loaded()
    mb.expect_h1("Join your team", exact=True)
    mb.check(ORG in mb.text("main"), f"the invite page should name the organisation {ORG!r}")
    mb.check(not mb.all("form#signup-form input[name=org]"),
             "the invite sign-up form should not ask for an organisation name")
    mb.fill("form#signup-form", {"email": member_email, "password": PASSWORD})
    mb.shot("invite-signup")
    mb.submit("form#signup-form")
    mb.check(mb.path() == "/", f"invite sign-up should land on the overview, got {mb.path()}")
    mb.expect_h1("Overview", exact=True)
    mb.check("Welcome" in mb.flash(), f"expected a 'Welcome' flash, got {mb.flash()!r}")
    mb.check(mb.text("header .org") == ORG,
             f"the member should be in {ORG!r}, header says {mb.text('header .org')!r}")
    mb.check("member" in mb.text("header .user"), f"header user: {mb.text('header .user')!r}")
    mb.shot("member-overview")
    mb.click_and_load(mb.link("header nav a", "Clusters"))
    mb.expect_h1("Clusters", exact=True)
    mb.check(not mb.all("form#create-cluster"), "a member must not see form#create-cluster")
    mb.check(any(a.text.strip() == CLUSTER for a in mb.all("main table a")),
             f"the member should see cluster {CLUSTER!r}")
    mb.shot("member-clusters")
    # Members do not see API keys at all (issue 12: not even their names or who made them).
    mb.go(cluster_path + "/keys")
    mb.expect_h1("Forbidden", exact=True)
    mb.check("Only owners and admins" in mb.text("main"),
             f"the refusal says who may see keys: {mb.text('main')!r}")
    mb.check(key_id not in mb.text("main"), "a member must not see the key id")
    mb.check(not mb.all("form#create-key"), "a member must not see form#create-key")
    mb.check(not mb.all("details.confirm") and not [
        x for x in mb.all("main button") if x.text.strip() == "Revoke"],
             "a member must not see Revoke buttons")

    # i. Revoke the key (as the owner); new connections with it fail within seconds.
    res = kcat_sasl(kcat, bootstrap, key_id, secret, ["-L", "-m", "5"], timeout=30)
    assert res.returncode == 0 and TOPIC in res.stdout, (
        f"before revocation kcat -L with the key should work: rc={res.returncode} "
        f"{res.stdout[-500:]} {res.stderr[-1000:]}")
    b.go(cluster_path + "/keys")
    row = next((r for r in b.all("table tbody tr") if key_id in r.text), None)
    b.check(row is not None, f"no row for key {key_id} on the keys page")
    # Revoking takes two clicks: open the row's confirmation, then confirm.
    opener = b.all("details.confirm > summary", within=row)
    b.check(opener, f"no 'Revoke…' confirmation in the row of {key_id}")
    opener[0].click()
    revoke = [x for x in b.all("button", within=row) if x.text.strip() == "Revoke"]
    b.check(revoke, f"no Revoke button in the row of {key_id}")
    b.click_and_load(revoke[0])
    revoked_at = time.monotonic()
    b.check("revoked" in b.flash(), f"flash after revoking: {b.flash()!r}")
    row = next((r for r in b.all("table tbody tr") if key_id in r.text), None)
    b.check(row is not None and "revoked" in row.text, f"the key's row should say revoked: "
                                                      f"{row.text if row else None!r}")
    b.shot("key-revoked")
    # A new connection with the key must be refused within ~5 s (the keys page promises
    # "within seconds"); kcat -L exits non-zero after its metadata timeout (-m) then.
    attempts = []
    while True:
        started = time.monotonic() - revoked_at
        res = kcat_sasl(kcat, bootstrap, key_id, secret, ["-L", "-m", "3"], timeout=30)
        attempts.append(dict(started_s=round(started, 1), rc=res.returncode,
                             stderr=res.stderr.strip()[-300:]))
        if res.returncode != 0 or re.search(r"authentication (error|failed)", res.stderr, re.I):
            break
        assert started < 6, ("new kcat connections with the revoked key still worked "
                             f"{started:.1f}s after the revocation: {attempts}")
        time.sleep(0.5)
    assert re.search(r"auth", res.stderr, re.I), (
        f"kcat with the revoked key failed, but not with an authentication error: {attempts}")

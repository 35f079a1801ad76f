"""The trace viewer end to end in headless Chromium, against the live system (solution/).

Starts the real services on free loopback ports (with an experiment configured, extension E2),
sends good orders and one failing order, then drives Chromium through its DevTools protocol
(over `--remote-debugging-pipe`: no extra package, no open debugging port) through each page
as a person uses it: the transaction search (filters, trace id, paging), a trace (waterfall,
span details, its log lines and exceptions), the performance page (sorting, drilling into
sample traces), the metrics page (a latency bucket's exemplars lead to a trace) and the
insights page (E1-E4). Each test checks the DOM and takes screenshots. Set
`WORKSHOP_SCREENSHOTS=<dir>` to keep the screenshots.

Skipped, with the reason, when Chromium is not installed (`.ci/install-system-packages.sh`
installs it; so does `apt-get install chromium`).
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from kit import ROOT
from kit.live.client import new_traceparent, send_order
from kit.live.system import LiveConfig, LiveSystem, free_ports
from kit.live.viewer.store import SpanDatabase

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")),
    reason="headless Chromium is not installed (/usr/bin/chromium); run "
           ".ci/install-system-packages.sh or apt-get install chromium")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--no-default-browser-check", "--hide-scrollbars",
         "--window-size=1400,1000", "--remote-debugging-pipe",
         # Resolve no host name at all: only 127.0.0.1 is reachable.
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]


class Chromium:
    """A headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.profile = tempfile.mkdtemp(prefix="workshop-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)

        def wire() -> None:              # in the child: the pipe ends on fds 3 and 4
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        binary = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4, high_r, high_w), preexec_fn=wire)
        for fd in (to_browser_r, from_browser_w, high_r, high_w):
            os.close(fd)
        self.timeout_s = timeout_s
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._events: queue.Queue = queue.Queue()
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.session = self._attach()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self._events.put(msg)

    def call(self, method: str, params: dict | None = None, *, session: bool = True) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session and getattr(self, "session", None):
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while msg["id"] not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"Chromium did not answer {method}")
                self._cond.wait(left)
            reply = self._replies.pop(msg["id"])
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def _attach(self) -> str:
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        session = self.call("Target.attachToTarget", {"targetId": target["targetId"],
                                                      "flatten": True}, session=False)["sessionId"]
        self.session = session
        for domain in ("Page.enable", "Runtime.enable"):
            self.call(domain)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
        return session

    def events(self) -> list[dict]:
        out = []
        while not self._events.empty():
            out.append(self._events.get_nowait())
        return out

    def goto(self, url: str) -> None:
        self.events()                     # forget older events
        self.call("Page.navigate", {"url": url})
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                event = self._events.get(timeout=0.5)
            except queue.Empty:
                continue
            if event.get("method") == "Page.loadEventFired":
                return
            if event.get("method") == "Runtime.exceptionThrown":
                raise AssertionError(f"JavaScript error on {url}: {event['params']}")
        raise TimeoutError(f"{url} did not load")

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                      "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
                      "return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                   "button": "left", "clickCount": 1})

    def click_and_wait(self, selector: str, timeout_s: float = 20.0) -> str:
        """Click a link (a real mouse click) and wait until the next page has loaded."""
        before = self.js("location.href")
        self.events()
        self.click(selector)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.js("location.href") != before and self.js("document.readyState") == "complete":
                    time.sleep(0.2)
                    return self.js("location.href")
            except AssertionError:        # the page was between documents
                pass
            time.sleep(0.1)
        raise TimeoutError(f"clicking {selector} on {before} loaded no page")

    def texts(self, selector: str) -> list[str]:
        return self.js(f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent)")

    def screenshot(self, path: Path, full: bool = False) -> bytes:
        if full:
            height = min(int(self.js("document.documentElement.scrollHeight")), 4000)
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": 1400, "height": height, "deviceScaleFactor": 1, "mobile": False})
            try:
                data = base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])
            finally:
                self.call("Emulation.setDeviceMetricsOverride",
                          {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
            path.write_bytes(data)
            return data
        return self._screenshot(path)

    def _screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])
        path.write_bytes(data)
        return data

    def close(self) -> None:
        try:
            self.call("Browser.close", session=False)
        except Exception:  # noqa: BLE001 - it is going away either way
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("live-viewer")
    system = LiveSystem(LiveConfig(tree=ROOT / "solution", ports=free_ports(), run_dir=run_dir,
                                   max_seconds=300, experiment="checkout-v2"))
    system.start()
    try:
        others = []
        for user in ("token-alice", "token-bob", "token-alice", "token-bob"):
            tp, tid = new_traceparent()
            assert send_order(system.url("gateway"), headers={"traceparent": tp},
                              token=user).status_code == 200
            others.append(tid)
        good_tp, good = new_traceparent()
        assert send_order(system.url("gateway"), headers={"traceparent": good_tp}).status_code == 200
        bad_tp, bad = new_traceparent()
        answer = send_order(system.url("gateway"), headers={"traceparent": bad_tp},
                            items=[{"product_id": "prod-unknown", "quantity": 1, "price": 5.0}])
        assert answer.status_code >= 500, answer.text
        assert system.flush()
        db = SpanDatabase(system.config.span_file)
        yield {"system": system, "good": good, "bad": bad, "db": db, "others": others}
    finally:
        system.stop()


@pytest.fixture(scope="module")
def browser():
    chromium = Chromium()
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = os.environ.get("WORKSHOP_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_list_page_shows_recent_traces_and_filters_errors(live, browser, shots):
    viewer = live["system"].viewer_url
    browser.goto(viewer)
    listed = browser.js("[...document.querySelectorAll('tr.trace-row')].map(r => r.dataset.traceId)")
    assert live["good"] in listed and live["bad"] in listed
    assert browser.js(f"document.querySelector('tr[data-trace-id=\"{live['bad']}\"] .badge-err') !== null")
    assert browser.js(f"document.querySelector('tr[data-trace-id=\"{live['good']}\"] .badge-err') === null")
    png_size(browser.screenshot(shots / "viewer-list.png"))

    browser.click("#f-errors")                      # tick "errors only" and submit the form
    browser.events()
    browser.js("document.querySelector('form.filters').submit()")
    deadline = time.monotonic() + 20
    while "errors=1" not in browser.js("location.search") and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    listed = browser.js("[...document.querySelectorAll('tr.trace-row')].map(r => r.dataset.traceId)")
    assert listed == [live["bad"]]

    browser.goto(viewer + "?min_ms=100000")
    assert browser.js("document.querySelectorAll('tr.trace-row').length") == 0
    assert browser.js("document.getElementById('empty') !== null")


def test_trace_page_waterfall_click_shows_span_details(live, browser, shots):
    stored = live["db"].get_trace(live["bad"])
    browser.goto(f"{live['system'].url('gateway')}/viewer/traces/{live['bad']}")
    assert browser.js("document.getElementById('trace-id').textContent") == live["bad"]
    assert browser.js("document.querySelectorAll('#waterfall g.span').length") == len(stored)
    assert browser.js("document.querySelectorAll('#waterfall g.span.error').length") >= 3
    assert browser.js("document.querySelectorAll('#waterfall .critical-segment').length") >= 1
    colours = browser.js("[...new Set([...document.querySelectorAll('#waterfall rect.bar')]"
                         ".map(b => b.getAttribute('fill')))].length")
    assert colours >= 4, "bars are coloured by service"
    assert browser.js("document.querySelector('#service-map svg.service-map') !== null")
    assert browser.js("document.querySelectorAll('#critical-path tbody tr').length") >= 1

    crashed = next(s for s in stored if s.service == "inventory-service" and s.kind == "SERVER"
                   and any(e[0] == "exception" for e in s.events))
    browser.click(f'g.span[data-span-id="{crashed.span_id}"] rect.bar')
    time.sleep(0.2)
    assert browser.js("document.getElementById('details').dataset.spanId") == crashed.span_id
    assert browser.js(f"document.querySelector('g.span[data-span-id=\"{crashed.span_id}\"]')"
                      ".classList.contains('selected')")
    details = browser.js("document.getElementById('details').textContent")
    assert crashed.name in details and "inventory-service" in details
    assert "exception.type" in details and "UnknownProductError" in details
    assert "http.response.status_code" in details
    data = browser.screenshot(shots / "viewer-trace.png")
    assert png_size(data) == (1400, 1000)
    assert browser.js("document.querySelectorAll('g.span.selected').length") == 1
    assert len(data) > 20_000, "the screenshot is (nearly) blank"
    errors = [e for e in browser.events() if e.get("method") == "Runtime.exceptionThrown"]
    assert not errors, errors


def test_service_map_page_and_otlp_download(live, browser, shots):
    gateway = live["system"].url("gateway")
    browser.goto(f"{gateway}/viewer/map")
    labels = " ".join(browser.js("[...document.querySelectorAll('#service-map svg text')]"
                                 ".map(t => t.textContent)"))
    for name in ("api-gateway", "auth-service", "order-service", "inventory-service",
                 "payment-service", "redis", "sqlite", "payment-provider"):
        assert name in labels
    png_size(browser.screenshot(shots / "viewer-map.png"))

    browser.goto(f"{gateway}/viewer/traces/{live['good']}")
    href = browser.js("document.getElementById('download').href")
    otlp = httpx.get(href, timeout=10)
    assert otlp.status_code == 200
    assert "attachment" in otlp.headers["content-disposition"]
    body = otlp.json()
    services = {a["value"]["stringValue"] for rs in body["resourceSpans"]
                for a in rs["resource"]["attributes"] if a["key"] == "service.name"}
    assert services == {"api-gateway", "auth-service", "order-service", "inventory-service",
                        "payment-service"}
    spans = [s for rs in body["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert len(spans) == len(live["db"].get_trace(live["good"]))
    assert {s["traceId"] for s in spans} == {live["good"]}


def _submit(browser: Chromium, form: str = "#range-form") -> None:
    """Submit a filter form as the Apply button does, and wait for the next page."""
    before = browser.js("location.href")
    browser.events()
    browser.js(f"document.querySelector({json.dumps(form)}).submit()")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if browser.js("location.href") != before and browser.js("document.readyState") == "complete":
                break
        except AssertionError:
            pass
        time.sleep(0.1)
    time.sleep(0.3)


def _rows(browser: Chromium, selector: str = "tr.trace-row") -> list[str]:
    return browser.js(f"[...document.querySelectorAll({json.dumps(selector)})].map(r => r.dataset.traceId)")


def test_transaction_search_filters_finds_by_id_and_pages(live, browser, shots):
    viewer = live["system"].viewer_url
    good, bad = live["good"], live["bad"]
    browser.goto(viewer + "?range=30m")
    listed = _rows(browser)          # ours, and the launcher's health checks (traces of their own)
    assert {good, bad, *live["others"]} <= set(listed)
    roots = browser.texts("tr.trace-row td:nth-child(2) a")
    assert all("POST /api/orders" in r or "/health" in r for r in roots), roots
    browser.goto(viewer + "?range=30m&service=api-gateway&operation=POST+%2Fapi%2Forders")
    assert set(_rows(browser)) == {good, bad, *live["others"]}
    assert browser.js("document.getElementById('total-count').textContent") == "6"
    # Only the orders that reached the payment service (the failing one stopped at inventory).
    browser.js("document.getElementById('f-service').value = 'payment-service';"
               "document.getElementById('f-operation').value = 'POST /payments/process'")
    _submit(browser)
    assert "service=payment-service" in browser.js("location.search")
    assert set(_rows(browser)) == {good, *live["others"]}
    png_size(browser.screenshot(shots / "search-service.png"))
    # The workshop's operation_Id is the trace id as a UUID.
    uuid = f"{bad[:8]}-{bad[8:12]}-{bad[12:16]}-{bad[16:20]}-{bad[20:]}"
    browser.goto(viewer)
    browser.js(f"document.getElementById('f-trace').value = {json.dumps(uuid)}")
    _submit(browser)
    assert _rows(browser) == [bad]
    # Paging: two a page, newest first, then older.
    browser.goto(viewer + "?range=1h&limit=2&operation=POST+%2Fapi%2Forders")
    first = _rows(browser)
    assert len(first) == 2 and first[0] == bad
    assert browser.js("document.getElementById('prev')") is None
    browser.click_and_wait("#next")
    second = _rows(browser)
    assert len(second) == 2 and not set(first) & set(second)
    assert browser.js("document.getElementById('prev') !== null")
    # A time range with nothing in it: from/to an hour in the past.
    browser.goto(viewer + "?range=custom&from=2001-01-01T00:00&to=2001-01-01T01:00")
    assert _rows(browser) == [] and browser.js("document.getElementById('empty') !== null")
    # Minimum duration and errors only together.
    browser.goto(viewer + "?range=1h&errors=1&min_ms=0.001")
    assert _rows(browser) == [bad]
    browser.click_and_wait(f'tr[data-trace-id="{bad}"] a')
    assert browser.js("document.getElementById('trace-id').textContent") == bad


def test_a_trace_shows_its_log_lines_linked_to_spans_and_its_exceptions(live, browser, shots):
    gateway = live["system"].url("gateway")
    browser.goto(f"{gateway}/viewer/traces/{live['good']}")
    events = browser.texts("#logs tr.log-row td:nth-child(4) b")
    assert "Order processed successfully" in events, events
    span_id = browser.js("document.querySelector('#logs tr.log-row a.to-span').dataset.spanId")
    stored = {s.span_id: s for s in live["db"].get_trace(live["good"])}
    assert span_id in stored and stored[span_id].service == "order-service"
    browser.click("#logs tr.log-row a.to-span")
    time.sleep(0.3)
    assert browser.js("document.getElementById('details').dataset.spanId") == span_id
    browser.js("window.scrollTo(0, document.getElementById('logs').offsetTop - 300)")
    png_size(browser.screenshot(shots / "trace-logs.png"))

    browser.goto(f"{gateway}/viewer/traces/{live['bad']}")
    kinds = browser.texts("#exceptions .exception b")
    assert any(k.endswith("UnknownProductError") for k in kinds), kinds
    stacks = browser.texts("#exceptions pre.stack")
    assert any("Traceback" in s for s in stacks)
    levels = browser.texts("#logs tr.log-row td:nth-child(2)")
    assert "error" in levels or "warning" in levels, levels
    browser.js("window.scrollTo(0, document.getElementById('exceptions').offsetTop - 100)")
    png_size(browser.screenshot(shots / "trace-exceptions.png"))


def test_performance_page_sorts_and_drills_into_sample_traces(live, browser, shots):
    gateway = live["system"].url("gateway")
    browser.goto(f"{gateway}/viewer/performance?range=1h")
    ops = browser.js("[...document.querySelectorAll('#operations tr.op-row')].map(r => "
                     "[r.dataset.service, r.dataset.operation, r.children[1].textContent])")
    assert ["api-gateway", "POST /api/orders", "6"] in ops, ops
    targets = set(browser.js("[...document.querySelectorAll('#dependencies tr.dep-row')]"
                             ".map(r => r.dataset.target)"))
    assert {"auth-service", "order-service", "inventory-service", "payment-service", "redis",
            "sqlite"} <= targets, targets
    assert any("payment-provider" in t for t in targets), targets
    assert browser.js("document.querySelectorAll('#operations .dist i').length") > 0
    png_size(browser.screenshot(shots / "performance.png", full=True))
    # Sort by count, ascending after a second click.
    browser.click_and_wait('#operations a.sort[data-sort="count"]')
    assert "sort=count" in browser.js("location.search")
    counts = [int(c.replace(",", "")) for c in browser.texts("#operations tr.op-row td:nth-child(2)")]
    assert counts == sorted(counts, reverse=True)
    browser.click_and_wait('#operations a.sort[data-sort="count"]')
    counts = [int(c.replace(",", "")) for c in browser.texts("#operations tr.op-row td:nth-child(2)")]
    assert counts == sorted(counts)
    # Drill into the inventory check: the failing order is among its failed samples.
    browser.click_and_wait('#operations tr.op-row[data-operation="POST /inventory/check"] a.drill')
    assert live["bad"] in _rows(browser, "#failed tr.sample-row")
    assert len(_rows(browser, "#slowest tr.sample-row")) == 6
    png_size(browser.screenshot(shots / "performance-samples.png"))
    browser.click_and_wait(f'#failed tr.sample-row[data-trace-id="{live["bad"]}"] a')
    assert browser.js("document.getElementById('trace-id').textContent") == live["bad"]
    time.sleep(0.3)
    selected = browser.js("document.getElementById('details').dataset.spanId")
    assert live["db"].get_trace(live["bad"]) and selected, "the sample's span is selected"


def test_metrics_page_rate_errors_histogram_and_exemplars(live, browser, shots):
    gateway = live["system"].url("gateway")
    browser.goto(f"{gateway}/viewer/metrics?range=1h")
    card = '.metric[data-service="api-gateway"]'
    assert int(browser.js(f"document.querySelector('{card} .requests').textContent")) == 6
    assert browser.js(f"document.querySelector('{card} .error-rate').textContent") == "16.7%"
    counts = browser.js(f"[...document.querySelectorAll('{card} a.bucket')].map(b => +b.dataset.count)")
    assert sum(counts) == 6
    png_size(browser.screenshot(shots / "metrics.png", full=True))
    slowest = max(i for i, c in enumerate(counts) if c)
    browser.click_and_wait(f'{card} a.bucket[data-bucket="{slowest}"]')
    found = _rows(browser, "#exemplars tr.exemplar-row")
    assert found and set(found) <= {live["good"], live["bad"], *live["others"]}, found
    png_size(browser.screenshot(shots / "metrics-exemplars.png"))
    browser.click_and_wait("#exemplars tr.exemplar-row a")
    assert browser.js("document.getElementById('trace-id').textContent") == found[0]


def test_insights_page_shows_the_extensions(live, browser, shots):
    gateway = live["system"].url("gateway")
    browser.goto(f"{gateway}/viewer/insights?range=1h")
    variants = browser.js("[...document.querySelectorAll('#variants tr.variant-row')].map(r => "
                          "[r.dataset.variant, +r.children[1].textContent])")
    assert sum(n for _, n in variants) == 6 and {v for v, _ in variants} <= {"control", "treatment"}
    slos = browser.js("[...document.querySelectorAll('#slos tr.slo-row')].map(r => r.dataset.slo)")
    assert slos == ["orders available", "orders fast", "payments available"]
    availability = browser.texts('#slos tr.slo-row[data-slo="orders available"] td')
    assert availability[1] == "6" and availability[2] == "5" and availability[5] == "missed"
    edges = browser.js("[...document.querySelectorAll('#edges tr.edge-row')].map(r => "
                       "r.dataset.caller + '>' + r.dataset.callee)")
    assert {"api-gateway>order-service", "order-service>inventory-service",
            "inventory-service>sqlite"} <= set(edges), edges
    assert browser.js("document.querySelector('#dependency-map svg') !== null")
    assert "percentile(duration, 95)" in browser.js("document.getElementById('kql-slowest').textContent")
    rates = browser.texts("#error-rates tbody tr td:first-child")
    assert "inventory-service" in rates
    png_size(browser.screenshot(shots / "insights.png", full=True))

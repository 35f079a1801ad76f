"""The trace viewer end to end in headless Chromium, against the live system (solution/).

Starts the real services on free loopback ports, sends one good and one failing order, then
drives Chromium through its DevTools protocol (over `--remote-debugging-pipe`: no extra
package, no open debugging port): loads the list page, filters it, opens the failing trace,
clicks a span with a real mouse event, checks the DOM and takes screenshots. Set
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

    def screenshot(self, path: Path) -> bytes:
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
                                   max_seconds=300))
    system.start()
    try:
        good_tp, good = new_traceparent()
        assert send_order(system.url("gateway"), headers={"traceparent": good_tp}).status_code == 200
        bad_tp, bad = new_traceparent()
        answer = send_order(system.url("gateway"), headers={"traceparent": bad_tp},
                            items=[{"product_id": "prod-unknown", "quantity": 1, "price": 5.0}])
        assert answer.status_code >= 500, answer.text
        assert system.flush()
        db = SpanDatabase(system.config.span_file)
        yield {"system": system, "good": good, "bad": bad, "db": db}
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
                   and any(name == "exception" for name, _ in s.events))
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

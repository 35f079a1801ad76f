"""The live system: real processes on loopback, spans in the shared SQLite store.

Every system here runs on free ports with its own span file, stops by itself after a few
minutes whatever happens (`max_seconds`), and is stopped at the end of its test. The test
process reads the span file with `kit.live.viewer.store.SpanDatabase` and never imports a tree.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from kit import ROOT
from kit.live.client import new_traceparent, send_order
from kit.live.system import (DEFAULT_PORTS, LiveConfig, LiveError, LiveSystem, free_base_port,
                             free_ports, port_in_use, ports_from_base)
from kit.live.viewer.store import SpanDatabase

SERVICES = {"api-gateway", "auth-service", "order-service", "inventory-service", "payment-service"}


def shape(spans) -> Counter:
    """What a trace is made of, whatever its ids and timings."""
    return Counter((s.service, s.name, s.kind) for s in spans)


def assert_connected(spans, client_parent: str) -> None:
    """One root (the gateway's server span, child of the client's span); every other span's
    parent is in the trace: no span in the middle is missing."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_span_id not in ids]
    assert len(roots) == 1, f"expected one root, got {[(r.service, r.name) for r in roots]}"
    assert (roots[0].service, roots[0].kind) == ("api-gateway", "SERVER")
    assert roots[0].parent_span_id == client_parent


def parent_of(traceparent: str) -> str:
    return traceparent.split("-")[2]


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    live = LiveSystem(LiveConfig(tree=ROOT / "solution", ports=free_ports(),
                                 run_dir=tmp_path_factory.mktemp("live"), max_seconds=300))
    live.start()
    try:
        yield live
    finally:
        live.stop()


def test_an_order_leaves_its_whole_trace_in_the_store(system):
    traceparent, trace_id = new_traceparent()
    answer = send_order(system.url("gateway"), headers={"traceparent": traceparent})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "success"
    assert system.flush()

    spans = SpanDatabase(system.config.span_file).get_trace(trace_id)
    assert {s.service for s in spans} == SERVICES
    assert_connected(spans, parent_of(traceparent))
    names = {s.name for s in spans}
    assert {"process_order", "validate_inventory", "reserve_inventory", "process_payment",
            "confirm_order"} <= names
    assert any(s.attributes.get("db.system") == "redis" for s in spans)
    assert any(s.attributes.get("db.system") == "sqlite" for s in spans)

    # The gateway's Step 5 endpoint reads the same store.
    details = httpx.get(f"{system.url('gateway')}/monitoring/traces/{trace_id}", timeout=10)
    assert details.status_code == 200, details.text
    assert details.json()["span_count"] == len(spans)
    assert details.json()["service_count"] == 5
    # So does the viewer, with the kit's own analysis.
    api = httpx.get(f"{system.url('gateway')}/viewer/api/traces/{trace_id}", timeout=10).json()
    assert api["span_count"] == len(spans)
    assert api["critical_path"][0]["service"] == "api-gateway"


def test_the_stand_in_provider_declines_and_fails_as_configured(tmp_path):
    live = LiveSystem(LiveConfig(tree=ROOT / "solution", ports=free_ports(), run_dir=tmp_path,
                                 provider_decline_rate=1.0, max_seconds=120))
    with live:
        traceparent, trace_id = new_traceparent()
        answer = send_order(live.url("gateway"), headers={"traceparent": traceparent})
        assert answer.status_code == 402
        assert answer.json()["reason"] == "payment_failed"
        live.flush()
        spans = SpanDatabase(live.config.span_file).get_trace(trace_id)
        assert "rollback_inventory" in {s.name for s in spans}
        assert any(s.status == "ERROR" and s.service == "payment-service" for s in spans)


def _free_base() -> int:
    try:
        return free_base_port()
    except LiveError as exc:
        pytest.skip(str(exc))


def _start_cli(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kit.live", *args], cwd=ROOT,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            stdin=subprocess.DEVNULL)


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"kit.live exited early:\n{log.read_text()}")
        time.sleep(0.1)
    raise AssertionError(f"kit.live did not print {text!r}:\n{log.read_text()}")


def test_ctrl_c_stops_everything_and_loses_no_span(tmp_path):
    base = _free_base()
    db = tmp_path / "spans.db"
    log = tmp_path / "live.log"
    proc = _start_cli(["--solution", "--base-port", str(base), "--span-db", str(db),
                       "--max-seconds", "300"], log)
    try:
        _wait_for(log, "Ctrl-C stops everything", proc)
        gateway = f"http://127.0.0.1:{base}"
        with httpx.Client(timeout=15) as client:
            send_order(gateway, client=client)                    # fills the product cache
            ref_tp, ref_id = new_traceparent()
            assert send_order(gateway, client=client, headers={"traceparent": ref_tp}).status_code == 200
            sent = []
            for _ in range(6):                                     # still in the export batch
                tp, tid = new_traceparent()
                assert send_order(gateway, client=client, headers={"traceparent": tp}).status_code == 200
                sent.append((tp, tid))
        proc.send_signal(signal.SIGINT)                            # what Ctrl-C sends
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    output = log.read_text()
    assert "Stopped." in output, output
    assert not any(port_in_use("127.0.0.1", p) for p in ports_from_base(base).values())

    store = SpanDatabase(db)
    reference = store.get_trace(ref_id)
    assert {s.service for s in reference} == SERVICES
    for tp, tid in sent:
        spans = store.get_trace(tid)
        assert shape(spans) == shape(reference), f"trace {tid} lost spans at shutdown"
        assert_connected(spans, parent_of(tp))


def test_a_port_in_use_is_a_one_line_error(tmp_path):
    base = _free_base()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 2))                        # the order service's port
        taken.listen()
        result = subprocess.run([sys.executable, "-m", "kit.live", "--solution", "--base-port",
                                 str(base), "--span-db", str(tmp_path / "s.db")], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {base + 2} (order-service) is already in use" in lines[0]


def test_the_exercise_runs_live_untraced_as_shipped(tmp_path):
    live = LiveSystem(LiveConfig(tree=ROOT / "exercise", ports=free_ports(), run_dir=tmp_path,
                                 max_seconds=120))
    with live:
        answer = send_order(live.url("gateway"))
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "success"
        viewer = httpx.get(live.viewer_url, timeout=10)
        assert viewer.status_code == 200          # the viewer works whatever the learner's state
    assert set(live.exit_codes.values()) == {0}


def test_tracing_off_stores_nothing_and_orders_still_go_through(tmp_path):
    live = LiveSystem(LiveConfig(tree=ROOT / "solution", ports=free_ports(), run_dir=tmp_path,
                                 export="off", max_seconds=120))
    with live:
        assert send_order(live.url("gateway")).status_code == 200
        live.flush()
    assert SpanDatabase(live.config.span_file).count() == 0


def _redis_server() -> str | None:
    return shutil.which("redis-server")


@pytest.mark.skipif(_redis_server() is None,
                    reason="redis-server is not on PATH (.ci/install-system-packages.sh "
                           "installs it); the order service's cache then uses fakeredis")
def test_the_live_system_against_a_real_redis(tmp_path):
    import redis

    port = free_ports()["gateway"]
    server = subprocess.Popen([_redis_server(), "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        probe = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        deadline = time.monotonic() + 20
        while True:
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.1)
        ports = free_ports()
        live = LiveSystem(LiveConfig(tree=ROOT / "solution", ports=ports, run_dir=tmp_path,
                                     redis_url=f"redis://127.0.0.1:{port}/0", max_seconds=120))
        with live:
            traceparent, trace_id = new_traceparent()
            answer = send_order(live.url("gateway"), headers={"traceparent": traceparent})
            assert answer.status_code == 200, answer.text
            live.flush()
        cached = probe.get("product:prod-1")
        assert cached is not None and b"Trace Mug" in cached        # the real server holds it
        spans = SpanDatabase(live.config.span_file).get_trace(trace_id)
        redis_spans = [s for s in spans if s.attributes.get("db.system") == "redis"]
        assert redis_spans and all(s.kind == "CLIENT" for s in redis_spans)
        assert any(str(port) in str(s.attributes.get("server.port", s.attributes.get("net.peer.port")))
                   for s in redis_spans)
        probe.close()
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def test_default_ports_are_the_workshops():
    assert {k: v for k, v in DEFAULT_PORTS.items() if k != "provider"} == {
        "gateway": 8000, "auth": 8001, "order": 8002, "inventory": 8004, "payment": 8005}
    assert os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN") == "http"

"""Run the workshop's system for real: five services and a stand-in payment provider, each its
own uvicorn process on 127.0.0.1, spans in a local SQLite store, the trace viewer on the
gateway's port.

    python -m kit.live                      # exercise/ (your code), on the workshop's ports
    python -m kit.live --solution           # the reference answer
    python -m kit.live --base-port 9000     # gateway 9000, auth 9001, order 9002, ...
    python -m kit.live --provider-latency-ms 300 --provider-failure-rate 0.2

Then send an order (`python scripts/step7_trace_test.py`) and open the viewer at
http://127.0.0.1:8000/viewer/. Ctrl-C stops everything, front to back (the gateway first, the
provider last), so requests in flight finish; each service flushes its spans as it stops.

Where spans go (`--export`): `store` (the default) writes every service's spans to one SQLite
file (`.live/spans.db`), which the gateway's `/monitoring/traces/{id}` and the viewer read.
With `OTEL_EXPORTER_OTLP_ENDPOINT` (a collector, Jaeger, Tempo) or
`APPLICATIONINSIGHTS_CONNECTION_STRING` set, the default becomes `both`: the store and that
backend. `env` leaves the choice to your Step 1 code alone (the local viewer then stays empty,
unless `WORKSHOP_APPINSIGHTS_WORKSPACE_ID` makes the gateway read Application Insights with
KQL); `off` turns tracing off (the OpenTelemetry SDK disabled), for comparisons.

In Python (tests, benchmarks, scripts), with the client side in `kit.live.client`:

    with LiveSystem(LiveConfig(tree=ROOT / "solution", ports=free_ports())) as system:
        answer = send_order(system.url("gateway"))
        system.flush()
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kit import ROOT
from kit.topology import PROVIDER, PROVIDER_NAME, PROVIDER_PORT, SERVICES

#: Ours, by the key used in settings and ports (as the provided settings name them).
SERVICE_NAMES: dict[str, str] = {s.key: s.name for s in SERVICES}
#: The workshop's ports; the stand-in provider is not in the workshop and takes 8009.
DEFAULT_PORTS: dict[str, int] = {**{s.key: s.port for s in SERVICES}, PROVIDER: PROVIDER_PORT}
_OFFSETS = {key: port - DEFAULT_PORTS["gateway"] for key, port in DEFAULT_PORTS.items()}
#: Who is stopped first: callers before callees, so in-flight requests can finish.
STOP_ORDER: tuple[tuple[str, ...], ...] = (("gateway",), ("auth", "order"),
                                            ("inventory", "payment"), (PROVIDER,))
EXPORT_MODES = ("auto", "store", "env", "both", "off")
LOOPBACK = "127.0.0.1"



class LiveError(RuntimeError):
    """The system could not start or stop; the message is one line that says what to do."""


@dataclass
class LiveConfig:
    """How to run the system. Every field has the workshop's default."""

    tree: Path = ROOT / "exercise"
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    run_dir: Path = ROOT / ".live"               # logs, and the span file by default
    span_db: Path | None = None                  # default: run_dir / "spans.db"
    export: str = "auto"
    provider_latency_ms: float = 0.0
    provider_failure_rate: float = 0.0
    provider_decline_rate: float = 0.0
    provider_seed: int | None = None
    redis_url: str | None = None                 # default: the environment's REDIS_URL
    inventory_db: str | None = None              # a SQLite file shared by restarts
    stock: dict[str, int] | None = None          # stock to put in the inventory first
    environment: str | None = None               # WORKSHOP_ENVIRONMENT (sampling defaults)
    max_seconds: float | None = None             # every process stops by itself after this
    access_log: bool = False
    experiment: str | None = None                # E2: WORKSHOP_EXPERIMENT for the gateway
    slos: str | None = None                      # E3: the viewer's SLOs (JSON list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def span_file(self) -> Path:
        return Path(self.span_db) if self.span_db else Path(self.run_dir) / "spans.db"

    def export_mode(self, environ: dict[str, str] | None = None) -> str:
        """`auto` resolved: `both` when a real backend is configured, else `store`."""
        env = os.environ if environ is None else environ
        if self.export != "auto":
            return self.export
        backend = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
            "APPLICATIONINSIGHTS_CONNECTION_STRING")
        return "both" if backend else "store"


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on (host, port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_ports() -> dict[str, int]:
    """One free loopback port per process (for tests and benchmarks)."""
    socks, ports = [], {}
    try:
        for key in DEFAULT_PORTS:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            socks.append(sock)
            ports[key] = sock.getsockname()[1]
    finally:
        for sock in socks:
            sock.close()
    return ports


def ports_from_base(base: int) -> dict[str, int]:
    """The workshop's layout shifted: base, base+1, base+2, base+4, base+5, provider base+9."""
    return {key: base + offset for key, offset in _OFFSETS.items()}


def free_base_port(low: int = 20_000, high: int = 30_000, tries: int = 500) -> int:
    """A base port whose whole workshop layout is free on loopback (below the ephemeral range,
    so outgoing connections do not take it meanwhile). Raises LiveError if none is found."""
    import random

    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(low, high, 10)
        if not any(port_in_use(LOOPBACK, p) for p in ports_from_base(base).values()):
            return base
    raise LiveError(f"no free block of ports between {low} and {high}")


def seed_stock(path: str | os.PathLike[str], stock: dict[str, int]) -> None:
    """Put `stock` into an inventory database file before the inventory service opens it (the
    service seeds only products that are missing, so these quantities stay).

    This writes the `stock` table itself, as the trees' provided
    `services/inventory_service/db.py` lays it out: that module offers no way to set stock
    (its `InventoryDB` creates the schema and adds only its fixed `SEED_STOCK`, and the
    `Settings` have no stock field). `tests/live/test_seed_stock.py` fails when the two drift apart."""
    conn = sqlite3.connect(os.fspath(path))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS stock "
                     "(product_id TEXT PRIMARY KEY, on_hand INTEGER NOT NULL)")
        conn.executemany("INSERT OR REPLACE INTO stock VALUES (?, ?)", stock.items())
        conn.commit()
    finally:
        conn.close()


class LiveSystem:
    """The running system: `start()`, use `url(key)`, `flush()`, then `stop()` (or `with`)."""

    def __init__(self, config: LiveConfig | None = None) -> None:
        self.config = config or LiveConfig()
        self.procs: dict[str, subprocess.Popen] = {}
        self.exit_codes: dict[str, int | None] = {}
        self._logs: dict[str, Any] = {}

    # -- addresses ----------------------------------------------------------------------------
    def url(self, key: str) -> str:
        return f"http://{LOOPBACK}:{self.config.ports[key]}"

    @property
    def viewer_url(self) -> str:
        return f"{self.url('gateway')}/viewer/"

    @property
    def log_dir(self) -> Path:
        return Path(self.config.run_dir) / "logs"

    def log(self, key: str) -> str:
        path = self.log_dir / f"{key}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- starting -----------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        """The environment every process gets."""
        cfg = self.config
        env = dict(os.environ)
        mode = cfg.export_mode(env)
        env.update({
            "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])]),
            "WORKSHOP_LIVE_TREE": str(Path(cfg.tree).resolve()),
            "WORKSHOP_LIVE_EXPORT": mode,
            "WORKSHOP_SPAN_DB": str(cfg.span_file.resolve()),
            "WORKSHOP_LIVE_PARENT_PID": str(os.getpid()),
            "WORKSHOP_LIVE_HOST": LOOPBACK,
            "WORKSHOP_PAYMENT_PROVIDER_URL": self.url(PROVIDER),
            "WORKSHOP_LIVE_PROVIDER_LATENCY_MS": str(cfg.provider_latency_ms),
            "WORKSHOP_LIVE_PROVIDER_FAILURE_RATE": str(cfg.provider_failure_rate),
            "WORKSHOP_LIVE_PROVIDER_DECLINE_RATE": str(cfg.provider_decline_rate),
            "WORKSHOP_LIVE_PROVIDER_SEED": "" if cfg.provider_seed is None else str(cfg.provider_seed),
            "WORKSHOP_LIVE_MAX_SECONDS": str(cfg.max_seconds or ""),
            "WORKSHOP_LIVE_ACCESS_LOG": "1" if cfg.access_log else "0",
            "WORKSHOP_LIVE_LOG_LEVEL": "info" if cfg.access_log else "warning",
            "WORKSHOP_LIVE_ALIASES": json.dumps({f"{LOOPBACK}:{cfg.ports[PROVIDER]}": PROVIDER_NAME}),
        })
        env.update({f"WORKSHOP_{key.upper()}_URL": self.url(key) for key in SERVICE_NAMES})
        if mode == "off":
            env["OTEL_SDK_DISABLED"] = "true"
        if cfg.redis_url:
            env["REDIS_URL"] = cfg.redis_url
        if cfg.inventory_db:
            env["WORKSHOP_INVENTORY_DB"] = str(cfg.inventory_db)
        if cfg.environment:
            env["WORKSHOP_ENVIRONMENT"] = cfg.environment
        if cfg.experiment:
            env["WORKSHOP_EXPERIMENT"] = cfg.experiment
        if cfg.slos:
            env["WORKSHOP_LIVE_SLOS"] = cfg.slos
        env.update(cfg.extra_env)
        return env

    def _check(self) -> None:
        cfg = self.config
        tree = Path(cfg.tree)
        if not (tree / "services").is_dir():
            raise LiveError(f"{tree}: no services/ folder; give --tree a copy of exercise/")
        if cfg.export not in EXPORT_MODES:
            raise LiveError(f"--export {cfg.export}: use one of {', '.join(EXPORT_MODES)}")
        for key in DEFAULT_PORTS:
            if key not in cfg.ports:
                raise LiveError(f"no port given for {key}")
        if len(set(cfg.ports.values())) != len(cfg.ports):
            raise LiveError(f"two processes were given the same port: {cfg.ports}")
        for key, port in cfg.ports.items():
            if port_in_use(LOOPBACK, port):
                raise LiveError(
                    f"port {port} ({SERVICE_NAMES.get(key, PROVIDER_NAME)}) is already in use on "
                    f"{LOOPBACK}: stop whatever holds it (another kit.live?) or pick other ports "
                    f"with --base-port")

    def start(self, timeout_s: float = 60.0) -> "LiveSystem":
        """Start every process and wait until each answers `/health`."""
        cfg = self.config
        self._check()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cfg.span_file.parent.mkdir(parents=True, exist_ok=True)
        if cfg.stock:
            if not cfg.inventory_db:
                cfg.inventory_db = str(Path(cfg.run_dir) / "inventory.db")
            seed_stock(cfg.inventory_db, cfg.stock)
        env = self.environment()
        try:
            for key in (PROVIDER, "inventory", "payment", "auth", "order", "gateway"):
                log = open(self.log_dir / f"{key}.log", "w", encoding="utf-8")  # noqa: SIM115
                self._logs[key] = log
                self.procs[key] = subprocess.Popen(
                    [sys.executable, "-m", "kit.live.service", key, str(cfg.ports[key])],
                    cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True)  # Ctrl-C reaches the launcher, which stops them in order
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        waiting = set(self.procs)
        with httpx.Client(timeout=2.0) as client:
            while waiting:
                for key in sorted(waiting):
                    code = self.procs[key].poll()
                    if code is not None:
                        raise LiveError(f"{SERVICE_NAMES.get(key, PROVIDER_NAME)} exited with "
                                        f"code {code} at start: {self._last_error(key)}")
                    try:
                        if client.get(f"{self.url(key)}/health").status_code == 200:
                            waiting.discard(key)
                    except httpx.HTTPError:
                        pass
                if waiting and time.monotonic() > deadline:
                    raise LiveError(f"not ready after {timeout_s:.0f} s: {', '.join(sorted(waiting))} "
                                    f"(see {self.log_dir})")
                if waiting:
                    time.sleep(0.1)

    def _last_error(self, key: str) -> str:
        self._logs[key].flush()
        lines = [ln.strip() for ln in self.log(key).splitlines() if ln.strip()]
        for line in reversed(lines):
            if "address already in use" in line.lower():
                return f"port {self.config.ports[key]} is already in use"
        errors = [ln for ln in lines if "Error" in ln or "error" in ln]
        return (errors or lines or ["(no output)"])[-1][:300] + f" (log: {self.log_dir / (key + '.log')})"

    # -- running ------------------------------------------------------------------------------
    def alive(self) -> dict[str, bool]:
        return {key: proc.poll() is None for key, proc in self.procs.items()}

    def flush(self, timeout_s: float = 15.0) -> bool:
        """Ask every service to export the spans it holds now (`POST /_live/flush`)."""
        ok = True
        with httpx.Client(timeout=timeout_s) as client:
            for key in SERVICE_NAMES:
                try:
                    ok &= bool(client.post(f"{self.url(key)}/_live/flush").json().get("flushed"))
                except (httpx.HTTPError, ValueError):
                    ok = False
        return ok

    # -- stopping -----------------------------------------------------------------------------
    def stop(self, timeout_s: float = 20.0) -> dict[str, int | None]:
        """Stop every process front to back with SIGINT (uvicorn's graceful shutdown, which
        runs each service's lifespan: its telemetry is flushed), killing any that hangs.
        Returns each process's exit code (0 is a clean stop)."""
        for tier in STOP_ORDER:
            running = [k for k in tier if k in self.procs and self.procs[k].poll() is None]
            for key in running:
                try:
                    self.procs[key].send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout_s
            for key in running:
                try:
                    self.procs[key].wait(max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    self.procs[key].kill()
                    self.procs[key].wait(5)
        for key, proc in self.procs.items():
            self.exit_codes[key] = proc.poll()
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        self.procs.clear()
        return dict(self.exit_codes)

    def __enter__(self) -> "LiveSystem":
        return self.start() if not self.procs else self

    def __exit__(self, *exc) -> None:
        self.stop()


# -- the command line ---------------------------------------------------------------------------

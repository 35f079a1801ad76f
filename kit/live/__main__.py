"""`python -m kit.live`: the command line of the live system (`kit.live.system` does the work).

    python -m kit.live                      # exercise/ (your code), on the workshop's ports
    python -m kit.live --solution           # the reference answer
    python -m kit.live --base-port 9000     # gateway 9000, auth 9001, order 9002, ...
    python -m kit.live --provider-latency-ms 300 --provider-failure-rate 0.2
    python -m kit.live --solution --experiment checkout-v2     # E2: orders tagged by variant
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from kit import ROOT
from kit.live.system import (DEFAULT_PORTS, EXPORT_MODES, PROVIDER, PROVIDER_NAME, SERVICE_NAMES, LiveConfig,
                             LiveError, LiveSystem, ports_from_base)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m kit.live",
                                description="Run the five services and a stand-in payment "
                                            "provider as real processes on 127.0.0.1.")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--solution", action="store_true", help="run solution/ instead of exercise/")
    which.add_argument("--tree", type=Path, help="run this copy of exercise/")
    p.add_argument("--base-port", type=int, help="gateway on this port, the others after it "
                                                 "(default: the workshop's 8000-8005, provider 8009)")
    p.add_argument("--export", choices=EXPORT_MODES, default="auto",
                   help="where spans go (default auto: the SQLite store, plus OTLP or Azure "
                        "Monitor when their variables are set)")
    p.add_argument("--span-db", type=Path, help="the SQLite span file (default .live/spans.db)")
    p.add_argument("--fresh", action="store_true", help="start with an empty span file")
    p.add_argument("--provider-latency-ms", type=float, default=0.0)
    p.add_argument("--provider-failure-rate", type=float, default=0.0,
                   help="share of charges answered 503 (0..1)")
    p.add_argument("--provider-decline-rate", type=float, default=0.0,
                   help="share of charges declined with 402 (0..1)")
    p.add_argument("--seed", type=int, help="seed of the provider's failures and declines")
    p.add_argument("--redis-url", help="a real Redis for the order service's cache "
                                       "(default: REDIS_URL, else in-process fakeredis)")
    p.add_argument("--stock", action="append", default=[], metavar="PRODUCT=N",
                   help="start with this stock (repeatable), e.g. --stock prod-1=10000")
    p.add_argument("--environment", help="deployment environment (sampling defaults)")
    p.add_argument("--experiment", help="extension E2: the gateway assigns each user a variant "
                                        "of this experiment (WORKSHOP_EXPERIMENT)")
    p.add_argument("--slos", metavar="JSON_OR_FILE",
                   help="extension E3: the SLOs the viewer evaluates, a JSON list of {name, "
                        "service, operation, objective, latency_ms} (or a file holding one)")
    p.add_argument("--max-seconds", type=float, help="stop by itself after this long")
    p.add_argument("--access-log", action="store_true", help="log every request")
    return p.parse_args(argv)


def _config(args: argparse.Namespace) -> LiveConfig:
    stock = {}
    for item in args.stock:
        product, _, qty = item.partition("=")
        if not qty.isdigit():
            raise LiveError(f"--stock {item}: write PRODUCT=N, e.g. --stock prod-1=10000")
        stock[product] = int(qty)
    cfg = LiveConfig(
        tree=args.tree or ROOT / ("solution" if args.solution else "exercise"),
        ports=ports_from_base(args.base_port) if args.base_port else dict(DEFAULT_PORTS),
        span_db=args.span_db, export=args.export,
        provider_latency_ms=args.provider_latency_ms,
        provider_failure_rate=args.provider_failure_rate,
        provider_decline_rate=args.provider_decline_rate, provider_seed=args.seed,
        redis_url=args.redis_url, stock=stock or None, environment=args.environment,
        max_seconds=args.max_seconds, access_log=args.access_log, experiment=args.experiment,
        slos=_slos(args.slos))
    if args.fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(str(cfg.span_file) + suffix).unlink(missing_ok=True)
    return cfg


def _slos(raw: str | None) -> str | None:
    if not raw:
        return None
    text = Path(raw).read_text() if not raw.lstrip().startswith("[") and Path(raw).is_file() else raw
    try:
        items = json.loads(text)
        assert isinstance(items, list) and all({"name", "service", "operation", "objective"}
                                               <= set(i) for i in items)
    except (ValueError, AssertionError, TypeError):
        raise LiveError("--slos: give a JSON list of {name, service, operation, objective, "
                        "latency_ms}, e.g. '[{\"name\": \"orders\", \"service\": \"api-gateway\", "
                        "\"operation\": \"POST /api/orders\", \"objective\": 0.99}]'") from None
    return json.dumps(items)


def _banner(system: LiveSystem) -> str:
    cfg = system.config
    mode = cfg.export_mode()
    where = {"store": f"the SQLite span store {cfg.span_file}",
             "both": f"the SQLite span store {cfg.span_file} and "
                     + (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "Azure Monitor"),
             "env": "wherever your Step 1 code sends them (OTLP / Azure Monitor)",
             "off": "nowhere: tracing is off"}[mode]
    try:
        tree = Path(cfg.tree).resolve().relative_to(ROOT)
    except ValueError:
        tree = Path(cfg.tree)
    lines = [f"The workshop system ({tree}/) is running:"]
    for key, name in SERVICE_NAMES.items():
        lines.append(f"  {name:<18} {system.url(key)}")
    lines.append(f"  {PROVIDER_NAME:<18} {system.url(PROVIDER)}  (latency "
                 f"{cfg.provider_latency_ms:g} ms, failures {cfg.provider_failure_rate:g}, "
                 f"declines {cfg.provider_decline_rate:g})")
    lines += [f"Spans go to {where}.",
              f"Trace viewer:  {system.viewer_url}  (search, performance, metrics, insights)",
              f"Try:           python scripts/step7_trace_test.py --gateway {system.url('gateway')}",
              f"Logs:          {system.log_dir}/",
              "Ctrl-C stops everything."]
    return "\n".join(lines)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parse(argv)
        system = LiveSystem(_config(args))
        # Ctrl-C (SIGINT) and SIGTERM (e.g. from a process manager) both stop cleanly, even
        # when a shell started us in the background with SIGINT ignored.
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        print("Starting the services ...", flush=True)
        system.start()
    except LiveError as exc:
        sys.stderr.write(f"kit.live: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    print(_banner(system), flush=True)
    code = 0
    try:
        while True:
            dead = [k for k, up in system.alive().items() if not up]
            if dead:
                key = dead[0]
                sys.stderr.write(f"kit.live: {SERVICE_NAMES.get(key, PROVIDER_NAME)} stopped "
                                 f"unexpectedly: {system._last_error(key)}; stopping the rest\n")
                code = 1
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    print("\nStopping (gateway first, provider last; each service flushes its spans) ...",
          flush=True)
    codes = system.stop()
    unclean = {k: c for k, c in codes.items() if c not in (0, None)}
    if unclean and code == 0:
        sys.stderr.write(f"kit.live: not every process stopped cleanly: {unclean} "
                         f"(see {system.log_dir})\n")
        code = 1
    else:
        print("Stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())

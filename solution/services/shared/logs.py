"""Structured logging for the services, correlated with traces (provided code).

Every log event goes through these structlog processors, in order:

1. ``merge_contextvars`` - values bound with ``structlog.contextvars.bind_contextvars``;
2. ``add_log_level`` - ``"level": "info"``;
3. Step 2's ``trace_context.add_trace_ids`` - ``trace_id`` and ``span_id`` of the current span,
   so a log line leads to its trace and a trace to its log lines;
4. ``TimeStamper(fmt="iso")`` - ``"timestamp"``;
5. a renderer: one JSON object per line (``json=True``) or a readable console line.

Usage::

    from services.shared.logs import configure_logging, get_logger

    configure_logging()                 # once at start-up; calling it again is harmless
    log = get_logger(__name__)
    log.info("Order processed successfully", order_id="o-1", duration_ms=12.5)

Loggers are not cached on first use, so ``structlog.testing.capture_logs()`` sees every event
in tests.
"""
from __future__ import annotations

import logging
from typing import Any

import structlog

from services.shared import trace_context


def configure_logging(level: str | int = "INFO", json: bool = True) -> None:
    """Configure structlog for this process (idempotent: the same call gives the same set-up)."""
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            level = logging.INFO
    renderer: Any = (structlog.processors.JSONRenderer() if json
                     else structlog.dev.ConsoleRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            trace_context.add_trace_ids,  # Step 2: trace_id and span_id on every event
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> Any:
    """A structlog logger for module ``name``.

    It is a lazy proxy: it reads the configuration each time it logs, so a module-level
    logger created before ``configure_logging()`` (or inside ``capture_logs()``) still follows
    the configuration in force.
    """
    return structlog.get_logger(name) if name else structlog.get_logger()

"""What the extensions' checks (`test_ext_e*.py`) share: spans built by hand, calling a learner
function so that a stub or a crash fails plainly, and showing spans to the learner. Generated
cases go through `kit.harness.generated`; the oracles are in `checks/oracles/`.

Span ids `span()` numbers itself count from 1 in every check (`reset_ids`, called before each
check by checks/conftest.py), whatever checks ran before in the process: the oracles' recorded
answers (`kit.harness.answers`) are looked up by their arguments, ids included.

Everything reaches the learner's code through the contract's names only (`kit.harness.learner`).
"""
from __future__ import annotations

import math
from typing import Any

from kit.harness.expect import fail
from kit.harness.learner import attr
from checks.helpers import call_learner
from kit.traces.text import render_tree

#: Times are in ms from this epoch base, so no clock decides anything.
BASE = 1_700_000_000_000.0

_ids = {"count": 0}


def reset_ids() -> None:
    """Number the next ids `span()` gives itself from 1 again."""
    _ids["count"] = 0


def span(name: str = "op", *, service: str = "svc", kind: str = "SERVER", start: float = 0.0,
         duration: float = 10.0, status: str = "UNSET", trace: int | str = 1, span_id: int | str | None = None,
         parent: int | str | None = None, attributes: dict | None = None):
    """A SpanRecord: `start` in ms from BASE; numeric ids are written as hex."""
    if span_id is None:
        _ids["count"] += 1
        span_id = _ids["count"]
    record = attr("services.shared.span_store", "SpanRecord")
    return record(trace_id=_hex(trace, 32), span_id=_hex(span_id, 16),
                  parent_span_id=None if parent is None else _hex(parent, 16), name=name, service=service,
                  kind=kind, start_ms=BASE + start, duration_ms=duration, status=status,
                  attributes=dict(attributes or {}))


def _hex(value: int | str, width: int) -> str:
    return f"{value:0{width}x}" if isinstance(value, int) else value.rjust(width, "0")


def call(module: str, name: str, *args, **kwargs) -> Any:
    """Call a learner function; NotImplementedError or a crash fails the check, saying which."""
    return call_learner(module, name, *args, **kwargs)


def ms(value: float) -> str:
    return f"{value:g}"


def table(spans, *, limit: int = 40) -> str:
    """The spans as lines a learner can read: trace, service, name, kind, status, start, duration."""
    lines = []
    for s in spans[:limit]:
        extra = "".join(f" {k}={v}" for k, v in sorted(s.attributes.items()))
        parent = f" parent={s.parent_span_id[-4:]}" if s.parent_span_id else ""
        lines.append(f"  trace …{s.trace_id[-4:]} span …{s.span_id[-4:]}{parent}  {s.service}: {s.name} "
                     f"[{s.kind}{'' if s.status == 'UNSET' else ', ' + s.status}] start {ms(s.start_ms - BASE)} "
                     f"duration {ms(s.duration_ms)}{extra}")
    if len(spans) > limit:
        lines.append(f"  ... {len(spans) - limit} more spans")
    return "\n".join(lines) if lines else "  (no spans)"


def shown(spans) -> str:
    """The spans for a failure message: a table, then the trees they make."""
    return f"these {len(spans)} spans (start and duration in ms):\n{table(spans)}\nas trees:\n{render_tree(spans)}"


def cut_to(entries, wanted: set[str], did) -> list[dict]:
    """The entries (a list or tuple of dicts, each holding at least the keys `wanted`) cut down to
    those keys. A result may hold more: the checks read only the keys the reference lists (rule
    0.10). `did` is the description of the call, or a function giving it (built only on failure)."""
    def fail_with(saw: str) -> None:
        fail(did=did() if callable(did) else did, expected=f"a list of dicts with the keys {sorted(wanted)}",
             saw=saw)
    if not isinstance(entries, (list, tuple)):
        fail_with(f"{entries!r:.300}")
    for entry in entries:
        if not isinstance(entry, dict) or not wanted <= set(entry):
            fail_with(f"{entry!r:.300}" if not isinstance(entry, dict) else f"an entry with the keys {sorted(entry)}")
    return [{k: entry[k] for k in entry if k in wanted} for entry in entries]


def same(got, want) -> bool:
    """`got` equals `want`, numbers up to float rounding (`close`): lists and tuples item by item,
    dicts key by key. An error rate computed as 1 - ok/n is as right as errors/n (rule 0.10)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    if isinstance(want, (list, tuple)):
        return isinstance(got, (list, tuple)) and len(got) == len(want) and all(map(same, got, want))
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        return isinstance(got, (int, float)) and not isinstance(got, bool) and close(got, want)
    return got == want


def close(a, b, tol: float = 1e-9) -> bool:
    """Numbers equal up to float rounding (infinities equal themselves)."""
    try:
        if a == b:
            return True
        return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)
    except (TypeError, ValueError):
        return False

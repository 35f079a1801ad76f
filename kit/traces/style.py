"""Small drawing helpers of the viewer pages; the pictures themselves are `kit.traces.waterfall`'s.

The waterfall and the service map are drawn by `kit.traces.waterfall` (the same SVG pictures as in the
notebooks): rows are `<g class="span ..." data-span-id=...>`, which the viewer's page makes
clickable. Here: service colours (the waterfall's, so chips and bars agree), durations for
people, and the legend chips.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from kit.traces.waterfall import service_colour


def colour_of(service: str, order: Sequence[str] = ()) -> str:
    """A service's colour, as the waterfall draws it."""
    return service_colour(service, order)


def fmt_ms(ms: float) -> str:
    """A duration for people: 0.42 ms, 12.3 ms, 1.25 s."""
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def legend_html(services: Iterable[str]) -> str:
    services = list(services)
    return "".join(f'<span class="chip" style="background:{colour_of(s, services)}">{escape(s)}</span>'
                   for s in services)

"""How the kit draws: colours (one per service, fixed for ours), the one duration format (`fmt_ms`
in Python, `FMT_MS_JS` in the viewer's pages), text fitting, and small shared pieces of SVG and
HTML. The pictures themselves are `kit.traces.waterfall` and `kit.traces.service_map`.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from kit.topology import SERVICE_NAMES

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"

#: Fixed colours for our five services (in the topology's order); anything else takes the next free one.
_KNOWN = dict(zip(SERVICE_NAMES, ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948")))
_SPARE = ("#76b7b2", "#9c755f", "#ff9da7", "#86bcb6", "#a0cbe8", "#bab0ac", "#d4a6c8", "#8cd17d")
ERROR = "#d62728"
CRITICAL = "#1f1f1f"
GRID = "#e3e3e3"
MUTED = "#6b6b6b"
#: The pictures' width (px).
WIDTH = 1000


def service_colour(service: str, order: Sequence[str] = ()) -> str:
    """The colour of `service`: fixed for ours, the next spare one (by `order`) for others."""
    if service in _KNOWN:
        return _KNOWN[service]
    others = [s for s in order if s not in _KNOWN]
    index = others.index(service) if service in others else sum(map(ord, service))
    return _SPARE[index % len(_SPARE)]


def shade(colour: str, factor: float) -> str:
    """Darker (factor < 1) or lighter (factor > 1, towards white) version of a #rrggbb colour."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    if factor <= 1:
        r, g, b = (int(c * factor) for c in (r, g, b))
    else:
        t = min(factor - 1, 1)
        r, g, b = (int(c + (255 - c) * t) for c in (r, g, b))
    return f"#{r:02x}{g:02x}{b:02x}"


def fit(text: str, width_px: float, size: float) -> str:
    """Cut `text` with an ellipsis so it takes about `width_px` at font size `size`."""
    room = max(int(width_px / (size * 0.58)), 1)
    return text if len(text) <= room else text[:max(room - 1, 0)] + "…"


def fmt_ms(value: float) -> str:
    """A duration for people, the one format of the kit (the viewer's page uses `FMT_MS_JS`, the
    same rule in JavaScript): 0.42 ms, 12.3 ms, 123 ms, 1.25 s."""
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


#: `fmt_ms` as a JavaScript arrow function, for the viewer's pages.
FMT_MS_JS = ("ms => ms >= 1000 ? (ms/1000).toFixed(2)+' s' : ms >= 100 ? ms.toFixed(0)+' ms' : "
             "ms >= 10 ? ms.toFixed(1)+' ms' : ms.toFixed(2)+' ms'")


def colour_of(service: str, order: Sequence[str] = ()) -> str:
    """A service's colour, as the waterfall draws it."""
    return service_colour(service, order)


def legend_html(services: Iterable[str]) -> str:
    services = list(services)
    return "".join(f'<span class="chip" style="background:{colour_of(s, services)}">{escape(s)}</span>'
                   for s in services)


def empty_svg(title: str, message: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="waterfall empty" width="{WIDTH}" height="60" '
            f'viewBox="0 0 {WIDTH} 60" font-family="{FONT}" font-size="12">'
            f'<rect x="0" y="0" width="{WIDTH}" height="60" fill="white" stroke="{GRID}"/>'
            f'<text x="10" y="22" font-size="14" font-weight="bold">{escape(title)}</text>'
            f'<text x="10" y="44" fill="{MUTED}">{escape(message)}</text></svg>')

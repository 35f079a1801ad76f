"""The trace viewer, the local stand-in for Application Insights in the workshop's Steps 8-10:
transaction search, one trace's waterfall with its log lines and exceptions, the performance
tables (operations, dependencies, sample traces), per-service metrics with exemplars, the
extensions (insights), the service map and OTLP/JSON downloads (see `kit.live.viewer.server`).
Over a SQLite span file it keeps its own indexes (`index.py`); the HTML is in `pages.py` and
`panels.py`.

    python -m kit.live.viewer --db .live/spans.db --port 8080     # alone, over a span file

`kit.live` serves it next to the gateway (http://127.0.0.1:8000/viewer/).
"""
from kit.live.viewer.server import create_viewer_app

__all__ = ["create_viewer_app"]

"""The trace viewer: recent traces, one trace's waterfall and details, the service map, and
OTLP/JSON downloads, over any span store (see `kit.live.viewer.server`).

    python -m kit.live.viewer --db .live/spans.db --port 8080     # alone, over a span file

`kit.live` serves it next to the gateway (http://127.0.0.1:8000/viewer/).
"""
from kit.live.viewer.server import create_viewer_app

__all__ = ["create_viewer_app"]

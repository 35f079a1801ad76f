"""`python -m kit.live.viewer [--db PATH] [--port 8080]`: the viewer alone, over a span file.

Reads the SQLite file that the live system's services write (`.live/spans.db` by default);
binds 127.0.0.1 only. Ctrl-C stops it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kit import ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kit.live.viewer", description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, default=ROOT / ".live" / "spans.db",
                        help="the span database file (default: .live/spans.db)")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    args = parser.parse_args(argv)
    import uvicorn

    from kit.live.system import port_in_use
    from kit.live.viewer.server import create_viewer_app
    from kit.live.viewer.store import SpanDatabase

    if port_in_use("127.0.0.1", args.port):
        sys.stderr.write(f"kit.live.viewer: port {args.port} is already in use on 127.0.0.1; "
                         f"choose another with --port\n")
        return 2
    app = create_viewer_app(SpanDatabase(args.db), source=f"spans from {args.db}")
    print(f"Trace viewer: http://127.0.0.1:{args.port}/viewer/  (Ctrl-C stops it)", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())

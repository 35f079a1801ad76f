"""The messages between the grading process, the warm parent and the grading child, in one place
that every side reads (as pytest-xdist keeps its event names).

**Warm parent <-> grading process**: JSON lines on the warm parent's stdin/stdout
(`kit.grading.zygote.Zygote` is one end, `kit.grading.warm_parent.serve` the other):

    <- {"ready": true, "checks": [check description, ...], "files": [...]}   once warm
    <- {"error": "..."}                                   the warm-up failed
    -> {"op": "fork", "id": n, "request": {...}, "env": {...}, "cwd": dir, "log": file, "key": hex}
    <- {"id": n, "pid": pid}                              the child of fork n
    <- {"exited": pid, "rc": code}                        (negative: killed by that signal)
    -> {"op": "kill", "pid": pid}                         kill the child's process group
    -> {"op": "renice", "pid": pid, "niceness": n}        lower the priority of the child's processes

(In the sandbox, pids are those of the warm parent's PID namespace: only it may signal them.
The fork message's "isolate" ({"tree": staged folder, "hide": [folders]}, or null) tells the
child to enter namespaces of its own; READY's "sandbox_error" says the warm parent's trial of
that failed.)

**Grading child -> grading process**: an events file, one signed line per event (`sign`,
`verify`: a key only the two know, so lines written by anyone else are ignored), each with a
sequence number `seq`. `EVENT` names the kinds; `kit.child.recorder.Recorder` writes them and
`kit.grading.runner` reads them.
"""
from __future__ import annotations

import hashlib
import hmac
import json

# -- warm parent <-> grading process -----------------------------------------------------------
OP_FORK = "fork"
OP_KILL = "kill"
OP_RENICE = "renice"
READY = "ready"
ERROR = "error"
EXITED = "exited"


def encode(message: dict) -> bytes:
    """One protocol line."""
    return (json.dumps(message) + "\n").encode()


# -- grading child -> grading process (the events file) --------------------------------------
class EVENT:
    """The kinds of event the grading child writes."""

    COLLECTED = "collected"    # checks: [check description, ...], once, before any check runs
    STARTED = "started"        # nodeid, limit: a check began
    RESULT = "result"          # nodeid, status, message: a check's verdict
    WARNING = "warning"        # message: something the report should say
    IMPORTING = "importing"    # module: a learner module began to import (its time is watched)
    IMPORTED = "imported"      # module: ... and finished


def sign(key: bytes, event: dict) -> str:
    """One events-file line: `<mac> <json>`."""
    body = json.dumps(event, sort_keys=True, ensure_ascii=True)
    mac = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{mac} {body}\n"


def verify(key: bytes, line: str) -> dict | None:
    """The event of a signed line, or None when the line was not written with `key`."""
    mac, _, body = line.rstrip("\n").partition(" ")
    expected = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        event = json.loads(body)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None
